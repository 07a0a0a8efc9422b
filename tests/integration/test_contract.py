"""The contract, proved by real clients against the running service (issue 8):

* a Python client generated from the live /openapi.json by openapi-python-client (pinned in the
  dev extras) gets advice, submits a range test, polls it to a typed result, and parses a 422 and
  a 429 as problems;
* two tenants (two API keys) cannot see each other's jobs, against a real Redis and worker.
"""

from __future__ import annotations

import importlib
import logging
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from app.auth.keys import KeyStore
from app.core.config import Settings
from tests.inprocess_server import live_server
from tests.jobs_support import (
    Namespace,
    WorkerProcess,
    long_range_test,
    tiny_range_test,
    wait_until,
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def keys(ns: Namespace) -> dict[str, str]:
    store = KeyStore(redis.Redis.from_url(ns.redis_url, decode_responses=True), ns.jobs_prefix)
    return {"a": store.create("team-a", "user")[1], "b": store.create("team-b", "user")[1],
            "admin": store.create("ops", "admin")[1]}


@pytest.fixture(scope="module")
def server(ns: Namespace, worker: WorkerProcess, keys: dict[str, str]) -> Iterator[str]:
    # Keys required (as on any non-loopback address); one active job per tenant, so that a
    # second one is a 429.
    settings = Settings(**ns.settings_kwargs(), auth="keys", tenant_max_active_jobs=1)
    with live_server(settings) as base:
        yield base


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def _wait_done(base: str, key: str, job_id: str, timeout: float = 90) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        body = httpx.get(f"{base}/v1/jobs/{job_id}", headers=_auth(key), timeout=10).json()
        return body if body["status"] in ("succeeded", "failed", "cancelled") else None
    return wait_until(check, timeout, 0.2, f"job {job_id}")


@pytest.fixture(scope="module")
def generated(server: str, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``optim_advisor_generated``: generated now, from the live document."""
    out = tmp_path_factory.mktemp("generated")
    doc = out / "openapi.json"
    doc.write_text(httpx.get(f"{server}/openapi.json", timeout=10).text)
    config = out / "config.yml"
    config.write_text("package_name_override: optim_advisor_generated\npost_hooks: []\n")
    exe = shutil.which("openapi-python-client", path=str(Path(sys.executable).parent))
    assert exe, "openapi-python-client is a dev dependency (pyproject.toml)"
    proc = subprocess.run([exe, "generate", "--path", str(doc), "--meta", "none",
                           "--config", str(config), "--output-path",
                           str(out / "optim_advisor_generated")],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module("optim_advisor_generated")
    finally:
        sys.path.remove(str(out))


def test_a_generated_client_speaks_the_contract(generated: Any, server: str,
                                                keys: dict[str, str]) -> None:
    from optim_advisor_generated.api.advice import advise
    from optim_advisor_generated.api.jobs import cancel_job, get_job, submit_range_test
    from optim_advisor_generated.models import (
        AdviceRequest,
        AdviceResponse,
        JobView,
        Problem,
        RangeTestJobRequest,
        RangeTestResult,
    )

    client = generated.AuthenticatedClient(base_url=server, token=keys["a"], timeout=30)

    # Advice, typed.
    advice = advise.sync(client=client, body=AdviceRequest.from_dict({
        "task": "image_classification_cnn", "architecture": "cnn", "param_count": 11_000_000,
        "batch_size": 256, "dataset_size": 1_281_167, "epochs": 90}))
    assert isinstance(advice, AdviceResponse) and advice.optimizer.lr > 0
    assert advice.rationale and advice.rationale[0].rule_links[0].startswith("/v1/rules/")

    # A range test, polled to its typed result.
    job = submit_range_test.sync(client=client, body=RangeTestJobRequest.from_dict(
        tiny_range_test(seed=4242, num_steps=30)))
    assert isinstance(job, JobView), job
    deadline = time.monotonic() + 90
    while True:
        got = get_job.sync(job.id, client=client)
        assert isinstance(got, JobView)
        if got.status.value in ("succeeded", "failed"):
            break
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.2)
    assert got.status.value == "succeeded"
    result = got.result
    assert isinstance(result, RangeTestResult)
    assert result.curve.points == len(result.curve.lrs) == len(result.curve.losses) >= 10
    assert result.suggestions.recommended is not None
    assert got.progress.step == got.progress.total

    # A 422, parsed as a problem that names the field.
    bad = tiny_range_test(seed=1)
    bad["config"]["num_steps"] = 3
    refused = submit_range_test.sync(client=client, body=RangeTestJobRequest.from_dict(bad))
    assert isinstance(refused, Problem) and refused.status == 422
    assert refused.errors[0].field == "body.config.num_steps"

    # A 429 (the tenant's cap on active jobs is 1 here), parsed as a problem, with Retry-After.
    running = submit_range_test.sync(client=client, body=RangeTestJobRequest.from_dict(
        long_range_test(seed=4343)))
    assert isinstance(running, JobView)
    try:
        raw = submit_range_test.sync_detailed(client=client, body=RangeTestJobRequest.from_dict(
            tiny_range_test(seed=4344, num_steps=30)))
        assert raw.status_code == 429 and int(raw.headers["Retry-After"]) > 0
        assert isinstance(raw.parsed, Problem) and raw.parsed.status == 429
        assert raw.parsed.type_.endswith("tenant-job-cap")
    finally:
        cancel_job.sync(running.id, client=client)
        _wait_done(server, keys["a"], running.id)  # the cap counts it until it has stopped


def test_two_tenants_cannot_see_each_others_jobs(server: str, keys: dict[str, str]) -> None:
    a, b = _auth(keys["a"]), _auth(keys["b"])
    body = tiny_range_test(seed=5151, num_steps=20)
    r = httpx.post(f"{server}/v1/jobs/lr-range-test", json=body, headers=a, timeout=10)
    assert r.status_code == 202, r.text
    job = r.json()
    jid = job["id"]
    assert "tenant" not in job or job.get("tenant") is None  # not part of the view
    for method, path in (("GET", f"/v1/jobs/{jid}"), ("DELETE", f"/v1/jobs/{jid}"),
                         ("GET", f"/v1/jobs/{jid}/events")):
        other = httpx.request(method, server + path, headers=b, timeout=10)
        assert other.status_code == 404, (method, path, other.text)
        assert other.headers["content-type"] == "application/problem+json"
    listed = httpx.get(f"{server}/v1/jobs", params={"limit": 100}, headers=b, timeout=10).json()
    assert jid not in [j["id"] for j in listed["items"]]
    done = _wait_done(server, keys["a"], jid)
    assert done["status"] == "succeeded"
    mine = httpx.get(f"{server}/v1/jobs", params={"limit": 100}, headers=a, timeout=10).json()
    assert jid in [j["id"] for j in mine["items"]]

    # De-duplication is per tenant: the same request by B is B's own new job, by A the cached one.
    again_a = httpx.post(f"{server}/v1/jobs/lr-range-test", json=body, headers=a, timeout=10)
    assert again_a.status_code == 200 and again_a.json()["id"] == jid
    again_b = httpx.post(f"{server}/v1/jobs/lr-range-test", json=body, headers=b, timeout=10)
    assert again_b.status_code == 202 and again_b.json()["id"] != jid
    _wait_done(server, keys["b"], again_b.json()["id"])


def test_keys_are_required_checked_and_never_stored(server: str, keys: dict[str, str],
                                                    ns: Namespace,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    assert httpx.get(f"{server}/healthz", timeout=5).status_code == 200  # open
    none = httpx.get(f"{server}/v1/jobs", timeout=5)
    assert none.status_code == 401 and none.headers["www-authenticate"].startswith("Bearer")
    forged = httpx.get(f"{server}/v1/jobs", headers=_auth("oak_00000000_" + "x" * 43), timeout=5)
    assert forged.status_code == 401
    assert httpx.get(f"{server}/metrics", headers=_auth(keys["a"]), timeout=5).status_code == 403
    assert httpx.get(f"{server}/metrics", headers=_auth(keys["admin"]),
                     timeout=5).status_code == 200
    # No key, nor any part of its secret, is in the logs of these requests ...
    logged = "\n".join(str(vars(r)) for r in caplog.records)
    assert "/v1/jobs" in logged  # the access log did record them
    for key in keys.values():
        assert key.split("_", 2)[2] not in logged
    # ... nor in Redis other than as its SHA-256.
    client = redis.Redis.from_url(ns.redis_url, decode_responses=True)
    for key in keys.values():
        secret = key.split("_", 2)[2]
        for name in client.scan_iter(match=f"{ns.jobs_prefix}job:*", count=500):
            if client.type(name) == "hash":
                assert secret not in str(client.hgetall(name))
