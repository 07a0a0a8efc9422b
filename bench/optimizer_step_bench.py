"""The optimizer step, fused vs torch's default path, as ``optim_core.training.optimizers`` builds it.

    .venv/bin/python -m bench.optimizer_step_bench [--device cpu] [--repeats 5]

For each optimizer with a fused kernel on the device: the time of ``opt.step()`` alone (500 steps)
and of 200 whole training steps (forward, backward, step) of an MLP 128-256-256-10 at batch 128,
with ``fused=True`` and with torch's default (the per-tensor loop on the CPU, foreach on CUDA).
Median of ``--repeats``. Writes ``bench/results/optimizer_step_<device>.json``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import statistics
import time

import torch
from torch import nn

from bench.timing import sync

OUT_DIR = pathlib.Path(__file__).resolve().parent / "results"
CLASSES = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD,
           "adagrad": torch.optim.Adagrad}


def _time(name: str, fused: bool, device: torch.device, repeats: int) -> dict[str, float]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(128, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(),
                          nn.Linear(256, 10)).to(device)
    extra = {"momentum": 0.9} if name == "sgd" else {}
    opt = CLASSES[name](model.parameters(), lr=1e-3, fused=fused, **extra)
    x = torch.randn(128, 128, device=device)
    y = torch.randint(0, 10, (128,), device=device)

    def train(steps: int) -> None:
        for _ in range(steps):
            opt.zero_grad(set_to_none=False)
            nn.functional.cross_entropy(model(x), y).backward()
            opt.step()

    train(20)  # warm-up: state allocated, kernels loaded
    step_s, train_s = [], []
    for _ in range(repeats):
        sync(device)
        t = time.perf_counter()
        for _ in range(500):
            opt.step()
        sync(device)
        step_s.append((time.perf_counter() - t) / 500)
        t = time.perf_counter()
        train(200)
        sync(device)
        train_s.append(time.perf_counter() - t)
    return {"step_us": statistics.median(step_s) * 1e6, "train_200_s": statistics.median(train_s)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    names = [n for n in CLASSES if not (n == "adagrad" and device.type != "cpu")]
    rows = {n: {mode: _time(n, mode == "fused", device, args.repeats)
                for mode in ("default", "fused")} for n in names}
    print(f"MLP 128-256-256-10, batch 128, {device}, {args.threads} thread(s), "
          f"median of {args.repeats}\n")
    print("| optimizer | step, default (µs) | step, fused (µs) | 200 train steps, default (s) "
          "| 200 train steps, fused (s) |")
    print("|---|---:|---:|---:|---:|")
    for n, r in rows.items():
        print(f"| {n} | {r['default']['step_us']:.0f} | {r['fused']['step_us']:.0f} | "
              f"{r['default']['train_200_s']:.3f} | {r['fused']['train_200_s']:.3f} |")
    OUT_DIR.mkdir(exist_ok=True)
    out = OUT_DIR / f"optimizer_step_{device.type}.json"
    out.write_text(json.dumps({"device": str(device), "threads": args.threads,
                               "torch": torch.__version__, "machine": platform.machine(),
                               "results": rows}, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
