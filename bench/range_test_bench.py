"""Range-test overhead: ours vs a bare training loop of the same steps, vs torch-lr-finder 0.2.2.

    python -m bench.range_test_bench [--device cpu|cuda] [--steps 100] [--repeats 5]

All three run the same model (an MLP, seeded), the same ``DataLoader`` (shuffled, seeded), the same
AdamW and the same number of steps on an exponential sweep ``start_lr → end_lr``:

* **bare loop**: set LR, zero_grad, forward, loss, backward, step — nothing else (no ``.item()``);
* **ours**: ``lr_range_test`` with the divergence stop off (so every run does ``steps`` steps),
  including the host-memory snapshot and the exact restore of model, optimizer and RNG;
* **torch-lr-finder**: ``LRFinder.range_test(..., diverge_th=huge)`` then ``reset()`` (its
  restore), ``memory_cache=True``.

Each timing is the median over ``--repeats`` runs after one untimed warm-up; on CUDA the clock stops
after ``torch.cuda.synchronize()``. Suggested LRs come from a separate default run of each tool
(divergence stop on): ours = ``suggestions.recommended`` (and its steepest, for comparison);
torch-lr-finder's = its ``plot(suggest_lr=True)`` rule (steepest ``np.gradient`` of its smoothed
losses, skipping 10 first and 5 last points) computed on its history without plotting.

Writes ``bench/results/range_test_<device>.json`` and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import nn

from bench.timing import sync
from optim_core.numerics.suggest import steepest
from optim_core.specs.range_test import RangeTestConfig
from optim_core.training.range_test import lr_range_test

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def make_problem(width: int, n: int = 4096, dim: int = 128, classes: int = 10,
                 batch_size: int = 128, seed: int = 0
                 ) -> tuple[Callable[[], nn.Module], Callable[[], torch.utils.data.DataLoader]]:
    """A seeded MLP factory and a seeded, shuffled DataLoader factory (teacher labels)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g)
    y = (torch.tanh(x @ torch.randn(dim, 32, generator=g)) @ torch.randn(32, classes, generator=g)
         ).argmax(1)
    ds = torch.utils.data.TensorDataset(x, y)

    def model() -> nn.Module:
        torch.manual_seed(seed + 1)
        return nn.Sequential(nn.Linear(dim, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                             nn.Linear(width, classes))

    def loader() -> torch.utils.data.DataLoader:
        return torch.utils.data.DataLoader(ds, batch_size=batch_size, shuffle=True,
                                           generator=torch.Generator().manual_seed(seed))

    return model, loader


def bare_loop(model: nn.Module, loader: torch.utils.data.DataLoader, cfg: RangeTestConfig,
              device: torch.device) -> float:
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.start_lr)
    loss_fn = nn.CrossEntropyLoss()
    sync(device)
    t0 = time.perf_counter()
    it = iter(loader)
    for step in range(cfg.num_steps):
        try:
            x, y = next(it)
        except StopIteration:
            it = iter(loader)
            x, y = next(it)
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        for g in opt.param_groups:
            g["lr"] = cfg.lr_at(step)
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()
    sync(device)
    return time.perf_counter() - t0


def ours(model: nn.Module, loader: torch.utils.data.DataLoader, cfg: RangeTestConfig,
         device: torch.device) -> tuple[float, Any]:
    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.start_lr)
    sync(device)
    t0 = time.perf_counter()
    res = lr_range_test(model, loader, nn.CrossEntropyLoss(), optimizer=opt, config=cfg,
                        device=device)
    sync(device)
    return time.perf_counter() - t0, res


