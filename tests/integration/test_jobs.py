"""The job service end to end: real Redis, a real Celery worker, the real range test and trials."""

from __future__ import annotations

import itertools
import json
import math
import os
import pathlib
import signal
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import redis
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from tests.integration.conftest import parse_sse, wait_status
from tests.jobs_support import (
    WorkerProcess,
    long_range_test,
    refined_lrs,
    tiny_range_test,
    tiny_trials,
    wait_until,
)
from workers.jobstore import JobKeys

pytestmark = pytest.mark.integration


def range_curve(result: dict[str, Any]) -> tuple[list[float], list[float], dict[str, Any]]:
    assert result["kind"] == "range_test"  # optim_core.specs.results.RangeTestResult, flat
    curve = result["curve"]
    assert curve["points"] == len(curve["lrs"]) == len(curve["raw_losses"])
    return curve["lrs"], curve["losses"], result["suggestions"]


def submit(client: TestClient, body: dict[str, Any], path: str = "/v1/jobs/lr-range-test",
           **headers: str) -> httpx.Response:
    return client.post(path, json=body, headers=headers)


def test_range_test_runs_and_reports_a_sensible_curve(client: TestClient,
                                                      worker: WorkerProcess) -> None:
    r = submit(client, tiny_range_test(seed=101), **{"X-Request-ID": "rid-curve-101"})
    assert r.status_code == 202, r.text
    job = r.json()
    assert r.headers["Location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] in {"queued", "running"} and job["queue"] == "cpu"
    assert r.headers["X-Request-ID"] == "rid-curve-101"

    done = wait_status(client, job["id"], {"succeeded", "failed", "cancelled"})
    assert done["status"] == "succeeded", done.get("problem")
    assert done["request_id"] == "rid-curve-101"
    assert done["deliveries"] == 1 and done["started_at"] and done["finished_at"]
    lrs, losses, sugg = range_curve(done["result"])
    finite = [x for x in losses if x is not None and math.isfinite(x)]
    assert len(lrs) == len(losses) >= 10
    assert all(b > a for a, b in itertools.pairwise(lrs))  # the sweep grows
    low = finite.index(min(finite))
    assert low > 0 and min(finite) < finite[0]  # the loss falls before it rises or stops
    rec = sugg["recommended"]
    assert rec is not None and lrs[0] <= rec <= lrs[-1]
    # Succeeded: progress is complete.
    assert done["progress"]["step"] == done["progress"]["total"] >= 1
    # The request id travels into the job: the worker's structured log lines carry it.
    lines = [json.loads(line) for line in worker.tail(200_000).splitlines()
             if line.startswith("{") and job["id"] in line]
    started = [e for e in lines if e.get("msg") == "job started"]
    assert started and all(e["request_id"] == "rid-curve-101" for e in started)


def test_identical_request_gets_the_same_job_then_the_cached_result(client: TestClient) -> None:
    body = tiny_range_test(seed=202)
    first = submit(client, body).json()
    again = submit(client, {**body, "labels": {"who": "someone else"}})
    assert again.status_code in (200, 202) and again.json()["id"] == first["id"]
    wait_status(client, first["id"], {"succeeded"})

    cached = submit(client, body)
    assert cached.status_code == 200
    got = cached.json()
    assert got["id"] == first["id"] and got["cached"] is True and got["status"] == "succeeded"
    assert got["result"] is not None

    forced = submit(client, {**body, "force": True})
    assert forced.status_code == 202 and forced.json()["id"] != first["id"]
    wait_status(client, forced.json()["id"], {"succeeded"})


@pytest.fixture()
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_concurrent_identical_submissions_make_one_job(settings: Settings,
                                                             worker: Any) -> None:
    import anyio

    app = create_app(settings)
    body = tiny_range_test(seed=303)
    ids: list[str] = []
    async with app.router.lifespan_context(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t") as ac:
        async def one() -> None:
            r = await ac.post("/v1/jobs/lr-range-test", json=body)
            assert r.status_code in (200, 202), r.text
            ids.append(r.json()["id"])

        async with anyio.create_task_group() as tg:
            for _ in range(8):
                tg.start_soon(one)
    assert len(ids) == 8 and len(set(ids)) == 1


def test_threads_submitting_the_same_spec_share_one_job(client: TestClient) -> None:
    body = tiny_range_test(seed=304)
    with ThreadPoolExecutor(6) as pool:
        answers = list(pool.map(lambda _: submit(client, body), range(6)))
    assert {a.status_code for a in answers} <= {200, 202}
    assert len({a.json()["id"] for a in answers}) == 1


def test_cancel_a_running_job_then_the_worker_takes_the_next(client: TestClient) -> None:
    job = submit(client, long_range_test(seed=404)).json()
    wait_until(lambda: (client.get(f"/v1/jobs/{job['id']}").json().get("progress") or {}).get(
        "step"), 60, 0.1, "the long job to report progress")
    r = client.delete(f"/v1/jobs/{job['id']}")
    assert r.status_code == 202 and r.json()["cancel_requested"] is True
    done = wait_status(client, job["id"], {"cancelled", "succeeded", "failed"}, timeout=20)
    assert done["status"] == "cancelled"
    assert done["progress"]["step"] < done["progress"]["total"]
    assert client.delete(f"/v1/jobs/{job['id']}").status_code == 200  # idempotent

    nxt = submit(client, tiny_range_test(seed=405)).json()
    assert wait_status(client, nxt["id"], {"succeeded", "failed"})["status"] == "succeeded"


def test_cancel_a_queued_job_means_it_never_starts(client: TestClient,
                                                   settings: Settings) -> None:
    # Occupy both pool children, then queue one more and cancel it before it starts.
    blockers = [submit(client, long_range_test(seed=s)).json()["id"] for s in (501, 502)]
    wait_until(lambda: all(client.get(f"/v1/jobs/{b}").json()["status"] == "running"
                           for b in blockers), 60, 0.1, "both blockers to run")
    queued = submit(client, tiny_range_test(seed=503)).json()
    assert queued["status"] == "queued"
    r = client.delete(f"/v1/jobs/{queued['id']}")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    for b in blockers:
        client.delete(f"/v1/jobs/{b}")
    for b in blockers:
        wait_status(client, b, {"cancelled", "succeeded", "failed"}, timeout=30)
    # The cancelled job's message is consumed (revoked, or skipped by the task) without running.
    def consumed() -> bool:
        rec = client.get(f"/v1/jobs/{queued['id']}").json()
        assert rec["status"] == "cancelled" and rec["deliveries"] == 0
        return client.get("/metrics").text.find('optim_queue_depth{queue="cpu"} 0.0') >= 0
    wait_until(consumed, 30, 0.2, "the cancelled job's message to leave the queue")


def test_a_plug_in_no_worker_has_is_refused_at_submission(client: TestClient) -> None:
    body = tiny_range_test(seed=606)
    body["experiment"]["model"] = {"kind": "registered", "name": "no_such_model_anywhere"}
    r = submit(client, body)  # the live worker's heartbeat lists its (zero) plug-ins
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    (err,) = r.json()["errors"]
    assert err["field"] == "body.experiment.model.name"
    assert err["value"] == "no_such_model_anywhere" and "none installed" in err["allowed"]


def test_failing_job_ends_failed_with_a_problem(client: TestClient,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    # A worker too old to publish its plug-ins: the job is accepted and fails in the worker.
    from app.services import plugins

    monkeypatch.setattr(plugins, "plugin_errors", _no_plugin_check)
    monkeypatch.setattr("app.api.routes.jobs.plugin_errors", _no_plugin_check)
    body = tiny_range_test(seed=606)
    body["experiment"]["model"] = {"kind": "registered", "name": "no_such_model_anywhere"}
    r = submit(client, body)
    assert r.status_code == 202, r.text
    done = wait_status(client, r.json()["id"], {"succeeded", "failed"})
    assert done["status"] == "failed"
    prob = done["problem"]
    assert prob["status"] in (422, 500) and prob["title"] and prob["detail"]
    assert "no_such_model_anywhere" in json.dumps(prob)
    assert prob["errors"][0]["field"] == "body.experiment.model.name"
    # A failed job releases its key: the same request makes a new job.
    assert submit(client, body).json()["id"] != done["id"]


async def _no_plugin_check(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
    return []


def _running_pid(client: TestClient, job_id: str, delivery: int) -> int | None:
    rec = client.get(f"/v1/jobs/{job_id}").json()
    if rec["status"] == "running" and rec["deliveries"] == delivery and rec.get("progress"):
        store = redis.Redis.from_url(client.app.state.settings.redis_url, decode_responses=True)
        try:
            pid = store.hget(JobKeys(client.app.state.settings.jobs_key_prefix).job(job_id), "pid")
        finally:
            store.close()
        return int(pid) if pid else None
    return None


def test_job_survives_its_worker_child_being_killed(client: TestClient) -> None:
    body = long_range_test(seed=707)
    body["config"]["num_steps"] = 1500
    job = submit(client, body).json()
    pid = wait_until(lambda: _running_pid(client, job["id"], 1), 60, 0.05, "first delivery")
    os.kill(pid, signal.SIGKILL)
    done = wait_status(client, job["id"], {"succeeded", "failed", "cancelled"}, timeout=120)
    assert done["status"] == "succeeded", done.get("problem")
    assert done["deliveries"] == 2
    lrs, losses, _ = range_curve(done["result"])
    assert len(lrs) == len(losses) == 1500  # the whole sweep, nothing lost


def test_job_that_kills_its_worker_every_time_fails_after_max_deliveries(
        client: TestClient) -> None:
    job = submit(client, long_range_test(seed=808)).json()
    for delivery in (1, 2):  # OPTIM_JOB_MAX_DELIVERIES=2 in the test worker
        pid = wait_until(lambda d=delivery: _running_pid(client, job["id"], d), 90, 0.05,
                         f"delivery {delivery}")
        os.kill(pid, signal.SIGKILL)
    done = wait_status(client, job["id"], {"succeeded", "failed", "cancelled"}, timeout=90)
    assert done["status"] == "failed"
    assert done["problem"]["type"].endswith("too-many-deliveries")
    assert done["problem"]["max_deliveries"] == 2 and done["deliveries"] == 3


def test_trials_job_returns_curves_and_a_ranking(client: TestClient) -> None:
    r = submit(client, tiny_trials(seed=909), "/v1/jobs/trials")
    assert r.status_code == 202, r.text
    done = wait_status(client, r.json()["id"], {"succeeded", "failed"}, timeout=90)
    assert done["status"] == "succeeded", done.get("problem")
    assert done["kind"] == "trials" and done["result"]["kind"] == "trials"
    result = done["result"]
    trials = result["candidates"]
    # tiny_trials: AdamW at 0.3x, 1x and 3x the given centre LR, 40 steps, validation every 10
    # (then, if an edge LR won, LRs past that edge: phase "extension")
    planned = [t for t in trials if t["phase"] == "trial"]
    assert sorted(t["optimizer"]["lr"] for t in planned) == pytest.approx([0.003, 0.01, 0.03])
    assert all(t["schedule"]["name"] == "warmup_cosine" for t in trials)
    assert result["verdict"]["label"] == result["best"]
    assert result["center_lr"] == {"adamw": 0.01} and result["center_lr_source"] == "given"
    for t in trials:
        curve = t["curve"]
        assert t["steps_run"] == 40 == curve["points"] and len(curve["train_losses"]) == 40
        assert not t["diverged"] and t["seconds_per_step"] > 0
        assert t["validation"]["steps"] == [10, 20, 30, 40] and t["validation"]["points"] == 4
        assert t["final_val_loss"] < curve["train_losses"][0]  # it learned
        assert t["schedule"]["name"] == "warmup_cosine" and t["schedule_source"] == "default"
    assert result["ranked_by"] == "final_val_loss"
    finals = [trials[i]["final_val_loss"] for i in result["ranking_indices"]]
    assert finals == sorted(finals) and result["best"] == trials[result["ranking_indices"][0]]["label"]


def test_a_refined_trials_job_adds_half_steps_beside_the_winner(client: TestClient) -> None:
    body = tiny_trials(seed=910)
    body["config"] |= {"refine": True, "extend_edges": 0}
    r = submit(client, body, "/v1/jobs/trials")
    assert r.status_code == 202, r.text
    done = wait_status(client, r.json()["id"], {"succeeded", "failed"}, timeout=90)
    assert done["status"] == "succeeded", done.get("problem")
    result = done["result"]
    planned = [t for t in result["candidates"] if t["phase"] == "trial"]
    refined = [t for t in result["candidates"] if t["phase"] == "refine"]
    best = min(planned, key=lambda t: t["score_mean"])["optimizer"]["lr"]
    expected = refined_lrs([t["optimizer"]["lr"] for t in planned], best)
    assert [t["optimizer"]["lr"] for t in refined] == pytest.approx(expected)
    assert result["edges"]["adamw"]["refined_lrs"] == pytest.approx(expected)
    # ranked with the rest, each with its full schedule
    assert len(result["ranking_indices"]) == len(planned) + len(refined)
    assert all(t["schedule"]["name"] == "warmup_cosine" for t in refined)
    # the progress counted them: the job ends at its grown total
    assert done["progress"]["step"] == done["progress"]["total"] == 40 * (3 + len(expected))


def test_sse_streams_progress_and_a_final_event_and_resumes(client: TestClient) -> None:
    job = submit(client, tiny_range_test(seed=1001, num_steps=120)).json()
    with client.stream("GET", f"/v1/jobs/{job['id']}/events") as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        text = "".join(r.iter_text())
    events = parse_sse(text)
    kinds = [e.get("event") for e in events]
    assert "progress" in kinds
    assert kinds[-1] == "status" and json.loads(events[-1]["data"])["status"] == "succeeded"
    prog = json.loads(next(e["data"] for e in events if e.get("event") == "progress"))
    assert {"step", "total", "lr", "loss"} <= prog.keys()

    # Resume after the first progress event: only later events come back.
    first_progress = next(e for e in events if e.get("event") == "progress")
    r2 = client.get(f"/v1/jobs/{job['id']}/events",
                    headers={"Last-Event-ID": first_progress["id"]})
    later = [b for b in r2.text.strip().split("\n\n") if b.strip()]
    assert len(later) == len(events) - events.index(first_progress) - 1
    assert "succeeded" in later[-1]


def test_list_filter_and_paginate(client: TestClient) -> None:
    ids = [submit(client, tiny_range_test(seed=1100 + i, num_steps=20)).json()["id"]
           for i in range(3)]
    for jid in ids:
        wait_status(client, jid, {"succeeded", "failed"})
    # Other tests' jobs may be listed too: follow the cursor and compare only the ids made here.
    page = client.get("/v1/jobs", params={"limit": 2, "kind": "range_test"}).json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    seen: list[str] = [j["id"] for j in page["items"]]
    cursor = page["next_cursor"]
    while cursor and not set(ids) <= set(seen) and len(seen) < 200:
        nxt = client.get("/v1/jobs", params={"limit": 2, "kind": "range_test",
                                            "cursor": cursor}).json()
        assert all(j["kind"] == "range_test" for j in nxt["items"])
        seen += [j["id"] for j in nxt["items"]]
        cursor = nxt["next_cursor"]
    assert len(seen) == len(set(seen))  # no job twice across pages
    assert [j for j in seen if j in ids] == ids[::-1]  # newest first, none skipped
    ok = client.get("/v1/jobs", params={"status": "succeeded", "limit": 50}).json()["items"]
    assert ok and all(j["status"] == "succeeded" for j in ok)
    assert all(j["result"] is None and j["request"] is None for j in ok)  # lists leave them out
    bad = client.get("/v1/jobs", params={"limit": 100000})
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    assert client.get("/v1/jobs", params={"cursor": "!!"}).status_code == 422


def test_batch_submission_reports_per_item(client: TestClient) -> None:
    bad = tiny_range_test(seed=1201)
    bad["config"]["num_steps"] = 3
    items = [tiny_range_test(seed=1200), bad, tiny_range_test(seed=1200)]
    r = client.post("/v1/jobs/lr-range-test/batch", json={"items": items})
    assert r.status_code == 202, r.text
    out = r.json()
    assert out["succeeded"] == 2 and out["failed"] == 1
    a, b, c = out["items"]
    assert a["status"] == 202 and c["result"]["id"] == a["result"]["id"]
    assert b["status"] == 422
    assert b["problem"]["errors"][0]["field"] == "body.items[1].config.num_steps"


def test_batch_reports_an_outage_mid_batch_and_keeps_what_it_created(
        client: TestClient, monkeypatch: pytest.MonkeyPatch) -> None:
    from app.services.publish import ServiceUnavailable

    service = client.app.state.jobs
    real = service.submit
    calls = 0

    async def flaky(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise ServiceUnavailable("could not queue the job: OperationalError")
        return await real(*args, **kwargs)

    monkeypatch.setattr(service, "submit", flaky)
    items = [tiny_range_test(seed=s, num_steps=20) for s in (1301, 1302, 1303)]
    r = client.post("/v1/jobs/lr-range-test/batch", json={"items": items})
    assert r.status_code == 202, r.text
    out = r.json()
    assert [i["status"] for i in out["items"]] == [202, 503, 503]
    assert out["succeeded"] == 1 and out["failed"] == 2 and calls == 2  # no hammering after
    created = out["items"][0]["result"]["id"]
    assert client.get(f"/v1/jobs/{created}").status_code == 200
    assert all(i["problem"]["status"] == 503 for i in out["items"][1:])

    calls = 1  # the next call fails: nothing accepted -> 503 with Retry-After
    r = client.post("/v1/jobs/lr-range-test/batch", json={"items": items[1:]})
    assert r.status_code == 503 and int(r.headers["Retry-After"]) > 0
    assert [i["status"] for i in r.json()["items"]] == [503, 503]
    wait_status(client, created, {"succeeded", "failed"})


def test_metrics_and_readiness(client: TestClient) -> None:
    assert client.get("/readyz").status_code == 200
    # a request of its own on a templated route, so the test does not lean on earlier ones
    assert client.get(f"/v1/jobs/{'0' * 32}").status_code == 404
    text = client.get("/metrics").text
    for name in ("optim_http_requests_total", "optim_jobs{", "optim_jobs_entered_total",
                 "optim_queue_depth{queue=\"cpu\"}", "optim_job_duration_seconds_bucket",
                 "optim_workers_live{queue=\"cpu\"} 1.0",
                 'route="/v1/jobs/{job_id}"'):
        assert name in text, name


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"), reason="needs Linux /proc")
def test_the_worker_parent_never_loads_torch(client: TestClient, worker: WorkerProcess) -> None:
    # CUDA cannot be used in a child forked from a process that initialised it; the simplest
    # guarantee is that the worker's main process never loads torch at all (only pool children
    # do, after the fork). Checked after it has run jobs, on its memory map.
    done = wait_status(client, submit(client, tiny_range_test(seed=1401)).json()["id"],
                       {"succeeded", "failed"})
    assert done["status"] == "succeeded"
    with open(f"/proc/{worker.proc.pid}/maps") as maps:
        loaded = maps.read()
    assert "libtorch" not in loaded and "libc10" not in loaded
    children = pathlib.Path(f"/proc/{worker.proc.pid}/task/{worker.proc.pid}/children")
    child_pids = children.read_text().split()
    assert child_pids, "the prefork pool has children"
    assert any("libtorch" in pathlib.Path(f"/proc/{pid}/maps").read_text() for pid in child_pids)


def test_a_job_whose_publish_failed_with_the_store_down_is_published_by_the_next_sweep(
        settings: Settings, worker: WorkerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    # One Redis as store and broker, restarting: the publish fails, and so does recording the
    # failure. The job is left queued with no message; a resubmission joins it, and it must run.
    from redis.exceptions import ConnectionError as RedisConnectionError

    from app.services.publish import ServiceUnavailable

    app = create_app(settings.model_copy(update={"reaper_interval_s": 0.5}))
    with TestClient(app) as client:
        service = client.app.state.jobs
        real_publish, real_transition = service.publisher.publish, service.store.transition
        published: list[str] = []

        async def publish_down(**kwargs: Any) -> None:
            raise ServiceUnavailable("could not queue the job: OperationalError")

        async def transition_down(*args: Any, **kwargs: Any) -> Any:
            raise RedisConnectionError("Error 111 connecting to Redis. Connection refused.")

        async def publish_up(**kwargs: Any) -> None:
            published.append(kwargs["job_id"])
            await real_publish(**kwargs)

        monkeypatch.setattr(service.publisher, "publish", publish_down)
        monkeypatch.setattr(service.store, "transition", transition_down)
        body = tiny_range_test(seed=1501, num_steps=20)
        assert submit(client, body).status_code == 503
        # both still down at the sweeps in between: the job stays queued and remembered
        again = submit(client, body)
        assert again.status_code == 202 and again.json()["deduplicated"] is True
        job_id = again.json()["id"]
        assert again.json()["status"] == "queued" and job_id in service._unpublished
        monkeypatch.setattr(service.publisher, "publish", publish_up)  # both answer again
        monkeypatch.setattr(service.store, "transition", real_transition)
        done = wait_status(client, job_id, {"succeeded", "failed"})
        assert done["status"] == "succeeded" and published == [job_id]
        assert not service._unpublished


def test_a_job_whose_broker_stays_down_is_failed_by_the_sweep_once_the_store_answers(
        settings: Settings, worker: WorkerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    from app.services.publish import ServiceUnavailable

    app = create_app(settings.model_copy(update={"reaper_interval_s": 0.5}))
    with TestClient(app) as client:
        service = client.app.state.jobs
        real_transition = service.store.transition
        calls = 0

        async def publish_down(**kwargs: Any) -> None:
            raise ServiceUnavailable("could not queue the job: OperationalError")

        async def transition_once_down(*args: Any, **kwargs: Any) -> Any:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RedisConnectionError("Error 111 connecting to Redis. Connection refused.")
            return await real_transition(*args, **kwargs)

        monkeypatch.setattr(service.publisher, "publish", publish_down)
        monkeypatch.setattr(service.store, "transition", transition_once_down)
        body = tiny_range_test(seed=1502, num_steps=20)
        assert submit(client, body).status_code == 503
        (job_id,) = service._unpublished
        wait_until(lambda: not service._unpublished, 20, 0.2, "the sweep to settle the job")
        rec = client.get(f"/v1/jobs/{job_id}").json()
        assert rec["status"] == "failed" and rec["problem"]["type"].endswith("broker-unavailable")
