"""``OptimizerSpec``: an optimizer's settings as validated, hashable data. Torch-free.

The API validates requests with it and the worker builds the optimizer from it
(``optim_core.training.optimizers.build_optimizer``), so both sides agree on what every field means.

Defaults depend on the optimizer and are filled in at validation: a field left out (or ``None``)
takes the value from its catalogue row (``CATALOG[name].defaults``), so a validated spec is always complete and two requests
that mean the same thing hash the same (``canonical.content_hash``). A field that the chosen
optimizer does not use stays ``None``; setting it explicitly is an error rather than being ignored
silently (``momentum`` with ``adam`` would otherwise look like it did something).

Each optimizer's defaults, settings and rule ids are its row in ``optim_core.specs.catalog``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from optim_core.bounds import MAX_LR, MIN_LR
from optim_core.errors import SpecError
from optim_core.specs.catalog import CATALOG

__all__ = ["OPTIMIZER_NAMES", "OptimizerName", "OptimizerSpec"]

OPTIMIZER_NAMES: tuple[str, ...] = tuple(CATALOG)
# The names as a Literal, for the schema (an enum in OpenAPI) and for type hints.
OptimizerName = Literal[OPTIMIZER_NAMES]  # type: ignore[valid-type]

_Unit = Annotated[float, Field(ge=0.0, lt=1.0)]


class OptimizerSpec(BaseModel):
    """Which optimizer and with which settings. Validated ranges are in each field's schema."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: OptimizerName = Field(description="optimizer; its settings and defaults are its catalogue row")
    lr: float | None = Field(None, ge=MIN_LR, le=MAX_LR, validate_default=True,
                             description=f"learning rate, {MIN_LR:g} <= lr <= {MAX_LR:g} (default "
                                         "per optimizer)")
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
        defaults = CATALOG[name].defaults
        field = info.field_name
        assert field is not None
        if field not in defaults:
            if v is not None:
                users = ", ".join(n for n, row in CATALOG.items() if row.takes(field))
                raise SpecError(f"{field} is not a setting of {name}; it applies to: {users}",
                                field=field, value=v,
                                allowed=f"left out for {name} (it applies to: {users})")
            return None
        return defaults[field] if v is None else v

    @field_validator("betas")
    @classmethod
    def _rmsprop_betas(cls, v: tuple[float, float] | None, info: ValidationInfo) -> Any:
        if info.data.get("name") == "rmsprop" and v is not None and v[0] != 0.0:
            raise SpecError("rmsprop has no first-moment EMA: betas[0] must be 0 (use momentum);"
                            f" betas[1] is RMSprop's β (torch alpha), got {v!r}", field="betas",
                            allowed="[0, β] with 0 <= β < 1 (rmsprop)")
        return v

    @field_validator("weight_decay")
    @classmethod
    def _adam_without_decay(cls, v: float | None, info: ValidationInfo) -> Any:
        # Adam with weight_decay > 0 is Adam + L2; make that choice explicit (W6, W11).
        if info.data.get("name") == "adam" and v:
            raise SpecError(f"adam takes weight_decay = 0 only, got {v!r}; use adam_l2 for L2 "
                            "in the gradient or adamw for decoupled decay (W6)",
                            field="weight_decay", value=v, allowed="0 (adam)")
        return v

    @field_validator("nesterov")
    @classmethod
    def _nesterov_needs_momentum(cls, v: bool, info: ValidationInfo) -> bool:
        # A field validator (not a model one) so the error is located at "nesterov".
        name, momentum = info.data.get("name"), info.data.get("momentum")
        if v and name is not None and name != "sgd":
            raise SpecError(f"nesterov applies to sgd only, not {name}", field="nesterov",
                            value=v, allowed=f"false ({name}); true for sgd only")
        if v and name == "sgd" and not momentum:
            raise SpecError(f"nesterov requires momentum in (0, 1), got momentum={momentum!r}",
                            field="nesterov", value=v,
                            allowed="false, or true with momentum in (0, 1)")
        return v

    @property
    def rule_ids(self) -> tuple[str, ...]:
        """GUIDELINES rule ids for this optimizer (for the advice's reasons)."""
        return CATALOG[self.name].rule_ids
