"""The one Python reader of job results (target shape and today's) and the SVG plots drawn from
it (pure Python: no numpy in the API process)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from app.schemas.job_results import RangeTestView, TrialsView, read_result
from app.services.plots import job_svg

SUGG = {"steepest": 0.01, "valley": 0.003, "minimum_div10": 0.005, "lr_at_min": 0.05,
        "recommended": 0.004, "confidence": 0.8, "reason": "why", "flags": ["noisy"],
        "cycle_max_lr": 0.03, "cycle_min_lr": 0.003}
LRS = [1e-5 * 10 ** (i / 10) for i in range(40)]
LOSSES = [2.0 - 0.03 * i if i < 30 else 1.1 + 0.5 * (i - 30) for i in range(40)]


def test_today_envelope_and_target_flat_shape_read_the_same() -> None:
    today = {"kind": "range_test", "param_count": 10, "result": {
        "lrs": LRS, "losses": LOSSES, "raw_losses": LOSSES, "val_steps": [0, 10, 20],
        "val_losses": [2.0, 1.7, 1.4], "suggestions": SUGG, "stop_reason": "diverged",
        "steps_run": 40}}
    target = {"kind": "range_test", "curve": {"lrs": LRS, "losses": LOSSES, "raw_losses": LOSSES,
                                              "points": 40},
              "validation": {"steps": [0, 10, 20], "losses": [2.0, 1.7, 1.4]},
              "suggestions": SUGG, "stop_reason": "diverged", "steps_run": 40}
    a, b = read_result(today, "lr-range-test"), read_result(target, "range_test")
    assert isinstance(a, RangeTestView) and a == b
    assert a.val_lrs() == [LRS[0], LRS[10], LRS[20]]
    assert next(n for n, _ in a.suggestions.marks()) == "recommended"
    assert read_result(None) is None


def test_trials_shapes() -> None:
    trial = {"label": "adamw lr=0.01", "peak_lr": 0.01, "optimizer": {"name": "adamw"},
             "smoothed_train_losses": [2.0, 1.5, 1.2], "final_val_loss": 1.1}
    today = {"kind": "trials", "result": {"trials": [trial, {**trial, "label": "b"}],
                                          "ranking": ["b", "adamw lr=0.01"], "best": "b"}}
    target = {"kind": "trials", "candidates": [
        {**{k: v for k, v in trial.items() if k != "smoothed_train_losses"},
         "curves": {"smoothed_train_losses": [2.0, 1.5, 1.2]}},
        {**trial, "label": "b"}], "ranking": [{"label": "b"}, {"label": "adamw lr=0.01"}],
        "best": {"label": "b"}}
    a, b = read_result(today), read_result(target)
    assert isinstance(a, TrialsView) and isinstance(b, TrialsView)
    assert a.best == b.best == "b" and a.ranking == b.ranking == ["b", "adamw lr=0.01"]
    assert b.candidates[0].smoothed_train_losses == [2.0, 1.5, 1.2]


def test_range_test_svg_is_valid_and_marks_every_suggestion() -> None:
    view = read_result({"kind": "range_test", "result": {
        "lrs": LRS, "losses": [*LOSSES[:-1], None], "raw_losses": LOSSES,
        "suggestions": SUGG}})
    assert view is not None
    svg = job_svg(view, "LR range test: <mine> & co")
    root = ET.fromstring(svg)  # well-formed XML: the title is escaped
    marks = [el for el in root.iter("{http://www.w3.org/2000/svg}line")
             if el.get("class") == "mark"]
    assert len(marks) == 5
    assert "recommended 0.004" in svg and "1cycle bounds" in svg
    assert "&lt;mine&gt; &amp; co" in svg


def test_trials_svg_draws_each_candidate_and_the_best_bold() -> None:
    view = read_result({"kind": "trials", "candidates": [
        {"label": "a", "smoothed_train_losses": [2.0, 1.0, 0.5]},
        {"label": "b", "smoothed_train_losses": [2.0, 1.5, None, 1.2]}], "best": "a"})
    assert view is not None
    root = ET.fromstring(job_svg(view, "trials"))
    paths = list(root.iter("{http://www.w3.org/2000/svg}path"))
    assert len(paths) == 2 and paths[0].get("stroke-width") == "3.0"


def test_a_curve_without_finite_points_still_draws() -> None:
    view = read_result({"kind": "range_test", "lrs": [1e-3, 1e-2], "losses": [None, None],
                        "suggestions": {}})
    assert view is not None and "no finite loss" in job_svg(view, "empty")
