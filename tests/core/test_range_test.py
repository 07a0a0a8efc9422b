"""The LR range test (measuring): sweep, smoothing, stop rules, state restore, hooks, AMP."""

from __future__ import annotations

import copy
import json
import math
import random
from typing import Any

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from torch import nn

from optim_core.errors import Cancelled, SpecError, TrainingError
from optim_core.numerics.suggest import smooth
from optim_core.specs.optimizer import OptimizerSpec
from optim_core.specs.range_test import ProgressEvent, RangeTestConfig
from optim_core.training.param_groups import build_param_groups
from optim_core.training.range_test import _make_optimizer, lr_range_test

from .host_reads import HostReads

NO_STOP = {"stop_on_divergence": False}


def _data(n_batches: int = 8, bs: int = 32, seed: int = 0) -> list[tuple[torch.Tensor, ...]]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n_batches * bs, 10, generator=g)
    y = (x[:, :3].sum(1) > 0).long()
    return [(x[i:i + bs], y[i:i + bs]) for i in range(0, len(x), bs)]


def _model(seed: int = 0, bn: bool = False) -> nn.Module:
    torch.manual_seed(seed)
    layers: list[nn.Module] = [nn.Linear(10, 16)]
    if bn:
        layers.append(nn.BatchNorm1d(16))
    layers += [nn.ReLU(), nn.Dropout(0.1), nn.Linear(16, 2)]
    return nn.Sequential(*layers)


# ---------------------------------------------------------------------------- config


def test_config_defaults_and_bounds() -> None:
    c = RangeTestConfig()
    assert (c.start_lr, c.end_lr, c.num_steps, c.mode, c.smooth_beta) == (1e-7, 10.0, 100,
                                                                            "exp", 0.98)
    with pytest.raises(ValidationError, match="num_steps"):
        RangeTestConfig(num_steps=5)
    with pytest.raises(ValidationError, match="start_lr"):
        RangeTestConfig(start_lr=0.0)
    with pytest.raises(ValidationError, match="extra"):
        RangeTestConfig(foo=1)  # type: ignore[call-arg]
    with pytest.raises(ValidationError) as err:
        RangeTestConfig(start_lr=1e-2, end_lr=1e-3)
    assert err.value.errors()[0]["loc"] == ("end_lr",)


def test_sweeps_reach_both_ends() -> None:
    exp = RangeTestConfig(start_lr=1e-6, end_lr=1.0, num_steps=13)
    lrs = [exp.lr_at(i) for i in range(13)]
    assert lrs[0] == 1e-6 and lrs[-1] == pytest.approx(1.0)
    ratios = np.array(lrs[1:]) / np.array(lrs[:-1])
    assert np.allclose(ratios, ratios[0])
    lin = RangeTestConfig(start_lr=0.1, end_lr=1.0, num_steps=10, mode="linear")
    lin_lrs = [lin.lr_at(i) for i in range(10)]
    assert np.allclose(np.diff(lin_lrs), 0.1) and lin_lrs[-1] == pytest.approx(1.0)


# ---------------------------------------------------------------------------- the sweep


def test_optimizer_sees_the_sweep_lrs_and_the_data_is_cycled() -> None:
    seen: list[float] = []
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    data = _data(n_batches=3)
    cfg = RangeTestConfig(start_lr=1e-4, end_lr=1e-1, num_steps=10, **NO_STOP)

    def forward(m: nn.Module, batch: Any) -> torch.Tensor:
        seen.append(opt.param_groups[0]["lr"])
        return nn.functional.cross_entropy(m(batch[0]), batch[1])

    res = lr_range_test(model, data, None, optimizer=opt, config=cfg, forward=forward)
    assert res.stop_reason == "completed" and res.steps_run == 10  # 3 batches, cycled
    assert seen == pytest.approx([cfg.lr_at(i) for i in range(10)])
    assert res.lrs == pytest.approx(seen)
    assert opt.param_groups[0]["lr"] == 0.5  # restored


