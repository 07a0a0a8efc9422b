"""ScheduleLR drives a real torch optimizer: step t uses schedule(t) (step 0 included), per-group
lr_scale, and state_dict/load_state_dict resume on the same step."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn

from optim_core.errors import SpecError
from optim_core.numerics.schedules import warmup_cosine
from optim_core.specs.schedule import ScheduleSpecAdapter
from optim_core.training.lr_scheduler import ScheduleLR


def _train(model: nn.Module, opt: torch.optim.Optimizer, sched: ScheduleLR, steps: int,
           ) -> list[list[float]]:
    """The LRs each optimizer step actually ran with, read inside the step."""
    seen: list[list[float]] = []
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    for _ in range(steps):
        loss = model(x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        seen.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    return seen


def test_each_optimizer_step_uses_the_schedule_value_from_step_0() -> None:
    schedule = warmup_cosine(0.1, warmup_steps=3, total_steps=10)
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=123.0)  # must never be used
    sched = ScheduleLR(opt, schedule)
    assert opt.param_groups[0]["lr"] == schedule(0)  # set on construction
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "scheduler.step() before optimizer.step()" warning
        seen = _train(model, opt, sched, 12)
    assert [lrs[0] for lrs in seen] == [schedule(t) for t in range(12)]
    assert sched.last_epoch == 12 and sched.get_last_lr() == [schedule(12)]


def test_lr_scale_per_group() -> None:
    schedule = ScheduleSpecAdapter.validate_python(
        {"name": "linear", "max_lr": 0.2, "total_steps": 5}).build()
    a, b = nn.Linear(3, 1), nn.Linear(3, 1)
    opt = torch.optim.AdamW([{"params": a.parameters()},
                             {"params": b.parameters(), "lr_scale": 0.1}], lr=1.0)
    sched = ScheduleLR(opt, schedule)
    model = nn.Sequential()
    model.forward = lambda x: a(x) + b(x)  # type: ignore[method-assign]
    seen = _train(model, opt, sched, 4)
    for t, (lr_a, lr_b) in enumerate(seen):
        assert lr_a == schedule(t)
        assert lr_b == pytest.approx(0.1 * schedule(t))


def test_state_dict_round_trip_resumes_on_the_same_step() -> None:
    schedule = warmup_cosine(0.05, warmup_steps=2, total_steps=20)
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    sched = ScheduleLR(opt, schedule)
    _train(model, opt, sched, 5)
    state = sched.state_dict()
    assert "schedule" not in state and "optimizer" not in state
    assert state["last_epoch"] == 5

    model2 = nn.Linear(3, 1)
    model2.load_state_dict(model.state_dict())
    opt2 = torch.optim.SGD(model2.parameters(), lr=0.05, momentum=0.9)
    sched2 = ScheduleLR(opt2, schedule)
    # deepcopy, as a checkpoint on disk would: load_state_dict may share tensors with the source
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))
    sched2.load_state_dict(state)
    assert opt2.param_groups[0]["lr"] == schedule(5)
    rest1, rest2 = _train(model, opt, sched, 3), _train(model2, opt2, sched2, 3)
    assert rest1 == rest2 == [[schedule(t)] for t in range(5, 8)]
    assert torch.equal(model.weight, model2.weight)


def test_warmup_step_matches_torch_multisteplr_after_warmup() -> None:
    # An independent reference: once the warmup is over, Goyal's schedule is torch's MultiStepLR.
    lr, w, milestones = 0.4, 3, [5, 8, 10]
    schedule = ScheduleSpecAdapter.validate_python(
        {"name": "warmup_step", "init_lr": lr, "warmup_steps": w, "milestones": milestones}).build()
    model = nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    seen = [lrs[0] for lrs in _train(model, opt, ScheduleLR(opt, schedule), 12)]
    ref_opt = torch.optim.SGD(nn.Linear(3, 1).parameters(), lr=lr)
    ref = torch.optim.lr_scheduler.MultiStepLR(ref_opt, milestones=milestones, gamma=0.1)
    expected = []
    for _ in range(12):
        expected.append(ref_opt.param_groups[0]["lr"])
        ref_opt.step()
        ref.step()
    assert seen[:w] == pytest.approx([lr * (t + 1) / w for t in range(w)])
    assert seen[w:] == pytest.approx(expected[w:])


def test_invalid_inputs() -> None:
    opt = torch.optim.SGD([{"params": [nn.Parameter(torch.zeros(1))], "lr_scale": 0.0}], lr=0.1)
    with pytest.raises(SpecError, match="lr_scale"):
        ScheduleLR(opt, lambda t: 0.1)
    with pytest.raises(SpecError, match="schedule"):
        ScheduleLR(torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1), 0.1)  # type: ignore[arg-type]
