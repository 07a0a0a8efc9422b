"""Split a model's parameters into a weight-decay group and a no-decay group (O7.3, W10c).

Weight decay is meant to shrink the weights that carry a model's capacity — matrices and
convolution kernels. Decaying a bias or a normalization scale only pulls it toward 0, which
changes what the layer computes (a LayerNorm gain of 0 switches the layer off) without any
regularising benefit, so the seeds say never to (O7.3 "never on biases or LayerNorm", W10c "do not
decay biases or BatchNorm").

The decision is made by the *module that owns* the parameter first and by name and shape only as
a fallback, like timm's ``param_groups_weight_decay`` and nanoGPT's ``configure_optimizers``: one
named rule per parameter, so the report can say why. The rules, first match wins:

1. ``norm``       owned by a normalization module (torch's norm classes, or any class whose name
                  ends in ``Norm``/``Norm1d``/…, which catches custom ``RMSNorm``s) → no decay.
2. ``bias``       a leaf name that is a bias: ``bias`` or ``bias`` as a ``_``-separated word
                  (``in_proj_bias``, and ``MultiheadAttention``'s ``bias_k``/``bias_v``, which are
                  3-D and would otherwise pass for matrices) → no decay.
3. ``gain``       the gain ``g`` of weight normalization (``w = g · v / ‖v‖``):
                  ``parametrizations.<name>.original0`` of ``nn.utils.parametrizations.weight_norm``
                  or ``<name>_g`` of the legacy ``nn.utils.weight_norm`` → no decay. It is a
                  per-output scale, like a norm gain, and is ``(out, 1, …)``-shaped, not 1-D.
4. ``embedding``  owned by ``nn.Embedding``/``EmbeddingBag``, or a raw ``nn.Parameter`` with an
                  embedding's name (timm/ViT/HF style: ``pos_embed``, ``pos_emb``,
                  ``position_embeddings``, ``cls_token``, ``dist_token``, ``mask_token``, …, as in
                  timm's ``no_weight_decay()``) → decay only if ``decay_embeddings``: a rare
                  token's row gets few gradient updates but is decayed on every step, so by default
                  embeddings are left alone (configurable because some recipes do decay).
5. ``1d``         any other parameter with fewer than 2 dimensions (scales, gains, per-channel
                  offsets of custom modules) → no decay.
6. ``matrix``     everything else (weight matrices, convolution kernels) → decay.

A parameter shared by several modules (tied input/output embeddings) is placed once, in the group
given by the highest-priority rule among *all* its owners — so the result does not depend on
which module was registered first. Parameters with ``requires_grad=False`` are left out of the
groups (an optimizer must not allocate state for them) and listed in the report as frozen.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn.utils.parametrize import ParametrizationList
from torch.nn.utils.weight_norm import WeightNorm

from optim_core.errors import SpecError

__all__ = ["GroupReport", "ParamDecision", "ParamGroupReport", "build_param_groups"]

_NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,  # BatchNorm*, SyncBatchNorm, InstanceNorm*, LazyBatchNorm*
    nn.LayerNorm,
    nn.GroupNorm,
    nn.LocalResponseNorm,
    nn.RMSNorm,
)
# Custom norms (LlamaRMSNorm, T5LayerNorm, ScaleNorm, FusedRMSNorm, MyBatchNorm2d, …).
_NORM_NAME = re.compile(r"Norm(\d[dD])?$")
# A leaf name that is a bias: ``bias`` as a whole ``_``-separated word (bias, bias_k, in_proj_bias).
_BIAS_NAME = re.compile(r"(^|_)bias(_|$)")
# Raw nn.Parameter embeddings (timm / ViT / HF / CLIP naming): learned positions (pos_embed,
# absolute_pos_embed, position_embeddings, positional_embedding) and special tokens (cls_token,
# dist_token, mask_token, reg_token, class_embedding).
_EMBEDDING_NAME = re.compile(
    r"(^|_)(pos|position|positional)_(emb|embed|embeds|embedding|embeddings)$"
    r"|(^|_)(cls|dist|mask|reg)_tokens?$|(^|_)class_embedding$")

# Rule name -> (group, rule ids, why). The order of this table is the precedence.
_RULES: dict[str, tuple[str, tuple[str, ...], str]] = {
    "norm": ("no_decay", ("O7.3", "W10c"),
             "normalization parameter: decaying it changes the layer's output scale, not capacity"),
    "bias": ("no_decay", ("O7.3", "W10c"), "bias: an offset, not capacity; never decayed"),
    "gain": ("no_decay", ("O7.3", "W10c"),
             "weight-norm gain: a per-output scale like a norm gain; decaying it shrinks the output"),
    "embedding": ("no_decay", ("O7.3",),
                  "embedding (table, learned positions or special token): rare tokens' rows and "
                  "special tokens would shrink between their few updates"),
    "embedding_decayed": ("decay", ("O7.3",), "embedding, decayed (decay_embeddings=True)"),
    "1d": ("no_decay", ("O7.3", "W10c"),
           "1-D parameter (scale, gain or offset of a custom module): fallback, no decay"),
    "matrix": ("decay", ("O7.3", "W10a"), "weight matrix or convolution kernel: decayed"),
}
_PRECEDENCE = ("norm", "bias", "gain", "embedding", "1d", "matrix")


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, _NORM_TYPES) or bool(_NORM_NAME.search(type(module).__name__))


def _is_weight_norm_gain(module: nn.Module, leaf_name: str) -> bool:
    """``g`` of ``w = g · v / ‖v‖``: told apart from ``v`` by how torch registered it, not by shape
    (both are ≥ 2-D for the default ``dim=0``)."""
    if isinstance(module, ParametrizationList):
        # parametrizations.weight_norm: right_inverse returns (g, v) -> original0, original1.
        # By class name: torch keeps _WeightNorm private, and a private import would tie this
        # module to one torch release (the CUDA image may carry another).
        return leaf_name == "original0" and any(type(m).__name__ == "_WeightNorm" for m in module)
    # Legacy nn.utils.weight_norm: a forward pre-hook that knows the name it split into _g / _v.
    return any(isinstance(hook, WeightNorm) and leaf_name == f"{hook.name}_g"
               for hook in module._forward_pre_hooks.values())


def _is_embedding(module: nn.Module, leaf_name: str) -> bool:
    """An embedding table, or a raw embedding Parameter (``pos_embed``, ``cls_token``, …): both
    hold rows that are trained rarely or only through attention, so both follow
    ``decay_embeddings``."""
    return isinstance(module, nn.Embedding | nn.EmbeddingBag) \
        or bool(_EMBEDDING_NAME.search(leaf_name))


def _rule_for(module: nn.Module, leaf_name: str, param: torch.Tensor) -> str:
    if _is_norm(module):
        return "norm"
    if _BIAS_NAME.search(leaf_name):
        return "bias"
    if _is_weight_norm_gain(module, leaf_name):
        return "gain"
    if _is_embedding(module, leaf_name):
        return "embedding"
    if param.ndim < 2:
        return "1d"
    return "matrix"


@dataclass(frozen=True)
class ParamDecision:
    """Where one parameter went and why."""

    name: str
    group: str
    rule: str
    shape: tuple[int, ...]
    numel: int
    tied_with: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "group": self.group, "rule": self.rule,
                "rule_ids": list(_RULES[self.rule][1]), "reason": _RULES[self.rule][2],
                "shape": list(self.shape), "num_params": self.numel,
                "tied_with": list(self.tied_with)}


@dataclass(frozen=True)
class GroupReport:
    name: str
    weight_decay: float
    decisions: tuple[ParamDecision, ...]

    @property
    def num_tensors(self) -> int:
        return len(self.decisions)

    @property
    def num_params(self) -> int:
        return sum(d.numel for d in self.decisions)

    def to_dict(self) -> dict[str, Any]:
        rules = sorted({d.rule for d in self.decisions}, key=list(_RULES).index)
        return {
            "name": self.name,
            "weight_decay": self.weight_decay,
            "num_tensors": self.num_tensors,
            "num_params": self.num_params,
            "param_names": [d.name for d in self.decisions],
            "reason": "; ".join(_RULES[r][2] for r in rules),
            "rule_ids": sorted({i for r in rules for i in _RULES[r][1]}),
            "by_rule": {r: [d.name for d in self.decisions if d.rule == r] for r in rules},
        }


@dataclass(frozen=True)
class ParamGroupReport:
    """What ``build_param_groups`` decided, as plain data for the API and the advice engine."""

    groups: tuple[GroupReport, ...]
    frozen: tuple[ParamDecision, ...] = field(default=())
    decay_embeddings: bool = False

    def group(self, name: str) -> GroupReport:
        return next(g for g in self.groups if g.name == name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "groups": [g.to_dict() for g in self.groups],
            "decay_embeddings": self.decay_embeddings,
            "total_tensors": sum(g.num_tensors for g in self.groups),
            "total_params": sum(g.num_params for g in self.groups),
            "frozen_tensors": len(self.frozen),
            "frozen_params": sum(d.numel for d in self.frozen),
            "frozen_names": [d.name for d in self.frozen],
            "params": [d.to_dict() for g in self.groups for d in g.decisions],
        }


def build_param_groups(model: nn.Module, weight_decay: float, decay_embeddings: bool = False,
                       ) -> tuple[list[dict[str, Any]], ParamGroupReport]:
    """Return torch param groups ``[{"name": "decay", ...}, {"name": "no_decay", ...}]`` and a report.

    Each group carries its own ``weight_decay`` (``weight_decay`` for "decay", 0 for "no_decay"),
    so any torch optimizer honours the split. Empty groups are omitted from the list (the report
    always shows both). Raises ``SpecError`` if ``weight_decay`` is negative or not finite, or if
    the model has no trainable parameters.
    """
    if isinstance(weight_decay, bool) or not isinstance(weight_decay, int | float) \
            or not 0.0 <= weight_decay < float("inf"):
        raise SpecError(f"weight_decay must be a finite number >= 0, got {weight_decay!r}",
                        field="weight_decay", value=weight_decay, allowed=">= 0")

    # Canonical names: the first name under which named_parameters() meets each tensor.
    names: dict[int, str] = {}
    params: dict[int, nn.Parameter] = {}
    for name, p in model.named_parameters():
        names.setdefault(id(p), name)
        params.setdefault(id(p), p)

    # Every (module, leaf name) that owns each tensor, tied and shared owners included.
    rules: dict[int, set[str]] = {}
    aliases: dict[int, set[str]] = {}
    for mod_name, module in model.named_modules(remove_duplicate=False):
        for leaf, p in module.named_parameters(recurse=False):
            rules.setdefault(id(p), set()).add(_rule_for(module, leaf, p))
            aliases.setdefault(id(p), set()).add(f"{mod_name}.{leaf}" if mod_name else leaf)

    wanted = {"decay": [], "no_decay": []}  # type: dict[str, list[nn.Parameter]]
    decided: dict[str, list[ParamDecision]] = {"decay": [], "no_decay": []}
    frozen: list[ParamDecision] = []
    for key, p in params.items():
        rule = next(r for r in _PRECEDENCE if r in rules[key])
        if rule == "embedding" and decay_embeddings:
            rule = "embedding_decayed"
        group = _RULES[rule][0]
        name = names[key]
        decision = ParamDecision(name=name, group=group, rule=rule, shape=tuple(p.shape),
                                 numel=p.numel(), tied_with=tuple(sorted(aliases[key] - {name})))
        if not p.requires_grad:
            frozen.append(decision)
            continue
        wanted[group].append(p)
        decided[group].append(decision)

    if not wanted["decay"] and not wanted["no_decay"]:
        raise SpecError(f"{type(model).__name__} has no trainable parameters "
                        f"({len(frozen)} frozen)", field="model", allowed="at least one "
                        "parameter with requires_grad=True")

    wd = {"decay": float(weight_decay), "no_decay": 0.0}
    groups = [{"name": g, "params": wanted[g], "weight_decay": wd[g]}
              for g in ("decay", "no_decay") if wanted[g]]
    report = ParamGroupReport(
        groups=tuple(GroupReport(g, wd[g], tuple(decided[g])) for g in ("decay", "no_decay")),
        frozen=tuple(frozen), decay_embeddings=decay_embeddings)
    return groups, report
