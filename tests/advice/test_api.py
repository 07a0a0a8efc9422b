"""HTTP: /v1/advice (+ real Redis cache in DB 13, and with the cache down), batch, schedule
preview, diagnose, and problem+json for bad fields."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from app.api.routes import advice as advice_api
from app.core.config import Settings
from app.main import create_app
from app.services.advice_cache import ReadPolicy, cache_key
from optim_core.advice.engine import advise
from optim_core.advice.models import AdviceRequest

CACHE_URL = "redis://127.0.0.1:6379/13"
SPEC: dict[str, Any] = {"task": "llm_pretrain", "architecture": "decoder_transformer",
                        "param_count": 125_000_000, "batch_size": 256, "seq_len": 2048,
                        "dataset_size": 3 * 10**11, "dataset_unit": "tokens",
                        "total_steps": 572_000}


@pytest.fixture()
def client():
    r = redis.Redis.from_url(CACHE_URL)
    for key in r.scan_iter("advice:*"):
        r.delete(key)
    app = create_app(Settings(redis_url=CACHE_URL, cache_redis_url=CACHE_URL))
    with TestClient(app) as c:
        yield c
    for key in r.scan_iter("advice:*"):
        r.delete(key)
    r.close()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _stored_advice(within_s: float = 10.0, want: int = 1) -> list[bytes]:
    """The advice keys in Redis once ``want`` of them are there (writes go out behind the
    response, gathered for advice_cache_write_window_s)."""
    r = redis.Redis.from_url(CACHE_URL)
    deadline = time.monotonic() + within_s
    while True:
        keys = list(r.scan_iter("advice:*"))
        if len(keys) >= want or time.monotonic() > deadline:
            r.close()
            return keys
        time.sleep(0.02)


def test_advice_is_cached_in_redis(client: TestClient) -> None:
    first = client.post("/v1/advice", json=SPEC)
    assert first.status_code == 200 and first.json()["cached"] is False
    keys = _stored_advice()
    assert len(keys) == 1
    # same request, different field order and defaults spelt out: same key
    again = client.post("/v1/advice", json={**dict(reversed(SPEC.items())), "dropout": 0.0})
    assert again.json()["cached"] is True
    body1, body2 = first.json(), again.json()
    body1.pop("cached"), body2.pop("cached")
    assert body1 == body2 and body1["optimizer"]["name"] == "adamw"


def _clear_advice() -> None:
    r = redis.Redis.from_url(CACHE_URL)
    for key in r.scan_iter("advice:*"):
        r.delete(key)
    r.close()


def test_cache_writes_wait_for_their_window_or_a_full_batch() -> None:
    _clear_advice()
    # A window far longer than the test takes: only a full batch can have sent these writes.
    app = create_app(Settings(redis_url=CACHE_URL, cache_redis_url=CACHE_URL,
                              advice_cache_write_window_s=30.0, advice_cache_write_batch=2))
    try:
        with TestClient(app) as c:
            assert c.post("/v1/advice", json=SPEC).json()["cached"] is False
            assert _stored_advice(within_s=0) == []  # behind the response, in its window
            assert c.post("/v1/advice", json={**SPEC, "batch_size": 512}).status_code == 200
            assert len(_stored_advice(within_s=20, want=2)) == 2  # the batch filled: sent
    finally:
        _clear_advice()


def test_stored_bodies_carry_the_ttl_and_the_bytes_as_sent() -> None:
    _clear_advice()
    app = create_app(Settings(redis_url=CACHE_URL, cache_redis_url=CACHE_URL,
                              advice_cache_ttl_s=600))
    items = [{**SPEC, "batch_size": 64 * (i + 1)} for i in range(5)]
    try:
        with TestClient(app) as c:
            r = c.post("/v1/advice/batch", json={"items": items})
            assert r.json()["succeeded"] == 5
        stored = _stored_advice(within_s=0)  # shutdown drained what waited
        assert len(stored) == 5
        store = redis.Redis.from_url(CACHE_URL)
        assert all(0 < store.ttl(k) <= 600 for k in stored)
        # what Redis holds is the answer's body as sent, less the ``cached`` flag
        sent = r.json()["items"][3]["result"]
        key = cache_key(AdviceRequest.model_validate(items[3]))
        held = json.loads(store.get(key))
        store.close()
        assert {**held, "cached": sent["cached"]} == sent
    finally:
        _clear_advice()


def test_shutdown_writes_what_waits_in_the_window() -> None:
    _clear_advice()
    app = create_app(Settings(redis_url=CACHE_URL, cache_redis_url=CACHE_URL,
                              advice_cache_write_window_s=30.0))
    try:
        with TestClient(app) as c:
            assert c.post("/v1/advice", json=SPEC).json()["cached"] is False
            t0 = time.monotonic()
        assert time.monotonic() - t0 < 20  # the window was cut short, not waited out
        assert len(_stored_advice(within_s=0)) == 1
    finally:
        _clear_advice()


def test_advice_answers_with_the_cache_down() -> None:
    url = f"redis://127.0.0.1:{_closed_port()}/0"
    app = create_app(Settings(redis_url=url, cache_redis_url=url))
    with TestClient(app) as c:
        t0 = time.perf_counter()
        for i in range(5):
            r = c.post("/v1/advice", json=SPEC)
            # the first is computed; the repeats come from the process-local level (advice is a
            # pure function of request + versions), Redis or not
            assert r.status_code == 200 and r.json()["cached"] is (i > 0)
        assert time.perf_counter() - t0 < 3.0


def test_validation_names_every_bad_field(client: TestClient) -> None:
    r = client.post("/v1/advice", json={"task": "llm_pretrain", "param_count": 0,
                                        "batch_size": 8, "dataset_size": 10,
                                        "total_steps": 5, "epochs": 1, "dropout": 1.5})
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    errors = {e["field"]: e for e in r.json()["errors"]}
    assert errors["body.param_count"]["allowed"] == ">= 1"
    assert errors["body.dropout"]["allowed"] == "< 1.0"
    assert "seq_len is required" in errors["body.seq_len"]["message"]
    assert "exactly one of total_steps or epochs" in errors["body.epochs"]["message"]
    r = client.post("/v1/advice", json={**SPEC, "task": "nope"})
    assert r.json()["errors"][0]["field"] == "body.task" and "allowed" in r.json()["errors"][0]


def test_batch_reports_partial_failures(client: TestClient) -> None:
    items = [SPEC, {**SPEC, "param_count": -1}, {**SPEC, "batch_size": 512}]
    r = client.post("/v1/advice/batch", json={"items": items})
    assert r.status_code == 200
    body = r.json()
    assert body["succeeded"] == 2 and body["failed"] == 1
    bad = body["items"][1]
    assert bad["status"] == 422
    assert bad["problem"]["errors"][0]["field"] == "body.items[1].param_count"
    assert body["items"][2]["result"]["optimizer"]["lr"] > body["items"][0]["result"][
        "optimizer"]["lr"]


def test_batch_item_limit_comes_from_settings() -> None:
    app = create_app(Settings(redis_url=CACHE_URL, cache_redis_url=CACHE_URL,
                              advice_batch_max_items=2))
    with TestClient(app) as c:
        r = c.post("/v1/advice/batch", json={"items": [SPEC] * 3})
    assert r.status_code == 422 and r.json()["errors"][0]["allowed"] == "max length 2"


def test_schedule_preview(client: TestClient) -> None:
    spec = {"name": "warmup_cosine", "max_lr": 1e-3, "warmup_steps": 10, "total_steps": 101}
    r = client.post("/v1/schedules/preview",
                    json={"schedule": spec, "total_steps": 101, "n_points": 3})
    body = r.json()
    assert body["steps"] == [0, 50, 100]
    assert body["lrs"][0] == pytest.approx(1e-4) and body["lrs"][-1] == pytest.approx(1e-4)
    bad = client.post("/v1/schedules/preview", json={"schedule": {**spec, "max_lr": -1},
                                                     "total_steps": 10})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == (
        "body.schedule.warmup_cosine.max_lr")


def test_diagnose_endpoint(client: TestClient) -> None:
    r = client.post("/v1/diagnose", json={"loss": [2.0, 1.5, None, 1.0, 0.9],
                                          "lr": [1e-3] * 5})
    finding = r.json()["findings"][0]
    assert finding["kind"] == "nan_inf" and finding["change"]["lr"]["to"] == pytest.approx(1e-4)
    bad = client.post("/v1/diagnose", json={"loss": [1, 2, 3, 4], "lr": [1e-3]})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "body.lr"


def _off_the_loop(calls: list[bool], fn: Any) -> Any:
    """``fn``, recording for each call whether it ran with an event loop running in its thread
    (it must not: CPU work there holds up every other request)."""
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            asyncio.get_running_loop()
            calls.append(False)
        except RuntimeError:
            calls.append(True)
        return fn(*args, **kwargs)
    return wrapper


def test_batch_and_diagnose_compute_off_the_event_loop(client: TestClient,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[bool] = []
    monkeypatch.setattr(advice_api, "advise", _off_the_loop(calls, advice_api.advise))
    monkeypatch.setattr(advice_api, "cache_key", _off_the_loop(calls, advice_api.cache_key))
    monkeypatch.setattr(advice_api, "diagnose", _off_the_loop(calls, advice_api.diagnose))
    r = client.post("/v1/advice/batch", json={"items": [SPEC, {**SPEC, "batch_size": 512}]})
    assert r.status_code == 200 and r.json()["succeeded"] == 2
    r = client.post("/v1/diagnose", json={"loss": [2.0, 1.5, 1.2, 1.0]})
    assert r.status_code == 200, r.text
    # two keys, two advise() calls (nothing cached yet), one diagnose()
    assert calls == [True] * 5


def test_read_policy_skips_redis_while_it_rarely_answers_and_probes_it() -> None:
    policy = ReadPolicy(floor=0.5, probe_every=4, weight=0.5)
    assert policy.decide(1) == "read"  # optimistic start
    policy.observe([None, None])  # 1.0 -> 0.25: below the floor
    decisions = [policy.decide(1) for _ in range(8)]
    assert decisions == ["skip", "skip", "skip", "probe"] * 2  # every 4th asks, behind
    assert policy.decide(4) == "read"  # a batch this large always reads: one trip, many keys
    policy.observe(["advice", "advice"])  # Redis answers again: 0.25 -> 0.8125
    assert [policy.decide(1) for _ in range(4)] == ["read"] * 4


def test_misses_stop_waiting_for_redis_when_it_has_nothing_and_probes_find_it_again(
) -> None:
    _clear_advice()
    app = create_app(Settings(redis_url=CACHE_URL, cache_redis_url=CACHE_URL,
                              advice_cache_read_floor=0.5, advice_cache_read_probe_every=4))
    try:
        with TestClient(app) as c:
            client = app.state.cache_redis
            reads: list[int] = []
            real_mget = client.mget

            async def counting_mget(keys: list[str]) -> list[Any]:
                reads.append(len(keys))
                return await real_mget(keys)

            client.mget = counting_mget
            for i in range(40):
                r = c.post("/v1/advice", json={**SPEC, "param_count": 10**8 + i})
                assert r.status_code == 200 and r.json()["cached"] is False
            # (0.95)^14 < 0.5: the first 14 misses read, then one in four of the other 26
            # asks in the background (a probe)
            assert 14 <= len(reads) <= 14 + 26 // 4 + 1, reads
            policy = app.state.advice_cache.read_policy
            assert policy.hit_rate < 0.5
            # Another process's answers: Redis holds what this one has not seen. Probes find
            # them, and misses go back to waiting for Redis, whose answers come back cached.
            other = redis.Redis.from_url(CACHE_URL)
            specs = [{**SPEC, "param_count": 2 * 10**8 + i} for i in range(60)]
            for spec in specs:
                key = cache_key(AdviceRequest.model_validate(spec))
                other.set(key, advise(AdviceRequest.model_validate(spec)).model_dump_json())
            other.close()
            answers = [c.post("/v1/advice", json=spec).json()["cached"] for spec in specs]
            assert policy.hit_rate >= 0.5 and answers[-1] is True
    finally:
        _clear_advice()


@pytest.mark.parametrize("background_timeout_s, opens", [(3.0, False), (0.3, True)])
def test_a_slow_write_behind_the_responses_opens_the_circuit_only_past_its_own_bound(
        background_timeout_s: float, opens: bool) -> None:
    # Redis itself holds every write for 0.8 s (CLIENT PAUSE … WRITE); reads still answer. The
    # write goes out behind the response, so it may take longer than a read's 0.2 s bound.
    _clear_advice()
    app = create_app(Settings(redis_url=CACHE_URL, cache_redis_url=CACHE_URL,
                              advice_cache_timeout_s=0.2, advice_cache_write_window_s=0.0,
                              advice_cache_background_timeout_s=background_timeout_s))
    r = redis.Redis.from_url(CACHE_URL)
    try:
        with TestClient(app) as c:
            cache = c.app.state.advice_cache
            r.execute_command("CLIENT", "PAUSE", 800, "WRITE")
            assert c.post("/v1/advice", json=SPEC).json()["cached"] is False
            # written once Redis lets it; a write cut by its bound is not retried
            stored = _stored_advice(within_s=0.5 if opens else 5)
            c.portal.call(cache.drain)
            assert cache.available is not opens
            assert opens or len(stored) == 1
    finally:
        r.execute_command("CLIENT", "UNPAUSE")
        r.close()
        _clear_advice()
