"""Batched short trials (TrialsConfig.batched): the same curves as the sequential path, honest
fallbacks, divergence isolated per candidate, cancellable."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from optim_core.errors import Cancelled
from optim_core.specs.experiment import ExperimentSpec
from optim_core.specs.jobs import TrialsConfig
from optim_core.specs.range_test import ProgressEvent
from optim_core.training.data import DataBundle
from optim_core.training.registry import build_data, build_model
from optim_core.training.trials import TrialResult, TrialsResult, run_trials_on

from .host_reads import HostReads

MLP = ExperimentSpec(model={"kind": "mlp", "hidden": [16, 16]},
                     data={"kind": "classification", "n_samples": 320, "n_features": 8},
                     batch_size=32)
LM = ExperimentSpec(model={"kind": "transformer", "d_model": 16, "n_layers": 1, "n_heads": 2,
                           "seq_len": 8, "vocab_size": 12},
                    data={"kind": "sequences", "n_sequences": 64, "seq_len": 8,
                          "vocab_size": 12}, batch_size=8)

Factory = Callable[[], torch.nn.Module]


def _setup(spec: ExperimentSpec, dtype: torch.dtype = torch.float32) -> tuple[Factory, DataBundle]:
    bundle = build_data(spec.data, batch_size=spec.batch_size, seed=spec.seed,
                        val_fraction=spec.val_fraction)
    if dtype != torch.float32:
        for loader in (bundle.train, bundle.val):
            if loader is not None and loader.inputs.is_floating_point():
                loader.inputs = loader.inputs.to(dtype)

    def factory() -> torch.nn.Module:
        torch.manual_seed(spec.seed)
        return build_model(spec.model, bundle.info).to(dtype)

    return factory, bundle


# AdamW and SGD at several LRs, the default warmup + cosine, clipping on (tight enough to act)
CANDIDATES: list[dict[str, Any]] = [
    {"optimizer": {"name": "adamw", "lr": lr}, "clip_norm": clip}
    for lr, clip in ((0.003, 1.0), (0.01, 0.5), (0.03, None))
] + [
    {"optimizer": {"name": "sgd", "lr": lr, "momentum": 0.9}, "clip_norm": clip}
    for lr, clip in ((0.01, 1.0), (0.1, 0.25))
]


def _both(spec: ExperimentSpec, config: TrialsConfig, dtype: torch.dtype = torch.float32,
          ) -> tuple[TrialsResult, TrialsResult]:
    seq = run_trials_on(*_setup(spec, dtype), config)
    bat = run_trials_on(*_setup(spec, dtype), config.model_copy(update={"batched": True}))
    return seq, bat


def _assert_same_curves(a: TrialResult, b: TrialResult, rel: float) -> None:
    assert (a.label, a.steps_run, a.diverged, a.diverged_at) == (
        b.label, b.steps_run, b.diverged, b.diverged_at)
    assert a.lrs == b.lrs  # the schedules are the same code on the same step counts: exact
    assert a.val_steps == b.val_steps
    assert a.param_groups == b.param_groups
    for xs, ys in ((a.train_losses, b.train_losses), (a.val_losses, b.val_losses)):
        assert len(xs) == len(ys)
        for x, y in zip(xs, ys, strict=True):
            assert (math.isfinite(x), math.isfinite(y)) == (True, True)
            assert y == pytest.approx(x, rel=rel, abs=rel)


@pytest.mark.parametrize(("dtype", "rel"), [(torch.float64, 1e-12), (torch.float32, 1e-4)])
def test_batched_mlp_gives_the_sequential_curves(dtype: torch.dtype, rel: float) -> None:
    config = TrialsConfig(candidates=CANDIDATES, steps=40, eval_every=10)
    seq, bat = _both(MLP, config, dtype)
    assert not seq.batched and bat.batched
    assert bat.batched_reason == ("AdamW: 3 candidates in one vmapped forward/backward per step; "
                                  "SGD: 2 candidates in one vmapped forward/backward per step")
    for a, b in zip(seq.trials, bat.trials, strict=True):
        _assert_same_curves(a, b, rel)
    assert seq.ranking == bat.ranking
    # they trained (the comparison is not between two flat lines)
    assert seq.best.final_train_loss < 0.8 * seq.best.train_losses[0]


def test_batched_transformer_lm_gives_the_sequential_curves() -> None:
    config = TrialsConfig(candidates=CANDIDATES[:2] + CANDIDATES[3:4], steps=12, eval_every=6,
                          val_batches=2)
    seq, bat = _both(LM, config, torch.float64)
    assert bat.batched and "AdamW: 2 candidates" in bat.batched_reason
    assert "SGD: one candidate, run on its own" in bat.batched_reason
    for a, b in zip(seq.trials, bat.trials, strict=True):
        _assert_same_curves(a, b, 1e-12)


def test_batchnorm_falls_back_to_sequential_and_says_why() -> None:
    cnn = ExperimentSpec(model={"kind": "cnn", "channels": [4]},
                         data={"kind": "images", "n_samples": 64, "height": 8, "width": 8},
                         batch_size=16)
    seq, bat = _both(cnn, TrialsConfig(candidates=CANDIDATES[:2], steps=4, eval_every=2))
    assert bat.batched is False
    assert bat.batched_reason.startswith("sequential: BatchNorm2d at 'features.1'")
    assert "running statistics" in bat.batched_reason
    for a, b in zip(seq.trials, bat.trials, strict=True):  # it *is* the sequential path
        assert a.train_losses == b.train_losses and a.val_losses == b.val_losses


def test_dropout_falls_back_to_sequential_and_says_why() -> None:
    spec = ExperimentSpec(model={"kind": "mlp", "hidden": [16], "dropout": 0.1}, data=MLP.data,
                          batch_size=32)
    seq, bat = _both(spec, TrialsConfig(candidates=CANDIDATES[:2], steps=4, eval_every=2))
    assert bat.batched is False
    assert bat.batched_reason == ("sequential: Dropout(p=0.1) at '3': dropout masks drawn under "
                                  "vmap cannot reproduce the sequential run's")
    assert [t.train_losses for t in seq.trials] == [t.train_losses for t in bat.trials]


class _FunctionalDropout(torch.nn.Module):
    """A plug-in that draws random numbers without any Dropout module: only the probe sees it."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(n_in, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(F.dropout(x, 0.2, self.training))


