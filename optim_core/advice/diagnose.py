"""Diagnose a training log (O7.5, W8): a pure function from losses to findings.

Each finding names its kind, the evidence (steps and values) and the concrete change to make
(a new LR, batch size or weight decay where the log gives the current one). Thresholds are
module constants so the tests and the docs quote the same numbers.
"""

from __future__ import annotations

import bisect
import itertools
import math
import statistics
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from optim_core.errors import SpecError
from optim_core.numerics.finite import is_finite

FindingKind = Literal["nan_inf", "divergence", "plateau", "oscillation", "overfitting", "healthy"]

MAX_POINTS = 100_000
DIVERGE_RATIO = 1.5      # smoothed loss this far above its minimum, at the end ⇒ diverging
PLATEAU_GAIN = 0.05      # less than 5 % total improvement (smoothed) ⇒ plateau candidate …
PLATEAU_SLOPE_T = 3.0    # … unless the fitted slope is this many standard errors below 0 (the
PLATEAU_MIN_TREND = 0.01  # error from the batch noise) and falls ≥ 1 % of the level over the log
LR_DECAYING = 0.9        # the log's last LR below 90 % of its peak ⇒ a schedule is decaying it
OSC_SIGN_FLIPS = 0.6     # share of successive differences changing sign
OSC_REL_NOISE = 0.10     # residual around the running median, relative to the loss level
OVERFIT_RISE = 0.05      # validation loss 5 % above its minimum while training loss fell
LR_DOWN_NAN, LR_DOWN, LR_UP = 0.1, 1 / 3, 3.0

_Loss = float | None  # None = a non-finite value the logger could not write as a number
_Step = Annotated[int, Field(ge=0, le=10**15)]  # a float's exact integers: the trend fit is safe


