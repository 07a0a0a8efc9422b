"""Container health check for a worker: ``python -m workers.healthcheck``.

Healthy when a worker on this host has a fresh heartbeat (refreshed by the worker's main process
every ``worker_heartbeat_ttl_s / 3`` seconds): read from the ``workers`` zset and the payload
keys, never a SCAN of the keyspace. Exit 0 healthy, 1 not."""

from __future__ import annotations

import socket
import sys

import redis

from workers.jobstore import JobKeys, heartbeat_age_ok, live_worker_payloads
from workers.jobstore.clients import sync_client
from workers.settings import WorkerSettings


def healthy(settings: WorkerSettings, host: str) -> bool:
    client = sync_client(settings.redis_url, timeout_s=3, retries=1)
    try:
        ttl = settings.worker_heartbeat_ttl_s
        return any(heartbeat_age_ok(beat, ttl)
                   and str(beat.get("hostname", "")).endswith("@" + host)
                   for beat in live_worker_payloads(client, JobKeys(settings.jobs_key_prefix),
                                                    ttl))
    finally:
        client.close()


def main() -> int:
    try:
        ok = healthy(WorkerSettings(), socket.gethostname())
    except (redis.RedisError, ValueError) as exc:
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    print("healthy" if ok else "unhealthy: no fresh heartbeat from this host")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
