from __future__ import annotations

from typing import Any

import pytest

from optim_core.advice import AdviceRequest, advise
from optim_core.advice.models import Advice


def make(**kw: Any) -> AdviceRequest:
    base: dict[str, Any] = {"task": "other", "param_count": 10_000_000, "batch_size": 64,
                            "dataset_size": 100_000, "epochs": 10}
    base.update(kw)
    if base["task"].startswith("llm") and "seq_len" not in base:
        base["seq_len"] = 1024
    if "total_steps" in kw:
        base.pop("epochs", None)
    return AdviceRequest(**base)


def run(**kw: Any) -> Advice:
    return advise(make(**kw))


@pytest.fixture()
def advice_of():
    return run