def test_group_lr_ratios_are_kept() -> None:
    model = _model()
    opt = torch.optim.SGD([{"params": model[0].parameters(), "lr": 1.0},
                           {"params": model[-1].parameters(), "lr": 0.1}])
    ratios: list[float] = []

    def forward(m: nn.Module, batch: Any) -> torch.Tensor:
        ratios.append(opt.param_groups[1]["lr"] / opt.param_groups[0]["lr"])
        return nn.functional.cross_entropy(m(batch[0]), batch[1])

    lr_range_test(model, _data(), None, optimizer=opt, forward=forward,
                  config=RangeTestConfig(num_steps=10, **NO_STOP))
    assert ratios == pytest.approx([0.1] * 10)


def _recording_group_lrs(opt: torch.optim.Optimizer, seen: list[list[Any]]) -> Any:
    """A forward hook that records every group's lr (as stored) at each step."""

    def forward(m: nn.Module, batch: Any) -> torch.Tensor:
        seen.append([g["lr"] for g in opt.param_groups])
        return nn.functional.cross_entropy(m(batch[0]), batch[1])

    return forward


def test_a_group_frozen_by_lr_0_stays_frozen_and_ratios_use_the_largest_lr() -> None:
    model = _model()
    frozen_before = model[0].weight.detach().clone()
    opt = torch.optim.SGD([{"params": model[0].parameters(), "lr": 0.0},
                           {"params": [model[-1].bias], "lr": 0.01},
                           {"params": [model[-1].weight], "lr": 0.04}])  # the largest
    seen: list[list[Any]] = []
    record = _recording_group_lrs(opt, seen)
    frozen_during: list[torch.Tensor] = []

    def forward(m: nn.Module, batch: Any) -> torch.Tensor:
        frozen_during.append(m[0].weight.detach().clone())
        return record(m, batch)

    res = lr_range_test(model, _data(), None, optimizer=opt, forward=forward,
                        config=RangeTestConfig(start_lr=1e-3, end_lr=1.0, num_steps=10, **NO_STOP))
    assert [s[0] for s in seen] == [0.0] * 10  # never swept
    assert [s[2] for s in seen] == pytest.approx(res.lrs)  # the largest gets the sweep LR
    assert [s[1] for s in seen] == pytest.approx([lr / 4 for lr in res.lrs])
    assert all(torch.equal(w, frozen_before) for w in frozen_during)
    assert [g["lr"] for g in opt.param_groups] == [0.0, 0.01, 0.04]  # restored


def test_tensor_lrs_are_read_as_floats() -> None:
    model = _model()
    opt = torch.optim.SGD([{"params": model[0].parameters(), "lr": torch.tensor(0.5)},
                           {"params": model[-1].parameters(), "lr": 0.05}])
    seen: list[list[Any]] = []
    lr_range_test(model, _data(), None, optimizer=opt,
                  forward=_recording_group_lrs(opt, seen),
                  config=RangeTestConfig(num_steps=10, **NO_STOP))
    assert all(type(lr) is float for step in seen for lr in step)
    assert [b / a for a, b in seen] == pytest.approx([0.1] * 10)


def test_all_groups_at_lr_0_is_a_spec_error() -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.0)
    with pytest.raises(SpecError, match="lr 0") as err:
        lr_range_test(model, _data(), nn.functional.cross_entropy, optimizer=opt)
    assert err.value.field == "optimizer"


@pytest.mark.parametrize("ready", [False, True])
def test_unmaterialised_lazy_modules_are_a_spec_error(ready: bool) -> None:
    model = nn.Sequential(nn.Linear(10, 4), nn.ReLU(), nn.LazyLinear(2))
    opt = torch.optim.SGD(model.parameters(), lr=0.1) if ready else None
    with pytest.raises(SpecError, match="forward pass") as err:
        lr_range_test(model, _data(), nn.functional.cross_entropy, optimizer=opt)
    assert err.value.field == "model" and "2.weight" in str(err.value)
    model(_data()[0][0])  # materialised: the test runs
    res = lr_range_test(model, _data(), nn.functional.cross_entropy,
                        config=RangeTestConfig(num_steps=10, **NO_STOP))
    assert res.steps_run == 10


