"""The grid's edges: read off LR values (tied candidates agree), a grid whose every trial
diverged is a low edge (extended below, or said plainly), and an edge note gives the true reason
the grid stops there."""

from __future__ import annotations

from optim_core.specs.jobs import TrialsConfig
from optim_core.training.trials import TrialsResult, run_trials_on
from tests.core.test_trials import _setup


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