class TrainingLog(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    loss: list[_Loss] = Field(min_length=4, max_length=MAX_POINTS)
    steps: list[_Step] | None = Field(default=None, validate_default=True)
    val_loss: list[_Loss] | None = Field(default=None, max_length=MAX_POINTS)
    val_steps: list[_Step] | None = Field(default=None, validate_default=True)
    lr: list[float] | None = Field(default=None, validate_default=True)
    grad_norm: list[_Loss] | None = Field(default=None, validate_default=True)
    weight_decay: float | None = Field(default=None, ge=0.0, le=1.0)
    batch_size: int | None = Field(default=None, ge=1, le=10_000_000)
    dropout: float | None = Field(default=None, ge=0.0, lt=1.0)

    @field_validator("steps", "lr", "grad_norm")
    @classmethod
    def _same_length(cls, v: list[Any] | None, info: ValidationInfo) -> list[Any] | None:
        loss = info.data.get("loss")
        if v is not None and loss is not None and len(v) != len(loss):
            raise SpecError(f"must have one value per loss ({len(loss)}), got {len(v)}",
                            field=info.field_name, value=len(v),
                            allowed=f"{len(loss)} values (one per loss)")
        return v

    @field_validator("val_steps")
    @classmethod
    def _val_length(cls, v: list[int] | None, info: ValidationInfo) -> list[int] | None:
        val = info.data.get("val_loss")
        if v is not None and val is not None and len(v) != len(val):
            raise SpecError(f"must have one value per val_loss ({len(val)}), got {len(v)}",
                            field="val_steps", value=len(v),
                            allowed=f"{len(val)} values (one per val_loss)")
        return v


class Finding(BaseModel):
    kind: FindingKind
    rule_ids: list[str]
    summary: str
    evidence: dict[str, Any]
    change: dict[str, Any]


class Diagnosis(BaseModel):
    findings: list[Finding]


def _unit(xs: list[float]) -> float:
    """The power of two that brings the largest ``|x|`` into [0.5, 2) (1.0 for all zeros).

    The statistics below are relative (ratios, shares, t statistics), so they are computed in
    this unit: dividing by a power of two is exact, and differences and sums of squares of
    losses near the float maximum (1e308) can no longer overflow, nor ratios over a level near
    the smallest float."""
    top = max((abs(x) for x in xs), default=0.0)
    if top == 0:
        return 1.0
    return math.ldexp(1.0, min(math.frexp(top)[1], 1023))  # 2**1024 itself would overflow


def _smooth(xs: list[float], w: int) -> list[float]:
    """Running median over a centred window (cut short at both ends): robust to single spikes.

    The window is kept sorted as it slides, one value in and one out per point by bisection,
    instead of sorting each window afresh (a log of 100,000 points has windows of 5,000). The
    values are ``statistics.median``'s: the middle one, or the mean of the middle two. A value
    enters after the equal ones already there (``insort_right``) and leaves as the leftmost of
    its equals (``bisect_left``), which is the oldest of them, so the window is exactly what a
    stable sort of it gives, even for 0.0 and -0.0."""
    h = w // 2
    n = len(xs)
    window = sorted(xs[:h])  # xs[0 - h : 0 + h] before the first step adds xs[h]
    out: list[float] = []
    for i in range(n):
        if i + h < n:
            bisect.insort_right(window, xs[i + h])
        if i - h - 1 >= 0:
            del window[bisect.bisect_left(window, xs[i - h - 1])]
        m = len(window)
        out.append(window[m // 2] if m % 2 else (window[m // 2 - 1] + window[m // 2]) / 2)
    return out


def _lr_change(log: TrainingLog, idx: int, factor: float) -> dict[str, Any]:
    if log.lr and math.isfinite(log.lr[idx] * factor):  # an LR near 1e308 × 3 would not be
        cur = log.lr[idx]
        return {"lr": {"from": cur, "to": cur * factor}}
    return {"lr_factor": factor}


def _nan(log: TrainingLog, steps: list[int]) -> Finding | None:
    bad = [i for i, x in enumerate(log.loss) if not is_finite(x)]
    if not bad:
        return None
    i = bad[0]
    change = _lr_change(log, i, LR_DOWN_NAN)
    change["clip_norm"] = 1.0
    ev: dict[str, Any] = {"first_step": steps[i], "count": len(bad),
                          "steps": [steps[j] for j in bad[:20]]}
    if log.grad_norm and i > 0 and is_finite(log.grad_norm[i - 1]):
        ev["grad_norm_before"] = log.grad_norm[i - 1]
    return Finding(kind="nan_inf", rule_ids=["O7.5", "O7.4"],
                   summary=f"loss became NaN/Inf at step {steps[i]}: lower the LR × "
                   f"{LR_DOWN_NAN} and clip the global gradient norm at 1.0",
                   evidence=ev, change=change)


def diagnose(log: TrainingLog) -> Diagnosis:
    """Findings for one log; ``healthy`` when nothing else is found."""
    n = len(log.loss)
    steps = log.steps or list(range(n))
    findings: list[Finding] = []
    nan = _nan(log, steps)
    if nan:
        findings.append(nan)
    idx = [i for i, x in enumerate(log.loss) if is_finite(x)]
    raw = [float(log.loss[i]) for i in idx]  # type: ignore[arg-type]
    unit = _unit(raw)
    ys = [y / unit for y in raw]  # the statistics below are relative: the unit cancels out
    if len(ys) >= 4:
        w = max(3, len(ys) // 20) | 1
        sm = _smooth(ys, w)
        lo_i = min(range(len(sm)), key=sm.__getitem__)
        scale = max(abs(sm[0]), abs(sm[lo_i]), 1e-12)
        # divergence: the end is well above the best point (and the best was not the start)
        if lo_i < len(sm) - 1 and sm[-1] - sm[lo_i] > (DIVERGE_RATIO - 1) * abs(sm[lo_i]) \
                and sm[-1] > sm[0]:
            j = next(k for k in range(lo_i, len(sm)) if sm[k] - sm[lo_i]
                     > (DIVERGE_RATIO - 1) * abs(sm[lo_i]))
            findings.append(Finding(
                kind="divergence", rule_ids=["O7.5", "O7.4"],
                summary=f"loss rose from its minimum {sm[lo_i] * unit:.4g} (step "
                f"{steps[idx[lo_i]]}) to {sm[-1] * unit:.4g}: lower the LR × {LR_DOWN:.3g} and "
                "check clipping",
                evidence={"min_step": steps[idx[lo_i]], "min_loss": sm[lo_i] * unit,
                          "rise_step": steps[idx[j]], "end_loss": sm[-1] * unit},
                change={**_lr_change(log, idx[j], LR_DOWN), "clip_norm": 1.0}))
        # oscillation: successive differences flip sign often and the residual is large
        diffs = [b - a for a, b in itertools.pairwise(ys)]
        flips = sum(1 for a, b in itertools.pairwise(diffs) if a * b < 0)
        flip_share = flips / max(1, len(diffs) - 1)
        resid = statistics.pstdev([y - s for y, s in zip(ys, sm, strict=True)])
        level = max(statistics.fmean(abs(s) for s in sm), 1e-12)  # in the unit: max |y| ~ 1
        if flip_share > OSC_SIGN_FLIPS and resid / level > OSC_REL_NOISE:
            change = _lr_change(log, idx[-1], 0.5)
            if log.batch_size:
                change["batch_size"] = {"from": log.batch_size, "to": log.batch_size * 2}
            else:
                change["batch_size_factor"] = 2
            findings.append(Finding(
                kind="oscillation", rule_ids=["O7.5", "O2.2a"],
                summary=f"loss oscillates (sign flips {flip_share:.0%}, noise "
                f"{resid / level:.0%} of the level): lower the LR × 0.5, double the batch",
                evidence={"sign_flip_share": flip_share, "relative_noise": resid / level,
                          "steps": [steps[idx[0]], steps[idx[-1]]]},
                change=change))
        # plateau: little total improvement, no significant downward trend (a late window of a
        # healthy power-law curve still falls a few % — its slope stands out of the batch
        # noise), and no divergence/oscillation to explain it
        gain = (sm[0] - min(sm)) / scale
        slope_t, trend = _trend([steps[i] for i in idx], ys, resid, level)
        improving = slope_t <= -PLATEAU_SLOPE_T and trend >= PLATEAU_MIN_TREND
        if gain < PLATEAU_GAIN and not improving and not any(
                f.kind in ("divergence", "oscillation") for f in findings):
            findings.append(_plateau(log, steps, idx, [v * unit for v in sm], gain, slope_t,
                                     trend))
    over = _overfit(log, raw)
    if over:
        findings.append(over)
    if not findings:
        findings.append(Finding(
            kind="healthy", rule_ids=["O7.5", "W8"],
            summary="loss falls steadily and no rule of O7.5/W8 fires; keep the settings",
            evidence={"start_loss": raw[0] if raw else None,
                      "end_loss": raw[-1] if raw else None},
            change={}))
    return Diagnosis(findings=findings)


def _trend(xs: list[int], ys: list[float], noise: float, level: float) -> tuple[float, float]:
    """The least-squares slope of loss over steps as a t statistic against the batch noise
    (``noise``: the spread around the running median), and the fitted fall over the log
    relative to the loss level. A flat or rising fit gives (≥ 0, ≤ 0)."""
    if len(set(xs)) < 3:
        return 0.0, 0.0
    slope, _ = statistics.linear_regression(xs, ys)
    mean_x = statistics.fmean(xs)
    sxx = math.fsum((x - mean_x) ** 2 for x in xs)
    se = noise / math.sqrt(sxx)
    t = slope / se if se > 0 else (-math.inf if slope < 0 else 0.0)
    return t, -slope * (xs[-1] - xs[0]) / level


def _plateau(log: TrainingLog, steps: list[int], idx: list[int], sm: list[float], gain: float,
             slope_t: float, trend: float) -> Finding:
    evidence: dict[str, Any] = {"start_loss": sm[0], "best_loss": min(sm), "relative_gain": gain,
                                "slope_t": slope_t if math.isfinite(slope_t) else None,
                                "relative_trend": trend,
                                "steps": [steps[idx[0]], steps[idx[-1]]]}
    lrs = [log.lr[i] for i in idx] if log.lr else []
    peak = max(lrs, default=0.0)
    if peak > 0 and lrs[-1] < LR_DECAYING * peak:
        # A schedule is lowering the LR: a flattening loss is what it does, not a sign that the
        # LR is too low — raising it would undo the schedule.
        evidence["lr_peak"], evidence["lr_end"] = peak, lrs[-1]
        return Finding(
            kind="plateau", rule_ids=["O7.5", "O6.1", "O6.2"],
            summary=f"loss improved only {gain:.1%} over the log while the schedule decays the "
            f"LR from {peak:.3g} to {lrs[-1]:.3g}: a flattening loss is expected as the LR "
            "falls (O6.1), so the LR is not raised; if the loss was also flat at the peak LR, "
            "check that the warmup ends (O6.2) and the data",
            evidence=evidence, change={})
    return Finding(
        kind="plateau", rule_ids=["O7.5", "O6.2"],
        summary=f"loss improved only {gain:.1%} over the log and shows no downward trend above "
        f"the batch noise: raise the LR × {LR_UP:g} and check that the warmup ends (O6.2)",
        evidence=evidence, change=_lr_change(log, idx[-1], LR_UP))


def _overfit(log: TrainingLog, ys: list[float]) -> Finding | None:
    if not log.val_loss or len(log.val_loss) < 3:
        return None
    vsteps = log.val_steps or list(range(len(log.val_loss)))
    vals = [(s, float(v)) for s, v in zip(vsteps, log.val_loss, strict=True) if is_finite(v)]
    if len(vals) < 3:
        return None
    best_s, best_v = min(vals, key=lambda p: p[1])
    end_s, end_v = vals[-1]
    train_falling = len(ys) >= 2 and ys[-1] < ys[0]
    vunit = _unit([v for _, v in vals])  # best × 1.05 must not overflow near the float maximum
    if end_s == best_s or end_v / vunit <= best_v / vunit * (1 + OVERFIT_RISE) \
            or not train_falling:
        return None
    change: dict[str, Any] = {}
    if log.weight_decay:
        change["weight_decay"] = {"from": log.weight_decay, "to": min(1.0, log.weight_decay * 3)}
    else:
        change["weight_decay"] = {"from": log.weight_decay or 0.0, "to": 0.01}
    d = log.dropout or 0.0
    change["dropout"] = {"from": d, "to": min(0.5, d + 0.1)}
    change["stop_at_step"] = best_s
    return Finding(
        kind="overfitting", rule_ids=["W8", "O7.5", "W7d"],
        summary=f"validation loss rose from {best_v:.4g} (step {best_s}) to {end_v:.4g} while "
        "training loss kept falling: more weight decay, add dropout",
        evidence={"best_val_step": best_s, "best_val_loss": best_v, "end_val_step": end_s,
                  "end_val_loss": end_v, "train_start": ys[0], "train_end": ys[-1]},
        change=change)
