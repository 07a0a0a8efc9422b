"""Runs given in epochs are bounded like runs given in steps (found by the property test)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from optim_core.advice import models
from optim_core.advice.models import AdviceRequest

BASE = {"task": "encoder_finetune", "param_count": 1000, "batch_size": 1,
        "dataset_size": 10_203_879}


def test_epochs_that_make_too_many_steps_are_refused_on_the_epochs_field() -> None:
    with pytest.raises(ValidationError) as info:
        AdviceRequest(**BASE, epochs=299.0)
    (err,) = info.value.errors()
    assert err["loc"] == ("epochs",)
    assert err["type"] == "too_many_steps"
    # The allowed bound is stated in epochs: the largest whole number that fits.
    assert err["ctx"]["le"] == models.MAX_STEPS // 10_203_879


def test_epochs_at_the_bound_are_accepted() -> None:
    ok = models.MAX_STEPS // 10_203_879
    assert AdviceRequest(**BASE, epochs=float(ok)).epochs == ok
