"""Throughput of one worker by torch threads per pool child: torch's default (one per core) against
``cores // concurrency`` (what workers.lifecycle now sets).

Against real Redis (DB 12, a fresh key prefix): for each thread count, one Celery worker
subprocess with ``--concurrency`` pool children, then ``--jobs`` range tests submitted at once
through the API (in process) and the wall time until all succeeded.

    .venv/bin/python bench/threads_bench.py [--jobs 20] [--concurrency 2]

Prints a table and writes bench/results/threads_cpu.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fastapi.testclient import TestClient  # noqa: E402

from app.core.config import Settings  # noqa: E402
from app.main import create_app  # noqa: E402
from tests.jobs_support import WorkerProcess, new_namespace, wait_until  # noqa: E402


def job(seed: int) -> dict[str, Any]:
    """A range test whose matmuls are big enough for intra-op threads to matter."""
    return {"experiment": {"data": {"kind": "classification", "n_samples": 4096,
                                    "n_features": 64, "n_classes": 4, "seed": 0},
                           "model": {"kind": "mlp", "hidden": [256, 256]},
                           "batch_size": 256, "seed": seed},
            "config": {"num_steps": 300, "start_lr": 1e-6, "end_lr": 1e-3,
                       "stop_on_divergence": False, "val_every": 1000},
            "device": "cpu", "force": True}


def run(threads: int, jobs: int, concurrency: int, seed0: int) -> float:
    ns = new_namespace()
    worker = WorkerProcess(ns, concurrency=concurrency, name=f"threads{threads}",
                           env={"OPTIM_WORKER_TORCH_THREADS": str(threads)})
    try:
        worker.wait_ready(timeout=180)
        with TestClient(create_app(Settings(**ns.settings_kwargs()))) as client:
            t0 = time.perf_counter()
            ids = [client.post("/v1/jobs/lr-range-test", json=job(seed0 + i)).json()["id"]
                   for i in range(jobs)]

            def all_done() -> bool:
                states = [client.get(f"/v1/jobs/{j}").json()["status"] for j in ids]
                if "failed" in states:
                    raise AssertionError(f"a job failed: {worker.tail()}")
                return all(s == "succeeded" for s in states)

            wait_until(all_done, 1800, 0.5, "all jobs")
            return time.perf_counter() - t0
    finally:
        worker.stop()
        ns.cleanup()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=20)
    ap.add_argument("--concurrency", type=int, default=2)
    args = ap.parse_args()
    cores = len(os.sched_getaffinity(0))
    rows = []
    for label, threads in (("torch default (one per core)", cores),
                           ("cores // concurrency", max(1, cores // args.concurrency))):
        seconds = run(threads, args.jobs, args.concurrency, seed0=1000 * threads)
        rows.append({"setting": label, "threads_per_child": threads, "seconds": round(seconds, 2),
                     "jobs_per_s": round(args.jobs / seconds, 3)})
        print(f"{label:32s} threads={threads:2d}  {seconds:7.1f} s  "
              f"{args.jobs / seconds:.2f} jobs/s", flush=True)
    out = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "host": platform.node(),
           "cores": cores, "concurrency": args.concurrency, "jobs": args.jobs, "rows": rows,
           "speedup": round(rows[0]["seconds"] / rows[1]["seconds"], 2),
           "command": "python bench/threads_bench.py " + " ".join(sys.argv[1:])}
    path = ROOT / "bench" / "results" / "threads_cpu.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"speedup {out['speedup']}×; wrote {path.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
