"""Trials that search (issue 11 item 3): past the grid's edge, full schedules recorded, spread over
seeds, progress that names phase / candidate / LR, and a verdict that says who won, by how much and
how sure."""

from __future__ import annotations

import dataclasses
import json

import pytest

from optim_core.errors import SpecError
from optim_core.specs.jobs import TrialCandidate, TrialsConfig
from optim_core.specs.optimizer import OptimizerSpec
from optim_core.specs.range_test import ProgressEvent
from optim_core.training.trials import _rank, _verdict, run_trials_on
from tests.core.test_trials import _setup
from tests.jobs_support import refined_lrs


def test_a_winner_at_the_low_edge_extends_the_grid_below_it() -> None:
    # centre 3.0 for AdamW is far too high: the lowest LR wins, so the grid grows downwards
    config = TrialsConfig(center_lr=3.0, default_optimizers=["adamw"], steps=30, eval_every=10,
                          extend_edges=2)
    events: list[ProgressEvent] = []
    result = run_trials_on(*_setup(), config, progress=events.append)
    lrs = [t.peak_lr for t in result.trials]
    assert lrs[:3] == pytest.approx([1.0, 3.0, 9.0])
    assert lrs[3:] == pytest.approx([1 / 3, 1 / 9])  # two steps of the grid's ratio (3) below
    assert [t.phase for t in result.trials] == ["trial"] * 3 + ["extension"] * 2
    edge = result.edges["adamw"]
    assert edge["extended_lrs"] == pytest.approx([1 / 3, 1 / 9])
    assert edge["grid_lrs"] == pytest.approx(sorted(lrs))
    if edge["at_edge"]:  # still at the edge after the budget: said plainly
        assert "may lie below" in edge["note"] and "budget" in edge["note"]
        assert result.verdict["at_edge"] and "may lie below" in result.verdict["sentence"]
    # progress: step only goes up; the total grew by the extensions; phase and candidate named
    assert [e.step for e in events] == sorted(e.step for e in events)
    assert events[-1].step == events[-1].total == 5 * 30
    ext = [e for e in events if e.phase == "extension"]
    assert ext and {e.candidate for e in ext} == {"adamw lr=0.333", "adamw lr=0.111"}
    assert sorted({e.candidate_lr for e in ext}) == pytest.approx([1 / 9, 1 / 3])
    assert all(e.phase == "trial" and e.candidate_lr in lrs[:3] for e in events[:3])


def test_default_candidates_and_their_extensions_clip_as_the_config_says() -> None:
    # A full run that does not clip is compared under its own recipe: clip_norm None reaches
    # every default candidate and every extension, and each result records it.
    base = dict(center_lr=3.0, default_optimizers=["adamw"], steps=10, eval_every=10,
                extend_edges=1)
    off = run_trials_on(*_setup(), TrialsConfig(**base, clip_norm=None))
    assert [t.phase for t in off.trials] == ["trial"] * 3 + ["extension"]
    assert [t.clip_norm for t in off.trials] == [None] * 4
    on = run_trials_on(*_setup(), TrialsConfig(**base))
    assert [t.clip_norm for t in on.trials] == [1.0] * 4  # the default: O7.4's clip
    assert TrialsConfig(**base, clip_norm=0.5).model_dump()["clip_norm"] == 0.5
    with pytest.raises(ValueError, match="clip_norm"):
        TrialsConfig(**base, clip_norm=0.0)


def test_a_winner_inside_the_grid_is_not_extended() -> None:
    config = TrialsConfig(center_lr=0.01, default_optimizers=["adamw"], steps=30, eval_every=10,
                          lr_factors=[1 / 30, 1.0, 30.0])
    result = run_trials_on(*_setup(), config)
    best = result.best
    if best.peak_lr == pytest.approx(0.01):
        assert len(result.trials) == 3 and result.edges["adamw"]["at_edge"] is None
        assert "inside the grid" in result.edges["adamw"]["note"]


