"""The Python reader of job results (the typed union the API declares) and the SVG plots drawn
from it (pure Python: no numpy in the API process). Results come from real, tiny jobs run through
the same entry points and adapter the workers use."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest

from app.schemas.job_results import (
    RangeTestResult,
    TrialsResult,
    read_result,
    suggestion_marks,
    validation_lrs,
)
from app.services.plots import job_svg
from optim_core.training.experiment import run_range_test, run_trials
from workers.results import job_result

EXPERIMENT = {"data": {"kind": "classification", "n_samples": 256, "n_features": 8,
                       "n_classes": 3, "seed": 0},
              "model": {"kind": "mlp", "hidden": [16]}, "batch_size": 32, "seed": 0,
              "val_fraction": 0.25}


def _noop(*_: Any) -> None:
    return None


@pytest.fixture(scope="module")
def range_test() -> dict[str, Any]:
    out = run_range_test({"experiment": EXPERIMENT, "config": {"num_steps": 40}}, device="cpu",
                         progress=_noop, should_stop=lambda: False)
    return job_result("range_test", out)


@pytest.fixture(scope="module")
def trials() -> dict[str, Any]:
    request = {"experiment": EXPERIMENT,
               "config": {"candidates": [{"optimizer": {"name": "adamw", "lr": 3e-3}},
                                         {"optimizer": {"name": "sgd", "lr": 3e-2}}],
                          "steps": 20, "eval_every": 10}}
    out = run_trials(request, device="cpu", progress=_noop, should_stop=lambda: False)
    return job_result("trials", out)


def test_a_range_test_result_reads_as_its_typed_model(range_test: dict[str, Any]) -> None:
    view = read_result(range_test)
    assert isinstance(view, RangeTestResult)
    assert view.curve.points == len(view.curve.lrs) == len(view.curve.losses)
    assert view.validation is not None
    assert validation_lrs(view) == [view.curve.lrs[s] for s in view.validation.steps]
    marks = suggestion_marks(view.suggestions)
    assert marks[0][0] == "recommended" and all(lr > 0 for _, lr in marks)
    assert read_result(view) is view and read_result(None) is None


def test_a_trials_result_reads_as_its_typed_model(trials: dict[str, Any]) -> None:
    view = read_result(trials)
    assert isinstance(view, TrialsResult)
    assert sorted(view.ranking) == sorted(c.label for c in view.candidates)
    assert view.best == view.ranking[0]


def test_range_test_svg_is_valid_and_marks_every_suggestion(range_test: dict[str, Any]) -> None:
    view = read_result(range_test)
    assert isinstance(view, RangeTestResult)
    svg = job_svg(view, "LR range test: <mine> & co")
    root = ET.fromstring(svg)  # well-formed XML: the title is escaped
    marks = [el for el in root.iter("{http://www.w3.org/2000/svg}line")
             if el.get("class") == "mark"]
    assert len(marks) == len(suggestion_marks(view.suggestions))
    assert f"recommended {view.suggestions.recommended:.3g}" in svg and "1cycle bounds" in svg
    assert "&lt;mine&gt; &amp; co" in svg


def test_trials_svg_draws_each_candidate_and_the_best_bold(trials: dict[str, Any]) -> None:
    view = read_result(trials)
    assert isinstance(view, TrialsResult)
    root = ET.fromstring(job_svg(view, "trials"))
    paths = list(root.iter("{http://www.w3.org/2000/svg}path"))
    assert len(paths) == len(view.candidates)
    best = view.ranking_indices[0]
    assert paths[best].get("stroke-width") == "3.0"


def test_a_curve_without_finite_points_still_draws(range_test: dict[str, Any]) -> None:
    blank = {**range_test, "curve": {**range_test["curve"],
                                     "losses": [None] * range_test["curve"]["points"],
                                     "raw_losses": [None] * range_test["curve"]["points"]},
             "validation": None,
             "suggestions": {**range_test["suggestions"], "recommended": None}}
    view = read_result(blank)
    assert view is not None and "no finite loss" in job_svg(view, "empty")
