"""Model and data builders by name: the built-ins, plus a deployment's own through entry points.

A team runs the range test or trials on *its* model without ever sending code over the API: it
installs a package that declares entry points, and requests name them with
``{"kind": "registered", "name": "<entry point name>", "options": {...}}``.

Plug-in contract
----------------
Entry point groups (in the plug-in package's ``pyproject.toml``)::

    [project.entry-points."optim_core.models"]
    acme-resnet = "acme_models.optim:build_resnet"

    [project.entry-points."optim_core.datasets"]
    acme-logs = "acme_models.optim:build_logs"

A **model builder** is ``(options: dict, *, data: DataInfo) -> torch.nn.Module``. ``options`` are the
request's flat scalars (validate them yourself and raise ``ValueError`` naming the option);
``data`` gives the input/output shapes (`optim_core.specs.experiment.DataInfo`). The module must map a batch's
``inputs`` to what the data's ``loss_fn`` takes.

A **data builder** is ``(options: dict, *, batch_size: int, seed: int, val_fraction: float) ->
DataBundle`` (`optim_core.training.data.DataBundle`; ``DataBundle.from_tensors`` does the splitting and
batching). It must be deterministic for a given ``seed`` and must not download anything at job time.

Built-ins are registered the same way, under their spec ``kind`` (models ``mlp``, ``cnn``,
``transformer``; data ``classification``, ``regression``, ``images``, ``sequences``, ``digits``);
they win over an entry point of the same name, so a plug-in cannot silently replace them.
Entry points are looked up on every call (no cache), so a package installed while a worker runs is
seen by its next job. An unknown name raises `UnknownComponentError` listing the known names.

Limits: a registered model's size is unknown until built, so `build_model` takes ``max_params`` and
raises `ResourceLimitError` after building when the model is larger.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from torch import nn

from optim_core.errors import ResourceLimitError, SpecError, UnknownComponentError
from optim_core.specs.experiment import (
    DataInfo,
    DataSpec,
    ExperimentSpec,
    ModelSpec,
    RegisteredDataSpec,
    RegisteredModelSpec,
)
from optim_core.training import data as _data
from optim_core.training import models as _models
from optim_core.training.data import DataBundle

__all__ = [
    "DATASET_GROUP",
    "MODEL_GROUP",
    "DataBuilder",
    "ModelBuilder",
    "build_data",
    "build_experiment",
    "build_model",
    "count_params",
    "known_datasets",
    "known_models",
    "resolve_dataset",
    "resolve_model",
]

log = logging.getLogger(__name__)

MODEL_GROUP = "optim_core.models"
DATASET_GROUP = "optim_core.datasets"

ModelBuilder = Callable[..., nn.Module]
DataBuilder = Callable[..., DataBundle]

BUILTIN_MODELS: dict[str, ModelBuilder] = {
    "mlp": _models.build_mlp,
    "cnn": _models.build_cnn,
    "transformer": _models.build_transformer,
}
BUILTIN_DATASETS: dict[str, DataBuilder] = {
    "classification": _data.build_classification,
    "regression": _data.build_regression,
    "images": _data.build_images,
    "sequences": _data.build_sequences,
    "digits": _data.build_digits,
}


def _plugins(group: str) -> dict[str, EntryPoint]:
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=group):
        if ep.name in found:
            log.warning("entry point %r in group %s is declared twice; using %s", ep.name, group,
                        found[ep.name].value)
            continue
        found[ep.name] = ep
    return found


def known_models() -> list[str]:
    """Built-in and plugged-in model names, sorted."""
    return sorted(set(BUILTIN_MODELS) | set(_plugins(MODEL_GROUP)))


def known_datasets() -> list[str]:
    """Built-in and plugged-in data set names, sorted."""
    return sorted(set(BUILTIN_DATASETS) | set(_plugins(DATASET_GROUP)))


def _resolve(name: str, builtins: Mapping[str, Callable[..., Any]], group: str,
             what: str, field: str) -> Callable[..., Any]:
    if name in builtins:
        return builtins[name]
    plugins = _plugins(group)
    if name not in plugins:
        known = sorted(set(builtins) | set(plugins))
        raise UnknownComponentError(
            f"unknown {what} {name!r}; known: {', '.join(known)} (plug-ins register through the "
            f"entry point group {group!r})", field=field, value=name, allowed=", ".join(known))
    try:
        builder = plugins[name].load()
    except Exception as exc:  # a broken plug-in must not look like a bad request
        raise UnknownComponentError(f"{what} {name!r} is declared but cannot be loaded: {exc}",
                                    field=field, value=name) from exc
    if not callable(builder):
        raise UnknownComponentError(f"{what} {name!r} ({plugins[name].value}) is not callable",
                                    field=field, value=name)
    return builder


def resolve_model(name: str) -> ModelBuilder:
    """The model builder registered as ``name``; `UnknownComponentError` listing the known ones."""
    return _resolve(name, BUILTIN_MODELS, MODEL_GROUP, "model", "experiment.model.name")


def resolve_dataset(name: str) -> DataBuilder:
    """The data builder registered as ``name``; `UnknownComponentError` listing the known ones."""
    return _resolve(name, BUILTIN_DATASETS, DATASET_GROUP, "data set", "experiment.data.name")


def _name_and_options(spec: Any) -> tuple[str, dict[str, Any]]:
    if isinstance(spec, (RegisteredModelSpec, RegisteredDataSpec)):
        return spec.name, dict(spec.options)
    return spec.kind, spec.model_dump(exclude={"kind"})


def count_params(model: nn.Module) -> int:
    """Parameters of ``model``; a tensor shared between modules (tied embeddings) counts once."""
    return sum(p.numel() for p in model.parameters())


def build_model(spec: ModelSpec, data: DataInfo, *, max_params: int | None = None) -> nn.Module:
    """Build ``spec`` for ``data``. ``max_params`` is checked after building (the only place a
    registered model's size is known) and raises `ResourceLimitError`."""
    name, options = _name_and_options(spec)
    builder = resolve_model(name)
    try:
        model = builder(options, data=data)
    except SpecError:
        raise
    except (ValueError, TypeError) as exc:
        raise SpecError(f"model {name!r} rejected its options: {exc}", field="model.options",
                        value=options) from exc
    if not isinstance(model, nn.Module):
        raise SpecError(f"model builder {name!r} returned {type(model).__name__}, not an "
                        "nn.Module", field="experiment.model.name", value=name)
    n = count_params(model)
    if max_params is not None and n > max_params:
        raise ResourceLimitError(f"model {name!r} has {n:,} parameters; the limit is "
                                 f"{max_params:,}", field="model", value=n,
                                 allowed=f"≤ {max_params}")
    return model


def build_data(spec: DataSpec, *, batch_size: int, seed: int, val_fraction: float) -> DataBundle:
    """Build the data set ``spec`` through its registered builder."""
    name, options = _name_and_options(spec)
    builder = resolve_dataset(name)
    try:
        bundle = builder(options, batch_size=batch_size, seed=seed, val_fraction=val_fraction)
    except SpecError:
        raise
    except (ValueError, TypeError) as exc:
        raise SpecError(f"data set {name!r} rejected its options: {exc}", field="data.options",
                        value=options) from exc
    if not isinstance(bundle, DataBundle):
        raise SpecError(f"data builder {name!r} returned {type(bundle).__name__}, not a "
                        "DataBundle", field="experiment.data.name", value=name)
    return bundle


def build_experiment(spec: ExperimentSpec, *, max_params: int | None = None
                     ) -> tuple[nn.Module, DataBundle]:
    """Data first (its `DataInfo` shapes the model), then the model. The caller seeds torch
    beforehand so that initialisation is reproducible."""
    bundle = build_data(spec.data, batch_size=spec.batch_size, seed=spec.seed,
                        val_fraction=spec.val_fraction)
    model = build_model(spec.model, bundle.info, max_params=max_params)
    return model, bundle
