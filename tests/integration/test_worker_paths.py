"""The task body's edge paths against real Redis, in-process (no Celery worker needed): the soft
time limit, a hard timeout reported by the parent, and refusing jobs that ended while queued."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import anyio
import pytest
import redis
import redis.asyncio as aioredis
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded

import workers.tasks as tasks
from tests.jobs_support import Namespace, new_namespace
from workers.jobstore import AsyncJobStore, JobStore, new_job_id
from workers.settings import WorkerSettings

pytestmark = pytest.mark.integration


@pytest.fixture()
def wns(monkeypatch: pytest.MonkeyPatch) -> Iterator[Namespace]:
    ns = new_namespace()
    ws = WorkerSettings(redis_url=ns.redis_url, jobs_key_prefix=ns.jobs_prefix,
                        broker_key_prefix=ns.broker_prefix, job_soft_time_limit_s=7,
                        job_hard_time_limit_s=9, job_max_deliveries=2)
    monkeypatch.setattr(tasks, "settings", ws)
    monkeypatch.setattr(tasks, "_store", None)
    yield ns
    ns.cleanup()


def _create(ns: Namespace) -> str:
    job_id = new_job_id()

    async def go() -> None:
        client = aioredis.Redis.from_url(ns.redis_url, decode_responses=True)
        store = AsyncJobStore(client, ns.jobs_prefix, result_ttl_s=60, active_ttl_s=600)
        sub = await store.submit(job_id, f"k-{job_id}", {"kind": "range_test"}, force=False)
        assert sub.outcome == "created"
        await client.aclose()

    anyio.run(go)
    return job_id


def _record(ns: Namespace, job_id: str) -> dict[str, Any]:
    client = redis.Redis.from_url(ns.redis_url, decode_responses=True)
    try:
        rec = JobStore(client, ns.jobs_prefix, result_ttl_s=60).get(job_id)
    finally:
        client.close()
    assert rec is not None
    return rec


FAKE_TASK = SimpleNamespace(request=SimpleNamespace(hostname="test@host"))


def test_soft_time_limit_fails_the_job_with_a_clear_problem(
        wns: Namespace, monkeypatch: pytest.MonkeyPatch) -> None:
    def slow(*_: Any, **__: Any) -> dict[str, Any]:
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr(tasks, "_entry_point", lambda kind: slow)
    job_id = _create(wns)
    out = tasks.run_job(FAKE_TASK, job_id, "range_test", {}, "cpu", "rid-1")  # type: ignore[arg-type]
    assert out["status"] == "failed"
    rec = _record(wns, job_id)
    assert rec["status"] == "failed" and rec["problem"]["type"].endswith("time-limit")
    assert rec["problem"]["limit_s"] == 7 and "7 s" in rec["problem"]["detail"]


def test_hard_timeout_reported_by_the_parent_fails_the_job(wns: Namespace) -> None:
    job_id = _create(wns)
    tasks.get_store().begin(job_id, max_deliveries=2, worker="w", pid=1)
    tasks.range_test.on_failure(TimeLimitExceeded(9), job_id, (), {}, None)
    rec = _record(wns, job_id)
    assert rec["status"] == "failed" and rec["problem"]["limit_s"] == 9


def test_a_task_that_fails_outside_the_training_fails_its_job(wns: Namespace) -> None:
    # e.g. the job store stayed unreachable through the begin phase's retries: without this the
    # record stays queued and identical requests keep joining it until it expires.
    job_id = _create(wns)
    tasks.range_test.on_failure(RuntimeError("store unreachable"), job_id, (),
                                {"generation": 0}, None)
    rec = _record(wns, job_id)
    assert rec["status"] == "failed" and rec["problem"]["status"] == 500


def test_a_job_cancelled_while_queued_is_not_started(wns: Namespace,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def never(*_: Any, **__: Any) -> dict[str, Any]:
        raise AssertionError("must not run")

    monkeypatch.setattr(tasks, "_entry_point", lambda kind: never)
    job_id = _create(wns)

    async def cancel() -> str:
        client = aioredis.Redis.from_url(wns.redis_url, decode_responses=True)
        store = AsyncJobStore(client, wns.jobs_prefix, result_ttl_s=60, active_ttl_s=600)
        try:
            return await store.request_cancel(job_id)
        finally:
            await client.aclose()

    assert anyio.run(cancel) == "cancelled"
    out = tasks.run_job(FAKE_TASK, job_id, "range_test", {}, "cpu", None)  # type: ignore[arg-type]
    assert out == {"job_id": job_id, "status": "cancelled"}
    assert _record(wns, job_id)["deliveries"] == 0


def test_cancel_poller_reads_redis_at_most_every_interval(wns: Namespace) -> None:
    calls = 0

    class CountingStore:
        def stop_reason(self, job_id: str, hostname: str | None, generation: int = 0
                        ) -> str | None:
            nonlocal calls
            calls += 1
            return None

    poll = tasks.CancelPoller(CountingStore(), "j", interval_s=60.0)  # type: ignore[arg-type]
    assert not any(poll() for _ in range(1000))
    assert calls == 1


def test_a_redis_blip_at_the_final_write_does_not_rerun_the_job(
        wns: Namespace, monkeypatch: pytest.MonkeyPatch) -> None:
    runs = 0

    def train(*_: Any, **__: Any) -> dict[str, Any]:
        nonlocal runs
        runs += 1
        return {"kind": "range_test", "result": {"lrs": [0.1]}}

    monkeypatch.setattr(tasks, "_entry_point", lambda kind: train)
    real_transition, real_observe = JobStore.transition, JobStore.observe_duration
    failures = {"transition": 2, "observe": 1}

    def flaky(name: str, real: Any) -> Any:
        def call(self: JobStore, *args: Any, **kwargs: Any) -> Any:
            if failures[name] > 0:
                failures[name] -= 1
                raise redis.ConnectionError("blip")
            return real(self, *args, **kwargs)
        return call

    monkeypatch.setattr(JobStore, "transition", flaky("transition", real_transition))
    monkeypatch.setattr(JobStore, "observe_duration", flaky("observe", real_observe))
    job_id = _create(wns)
    out = tasks.run_job(FAKE_TASK, job_id, "range_test", {}, "cpu", None)  # type: ignore[arg-type]
    assert out["status"] == "succeeded" and runs == 1
    rec = _record(wns, job_id)
    assert rec["status"] == "succeeded" and rec["result"]["result"] == {"lrs": [0.1]}
    assert failures == {"transition": 0, "observe": 0}
    # The task itself no longer retries on Redis errors (that would re-run the training).
    assert not getattr(tasks.range_test, "autoretry_for", ())


def test_a_redis_blip_before_the_job_starts_retries_the_task(
        wns: Namespace, monkeypatch: pytest.MonkeyPatch) -> None:
    class Retry(Exception):
        pass

    retried: list[dict[str, Any]] = []

    def retry(**kwargs: Any) -> Exception:
        retried.append(kwargs)
        raise Retry()

    def down(*_: Any, **__: Any) -> Any:
        raise redis.TimeoutError("blip")

    def never(*_: Any, **__: Any) -> dict[str, Any]:
        raise AssertionError("must not run")

    monkeypatch.setattr(JobStore, "begin", down)
    monkeypatch.setattr(tasks, "_entry_point", lambda kind: never)
    task = SimpleNamespace(request=SimpleNamespace(hostname="test@host", retries=2), retry=retry)
    with pytest.raises(Retry):
        tasks.run_job(task, _create(wns), "range_test", {}, "cpu", None)  # type: ignore[arg-type]
    assert retried[0]["countdown"] == 4 and retried[0]["max_retries"] == tasks.BEGIN_MAX_RETRIES
