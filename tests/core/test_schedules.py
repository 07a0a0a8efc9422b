"""Schedules: the seed formulas (O6.2–O6.4), the step-0 / warmup-boundary / last-step conventions,
argument validation, and the pydantic specs. Expected values are computed here from the formulas
as the seeds write them, never copied from the implementation."""

from __future__ import annotations

import itertools
import math
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from optim_core.errors import SpecError
from optim_core.numerics import schedules as S
from optim_core.specs import schedule as SP


def _nonincreasing(values: list[float]) -> bool:
    return all(b <= a for a, b in itertools.pairwise(values))


def _nondecreasing(values: list[float]) -> bool:
    return all(b >= a for a, b in itertools.pairwise(values))


def test_constant() -> None:
    s = S.constant(3e-4)
    assert [s(t) for t in (0, 1, 10**6)] == [3e-4] * 3


def test_linear_warmup_never_zero_and_peaks_at_w_minus_1() -> None:
    peak, w = 1e-3, 4
    s = S.linear_warmup(peak, w)
    assert s(0) == pytest.approx(peak / w)  # (t+1)/W: the first update is not wasted at LR 0
    assert s(0) > 0
    assert [s(t) for t in range(w)] == pytest.approx([peak * (t + 1) / w for t in range(w)])
    assert s(w - 1) == peak  # exactly, not peak*(1 - ulp)
    assert s(w) == peak and s(10 * w) == peak
    assert _nondecreasing([s(t) for t in range(3 * w)])
    assert S.linear_warmup(peak, 0)(0) == peak  # W = 0: no warmup


def test_step_decay_matches_o6_3a() -> None:
    eta0, gamma, size = 0.1, 0.5, 3
    s = S.step_decay(eta0, gamma, size)
    for t in range(20):
        assert s(t) == pytest.approx(eta0 * gamma ** math.floor(t / size))
    assert s(size - 1) == eta0 and s(size) == pytest.approx(eta0 * gamma)
    assert _nonincreasing([s(t) for t in range(20)])