def test_explicit_candidates_at_an_edge_are_reported_not_extended() -> None:
    cands = [TrialCandidate(optimizer=OptimizerSpec(name="adamw", lr=lr)) for lr in (1.0, 3.0)]
    config = TrialsConfig(candidates=cands, steps=20, eval_every=10)
    result = run_trials_on(*_setup(), config)
    assert len(result.trials) == 2
    assert result.edges["adamw"]["at_edge"] == "low"
    assert "explicit candidates are not extended" in result.edges["adamw"]["note"]


def test_every_candidate_records_its_full_schedule() -> None:
    config = TrialsConfig(center_lr=0.01, default_optimizers=["sgd"], lr_factors=[1.0],
                          steps=40, eval_every=20)
    d = run_trials_on(*_setup(), config).to_dict()["trials"][0]
    assert d["schedule"] == {"name": "warmup_cosine", "max_lr": 0.01, "warmup_steps": 2,
                             "total_steps": 40, "min_lr_ratio": 0.1}
    assert d["schedule_source"] == "default"
    assert d["lrs"][1] == pytest.approx(0.01) and d["lrs"][-1] == pytest.approx(0.001)


@pytest.mark.parametrize("kind", ["one_cycle", "wsd"])
def test_trials_run_1cycle_and_wsd(kind: str) -> None:
    config = TrialsConfig(center_lr=0.01, default_optimizers=["adamw"], lr_factors=[1.0],
                          steps=40, eval_every=20, schedule=kind)
    t = run_trials_on(*_setup(), config).trials[0]
    assert t.schedule is not None and t.schedule["name"] == kind
    if kind == "one_cycle":
        assert t.lrs[0] == pytest.approx(0.01 / 25) and max(t.lrs) == pytest.approx(0.01)
        assert t.lrs[-1] == pytest.approx(0.01 / 25 / 1e4)
    else:
        assert t.lrs[1] == pytest.approx(0.01) and t.lrs[35] == pytest.approx(0.01)
        assert t.lrs[-1] == pytest.approx(0.001)


def test_one_cycle_takes_its_floor_from_the_range_test() -> None:
    config = TrialsConfig(default_optimizers=["adamw"], lr_factors=[1.0], steps=20,
                          eval_every=10, schedule="one_cycle", range_test_steps=40)
    result = run_trials_on(*_setup(), config)
    s = result.range_tests["adamw"]["suggestions"]
    assert result.trials[0].schedule["div_factor"] == pytest.approx(
        s["cycle_max_lr"] / s["cycle_min_lr"])


def test_seeds_give_a_spread_and_a_verdict_that_says_how_sure() -> None:
    config = TrialsConfig(center_lr=0.01, default_optimizers=["adamw", "sgd"],
                          lr_factors=[1.0, 3.0], steps=30, eval_every=10, seeds=3,
                          extend_edges=0)
    events: list[ProgressEvent] = []
    result = run_trials_on(*_setup(), config, progress=events.append)
    for t in result.trials:
        assert [r["seed"] for r in t.seed_runs] == [0, 1, 2]
        assert t.seed_runs[0]["score"] == pytest.approx(t.score())
        assert len({r["score"] for r in t.seed_runs}) == 3  # other weights and order per seed
        assert t.score_std() is not None and t.score_std() > 0
    means = [result.trials[i].mean_score() for i in result.ranking]
    assert means == sorted(means)  # ranked by the mean over seeds
    v = result.verdict
    assert v["label"] == result.best.label and v["lr"] == result.best.peak_lr
    assert v["optimizer"] == result.best.optimizer["name"]
    assert v["confidence"] in ("high", "medium", "low")
    assert v["runner_up"]["sigmas"] is not None and v["runner_up"]["relative"] >= 0
    assert "won" in v["sentence"] and "spread over seeds" in v["sentence"]
    assert {e.seed for e in events} == {0, 1, 2}
    assert events[-1].step == events[-1].total == 4 * 30 * 3
    json.dumps(result.to_dict(), allow_nan=False)


