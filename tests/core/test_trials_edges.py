"""The grid's edges: read off LR values (tied candidates agree), a grid whose every trial
diverged is a low edge (extended below, or said plainly), and an edge note gives the true reason
the grid stops there."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from optim_core.specs.jobs import TrialsConfig
from optim_core.training.trials import TrialsResult, run_trials_on
from tests.core.test_trials import REGRESSION, _setup, nan_setup


def test_a_grid_whose_every_trial_diverged_is_extended_below() -> None:
    # SGD at 1, 3 and 9 without clipping all diverge on MSE; the steps below train.
    config = TrialsConfig(center_lr=3.0, default_optimizers=["sgd"], steps=20, eval_every=20,
                          clip_norm=None, extend_edges=2)
    result = run_trials_on(*_setup(REGRESSION), config)
    assert all(t.diverged for t in result.trials if t.phase == "trial")  # the case
    edge = result.edges["sgd"]
    assert edge["extended_lrs"] == pytest.approx([1 / 3, 1 / 9])
    assert [t.phase for t in result.trials] == ["trial"] * 3 + ["extension"] * 2
    assert result.verdict["label"] is not None
    assert result.verdict["lr"] == pytest.approx(edge["best_lr"]) and edge["best_lr"] < 1.0


def test_when_the_extensions_diverge_too_the_note_says_the_optimum_may_lie_below() -> None:
    config = TrialsConfig(center_lr=0.01, default_optimizers=["adamw"], lr_factors=[1.0, 3.0],
                          steps=4, eval_every=4, extend_edges=2)
    result = run_trials_on(*nan_setup(), config)
    edge = result.edges["adamw"]
    assert edge["extended_lrs"] == pytest.approx([0.01 / 3, 0.01 / 9])  # within extend_edges
    assert edge["at_edge"] == "low" and edge["best_lr"] is None
    lowest = f"{0.01 / 9:.3g}"
    assert f"may lie below {lowest}" in edge["note"]
    assert "extend_edges = 2" in edge["note"]
    assert f"may lie below {lowest}" in result.verdict["sentence"]
    assert result.verdict["label"] is None


def test_one_lr_that_diverged_is_at_the_low_edge_with_nothing_to_extend_by() -> None:
    config = TrialsConfig(center_lr=0.01, default_optimizers=["adamw"], lr_factors=[1.0],
                          steps=4, eval_every=4)
    edge = run_trials_on(*nan_setup(), config).edges["adamw"]
    assert edge["at_edge"] == "low" and edge["extended_lrs"] == []
    assert "may lie below 0.01" in edge["note"] and "no grid step" in edge["note"]


def _tiny_gradients() -> tuple[Any, Any]:
    # Gradients scaled by 1e-3: the higher the LR, the better, all the way to MAX_LR.
    factory, bundle = _setup()
    loss_fn = bundle.loss_fn
    return factory, dataclasses.replace(bundle, loss_fn=lambda out, y: 1e-3 * loss_fn(out, y))


@pytest.mark.parametrize(("extend_edges", "reason", "extended"), [
    (2, "MAX_LR (10) caps the LR", [10.0]),
    (1, "MAX_LR (10) caps the LR", [10.0]),  # the budget is spent too, but the cap stopped it
    (0, "extend_edges is 0", []),
])
def test_the_edge_note_gives_the_reason_the_extension_stopped(
        extend_edges: int, reason: str, extended: list[float]) -> None:
    config = TrialsConfig(center_lr=3.0, default_optimizers=["sgd"], steps=10, eval_every=10,
                          clip_norm=None, extend_edges=extend_edges)
    result = run_trials_on(*_tiny_gradients(), config)
    edge = result.edges["sgd"]
    assert edge["at_edge"] == "high" and edge["extended_lrs"] == extended
    assert reason in edge["note"] and "budget" not in edge["note"]
    assert reason in result.verdict["sentence"]


def _tied(order: tuple[float, float]) -> TrialsResult:
    cands = [{"optimizer": {"name": "adamw", "lr": 1e-3}, "label": "low"}] + [
        {"optimizer": {"name": "adamw", "lr": 1e-2, "weight_decay": wd}, "label": f"top wd={wd}"}
        for wd in order]
    return run_trials_on(*_setup(), TrialsConfig(candidates=cands, steps=10, eval_every=10))


def test_candidates_tied_at_an_lr_give_one_edge_whatever_their_order() -> None:
    a, b = _tied((0.0, 0.5)), _tied((0.5, 0.0))
    assert a.best.peak_lr == b.best.peak_lr == 1e-2  # the case: the tied LR is the best
    assert a.edges["adamw"] == b.edges["adamw"]
    assert a.edges["adamw"]["at_edge"] == "high"
    assert a.edges["adamw"]["grid_lrs"] == [1e-3, 1e-2]
