"""The optimizer catalogue: one row per optimizer, every fact about it in that row. Torch-free.

timm's ``OptimInfo`` shape: the spec's validation (``optim_core.specs.optimizer``), the factory
(``optim_core.training.optimizers``), the memory estimate (``optim_core.specs.experiment``) and
the advice engine's optimizer families all read these rows, so adding an optimizer is one row
here (and, if its constructor takes something new, one line in the row's ``kwargs``).

The class is named by its import path and only imported by the factory, inside a worker: the API
validates and advises from the same rows without importing torch.

Where the defaults come from (and the rule ids the service cites):

==========  =======  ==============  =====  ========  ======  ========================================
name        lr       betas           eps    momentum  wd      source
==========  =======  ==============  =====  ========  ======  ========================================
sgd         1e-2     –               –      0.9       1e-4    W11 ``SGD(lr=0.01, momentum=0.9, wd=1e-4)``
adagrad     1e-2     –               1e-10  –         0       torch defaults (O4.1 gives no numbers)
rmsprop     1e-2     (0, 0.9)        1e-8   0         0       O4.2 β = 0.9 (torch ``alpha``); torch
adam        1e-3     (0.9, 0.999)    1e-8   –         0       O5.2; wd must be 0 (use adam_l2/adamw)
adam_l2     1e-3     (0.9, 0.999)    1e-8   –         0.01    O5.2 + W11's ``Adam(weight_decay=)``
adamw       1e-3     (0.9, 0.999)    1e-8   –         0.01    O5.2, W11 ``AdamW(lr=1e-3, wd=0.01)``
adafactor   1e-2     –               1e-30  –         0.01    torch defaults; eps1 of the paper; O7.3
lamb        1e-3     (0.9, 0.999)    1e-6   –         0.01    pytorch-optimizer defaults; O7.3 wd
lion        1e-4     (0.9, 0.99)     –      –         0.1     Lion paper: LR 3-10x lower, wd 3-10x
                                                                higher than AdamW's
lars        0.1      –               –      0.9       1e-6    SimCLR (0.3 × B/256, wd 1e-6); O7.1
==========  =======  ==============  =====  ========  ======  ========================================

RMSprop has one EMA (O4.2's β, torch's ``alpha``); it is ``betas[1]`` — the squared-gradient EMA,
the same role as Adam's β2 — and ``betas[0]`` must be 0 because RMSprop has no first-moment EMA
(its heavy-ball term is ``momentum``). Adafactor's ``eps`` is the paper's ε1 (the floor on the
squared-gradient statistics, torch's ``eps[0]``); its relative-step floor ε2 keeps torch's 1e-3.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["CATALOG", "OptimInfo", "names_where"]

# Adafactor's relative-step floor (the paper's ε2); the spec's ``eps`` is ε1.
_ADAFACTOR_EPS2 = 1e-3

# Devices with a fused (single-kernel) implementation that the factory opts into; torch's own
# default (foreach on CUDA, the per-tensor loop on CPU) is used everywhere else. On the CPU the
# fused step is 2-2.3x faster than the default loop (bench/optimizer_step_bench.py: AdamW 212 ->
# 91 us on an MLP 128-256-256-10, torch 2.13, one thread), so CPU is listed too.
_FUSED = frozenset({"cuda", "cpu"})

# A spec as the kwargs mapping sees it: anything with the OptimizerSpec fields as attributes.
Kwargs = Callable[[Any], dict[str, Any]]


@dataclass(frozen=True)
class OptimInfo:
    """Everything the service knows about one optimizer."""

    name: str
    class_path: str                       # "module:Class", imported by the factory only
    defaults: Mapping[str, Any]           # the settings it takes; a key absent = no such setting
    kwargs: Kwargs                        # spec fields -> constructor kwargs beyond lr and wd
    state_slots: float                    # floats of optimizer state kept per parameter
    decoupled: bool                       # λ outside the gradient (θ ← θ − ηλθ), not L2 (W6)
    adam_like: bool                       # AdamW's Adam step (O5.1), so AdamW's LR carries over
    rule_ids: tuple[str, ...]             # GUIDELINES rules it implements (the advice cites them)
    fused_on: frozenset[str] = field(default_factory=frozenset)

    def takes(self, setting: str) -> bool:
        return setting in self.defaults


def _adam_kwargs(s: Any) -> dict[str, Any]:
    return {"betas": s.betas, "eps": s.eps}


_ROWS = (
    # dampening stays 0 so the update is exactly O3.1 (v ← βv + g). One momentum buffer (none
    # without momentum; the estimate assumes the common case).
    OptimInfo("sgd", "torch.optim:SGD", {"lr": 1e-2, "momentum": 0.9, "weight_decay": 1e-4},
              lambda s: {"momentum": s.momentum, "nesterov": s.nesterov},
              state_slots=1.0, decoupled=False, adam_like=False,
              rule_ids=("O1.2", "O2.1", "O3.1", "O3.2", "W4", "W11"), fused_on=_FUSED),
    OptimInfo("adagrad", "torch.optim:Adagrad", {"lr": 1e-2, "eps": 1e-10, "weight_decay": 0.0},
              lambda s: {"eps": s.eps},
              state_slots=1.0, decoupled=False, adam_like=False,
              rule_ids=("O4.1",), fused_on=frozenset({"cpu"})),
    # O4.2's β is torch's alpha; betas[0] is 0 by validation (no first moment in RMSprop). One
    # EMA of squared gradients (+1 with momentum, ignored by the estimate).
    OptimInfo("rmsprop", "torch.optim:RMSprop",
              {"lr": 1e-2, "betas": (0.0, 0.9), "eps": 1e-8, "momentum": 0.0,
               "weight_decay": 0.0},
              lambda s: {"alpha": s.betas[1], "eps": s.eps, "momentum": s.momentum},
              state_slots=1.0, decoupled=False, adam_like=False,
              rule_ids=("O4.2",)),
    OptimInfo("adam", "torch.optim:Adam",
              {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0},
              _adam_kwargs, state_slots=2.0, decoupled=False, adam_like=True,
              rule_ids=("O5.1", "O5.2"), fused_on=_FUSED),
    # adam_l2 is torch's Adam(weight_decay=λ): λθ is added to the gradient before the adaptive
    # scaling (W6's "Adam + L2"), kept next to adamw so trials can show the difference W6 states.
    OptimInfo("adam_l2", "torch.optim:Adam",
              {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01},
              _adam_kwargs, state_slots=2.0, decoupled=False, adam_like=True,
              rule_ids=("O5.1", "O5.2", "O5.3", "W6", "W11"), fused_on=_FUSED),
    OptimInfo("adamw", "torch.optim:AdamW",
              {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01},
              _adam_kwargs, state_slots=2.0, decoupled=True, adam_like=True,
              rule_ids=("O5.1", "O5.2", "O5.3", "W6", "W11"), fused_on=_FUSED),
    # Factored second moments (row + column sums): far less than one float per parameter for
    # matrices; 0.1 is a deliberately rough stand-in.
    OptimInfo("adafactor", "torch.optim:Adafactor",
              {"lr": 1e-2, "eps": 1e-30, "weight_decay": 0.01},
              lambda s: {"eps": (s.eps, _ADAFACTOR_EPS2)},
              state_slots=0.1, decoupled=True, adam_like=False,
              rule_ids=("O5.4", "O7.1")),
    # LAMB and Lion decouple weight decay (weight_decouple=True is the library default; stated so
    # a library default change cannot silently turn them into L2).
    OptimInfo("lamb", "pytorch_optimizer:Lamb",
              {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-6, "weight_decay": 0.01},
              lambda s: {"betas": s.betas, "eps": s.eps, "weight_decouple": True},
              state_slots=2.0, decoupled=True, adam_like=True,
              rule_ids=("O5.4", "O7.1")),
    # LARS (You et al. 2017): SGD + momentum with a layer-wise trust ratio ‖w‖/‖g‖ (trust
    # coefficient 1e-3, the library's and SimCLR's); its λ is added to the gradient before the
    # ratio, i.e. L2, not decoupled. pytorch_optimizer 4.x skips 1-D tensors itself (no decay,
    # no ratio), which is also the param-group rule. One momentum buffer.
    OptimInfo("lars", "pytorch_optimizer:LARS", {"lr": 0.1, "momentum": 0.9, "weight_decay": 1e-6},
              lambda s: {"momentum": s.momentum},
              state_slots=1.0, decoupled=False, adam_like=False,
              rule_ids=("O7.1",)),
    OptimInfo("lion", "pytorch_optimizer:Lion",
              {"lr": 1e-4, "betas": (0.9, 0.99), "weight_decay": 0.1},
              lambda s: {"betas": s.betas, "weight_decouple": True},
              state_slots=1.0, decoupled=True, adam_like=False,
              rule_ids=("O5.4",)),
)

CATALOG: Mapping[str, OptimInfo] = MappingProxyType({row.name: row for row in _ROWS})


def names_where(predicate: Callable[[OptimInfo], bool]) -> frozenset[str]:
    """The names of the optimizers a predicate holds for (the advice engine's families)."""
    return frozenset(name for name, row in CATALOG.items() if predicate(row))
