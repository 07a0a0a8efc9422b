"""The GPU checks of issue 11, as one prepared script (not run on a GPU yet: no device was lent to
the sessions that wrote it).

    python -m bench.gpu_check [--out DIR]      # on a machine with CUDA; ~5 minutes on one GPU
    python -m bench.gpu_check --device cpu --quick --out /tmp/g   # the dry run the suite does

1. The range test against a bare loop of the same steps and against torch-lr-finder, on a model
   that keeps the GPU busy (MLP 128-4096-4096-10, batch 128, AdamW, 100 steps, median of 7):
   ``bench.range_test_bench --device cuda --width 4096``. Targets: ours <= 1.05x the bare loop,
   faster than torch-lr-finder (which reads the loss on the host every step).
2. K = 8 batched trials (one vmapped AdamW group) against one trial of the same steps, on a busy
   MLP (width 1024) and on the small transformer LM. Target: K = 8 within 2x of K = 1.
3. The ``gpu``-marked tests (``pytest -m gpu``).

Writes ``gpu_check.json`` (and the range test bench's own JSON) into ``--out`` (default
``bench/results``), judges each target, and prints the rows for README's benchmark table, naming
the device. Device time is scarce, so ``--device cpu --quick`` runs every step of the script at toy
sizes (``tests/core/test_gpu_check.py``): the first run on a lent GPU should not be its debugging.
Its timings say nothing about a GPU, and the ``gpu`` tests skip there.

On a GPU machine with a CUDA PyTorch but not this project's other packages, and no registry (a
lent device machine, say), ``bench/gpu_requirements.txt`` lists what is missing. Where there is a
registry, fetch the wheels for that machine's Python (3.12 here)::

    pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -r bench/gpu_requirements.txt -d .whl          # 3.3 MB

and there, in the checkout (the tree is all it needs: no venv, no Redis)::

    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
    PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 python3 -m bench.gpu_check --out "$OUT"

That path was rehearsed on the CPU in a virtual environment holding only torch and those stock
packages, with ``--device cpu --quick``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from bench.timing import sync
from optim_core.specs.experiment import ExperimentSpec
from optim_core.specs.jobs import TrialsConfig
from optim_core.training.registry import build_data, build_model
from optim_core.training.trials import run_trials_on

RESULTS = pathlib.Path(__file__).resolve().parent / "results"
ROOT = pathlib.Path(__file__).resolve().parent.parent

# The targets, one home each.
RANGE_TEST_MAX_RATIO = 1.05  # ours / bare loop
BATCHED_MAX_RATIO = 2.0  # K = 8 / K = 1
K = 8


@dataclass(frozen=True)
class Sizes:
    """How big each check runs: the GPU's real sizes, or the dry run's toy ones."""

    range_width: int
    range_steps: int
    range_repeats: int
    trial_steps: int
    trial_repeats: int
    trials: dict[str, ExperimentSpec]  # what each batched-trials row runs, by its name


def _mlp(features: int, hidden: list[int], classes: int, samples: int,
         batch: int) -> tuple[str, ExperimentSpec]:
    name = f"MLP {'-'.join(map(str, [features, *hidden, classes]))}, batch {batch}"
    return name, ExperimentSpec(model={"kind": "mlp", "hidden": hidden},
                                data={"kind": "classification", "n_samples": samples,
                                      "n_features": features, "n_classes": classes},
                                batch_size=batch)


def _lm(d_model: int, layers: int, heads: int, seq_len: int, vocab: int, sequences: int,
        batch: int) -> tuple[str, ExperimentSpec]:
    name = f"transformer LM d={d_model}, {layers} layer(s), batch {batch}"
    return name, ExperimentSpec(model={"kind": "transformer", "d_model": d_model,
                                       "n_layers": layers, "n_heads": heads, "seq_len": seq_len,
                                       "vocab_size": vocab},
                                data={"kind": "sequences", "n_sequences": sequences,
                                      "seq_len": seq_len, "vocab_size": vocab},
                                batch_size=batch)


def _sizes(quick: bool) -> Sizes:
    if quick:
        return Sizes(range_width=32, range_steps=20, range_repeats=1, trial_steps=5,
                     trial_repeats=1, trials=dict([_mlp(8, [16], 3, 256, 32),
                                                   _lm(16, 1, 2, 8, 16, 64, 8)]))
    return Sizes(range_width=4096, range_steps=100, range_repeats=7, trial_steps=100,
                 trial_repeats=3, trials=dict([_mlp(256, [1024, 1024], 10, 65536, 1024),
                                               _lm(128, 2, 4, 64, 64, 4096, 64)]))


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def _trials_seconds(spec: ExperimentSpec, k: int, steps: int, repeats: int,
                    device: torch.device) -> float:
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
        sync(device)
        t0 = time.perf_counter()
        result = run_trials_on(factory, bundle, config, device=str(device))
        sync(device)
        if rep:
            times.append(time.perf_counter() - t0)
    if k > 1 and not result.batched:
        raise SystemExit(f"K={k} did not batch: {result.batched_reason}")
    return statistics.median(times)


def _range_test(device: torch.device, sizes: Sizes, out: pathlib.Path) -> dict[str, Any]:
    path = out / f"range_test_{device.type}_check.json"
    proc = subprocess.run([sys.executable, "-m", "bench.range_test_bench",
                           "--device", str(device), "--width", str(sizes.range_width),
                           "--steps", str(sizes.range_steps),
                           "--repeats", str(sizes.range_repeats), "--out", str(path)],
                          capture_output=True, text=True, check=False, cwd=ROOT)
    report: dict[str, Any] = {"rc": proc.returncode, "stdout": proc.stdout[-4000:],
                              "stderr": proc.stderr[-2000:]}
    if proc.returncode == 0:
        doc = json.loads(path.read_text(encoding="utf-8"))
        report |= {"median_seconds": doc["median_seconds"],
                   "ratio_ours_to_bare": doc["ratio_ours_to_bare"],
                   "ratio_ours_to_tlf": doc["ratio_ours_to_tlf"],
                   "meets_bare": doc["ratio_ours_to_bare"] <= RANGE_TEST_MAX_RATIO,
                   "beats_tlf": doc["ratio_ours_to_tlf"] < 1.0}
    return report


def _gpu_tests() -> dict[str, Any]:
    # tests/core, not tests: the gpu tests are the torch library's, and the service's test modules
    # import FastAPI, Celery and the browser driver, which a bare CUDA machine lacks.
    proc = subprocess.run([sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p",
                           "no:cacheprovider", "tests/core"], capture_output=True, text=True,
                          check=False, cwd=ROOT)
    return {"rc": proc.returncode, "tail": proc.stdout[-3000:]}


def _table(report: dict[str, Any]) -> str:
    rt = report["range_test"]
    lines = [f"device: {report['device_name']} ({report['device']})", ""]
    if rt["rc"] == 0:
        med = rt["median_seconds"]
        lines += [f"range test: bare loop {med['bare_loop']:.3f} s; ours {med['ours']:.3f} s "
                  f"({rt['ratio_ours_to_bare']:.2f}x, target <= {RANGE_TEST_MAX_RATIO}: "
                  f"{'met' if rt['meets_bare'] else 'missed'}); torch-lr-finder "
                  f"{med['torch_lr_finder']:.3f} s (ours / it {rt['ratio_ours_to_tlf']:.2f}: "
                  f"{'faster' if rt['beats_tlf'] else 'not faster'})", ""]
    else:
        lines += [f"range test bench failed (rc {rt['rc']}):", rt["stderr"][-1000:], ""]
    lines += [f"| trials, K={K} batched vs K=1 | K=1 (s) | K={K} (s) | ratio | <= {BATCHED_MAX_RATIO:g}x |",
              "|---|---:|---:|---:|---|"]
    lines += [f"| {r['case']} | {r['k1_s']:.3f} | {r['k8_s']:.3f} | {r['ratio']:.2f} | "
              f"{'yes' if r['meets_target'] else 'no'} |" for r in report["batched_trials"]]
    tests = report["gpu_tests"]
    last = tests["tail"].strip().splitlines()[-1:] or ["(no output)"]
    lines += ["", f"gpu tests: rc={tests['rc']}: {last[0]}"]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=pathlib.Path, default=RESULTS)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--quick", action="store_true", help="toy sizes: the dry run of every step")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("no CUDA device: nothing to check (--device cpu --quick dry-runs the script)",
              file=sys.stderr)
        return 2
    sizes = _sizes(args.quick)
    args.out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"device": str(device), "device_name": _device_name(device),
                              "quick": args.quick, "torch": torch.__version__}
    report["range_test"] = _range_test(device, sizes, args.out)
    rows = []
    for name, spec in sizes.trials.items():
        one = _trials_seconds(spec, 1, sizes.trial_steps, sizes.trial_repeats, device)
        many = _trials_seconds(spec, K, sizes.trial_steps, sizes.trial_repeats, device)
        rows.append({"case": name, "k1_s": one, "k8_s": many, "ratio": many / one,
                     "meets_target": many <= BATCHED_MAX_RATIO * one})
    report["batched_trials"] = rows
    report["gpu_tests"] = _gpu_tests()
    (args.out / "gpu_check.json").write_text(json.dumps(report, indent=1) + "\n",
                                             encoding="utf-8")
    print(_table(report))
    return 0 if report["range_test"]["rc"] == 0 and report["gpu_tests"]["rc"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
