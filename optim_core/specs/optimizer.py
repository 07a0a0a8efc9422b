"""``OptimizerSpec``: an optimizer's settings as validated, hashable data. Torch-free.

The API validates requests with it and the worker builds the optimizer from it
(``optim_core.training.optimizers.build_optimizer``), so both sides agree on what every field means.

Defaults depend on the optimizer and are filled in at validation: a field left out (or ``None``)
takes the value from ``DEFAULTS[name]``, so a validated spec is always complete and two requests
that mean the same thing hash the same (``canonical.content_hash``). A field that the chosen
optimizer does not use stays ``None``; setting it explicitly is an error rather than being ignored
silently (``momentum`` with ``adam`` would otherwise look like it did something).

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
==========  =======  ==============  =====  ========  ======  ========================================

RMSprop has one EMA (O4.2's β, torch's ``alpha``); it is ``betas[1]`` — the squared-gradient EMA,
the same role as Adam's β2 — and ``betas[0]`` must be 0 because RMSprop has no first-moment EMA
(its heavy-ball term is ``momentum``). Adafactor's ``eps`` is the paper's ε1 (the floor on the
squared-gradient statistics, torch's ``eps[0]``); its relative-step floor ε2 keeps torch's 1e-3.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

__all__ = ["DEFAULTS", "OPTIMIZER_NAMES", "RULE_IDS", "OptimizerName", "OptimizerSpec"]

OptimizerName = Literal["sgd", "adagrad", "rmsprop", "adam", "adam_l2", "adamw", "adafactor",
                        "lamb", "lion"]
OPTIMIZER_NAMES: tuple[str, ...] = OptimizerName.__args__  # type: ignore[attr-defined]

# Per-optimizer defaults. A key absent here means the optimizer has no such setting.
DEFAULTS: dict[str, dict[str, Any]] = {
    "sgd": {"lr": 1e-2, "momentum": 0.9, "weight_decay": 1e-4},
    "adagrad": {"lr": 1e-2, "eps": 1e-10, "weight_decay": 0.0},
    "rmsprop": {"lr": 1e-2, "betas": (0.0, 0.9), "eps": 1e-8, "momentum": 0.0,
                "weight_decay": 0.0},
    "adam": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0},
    "adam_l2": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01},
    "adamw": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.01},
    "adafactor": {"lr": 1e-2, "eps": 1e-30, "weight_decay": 0.01},
    "lamb": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-6, "weight_decay": 0.01},
    "lion": {"lr": 1e-4, "betas": (0.9, 0.99), "weight_decay": 0.1},
}

# The GUIDELINES rules each optimizer implements; the advice engine cites them.
RULE_IDS: dict[str, tuple[str, ...]] = {
    "sgd": ("O1.2", "O2.1", "O3.1", "O3.2", "W4", "W11"),
    "adagrad": ("O4.1",),
    "rmsprop": ("O4.2",),
    "adam": ("O5.1", "O5.2"),
    "adam_l2": ("O5.1", "O5.2", "O5.3", "W6", "W11"),
    "adamw": ("O5.1", "O5.2", "O5.3", "W6", "W11"),
    "adafactor": ("O5.4", "O7.1"),
    "lamb": ("O5.4", "O7.1"),
    "lion": ("O5.4",),
}

_Unit = Annotated[float, Field(ge=0.0, lt=1.0)]


class OptimizerSpec(BaseModel):
    """Which optimizer and with which settings. Validated ranges are in each field's schema."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    defaults: ClassVar[dict[str, dict[str, Any]]] = DEFAULTS
    rule_ids_by_name: ClassVar[dict[str, tuple[str, ...]]] = RULE_IDS

    name: OptimizerName = Field(description="optimizer; see DEFAULTS for each one's settings")
    lr: float | None = Field(None, gt=0.0, le=10.0, validate_default=True,
                             description="learning rate, 0 < lr <= 10 (default per optimizer)")
    betas: tuple[_Unit, _Unit] | None = Field(
        None, validate_default=True,
        description="EMA coefficients (β1, β2), each in [0, 1); rmsprop: (0, β)")
    eps: float | None = Field(None, gt=0.0, le=1.0, validate_default=True,
                              description="denominator floor, 0 < eps <= 1")
    momentum: float | None = Field(None, ge=0.0, lt=1.0, validate_default=True,
                                   description="heavy-ball momentum β (sgd, rmsprop), [0, 1)")
    nesterov: bool = Field(False, description="Nesterov momentum (sgd only; needs momentum > 0)")
    weight_decay: float | None = Field(None, ge=0.0, le=1.0, validate_default=True,
                                       description="λ for the decay group, 0 <= λ <= 1")
    decay_embeddings: bool = Field(False, description="also decay embedding tables")

    @field_validator("lr", "betas", "eps", "momentum", "weight_decay")
    @classmethod
    def _fill_default(cls, v: Any, info: ValidationInfo) -> Any:
        name = info.data.get("name")
        if name is None:  # the name itself was invalid; that error is reported on its own
            return v
        defaults = DEFAULTS[name]
        field = info.field_name
        assert field is not None
        if field not in defaults:
            if v is not None:
                users = ", ".join(n for n, d in DEFAULTS.items() if field in d)
                raise ValueError(f"{field} is not a setting of {name}; it applies to: {users}")
            return None
        return defaults[field] if v is None else v

    @field_validator("betas")
    @classmethod
    def _rmsprop_betas(cls, v: tuple[float, float] | None, info: ValidationInfo) -> Any:
        if info.data.get("name") == "rmsprop" and v is not None and v[0] != 0.0:
            raise ValueError("rmsprop has no first-moment EMA: betas[0] must be 0 (use momentum);"
                             f" betas[1] is RMSprop's β (torch alpha), got {v!r}")
        return v

    @field_validator("weight_decay")
    @classmethod
    def _adam_without_decay(cls, v: float | None, info: ValidationInfo) -> Any:
        # Adam with weight_decay > 0 is Adam + L2; make that choice explicit (W6, W11).
        if info.data.get("name") == "adam" and v:
            raise ValueError(f"adam takes weight_decay = 0 only, got {v!r}; use adam_l2 for L2 "
                             "in the gradient or adamw for decoupled decay (W6)")
        return v

    @field_validator("nesterov")
    @classmethod
    def _nesterov_needs_momentum(cls, v: bool, info: ValidationInfo) -> bool:
        # A field validator (not a model one) so the error is located at "nesterov".
        name, momentum = info.data.get("name"), info.data.get("momentum")
        if v and name is not None and name != "sgd":
            raise ValueError(f"nesterov applies to sgd only, not {name}")
        if v and name == "sgd" and not momentum:
            raise ValueError(f"nesterov requires momentum in (0, 1), got momentum={momentum!r}")
        return v

    @property
    def rule_ids(self) -> tuple[str, ...]:
        """GUIDELINES rule ids for this optimizer (for the advice's reasons)."""
        return RULE_IDS[self.name]
