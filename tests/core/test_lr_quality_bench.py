"""The LR-quality benchmark's smoke run (``python -m bench.lr_quality --quick``): it runs, and its
numbers are what it says they are (regret = final loss at the pick / best grid loss)."""

from __future__ import annotations

import json
import math
import pathlib

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
    s = doc["summary"]["all"]["recommended"]
    assert s["cases"] == 1 and s["diverged"] == 0
    assert set(doc["summary"]) == {"all", "fit"}  # convex_logreg is a FIT problem