def test_one_seed_says_the_noise_was_not_measured() -> None:
    config = TrialsConfig(center_lr=0.01, default_optimizers=["adamw"], lr_factors=[1.0, 3.0],
                          steps=20, eval_every=10, extend_edges=0)
    v = run_trials_on(*_setup(), config).verdict
    assert v["confidence"] == "unmeasured" and "seeds >= 2" in v["sentence"]


def test_seeds_need_a_factory_that_takes_a_seed_offset() -> None:
    factory, bundle = _setup()
    config = TrialsConfig(center_lr=0.01, default_optimizers=["adamw"], lr_factors=[1.0],
                          steps=4, eval_every=4, seeds=2)
    with pytest.raises(SpecError) as err:
        run_trials_on(lambda: factory(), bundle, config)
    assert err.value.field == "config.seeds"


def test_planned_steps_cover_seeds_and_extensions() -> None:
    c = TrialsConfig(steps=100, seeds=2, extend_edges=2, range_test_steps=50)
    assert c.planned_steps() == (2 * 3 + 2 * 2) * 100 * 2 + 2 * 50
    # the refinement: at most two more candidates per default optimizer
    refined = c.model_copy(update={"refine": True})
    assert refined.planned_steps() == (2 * 3 + 2 * 2 + 2 * 2) * 100 * 2 + 2 * 50
    cands = [TrialCandidate(optimizer=OptimizerSpec(name="adamw", lr=1e-3))]
    assert TrialsConfig(candidates=cands, steps=10).planned_steps() == 10


def _adamw(*lrs: float) -> TrialsConfig:
    return TrialsConfig(candidates=[TrialCandidate(optimizer=OptimizerSpec(name="adamw", lr=lr))
                                    for lr in lrs], steps=30, eval_every=10)


def test_a_winner_whose_next_higher_lr_is_far_worse_is_said_to_sit_near_the_edge() -> None:
    result = run_trials_on(*_setup(), _adamw(0.003, 0.01, 10.0))
    v = result.verdict
    assert v["lr"] == 0.01  # lr 10 trains, but ~20x worse
    assert v["next_up"]["label"] == result.trials[2].label and v["next_up"]["relative"] >= 1
    assert v["near_stability_edge"] and "edge of stability" in v["sentence"]
    assert "seeds >= 2 before the full run" in v["sentence"]
    # the candidates clipped (TrialCandidate's default 1.0): the sentence says so, with τ
    assert "clipped the gradient norm at 1;" in v["sentence"]
    json.dumps(result.to_dict(), allow_nan=False)


def test_a_next_step_that_trains_comparably_gives_no_edge_warning() -> None:
    result = run_trials_on(*_setup(), _adamw(0.01, 0.03, 1.0, 10.0))
    v = result.verdict
    assert v["lr"] == 0.03 and v["next_up"]["label"] == result.trials[2].label
    assert 0 <= v["next_up"]["relative"] < 1  # lr 1 is worse, but not twice as bad
    assert not v["near_stability_edge"] and "edge of stability" not in v["sentence"]


def test_a_diverged_next_step_warns_and_the_top_lr_has_no_next_step() -> None:
    base = run_trials_on(*_setup(), _adamw(0.003, 0.01, 10.0))
    trials = list(base.trials)
    trials[2] = dataclasses.replace(trials[2], diverged=True, diverged_at=3)
    v = _verdict(trials, _rank(trials), 1, {})
    assert v["lr"] == 0.01 and v["next_up"]["diverged"] and v["near_stability_edge"]
    assert f"{trials[2].label}, diverged" in v["sentence"]
    # with seeds measured already, the sentence does not ask for them again
    assert "a longer run" in _verdict(trials, _rank(trials), 3, {})["sentence"]
    # unclipped trials: still near the edge, and nothing said about clipping
    unclipped = [dataclasses.replace(t, clip_norm=None) for t in trials]
    v = _verdict(unclipped, _rank(unclipped), 1, {})
    assert v["near_stability_edge"] and "clipped" not in v["sentence"]
    top = run_trials_on(*_setup(), TrialsConfig(
        center_lr=1e-3, default_optimizers=["adamw"], lr_factors=[1 / 3, 1.0], steps=30,
        eval_every=10, extend_edges=0)).verdict
    assert top["lr"] == 1e-3 and top["next_up"] is None and not top["near_stability_edge"]


