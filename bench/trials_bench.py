"""Short trials, sequential vs batched (``TrialsConfig.batched``): wall time of the same trials.

    python -m bench.trials_bench [--device cpu|cuda] [--steps 200] [--repeats 3]

Each case runs 8 AdamW candidates (one optimizer class, so one vmapped group of 8) at LRs
``3e-4 · 2^k``, ``steps`` steps each with the default warmup + cosine and clipping τ = 1, through
`optim_core.training.trials.run_trials_on` — once with ``batched=False`` (one candidate after the other), once
with ``batched=True``. Cases: an MLP (two hidden layers of the given width) on the synthetic
classification task at widths 32, 128 and 512, and a small transformer LM on the Markov sequences.
Validation every 50 steps on 4 batches (part of both timings).

Each timing is the median of ``--repeats`` runs after one untimed warm-up (imports, allocator, the
vmap trace); on CUDA ``run_trials_on`` reads each loss on the host every step, so the clock sees
finished work. ``max_rel_diff`` is the largest relative difference between the two paths' train
losses (float rounding of the batched kernels; float32).

Writes ``bench/results/trials_<device>.json`` and prints a markdown table.
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

import torch

from optim_core.specs.experiment import ExperimentSpec
from optim_core.specs.jobs import TrialsConfig
from optim_core.training.registry import build_data, build_model
from optim_core.training.trials import TrialsResult, run_trials_on

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
N_CANDIDATES = 8


def cases() -> dict[str, ExperimentSpec]:
    data = {"kind": "classification", "n_samples": 2048, "n_features": 32, "n_classes": 10}
    out = {f"mlp w={w}": ExperimentSpec(model={"kind": "mlp", "hidden": [w, w]}, data=data,
                                        batch_size=64)
           for w in (32, 128, 512)}
    out["transformer LM d=32 L=2 T=32"] = ExperimentSpec(
        model={"kind": "transformer", "d_model": 32, "n_layers": 2, "n_heads": 2, "seq_len": 32,
               "vocab_size": 32},
        data={"kind": "sequences", "n_sequences": 512, "seq_len": 32, "vocab_size": 32},
        batch_size=16)
    return out


def _run(spec: ExperimentSpec, config: TrialsConfig, device: str) -> tuple[float, TrialsResult]:
    bundle = build_data(spec.data, batch_size=spec.batch_size, seed=spec.seed,
                        val_fraction=spec.val_fraction)

    def factory() -> torch.nn.Module:
        torch.manual_seed(spec.seed)
        return build_model(spec.model, bundle.info)

    tick = time.perf_counter()
    result = run_trials_on(factory, bundle, config, device=device)
    return time.perf_counter() - tick, result


def _median(fn: Callable[[], tuple[float, TrialsResult]], repeats: int,
            ) -> tuple[float, list[float], TrialsResult]:
    fn()  # warm-up
    runs = [fn() for _ in range(repeats)]
    times = [t for t, _ in runs]
    return statistics.median(times), times, runs[-1][1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()

    candidates = [{"optimizer": {"name": "adamw", "lr": 3e-4 * 2**k}}
                  for k in range(N_CANDIDATES)]
    rows: list[dict[str, Any]] = []
    for name, spec in cases().items():
        config = TrialsConfig(candidates=candidates, steps=args.steps, eval_every=50,
                              val_batches=4)
        seq_s, seq_all, seq = _median(lambda spec=spec, config=config: _run(spec, config,
                                                                            args.device),
                                      args.repeats)
        batched_config = config.model_copy(update={"batched": True})
        bat_s, bat_all, bat = _median(lambda spec=spec, c=batched_config: _run(spec, c,
                                                                               args.device),
                                      args.repeats)
        diff = max(abs(a - b) / max(abs(a), 1e-12)
                   for s, t in zip(seq.trials, bat.trials, strict=True)
                   for a, b in zip(s.train_losses, t.train_losses, strict=True))
        rows.append({"case": name, "candidates": N_CANDIDATES, "steps": args.steps,
                     "sequential_s": seq_s, "batched_s": bat_s, "speedup": seq_s / bat_s,
                     "sequential_runs_s": seq_all, "batched_runs_s": bat_all,
                     "batched": bat.batched, "batched_reason": bat.batched_reason,
                     "max_rel_diff": diff})
        print(f"{name}: sequential {seq_s:.2f} s, batched {bat_s:.2f} s", flush=True)

    print(f"\n{N_CANDIDATES} AdamW candidates × {args.steps} steps, device {args.device}, "
          f"median of {args.repeats}\n")
    print("| case | sequential (s) | batched (s) | speed-up | max rel. diff of losses |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['case']} | {r['sequential_s']:.2f} | {r['batched_s']:.2f} | "
              f"{r['speedup']:.2f}× | {r['max_rel_diff']:.1e} |")

    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"trials_{args.device}.json"
    out.write_text(json.dumps({
        "bench": "trials_bench", "device": args.device, "steps": args.steps,
        "repeats": args.repeats, "candidates": N_CANDIDATES, "torch": torch.__version__,
        "threads": torch.get_num_threads(), "python": platform.python_version(),
        "machine": platform.machine(), "rows": rows}, indent=2) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