def test_a_plug_in_drawing_random_numbers_is_found_by_the_probe() -> None:
    _factory, bundle = _setup(MLP)

    def factory() -> torch.nn.Module:
        torch.manual_seed(0)
        return _FunctionalDropout(8, bundle.info.n_outputs)

    config = TrialsConfig(candidates=CANDIDATES[:2], steps=3, eval_every=3, batched=True)
    result = run_trials_on(factory, bundle, config)
    assert result.batched is False
    assert result.batched_reason.startswith("sequential: the model does not run under vmap")
    assert all(t.steps_run == 3 for t in result.trials)


def test_a_diverging_candidate_does_not_touch_the_others() -> None:
    hot = {"optimizer": {"name": "sgd", "lr": 10.0, "momentum": 0.9}, "clip_norm": None,
           "schedule": {"name": "constant", "lr": 10.0}, "label": "too hot"}
    spec = ExperimentSpec(model=MLP.model, batch_size=32,
                          data={"kind": "regression", "n_samples": 320, "n_features": 8})
    # A huge divergence factor: the hot run goes on until its loss is Inf/NaN, so the non-finite
    # loss really is inside the shared vmapped forward.
    config = TrialsConfig(candidates=[CANDIDATES[3], hot, CANDIDATES[4]], steps=30,
                          eval_every=10, divergence_factor=1000.0)
    seq, bat = _both(spec, config, torch.float64)
    s_hot, b_hot = seq.trials[1], bat.trials[1]
    assert b_hot.diverged and b_hot.diverged_at == s_hot.diverged_at < 29
    assert not math.isfinite(b_hot.train_losses[-1])  # stopped on a non-finite loss
    assert b_hot.train_losses[:-1] == pytest.approx(s_hot.train_losses[:-1], rel=1e-12)
    assert b_hot.val_losses[-1] != b_hot.val_losses[-1]  # NaN at its last step, as sequentially
    assert b_hot.to_dict() | {"seconds_per_step": 0} == s_hot.to_dict() | {
        "seconds_per_step": 0, "train_losses": b_hot.to_dict()["train_losses"],
        "smoothed_train_losses": b_hot.to_dict()["smoothed_train_losses"],
        "final_train_loss": b_hot.to_dict()["final_train_loss"],
        "best_train_loss": b_hot.to_dict()["best_train_loss"]}
    for i in (0, 2):  # the SGD neighbours in its vmapped group: unaffected, same as alone
        _assert_same_curves(seq.trials[i], bat.trials[i], 1e-12)
        assert bat.trials[i].steps_run == 30
    assert bat.ranking[-1] == 1 == seq.ranking[-1]
    json.dumps(bat.to_dict(), allow_nan=False)  # the NaN became null


