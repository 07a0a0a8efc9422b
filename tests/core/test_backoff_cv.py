"""``bench/backoff_cv.py``: the back-off is chosen by the rule it states, leave-one-problem-out
scores each problem with the back-off chosen without it, and a real (smoke) run trains the picks
``suggest`` would make."""

from __future__ import annotations

import json
import math
import pathlib

import pytest

from bench import backoff_cv, lr_quality
from optim_core.numerics import suggest


def _row(problem: str, regrets: dict[str, float | None]) -> dict:
    return {"problem": problem, "picks": {b: {"regret": v} for b, v in regrets.items()}}


def test_backoff_pick_is_the_rule_suggest_applies() -> None:
    assert suggest.backoff_pick(1.0, 1e-7, 5.0) == pytest.approx(0.2)
    assert suggest.backoff_pick(1.0, 1e-7, 2.0) == pytest.approx(1 / suggest.MIN_BACKOFF)  # clip
    assert suggest.backoff_pick(1e-6, 1e-6) == 1e-6  # never below the sweep's first LR
    lrs = [1e-4 * 1.1**k for k in range(100)]
    losses = [1.0 - 0.005 * k if k < 70 else 0.65 + 0.05 * (k - 70) for k in range(100)]
    s = suggest.suggest(lrs, losses)
    assert s.recommended == suggest.backoff_pick(s.lr_at_min, lrs[0])


def test_choose_takes_the_lowest_geometric_mean_and_counts_divergence_as_a_large_regret() -> None:
    rows = [_row("a", {"3": 1.0, "4": 1.1}), _row("a", {"3": 1.44, "4": 1.1})]
    # geometric means: /3 sqrt(1.44) = 1.2, /4 1.1 (the median would tie them at 1.22 and 1.1)
    assert backoff_cv.choose(rows, ["3", "4"]) == "4"
    rows = [_row("a", {"3": 1.0, "4": 1.5}), _row("a", {"3": None, "4": 1.5})]
    assert backoff_cv.regret(rows[1], "3") == math.inf
    assert math.isclose(backoff_cv.geo_mean([1.0, math.inf]), backoff_cv.DIVERGED_REGRET ** 0.5)
    assert backoff_cv.choose(rows, ["3", "4"]) == "4"  # one divergence outweighs a 1.5x miss
    s = backoff_cv.scores([1.0, math.inf])
    assert s["diverged"] == 1 and s["worst"] is None and s["meets_targets"] is False


def test_leave_one_problem_out_scores_each_problem_with_the_choice_made_without_it() -> None:
    rows = [_row(p, {"3": 1.0, "4": 1.3}) for p in "abc"] + [_row("d", {"3": 1.5, "4": 1.0})]
    cv = backoff_cv.cross_validate(rows, ["3", "4"], fit=lambda p: p == "d")
    assert cv["fit"] == "4" and cv["all"] == "3"
    # without a, b or c: two of the /3 problems and d still choose /3; without d: /3 too
    assert {p: f["chosen"] for p, f in cv["folds"].items()} == dict.fromkeys("abcd", "3")
    # so d is scored with /3, chosen on the others: its 1.5, not the 1.0 it would choose itself
    assert cv["folds"]["d"]["left_out"]["worst"] == 1.5
    lo = cv["lopo"]
    assert lo["cases"] == 4 and lo["worst"] == 1.5 and lo["within_1.1"] == 0.75
    assert math.isclose(lo["geo_mean"], 1.5 ** (1 / 4))
    assert math.isclose(cv["per_problem"]["a"]["4"], 1.3)
    # one problem leaves nothing to choose on: no folds, no estimate
    one = backoff_cv.cross_validate(rows[:1], ["3", "4"], fit=lambda p: False)
    assert one["folds"] == {} and one["lopo"] is None and one["fit"] is None
    assert "needs two problems" in backoff_cv.report(
        {"cv": one, "backoff_in_use": suggest.BACKOFF})


def test_a_smoke_run_trains_the_picks_of_a_quality_run(tmp_path: pathlib.Path) -> None:
    quality = tmp_path / "q.json"
    source = lr_quality.main(["--quick", "--out", str(quality)])
    out = tmp_path / "cv.json"
    in_use = f"{suggest.BACKOFF:g}"
    doc = backoff_cv.main(["--from", str(quality), "--backoffs", in_use, "10",
                           "--out", str(out)])
    (case,) = source["cases"]
    (row,) = doc["cases"]
    lr_min, first = case["range_test"]["lr_at_min"], case["range_test"]["curve"]["lrs"][0]
    for b in (in_use, "10"):
        assert row["picks"][b]["lr"] == suggest.backoff_pick(lr_min, first, float(b))
        assert math.isclose(row["picks"][b]["regret"],
                            row["picks"][b]["final_loss"] / case["best_grid_loss"])
    # the back-off in use is recommended's own pick, trained as the quality run trained it
    rec = case["rules"]["recommended"]
    assert row["picks"][in_use]["lr"] == rec["lr"]
    assert row["picks"][in_use]["final_loss"] == rec["final_loss"]
    assert doc["cv"]["all"] in (in_use, "10") and doc["cv"]["lopo"] is None  # one problem
    assert backoff_cv.main(["--summarise", str(out)]) == json.loads(json.dumps(doc))
