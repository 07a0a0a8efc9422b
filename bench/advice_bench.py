"""Throughput and latency of POST /v1/advice (cache hit, cache miss) against GET /healthz on the
same single API process, measured with wrk (a C load generator, so the client is not the
bottleneck), 16 connections.

    .venv/bin/python bench/advice_bench.py [--duration 8] [--rounds 3] [--connections 16]
                                           [--threads 2]

wrk comes from Debian (``apt-get install wrk``); run as root the bench installs it, otherwise it
says so and exits 2. The test suite does not use wrk. Writes bench/results/advice_<ts>.json.
A miss is a request no process has seen (wrk's Lua script gives every request its own
param_count); a hit repeats one warmed request. The three are measured in ``--rounds``
interleaved rounds (healthz, hit, miss, healthz, ...), each ratio against the healthz of its own
round, and the median round is reported: on a shared machine the rate of one 8-second run moves
by ±20 %, and a ratio of runs minutes apart measures the machine as much as the service.
The advice cache is Redis db 13 (``--redis``), emptied before and after the run; a run in which
the cache's circuit opened (its log says why) is refused, since its misses skipped Redis.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pathlib
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from typing import IO

import redis

ROOT = pathlib.Path(__file__).resolve().parents[1]
SPEC = {"task": "llm_pretrain", "architecture": "decoder_transformer",
        "param_count": 1_300_000_000, "batch_size": 512, "seq_len": 2048,
        "dataset_size": 3 * 10**11, "dataset_unit": "tokens", "total_steps": 286_000}

HIT_LUA = """wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[%s]]
"""

TRIP = "advice cache unavailable"  # app/services/advice_cache.py's warning when its circuit opens


def cache_trips(log: IO[str]) -> list[str]:
    """The server log's lines that say the advice cache's circuit opened: a miss that finds it
    open skips its Redis write and reads as faster, so a run with any is not a miss's."""
    log.seek(0)
    return [line.strip() for line in log if TRIP in line]