def test_progress_counts_up_and_cancel_is_checked_once_per_step() -> None:
    config = TrialsConfig(steps=12, eval_every=4, center_lr=0.01, lr_factors=[1.0, 3.0],
                          batched=True, extend_edges=0)
    events: list[ProgressEvent] = []
    result = run_trials_on(*_setup(MLP), config, progress=events.append)
    assert result.batched
    steps = [e.step for e in events]
    assert steps == sorted(steps) and steps[-1] == events[-1].total == 4 * 12
    calls = {"n": 0}

    def stop_after_five() -> bool:
        calls["n"] += 1
        return calls["n"] > 5

    with pytest.raises(Cancelled, match=r"step 5 of batched trials \[adamw lr=0.01, adamw lr=0.03"):
        run_trials_on(*_setup(MLP), config, should_stop=stop_after_five)
    assert calls["n"] == 6  # one check per shared step, not one per candidate


def test_the_result_says_whether_it_ran_batched() -> None:
    factory, bundle = _setup(MLP)
    off = run_trials_on(factory, bundle, TrialsConfig(candidates=CANDIDATES[:2], steps=2,
                                                      eval_every=2))
    assert TrialsConfig().batched is False
    d = off.to_dict()
    assert (d["batched"], d["batched_reason"]) == (
        False, "not requested (TrialsConfig.batched is false)")
    alone = run_trials_on(factory, bundle, TrialsConfig(candidates=[CANDIDATES[0], CANDIDATES[3]],
                                                        steps=2, eval_every=2, batched=True))
    assert alone.to_dict()["batched"] is False
    assert alone.batched_reason == ("AdamW: one candidate, run on its own; "
                                    "SGD: one candidate, run on its own")


def test_batched_trials_read_to_the_host_once_per_step_for_all_candidates() -> None:
    # The CPU-checkable half of the K = 8 target on CUDA: a batched group reads its K losses in
    # one transfer a step, so the reads grow with the steps and not with K (the sequential path
    # reads once per step per candidate).
    def reads(k: int, steps: int, batched: bool = True) -> int:
        cands = [{"optimizer": {"name": "adamw", "lr": 1e-3 * 2**i}} for i in range(k)]
        config = TrialsConfig(candidates=cands, steps=steps, eval_every=steps, val_batches=2,
                              batched=batched)
        counter = HostReads()
        with counter:
            result = run_trials_on(*_setup(MLP), config)
        assert result.batched is batched and all(t.steps_run == steps for t in result.trials)
        return counter.count

    assert reads(4, 10) == reads(2, 10)  # K candidates, one read a step
    per_step = reads(4, 20) - reads(4, 10)
    assert per_step == 10  # exactly one per step (the rest: the probe and the one evaluation)
    assert reads(4, 20, batched=False) - reads(4, 10, batched=False) == 4 * 10
