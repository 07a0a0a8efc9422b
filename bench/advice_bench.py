"""Latency and throughput of /v1/advice (cache miss and hit) vs a trivial endpoint, through
uvicorn on 127.0.0.1, in the same run.

    .venv/bin/python bench/advice_bench.py [--requests 2000] [--concurrency 16] [--cap-s 60]

The trivial endpoint lives in the bench's own app module (``bench/bench_app.py``), added to the
product app, so both go through the same server, middleware and client.
Writes bench/results/advice_<timestamp>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import socket
import statistics
import subprocess
import sys
import time

import httpx

ROOT = pathlib.Path(__file__).resolve().parents[1]
SPEC = {"task": "llm_pretrain", "architecture": "decoder_transformer", "param_count": 1_300_000_000,
        "batch_size": 512, "seq_len": 2048, "dataset_size": 3 * 10**11, "dataset_unit": "tokens",
        "total_steps": 286_000}


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


async def drive(url: str, bodies: list[dict], concurrency: int, cap_s: float) -> dict:
    lat: list[float] = []
    statuses: dict[int, int] = {}
    queue = list(reversed(bodies))
    deadline = time.perf_counter() + cap_s

    async def worker(client: httpx.AsyncClient) -> None:
        while queue and time.perf_counter() < deadline:
            body = queue.pop()
            t0 = time.perf_counter()
            r = await client.post(url, json=body)
            lat.append(time.perf_counter() - t0)
            statuses[r.status_code] = statuses.get(r.status_code, 0) + 1

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    lat.sort()
    return {"requests": len(lat), "statuses": statuses, "wall_s": round(wall, 3),
            "req_per_s": round(len(lat) / wall, 1),
            "p50_ms": round(1000 * statistics.median(lat), 3),
            "p99_ms": round(1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))], 3)}


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--cap-s", type=float, default=60.0)
    ap.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    args = ap.parse_args()
    port = free_port()
    bench_dir = ROOT / "bench"
    env = {**os.environ, "BENCH_REDIS": args.redis, "PYTHONPATH": f"{ROOT}:{bench_dir}"}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "bench_app:app", "--host",
                             "127.0.0.1", "--port", str(port), "--log-level", "warning",
                             "--no-access-log"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as c:
            for _ in range(100):
                try:
                    await c.post(base + "/bench/trivial", json={})
                    break
                except httpx.TransportError:
                    await asyncio.sleep(0.1)
        n, k, cap = args.requests, args.concurrency, args.cap_s
        # miss: every request a distinct spec (distinct param_count); hit: one spec, pre-warmed
        tag = time.time_ns() % 10**6
        misses = [{**SPEC, "param_count": SPEC["param_count"] + tag * 10**4 + i} for i in range(n)]
        hits = [SPEC] * n
        async with httpx.AsyncClient() as c:
            await c.post(base + "/v1/advice", json=SPEC)
        res = {
            "trivial": await drive(base + "/bench/trivial", [SPEC] * n, k, cap),
            "advice_miss": await drive(base + "/v1/advice", misses, k, cap),
            "advice_hit": await drive(base + "/v1/advice", hits, k, cap),
        }
    finally:
        proc.terminate()
        proc.wait(10)
    out = {"command": " ".join(sys.argv), "requests": args.requests,
           "concurrency": args.concurrency, "cpu_count": os.cpu_count(), "results": res}
    print(json.dumps(out, indent=2))
    path = bench_dir / "results" / f"advice_{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
