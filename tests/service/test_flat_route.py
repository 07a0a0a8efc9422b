"""The flat path of ``app.core.routing``: the advice routes call their endpoint directly with the
strictly validated body, and every answer is the one FastAPI's own path gives — the same status,
content type and body, for good bodies and bad ones — and callers are still checked (keys,
rate limit). Real Redis (DB 13 for the cache, a namespace for the keys)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from fastapi import APIRouter, Depends, FastAPI, Request, Response
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from app.auth.keys import KeyStore
from app.core import routing
from app.core.config import Settings
from app.main import create_app
from tests.jobs_support import new_namespace

CACHE_URL = "redis://127.0.0.1:6379/13"
SPEC: dict[str, Any] = {"task": "llm_pretrain", "architecture": "decoder_transformer",
                        "param_count": 350_000_000, "batch_size": 256, "seq_len": 2048,
                        "dataset_size": 10**11, "dataset_unit": "tokens", "total_steps": 190_000}
GOOD = json.dumps(SPEC).encode()
JSON = {"Content-Type": "application/json"}
# Bodies that go near what the flat path skips (json.loads and the strict-JSON walk) or that
# the two parsers might read differently; each must get the same answer from both paths.
BODIES: dict[str, bytes] = {
    "good": GOOD,
    "reference with exponents": json.dumps({**SPEC, "reference": {
        "lr": 3e-4, "batch_size": 512, "optimizer": "adamw"}}).encode(),
    "duplicate key (the last wins)": GOOD[:-1] + b', "batch_size": 128}',
    "spaces and newlines": json.dumps(SPEC, indent=2).encode(),
    "a string holding NaN": json.dumps({**SPEC, "task": "NaN"}).encode(),
    "NaN token": GOOD[:-1] + b', "epochs": NaN}',
    "overflowing exponent": GOOD[:-1] + b', "dropout": 1e400}',
    "309-digit number": GOOD[:-1] + b', "dropout": ' + b"1" * 309 + b".0}",
    "lone surrogate": json.dumps({**SPEC, "task": "\ud800"}).encode("utf-8", "surrogatepass"),
    "escaped surrogate": GOOD[:-1] + b', "modality": "\\ud800"}',
    "invalid UTF-8": GOOD[:-1] + b', "modality": "\xff"}',
    "BOM": b"\xef\xbb\xbf" + GOOD,
    "a boolean for an int": json.dumps({**SPEC, "batch_size": True}).encode(),
    "a float for an int": json.dumps({**SPEC, "batch_size": 256.0}).encode(),
    "a string for an int": json.dumps({**SPEC, "batch_size": "256"}).encode(),
    "out of range": json.dumps({**SPEC, "batch_size": 10**9}).encode(),
    "unknown field": json.dumps({**SPEC, "lr": 0.1}).encode(),
    "missing field": json.dumps({k: v for k, v in SPEC.items() if k != "task"}).encode(),
    "empty object": b"{}",
    "array": b"[]",
    "null": b"null",
    "truncated": GOOD[:40],
    "trailing garbage": GOOD + b"x",
}


def _not_a_dependency() -> None:  # pragma: no cover - never called: only its override is set
    raise AssertionError


@pytest.fixture(scope="module")
def app() -> Iterator[FastAPI]:
    yield create_app(Settings(redis_url=CACHE_URL, cache_redis_url=CACHE_URL))


@pytest.fixture()
def flat_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the requests the flat path answered."""
    seen: list[str] = []
    original = routing.FlatCall.__call__

    async def counted(self: routing.FlatCall, request: Any, model: Any) -> Any:
        seen.append(request.url.path)
        return await original(self, request, model)

    monkeypatch.setattr(routing.FlatCall, "__call__", counted)
    return seen


def _answer(client: TestClient, path: str, body: bytes,
            content_type: str | None = "application/json") -> tuple[int, str, Any]:
    r = client.post(path, content=body,
                    headers={"Content-Type": content_type} if content_type else {})
    try:
        parsed: Any = r.json()
    except ValueError:
        parsed = r.text
    if isinstance(parsed, dict):
        parsed.pop("cached", None)  # the second answer of a spec is a cache hit
        parsed.pop("instance", None)
        parsed.pop("request_id", None)  # one per request
    return r.status_code, r.headers.get("content-type", ""), parsed


def test_the_advice_routes_qualify_and_a_model_returning_route_does_not(
        app: FastAPI, flat_calls: list[str]) -> None:
    with TestClient(app) as client:
        assert client.post("/v1/advice", content=GOOD, headers=JSON).status_code == 200
        batch = json.dumps({"items": [SPEC]}).encode()
        assert client.post("/v1/advice/batch", content=batch, headers=JSON).status_code == 200
        preview = {"schedule": {"name": "constant", "lr": 0.1}, "total_steps": 10}
        assert client.post("/v1/schedules/preview", json=preview).status_code == 200
    assert flat_calls == ["/v1/advice", "/v1/advice/batch"]


