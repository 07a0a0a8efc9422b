"""Short trials: reproducible, ranked, divergence flagged, cancellable."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError

from optim_core.bounds import MAX_LR, MIN_LR
from optim_core.errors import Cancelled, SpecError, TrainingError
from optim_core.specs.experiment import ExperimentSpec
from optim_core.specs.jobs import TrialsConfig
from optim_core.specs.range_test import ProgressEvent
from optim_core.training.registry import build_data, build_model
from optim_core.training.trials import default_candidates, run_trials_on

SPEC = ExperimentSpec(model={"kind": "mlp", "hidden": [16]},
                      data={"kind": "classification", "n_samples": 320, "n_features": 8},
                      batch_size=32)
# MSE on regression targets: SGD without clipping diverges within a few steps at LR >= 1
REGRESSION = ExperimentSpec(model=SPEC.model, batch_size=SPEC.batch_size,
                            data={"kind": "regression", "n_samples": 320, "n_features": 8})


def _setup(spec: ExperimentSpec = SPEC):
    bundle = build_data(spec.data, batch_size=spec.batch_size, seed=spec.seed,
                        val_fraction=spec.val_fraction)

    def factory(seed_offset: int = 0) -> torch.nn.Module:  # as the worker's (TrialsConfig.seeds)
        torch.manual_seed(spec.seed + seed_offset)
        return build_model(spec.model, bundle.info)

    return factory, bundle


class NaNOut(torch.nn.Module):
    """A model whose every output is NaN: its trials diverge on their first step, at any LR."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x) * float("nan")


def nan_setup(nan_seeds: tuple[int, ...] = (0,), spec: ExperimentSpec = SPEC):
    """``_setup`` whose models output NaN for the seeds in ``nan_seeds`` (the others train)."""
    factory, bundle = _setup(spec)

    def nan_factory(seed_offset: int = 0) -> torch.nn.Module:
        model = factory(seed_offset)
        return NaNOut(model) if seed_offset in nan_seeds else model

    return nan_factory, bundle


def test_same_seed_same_curves_exactly() -> None:
    config = TrialsConfig(steps=15, eval_every=5, range_test_steps=20)  # measures center_lr too
    first = run_trials_on(*_setup(), config).to_dict()
    second = run_trials_on(*_setup(), config).to_dict()
    for a, b in zip(first["trials"], second["trials"], strict=True):
        a.pop("seconds_per_step"), b.pop("seconds_per_step")
        assert a == b
    assert first["ranking"] == second["ranking"]
    assert first["center_lr"] == second["center_lr"]


def test_measures_center_lr_when_none_is_given() -> None:
    result = run_trials_on(*_setup(), TrialsConfig(steps=10, range_test_steps=20))
    assert result.center_lr_source == "range_test"
    assert set(result.range_tests) == set(result.center_lr) == {"adamw", "sgd"}
    for name, center in result.center_lr.items():
        suggestions = result.range_tests[name]["suggestions"]
        assert center == pytest.approx(suggestions["recommended"])
        assert result.center_lr_confidence[name] == suggestions["confidence"] > 0
        assert result.center_lr_flags[name] == suggestions["flags"]
    d = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert set(d["center_lr_confidence"]) == set(d["center_lr_flags"]) == {"adamw", "sgd"}


class _Constant(torch.nn.Module):
    """Outputs the same logits whatever the input and the weights: nothing to measure."""

    def __init__(self, n_out: int) -> None:
        super().__init__()
        self.n_out = n_out
        self.w = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(x), self.n_out) + 0.0 * self.w


def test_a_failed_range_test_is_not_used_as_the_center() -> None:
    _factory, bundle = _setup()
    with pytest.raises(TrainingError, match=r"could not give an LR.*never_decreases.*center_lr"):
        run_trials_on(lambda: _Constant(bundle.info.n_outputs), bundle,
                      TrialsConfig(steps=5, range_test_steps=20))


def _hot(shift: float) -> Any:
    factory, bundle = _setup()
    shifted = dataclasses.replace(bundle, loss_fn=lambda out, y: F.cross_entropy(out, y) + shift)
    config = TrialsConfig(candidates=[
        {"optimizer": {"name": "sgd", "lr": 10.0, "momentum": 0.9}, "clip_norm": None,
         "schedule": {"name": "constant", "lr": 10.0}, "label": "too hot"}], steps=30,
        eval_every=30)
    return run_trials_on(factory, shifted, config).trials[0]


