"""Job service benchmark: submit-to-result latency (uncached and cached) and status reads/s.

Starts, against real Redis (DB 12, a fresh key prefix), one Celery worker subprocess and the API
under uvicorn on a free 127.0.0.1 port, then:

* uncached: POST a small range test (a new seed each time) and poll GET until it succeeded;
* cached:   POST the same requests again (200, ``cached: true``, result in the answer);
* reads:    GET /v1/jobs/{id} from ``--concurrency`` clients, bounded by ``--reads`` requests and
            ``--max-seconds``.

    .venv/bin/python bench/jobs_bench.py [--jobs 8] [--reads 3000] [--concurrency 16]

Prints a table and writes bench/results/jobs_<host>_<utc time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.jobs_support import (  # noqa: E402
    WorkerProcess,
    free_port,
    new_namespace,
    tiny_range_test,
    wait_until,
)


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


def summary(xs: list[float]) -> dict[str, float]:
    return {"n": len(xs), "min_ms": 1000 * min(xs), "median_ms": 1000 * statistics.median(xs),
            "p90_ms": 1000 * pct(xs, 0.9), "max_ms": 1000 * max(xs)}


def submit_and_wait(client: httpx.Client, body: dict[str, Any], timeout: float = 120
                    ) -> tuple[float, dict[str, Any], int]:
    t0 = time.perf_counter()
    r = client.post("/v1/jobs/lr-range-test", json=body)
    r.raise_for_status()
    job = r.json()
    if job["status"] != "succeeded":
        def done() -> dict[str, Any] | None:
            j = client.get(f"/v1/jobs/{job['id']}").json()
            return j if j["status"] in ("succeeded", "failed", "cancelled") else None
        job = wait_until(done, timeout, 0.01, "the job")
    return time.perf_counter() - t0, job, r.status_code


async def read_load(base: str, job_id: str, total: int, concurrency: int, max_s: float
                    ) -> dict[str, Any]:
    latencies: list[float] = []
    errors = 0
    sent = 0
    deadline = time.perf_counter() + max_s
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10) as client:
        async def one_client() -> None:
            nonlocal sent, errors
            while sent < total and time.perf_counter() < deadline:
                sent += 1
                t = time.perf_counter()
                r = await client.get(f"/v1/jobs/{job_id}")
                latencies.append(time.perf_counter() - t)
                errors += r.status_code != 200
        t0 = time.perf_counter()
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    return {"requests": len(latencies), "errors": errors, "seconds": wall,
            "requests_per_s": len(latencies) / wall, "concurrency": concurrency,
            **summary(latencies)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--jobs", type=int, default=8, help="uncached (then cached) jobs")
    ap.add_argument("--steps", type=int, default=60, help="range test steps per job")
    ap.add_argument("--reads", type=int, default=3000, help="status reads at most")
    ap.add_argument("--max-seconds", type=float, default=20.0, help="status reads for at most")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()

    ns = new_namespace()
    port = free_port()
    env = ns.env(OPTIM_LOG_LEVEL="WARNING")
    worker = WorkerProcess(ns, concurrency=1, queues="cpu")
    api_log = open(ROOT / ".run" / f"bench-api-{ns.uid}.log", "wb")  # noqa: SIM115
    api = subprocess.Popen([sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1",
                            "--port", str(port), "--no-access-log", "--log-level", "warning"],
                           cwd=ROOT, env=env, stdout=api_log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        worker.wait_ready(120)
        with httpx.Client(base_url=base, timeout=10) as client:
            wait_until(lambda: _ok(client, "/readyz"), 60, 0.2, "the API to be ready")
            bodies = [tiny_range_test(seed=10_000 + i, num_steps=args.steps)
                      for i in range(args.jobs)]
            submit_and_wait(client, tiny_range_test(seed=9_999, num_steps=args.steps))  # warm-up
            uncached, cached, job_ids = [], [], []
            for body in bodies:
                dt, job, _ = submit_and_wait(client, body)
                assert job["status"] == "succeeded", job.get("problem")
                uncached.append(dt)
                job_ids.append(job["id"])
            for body, jid in zip(bodies, job_ids, strict=True):
                dt, job, code = submit_and_wait(client, body)
                assert code == 200 and job["cached"] and job["id"] == jid
                cached.append(dt)
        reads = asyncio.run(read_load(base, job_ids[0], args.reads, args.concurrency,
                                      args.max_seconds))
    finally:
        api.terminate()
        api.wait(20)
        api_log.close()
        worker.stop()
        ns.cleanup()

    report = {
        "benchmark": "jobs", "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": socket.gethostname(), "cpus": os.cpu_count(), "python": platform.python_version(),
        "command": " ".join([".venv/bin/python", "bench/jobs_bench.py", *sys.argv[1:]]),
        "job": {"kind": "lr-range-test", "model": "mlp [32]", "num_steps": args.steps,
                "worker": "prefork -c 1, queue cpu"},
        "uncached_submit_to_result": summary(uncached),
        "cached_submit_to_result": summary(cached),
        "status_reads": reads,
    }
    rows = [("uncached submit→result", report["uncached_submit_to_result"]),
            ("cached submit→result", report["cached_submit_to_result"]),
            ("GET /v1/jobs/{id}", reads)]
    print(f"{'measure':<26}{'n':>6}{'median ms':>11}{'p90 ms':>9}{'max ms':>9}{'req/s':>9}")
    for name, s in rows:
        rps = f"{s['requests_per_s']:.0f}" if "requests_per_s" in s else "-"
        print(f"{name:<26}{s['n']:>6}{s['median_ms']:>11.1f}{s['p90_ms']:>9.1f}"
              f"{s['max_ms']:>9.1f}{rps:>9}")
    out = args.out or ROOT / "bench" / "results" / (
        f"jobs_{socket.gethostname()}_{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")


def _ok(client: httpx.Client, path: str) -> bool:
    try:
        return client.get(path).status_code == 200
    except httpx.HTTPError:
        return False


if __name__ == "__main__":
    main()