@pytest.mark.parametrize("name", list(BODIES))
def test_both_paths_give_the_same_answer(app: FastAPI, flat_calls: list[str], name: str) -> None:
    body = BODIES[name]
    with TestClient(app) as client:
        flat = _answer(client, "/v1/advice", body)
        took_flat = bool(flat_calls)
        app.dependency_overrides[_not_a_dependency] = _not_a_dependency  # FastAPI's path
        try:
            full = _answer(client, "/v1/advice", body)
        finally:
            app.dependency_overrides.clear()
    assert len(flat_calls) == int(took_flat), "the flat path ran while overrides were set"
    assert flat == full, (name, flat, full)
    assert flat[0] < 500, flat
    # Only a body the strict validation accepts, without what the walk looks for, is flat.
    assert took_flat == (flat[0] == 200 and routing._MAY_NEED_WALK.search(body) is None), name


@pytest.mark.parametrize("content_type", ["text/plain", None])
def test_a_body_without_a_json_content_type_is_refused_naming_the_header(
        app: FastAPI, flat_calls: list[str], content_type: str | None) -> None:
    with TestClient(app) as client:
        status, media, problem = _answer(client, "/v1/advice", GOOD, content_type=content_type)
    assert flat_calls == [] and status == 422 and media == "application/problem+json"
    (err,) = problem["errors"]
    assert err["field"] == "header.content-type" and "application/json" in err["message"]
    assert "json" in err["allowed"]


def test_a_request_fastapis_telemetry_traces_takes_fastapis_path(
        app: FastAPI, flat_calls: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """FastAPI's OpenTelemetry spans of dependencies and serialisation come from its own path:
    while a request is traced (``get_telemetry_data()`` is its data), the flat path steps aside."""
    monkeypatch.setattr(routing, "get_telemetry_data", lambda: object())
    with TestClient(app) as client:
        status, _, body = _answer(client, "/v1/advice", GOOD)
    assert status == 200 and body["optimizer"]["name"] == "adamw"
    assert flat_calls == []


def test_callers_are_still_checked_on_the_flat_path(flat_calls: list[str]) -> None:
    ns = new_namespace()
    store = KeyStore(redis.Redis.from_url(ns.redis_url, decode_responses=True), ns.jobs_prefix)
    key = store.create("team-flat", "user")[1]
    settings = Settings(**ns.settings_kwargs(), cache_redis_url=CACHE_URL, auth="keys",
                        rate_limit_burst=2, rate_limit_per_s=0.001)
    try:
        with TestClient(create_app(settings)) as client:
            anonymous = client.post("/v1/advice", content=GOOD, headers=JSON)
            forged = client.post("/v1/advice", content=GOOD, headers={
                **JSON, "Authorization": "Bearer oak_00000000_" + "x" * 43})
            auth = {**JSON, "Authorization": f"Bearer {key}"}
            answers = [client.post("/v1/advice", content=GOOD, headers=auth) for _ in range(3)]
    finally:
        ns.cleanup()
    assert anonymous.status_code == 401 and forged.status_code == 401
    assert anonymous.headers["www-authenticate"].startswith("Bearer")
    assert [a.status_code for a in answers] == [200, 200, 429], [a.text for a in answers]
    assert int(answers[2].headers["retry-after"]) > 0
    assert len(flat_calls) == 5  # every one of them went the flat way, and was still checked



class _Echo(BaseModel):
    n: int


_audited: list[str] = []


async def _audit(request: Request) -> None:
    _audited.append(request.url.path)


async def _echo(body: _Echo) -> Response:
    return Response(str(body.n * 2), media_type="text/plain")


def test_an_inclusions_dependencies_and_prefix_reach_the_flat_path(flat_calls: list[str]) -> None:
    """FastAPI builds an included route from its inclusion's context; the flat path must take
    the dependencies given to ``include_router`` from there too, not skip them."""
    router = APIRouter(route_class=routing.ContractRoute)
    router.add_api_route("/echo", _echo, methods=["POST"])
    app = FastAPI()
    app.include_router(router, prefix="/p", dependencies=[Depends(_audit)])
    _audited.clear()
    with TestClient(app) as client:
        r = client.post("/p/echo", json={"n": 21})
    assert (r.status_code, r.text) == (200, "42")
    assert flat_calls == ["/p/echo"] and _audited == ["/p/echo"]


_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-10**20, max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12),
    st.sampled_from(["llm_pretrain", "adamw", "tokens", "examples", "cnn", "finetune", "text"]),
    st.sampled_from([1, 8, 64, 512, 4096, 10**6, 0.1, 0.5, 3.0, 1e-4]),
    st.lists(st.sampled_from(["layernorm", "batchnorm", "x"]), max_size=3))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=st.dictionaries(st.sampled_from([*SPEC, "epochs", "optimizer", "normalization",
                                                "dropout", "stage", "modality", "memory_tight"]),
                               _VALUES, max_size=4),
       drop=st.sets(st.sampled_from(list(SPEC)), max_size=2))
def test_both_paths_agree_on_generated_bodies(app: FastAPI, changes: dict[str, Any],
                                              drop: set[str]) -> None:
    body = json.dumps({**{k: v for k, v in SPEC.items() if k not in drop}, **changes}).encode()
    with TestClient(app) as client:
        flat = _answer(client, "/v1/advice", body)
        app.dependency_overrides[_not_a_dependency] = _not_a_dependency
        try:
            full = _answer(client, "/v1/advice", body)
        finally:
            app.dependency_overrides.clear()
    assert flat == full and flat[0] in (200, 422), (body, flat, full)