# centre 3.0: the lowest LR wins, one neighbour (above); centre 0.1 with ×10 steps: the middle
# wins, refined on both sides
@pytest.mark.parametrize(("center", "factors", "n_refined"), [(3.0, [1 / 3, 1.0, 3.0], 1),
                                                               (0.1, [0.1, 1.0, 10.0], 2)])
def test_refine_tries_half_a_step_either_side_of_the_best(center: float, factors: list[float],
                                                          n_refined: int) -> None:
    config = TrialsConfig(center_lr=center, lr_factors=factors, default_optimizers=["adamw"],
                          steps=30, eval_every=10, extend_edges=0, refine=True)
    events: list[ProgressEvent] = []
    result = run_trials_on(*_setup(), config, progress=events.append)
    grid = [t for t in result.trials if t.phase == "trial"]
    best_of_grid = min(grid, key=lambda t: t.mean_score()).peak_lr
    expected = refined_lrs([t.peak_lr for t in grid], best_of_grid)
    assert len(expected) == n_refined  # the case exercises the side(s) it is meant to
    refined = [t for t in result.trials if t.phase == "refine"]
    assert [t.peak_lr for t in refined] == pytest.approx(expected)
    assert [t.phase for t in result.trials] == ["trial"] * 3 + ["refine"] * len(expected)
    # each refinement is a full default candidate: the optimizer's defaults and its schedule
    assert all(t.schedule_source == "default" and t.schedule is not None
               and t.optimizer["lr"] == pytest.approx(t.peak_lr) for t in refined)
    edge = result.edges["adamw"]
    assert edge["refined_lrs"] == pytest.approx(expected)
    assert edge["grid_lrs"] == pytest.approx(sorted(t.peak_lr for t in result.trials))
    # ranked with the rest: the winner is the best of all of them, refinements included
    assert result.best.mean_score() == min(t.mean_score() for t in result.trials)
    # progress names the phase, the candidate and its LR; the total grew by the refinements
    ref = [e for e in events if e.phase == "refine"]
    assert sorted({e.candidate_lr for e in ref}) == pytest.approx(sorted(expected))
    assert {e.candidate for e in ref} == {t.label for t in refined}
    assert [e.step for e in events] == sorted(e.step for e in events)
    assert events[-1].step == events[-1].total == (3 + len(expected)) * 30


def test_refine_runs_after_the_extensions_and_over_every_seed() -> None:
    # centre 3.0 for AdamW is far too high: the grid extends below, then the best is refined
    config = TrialsConfig(center_lr=3.0, default_optimizers=["adamw"], steps=20, eval_every=10,
                          extend_edges=1, refine=True, seeds=2)
    result = run_trials_on(*_setup(), config)
    phases = [t.phase for t in result.trials]
    assert phases[:4] == ["trial"] * 3 + ["extension"]
    refined = [t for t in result.trials if t.phase == "refine"]
    before = [t for t in result.trials if t.phase != "refine"]
    best = min(before, key=lambda t: t.mean_score()).peak_lr
    assert [t.peak_lr for t in refined] == pytest.approx(
        refined_lrs([t.peak_lr for t in before], best))
    assert all(len(t.seed_runs) == 2 for t in refined)


def test_explicit_candidates_are_not_refined() -> None:
    cands = [TrialCandidate(optimizer=OptimizerSpec(name="adamw", lr=lr)) for lr in (1e-3, 1e-2)]
    result = run_trials_on(*_setup(), TrialsConfig(candidates=cands, steps=10, eval_every=10,
                                                   refine=True))
    assert [t.phase for t in result.trials] == ["trial", "trial"]
    assert result.edges["adamw"]["refined_lrs"] == []
