"""1cycle (Smith 2018) and warmup–stable–decay (MiniCPM 2024, DeepSeek LLM 2024): pinned at step 0,
at the phase boundaries and at the last step; validated like the other schedules; 1cycle checked
against torch's OneCycleLR step by step."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from pydantic import ValidationError

from optim_core.errors import SpecError
from optim_core.numerics import schedules as S
from optim_core.specs import schedule as SP


def test_one_cycle_pinned() -> None:
    hi, total = 0.1, 100
    s = S.one_cycle(hi, total)  # torch's defaults: pct_start 0.3, div 25, final div 1e4
    peak = S.one_cycle_peak_step(total, 0.3)
    assert peak == 29  # torch: float(0.3 * 100) - 1
    assert s(0) == hi / 25  # step 0: max / div_factor
    assert s(peak) == hi
    assert s(peak - 1) < hi and s(peak + 1) < hi
    assert s(total - 1) == hi / 25 / 1e4  # the last step: exactly the floor
    assert s(10 * total) == s(total - 1)  # clamped past the horizon
    # half-way up is the cosine midpoint
    assert S.one_cycle_peak_step(62, 0.5) == 30
    assert S.one_cycle(hi, 62, pct_start=0.5)(15) == pytest.approx((hi / 25 + hi) / 2)


def _torch_one_cycle(hi: float, total: int) -> list[float]:
    """The LR of every step under torch's OneCycleLR (pct_start 0.3, div 25, final div 1e4)."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=hi)
    ref = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=hi, total_steps=total, pct_start=0.3,
                                              cycle_momentum=False)
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        ref.step()
    return out


def test_one_cycle_matches_torch_one_cycle_lr() -> None:
    hi, total = 0.05, 57
    theirs = _torch_one_cycle(hi, total)
    # torch's phase end is float(0.3 * 57) - 1 = 16.1; ours is the integer 16 (round(17.1) - 1):
    # the same curve to within the shift of a fraction of a step
    ours = [S.one_cycle(hi, total)(t) for t in range(total)]
    assert ours[0] == pytest.approx(theirs[0], rel=1e-12)
    assert ours[-1] == pytest.approx(theirs[-1], rel=1e-9)
    assert max(abs(a - b) for a, b in zip(ours, theirs, strict=True)) < 0.02 * hi
    exact = 60  # 0.3 * 60 = 18 exactly: the phase ends agree and so does every step
    assert [S.one_cycle(hi, exact)(t) for t in range(exact)] == pytest.approx(
        _torch_one_cycle(hi, exact), rel=1e-9)


def test_one_cycle_from_range_test_bounds() -> None:
    spec = SP.OneCycleSchedule.from_range_test(cycle_max_lr=0.02, cycle_min_lr=0.002,
                                               total_steps=50)
    s = spec.build()
    assert spec.div_factor == pytest.approx(10.0)
    assert s(0) == pytest.approx(0.002) and s(S.one_cycle_peak_step(50, 0.3)) == 0.02


@pytest.mark.parametrize("decay", ["linear", "cosine", "exp", "multistep"])
def test_wsd_pinned(decay: str) -> None:
    hi, w, total, d, r = 1e-3, 10, 100, 20, 0.1
    s = S.warmup_stable_decay(hi, w, total, d, r, decay)
    assert s(0) == pytest.approx(hi / w) and s(0) > 0  # the module's warmup: never 0
    assert s(w - 1) == hi  # peak at the last warmup step
    last_stable = total - d - 1
    assert s(w) == hi and s(last_stable) == hi  # stable phase, both ends
    assert s(last_stable + 1) < hi  # the decay's first step is below the peak
    assert s(total - 1) == pytest.approx(hi * r, rel=1e-15)  # exactly min on the last step
    assert s(total - 1) == hi * r
    assert s(total + 50) == s(total - 1)
    values = [s(t) for t in range(w - 1, total)]
    assert all(b <= a for a, b in itertools.pairwise(values))
    mid = last_stable + d // 2  # u = 0.5
    expected = {"linear": hi + (hi * r - hi) * 0.5,
                "cosine": hi * r + 0.5 * (hi - hi * r),
                "exp": hi * r ** 0.5,
                "multistep": hi * math.sqrt(r)}[decay]
    assert s(mid) == pytest.approx(expected, rel=1e-12)


def test_wsd_multistep_is_deepseeks_schedule() -> None:
    # DeepSeek LLM: 100 % to 80 % of the run, 31.6 % to 90 %, 10 % after (ratio 0.1, decay 20 %)
    s = S.warmup_stable_decay(1.0, 20, 1000, 200, 0.1, "multistep")
    assert s(799) == 1.0
    assert s(800) == pytest.approx(0.316, abs=1e-3) and s(899) == s(800)
    assert s(900) == 0.1 and s(999) == 0.1


