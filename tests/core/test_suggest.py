"""suggest.py on hand-built curves: what each rule returns, pinned; robustness to bad curves."""

from __future__ import annotations

import json
import math
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optim_core.numerics import suggest as S

N = 100
LRS = [float(v) for v in np.logspace(-7, 1, N)]


def valley_curve() -> list[float]:
    """Flat at 2.0 to index 40, a cosine fall to 0.5 at index 70, then a quadratic rise to 5."""
    y = []
    for i in range(N):
        if i <= 40:
            y.append(2.0)
        elif i <= 70:
            y.append(2.0 - 0.75 * (1 - math.cos(math.pi * (i - 40) / 30)))
        else:
            y.append(0.5 + 4.5 * ((i - 70) / 29) ** 2)
    return y


def test_module_is_torch_free() -> None:
    import subprocess

    code = "import sys, optim_core.numerics.suggest; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_known_rules_pinned_on_a_hand_built_valley() -> None:
    y = valley_curve()
    # steepest: the cosine fall is steepest at its midpoint, index 55.
    assert S.steepest(LRS, y) == LRS[55]
    # valley: trimmed to [10:95]; the longest strictly decreasing run is one flat point + 41..70
    # (31 points) ending at full index 70 -> start 39, sections 31/3 -> 39 + 10 + 5 = 54.
    assert S.valley(LRS, y) == LRS[54]
    # minimum / 10: the minimum is at index 70.
    assert S.minimum_div10(LRS, y) == pytest.approx(LRS[70] / 10, rel=1e-12)


def test_fastai_rules_trim_an_early_stopped_sweep_from_the_steps_asked_for() -> None:
    # A sweep of 100 steps that stopped after 60: falling to index 40, rising after. fastai trims
    # the recorded curve to [num_it // 10 : -5] = [10:55] with num_it the steps *asked for*.
    y = [2.0 - i / 40 if i <= 40 else 1.0 + (i - 40) / 20 for i in range(60)]
    # the falling run is 10..40 (31 points, trimmed 0..30): start -1, sections 31/3 ->
    # -1 + 10 + 5 = 14, i.e. full index 24
    assert S.valley(LRS[:60], y, num_steps=100) == LRS[24]
    # read as a full sweep of 60 steps the trim starts at 6: run 6..40 (35), -1 + 11 + 5 = 15 -> 21
    assert S.valley(LRS[:60], y) == LRS[21]
    assert S.minimum_div10(LRS[:60], y, num_steps=100) == pytest.approx(LRS[40] / 10, rel=1e-12)
    assert S.suggest(LRS[:60], y, num_steps=100).valley == LRS[24]


def test_recommended_and_cycle_bounds_pinned_on_a_hand_built_valley() -> None:
    s = S.suggest(LRS, valley_curve())
    assert s.lr_at_min == LRS[70]
    # minimum / BACKOFF (4), below the turning point lrs[70] / 3: no clip applies
    expected = LRS[70] / 4
    assert s.recommended == pytest.approx(expected, rel=1e-12)
    assert s.recommended < LRS[70] / 3
    # stops falling: first point within 10 % of the drop (loss <= 0.65) is index 64
    assert s.cycle_max_lr == LRS[64]
    assert s.cycle_min_lr == pytest.approx(LRS[64] / 10)
    assert s.confidence == 1.0
    assert s.flags == []
    assert s.reason.endswith(".") and "lowest at lr=" in s.reason


def test_recommended_is_below_the_turning_point() -> None:
    s = S.suggest(LRS, valley_curve())
    assert s.recommended is not None and s.lr_at_min is not None
    assert s.recommended <= s.lr_at_min / S.MIN_BACKOFF


def test_recommended_stays_below_the_minimum_whatever_the_valley_says() -> None:
    # A narrow early dip is the global minimum; the longest decreasing run comes later, at higher
    # LRs. The valley (which once weighed in on the pick) would lie past the minimum: the pick is
    # read off the minimum alone, lr_min / BACKOFF, below the lr_min / 3 ceiling.
    y = [2.0] * 30 + [0.1] + [1.9] * 9
    y += [1.9 - 0.018 * k for k in range(51)]  # indices 40..90, strictly decreasing
    y += [y[-1] + 0.3 * k for k in range(1, N - len(y) + 1)]
    assert len(y) == N
    s = S.suggest(LRS, y)
    assert s.lr_at_min == LRS[30]
    assert s.valley is not None and s.valley > LRS[40]
    assert s.recommended == pytest.approx(LRS[30] / S.BACKOFF)
    assert s.recommended < LRS[30] / S.MIN_BACKOFF and "clipped" not in s.reason


