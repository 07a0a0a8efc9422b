"""OptimizerSpec: defaults filled per optimizer (O5.2, W11), ranges and cross-field rules located
at the field, frozen and hashable for cache keys."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from optim_core.bounds import MIN_LR
from optim_core.specs.catalog import CATALOG
from optim_core.specs.optimizer import OPTIMIZER_NAMES, OptimizerSpec


def _locs(err: pytest.ExceptionInfo[ValidationError]) -> list[tuple]:
    return [e["loc"] for e in err.value.errors()]


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_defaults_are_filled_from_the_table(name: str) -> None:
    spec = OptimizerSpec(name=name)
    for field in ("lr", "betas", "eps", "momentum", "weight_decay"):
        assert getattr(spec, field) == CATALOG[name].defaults.get(field)
    assert spec.rule_ids == CATALOG[name].rule_ids
    # a validated spec is complete, so validating its dump gives the same spec (stable hashes)
    assert OptimizerSpec.model_validate(spec.model_dump()) == spec


def test_guideline_defaults() -> None:
    adam, adamw, sgd = (OptimizerSpec(name=n) for n in ("adam", "adamw", "sgd"))
    assert (adam.betas, adam.eps) == ((0.9, 0.999), 1e-8)  # O5.2
    assert (adamw.lr, adamw.weight_decay) == (1e-3, 0.01)  # W11
    assert (sgd.lr, sgd.momentum, sgd.weight_decay) == (0.01, 0.9, 1e-4)  # W11


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": "sgd", "lr": 0.0}, "lr"),
        ({"name": "sgd", "lr": 11.0}, "lr"),
        ({"name": "adamw", "betas": (0.9, 1.0)}, "betas"),
        ({"name": "adamw", "eps": 0.0}, "eps"),
        ({"name": "sgd", "momentum": 1.0}, "momentum"),
        ({"name": "adamw", "weight_decay": -0.1}, "weight_decay"),
        ({"name": "adam", "momentum": 0.9}, "momentum"),  # not an Adam setting
        ({"name": "lion", "eps": 1e-8}, "eps"),
        ({"name": "adam", "weight_decay": 0.01}, "weight_decay"),  # must pick adam_l2 or adamw
        ({"name": "rmsprop", "betas": (0.9, 0.99)}, "betas"),
        ({"name": "sgd", "momentum": 0.0, "nesterov": True}, "nesterov"),
        ({"name": "adamw", "nesterov": True}, "nesterov"),
        ({"name": "sgd", "learning_rate": 0.1}, "learning_rate"),
        ({"name": "adamax"}, "name"),
    ],
)
def test_invalid_settings_are_reported_at_the_field(kwargs: dict, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        OptimizerSpec(**kwargs)
    assert any(loc and loc[0] == field for loc in _locs(err)), _locs(err)


def test_range_errors_carry_the_bound() -> None:
    with pytest.raises(ValidationError) as err:
        OptimizerSpec(name="sgd", lr=-1.0)
    assert err.value.errors()[0]["ctx"] == {"ge": MIN_LR}


def test_nesterov_with_momentum_is_valid_and_spec_is_frozen() -> None:
    spec = OptimizerSpec(name="sgd", momentum=0.9, nesterov=True)
    assert spec.nesterov
    with pytest.raises(ValidationError):
        spec.lr = 1.0  # type: ignore[misc]
    assert hash(spec) == hash(OptimizerSpec(name="sgd", nesterov=True, lr=0.01))