def test_cosine_matches_o6_3b_and_ends_at_min_on_last_step() -> None:
    hi, lo, total = 1e-2, 1e-4, 11
    s = S.cosine_annealing(hi, total, lo)
    horizon = total - 1
    for t in range(total):
        assert s(t) == pytest.approx(lo + 0.5 * (hi - lo) * (1 + math.cos(math.pi * t / horizon)))
    assert s(0) == hi
    assert s(horizon // 2) == pytest.approx((hi + lo) / 2)
    assert s(total - 1) == lo  # exactly
    assert s(total) == lo and s(10 * total) == lo  # clamps past the end
    assert _nonincreasing([s(t) for t in range(2 * total)])


def test_linear_decay_matches_o6_3c() -> None:
    hi, total = 0.5, 6
    s = S.linear_decay(hi, total)
    horizon = total - 1
    assert [s(t) for t in range(total)] == pytest.approx([hi * (1 - t / horizon) for t in range(total)])
    assert s(0) == hi and s(total - 1) == 0.0 and s(total + 5) == 0.0
    s2 = S.linear_decay(hi, total, end_lr=0.1)
    assert s2(total - 1) == 0.1 and _nonincreasing([s2(t) for t in range(2 * total)])


def test_inverse_sqrt_without_warmup_is_defined_at_zero() -> None:
    eta0 = 1e-3
    s = S.inverse_sqrt(eta0)
    assert s(0) == eta0  # η0/√(t+1): O6.3d's η0/√t shifted so step 0 is finite
    for t in (1, 3, 99):
        assert s(t) == pytest.approx(eta0 / math.sqrt(t + 1))
    assert _nonincreasing([s(t) for t in range(50)])


def test_inverse_sqrt_with_warmup_is_continuous_at_the_peak() -> None:
    eta0, w = 1e-3, 16
    s = S.inverse_sqrt(eta0, warmup_steps=w)
    assert s(0) == pytest.approx(eta0 / w)
    assert s(w - 1) == eta0
    assert s(w) == pytest.approx(eta0 * math.sqrt(w) / math.sqrt(w + 1))
    assert s(w) < s(w - 1)
    assert _nondecreasing([s(t) for t in range(w)])
    assert _nonincreasing([s(t) for t in range(w - 1, 10 * w)])


def test_warmup_cosine_boundaries_o6_4() -> None:
    hi, w, total = 3e-4, 10, 110
    s = S.warmup_cosine(hi, w, total)  # min_lr = 0.1 · max by default (O6.4)
    lo = 0.1 * hi
    assert s(0) == pytest.approx(hi / w) and s(0) > 0
    assert s(w - 1) == hi
    horizon = total - w  # the cosine runs from the peak (t = W-1) to the last step (t = total-1)
    expected_w = lo + 0.5 * (hi - lo) * (1 + math.cos(math.pi * 1 / horizon))
    assert s(w) == pytest.approx(expected_w) and s(w) < hi
    assert s(total - 1) == pytest.approx(lo)
    assert s(total - 1) == lo
    assert s(total + 100) == lo
    values = [s(t) for t in range(total + 10)]
    assert _nondecreasing(values[:w]) and _nonincreasing(values[w - 1:])
    assert max(values) == hi and min(values) == pytest.approx(hi / w)


def test_warmup_cosine_without_warmup_equals_cosine_annealing() -> None:
    a = S.warmup_cosine(1e-3, 0, 50, min_lr_ratio=0.2)
    b = S.cosine_annealing(1e-3, 50, min_lr=2e-4)
    assert [a(t) for t in range(60)] == pytest.approx([b(t) for t in range(60)])


def test_warmup_linear_boundaries_o6_2_o6_3c() -> None:
    hi, lo, w, total = 5e-5, 1e-6, 10, 110
    s = S.warmup_linear(hi, w, total, end_lr=lo)
    assert s(0) == pytest.approx(hi / w) and s(0) > 0  # (t+1)/W: never 0 on the first update
    assert s(w - 1) == hi  # the peak, exactly, on the last warmup step
    horizon = total - w  # linear from the peak (t = W-1) to the last step (t = total-1)
    assert s(w) == pytest.approx(lo + (hi - lo) * (1 - 1 / horizon)) and s(w) < hi
    mid = w - 1 + horizon // 2
    assert s(mid) == pytest.approx((hi + lo) / 2)  # O6.3c is a straight line: half-way, half-way
    assert s(total - 2) == pytest.approx(lo + (hi - lo) / horizon)
    assert s(total - 1) == lo  # exactly
    assert s(total) == lo and s(10 * total) == lo  # clamps past the end
    values = [s(t) for t in range(total + 10)]
    assert _nondecreasing(values[:w]) and _nonincreasing(values[w - 1:])
    # BERT/HF default: decay to 0, so only the last step is at LR 0
    z = S.warmup_linear(hi, w, total)
    assert z(total - 1) == 0.0 and all(z(t) > 0 for t in range(total - 1))


def test_warmup_linear_without_warmup_equals_linear_decay() -> None:
    a = S.warmup_linear(1e-3, 0, 50, end_lr=2e-4)
    b = S.linear_decay(1e-3, 50, end_lr=2e-4)
    assert [a(t) for t in range(60)] == pytest.approx([b(t) for t in range(60)])


def test_warmup_step_goyal_milestones() -> None:
    # Goyal et al. 2017 in steps: 10 steps per epoch, warmup 5 epochs, ×0.1 at epochs 30, 60, 80
    # of 90. Expected values from the paper's description, not from the implementation.
    lr, spe = 3.2, 10
    w, ms, total = 5 * spe, (30 * spe, 60 * spe, 80 * spe), 90 * spe
    s = S.warmup_step(lr, w, 0.1, milestones=ms)
    assert s(0) == pytest.approx(lr / w) and s(0) > 0
    assert s(w - 1) == lr  # the peak, exactly, on the last warmup step
    assert s(w) == lr and s(ms[0] - 1) == lr  # flat until the first milestone
    assert s(ms[0]) == pytest.approx(lr * 0.1)  # the decay takes effect on the milestone itself
    assert s(ms[1] - 1) == pytest.approx(lr * 0.1) and s(ms[1]) == pytest.approx(lr * 0.01)
    assert s(ms[2]) == pytest.approx(lr * 0.001)
    assert s(total - 1) == pytest.approx(lr * 0.001)  # last step
    assert s(10 * total) == s(total - 1)  # no further decay after the last milestone
    values = [s(t) for t in range(total)]
    assert _nondecreasing(values[:w]) and _nonincreasing(values[w - 1:])
    assert sorted(set(values[w:])) == pytest.approx([lr * 1e-3, lr * 1e-2, lr * 0.1, lr])


def test_warmup_step_with_step_size_is_o6_3a_after_warmup() -> None:
    eta0, gamma, size, w = 0.4, 0.5, 6, 3
    s = S.warmup_step(eta0, w, gamma, step_size=size)
    assert [s(t) for t in range(w)] == pytest.approx([eta0 * (t + 1) / w for t in range(w)])
    for t in range(w, 40):
        assert s(t) == pytest.approx(eta0 * gamma ** math.floor(t / size))  # absolute t, as O6.3a
    assert s(size - 1) == eta0 and s(size) == pytest.approx(eta0 * gamma)
    # without warmup it is exactly the seed's step decay
    a, b = S.warmup_step(eta0, 0, gamma, step_size=size), S.step_decay(eta0, gamma, size)
    assert [a(t) for t in range(40)] == [b(t) for t in range(40)]


@settings(max_examples=60, deadline=None)
@given(hi=st.floats(1e-6, 1.0), w=st.integers(0, 50), extra=st.integers(1, 200),
       ratio=st.floats(0.0, 1.0))
def test_warmup_cosine_properties(hi: float, w: int, extra: int, ratio: float) -> None:
    total = w + extra
    if total < 2:
        total = 2
    s = S.warmup_cosine(hi, w, total, ratio)
    values = [s(t) for t in range(total + 3)]
    assert all(v > 0 for v in values[: total - 1])  # only the end value may be 0 (ratio 0)
    assert all(v >= hi * ratio for v in values[max(w - 1, 0):])  # never below min_lr after the peak
    assert s(max(w - 1, 0)) == hi
    assert s(total - 1) == pytest.approx(hi * ratio, rel=1e-12, abs=1e-18)
    assert _nonincreasing(values[max(w - 1, 0):])
    assert all(v <= hi for v in values)


@pytest.mark.parametrize(
    ("factory", "kwargs", "field"),
    [
        (S.constant, {"lr": 0.0}, "lr"),
        (S.constant, {"lr": float("nan")}, "lr"),
        (S.linear_warmup, {"peak_lr": 1e-3, "warmup_steps": -1}, "warmup_steps"),
        (S.linear_warmup, {"peak_lr": 1e-3, "warmup_steps": 2.5}, "warmup_steps"),
        (S.step_decay, {"init_lr": 0.1, "gamma": 1.5, "step_size": 10}, "gamma"),
        (S.step_decay, {"init_lr": 0.1, "gamma": 0.5, "step_size": 0}, "step_size"),
        (S.cosine_annealing, {"max_lr": 0.1, "total_steps": 1}, "total_steps"),
        (S.cosine_annealing, {"max_lr": 0.1, "total_steps": 10, "min_lr": 0.2}, "min_lr"),
        (S.linear_decay, {"max_lr": 11.0, "total_steps": 10}, "max_lr"),
        (S.inverse_sqrt, {"init_lr": 1e-3, "warmup_steps": True}, "warmup_steps"),
        (S.warmup_cosine, {"max_lr": 1e-3, "warmup_steps": 10, "total_steps": 10}, "total_steps"),
        (S.warmup_cosine, {"max_lr": 1e-3, "warmup_steps": 1, "total_steps": 10,
                           "min_lr_ratio": 1.5}, "min_lr_ratio"),
        (S.warmup_linear, {"max_lr": 1e-3, "warmup_steps": 10, "total_steps": 10}, "total_steps"),
        (S.warmup_linear, {"max_lr": 1e-3, "warmup_steps": 1, "total_steps": 10,
                           "end_lr": 2e-3}, "end_lr"),
        (S.warmup_step, {"init_lr": 0.1, "warmup_steps": 5, "gamma": 0.1}, "milestones"),
        (S.warmup_step, {"init_lr": 0.1, "warmup_steps": 5, "gamma": 0.1, "step_size": 30,
                         "milestones": [30]}, "milestones"),
        (S.warmup_step, {"init_lr": 0.1, "warmup_steps": 5, "gamma": 0.1,
                         "milestones": [60, 30]}, "milestones"),
        (S.warmup_step, {"init_lr": 0.1, "warmup_steps": 5, "gamma": 0.1,
                         "milestones": []}, "milestones"),
        (S.warmup_step, {"init_lr": 0.1, "warmup_steps": 0, "gamma": 0.1,
                         "milestones": [0, 5]}, "milestones[0]"),
        (S.warmup_step, {"init_lr": 0.1, "warmup_steps": 50, "gamma": 0.1,
                         "milestones": [30, 60]}, "milestones"),
        (S.warmup_step, {"init_lr": 0.1, "warmup_steps": 50, "gamma": 0.1,
                         "step_size": 30}, "step_size"),
        (S.warmup_step, {"init_lr": 0.1, "warmup_steps": 5, "gamma": 0.0,
                         "step_size": 30}, "gamma"),
    ],
)
def test_invalid_arguments_name_field_and_range(factory, kwargs, field) -> None:
    with pytest.raises(SpecError) as err:
        factory(**kwargs)
    assert err.value.field == field
    assert err.value.allowed
    assert field in str(err.value)


def test_negative_or_non_integer_step_is_refused() -> None:
    s = S.constant(1e-3)
    with pytest.raises(SpecError, match="step"):
        s(-1)
    with pytest.raises(SpecError, match="step"):
        s(1.5)  # type: ignore[arg-type]


def test_sample_includes_both_ends_and_is_evenly_spaced() -> None:
    sched = S.cosine_annealing(1.0, 101)
    pts = S.sample(sched, 101, 11)
    assert [t for t, _ in pts] == list(range(0, 101, 10))
    assert pts[0] == (0, 1.0) and pts[-1] == (100, 0.0)
    assert all(lr == sched(t) for t, lr in pts)
    assert [t for t, _ in S.sample(sched, 5, 50)] == [0, 1, 2, 3, 4]  # more points than steps
    assert S.sample(sched, 1, 5) == [(0, 1.0)]
    with pytest.raises(SpecError, match="n_points"):
        S.sample(sched, 10, 1)


@pytest.mark.parametrize(
    ("data", "factory_args"),
    [
        ({"name": "constant", "lr": 0.1}, (S.constant, (0.1,))),
        ({"name": "linear_warmup", "peak_lr": 0.1, "warmup_steps": 5},
         (S.linear_warmup, (0.1, 5))),
        ({"name": "step", "init_lr": 0.1, "gamma": 0.5, "step_size": 3}, (S.step_decay, (0.1, 0.5, 3))),
        ({"name": "cosine", "max_lr": 0.1, "total_steps": 20, "min_lr": 0.01},
         (S.cosine_annealing, (0.1, 20, 0.01))),
        ({"name": "linear", "max_lr": 0.1, "total_steps": 20}, (S.linear_decay, (0.1, 20))),
        ({"name": "inverse_sqrt", "init_lr": 0.1, "warmup_steps": 4}, (S.inverse_sqrt, (0.1, 4))),
        ({"name": "warmup_cosine", "max_lr": 0.1, "warmup_steps": 4, "total_steps": 20},
         (S.warmup_cosine, (0.1, 4, 20))),
        ({"name": "warmup_linear", "max_lr": 0.1, "warmup_steps": 4, "total_steps": 20,
          "end_lr": 0.01}, (S.warmup_linear, (0.1, 4, 20, 0.01))),
        ({"name": "warmup_step", "init_lr": 0.1, "warmup_steps": 2, "gamma": 0.5,
          "milestones": [5, 9, 15]}, (S.warmup_step, (0.1, 2, 0.5, None, [5, 9, 15]))),
        ({"name": "warmup_step", "init_lr": 0.1, "warmup_steps": 2, "step_size": 4},
         (S.warmup_step, (0.1, 2, 0.1, 4))),
    ],
)
def test_spec_builds_the_same_schedule_as_the_factory(data, factory_args) -> None:
    spec = SP.ScheduleSpecAdapter.validate_python(data)
    assert spec.name == data["name"]
    assert spec.rule_ids and all(r.startswith("O6") for r in spec.rule_ids)
    factory, args = factory_args
    built, direct = spec.build(), factory(*args)
    assert [built(t) for t in range(25)] == [direct(t) for t in range(25)]
    # round-trips through JSON (the API's wire format)
    again = SP.ScheduleSpecAdapter.validate_json(spec.model_dump_json())
    assert again == spec


def test_warmup_cosine_spec_defaults_and_rule_ids() -> None:
    spec = SP.ScheduleSpecAdapter.validate_python(
        {"name": "warmup_cosine", "max_lr": 3e-4, "warmup_steps": 2000, "total_steps": 100_000})
    assert spec.min_lr_ratio == 0.1
    assert spec.rule_ids == ("O6.2", "O6.3b", "O6.4")


def test_composite_spec_rule_ids() -> None:
    lin = SP.ScheduleSpecAdapter.validate_python(
        {"name": "warmup_linear", "max_lr": 2e-5, "warmup_steps": 100, "total_steps": 10_000})
    step = SP.ScheduleSpecAdapter.validate_python(
        {"name": "warmup_step", "init_lr": 0.1, "warmup_steps": 0, "milestones": [30, 60, 80]})
    assert lin.end_lr == 0.0 and lin.rule_ids == ("O6.2", "O6.3c")
    assert step.gamma == 0.1 and step.milestones == (30, 60, 80)
    assert step.rule_ids == ("O6.2", "O6.3a")


@pytest.mark.parametrize(
    ("data", "loc_field"),
    [
        ({"name": "cosine", "max_lr": 0, "total_steps": 10}, "max_lr"),
        ({"name": "cosine", "max_lr": 0.1, "total_steps": 10, "min_lr": 0.5}, "min_lr"),
        ({"name": "warmup_cosine", "max_lr": 0.1, "warmup_steps": 10, "total_steps": 5},
         "total_steps"),
        ({"name": "step", "init_lr": 0.1, "gamma": 2.0, "step_size": 3}, "gamma"),
        ({"name": "linear", "max_lr": 0.1, "total_steps": 10, "warmup": 3}, "warmup"),
        ({"name": "warmup_linear", "max_lr": 0.1, "warmup_steps": 10, "total_steps": 10},
         "total_steps"),
        ({"name": "warmup_linear", "max_lr": 0.1, "warmup_steps": 1, "total_steps": 10,
          "end_lr": 0.2}, "end_lr"),
        ({"name": "warmup_step", "init_lr": 0.1, "warmup_steps": 5}, "milestones"),
        ({"name": "warmup_step", "init_lr": 0.1, "warmup_steps": 5, "milestones": [9, 9]},
         "milestones"),
        ({"name": "warmup_step", "init_lr": 0.1, "warmup_steps": 5, "milestones": [3]},
         "milestones"),
        ({"name": "warmup_step", "init_lr": 0.1, "warmup_steps": 5, "step_size": 2}, "step_size"),
    ],
)
def test_spec_errors_are_located_at_the_field(data, loc_field) -> None:
    with pytest.raises(ValidationError) as err:
        SP.ScheduleSpecAdapter.validate_python(data)
    locs = [e["loc"] for e in err.value.errors()]
    assert any(loc_field in loc for loc in locs), locs


def test_unknown_schedule_name_is_refused() -> None:
    with pytest.raises(ValidationError) as err:
        SP.ScheduleSpecAdapter.validate_python({"name": "cyclic", "lr": 0.1})
    assert err.value.errors()[0]["type"] == "union_tag_invalid"


def test_schedules_module_does_not_import_torch() -> None:
    code = ("import sys, optim_core.numerics.schedules, optim_core.specs.optimizer\n"
            "sys.exit(1 if any(m == 'torch' or m.startswith('torch.') for m in sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
