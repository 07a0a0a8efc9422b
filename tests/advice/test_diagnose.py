"""diagnose() on synthetic logs: one log per finding."""

from __future__ import annotations

import math
import random

import pytest

from optim_core.advice.diagnose import TrainingLog, diagnose

HEALTHY = [3 * math.exp(-i / 50) + 0.5 + 0.01 * random.Random(i).random() for i in range(300)]


def kinds(log: TrainingLog) -> list[str]:
    return [f.kind for f in diagnose(log).findings]


def test_healthy() -> None:
    assert kinds(TrainingLog(loss=HEALTHY)) == ["healthy"]


def test_nan_inf_lowers_lr_and_clips() -> None:
    d = diagnose(TrainingLog(loss=[*HEALTHY[:50], None, float("inf")], lr=[2e-3] * 52))
    f = d.findings[0]
    assert f.kind == "nan_inf" and f.evidence["first_step"] == 50
    assert f.change["lr"]["to"] == pytest.approx(2e-4) and f.change["clip_norm"] == 1.0


def test_divergence() -> None:
    loss = [3 * math.exp(-i / 30) + 0.5 for i in range(150)] + [
        0.55 * math.exp(i / 40) for i in range(150)]
    f = next(f for f in diagnose(TrainingLog(loss=loss, lr=[1e-3] * 300)).findings
             if f.kind == "divergence")
    assert f.evidence["end_loss"] > 1.5 * f.evidence["min_loss"]
    assert f.change["lr"]["to"] == pytest.approx(1e-3 / 3)


def test_plateau_raises_lr() -> None:
    loss = [2.3 + 0.01 * random.Random(i).random() for i in range(200)]
    f = diagnose(TrainingLog(loss=loss, lr=[1e-5] * 200)).findings[0]
    assert f.kind == "plateau" and f.change["lr"]["to"] == pytest.approx(3e-5)


def test_oscillation_lowers_lr_and_raises_batch() -> None:
    loss = [1.0 + 0.5 * (-1) ** i for i in range(200)]
    f = diagnose(TrainingLog(loss=loss, batch_size=32)).findings[0]
    assert f.kind == "oscillation" and f.change["batch_size"]["to"] == 64


def test_overfitting_adds_decay_and_dropout() -> None:
    val = [2 * math.exp(-i / 5) + 0.8 + (0.03 * (i - 10) if i > 10 else 0) for i in range(30)]
    f = next(f for f in diagnose(TrainingLog(loss=HEALTHY, val_loss=val,
                                             val_steps=[10 * i for i in range(30)],
                                             weight_decay=0.01, dropout=0.0)).findings
             if f.kind == "overfitting")
    best = min(range(30), key=val.__getitem__)
    assert f.evidence["best_val_step"] == 10 * best and f.change["stop_at_step"] == 10 * best
    assert f.change["weight_decay"]["to"] == pytest.approx(0.03)
    assert f.change["dropout"]["to"] == pytest.approx(0.1)


def _power_law_window(lr: list[float] | None = None) -> TrainingLog:
    """Steps 6,000…9,000 of L(t) = 3·t^-0.1 with 1 % batch noise: the loss still falls ~4 %
    over the window — a healthy late run, not a plateau."""
    steps = list(range(6000, 9001, 10))
    loss = [3 * t ** -0.1 * (1 + 0.01 * (random.Random(t).random() - 0.5)) for t in steps]
    return TrainingLog(loss=loss, steps=steps, lr=lr)


def test_late_power_law_window_is_not_a_plateau() -> None:
    log = _power_law_window()
    gain = (log.loss[0] - min(log.loss)) / log.loss[0]  # type: ignore[operator]
    assert 0.03 < gain < 0.05  # under PLATEAU_GAIN: the old rule called this a plateau
    assert kinds(log) == ["healthy"]


def test_flat_log_under_a_decaying_schedule_does_not_raise_the_lr() -> None:
    n = 200
    loss = [2.3 + 0.01 * random.Random(i).random() for i in range(n)]
    lr = [1e-3 * 0.5 * (1 + math.cos(math.pi * i / n)) for i in range(n)]  # cosine decay
    f = diagnose(TrainingLog(loss=loss, lr=lr)).findings[0]
    assert f.kind == "plateau" and "lr" not in f.change and "lr_factor" not in f.change
    assert f.evidence["lr_end"] < 0.9 * f.evidence["lr_peak"] and "not raised" in f.summary