# Each thread numbers its own requests; param_count = base + thread * 1e8 + n is unique per run
# (and inside the request's bound, 1e13).
MISS_LUA = """local counter = 0
local tid = 0
local base = %d
function setup(thread) tid = tid + 1; thread:set("tid", tid) end
function init(args) counter = 0 end
function request()
  counter = counter + 1
  local body = string.format([[%s]], base + tid * 100000000 + counter)
  return wrk.format("POST", "/v1/advice", {["Content-Type"] = "application/json"}, body)
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


DEFAULT_REDIS = "redis://127.0.0.1:6379/13"  # the advice benchmarks' scratch database


@contextlib.contextmanager
def scratch(url: str) -> Iterator[None]:
    """Empty the benchmarks' own database before and after a run: every miss leaves a 10 KB
    cache entry (about 20,000 a run, kept a day), and runs add up to gigabytes. Any other
    ``--redis`` is left as it is."""
    client = redis.Redis.from_url(url) if url == DEFAULT_REDIS else None
    try:
        if client is not None:
            client.flushdb()
        yield
    finally:
        if client is not None:
            client.flushdb()
            client.close()


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path:
        return path
    if os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "wrk"], check=False,
                       stdout=subprocess.DEVNULL)
        path = shutil.which("wrk")
        if path:
            return path
    sys.exit("wrk not found: install it with `apt-get install wrk` (Debian) and rerun")


def parse(out: str) -> dict[str, float]:
    def ms(v: str, unit: str) -> float:
        return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {p: ms(v, u) for p, v, u in re.findall(r"\s(50|90|99)%\s+([\d.]+)(us|ms|s)", out)}
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    total = int(re.search(r"(\d+) requests in", out).group(1))
    return {"req_per_s": rps, "p50_ms": lat.get("50", float("nan")),
            "p90_ms": lat.get("90", float("nan")), "p99_ms": lat.get("99", float("nan")),
            "requests": total, "non_2xx": int(non2xx.group(1)) if non2xx else 0}


def wrk(binary: str, url: str, args: argparse.Namespace, script: str | None) -> dict:
    cmd = [binary, f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s",
           "--latency", url]
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        if script:
            f.write(script)
    if script:
        cmd[1:1] = ["-s", f.name]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    os.unlink(f.name)
    return parse(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--redis", default=DEFAULT_REDIS)
    args = ap.parse_args()
    binary = ensure_wrk()
    port = free_port()
    env = {**os.environ, "BENCH_REDIS": args.redis,
           "PYTHONPATH": f"{ROOT}:{ROOT / 'bench'}"}
    # The server's log goes to a file that is read afterwards for cache trips: a miss that
    # finds the cache's circuit open skips its Redis write and would read as faster.
    with tempfile.TemporaryFile("w+") as log, scratch(args.redis):
        proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "bench_app:app", "--host",
                                 "127.0.0.1", "--port", str(port), "--log-level", "warning",
                                 "--no-access-log"], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=log)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(200):
                try:
                    urllib.request.urlopen(base + "/healthz", timeout=1).read()
                    break
                except OSError:
                    time.sleep(0.1)
            body = json.dumps(SPEC)
            req = urllib.request.Request(base + "/v1/advice", body.encode(),
                                         {"Content-Type": "application/json"})
            urllib.request.urlopen(req).read()  # warm the hit
            miss_body = json.dumps({**SPEC, "param_count": 999_999_999}).replace(
                "999999999", "%d")
            rounds = []
            for i in range(args.rounds):
                base_n = 10**9 + (time.time_ns() % 1000 + i * 1000) * 10**9
                rounds.append({
                    "healthz": wrk(binary, base + "/healthz", args, None),
                    "advice_hit": wrk(binary, base + "/v1/advice", args, HIT_LUA % body),
                    "advice_miss": wrk(binary, base + "/v1/advice", args,
                                       MISS_LUA % (base_n, miss_body)),
                })
        finally:
            proc.terminate()
            proc.wait(10)
        trips = cache_trips(log)
    for r in rounds:
        h = r["healthz"]["req_per_s"]
        r["of_healthz"] = {k: round(v["req_per_s"] / h, 3) for k, v in r.items()
                           if k != "healthz"}
    median = {k: statistics.median(r["of_healthz"][k] for r in rounds)
              for k in ("advice_hit", "advice_miss")}
    p99 = {k: statistics.median(r[k]["p99_ms"] for r in rounds)
           for k in ("healthz", "advice_hit", "advice_miss")}
    out = {"command": " ".join(sys.argv), "connections": args.connections,
           "threads": args.threads, "duration_s": args.duration, "rounds": rounds,
           "cpu_count": os.cpu_count(), "of_healthz_median": median, "p99_ms_median": p99,
           "cache_trips": len(trips),
           "targets": {"advice_hit": 0.60, "advice_miss": 0.40, "p99_ms": 20}}
    print(json.dumps(out, indent=2))
    for i, r in enumerate(rounds):
        print(f"round {i + 1}: " + "  ".join(
            f"{k} {v['req_per_s']:,.0f}/s p99 {v['p99_ms']:.1f} ms" for k, v in r.items()
            if k != "of_healthz") + f"  ratios {r['of_healthz']}", file=sys.stderr)
    bad = {k: v["non_2xx"] for r in rounds for k, v in r.items()
           if k != "of_healthz" and v["non_2xx"]}
    if bad:
        sys.exit(f"non-2xx responses: {bad}: the numbers above do not measure the advice")
    if trips:
        sys.exit(f"the advice cache's circuit opened {len(trips)} times during the run, so "
                 "misses skipped their Redis writes and the miss rate above is not a miss's; "
                 "the server's log: " + " | ".join(trips[:3]))
    path = ROOT / "bench" / "results" / f"advice_{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