def test_wsd_without_warmup_and_without_stable_phase() -> None:
    s = S.warmup_stable_decay(0.5, 0, 10, 9, 0.0, "linear")  # W + D = T - 1: peak, then decay
    assert s(0) == 0.5 and s(9) == 0.0 and s(1) == pytest.approx(0.5 * (1 - 1 / 9))


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"decay_steps": 0}, "decay_steps"),
    ({"decay_steps": 91}, "decay_steps"),          # max(10, 1) + 91 > 100
    ({"warmup_steps": 200, "decay_steps": 1}, "total_steps"),  # the warmup outlasts the run
    ({"decay": "exp", "min_lr_ratio": 0.0}, "min_lr_ratio"),
    ({"decay": "square"}, "decay"),
    ({"min_lr_ratio": 1.5}, "min_lr_ratio"),
])
def test_wsd_refuses_bad_arguments(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"max_lr": 1e-3, "warmup_steps": 10, "total_steps": 100,
                               "decay_steps": 10, **kwargs}
    with pytest.raises(SpecError) as err:
        S.warmup_stable_decay(**args)  # type: ignore[arg-type]
    assert err.value.field == field
    with pytest.raises(ValidationError) as verr:
        SP.ScheduleSpecAdapter.validate_python({"name": "wsd", **args})
    assert verr.value.errors()[0]["loc"][-1] in (field, "decay")


def test_wsd_decay_may_start_right_after_the_peak() -> None:
    # W + D = T: the peak (step W - 1) is the one stable step, the decay takes every step after it
    s = S.warmup_stable_decay(1.0, 10, 100, 90, 0.1, "linear")
    assert s(9) == 1.0 and s(10) == pytest.approx(1.0 - 0.9 / 90) and s(99) == 0.1
    assert S.wsd_max_decay_steps(10, 100) == 90 and S.wsd_max_decay_steps(0, 10) == 9
    spec = SP.ScheduleSpecAdapter.validate_python(
        {"name": "wsd", "max_lr": 1.0, "warmup_steps": 10, "total_steps": 100, "decay_steps": 90})
    assert spec.build()(10) == s(10)


def test_one_cycle_from_range_test_refuses_bounds_that_are_not_a_cycle() -> None:
    for lo, field in ((0.0, "cycle_min_lr"), (-0.002, "cycle_min_lr"), (math.nan, "cycle_min_lr"),
                      (0.05, "cycle_min_lr")):
        with pytest.raises(SpecError) as err:
            SP.OneCycleSchedule.from_range_test(cycle_max_lr=0.02, cycle_min_lr=lo, total_steps=50)
        assert err.value.field == field
    with pytest.raises(SpecError) as err:
        SP.OneCycleSchedule.from_range_test(cycle_max_lr=math.inf, cycle_min_lr=0.002,
                                            total_steps=50)
    assert err.value.field == "cycle_max_lr"


def test_numpy_numbers_are_taken_by_the_functions_as_by_the_specs() -> None:
    np = pytest.importorskip("numpy")
    assert S.constant(np.float32(0.25))(0) == 0.25
    assert S.warmup_stable_decay(np.float64(1.0), np.int64(0), 10, 9, np.float32(0.5))(9) == 0.5


def test_nan_is_refused_as_not_finite() -> None:
    with pytest.raises(ValidationError, match="finite number"):
        SP.ScheduleSpecAdapter.validate_python({"name": "constant", "lr": math.nan})


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"total_steps": 2}, "total_steps"),
    ({"pct_start": 1.0}, "pct_start"),
    ({"pct_start": 0.0}, "pct_start"),
    ({"div_factor": 0.5}, "div_factor"),
    ({"final_div_factor": 0.0}, "final_div_factor"),
    ({"max_lr": 0.0}, "max_lr"),
])
def test_one_cycle_refuses_bad_arguments(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"max_lr": 0.1, "total_steps": 100, **kwargs}
    with pytest.raises(SpecError) as err:
        S.one_cycle(**args)  # type: ignore[arg-type]
    assert err.value.field == field
    with pytest.raises(ValidationError) as verr:
        SP.ScheduleSpecAdapter.validate_python({"name": "one_cycle", **args})
    assert verr.value.errors()[0]["loc"][-1] == field


def test_specs_build_the_functions() -> None:
    wsd = SP.ScheduleSpecAdapter.validate_python(
        {"name": "wsd", "max_lr": 1e-3, "warmup_steps": 5, "total_steps": 50, "decay_steps": 10,
         "decay": "cosine"})
    assert isinstance(wsd, SP.WarmupStableDecaySchedule)
    assert [wsd.build()(t) for t in (0, 4, 39, 49)] == pytest.approx([2e-4, 1e-3, 1e-3, 1e-4])
    oc = SP.ScheduleSpecAdapter.validate_python({"name": "one_cycle", "max_lr": 0.1,
                                                 "total_steps": 100})
    assert oc.build()(29) == 0.1 and oc.build()(99) == pytest.approx(0.1 / 25 / 1e4)
