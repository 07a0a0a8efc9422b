"""Service entry points: a request dict in, a plain JSON-able dict out. [torch]

Workers call `run_range_test` and `run_trials` with ``request = RangeTestJobSpec.model_dump(
mode="json")`` / ``TrialsJobSpec.model_dump(mode="json")``. The request is data only: the model
and data are built through `optim_core.training.registry` (built-ins or installed entry-point plug-ins),
never from code or pickles sent over the wire.

Both entry points validate the request (an invalid one raises `SpecError` naming the field), seed
python, numpy and torch with ``experiment.seed``, build the data and then the model, run, and
return::

    {
      "kind": "range_test" | "trials",
      "result": RangeTestResult.to_dict() | TrialsResult.to_dict(),
      "param_count": int,                  # counted on the built model
      "param_count_analytic": int | None,  # ExperimentSpec.param_count() (None: registered)
      "param_groups": {...},               # ParamGroupReport.to_dict() of the groups the range
                                           # test built (RangeTestResult.param_groups; range test only)
      "optimizer": {...},                  # OptimizerSpec used (range test only)
      "data": {"info": {...}, "n_train": int, "n_val": int, "train_batches_per_epoch": int},
      "request": {...},                    # the validated request, defaults filled in
      "device": "cpu" | "cuda" | "cuda:1" | ...,
      "seed": int,
      "seconds": float,                    # wall time of the whole job
      "versions": {"optim_core": str, "torch": str, "python": str, "numpy": str},
    }

Non-finite numbers are None, so ``json.dumps(..., allow_nan=False)`` works. ``max_params``
(optional) is the deployment's parameter limit: checked on the analytic count before anything is
built, and on the built model (the only place a registered model's size is known) —
`ResourceLimitError` either way.
"""

from __future__ import annotations

import platform
import random
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError
from torch import nn

import optim_core
from optim_core.errors import ResourceLimitError, SpecError
from optim_core.specs.experiment import ExperimentSpec
from optim_core.specs.jobs import RangeTestJobSpec, TrialsJobSpec
from optim_core.specs.optimizer import OptimizerSpec
from optim_core.specs.range_test import ProgressEvent
from optim_core.training.registry import build_data, build_model, count_params

__all__ = ["resolve_device", "run_range_test", "run_trials", "seed_everything", "versions",
           "warm_up"]

ProgressFn = Callable[[ProgressEvent], None]
StopFn = Callable[[], bool]


def resolve_device(name: str = "auto") -> str:
    """``"auto"`` → ``"cuda"`` when CUDA is available, else ``"cpu"``; ``"cpu"``, ``"cuda"``,
    ``"cuda:N"`` and ``"mps"`` are checked against what this process can use (`SpecError`)."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise SpecError(f"unknown device {name!r}", field="device", value=name,
                        allowed="auto, cpu, cuda, cuda:N, mps") from exc
    if dev.type == "cpu":
        return "cpu"
    if dev.type == "cuda":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if n == 0 or (dev.index is not None and dev.index >= n):
            raise SpecError(f"device {name!r} is not available here ({n} CUDA devices)",
                            field="device", value=name)
        return str(dev)
    if dev.type == "mps" and torch.backends.mps.is_available():
        return "mps"
    raise SpecError(f"device {name!r} is not available here", field="device", value=name,
                    allowed="auto, cpu, cuda, cuda:N, mps")


def seed_everything(seed: int) -> None:
    """Seed python, numpy and torch (every CUDA device too, lazily)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def versions() -> dict[str, str]:
    """The versions that change a job's numbers (part of cache keys and results)."""
    return {"optim_core": optim_core.__version__, "torch": torch.__version__,
            "python": platform.python_version(), "numpy": np.__version__}


def _validate(model_cls: type[RangeTestJobSpec] | type[TrialsJobSpec], request: dict[str, Any]
              ) -> Any:
    try:
        return model_cls.model_validate(request)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise SpecError(f"invalid {model_cls.__name__}: {where}: {first['msg']}", field=where,
                        value=first.get("input")) from exc


def _check_analytic(spec: ExperimentSpec, max_params: int | None) -> None:
    n = spec.param_count()
    if max_params is not None and n is not None and n > max_params:
        raise ResourceLimitError(f"the model has {n:,} parameters; the limit is {max_params:,}",
                                 field="experiment.model", value=n, allowed=f"≤ {max_params}")


