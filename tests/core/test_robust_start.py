"""Issue 11 item 1: no single batch decides where a curve starts (suggest and divergence)."""

from __future__ import annotations

import math

import pytest

from optim_core.numerics import suggest as S
from optim_core.numerics.divergence import DivergenceMonitor

N = 100
LRS = [1e-7 * (1e8 ** (i / (N - 1))) for i in range(N)]


def lucky_first_batch_curve() -> list[float]:
    """The issue's MLP+SGD curve: batch 0 15 % below the others, flat at 0.97 while the LR is tiny,
    a steady fall to 0.85, then a rise."""
    raw = []
    for i in range(N):
        if i < 50:
            v = 0.97
        elif i < 80:
            v = 0.97 - 0.12 * (i - 50) / 30
        else:
            v = 0.85 + 0.05 * (i - 80)
        raw.append(v + 0.004 * math.sin(1.7 * i))  # a little batch noise
    raw[0] = 0.97 * 0.85
    return raw


def test_start_level_is_the_median_of_the_first_tenth() -> None:
    assert S.start_window(100) == 10 and S.start_window(1000) == 10
    assert S.start_window(20) == 3 and S.start_window(2) == 2 and S.start_window(0) == 0
    assert S.start_level([0.1, 5.0, 1.0, 1.0, 2.0, 9.0, 1.0, 1.0, 1.0, 1.0, -50.0]) == 1.0


def test_a_lucky_first_batch_does_not_hide_the_falling_region() -> None:
    raw = lucky_first_batch_curve()
    y = S.smooth(raw)
    assert S._argmin(y) == 0  # the bias-corrected EMA starts at the lucky batch: the trap
    for r in (raw, None):  # the raw losses give the start; without them, the smoothed ones
        s = S.suggest(LRS, y, raw_losses=r)
        assert "never_decreases" not in s.flags and "at_sweep_start" not in s.flags, s.reason
        assert s.lr_at_min is not None and s.lr_at_min > LRS[60]
        assert s.recommended is not None and LRS[30] < s.recommended <= s.lr_at_min / S.MIN_BACKOFF
        # the 1cycle bound is read in the falling region, not at the lucky step 0
        assert s.cycle_max_lr is not None and s.cycle_max_lr > LRS[50]


def test_an_unlucky_first_batch_does_not_fake_a_fall() -> None:
    raw = [3.0] + [1.0 + 0.01 * i for i in range(1, N)]  # one bad batch, then only rising
    for r in (raw, None):  # without raw losses they are recovered from the smoothed curve
        s = S.suggest(LRS, S.smooth(raw), raw_losses=r)
        assert "never_decreases" in s.flags and s.recommended == LRS[0], s.reason