@pytest.mark.parametrize("shift", [100.0, -2.0])
def test_divergence_does_not_depend_on_a_shift_of_the_loss(shift: float) -> None:
    base, moved = _hot(0.0), _hot(shift)
    assert base.diverged and base.diverged_at is not None
    assert (moved.diverged, moved.diverged_at) == (base.diverged, base.diverged_at)
    assert moved.train_losses == pytest.approx([v + shift for v in base.train_losses])


def test_default_lrs_clipped_at_the_cap_run_once_and_say_so() -> None:
    config = TrialsConfig(center_lr=10.0, lr_factors=[1 / 3, 1.0, 3.0, 9.0],
                          default_optimizers=["sgd"], steps=2, eval_every=2, extend_edges=0)
    labels = [c.label for c in default_candidates(config, {"sgd": 10.0})]
    assert labels == ["sgd lr=3.33", "sgd lr=10"]  # 10, 30, 90 all became lr=10: one candidate
    result = run_trials_on(*_setup(), config)
    assert [t.label for t in result.trials] == labels
    assert [t.clipped_lrs for t in result.trials] == [[], [pytest.approx(30.0),
                                                          pytest.approx(90.0)]]
    assert result.trials[1].optimizer["lr"] == MAX_LR
    assert result.to_dict()["trials"][0]["clipped_lrs"] == []


def test_default_lrs_below_the_floor_are_clipped_up_to_it_and_say_so() -> None:
    # centre × factor can underflow: 1e-6 × 1e-9 is below any LR that trains, 1e-300 × 1e-300 is 0
    config = TrialsConfig(center_lr=1e-6, lr_factors=[1e-9, 1e-7, 1.0],
                          default_optimizers=["sgd"], steps=2, eval_every=2, extend_edges=0)
    [low, centre] = default_candidates(config, {"sgd": 1e-6})
    assert low.optimizer.lr == MIN_LR and centre.optimizer.lr == pytest.approx(1e-6)
    result = run_trials_on(*_setup(), config)
    assert [t.clipped_lrs for t in result.trials] == [[pytest.approx(1e-15), pytest.approx(1e-13)],
                                                      []]
    with pytest.raises(ValidationError, match="center_lr"):
        TrialsConfig(center_lr=1e-300)


def test_an_extension_stops_at_the_lr_floor_and_says_so() -> None:
    # Every trial diverges (the NaN model), so the grid is a low edge and is extended downwards,
    # until the floor: the note names MIN_LR as what stopped it.
    config = TrialsConfig(center_lr=MIN_LR, lr_factors=[1.0, 3.0], default_optimizers=["sgd"],
                          steps=2, eval_every=2, extend_edges=2)
    result = run_trials_on(*nan_setup(), config)
    assert [t.phase for t in result.trials] == ["trial", "trial"]
    assert "MIN_LR (1e-12) caps the LR" in result.edges["sgd"]["note"]


class _PluginLoader:
    """A plug-in loader: re-iterable, reshuffles per epoch, rewound through set_epoch."""

    def __init__(self, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        self.batches, self.epoch, self.rewinds = batches, 0, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch
        self.rewinds += 1

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(self.batches),
                               generator=torch.Generator().manual_seed(self.epoch))
        self.epoch += 1
        return iter([self.batches[i] for i in order])


def test_plug_in_loaders_are_rewound_through_set_epoch_or_taken_as_lists() -> None:
    factory, bundle = _setup()
    batches = list(bundle.train)
    config = TrialsConfig(center_lr=0.01, default_optimizers=["adamw"], lr_factors=[1.0, 1.0],
                          steps=12, eval_every=12)
    loader = _PluginLoader(batches)
    with_hook = run_trials_on(factory, dataclasses.replace(bundle, train=loader), config)
    assert loader.rewinds == 1  # one (de-duplicated) candidate
    as_list = run_trials_on(factory, dataclasses.replace(bundle, train=batches), config)
    assert len(as_list.trials) == 1 and as_list.trials[0].steps_run == 12
    # a rewound plug-in loader gives the same run twice
    again = run_trials_on(factory, dataclasses.replace(bundle, train=loader), config)
    assert again.trials[0].train_losses == with_hook.trials[0].train_losses


