"""Soak under faults, loopback only, bounded in count and time.

Starts its own redis-server (and, with ``--broker amqp``, its own RabbitMQ node) on free ports,
two Celery workers and the API under uvicorn; submits ``--jobs`` small range tests at
``--concurrency`` and follows each to its end, while it SIGKILLs a worker and restarts it under
the same name, restarts Redis, and (amqp) restarts RabbitMQ. Reports submitted / succeeded /
failed / lost / completed twice / stuck, API p50 / p99, 5xx other than 503, and jobs per second.

    .venv/bin/python bench/soak.py [--jobs 200] [--concurrency 16] [--broker redis|amqp]
                                   [--max-seconds 600]

Writes bench/results/soak_<broker>.json. ``tests/integration/test_soak.py`` runs a small one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.jobs_support import (  # noqa: E402
    Namespace,
    PrivateRabbitMQ,
    PrivateRedis,
    WorkerProcess,
    start_api,
    tiny_range_test,
)

TERMINAL = {"succeeded", "failed", "cancelled"}


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))] if xs else 0.0


class Soak:
    def __init__(self, jobs: int, concurrency: int, broker: str, max_seconds: float,
                 workdir: Path) -> None:
        self.n, self.c, self.broker, self.max_s = jobs, concurrency, broker, max_seconds
        self.dir = workdir
        self.latencies: list[float] = []
        self.statuses: Counter[int] = Counter()
        self.final: dict[str, str] = {}
        self.faults: list[str] = []
        self.done_count = 0

    async def _call(self, c: httpx.AsyncClient, method: str, url: str, **kw: Any
                    ) -> httpx.Response | None:
        t0 = time.perf_counter()
        try:
            r = await c.request(method, url, **kw)
        except httpx.HTTPError:
            self.statuses[-1] += 1
            return None
        self.latencies.append(time.perf_counter() - t0)
        self.statuses[r.status_code] += 1
        return r

    async def _one(self, c: httpx.AsyncClient, sem: asyncio.Semaphore, i: int,
                   deadline: float) -> None:
        async with sem:
            body = tiny_range_test(seed=100_000 + i, num_steps=200)
            job_id = None
            while job_id is None and time.monotonic() < deadline:
                r = await self._call(c, "POST", "/v1/jobs/lr-range-test", json=body)
                if r is not None and r.status_code in (200, 202):
                    job_id = r.json()["id"]
                else:
                    await asyncio.sleep(0.5)  # 503 while Redis or the broker restarts
            if job_id is None:
                return
            self.final[job_id] = "unknown"
            while time.monotonic() < deadline:
                r = await self._call(c, "GET", f"/v1/jobs/{job_id}")
                if r is not None and r.status_code == 200:
                    self.final[job_id] = r.json()["status"]
                    if self.final[job_id] in TERMINAL:
                        self.done_count += 1
                        return
                await asyncio.sleep(0.3)

    def _faults(self, workers: list[WorkerProcess], ns: Namespace, redis_srv: PrivateRedis,
                rabbit: PrivateRabbitMQ | None, stop: threading.Event) -> None:
        def at(fraction: float) -> bool:
            while not stop.is_set() and self.done_count < fraction * self.n:
                time.sleep(0.1)
            return not stop.is_set()

        if at(0.2):
            victim = workers[0]
            os.killpg(victim.proc.pid, signal.SIGKILL)
            victim.proc.wait(10)
            victim.stop()
            workers[0] = WorkerProcess(ns, concurrency=1, name="w1",
                                       log_path=self.dir / "w1-restarted.log")
            self.faults.append("SIGKILL w1, restarted under the same name")
        if at(0.45):
            redis_srv.stop()
            time.sleep(2)
            redis_srv.start()
            self.faults.append("Redis restarted (2 s down)")
        if rabbit is not None and at(0.7):
            rabbit.stop()
            time.sleep(1)
            rabbit.start()
            self.faults.append("RabbitMQ restarted")

    def run(self) -> dict[str, Any]:
        redis_srv = PrivateRedis(self.dir)
        redis_srv.start()
        rabbit = None
        if self.broker == "amqp":
            rabbit = PrivateRabbitMQ(self.dir / "rabbitmq")
            rabbit.start()
        ns = Namespace(redis_srv.url, "soak", broker_url=rabbit.url if rabbit else None)
        # Sweeps every 2 s, and a lost message (a BRPOP cut by the Redis restart) published
        # again after 4 s: recoveries land inside a short soak's deadline.
        env = {"OPTIM_REAPER_INTERVAL_S": "2", "OPTIM_JOB_LOST_MESSAGE_AFTER_S": "4"}
        workers = [WorkerProcess(ns, concurrency=1, name=n, log_path=self.dir / f"{n}.log",
                                 env=env) for n in ("w1", "w2")]
        api, base = start_api(ns, self.dir / "api.log", **env)
        stop = threading.Event()
        try:
            for w in workers:
                w.wait_ready(timeout=180)
            faults = threading.Thread(target=self._faults,
                                      args=(workers, ns, redis_srv, rabbit, stop), daemon=True)
            faults.start()
            t0 = time.monotonic()
            deadline = t0 + self.max_s

            async def drive() -> None:
                sem = asyncio.Semaphore(self.c)
                limits = httpx.Limits(max_connections=self.c + 4)
                async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as c:
                    await asyncio.gather(*(self._one(c, sem, i, deadline)
                                           for i in range(self.n)))

            asyncio.run(drive())
            elapsed = time.monotonic() - t0
            stop.set()
            faults.join(60)
        finally:
            stop.set()
            os.killpg(api.pid, signal.SIGTERM)
            api.wait(20)
            for w in workers:
                w.stop()
            if rabbit is not None:
                rabbit.stop()
            redis_srv.stop()
        runs = self._completions()
        final = Counter(self.final.values())
        succeeded = final["succeeded"]
        return {
            "broker": self.broker, "jobs": self.n, "concurrency": self.c,
            "submitted": len(self.final), "succeeded": succeeded, "failed": final["failed"],
            "lost": self.n - len(self.final) + final["unknown"],
            "stuck": sum(v for k, v in final.items() if k in ("queued", "running")),
            "completed_twice": sum(1 for n in runs.values() if n > 1),
            # jobs whose message the Redis broker lost, published again by the API's reaper
            "republished": (self.dir / "api.log").read_text(errors="replace").count(
                "message lost: job published again"),
            "faults": self.faults, "seconds": round(elapsed, 1),
            "jobs_per_s": round(succeeded / elapsed, 3) if elapsed else 0.0,
            "api_p50_ms": round(1000 * _pct(self.latencies, 0.5), 1),
            "api_p99_ms": round(1000 * _pct(self.latencies, 0.99), 1),
            "api_mean_ms": round(1000 * statistics.fmean(self.latencies), 1)
            if self.latencies else 0.0,
            "requests": sum(self.statuses.values()),
            "status_counts": {str(k): v for k, v in sorted(self.statuses.items())},
            "server_errors": sum(v for k, v in self.statuses.items() if k >= 500 and k != 503),
            "unavailable_503": self.statuses[503],
        }

    def _completions(self) -> Counter[str]:
        """Stored completions per job from the workers' JSON logs (``job ended``, stored ok):
        the job store refuses a second one, so any count above 1 is a bug."""
        runs: Counter[str] = Counter()
        for log in self.dir.glob("w*.log"):
            for line in log.read_text(errors="replace").splitlines():
                if '"job ended"' not in line:
                    continue
                try:
                    rec = json.loads(line)
                except ValueError:
                    continue
                if rec.get("stored") == "ok" and rec.get("status") == "succeeded":
                    runs[rec.get("job_id", "")] += 1
        return runs


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--broker", choices=["redis", "amqp"], default="redis")
    ap.add_argument("--max-seconds", type=float, default=600)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="soak-") as d:
        report = Soak(args.jobs, args.concurrency, args.broker, args.max_seconds, Path(d)).run()
    report["command"] = "python bench/soak.py " + " ".join(sys.argv[1:])
    print(json.dumps(report, indent=2))
    out = ROOT / "bench" / "results" / f"soak_{args.broker}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