def test_smoothing_matches_suggest_smooth() -> None:
    res = lr_range_test(_model(), _data(), nn.functional.cross_entropy,
                        config=RangeTestConfig(num_steps=20, **NO_STOP))
    assert res.losses == pytest.approx(smooth(res.raw_losses, 0.98), rel=1e-12)
    assert res.losses[0] == res.raw_losses[0]


def test_default_optimizer_is_adamw_and_to_dict_is_plain_json() -> None:
    res = lr_range_test(_model(), _data(), nn.functional.cross_entropy)
    d = json.loads(json.dumps(res.to_dict(), allow_nan=False))
    for key in ("lrs", "losses", "raw_losses", "stop_reason", "steps_run", "suggestions",
                "seconds", "device"):
        assert key in d
    assert d["device"] == "cpu" and d["stop_reason"] in {"completed", "diverged", "non_finite"}
    assert len(d["lrs"]) == len(d["losses"]) == len(d["raw_losses"]) <= d["steps_run"]
    assert 0.0 <= d["suggestions"]["confidence"] <= 1.0


def test_dict_batches_through_the_forward_hook() -> None:
    data = [{"x": x, "y": y} for x, y in _data()]
    res = lr_range_test(_model(), data, None,
                        forward=lambda m, b: nn.functional.cross_entropy(m(b["x"]), b["y"]),
                        config=RangeTestConfig(num_steps=10, **NO_STOP))
    assert res.steps_run == 10 and all(math.isfinite(v) for v in res.raw_losses)


def test_bad_batches_and_exhausted_generators_are_spec_errors() -> None:
    with pytest.raises(SpecError, match="inputs, targets"):
        lr_range_test(_model(), [torch.randn(4, 10)] * 3, nn.functional.cross_entropy,
                      config=RangeTestConfig(num_steps=10))
    # A 2-row tensor and a 2-key dict both unpack into two things; neither is (inputs, targets).
    two_rows = [torch.randn(2, 10)] * 3
    a_dict = [{"x": x, "y": y} for x, y in _data()]
    triple = [(x, y, y) for x, y in _data()]
    for bad in (two_rows, a_dict, triple):
        with pytest.raises(SpecError, match="forward=") as info:
            lr_range_test(_model(), bad, lambda o, y: o.float().mean(),
                          config=RangeTestConfig(num_steps=10))
        assert info.value.field == "train_data"
    one_shot = (b for b in _data(n_batches=2))
    with pytest.raises(SpecError, match="re-iterable"):
        lr_range_test(_model(), one_shot, nn.functional.cross_entropy,
                      config=RangeTestConfig(num_steps=10))
    with pytest.raises(SpecError, match="loss_fn"):
        lr_range_test(_model(), _data(), None)


def test_gradient_accumulation_consumes_micro_batches_and_averages_losses() -> None:
    # The loss equals the batch's mean input (+ 0 x model output): its value is known per batch.
    data = [(torch.full((4, 10), float(i)), torch.zeros(4, dtype=torch.long)) for i in range(6)]
    calls = []

    def forward(m: nn.Module, batch: Any) -> torch.Tensor:
        calls.append(1)
        return m(batch[0]).sum() * 0.0 + batch[0].mean()

    res = lr_range_test(_model(), data, None, forward=forward,
                        config=RangeTestConfig(num_steps=10, accumulation_steps=2, **NO_STOP))
    assert len(calls) == 20
    # steps read batches (0,1), (2,3), (4,5), (0,1), ...: mean 0.5, 2.5, 4.5, 0.5, ...
    assert res.raw_losses[:4] == pytest.approx([0.5, 2.5, 4.5, 0.5])