def test_unsmooth_inverts_smooth() -> None:
    raw = lucky_first_batch_curve()
    for beta in (0.0, 0.5, 0.98):
        assert S.unsmooth(S.smooth(raw, beta), beta) == pytest.approx(raw, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("at", [1, 3, 5, 8])
def test_a_lucky_batch_inside_the_start_window_is_no_fall(at: int) -> None:
    # Flat, then rising: one batch 15 % low anywhere in the first tenth is not a falling region,
    # wherever it falls in the window (step 0 was the only place the rule used to check).
    raw = [1.0] * 50 + [1.0 + 0.05 * k for k in range(N - 50)]
    raw[at] = 0.85
    s = S.suggest(LRS, S.smooth(raw), raw_losses=raw)
    assert s.flags == ["never_decreases"] and s.recommended == LRS[0], s.reason
    assert s.cycle_max_lr is None


def test_a_fall_inside_the_start_window_is_diagnosed_as_start_lr_too_high() -> None:
    # The raw loss halves every 3 steps from the first LR, then rises: the first LRs already train.
    # The window's median holds the fallen losses and the lagging EMA never goes below it, so
    # "never fell below the start" would be false.
    raw = [2 * 0.8**i for i in range(7)] + [min(50.0, 2 * 0.8**6 * 1.25**k) for k in range(1, N - 6)]
    s = S.suggest(LRS, S.smooth(raw), raw_losses=raw)
    assert "diverged_immediately" in s.flags and "never_decreases" not in s.flags, s.reason
    assert s.recommended == LRS[0] and s.lr_at_min is not None and s.lr_at_min <= LRS[9]
    assert "start_lr is already too high" in s.reason


def test_an_early_stopped_sweep_is_judged_on_the_steps_asked_for() -> None:
    # A 100-step sweep stopped by divergence after 18 points: the start window and "the first
    # tenth" are those of the sweep asked for (10 points), as the divergence monitor read them,
    # not of the 18 points recorded (3 and 1).
    raw = [2 * 0.8**i for i in range(7)] + [min(50.0, 2 * 0.8**6 * 1.25**k) for k in range(1, 94)]
    m = DivergenceMonitor(beta=0.98, threshold=1.0, num_steps=100)
    m.feed(raw)
    assert m.stop_at is not None
    n = m.stop_at + 1
    assert m.window == 10 and n < 30
    s = S.suggest(LRS[:n], m.smoothed[:n], m.raw[:n], num_steps=100)
    assert "diverged_immediately" in s.flags and s.recommended == LRS[0], s.reason
    assert "first 10 LRs" in s.reason


def test_lrs_that_stop_increasing_end_the_curve_and_are_flagged() -> None:
    y = S.smooth(lucky_first_batch_curve())
    # reversed: only the first point is a sweep
    s = S.suggest(LRS[::-1], y)
    assert s.flags == ["lrs_not_increasing", "too_short"] and s.recommended == LRS[-1]
    # a sweep whose end_lr is within rounding of its start_lr repeats its LRs: read up to there
    repeated = LRS[:60] + [LRS[59]] * 40
    s = S.suggest(repeated, y, lucky_first_batch_curve())
    assert "lrs_not_increasing" in s.flags and "non_finite" not in s.flags
    assert s.recommended is not None and s.recommended <= LRS[59]
    assert S.steepest(repeated, y) == S.steepest(LRS[:60], y[:60])



def test_a_curve_that_truly_never_falls_still_falls_back_to_the_first_lr() -> None:
    raw = [0.8] + [1.0] * 60 + [1.0 + 0.05 * i for i in range(N - 61)]  # lucky start, then flat/up
    s = S.suggest(LRS, S.smooth(raw), raw_losses=raw)
    assert "never_decreases" in s.flags and s.recommended == LRS[0]
    assert "median of the first 10 losses" in s.reason


def test_the_start_level_is_shift_invariant() -> None:
    raw = lucky_first_batch_curve()
    base = S.suggest(LRS, S.smooth(raw), raw_losses=raw)
    moved_raw = [v - 7.0 for v in raw]
    moved = S.suggest(LRS, S.smooth(moved_raw), raw_losses=moved_raw)
    assert moved.recommended == pytest.approx(base.recommended, rel=1e-9)
    assert moved.flags == base.flags


def _stop(raw: list[float], threshold: float = 1.0) -> int | None:
    m = DivergenceMonitor(beta=0.98, threshold=threshold, num_steps=len(raw))
    m.feed(raw)
    return m.stop_at


def test_divergence_is_not_fooled_by_a_lucky_first_batch() -> None:
    # Flat at 1.0 with 1 % batch noise, batch 0 at 0.85: with s_0 as "the start" and "the best",
    # the EMA climbing back from the lucky batch to 1.0 was a rise above the best by more than the
    # whole "drop" (s_0 - best = 0) and 3 x the noise.
    raw = [0.85] + [1.0 + 0.01 * (-1) ** i for i in range(1, N)]
    assert _stop(raw) is None


def test_divergence_is_not_delayed_by_an_unlucky_first_batch() -> None:
    # Falls 1.0 -> 0.8 over 40 steps, then blows up. An unlucky first batch (3.0) used as the start
    # made the scale 2.2 instead of 0.2: the old rule never stopped this run (clean: step 55).
    fall = [1.0 - 0.2 * i / 40 for i in range(41)]
    rise = [0.8 + 0.05 * k for k in range(1, 60)]
    clean = fall + rise
    unlucky = [3.0, *clean[1:]]
    stop_clean, stop_unlucky = _stop(clean), _stop(unlucky)
    assert stop_clean is not None and stop_unlucky is not None
    assert abs(stop_unlucky - stop_clean) <= 2  # the EMA still carries the bad batch a little
