"""CPU per request of the API app called in-process as ASGI: GET /healthz, an advice cache hit and
an advice miss, and the miss again with the engine's answer replaced by a fixed one (what a miss
costs besides the engine and its JSON).

    .venv/bin/python bench/advice_cpu.py [--requests 1000] [--rounds 5]

No sockets and no load generator: ``process_time`` over ``--requests`` calls of the app, the
minimum (and the median) of ``--rounds`` interleaved rounds. It uses the Redis of
``$BENCH_REDIS`` (default db 13, as bench/advice_bench.py) for the advice cache. Where
advice_bench.py says how fast the service is, this says where a request's CPU goes; the two
differ by the HTTP server's own share (uvicorn's parser and transport), which every request pays.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import pathlib
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
os.environ.setdefault("BENCH_REDIS", "redis://127.0.0.1:6379/13")

from advice_bench import SPEC  # noqa: E402
from bench_app import app  # noqa: E402

import app.api.routes.advice as advice_routes  # noqa: E402

HEADERS = [(b"host", b"127.0.0.1"), (b"content-type", b"application/json")]


async def call(path: str, body: bytes = b"") -> int:
    """One request through the whole ASGI app (middleware, routing, validation, the route)."""
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "POST" if body else "GET", "scheme": "http", "path": path,
             "raw_path": path.encode(), "query_string": b"", "root_path": "",
             "headers": [*HEADERS, (b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000), "state": {}}
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        return messages.pop() if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    return status[0]


def fixed_engine() -> Callable[[], None]:
    """Replace the route's engine-and-JSON step by its first answer; returns the undo."""
    original = advice_routes._advice_json
    first: list[bytes] = []

    def fixed(req: Any) -> bytes:
        if not first:
            first.append(original(req))
        return first[0]

    advice_routes._advice_json = fixed

    def undo() -> None:
        advice_routes._advice_json = original
    return undo


async def measure(requests: int, rounds: int) -> dict[str, Any]:
    hit = json.dumps(SPEC).encode()
    base = time.time_ns() % 10**12  # unique per run: a miss is a spec no process has seen
    fresh = (json.dumps({**SPEC, "param_count": base + i}).encode() for i in range(10**9))
    kinds = ("healthz", "hit", "miss", "miss_fixed_engine")
    per_request: dict[str, list[float]] = {k: [] for k in kinds}
    async with app.router.lifespan_context(app):
        for _ in range(200):  # warm: imports, compiled validators, the local LRU
            assert await call("/healthz") == 200 and await call("/v1/advice", hit) == 200
        for _ in range(rounds):
            for kind in kinds:
                undo = fixed_engine() if kind == "miss_fixed_engine" else None
                t0 = time.process_time()
                for _ in range(requests):
                    if kind == "healthz":
                        status = await call("/healthz")
                    elif kind == "hit":
                        status = await call("/v1/advice", hit)
                    else:
                        status = await call("/v1/advice", next(fresh))
                    assert status == 200, (kind, status)
                per_request[kind].append((time.process_time() - t0) / requests * 1e6)
                if undo:
                    undo()
                await asyncio.sleep(0.05)  # let the write window flush between kinds
    return {k: {"min_us": min(v), "median_us": statistics.median(v)}
            for k, v in per_request.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    out = asyncio.run(measure(args.requests, args.rounds))
    h, m, f = (out[k]["min_us"] for k in ("healthz", "miss", "miss_fixed_engine"))
    out["engine_and_json_share_of_miss"] = (m - f) / m
    out["healthz_over_miss"] = h / m
    print(json.dumps(out, indent=2))
    path = ROOT / "bench" / "results" / f"advice_cpu_{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