def torch_lr_finder(model: nn.Module, loader: torch.utils.data.DataLoader, cfg: RangeTestConfig,
                    device: torch.device, diverge_th: float) -> tuple[float, dict[str, list]]:
    from torch_lr_finder import LRFinder

    model.to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.start_lr)
    sync(device)
    t0 = time.perf_counter()
    finder = LRFinder(model, opt, nn.CrossEntropyLoss(), device=device)
    finder.range_test(loader, start_lr=cfg.start_lr, end_lr=cfg.end_lr, num_iter=cfg.num_steps,
                      step_mode="exp", diverge_th=diverge_th)
    finder.reset()
    sync(device)
    return time.perf_counter() - t0, finder.history


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (CPU runs)")
    ap.add_argument("--start-lr", type=float, default=1e-7)
    ap.add_argument("--end-lr", type=float, default=10.0)
    ap.add_argument("--out", type=pathlib.Path, default=None)
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    make_model, make_loader = make_problem(args.width)
    timed = RangeTestConfig(start_lr=args.start_lr, end_lr=args.end_lr, num_steps=args.steps,
                            stop_on_divergence=False)
    huge = 1e30  # torch-lr-finder's divergence threshold, effectively off for timing

    times: dict[str, list[float]] = {"bare_loop": [], "ours": [], "torch_lr_finder": []}
    for rep in range(args.repeats + 1):  # repeat 0 is the warm-up
        t_bare = bare_loop(make_model(), make_loader(), timed, device)
        t_ours, _ = ours(make_model(), make_loader(), timed, device)
        t_tlf, _ = torch_lr_finder(make_model(), make_loader(), timed, device, huge)
        if rep:
            times["bare_loop"].append(t_bare)
            times["ours"].append(t_ours)
            times["torch_lr_finder"].append(t_tlf)
    med = {k: statistics.median(v) for k, v in times.items()}

    # Suggestions: one default run of each (divergence stop on, as users run them).
    default = timed.model_copy(update={"stop_on_divergence": True})
    _, res = ours(make_model(), make_loader(), default, device)
    _, hist = torch_lr_finder(make_model(), make_loader(), default, device, diverge_th=5)
    tlf_pick = steepest(hist["lr"], hist["loss"])  # torch-lr-finder's own rule and skips
    sugg = res.suggestions

    doc = {
        "device": str(device),
        "device_name": (torch.cuda.get_device_name(device) if device.type == "cuda"
                        else platform.processor() or platform.machine()),
        "threads": torch.get_num_threads(), "steps": args.steps, "repeats": args.repeats,
        "model": f"MLP 128-{args.width}-{args.width}-10, batch 128, AdamW",
        "sweep": {"start_lr": args.start_lr, "end_lr": args.end_lr, "mode": "exp"},
        "seconds": times, "median_seconds": med,
        "ratio_ours_to_bare": med["ours"] / med["bare_loop"],
        "ratio_tlf_to_bare": med["torch_lr_finder"] / med["bare_loop"],
        "ratio_ours_to_tlf": med["ours"] / med["torch_lr_finder"],
        "suggested_lr": {
            "ours_recommended": sugg.recommended, "ours_confidence": sugg.confidence,
            "ours_steepest": sugg.steepest, "ours_stop_reason": res.stop_reason,
            "ours_steps": len(res.lrs), "torch_lr_finder_steepest": tlf_pick,
            "torch_lr_finder_steps": len(hist["lr"]),
        },
        "torch": torch.__version__, "python": platform.python_version(),
        "numpy": np.__version__,
    }
    out = args.out or RESULTS / f"range_test_{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")

    print(f"{doc['model']}, {args.steps} steps, median of {args.repeats}, {doc['device_name']} "
          f"({doc['device']}, {doc['threads']} threads)\n")
    print("| run | median s | x bare loop | suggested LR |")
    print("|---|---|---|---|")
    print(f"| bare training loop | {med['bare_loop']:.3f} | 1.00 | - |")
    print(f"| optim_core lr_range_test | {med['ours']:.3f} | {doc['ratio_ours_to_bare']:.2f} | "
          f"{sugg.recommended:.3g} (recommended, confidence {sugg.confidence:.2f}); "
          f"steepest {sugg.steepest if sugg.steepest is None else format(sugg.steepest, '.3g')} |")
    print(f"| torch-lr-finder 0.2.2 | {med['torch_lr_finder']:.3f} | "
          f"{doc['ratio_tlf_to_bare']:.2f} | "
          f"{tlf_pick if tlf_pick is None else format(tlf_pick, '.3g')} (steepest) |")
    print(f"\nours / torch-lr-finder time: {doc['ratio_ours_to_tlf']:.2f}; wrote {out}")


if __name__ == "__main__":
    main()