def _first_update(config: RangeTestConfig, data: list[tuple[torch.Tensor, torch.Tensor]],
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(weights before, weights after) the first optimizer step of a plain-SGD linear MSE sweep,
    read from inside the forward hook (the test restores the weights afterwards)."""
    torch.manual_seed(0)
    model = nn.Linear(10, 1, bias=False)
    seen: list[torch.Tensor] = []

    def forward(m: nn.Module, batch: Any) -> torch.Tensor:
        seen.append(m.weight.detach().clone())
        return nn.functional.mse_loss(m(batch[0]), batch[1])

    lr_range_test(model, data, None, forward=forward, config=config,
                  optimizer=torch.optim.SGD(model.parameters(), lr=1.0))
    return seen[0], seen[config.accumulation_steps]  # first forward of the second step


def _regression_batches(n: int, bs: int = 8) -> list[tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(5)
    x = torch.randn(n * bs, 10, generator=g)
    y = x[:, :1] * 2.0 + 1.0
    return [(x[i:i + bs], y[i:i + bs]) for i in range(0, len(x), bs)]


def test_gradient_accumulation_update_equals_the_big_batch_update() -> None:
    data = _regression_batches(4)
    cfg = RangeTestConfig(start_lr=0.1, end_lr=1.0, num_steps=10, accumulation_steps=2, **NO_STOP)
    w0, w1 = _first_update(cfg, data)
    # One step on the two micro-batches together (equal sizes: the mean of their mean losses).
    big = nn.Linear(10, 1, bias=False)
    with torch.no_grad():
        big.weight.copy_(w0)
    x, y = torch.cat([data[0][0], data[1][0]]), torch.cat([data[0][1], data[1][1]])
    nn.functional.mse_loss(big(x), y).backward()
    assert big.weight.grad is not None and big.weight.grad.norm() > 0.1  # a real gradient
    expected = w0 - cfg.start_lr * big.weight.grad
    torch.testing.assert_close(w1, expected, rtol=1e-5, atol=1e-6)


def test_max_grad_norm_clips_the_update() -> None:
    data = _regression_batches(4)
    cfg = RangeTestConfig(start_lr=0.1, end_lr=1.0, num_steps=10, max_grad_norm=1e-3, **NO_STOP)
    w0, w1 = _first_update(cfg, data)
    # Plain SGD: the step is lr x the clipped gradient, whose norm is exactly max_grad_norm.
    assert float((w1 - w0).norm()) == pytest.approx(cfg.start_lr * 1e-3, rel=1e-4)


def test_linear_sweep_feeds_evenly_spaced_lrs() -> None:
    model = _model()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    seen: list[float] = []

    def forward(m: nn.Module, batch: Any) -> torch.Tensor:
        seen.append(opt.param_groups[0]["lr"])
        return nn.functional.cross_entropy(m(batch[0]), batch[1])

    cfg = RangeTestConfig(start_lr=1e-3, end_lr=0.1, num_steps=12, mode="linear", **NO_STOP)
    res = lr_range_test(model, _data(), None, optimizer=opt, config=cfg, forward=forward)
    assert seen == pytest.approx(np.linspace(1e-3, 0.1, 12).tolist(), rel=1e-12)
    assert res.lrs == pytest.approx(seen) and res.config.mode == "linear"


# ---------------------------------------------------------------------------- stop rules


def _diverging_problem() -> tuple[nn.Module, list[tuple[torch.Tensor, ...]]]:
    return _model(seed=1), _data(seed=1)


def test_diverges_and_stops_early() -> None:
    model, data = _diverging_problem()
    res = lr_range_test(model, data, nn.functional.cross_entropy,
                        optimizer=torch.optim.SGD(model.parameters(), lr=1.0),
                        config=RangeTestConfig(start_lr=1e-3, end_lr=1e4, num_steps=100))
    assert res.stop_reason in {"diverged", "non_finite"}
    assert len(res.lrs) < 100


@pytest.mark.parametrize("shift", [-100.0, 50.0])
def test_shifted_loss_stops_at_the_same_step(shift: float) -> None:
    cfg = RangeTestConfig(start_lr=1e-4, end_lr=1e3, num_steps=100, check_every=7)

    def run(offset: float) -> Any:
        model, data = _diverging_problem()
        return lr_range_test(model, data,
                             lambda out, y: nn.functional.cross_entropy(out, y) + offset,
                             optimizer=torch.optim.SGD(model.parameters(), lr=1.0,
                                                       momentum=0.9), config=cfg)

    base, moved = run(0.0), run(shift)
    assert base.stop_reason == "diverged"
    assert moved.stop_reason == base.stop_reason
    assert len(moved.lrs) == len(base.lrs) < 100
    assert moved.suggestions.recommended == pytest.approx(base.suggestions.recommended)


def test_stop_step_does_not_depend_on_check_every() -> None:
    def run(check_every: int) -> Any:
        model, data = _diverging_problem()
        return lr_range_test(model, data, nn.functional.cross_entropy,
                             optimizer=torch.optim.SGD(model.parameters(), lr=1.0),
                             config=RangeTestConfig(start_lr=1e-3, end_lr=1e3,
                                                    check_every=check_every))

    a, b = run(1), run(10)
    assert a.lrs == b.lrs and a.losses == b.losses and a.stop_reason == b.stop_reason
    assert a.steps_run <= b.steps_run


def test_nan_loss_stops_at_once() -> None:
    step = {"n": 0}

    def forward(m: nn.Module, batch: Any) -> torch.Tensor:
        step["n"] += 1
        loss = nn.functional.cross_entropy(m(batch[0]), batch[1])
        return loss * float("nan") if step["n"] == 13 else loss

    res = lr_range_test(_model(), _data(), None, forward=forward,
                        config=RangeTestConfig(num_steps=50, check_every=5, **NO_STOP))
    assert res.stop_reason == "non_finite"
    assert len(res.lrs) == 13 and res.steps_run == 15  # noticed at the next check
    d = res.to_dict()
    assert d["raw_losses"][-1] is None and d["losses"][-1] is None
    json.dumps(d, allow_nan=False)


def test_non_finite_first_loss_is_a_training_error() -> None:
    with pytest.raises(TrainingError):
        lr_range_test(_model(), _data(), lambda o, y: o.sum() * float("inf"),
                      config=RangeTestConfig(num_steps=10))


# ---------------------------------------------------------------------------- state restore


def _state(model: nn.Module, opt: torch.optim.Optimizer) -> dict[str, Any]:
    return {
        "params": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "grads": {k: None if p.grad is None else p.grad.clone()
                  for k, p in model.named_parameters()},
        "opt": copy.deepcopy(opt.state_dict()),  # state_dict() returns live tensors
        "training": model.training,
    }


def _assert_same(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert a["training"] == b["training"]
    assert a["params"].keys() == b["params"].keys()
    for k in a["params"]:
        assert torch.equal(a["params"][k], b["params"][k]), k
    for k in a["grads"]:
        ga, gb = a["grads"][k], b["grads"][k]
        assert (ga is None and gb is None) or torch.equal(ga, gb), k
    assert a["opt"]["param_groups"] == b["opt"]["param_groups"]
    sa, sb = a["opt"]["state"], b["opt"]["state"]
    assert sa.keys() == sb.keys()
    for pid in sa:
        for key in sa[pid]:
            assert torch.equal(torch.as_tensor(sa[pid][key]), torch.as_tensor(sb[pid][key]))


def _trained_model_and_opt() -> tuple[nn.Module, torch.optim.Optimizer]:
    model = _model(bn=True)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for x, y in _data()[:3]:  # optimizer state and BatchNorm stats that must survive
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()  # a mode that must come back
    return model, opt


def _rng_states() -> tuple[Any, ...]:
    return torch.get_rng_state(), random.getstate(), np.random.get_state()


def _next_randoms() -> tuple[Any, ...]:
    return torch.rand(4), random.random(), np.random.rand(3)


def test_state_and_rng_are_restored_bit_for_bit() -> None:
    model, opt = _trained_model_and_opt()
    before = _state(model, opt)
    torch.manual_seed(123)
    random.seed(123)
    np.random.seed(123)
    rng = _rng_states()
    expected = _next_randoms()
    torch.set_rng_state(rng[0])
    random.setstate(rng[1])
    np.random.set_state(rng[2])

    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(*map(torch.cat, zip(*_data(), strict=True))),
        batch_size=32, shuffle=True)  # shuffling draws from torch's RNG
    res = lr_range_test(model, loader, nn.functional.cross_entropy, optimizer=opt,
                        config=RangeTestConfig(num_steps=30))
    assert res.steps_run > 0
    _assert_same(before, _state(model, opt))
    got = _next_randoms()
    assert torch.equal(got[0], expected[0]) and got[1] == expected[1]
    assert np.array_equal(got[2], expected[2])


def test_state_restored_after_an_error_and_after_cancel() -> None:
    model, opt = _trained_model_and_opt()
    before = _state(model, opt)
    calls = {"n": 0}

    def exploding(m: nn.Module, batch: Any) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] == 7:
            raise RuntimeError("boom")
        return nn.functional.cross_entropy(m(batch[0]), batch[1])

    with pytest.raises(RuntimeError, match="boom"):
        lr_range_test(model, _data(), None, optimizer=opt, forward=exploding)
    _assert_same(before, _state(model, opt))

    polls = {"n": 0}

    def should_stop() -> bool:
        polls["n"] += 1
        return polls["n"] > 5

    with pytest.raises(Cancelled):
        lr_range_test(model, _data(), nn.functional.cross_entropy, optimizer=opt,
                      should_stop=should_stop)
    assert polls["n"] == 6  # polled before every step; the 6th poll cancelled
    _assert_same(before, _state(model, opt))


def test_submodule_modes_are_kept_during_the_sweep_and_restored() -> None:
    model = _model(bn=True)  # training mode ...
    model[1].eval()  # ... with a frozen BatchNorm, as in fine-tuning
    modes: list[tuple[bool, bool]] = []

    def forward(m: nn.Module, batch: Any) -> torch.Tensor:
        modes.append((m.training, m[1].training))
        return nn.functional.cross_entropy(m(batch[0]), batch[1])

    lr_range_test(model, _data(), None, forward=forward, val_data=_data(seed=2),
                  config=RangeTestConfig(num_steps=12, val_every=5, val_batches=1, **NO_STOP))
    # training steps: (True, False); validation: (False, False); after validation back to the
    # sweep's flags, not to "everything in training mode".
    assert set(modes) == {(True, False), (False, False)}
    assert modes[-1] == (True, False)
    assert model.training and not model[1].training
    assert all(m.training for i, m in enumerate(model) if i != 1)


def test_a_model_in_eval_mode_is_trained_and_given_back_in_eval_mode() -> None:
    model = _model(bn=True).eval()
    modes: list[bool] = []

    def forward(m: nn.Module, batch: Any) -> torch.Tensor:
        modes.append(m[1].training)
        return nn.functional.cross_entropy(m(batch[0]), batch[1])

    lr_range_test(model, _data(), None, forward=forward,
                  config=RangeTestConfig(num_steps=10, **NO_STOP))
    assert modes == [True] * 10
    assert not any(m.training for m in model.modules())


def test_optimizer_tensors_outside_the_model_are_restored() -> None:
    model = _model()
    temp = nn.Parameter(torch.tensor(1.5))  # a learnable temperature the model does not own
    temp.grad = torch.tensor(0.25)
    opt = torch.optim.SGD([*model.parameters(), temp], lr=0.1, momentum=0.9)

    def forward(m: nn.Module, batch: Any) -> torch.Tensor:
        return nn.functional.cross_entropy(m(batch[0]) * temp, batch[1])

    before = _state(model, opt)
    lr_range_test(model, _data(), None, optimizer=opt, forward=forward,
                  config=RangeTestConfig(num_steps=15, **NO_STOP))
    assert temp.item() == 1.5 and temp.grad is not None and temp.grad.item() == 0.25
    _assert_same(before, _state(model, opt))


# ---------------------------------------------------------------------------- features


def test_progress_events_at_each_check() -> None:
    events: list[ProgressEvent] = []
    lr_range_test(_model(), _data(), nn.functional.cross_entropy, progress=events.append,
                  config=RangeTestConfig(num_steps=25, check_every=10, **NO_STOP))
    assert [e.step for e in events] == [10, 20, 25]
    assert all(e.total == 25 and e.lr > 0 and e.loss is not None for e in events)


def test_validation_loss_on_fixed_batches_in_eval_mode() -> None:
    modes: list[bool] = []
    val = _data(n_batches=6, seed=3)

    def forward(m: nn.Module, batch: Any) -> torch.Tensor:
        modes.append(m.training)
        return nn.functional.cross_entropy(m(batch[0]), batch[1])

    res = lr_range_test(_model(), _data(), None, forward=forward, val_data=val,
                        config=RangeTestConfig(num_steps=20, val_every=5, val_batches=2,
                                               **NO_STOP))
    assert res.val_steps == [4, 9, 14, 19]
    assert len(res.val_losses) == 4 and all(math.isfinite(v) for v in res.val_losses)
    assert modes.count(False) == 4 * 2 and modes.count(True) == 20
    assert res.to_dict()["val_losses"] == pytest.approx(res.val_losses)


def test_validation_loss_is_sample_weighted() -> None:
    # Batches of 3 and 1 samples with losses 1 and 5: weighted (3·1 + 1·5) / 4 = 2, not 3.
    val = [(torch.full((3, 10), 1.0), torch.zeros(3, dtype=torch.long)),
           (torch.full((1, 10), 5.0), torch.zeros(1, dtype=torch.long))]

    def forward(m: nn.Module, batch: Any) -> torch.Tensor:
        return m(batch[0]).sum() * 0.0 + batch[0].mean()

    res = lr_range_test(_model(), _data(), None, forward=forward, val_data=val,
                        config=RangeTestConfig(num_steps=10, val_every=5, **NO_STOP))
    assert res.val_losses == pytest.approx([2.0, 2.0])


def test_bf16_autocast_on_cpu() -> None:
    dtypes: list[torch.dtype] = []

    def forward(m: nn.Module, batch: Any) -> torch.Tensor:
        out = m(batch[0])
        dtypes.append(out.dtype)
        return nn.functional.cross_entropy(out, batch[1])

    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    res = lr_range_test(model, _data(), None, forward=forward,
                        config=RangeTestConfig(num_steps=20, amp="bf16", **NO_STOP))
    assert set(dtypes) == {torch.bfloat16}
    assert all(math.isfinite(v) for v in res.raw_losses)
    assert all(v.dtype == torch.float32 for v in model.state_dict().values())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_fp16_needs_cuda() -> None:
    with pytest.raises(SpecError, match="fp16"):
        lr_range_test(_model(), _data(), nn.functional.cross_entropy,
                      config=RangeTestConfig(amp="fp16"), device="cpu")


def test_optimizer_spec_goes_through_the_factory(monkeypatch: pytest.MonkeyPatch) -> None:
    import optim_core.training.range_test as rt

    built: list[torch.optim.Optimizer] = []

    def recording(*args: Any, **kwargs: Any) -> torch.optim.Optimizer:
        built.append(real(*args, **kwargs))
        return built[-1]

    real = rt.build_optimizer
    monkeypatch.setattr(rt, "build_optimizer", recording)
    spec = OptimizerSpec(name="sgd", lr=0.1, momentum=0.8, nesterov=True, weight_decay=3e-4)
    model = _model(bn=True)
    res = lr_range_test(model, _data(), nn.functional.cross_entropy, optimizer=spec,
                        config=RangeTestConfig(num_steps=20))
    assert res.steps_run > 0
    (opt,) = built
    assert type(opt) is torch.optim.SGD
    assert opt.defaults["momentum"] == 0.8 and opt.defaults["nesterov"] is True
    decay = {g["name"]: g["weight_decay"] for g in opt.param_groups}
    assert decay == {"decay": 3e-4, "no_decay": 0.0}  # the O7.3 split, with the spec's λ
    # The report is of the groups the test built, and only exists when it built them.
    assert res.param_groups == build_param_groups(model, 3e-4)[1].to_dict()
    ready = lr_range_test(model, _data(), nn.functional.cross_entropy,
                          optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
                          config=RangeTestConfig(num_steps=10))
    assert ready.param_groups is None
    as_dict = lr_range_test(model, _data(), nn.functional.cross_entropy,
                            optimizer={"name": "sgd", "weight_decay": 3e-4},
                            config=RangeTestConfig(num_steps=10))
    assert as_dict.param_groups == res.param_groups and type(built[-1]) is torch.optim.SGD
    with pytest.raises(SpecError, match="optimizer"):
        lr_range_test(model, _data(), nn.functional.cross_entropy, optimizer="sgd")  # type: ignore[arg-type]


@pytest.mark.parametrize(("device_type", "fused"), [("cuda", False), ("cpu", True)])
def test_spec_optimizer_is_built_for_the_target_device(device_type: str, fused: bool) -> None:
    # The factory decides "fused" from device_type, so the choice is checkable on CPU: Adagrad
    # has a fused kernel on the CPU only.
    opt, report = _make_optimizer(_model(), OptimizerSpec(name="adagrad"), 1e-3,
                                  device_type=device_type)
    assert bool(opt.defaults.get("fused")) is fused
    assert [g["name"] for g in report["groups"]] == ["decay", "no_decay"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_rng_is_restored_even_when_the_test_initialises_cuda() -> None:
    import subprocess
    import sys

    # A fresh process: CUDA is first used by the sweep (dropout draws from the CUDA generator).
    code = (
        "import torch\n"
        "from torch import nn\n"
        "from optim_core.training.range_test import lr_range_test\n"
        "from optim_core.specs.range_test import RangeTestConfig\n"
        "torch.manual_seed(0)\n"
        "assert not torch.cuda.is_initialized()\n"
        "m = nn.Sequential(nn.Linear(10, 16), nn.Dropout(0.5), nn.Linear(16, 2))\n"
        "data = [(torch.randn(8, 10), torch.randint(0, 2, (8,))) for _ in range(3)]\n"
        "lr_range_test(m, data, nn.functional.cross_entropy, device='cuda',\n"
        "              config=RangeTestConfig(num_steps=10, stop_on_divergence=False))\n"
        "after = torch.rand(4, device='cuda')\n"
        "torch.manual_seed(0)\n"
        "fresh = torch.rand(4, device='cuda')\n"
        "assert torch.equal(after, fresh), (after, fresh)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_spec_optimizer_on_cuda_is_fused(monkeypatch: pytest.MonkeyPatch) -> None:
    import optim_core.training.range_test as rt

    built: list[torch.optim.Optimizer] = []
    real = rt.build_optimizer
    monkeypatch.setattr(rt, "build_optimizer",
                        lambda *a, **k: built.append(real(*a, **k)) or built[-1])
    lr_range_test(_model(), _data(), nn.functional.cross_entropy, device="cuda",
                  optimizer=OptimizerSpec(name="adamw"), config=RangeTestConfig(amp="fp16"))
    assert built[0].defaults.get("fused") is True
    assert built[0].param_groups[0]["params"][0].device.type == "cuda"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_run_restores_the_model_on_its_device() -> None:
    model, opt = _trained_model_and_opt()
    before = _state(model, opt)
    res = lr_range_test(model, _data(), nn.functional.cross_entropy, optimizer=opt,
                        device="cuda", config=RangeTestConfig(amp="fp16"))
    assert res.device.startswith("cuda")
    assert next(model.parameters()).device.type == "cpu"
    _assert_same(before, _state(model, opt))


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_the_sweep_reads_losses_to_the_host_once_per_check_not_per_step(optimizer: str) -> None:
    # The CPU-checkable half of "no host sync per step on CUDA": the loop keeps losses on the
    # device and reads them in one transfer every check_every steps (the fused optimizers and
    # clipping read nothing either).
    cfg = RangeTestConfig(num_steps=60, check_every=20, stop_on_divergence=False,
                          max_grad_norm=1.0, end_lr=1e-2)
    reads = HostReads()
    with reads:
        res = lr_range_test(_model(), _data(), nn.functional.cross_entropy,
                            optimizer=OptimizerSpec(name=optimizer), config=cfg)
    assert res.steps_run == 60
    checks = 60 // 20
    # one read per check (measured: exactly 3 here, and 60 with check_every=1); a little slack
    # for reads a later torch might add around the loop, far below one per step
    assert checks <= reads.count <= checks + 2, reads.count
