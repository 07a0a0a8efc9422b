"""Instructions per request of the real server (uvicorn + the app), counted by valgrind's callgrind:
GET /healthz, an advice cache hit and an advice miss, and the share of healthz's count each costs.

    .venv/bin/python bench/advice_ir.py [--requests 300]

Where advice_bench.py says how fast the service is under wrk, this says the same thing in a unit
that does not depend on what else the machine is doing: callgrind counts the instructions the
server process executes (user space: uvicorn's HTTP parsing, the middleware, routing, validation,
the engine, the JSON, the Redis client), the same count for the same code and inputs on every
run, where a shared 2-core VM moves wrk's rates by ±20 % between rounds. It does not count the
kernel's socket work, which every request pays alike, so its shares are a little below wrk's on
an idle machine. One server under callgrind: every kind of request is warmed first, then the
counters are zeroed, ``--requests`` of one kind are sent over one keep-alive connection, and the
counters are dumped — once per kind. Needs valgrind (Debian's ``valgrind``) and a Redis
(``$BENCH_REDIS``, default db 13, as advice_bench.py). Takes about a minute.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench")]

from advice_bench import DEFAULT_REDIS, SPEC, cache_trips, free_port, scratch  # noqa: E402

KINDS = ("healthz", "advice_hit", "advice_miss")


def _send(conn: http.client.HTTPConnection, kind: str, n: int, base: int) -> None:
    for i in range(n):
        if kind == "healthz":
            conn.request("GET", "/healthz")
        else:
            spec = SPEC if kind == "advice_hit" else {**SPEC, "param_count": base + i}
            conn.request("POST", "/v1/advice", json.dumps(spec),
                         {"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        if resp.status != 200:
            raise SystemExit(f"{kind}: HTTP {resp.status}")


def _control(pid: int, *args: str) -> None:
    subprocess.run(["callgrind_control", *args, str(pid)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _total(path: pathlib.Path) -> int:
    m = re.search(r"^(?:summary|totals): (\d+)", path.read_text(errors="replace"), re.M)
    if m is None:
        raise SystemExit(f"no totals in {path}")
    return int(m.group(1))


def _count(proc: subprocess.Popen[bytes], port: int, out: pathlib.Path,
           requests: int) -> dict[str, float]:
    """Instructions per request of each kind, from the server ``proc`` dumping into ``out``."""
    deadline = time.monotonic() + 300  # imports under callgrind take a minute or more
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("the server did not start under callgrind") from None
            time.sleep(1)
    base = time.time_ns() % 10**12  # unique per run: a miss is a spec no process has seen
    for kind in KINDS:  # warm every path (first-call caches, the Redis pool)
        _send(conn, kind, 20, base)
    base += 10**6
    per_request: dict[str, float] = {}
    for kind in KINDS:
        time.sleep(1.5)  # let the cache's write-behind flush land before zeroing
        _control(proc.pid, "--zero")
        _send(conn, kind, requests, base)
        base += 10**6
        before = set(out.iterdir())
        _control(proc.pid, "--dump")
        dumped = sorted(set(out.iterdir()) - before)
        per_request[kind] = _total(dumped[-1]) / requests
    conn.close()
    return per_request


def measure(requests: int, redis: str) -> dict[str, Any]:
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("needs valgrind (apt-get install valgrind)")
    port = free_port()
    # Under callgrind the server runs ~50× slower. The cache's 20 ms write window would send
    # every miss's SET as a pipeline of its own, where under wrk ~50 share one, and its 0.2 s /
    # 2 s timeouts would open its circuit (then misses skip Redis for 5 s and count fewer
    # instructions): all are stretched, so that the writes are batched as at full speed.
    env = {**os.environ, "BENCH_REDIS": redis, "PYTHONHASHSEED": "0",
           "OPTIM_ADVICE_CACHE_WRITE_WINDOW_S": "1.0", "OPTIM_ADVICE_CACHE_TIMEOUT_S": "10",
           "OPTIM_ADVICE_CACHE_BACKGROUND_TIMEOUT_S": "60",
           "PYTHONPATH": f"{ROOT}:{ROOT / 'bench'}"}
    # the server's log is read for cache trips, as advice_bench.py does
    with tempfile.TemporaryDirectory(prefix="advice_ir_") as tmp, \
            tempfile.TemporaryFile("w+") as log, scratch(redis):
        out = pathlib.Path(tmp)
        proc = subprocess.Popen(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/cg.%p",
             sys.executable, "-m", "uvicorn", "bench_app:app", "--host", "127.0.0.1",
             "--port", str(port), "--log-level", "warning", "--no-access-log"],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            per_request = _count(proc, port, out, requests)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
        if trips := cache_trips(log):
            raise SystemExit(f"the advice cache's circuit opened {len(trips)} times, so misses "
                             "skipped their Redis writes and the counts are not a miss's; the "
                             "server's log: " + " | ".join(trips[:3]))
    return {
        "command": "bench/advice_ir.py " + " ".join(sys.argv[1:]),
        "requests": requests,
        "ir_per_request": {k: round(v) for k, v in per_request.items()},
        "of_healthz": {k: round(per_request["healthz"] / per_request[k], 3)
                       for k in KINDS[1:]},
        "targets": {"advice_hit": 0.6, "advice_miss": 0.4},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--redis", default=os.environ.get("BENCH_REDIS", DEFAULT_REDIS))
    args = ap.parse_args()
    result = measure(args.requests, args.redis)
    print(json.dumps(result, indent=2))
    path = ROOT / "bench" / "results" / f"advice_ir_{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
