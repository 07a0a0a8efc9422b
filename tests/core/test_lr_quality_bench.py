"""The LR-quality benchmark's smoke run (``python -m bench.lr_quality --quick``): it runs, and its
numbers are what it says they are (regret = final loss at the pick / best grid loss)."""

from __future__ import annotations

import itertools
import json
import math
import pathlib

import torch

from bench import lr_quality


def test_quick_run_writes_consistent_regrets(tmp_path: pathlib.Path) -> None:
    out = tmp_path / "q.json"
    doc = lr_quality.main(["--quick", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(doc))
    (case,) = doc["cases"]
    grid = [g["final_loss"] for g in case["grid"] if g["final_loss"] is not None]
    assert case["best_grid_loss"] == min(grid)
    for rule in lr_quality.RULES:
        r = case["rules"][rule]
        if r["lr"] is not None and not r["diverged"]:
            assert math.isclose(r["regret"], r["final_loss"] / case["best_grid_loss"])
    # the trials pick: the service's trials ran (x1/3, x1, x3 at least) and their winner was judged
    assert len(case["trials"]["lrs"]) >= 3 and case["rules"]["trials"]["lr"] in case["trials"]["lrs"]
    w = doc["trials_warnings"]
    assert w["warned"] == int(case["trials"]["near_stability_edge"]) and w["bad_warned"] <= w["bad"]
    # followed: the seeds ran where the verdict warned, and only there
    followed = case["trials_followed"]
    assert followed["reran"] is case["trials"]["near_stability_edge"]
    if followed["reran"]:
        assert case["rules"]["trials_followed"]["lr"] in followed["lrs"]
    else:
        assert case["rules"]["trials_followed"] == case["rules"]["trials"]
    # the fine trials: five candidates over the default's span (extensions may add more)
    assert len(case["trials_fine"]["lrs"]) >= 5
    assert case["rules"]["trials_fine"]["lr"] in case["trials_fine"]["lrs"]
    assert case["trials_seeds3"]["seeds"] == 3
    # the refined trials: the default grid, its extensions, and half a step beside the winner
    for rule, seeds in (("trials_refined", 1), ("trials_refined_seeds3", 3)):
        assert case[rule]["seeds"] == seeds and len(case[rule]["lrs"]) > 3
        assert case["rules"][rule]["lr"] in case[rule]["lrs"]
    assert case["rules"]["trials_seeds3"]["lr"] in case["trials_seeds3"]["lrs"]
    assert w["bad_after_seeds"] == int(case["rules"]["trials_followed"]["diverged"]
                                       or (case["rules"]["trials_followed"]["regret"] or 0) > 2)
    # the bound: the grid trained on the trials' init, its best LR judged on the case's own
    other = case["grid_other_init"]
    assert other["init_offset"] == lr_quality.TRIALS_INIT_OFFSET
    assert [g["lr"] for g in other["grid"]] == [g["lr"] for g in case["grid"]]
    assert other["grid"] != case["grid"]  # other weights train to other losses
    finite = [g for g in other["grid"] if g["final_loss"] is not None]
    assert case["rules"]["grid_other_init"]["lr"] == min(finite, key=lambda g: g["final_loss"])["lr"]
    # the three-init bound: the grid's mean over the trials' three initial weights
    three = case["grid_seeds3"]
    assert three["init_offsets"] == [lr_quality.TRIALS_INIT_OFFSET + k
                                     for k in range(lr_quality.BOUND_SEEDS)]
    assert [g["lr"] for g in three["grid"]] == [g["lr"] for g in case["grid"]]
    assert three["grid"] != other["grid"]  # a mean over other weights, not the first's alone
    finite = [g for g in three["grid"] if g["final_loss"] is not None]
    assert case["rules"]["grid_seeds3"]["lr"] == min(finite, key=lambda g: g["final_loss"])["lr"]
    # the fine bounds: around their grid bound's best, at a quarter of the grid's step
    for fine, coarse in (("fine_other_init", "grid_other_init"), ("fine_seeds3", "grid_seeds3")):
        lrs = [g["lr"] for g in case[fine]["grid"]]
        assert case["rules"][coarse]["lr"] in lrs and len(lrs) >= 2 * lr_quality.FINE_PER_STEP
        finite = [g for g in case[fine]["grid"] if g["final_loss"] is not None]
        assert case["rules"][fine]["lr"] == min(finite, key=lambda g: g["final_loss"])["lr"]
    s = doc["summary"]["all"]["recommended"]
    assert s["cases"] == 1 and s["diverged"] == 0
    assert doc["by_setting"]["recommended"]["cases"] == 1  # one problem and optimizer
    (conf,) = doc["by_confidence"]
    assert conf["confidence"] == case["range_test"]["confidence"]
    assert conf["median"] == case["rules"]["recommended"]["regret"]
    assert set(doc["summary"]) == {"all", "fit"}  # convex_logreg is a FIT problem


def test_the_trials_pick_with_two_seeds_trains_two_other_initial_weights() -> None:
    problem = lr_quality.PROBLEMS["convex_logreg"](0, "adamw")
    lr, detail = lr_quality.trials_pick(problem, 0.1, 20, seeds=2)
    assert detail["seeds"] == 2 and lr in detail["lrs"]
    # the two seeds trained other weights: some candidate's score moved between them
    assert any(v is not None and v > 0 for v in detail["spreads"])
    # the problem's init offsets are other weights (what each seed's factory call builds)
    assert not torch.equal(next(problem.make_model_init(lr_quality.TRIALS_INIT_OFFSET).parameters()),
                           next(problem.make_model_init(lr_quality.TRIALS_INIT_OFFSET + 1).parameters()))


def test_cases_judged_in_other_processes_read_the_same_numbers(tmp_path: pathlib.Path) -> None:
    # the smoke run's settings (--quick fixes one seed) over two seeds
    argv = ["--problems", "convex_logreg", "--optimizers", "adamw", "--seeds", "0", "1",
            "--steps", "60", "--grid-per-decade", "2"]
    serial = lr_quality.main([*argv, "--out", str(tmp_path / "one.json")])
    parallel = lr_quality.main([*argv, "--jobs", "2", "--out", str(tmp_path / "two.json")])
    assert [c["seed"] for c in parallel["cases"]] == [0, 1]  # in the order asked for
    assert parallel["cases"] == serial["cases"] and parallel["summary"] == serial["summary"]


def test_the_fine_bound_searches_a_quarter_step_around_the_best_out_to_its_neighbours() -> None:
    lrs = [0.01, 0.1, 1.0]  # one decade a step
    fine = lr_quality._fine_around(lrs, 0.1)
    assert fine[0] == 0.01 and fine[-1] == 1.0 and 0.1 in fine
    assert len(fine) == 2 * lr_quality.FINE_PER_STEP + 1
    steps = [math.log10(b / a) for a, b in itertools.pairwise(fine)]
    assert all(math.isclose(d, 1 / lr_quality.FINE_PER_STEP) for d in steps)
    # at the grid's edge there is no neighbour on that side: the inner points only, the last
    # three quarters of a step past the grid
    edge = lr_quality._fine_around(lrs, 1.0)
    assert edge[0] == 0.1 and len(edge) == 2 * lr_quality.FINE_PER_STEP
    assert math.isclose(edge[-1], 10 ** ((lr_quality.FINE_PER_STEP - 1) / lr_quality.FINE_PER_STEP))


def _case(problem: str, best_lr: float, lr_at_min: float, losses: list[float],
          lrs: list[float]) -> dict:
    return {"problem": problem, "optimizer": "adamw", "best_grid_lr": best_lr,
            "best_grid_loss": min(losses), "range_test": {"lr_at_min": lr_at_min},
            "grid": [{"lr": lr, "final_loss": v} for lr, v in zip(lrs, losses, strict=True)]}


def test_headroom_counts_sharp_cases_offsets_and_the_hindsight_backoff() -> None:
    lrs = [0.01, 0.1, 1.0]  # one decade a step
    cases = [
        # sharp: only 0.1 within 1.1x; the minimum one decade above the best
        _case("a", 0.1, 1.0, [2.0, 1.0, 3.0], lrs),
        # flat: 0.01 and 0.1 both within 1.1x; minimum two decades above the best
        _case("a", 0.1, 10.0, [1.05, 1.0, 2.0], lrs),
        # the minimum at the best
        _case("b", 0.1, 0.1, [2.0, 1.0, 1.5], lrs),
    ]
    h = lr_quality.headroom(cases, lrs)
    assert math.isclose(h["grid_step_decades"], 1.0)
    assert math.isclose(h["sharp"], 2 / 3)
    o = h["offset_decades"]
    assert math.isclose(o["median"], 1.0) and math.isclose(o["min"], 0.0)
    assert math.isclose(o["max"], 2.0) and math.isclose(o["widest_over_seeds"], 1.0)
    # offsets 1, 2, 0 with a half-step (0.5 decade) window: no single back-off covers all three;
    # two back-offs cover two (0.5: offsets 0 and 1; 1.5: 1 and 2); the smaller one is chosen
    assert math.isclose(h["oracle_backoff"]["decades"], 0.5)
    assert math.isclose(h["oracle_backoff"]["within_half_step"], 2 / 3)
    assert "headroom (3 cases)" in lr_quality.headroom_text(h)


def test_per_setting_regret_divides_the_seed_mean_at_the_picks_by_the_best_seed_mean_lr() -> None:
    def case(problem: str, grid: list[float | None], rec: float, steep: float | None) -> dict:
        return {"problem": problem, "optimizer": "adamw",
                "grid": [{"lr": lr, "final_loss": v} for lr, v in zip((0.1, 1.0), grid, strict=True)],
                "rules": {"recommended": {"final_loss": rec},
                          "steepest": {"final_loss": steep}}}

    cases = [
        # seed means of the grid: 2.0 and 1.5 (the best LR in expectation is neither seed's best)
        case("p", [1.0, 2.0], 1.5, None), case("p", [3.0, 1.0], 1.7, 1.0),
        # a diverged grid point makes its mean infinite: the best is the other, 1.0
        case("q", [1.0, None], 1.0, 2.0),
    ]
    per = lr_quality.by_setting(cases)
    assert set(per) == {"recommended", "steepest"}
    rec, steep = per["recommended"], per["steepest"]
    assert rec["cases"] == 2  # one per setting, not per case
    assert math.isclose(rec["worst"], 1.6 / 1.5) and math.isclose(rec["median"], (1.6 / 1.5 + 1) / 2)
    assert rec["within_1.1"] == 1.0 and rec["diverged"] == 0
    # one seed's diverged pick makes the setting's mean infinite: diverged, and no finite worst
    assert steep["diverged"] == 1 and steep["worst"] is None and steep["meets_targets"] is False


def test_recommended_regret_is_grouped_by_the_range_tests_confidence() -> None:
    def case(conf: float, regret: float | None, diverged: bool = False) -> dict:
        return {"range_test": {"confidence": conf},
                "rules": {"recommended": {"regret": regret, "diverged": diverged}}}

    rows = lr_quality.by_confidence([case(0.6, 1.0), case(1.0, 1.3), case(0.6, 1.2),
                                     case(0.6, None, diverged=True), case(1.0, 1.05)])
    assert [r["confidence"] for r in rows] == [1.0, 0.6]  # highest first
    high, mid = rows
    assert high["cases"] == 2 and math.isclose(high["median"], 1.175)
    assert math.isclose(high["worst"], 1.3) and high["within_1.1"] == 0.5
    # a diverged pick counts as an infinite regret: it is the worst, and never within 1.1x
    assert mid["cases"] == 3 and mid["worst"] is None and math.isclose(mid["median"], 1.2)
    assert math.isclose(mid["within_1.1"], 1 / 3)
    text = lr_quality.confidence_text(rows)
    assert "| 1 | 2 | 1.175 | 1.300 | 50 % |" in text and "| 0.6 | 3 | 1.200 | inf | 33 % |" in text


def test_summarise_rereads_a_run_without_training(tmp_path: pathlib.Path, capsys) -> None:
    out = tmp_path / "q.json"
    doc = lr_quality.main(["--quick", "--out", str(out)])
    assert doc["headroom"]["cases"] == 1
    capsys.readouterr()
    again = lr_quality.main(["--summarise", str(out)])
    assert again == json.loads(out.read_text())
    printed = capsys.readouterr().out
    assert "| recommended |" in printed and "headroom (1 cases)" in printed
