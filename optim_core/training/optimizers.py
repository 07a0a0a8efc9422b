"""``build_optimizer``: one small factory from an ``OptimizerSpec`` to a torch optimizer.

Settings are data: ``_TABLE`` maps each name to a constructor and to how the spec's fields become
that constructor's keyword arguments (timm's ``_optim_factory`` shape). No optimizer math lives
here — torch implements SGD (momentum, Nesterov), Adagrad, RMSprop, Adam, AdamW and Adafactor, and
the maintained ``pytorch_optimizer`` package implements LAMB and Lion — so the update each name
performs is the library's, tested against the GUIDELINES formulas in ``tests/core``.

``adam_l2`` is ``torch.optim.Adam(weight_decay=λ)``: λθ is added to the gradient before the
adaptive scaling (W6's "Adam + L2"). It is kept, next to ``adamw``, so trials can show the
difference W6 describes rather than only state it.

Weight decay is per group: groups from ``build_param_groups`` carry their own ``weight_decay``
(λ on "decay", 0 on "no_decay") and torch only fills in the spec's value for groups without one.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from pytorch_optimizer import Lamb, Lion
from torch import nn

from optim_core.errors import SpecError, UnknownComponentError
from optim_core.specs.optimizer import OptimizerSpec
from optim_core.training.param_groups import build_param_groups

__all__ = ["OPTIMIZERS", "build_optimizer"]

# Adafactor's relative-step floor (the paper's ε2); the spec's ``eps`` is ε1.
_ADAFACTOR_EPS2 = 1e-3


@dataclass(frozen=True)
class _Entry:
    """How to build one optimizer: the class and the spec fields it takes (beyond lr, wd)."""

    cls: type[torch.optim.Optimizer]
    kwargs: Callable[[OptimizerSpec], dict[str, Any]]
    # Devices with a fused (single-kernel) implementation that we opt into; torch's own default
    # (foreach on CUDA, the per-tensor loop on CPU) is used everywhere else. On the CPU the fused
    # step is 2-2.3x faster than the default loop (bench/optimizer_step_bench.py: AdamW 212 ->
    # 91 us on an MLP 128-256-256-10, torch 2.13, one thread), so CPU is listed too.
    fused_on: frozenset[str] = frozenset()


_FUSED = frozenset({"cuda", "cpu"})

OPTIMIZERS: dict[str, _Entry] = {
    # dampening stays 0 so the update is exactly O3.1 (v ← βv + g).
    "sgd": _Entry(torch.optim.SGD, lambda s: {"momentum": s.momentum, "nesterov": s.nesterov},
                  _FUSED),
    "adagrad": _Entry(torch.optim.Adagrad, lambda s: {"eps": s.eps}, frozenset({"cpu"})),
    # O4.2's β is torch's alpha; betas[0] is 0 by validation (no first moment in RMSprop).
    "rmsprop": _Entry(torch.optim.RMSprop,
                      lambda s: {"alpha": s.betas[1], "eps": s.eps, "momentum": s.momentum}),
    "adam": _Entry(torch.optim.Adam, lambda s: {"betas": s.betas, "eps": s.eps}, _FUSED),
    "adam_l2": _Entry(torch.optim.Adam, lambda s: {"betas": s.betas, "eps": s.eps}, _FUSED),
    "adamw": _Entry(torch.optim.AdamW, lambda s: {"betas": s.betas, "eps": s.eps}, _FUSED),
    "adafactor": _Entry(torch.optim.Adafactor,
                        lambda s: {"eps": (s.eps, _ADAFACTOR_EPS2)}),
    # Both decouple weight decay (weight_decouple=True is the library default; stated so a
    # library default change cannot silently turn them into L2).
    "lamb": _Entry(Lamb, lambda s: {"betas": s.betas, "eps": s.eps, "weight_decouple": True}),
    "lion": _Entry(Lion, lambda s: {"betas": s.betas, "weight_decouple": True}),
}


def _coerce_spec(spec: OptimizerSpec | Mapping[str, Any]) -> OptimizerSpec:
    name = spec.get("name") if isinstance(spec, Mapping) else getattr(spec, "name", None)
    if name not in OPTIMIZERS:
        raise UnknownComponentError(
            f"unknown optimizer {name!r}; known: {', '.join(OPTIMIZERS)}",
            field="name", value=name, allowed=", ".join(OPTIMIZERS))
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
    entry = OPTIMIZERS[spec.name]
    groups = _as_groups(params_or_groups, spec)
    kwargs: dict[str, Any] = {"lr": spec.lr, "weight_decay": spec.weight_decay,
                              **entry.kwargs(spec)}
    devices = {device_type} if device_type is not None else _device_types(groups)
    if (len(devices) == 1 and devices <= entry.fused_on
            and "fused" in inspect.signature(entry.cls).parameters):
        kwargs["fused"] = True
    return entry.cls(groups, **kwargs)
