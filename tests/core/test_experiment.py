"""Service entry points: dicts in, plain JSON out; validation, limits, devices, cancel."""

from __future__ import annotations

import json

import pytest
import torch

import optim_core
from optim_core.errors import Cancelled, ResourceLimitError, SpecError
from optim_core.specs.jobs import RangeTestJobSpec, TrialsJobSpec
from optim_core.specs.range_test import ProgressEvent
from optim_core.training.experiment import resolve_device, run_range_test, run_trials

MLP_DIGITS = {"model": {"kind": "mlp", "hidden": [16]}, "data": {"kind": "digits"},
              "batch_size": 32}
TINY_LM = {"model": {"kind": "transformer", "d_model": 16, "n_heads": 2, "n_layers": 1,
                     "seq_len": 8, "vocab_size": 16},
           "data": {"kind": "sequences", "vocab_size": 16, "seq_len": 8, "n_sequences": 64},
           "batch_size": 16}


def _strip_timing(obj):
    if isinstance(obj, dict):
        return {k: _strip_timing(v) for k, v in obj.items()
                if k not in ("seconds", "seconds_per_step")}
    if isinstance(obj, list):
        return [_strip_timing(v) for v in obj]
    return obj


def test_range_test_entry_point_returns_plain_json() -> None:
    request = RangeTestJobSpec.model_validate(
        {"experiment": MLP_DIGITS, "config": {"num_steps": 20, "check_every": 5}}
    ).model_dump(mode="json")
    events: list[ProgressEvent] = []
    out = run_range_test(request, device="auto", progress=events.append)
    assert json.loads(json.dumps(out, allow_nan=False)) == out
    assert out["kind"] == "range_test" and out["device"] == "cpu"
    assert out["param_count"] == out["param_count_analytic"] == 64 * 16 + 16 + 16 * 10 + 10
    assert out["versions"]["optim_core"] == optim_core.__version__
    assert out["versions"]["torch"] == torch.__version__
    assert out["optimizer"]["name"] == "adamw"
    # the report of the groups the range test built: AdamW's λ on the decay group only
    groups = {g["name"]: g["weight_decay"] for g in out["param_groups"]["groups"]}
    assert out["optimizer"]["weight_decay"] == 0.01
    assert groups == {"decay": 0.01, "no_decay": 0.0}
    assert len(out["result"]["lrs"]) == len(out["result"]["losses"]) > 0
    assert out["data"]["n_train"] + out["data"]["n_val"] == 1797
    assert out["request"] == request
    assert events and events[-1].total == 20


def test_trials_entry_point_on_a_transformer_is_reproducible() -> None:
    request = TrialsJobSpec.model_validate(
        {"experiment": TINY_LM, "config": {"steps": 8, "eval_every": 4, "center_lr": 3e-3,
                                           "lr_factors": [1.0]}}).model_dump(mode="json")
    first, second = run_trials(request), run_trials(request)
    assert json.loads(json.dumps(first, allow_nan=False)) == first
    assert first["kind"] == "trials"
    assert first["param_count"] == first["param_count_analytic"]
    assert sorted(first["result"]["ranking"]) == ["adamw lr=0.003", "sgd lr=0.003"]
    assert first["result"]["center_lr_source"] == "given"
    assert _strip_timing(first) == _strip_timing(second)


def test_invalid_request_is_a_spec_error_naming_the_field() -> None:
    bad = {"experiment": {**MLP_DIGITS, "batch_size": 0}}
    with pytest.raises(SpecError) as info:
        run_trials(bad)
    assert info.value.field == "experiment.batch_size"
    with pytest.raises(SpecError):
        run_range_test({"experiment": MLP_DIGITS, "config": {"code": "import os"}})


def test_parameter_limit_is_enforced_before_building() -> None:
    with pytest.raises(ResourceLimitError):
        run_trials({"experiment": MLP_DIGITS}, max_params=100)


def test_cancel_between_steps() -> None:
    with pytest.raises(Cancelled):
        run_trials({"experiment": MLP_DIGITS, "config": {"center_lr": 0.01, "steps": 50}},
                   should_stop=lambda: True)


def test_resolve_device() -> None:
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(SpecError):
        resolve_device("warp-drive")
    if not torch.cuda.is_available():
        with pytest.raises(SpecError):
            resolve_device("cuda")
