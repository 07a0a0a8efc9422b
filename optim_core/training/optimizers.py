"""``build_optimizer``: one small factory from an ``OptimizerSpec`` to a torch optimizer.

Settings are data: each optimizer's row in ``optim_core.specs.catalog`` names its class (by import
path) and how the spec's fields become that constructor's keyword arguments (timm's
``_optim_factory`` shape); this module only resolves the class and calls it. No optimizer math
lives here — torch implements SGD (momentum, Nesterov), Adagrad, RMSprop, Adam, AdamW and
Adafactor, and the maintained ``pytorch_optimizer`` package implements LAMB and Lion — so the
update each name performs is the library's, tested against the GUIDELINES formulas in
``tests/core``.

Weight decay is per group: groups from ``build_param_groups`` carry their own ``weight_decay``
(λ on "decay", 0 on "no_decay") and torch only fills in the spec's value for groups without one.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from optim_core.errors import SpecError, UnknownComponentError
from optim_core.specs.catalog import CATALOG, OptimInfo
from optim_core.specs.optimizer import OptimizerSpec
from optim_core.training.param_groups import build_param_groups

__all__ = ["build_optimizer", "optimizer_class"]


@functools.cache
def _resolve(class_path: str) -> type[torch.optim.Optimizer]:
    module, _, name = class_path.partition(":")
    return getattr(importlib.import_module(module), name)


def optimizer_class(name: str) -> type[torch.optim.Optimizer]:
    """The torch optimizer class of a catalogue row (imported on first use)."""
    return _resolve(_row(name).class_path)


def _row(name: Any) -> OptimInfo:
    if name not in CATALOG:
        raise UnknownComponentError(
            f"unknown optimizer {name!r}; known: {', '.join(CATALOG)}",
            field="name", value=name, allowed=", ".join(CATALOG))
    return CATALOG[name]


def _coerce_spec(spec: OptimizerSpec | Mapping[str, Any]) -> OptimizerSpec:
    name = spec.get("name") if isinstance(spec, Mapping) else getattr(spec, "name", None)
    _row(name)
    return spec if isinstance(spec, OptimizerSpec) else OptimizerSpec.model_validate(spec)


def _as_groups(params_or_groups: nn.Module | Iterable[Any], spec: OptimizerSpec,
               ) -> list[dict[str, Any]]:
    if isinstance(params_or_groups, nn.Module):
        # A model gets the O7.3 split; plain tensors or groups are taken as the caller gave them.
        return build_param_groups(params_or_groups, spec.weight_decay or 0.0,
                                  decay_embeddings=spec.decay_embeddings)[0]
    items = list(params_or_groups)
    if not items:
        raise SpecError("no parameters to optimize", field="params",
                        allowed="at least one tensor or param group")
    if all(isinstance(i, Mapping) for i in items):
        return [dict(i) for i in items]
    return [{"params": items}]


def _device_types(groups: list[dict[str, Any]]) -> set[str]:
    types: set[str] = set()
    for g in groups:
        params = g["params"]
        for p in [params] if isinstance(params, torch.Tensor) else params:
            types.add(p.device.type)
    return types


def build_optimizer(params_or_groups: nn.Module | Iterable[Any],
                    spec: OptimizerSpec | Mapping[str, Any], *,
                    device_type: str | None = None) -> torch.optim.Optimizer:
    """Build the optimizer ``spec`` names over ``params_or_groups``.

    ``params_or_groups`` is an ``nn.Module`` (split by ``build_param_groups`` with the spec's
    ``weight_decay`` and ``decay_embeddings``), an iterable of tensors, or param-group dicts.
    ``spec`` may be a dict (validated here). ``device_type`` overrides the device read from the
    parameters; the fused implementation is used when every parameter is on a device the
    optimizer has a fused kernel for, torch's default (foreach/loop) otherwise.
    Raises ``UnknownComponentError`` for an unknown name and ``SpecError`` for no parameters.
    """
    spec = _coerce_spec(spec)
    row = _row(spec.name)
    cls = _resolve(row.class_path)
    groups = _as_groups(params_or_groups, spec)
    kwargs: dict[str, Any] = {"lr": spec.lr, "weight_decay": spec.weight_decay,
                              **row.kwargs(spec)}
    devices = {device_type} if device_type is not None else _device_types(groups)
    if (len(devices) == 1 and devices <= row.fused_on
            and "fused" in inspect.signature(cls).parameters):
        kwargs["fused"] = True
    return cls(groups, **kwargs)
