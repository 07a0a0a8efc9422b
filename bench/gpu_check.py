"""The GPU checks of issue 11, as one prepared script (not run yet: no GPU was lent to the session
that wrote it).

    python -m bench.gpu_check [--out DIR]      # on a machine with CUDA; ~5 minutes on one GPU

1. The range test against a bare loop of the same steps and against torch-lr-finder, on a model
   that keeps the GPU busy (MLP 128-4096-4096-10, batch 128, AdamW, 100 steps, median of 7):
   ``bench.range_test_bench --device cuda --width 4096``. Targets: ours <= 1.05x the bare loop,
   faster than torch-lr-finder (which reads the loss on the host every step).
2. K = 8 batched trials (one vmapped AdamW group) against one trial of the same steps, on the same
   busy MLP (width 1024) and on the small transformer LM. Target: K = 8 within 2x of K = 1.
3. The ``gpu``-marked tests (``pytest -m gpu``).

Writes ``gpu_check.json`` (and the two benches' own JSON) into ``--out`` (default
``bench/results``) and prints a markdown table for README's benchmark table, naming the device.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import subprocess
import sys
import time
from typing import Any

import torch

from optim_core.specs.experiment import ExperimentSpec
from optim_core.specs.jobs import TrialsConfig
from optim_core.training.registry import build_data, build_model
from optim_core.training.trials import run_trials_on

RESULTS = pathlib.Path(__file__).resolve().parent / "results"


def _trials_seconds(spec: ExperimentSpec, k: int, steps: int, repeats: int) -> float:
    bundle = build_data(spec.data, batch_size=spec.batch_size, seed=spec.seed,
                        val_fraction=spec.val_fraction)

    def factory() -> torch.nn.Module:
        torch.manual_seed(spec.seed)
        return build_model(spec.model, bundle.info)

    cands = [{"optimizer": {"name": "adamw", "lr": 3e-4 * 2**i}} for i in range(k)]
    config = TrialsConfig(candidates=cands, steps=steps, eval_every=steps, val_batches=2,
                          batched=k > 1)
    times = []
    for rep in range(repeats + 1):  # the first is a warm-up (allocator, kernels, vmap trace)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        result = run_trials_on(factory, bundle, config, device="cuda")
        torch.cuda.synchronize()
        if rep:
            times.append(time.perf_counter() - t0)
    if k > 1 and not result.batched:
        raise SystemExit(f"K={k} did not batch: {result.batched_reason}")
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=pathlib.Path, default=RESULTS)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing to check", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.cuda.get_device_name(0)
    report: dict[str, Any] = {"device": device, "torch": torch.__version__}

    rt = subprocess.run([sys.executable, "-m", "bench.range_test_bench", "--device", "cuda",
                         "--width", "4096", "--repeats", "7",
                         "--out", str(args.out / "range_test_cuda.json")],
                        capture_output=True, text=True, check=False)
    report["range_test_bench"] = {"rc": rt.returncode, "stdout": rt.stdout[-4000:],
                                  "stderr": rt.stderr[-2000:]}

    mlp = ExperimentSpec(model={"kind": "mlp", "hidden": [1024, 1024]},
                         data={"kind": "classification", "n_samples": 65536, "n_features": 256,
                               "n_classes": 10}, batch_size=1024)
    lm = ExperimentSpec(model={"kind": "transformer", "d_model": 128, "n_layers": 2,
                               "n_heads": 4, "seq_len": 64, "vocab_size": 64},
                        data={"kind": "sequences", "n_sequences": 4096, "seq_len": 64,
                              "vocab_size": 64}, batch_size=64)
    rows = []
    for name, spec in {"mlp 1024x2, batch 1024": mlp, "transformer LM d=128": lm}.items():
        one = _trials_seconds(spec, 1, args.steps, args.repeats)
        eight = _trials_seconds(spec, 8, args.steps, args.repeats)
        rows.append({"case": name, "k1_s": one, "k8_s": eight, "ratio": eight / one,
                     "meets_2x": eight <= 2 * one})
    report["batched_trials"] = rows

    gpu_tests = subprocess.run([sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p",
                                "no:cacheprovider", "tests"], capture_output=True, text=True,
                               check=False)
    report["gpu_tests"] = {"rc": gpu_tests.returncode, "tail": gpu_tests.stdout[-3000:]}
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=1) + "\n")

    print(f"device: {device}\n")
    print(rt.stdout[-2000:])
    print("| trials, K=8 batched vs K=1 | K=1 (s) | K=8 (s) | ratio | <= 2x |")
    print("|---|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['case']} | {r['k1_s']:.2f} | {r['k8_s']:.2f} | {r['ratio']:.2f} | "
              f"{'yes' if r['meets_2x'] else 'no'} |")
    print(f"\ngpu tests: rc={gpu_tests.returncode}\n{gpu_tests.stdout[-600:]}")
    return 0 if rt.returncode == 0 and gpu_tests.returncode == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