def _prepare(spec: ExperimentSpec, max_params: int | None):  # type: ignore[no-untyped-def]
    """Seed, build the data, and return (bundle, factory of identically initialised models)."""
    _check_analytic(spec, max_params)
    seed_everything(spec.seed)
    bundle = build_data(spec.data, batch_size=spec.batch_size, seed=spec.seed,
                        val_fraction=spec.val_fraction)

    def factory(seed_offset: int = 0) -> nn.Module:
        # Every model built here starts from the same weights; TrialsConfig.seeds asks for
        # others with seed_offset k (experiment seed + k).
        torch.manual_seed(spec.seed + seed_offset)
        return build_model(spec.model, bundle.info, max_params=max_params)

    return bundle, factory


def _envelope(kind: str, spec: ExperimentSpec, request: Any, model: nn.Module, bundle: Any,
              device: str, t0: float) -> dict[str, Any]:
    return {
        "kind": kind,
        "param_count": count_params(model),
        "param_count_analytic": spec.param_count(),
        "data": bundle.describe(),
        "request": request.model_dump(mode="json"),
        "device": device,
        "seed": spec.seed,
        "seconds": time.perf_counter() - t0,
        "versions": versions(),
    }


def run_range_test(request: dict[str, Any], *, device: str = "cpu",
                   progress: ProgressFn | None = None, should_stop: StopFn | None = None,
                   max_params: int | None = None) -> dict[str, Any]:
    """Validate a `RangeTestJobSpec` dict, build, run `lr_range_test`, return plain data."""
    from optim_core.training.range_test import lr_range_test

    t0 = time.perf_counter()
    job: RangeTestJobSpec = _validate(RangeTestJobSpec, request)
    dev = resolve_device(device)
    bundle, factory = _prepare(job.experiment, max_params)
    model = factory()
    optimizer = job.optimizer or OptimizerSpec(name="adamw")
    result = lr_range_test(model, bundle.train, bundle.loss_fn, optimizer=optimizer,
                           config=job.config, val_data=bundle.val, device=dev,
                           progress=progress, should_stop=should_stop)
    out = _envelope("range_test", job.experiment, job, model, bundle, dev, t0)
    # The report of the groups the test actually built (not a second split that could differ).
    out.update(result=result.to_dict(), param_groups=result.param_groups,
               optimizer=optimizer.model_dump(mode="json"))
    return out


def run_trials(request: dict[str, Any], *, device: str = "cpu",
               progress: ProgressFn | None = None, should_stop: StopFn | None = None,
               max_params: int | None = None) -> dict[str, Any]:
    """Validate a `TrialsJobSpec` dict, build, run the short trials, return plain data."""
    from optim_core.training.trials import run_trials_on

    t0 = time.perf_counter()
    job: TrialsJobSpec = _validate(TrialsJobSpec, request)
    dev = resolve_device(device)
    bundle, factory = _prepare(job.experiment, max_params)
    model = factory()  # built once up front: limits and the count fail fast, before any trial
    result = run_trials_on(factory, bundle, job.config, device=dev, progress=progress,
                           should_stop=should_stop)
    out = _envelope("trials", job.experiment, job, model, bundle, dev, t0)
    out["result"] = result.to_dict()
    return out


# A tiny job on the CPU: an MLP on a few synthetic samples, ten steps of each entry point.
_WARM_UP_EXPERIMENT: dict[str, Any] = {
    "data": {"kind": "classification", "n_samples": 64, "n_features": 4, "n_classes": 2,
             "seed": 0},
    "model": {"kind": "mlp", "hidden": [4]},
    "batch_size": 16, "seed": 0,
}


def warm_up() -> None:
    """Run a tiny range test and trial on the CPU so that torch's lazy imports (``torch._dynamo``
    on the first optimizer, autograd and data paths) happen now rather than inside a job.

    Why: a worker's soft time limit is an exception raised asynchronously into the job. If it
    lands inside a module's first import, that module stays half-initialised in ``sys.modules``
    and every later job in the process fails on it. Workers call this once per pool child,
    before the child takes a job (never in the parent: no CUDA is touched here either).
    """
    run_range_test({"experiment": _WARM_UP_EXPERIMENT, "config": {"num_steps": 10}})
    run_trials({"experiment": _WARM_UP_EXPERIMENT,
                "config": {"steps": 10, "eval_every": 5, "center_lr": 0.01,
                           "default_optimizers": ["adamw", "sgd"], "lr_factors": [1.0]}})
