"""Redis Cluster readiness of the job store: every script it runs touches keys of one hash slot.

The first test drives a job through every state change (submit, join, full, begin, progress,
requeue, cancel, reap, republish, evict, forget, release) on a real Redis, records the KEYS of every script
call the stores make (sync and async), and checks each call's keys map to one slot, computed as
Redis does (CRC16 of the hash tag: ``redis.crc.key_slot``). The second runs the same stores on a
real three-node Redis Cluster (Debian's redis-server, private ports and directories), where a
cross-slot script or MULTI is refused by the server (CROSSSLOT) and by the client."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from redis.crc import key_slot

from app.auth.limits import Limiter
from tests.jobs_support import Namespace, free_port, new_namespace
from workers.jobstore import AsyncJobStore, JobStore, new_job_id, write_heartbeat

pytestmark = pytest.mark.integration

Calls = list[tuple[str, list[str]]]


@pytest.fixture()
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture()
def ns() -> Iterator[Namespace]:
    namespace = new_namespace()
    yield namespace
    namespace.cleanup()


def _record_async(client: Any, calls: Calls) -> None:
    real = client.eval

    async def eval_(script: str, numkeys: int, *keys_and_args: Any) -> Any:
        calls.append((script.strip().splitlines()[0], [str(k) for k in keys_and_args[:numkeys]]))
        return await real(script, numkeys, *keys_and_args)

    client.eval = eval_


def _record_sync(client: Any, calls: Calls) -> None:
    real = client.evalsha

    def evalsha(sha: str, numkeys: int, *keys_and_args: Any) -> Any:
        calls.append((sha, [str(k) for k in keys_and_args[:numkeys]]))
        return real(sha, numkeys, *keys_and_args)

    client.evalsha = evalsha


async def _lifecycle(aclient: Any, sclient: Any, prefix: str) -> None:
    """Every state change of the store, for two tenants."""
    store = AsyncJobStore(aclient, prefix, result_ttl_s=60, active_ttl_s=600, max_stored=2)
    worker = JobStore(sclient, prefix, result_ttl_s=60)
    for tenant in ("acme", "beta"):
        rec = {"kind": "range_test", "tenant": tenant}
        a, b, c = (new_job_id(tenant) for _ in range(3))
        assert (await store.submit(a, "k-a", rec, force=False, max_active=2)).outcome == "created"
        assert (await store.submit(b, "k-a", rec, force=False)).outcome == "existing"
        assert (await store.submit(b, "k-b", rec, force=False, max_active=2)).outcome == "created"
        assert (await store.submit(c, "k-c", rec, force=False, max_active=2)).outcome == "full"
        assert worker.begin(a, max_deliveries=3, worker="w@h", pid=1, boot="boot-1").action == "run"
        assert worker.progress(a, {"step": 1, "total": 2, "lr": 0.1, "loss": 1.0})
        assert worker.requeue(a, delivery=1, reason="drain")[0] == "ok"
        assert worker.begin(a, max_deliveries=3, worker="w@h", pid=1, boot="boot-1").action == "run"
        # boot-1 never beat: its job is reaped back to the queue, then run and finished.
        rec_a = await store.get(a) or {}
        assert (await store.reap_if_worker_lost(a, "w@h", rec_a["claim_key"], {},
                                                max_deliveries=3, boot="boot-1",
                                                tenant=tenant))[0] == "requeued"
        rec_a = await store.get(a) or {}
        assert worker.begin(a, max_deliveries=3, worker="w@h", pid=1, boot="boot-2",
                            generation=int(rec_a["generation"])).action == "run"
        write_heartbeat(sclient, worker.keys, "boot-2", {"hostname": "w@h"}, 30)
        assert (await store.reap_if_worker_lost(a, "w@h", rec_a["claim_key"], {},
                                                max_deliveries=3, boot="boot-2",
                                                tenant=tenant))[0] == "alive"
        assert worker.transition(a, "succeeded", allowed_from=["running"],
                                 fields={"result": {}})[0] == "ok"
        assert await store.request_cancel(b) == "cancelled"
        d = new_job_id(tenant)
        assert (await store.submit(d, "k-d", rec, force=False)).outcome == "created"
        assert worker.begin(d, max_deliveries=1, worker="w@h", pid=1, boot="gone").action == "run"
        assert await store.request_cancel(d) == "requested"
        assert (await store.reap_if_worker_lost(d, "w@h", "", {"title": "lost"},
                                                max_deliveries=1, boot="gone",
                                                tenant=tenant))[0] == "lost"
        e = new_job_id(tenant)  # 4 stored > 2: the oldest finished ones are evicted
        assert (await store.submit(e, "k-e", rec, force=True)).outcome == "created"
        assert await store.evict_beyond_cap(tenant) == 2
        assert await store.get(a) is None and await store.get(e) is not None
        await aclient.delete(store.keys.job(e))  # expired while queued: forgotten when full
        f = new_job_id(tenant)
        assert (await store.submit(f, "k-f", rec, force=False, max_active=1)).outcome == "created"
        assert (await store.queued_jobs())[f]["generation"] == 0
        assert await store.republish_if_queued(f, 0) == 1  # its message was lost
        assert await store.republish_if_queued(f, 0) is None  # another API process was first
        assert (await store.queued_jobs())[f]["generation"] == 1
        assert await store.evict_beyond_cap(tenant) == 1
        assert not await store.release_claim("k-f", a)
        page, _ = await store.page(before_seq=None, limit=5, statuses=None, kinds=None,
                                   tenant=tenant)
        assert [r["id"] for r in page] == [f]
    current, entered = await store.state_counts()
    assert current == {"queued": 2, "running": 0}
    assert entered["succeeded"] == 2 and entered["cancelled"] == 2 and entered["failed"] == 2
    limiter = Limiter(aclient, prefix, rate_per_s=1, burst=2, tenant_max_active=1)
    assert (await limiter.take("key:1")).allowed


def _assert_one_slot(calls: Calls) -> None:
    assert calls
    for script, keys in calls:
        slots = {key_slot(k.encode()) for k in keys}
        assert len(slots) == 1, f"{script}: keys in {len(slots)} slots: {keys}"


@pytest.mark.anyio
async def test_every_script_touches_keys_of_one_slot(ns: Namespace) -> None:
    aclient = aioredis.Redis.from_url(ns.redis_url, decode_responses=True)
    sclient = redis.Redis.from_url(ns.redis_url, decode_responses=True)
    calls: Calls = []
    _record_async(aclient, calls)
    _record_sync(sclient, calls)
    try:
        await _lifecycle(aclient, sclient, ns.jobs_prefix)
    finally:
        await aclient.aclose()
        sclient.close()
    _assert_one_slot(calls)
    kinds = {script for script, _ in calls}
    assert len(kinds) >= 10  # submit, evict, forget, transition, cancel, reap, begin, ...


# --- a real Redis Cluster ------------------------------------------------------------------------
def _cluster_binaries() -> tuple[str, str] | None:
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    return (server, cli) if server and cli else None


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[list[int]]:
    """Three primaries on free loopback ports, each with its own directory; torn down after."""
    bins = _cluster_binaries()
    if bins is None:
        pytest.skip("redis-server / redis-cli not installed (Debian: apt-get install redis)")
    server, cli = bins
    root = Path(tempfile.mkdtemp(prefix="optim-cluster-"))
    ports = [free_port() for _ in range(3)]
    procs = []
    try:
        for port in ports:
            d = root / str(port)
            d.mkdir()
            procs.append(subprocess.Popen(
                # The bus port is a free port of its own (the default, port + 10000, may be taken
                # or out of range).
                [server, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-port", str(free_port()),
                 "--cluster-config-file", str(d / "nodes.conf"), "--dir", str(d),
                 "--save", "", "--appendonly", "no"],
                stdout=(d / "log").open("wb"), stderr=subprocess.STDOUT))
        for port in ports:
            _wait(lambda p=port: redis.Redis(port=p).ping(), what=root)
        subprocess.run([cli, "--cluster", "create", *(f"127.0.0.1:{p}" for p in ports),
                        "--cluster-replicas", "0", "--cluster-yes"], check=True,
                       capture_output=True, timeout=60)
        _wait(lambda: redis.Redis(port=ports[0]).cluster("info")["cluster_state"] == "ok",
              what=root)
        yield ports
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait(timeout=10)
        shutil.rmtree(root, ignore_errors=True)


def _wait(check: Callable[[], Any], what: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except (redis.ConnectionError, KeyError):
            pass
        if time.monotonic() > deadline:
            logs = {p.parent.name: p.read_text()[-500:] for p in what.glob("*/log")}
            raise AssertionError(f"the Redis Cluster did not come up: {logs}")
        time.sleep(0.1)


@pytest.fixture()
async def cluster_clients(redis_cluster: list[int]) -> AsyncIterator[tuple[Any, Any]]:
    from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
    from redis.cluster import RedisCluster

    aclient = AsyncRedisCluster(host="127.0.0.1", port=redis_cluster[0], decode_responses=True)
    sclient = RedisCluster(host="127.0.0.1", port=redis_cluster[0], decode_responses=True)
    yield aclient, sclient
    await aclient.aclose()
    sclient.close()


@pytest.mark.anyio
async def test_the_store_runs_on_a_real_redis_cluster(cluster_clients: tuple[Any, Any]) -> None:
    aclient, sclient = cluster_clients
    nodes = {sclient.get_node_from_key(f"t:{{{t}}}").name for t in ("a", "b", "c", "d", "e")}
    assert len(nodes) > 1  # really several nodes
    await _lifecycle(aclient, sclient, "optim-test:")
    # The server itself refuses a script whose keys span slots: the test above would notice.
    with pytest.raises(redis.ResponseError, match="same slot"):
        redis.Redis(port=sclient.get_default_node().port).eval(
            "return 1", 2, "{a}x", "{b}y")