def test_empty_or_malformed_training_data_is_a_spec_error() -> None:
    factory, bundle = _setup()
    config = TrialsConfig(center_lr=0.01, default_optimizers=["adamw"], lr_factors=[1.0],
                          steps=4, eval_every=4)
    with pytest.raises(SpecError, match="no batches"):
        run_trials_on(factory, dataclasses.replace(bundle, train=[]), config)
    dicts = [{"x": x, "y": y} for x, y in bundle.train]
    with pytest.raises(SpecError, match="inputs, targets"):
        run_trials_on(factory, dataclasses.replace(bundle, train=dicts), config)


def test_default_candidates_around_a_given_lr_learn_and_rank_by_validation() -> None:
    config = TrialsConfig(steps=40, eval_every=10, center_lr=0.01, extend_edges=0)
    result = run_trials_on(*_setup(), config)
    labels = [t.label for t in result.trials]
    assert len(labels) == 6 and labels[0].startswith("adamw") and labels[-1].startswith("sgd")
    assert [t.optimizer["lr"] for t in result.trials[:3]] == pytest.approx([0.01 / 3, 0.01, 0.03])
    assert [t.optimizer["name"] for t in result.trials] == ["adamw"] * 3 + ["sgd"] * 3
    assert result.center_lr_source == "given" and result.range_tests == {}
    assert result.ranked_by == "final_val_loss"
    finals = [result.trials[i].final_val_loss for i in result.ranking]
    assert finals == sorted(finals)
    best = result.best
    assert best.val_steps == [10, 20, 30, 40]
    assert best.smoothed_train_losses[-1] < best.train_losses[0]
    assert not best.diverged and best.steps_run == 40
    decay = {g["name"]: g for g in best.param_groups["groups"]}
    assert decay["no_decay"]["weight_decay"] == 0.0  # biases not decayed (O7.3)
    assert decay["decay"]["weight_decay"] == best.optimizer["weight_decay"] > 0
    # warmup + cosine: rises for 5 % of the steps, peaks at the candidate's lr, ends at 0.1×
    lrs = best.lrs
    assert lrs[0] < lrs[1] == pytest.approx(best.optimizer["lr"])
    assert lrs[-1] == pytest.approx(0.1 * best.optimizer["lr"])


def test_divergence_is_flagged_stops_early_and_ranks_last() -> None:
    config = TrialsConfig(candidates=[
        {"optimizer": {"name": "sgd", "lr": 10.0, "momentum": 0.9}, "clip_norm": None,
         "schedule": {"name": "constant", "lr": 10.0}, "label": "too hot"},
        {"optimizer": {"name": "adamw", "lr": 0.003}, "label": "fine"},
    ], steps=30, eval_every=10)
    result = run_trials_on(*_setup(), config)
    hot, fine = result.trials
    assert hot.diverged and hot.diverged_at is not None and hot.steps_run < 30
    assert not fine.diverged
    assert [result.trials[i].label for i in result.ranking] == ["fine", "too hot"]
    assert result.center_lr_source == "candidates" and result.center_lr is None
    assert all(x is None or math.isfinite(x) for x in hot.to_dict()["train_losses"])


def test_without_validation_ranks_by_smoothed_train_loss() -> None:
    spec = SPEC.model_copy(update={"val_fraction": 0.0})
    result = run_trials_on(*_setup(spec), TrialsConfig(steps=15, center_lr=0.01,
                                                       default_optimizers=["adamw"]))
    assert result.ranked_by == "smoothed_final_train_loss"
    assert all(t.val_losses == [] for t in result.trials)
    finals = [result.trials[i].final_train_loss for i in result.ranking]
    assert finals == sorted(finals)
    d = result.trials[result.ranking[0]].to_dict()
    # final and best train losses are read off the same (smoothed) curve
    assert d["best_train_loss"] == min(d["smoothed_train_losses"]) <= d["final_train_loss"]


def test_progress_counts_up_to_the_total_and_cancel_stops() -> None:
    events: list[ProgressEvent] = []
    config = TrialsConfig(steps=12, eval_every=4, center_lr=0.01, lr_factors=[1.0])
    run_trials_on(*_setup(), config, progress=events.append)
    steps = [e.step for e in events]
    assert steps == sorted(steps) and steps[-1] == events[-1].total == 24
    calls = {"n": 0}

    def stop_after_five() -> bool:
        calls["n"] += 1
        return calls["n"] > 5

    with pytest.raises(Cancelled):
        run_trials_on(*_setup(), config, should_stop=stop_after_five)
    assert calls["n"] == 6
