"""The LR floor (optim_core.bounds.MIN_LR): a reference LR below it is refused, one that batch
scaling would take below it is refused naming ``reference.lr`` and the bound for that batch
change, and every LR the advice derives is at least MIN_LR: nothing divides by an LR rounded to 0
(the fuzzer's 500: ``reference.lr`` 5e-324 scaled from batch 10^7 to 1)."""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from app.api.routes import advice as advice_api
from app.core.config import Settings
from app.main import create_app
from optim_core.advice import AdviceRequest, advise
from optim_core.bounds import MAX_LR, MIN_LR
from optim_core.errors import SpecError
from optim_core.specs.jobs import TrialsConfig
from optim_core.specs.range_test import RangeTestConfig

CACHE_URL = "redis://127.0.0.1:6379/13"
# The fuzzer's request: SGD on a CNN, so the linear rule scales the reference by 1/256.
TINY = {"task": "image_classification_cnn", "param_count": 1_000_000, "batch_size": 1,
        "dataset_size": 1000, "total_steps": 100,
        "reference": {"batch_size": 10_000_000, "lr": 5e-324}}


def _with_ref(lr: float, **kw: Any) -> dict[str, Any]:
    return {**TINY, **kw, "reference": {**TINY["reference"], "lr": lr}}


@pytest.mark.parametrize("lr", [5e-324, 1e-300, MIN_LR / 2])
def test_a_reference_lr_below_the_floor_is_refused_with_the_floor(lr: float) -> None:
    with pytest.raises(ValidationError) as info:
        AdviceRequest.model_validate(_with_ref(lr))
    (err,) = info.value.errors()
    assert err["loc"] == ("reference", "lr") and err["ctx"] == {"ge": MIN_LR}


def test_a_range_test_cannot_start_below_the_floor() -> None:
    with pytest.raises(ValidationError) as info:
        RangeTestConfig(start_lr=5e-324)
    assert info.value.errors()[0]["ctx"] == {"ge": MIN_LR}
    assert RangeTestConfig(start_lr=MIN_LR).lr_at(50) > MIN_LR  # a finite geometric sweep


def test_a_reference_scaled_below_the_floor_is_refused_naming_it_and_its_bound() -> None:
    with pytest.raises(SpecError) as info:
        advise(AdviceRequest.model_validate(_with_ref(MIN_LR)))
    exc = info.value
    assert exc.field == "reference.lr" and exc.value == MIN_LR
    assert exc.allowed is not None and exc.allowed.startswith(">= 2.56e-10")
    # The bound it states is one the engine accepts, and the advice is then at the floor.
    bound = float(exc.allowed.split()[1])
    a = advise(AdviceRequest.model_validate(_with_ref(bound)))
    assert a.optimizer.lr >= MIN_LR and a.search.lr_range[0] >= MIN_LR


def _lrs(advice: Any) -> list[float]:
    out = [advice.optimizer.lr, advice.schedule.peak_lr, *advice.search.lr_range]
    for cand in advice.artefacts.trial_config["candidates"]:
        out.append(cand["optimizer"]["lr"])
    return out


@settings(max_examples=150, deadline=None)
@given(lr=st.floats(MIN_LR, MAX_LR), ref_batch=st.integers(1, 10_000_000),
       batch=st.integers(1, 10_000_000),
       task=st.sampled_from(["image_classification_cnn", "encoder_finetune", "other"]),
       optimizer=st.sampled_from([None, "sgd", "adamw", "lion", "lars"]))
def test_any_reference_is_advised_above_the_floor_or_refused_on_its_lr(
        lr: float, ref_batch: int, batch: int, task: str, optimizer: str | None) -> None:
    body = {**_with_ref(lr), "task": task, "batch_size": batch, "seq_len": 128,
            "reference": {"batch_size": ref_batch, "lr": lr}}
    if optimizer is not None:
        body["optimizer"] = optimizer
    req = AdviceRequest.model_validate(body)
    try:
        a = advise(req)
    except SpecError as exc:
        assert exc.field == "reference.lr" and exc.allowed and exc.allowed.startswith(">= ")
        # The bound the refusal states is one the engine accepts.
        bound = float(exc.allowed.split()[1])
        body["reference"]["lr"] = bound
        a = advise(AdviceRequest.model_validate(body))
        assert a.optimizer.lr >= MIN_LR
        return
    assert all(math.isfinite(x) and MIN_LR <= x <= MAX_LR for x in _lrs(a)), _lrs(a)
    TrialsConfig.model_validate(a.artefacts.trial_config)


@pytest.fixture()
def client() -> Iterator[TestClient]:
    with TestClient(create_app(Settings(redis_url=CACHE_URL, cache_redis_url=CACHE_URL))) as c:
        yield c


def test_the_advice_route_answers_422_naming_the_reference_lr(client: TestClient) -> None:
    r = client.post("/v1/advice", json=TINY)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "body.reference.lr"
    r = client.post("/v1/advice", json=_with_ref(MIN_LR))
    assert r.status_code == 422, r.text
    (err,) = r.json()["errors"]
    assert err["field"] == "body.reference.lr" and err["allowed"].startswith(">= 2.56e-10")


def test_a_batch_answers_each_item_in_its_slot(client: TestClient) -> None:
    good = {"task": "other", "param_count": 10, "batch_size": 8, "dataset_size": 100,
            "epochs": 1}
    r = client.post("/v1/advice/batch", json={"items": [good, TINY, _with_ref(MIN_LR)]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert (body["succeeded"], body["failed"]) == (1, 2)
    assert [it["status"] for it in body["items"]] == [200, 422, 422]
    assert body["items"][1]["problem"]["errors"][0]["field"] == "body.items[1].reference.lr"
    scaled = body["items"][2]["problem"]
    assert scaled["type"].endswith("invalid-spec")
    assert scaled["errors"][0]["field"] == "body.items[2].reference.lr"
    assert scaled["errors"][0]["allowed"].startswith(">= 2.56e-10")


def test_an_engine_failure_on_one_item_leaves_the_others_answered(
        client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    real = advice_api._advice_json

    def failing(req: AdviceRequest) -> bytes:
        if req.param_count == 13:
            raise RuntimeError("a bug in the engine")
        return real(req)

    monkeypatch.setattr(advice_api, "_advice_json", failing)
    good = {"task": "other", "param_count": 10 + uuid.uuid4().int % 10**9, "batch_size": 8,
            "dataset_size": 100, "epochs": 1}  # not in the cache from an earlier run
    r = client.post("/v1/advice/batch", json={"items": [good, {**good, "param_count": 13}]})
    assert r.status_code == 200, r.text
    items = r.json()["items"]
    assert [it["status"] for it in items] == [200, 500]
    assert items[1]["problem"]["type"].endswith("internal-error")
