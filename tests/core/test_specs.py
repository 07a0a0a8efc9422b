"""Specs: validation names the field, sizes are computed without torch, requests round-trip."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from optim_core.specs.experiment import (
    ExperimentSpec,
    MLPSpec,
    TransformerSpec,
    optimizer_state_slots,
)
from optim_core.specs.jobs import RangeTestJobSpec, TrialsConfig, TrialsJobSpec

SEQ = {"kind": "sequences", "vocab_size": 16, "seq_len": 8}
TINY_LM = {"kind": "transformer", "d_model": 16, "n_heads": 2, "n_layers": 1, "seq_len": 8,
           "vocab_size": 16}


def _locs(exc: ValidationError) -> list[tuple]:
    return [e["loc"] for e in exc.errors()]


def test_specs_module_does_not_import_torch() -> None:
    code = ("import sys, optim_core.specs.experiment\n"
            "sys.exit(1 if any(m == 'torch' or m.startswith('torch.') for m in sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def test_defaults_round_trip_through_json() -> None:
    spec = ExperimentSpec(model={"kind": "mlp"}, data={"kind": "classification"})
    dumped = spec.model_dump(mode="json")
    assert ExperimentSpec.model_validate(dumped) == spec
    job = TrialsJobSpec(experiment=spec)
    assert TrialsJobSpec.model_validate(job.model_dump(mode="json")) == job
    rt = RangeTestJobSpec(experiment=spec, optimizer={"name": "sgd", "lr": 0.1, "momentum": 0.9})
    assert RangeTestJobSpec.model_validate(rt.model_dump(mode="json")) == rt


@pytest.mark.parametrize(("bad", "loc"), [
    ({"model": {"kind": "mlp", "widths": [4]}, "data": {"kind": "digits"}}, ("model", "mlp", "widths")),
    ({"model": {"kind": "mlp", "hidden": [0]}, "data": {"kind": "digits"}}, ("model", "mlp", "hidden", 0)),
    ({"model": {"kind": "mlp", "dropout": 1.5}, "data": {"kind": "digits"}}, ("model", "mlp", "dropout")),
    ({"model": {"kind": "mlp"}, "data": {"kind": "digits"}, "batch_size": 0}, ("batch_size",)),
    ({"model": {"kind": "mlp"}, "data": {"kind": "classification", "n_samples": 10**9}},
     ("data", "classification", "n_samples")),
    ({"model": {**TINY_LM, "d_model": 18, "n_heads": 4}, "data": SEQ},
     ("model", "transformer", "n_heads")),
    ({"model": {"kind": "mlp"}, "data": {"kind": "sequences", "order": 2, "vocab_size": 2000}},
     ("data", "sequences", "order")),
    ({"model": {"kind": "mlp"}, "data": {"kind": "nope"}}, ("data",)),
])
def test_invalid_fields_are_named(bad: dict, loc: tuple) -> None:
    with pytest.raises(ValidationError) as info:
        ExperimentSpec.model_validate(bad)
    assert loc in _locs(info.value)


def test_range_is_in_the_message() -> None:
    with pytest.raises(ValidationError) as info:
        MLPSpec(dropout=2.0)
    assert "0.9" in str(info.value)


@pytest.mark.parametrize(("model", "data", "words"), [
    ({"kind": "cnn"}, {"kind": "digits"}, "as_images"),
    ({"kind": "cnn"}, {"kind": "regression"}, "image"),
    ({"kind": "transformer"}, {"kind": "classification"}, "sequences"),
    ({**TINY_LM, "vocab_size": 8}, SEQ, "model.vocab_size"),
    ({**TINY_LM, "seq_len": 4}, SEQ, "model.seq_len"),
    ({"kind": "mlp"}, SEQ, "transformer"),
])
def test_model_must_fit_data(model: dict, data: dict, words: str) -> None:
    with pytest.raises(ValidationError) as info:
        ExperimentSpec(model=model, data=data)
    assert _locs(info.value) == [("model",)]
    assert words in str(info.value)


def test_models_that_fit() -> None:
    for model, data in [({"kind": "cnn"}, {"kind": "digits", "as_images": True}),
                        ({"kind": "cnn"}, {"kind": "images"}),
                        ({"kind": "mlp"}, {"kind": "images"}),  # flattened
                        (TINY_LM, SEQ),
                        ({**TINY_LM, "vocab_size": 20, "seq_len": 16}, SEQ)]:
        assert ExperimentSpec(model=model, data=data).param_count() > 0


def test_mlp_param_count_by_hand() -> None:
    # 64 → 10 (+LN) → 3 outputs... digits: 64 features, 10 classes
    spec = ExperimentSpec(model={"kind": "mlp", "hidden": [10], "layer_norm": True},
                          data={"kind": "digits"})
    assert spec.param_count() == (64 * 10 + 10) + 2 * 10 + (10 * 10 + 10)


def test_tied_embeddings_save_the_head() -> None:
    tied = TransformerSpec(**{**TINY_LM, "tied_embeddings": True})
    untied = TransformerSpec(**{**TINY_LM, "tied_embeddings": False})
    assert untied.param_count() - tied.param_count() == 16 * 16


def test_registered_sizes_are_unknown_before_build() -> None:
    spec = ExperimentSpec(model={"kind": "registered", "name": "acme.net", "options": {"depth": 3}},
                          data={"kind": "digits"})
    assert spec.param_count() is None
    assert spec.estimate_memory_bytes() is None
    on_registered_data = ExperimentSpec(model={"kind": "mlp"},
                                        data={"kind": "registered", "name": "acme.data"})
    assert on_registered_data.param_count() is None


@pytest.mark.parametrize("options", [{"bad key": 1}, {f"k{i}": i for i in range(33)},
                                     {"nested": {"a": 1}}])
def test_registered_options_are_flat_and_small(options: dict) -> None:
    with pytest.raises(ValidationError):
        ExperimentSpec(model={"kind": "registered", "name": "x", "options": options},
                       data={"kind": "digits"})


def test_memory_estimate_grows_with_state_batch_and_size() -> None:
    small = ExperimentSpec(model={"kind": "mlp", "hidden": [32]}, data={"kind": "digits"})
    big_batch = small.model_copy(update={"batch_size": 512})
    wide = ExperimentSpec(model={"kind": "mlp", "hidden": [512]}, data={"kind": "digits"})
    adamw, sgd = small.estimate_memory_bytes("adamw"), small.estimate_memory_bytes("sgd")
    assert adamw > sgd > 4 * 2 * small.param_count()
    assert adamw - sgd == 4 * small.param_count() * (optimizer_state_slots("adamw")
                                                     - optimizer_state_slots("sgd"))
    assert big_batch.estimate_memory_bytes() > adamw
    assert wide.estimate_memory_bytes() > adamw


def test_validation_split_must_not_be_empty() -> None:
    with pytest.raises(ValidationError) as info:
        ExperimentSpec(model={"kind": "mlp"}, data={"kind": "classification", "n_samples": 16},
                       val_fraction=0.01)
    assert ("val_fraction",) in _locs(info.value)
    assert ExperimentSpec(model={"kind": "mlp"}, data={"kind": "classification", "n_samples": 16},
                          val_fraction=0.0).val_fraction == 0.0


def test_trials_config_bounds() -> None:
    assert TrialsConfig().candidates is None
    for bad in [{"steps": 10**6}, {"lr_factors": []}, {"center_lr": 0.0}, {"candidates": []},
                {"candidates": [{"optimizer": {"name": "adamw"}, "clip_norm": -1.0}]}]:
        with pytest.raises(ValidationError) as info:
            TrialsConfig.model_validate(bad)
        assert _locs(info.value)[0][0] == next(iter(bad))