def test_when_the_bounds_cross_the_first_lr_wins_and_is_flagged() -> None:
    # A narrow sweep (1e-3 .. ~3.2e-3): the minimum (index 70, ~2.3e-3) is within 3x of the first
    # LR, so lr_min / 3 < lrs[0]. The lower bound wins: the pick is lrs[0], above lr_min / 3.
    lrs = [float(v) for v in np.logspace(-3, -2.5, N)]
    s = S.suggest(lrs, valley_curve())
    assert s.lr_at_min == lrs[70] and lrs[70] < S.MIN_BACKOFF * lrs[0]
    assert s.recommended == lrs[0] > s.lr_at_min / S.MIN_BACKOFF
    assert s.flags == ["at_sweep_start"]
    assert s.confidence == 0.5
    assert "first LR of the sweep" in s.reason and "safely below" not in s.reason


def test_recommended_never_below_the_first_lr() -> None:
    # 1e-3 .. ~6.3e-3: the minimum (index 70, ~3.7e-3) / 4 is below the first LR, / 3 above it.
    lrs = [float(v) for v in np.logspace(-3, -2.2, N)]
    s = S.suggest(lrs, valley_curve())
    assert s.lr_at_min is not None and s.lr_at_min / S.BACKOFF < lrs[0] < s.lr_at_min / S.MIN_BACKOFF
    assert s.recommended == lrs[0]
    assert "at_sweep_start" in s.flags and "clipped to" in s.reason


@pytest.mark.parametrize("shift", [-100.0, -2.0, 1000.0])
def test_shifted_losses_give_the_same_suggestions(shift: float) -> None:
    y = valley_curve()
    base, moved = S.suggest(LRS, y), S.suggest(LRS, [v + shift for v in y])
    for name in ("steepest", "valley", "minimum_div10", "recommended", "cycle_max_lr",
                 "lr_at_min"):
        assert getattr(moved, name) == pytest.approx(getattr(base, name), rel=1e-9), name
    assert moved.confidence == pytest.approx(base.confidence)


def test_non_finite_tail_is_cut_and_flagged() -> None:
    y: list[float | None] = list(valley_curve())
    y[80], y[81] = float("nan"), float("inf")
    y[82] = None
    s = S.suggest(LRS, y)
    assert "non_finite" in s.flags
    assert s.lr_at_min == LRS[70]
    assert s.recommended is not None and math.isfinite(s.recommended)
    json.dumps(s.to_dict(), allow_nan=False)


@pytest.mark.parametrize("n", [0, 1, 2])
def test_too_short_curves_never_crash_and_have_zero_confidence(n: int) -> None:
    s = S.suggest(LRS[:n], [1.0, 0.5][:n])
    assert s.confidence == 0.0
    assert "too_short" in s.flags
    assert s.recommended == (LRS[0] if n else None)


def test_short_curve_gets_low_confidence() -> None:
    y = [1.0, 0.9, 0.7, 0.6, 0.65, 0.9, 1.5]
    s = S.suggest(LRS[:7], y)
    assert "short" in s.flags and s.confidence <= 0.4
    assert s.steepest is None  # torch-lr-finder's skips leave nothing: no answer, no crash


def test_all_nan_curve() -> None:
    s = S.suggest(LRS, [float("nan")] * N)
    assert s.confidence == 0.0 and s.recommended == LRS[0]


def test_never_decreasing_curve() -> None:
    s = S.suggest(LRS, [1.0 + 0.01 * i for i in range(N)])
    assert "never_decreases" in s.flags
    assert s.confidence <= 0.05
    assert s.recommended == LRS[0]
    assert s.cycle_max_lr is None


def test_a_constant_loss_is_flat_despite_ema_rounding() -> None:
    y = S.smooth([math.log(10.0)] * N)  # the bias-corrected EMA wobbles by ~1e-16
    assert min(y) < y[0]  # the rounding this test is about
    s = S.suggest(LRS, y, raw_losses=[math.log(10.0)] * N)
    assert "never_decreases" in s.flags and s.confidence <= 0.05


