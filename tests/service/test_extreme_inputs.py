"""Extreme finite numbers and stray non-finite ones never make a 500: /v1/diagnose on losses
near the float maximum, NaN in a registered model's options (refused, 422 naming the option), and
the content hash behind job de-duplication on whatever reaches it."""

from __future__ import annotations

import json
import math
import sys

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from app.core.config import Settings
from app.main import create_app
from app.schemas.jobs import RangeTestJobRequest
from optim_core.advice.diagnose import TrainingLog, diagnose
from optim_core.canonical import content_hash

BIG = sys.float_info.max
EXTREMES = [BIG, -BIG, 1e308, -1e308, 5e-324, -5e-324, 0.0, 1e-300, 1.0]


@pytest.fixture(scope="module")
def client() -> TestClient:
    with TestClient(create_app(Settings())) as c:
        yield c


@pytest.mark.parametrize("loss", [[1e308, -1e308] * 10, [BIG] * 3 + [-BIG] * 3 + [BIG] * 4,
                                  [1.7e308, 1e308, 5e307, 1.7e308, -1.7e308, 1e-300, 0.0, 1e308],
                                  [5e-324, 0.0, 5e-324, 1e-320, 0.0, 5e-324]])
def test_diagnose_answers_on_losses_near_the_float_limits(client: TestClient,
                                                          loss: list[float]) -> None:
    r = client.post("/v1/diagnose", json={"loss": loss, "val_loss": loss[:5],
                                          "lr": [1e308] * len(loss)})
    assert r.status_code == 200, r.text
    assert r.json()["findings"], r.text


def test_huge_alternating_losses_are_an_oscillation_with_their_own_values() -> None:
    d = diagnose(TrainingLog(loss=[1e308, -1e308] * 10))
    assert d.findings[0].kind == "oscillation"
    # The statistics are relative; the evidence quoting losses is in the log's own units.
    huge = diagnose(TrainingLog(loss=[3e307, 1e307, 5e306, 2e306, 1e306, 2e307, 8e307, 3e308]))
    div = next(f for f in huge.findings if f.kind == "divergence")
    assert div.evidence["end_loss"] > 1e307 and math.isfinite(div.evidence["end_loss"])


@given(st.lists(st.sampled_from(EXTREMES), min_size=4, max_size=30),
       st.lists(st.sampled_from(EXTREMES), min_size=3, max_size=6))
def test_every_finding_is_finite_json(loss: list[float], val: list[float]) -> None:
    d = diagnose(TrainingLog(loss=loss, val_loss=val, lr=[BIG] * len(loss), grad_norm=loss))
    json.dumps(d.model_dump(mode="json"), allow_nan=False)  # what the API must be able to send


def test_nan_in_a_registered_models_options_is_refused_naming_it() -> None:
    # The request model the job route validates with (its 422 document is rendered by
    # app.core.problems, which makes the echoed NaN safe).
    body = json.loads('{"experiment": {"data": {"kind": "digits"}, "model": {"kind": '
                      '"registered", "name": "mine", "options": {"width": NaN}}}}')
    with pytest.raises(ValidationError) as info:
        RangeTestJobRequest.model_validate(body)
    locs = {tuple(str(p) for p in e["loc"]) for e in info.value.errors()}
    assert any(loc[:3] == ("experiment", "model", "registered") and "width" in loc
               for loc in locs), locs
    assert any(e["type"] == "finite_number" for e in info.value.errors())


def test_the_content_hash_never_fails_on_a_non_finite_float() -> None:
    a = content_hash({"options": {"x": float("nan")}})
    b = content_hash({"options": {"x": float("inf")}})
    assert a != b and len(a) == 64
    assert a == content_hash({"options": {"x": float("nan")}})
    assert content_hash({"options": {"x": "nan"}}) != a  # a string is not the tagged float