def test_immediate_divergence_lowers_confidence() -> None:
    # The first LRs already train (the raw loss falls for 6 steps), then the loss only rises.
    raw = [0.85**i for i in range(6)] + [0.85**5 + 0.1 * i for i in range(1, N - 5)]
    s = S.suggest(LRS, S.smooth(raw), raw)
    assert "diverged_immediately" in s.flags and "at_sweep_start" in s.flags
    assert s.confidence <= 0.2 and s.recommended == LRS[0] and s.cycle_max_lr is None
    assert s.lr_at_min is not None and LRS[3] <= s.lr_at_min <= LRS[6]
    assert "start_lr is already too high" in s.reason


def test_still_falling_at_the_end_is_flagged() -> None:
    y = [2.0 - 0.015 * i for i in range(N)]
    s = S.suggest(LRS, y)
    assert "still_falling" in s.flags and s.confidence <= 0.5
    assert s.recommended is not None and s.recommended <= LRS[-1] / S.MIN_BACKOFF


def test_noise_lowers_confidence() -> None:
    rng = np.random.default_rng(0)
    clean = valley_curve()
    noisy = (np.array(clean) + rng.normal(0, 0.3, N)).tolist()
    assert S.suggest(LRS, noisy).confidence < S.suggest(LRS, clean).confidence


def test_raw_noise_lowers_confidence() -> None:
    rng = np.random.default_rng(0)
    clean = valley_curve()
    noisy_raw = (np.array(clean) + rng.normal(0, 1.0, N)).tolist()
    quiet = S.suggest(LRS, clean, raw_losses=clean)
    loud = S.suggest(LRS, clean, raw_losses=noisy_raw)
    assert loud.confidence < quiet.confidence
    assert loud.recommended == quiet.recommended  # raw losses never move the LR, only confidence


def test_negative_losses() -> None:
    y = [v - 10.0 for v in valley_curve()]  # every loss negative (e.g. a log-likelihood bound)
    s = S.suggest(LRS, y)
    assert s.lr_at_min == LRS[70] and s.confidence == 1.0


def test_smoothing_bias_correction_is_not_off_by_one() -> None:
    beta = 0.98
    a, b = 3.0, 1.0
    out = S.smooth([a, b], beta)
    assert out[0] == a  # the first smoothed value is the first raw value exactly
    assert out[1] == pytest.approx((beta * (1 - beta) * a + (1 - beta) * b) / (1 - beta**2))
    assert S.smooth([2.5] * 50, beta) == pytest.approx([2.5] * 50, rel=1e-12)
    assert S.smooth([1.0, 2.0], 0.0) == [1.0, 2.0]


def _fastai_valley_reference(lrs: list[float], losses: list[float]) -> float:
    """fastai's O(n^2) loop, verbatim in structure, on the fastai-trimmed curve; index clipped."""
    n0 = len(losses)
    a, b = n0 // 10, n0 - 5
    if b - a >= 2:
        lrs, losses = lrs[a:b], losses[a:b]
    n = len(losses)
    max_start, max_end = 0, 0
    lds = [1] * n
    for i in range(1, n):
        for j in range(0, i):
            if losses[i] < losses[j] and lds[i] < lds[j] + 1:
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    idx = max_start + int(sections) + int(sections / 2)
    return lrs[min(max(idx, 0), n - 1)]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-5, 5, allow_nan=False), min_size=2, max_size=60))
def test_valley_matches_fastai_loop(losses: list[float]) -> None:
    lrs = LRS[: len(losses)]
    assert S.valley(lrs, losses) == _fastai_valley_reference(lrs, losses)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.none()),
                min_size=0, max_size=40))
def test_suggest_never_raises_and_stays_in_range(losses: list[float | None]) -> None:
    lrs = LRS[: len(losses)]
    s = S.suggest(lrs, losses)
    assert 0.0 <= s.confidence <= 1.0
    assert isinstance(s.reason, str) and s.reason
    if s.recommended is not None:
        assert lrs[0] <= s.recommended <= lrs[-1]
    json.dumps(s.to_dict(), allow_nan=False, default=str)
