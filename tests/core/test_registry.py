"""The registry finds plug-ins through real entry points (a dist-info on sys.path, no mocks)."""

from __future__ import annotations

import pathlib
import textwrap

import pytest
import torch

from optim_core.errors import ResourceLimitError, SpecError, UnknownComponentError
from optim_core.specs.experiment import ExperimentSpec
from optim_core.training.registry import (
    build_experiment,
    build_model,
    known_datasets,
    known_models,
    resolve_model,
)

PLUGIN = '''
import torch
from torch import nn
from optim_core.training.data import DataBundle
from optim_core.specs.experiment import DataInfo


def build_wide(options, *, data):
    width = int(options.get("width", 4))
    if width < 1:
        raise ValueError("width must be >= 1")
    return nn.Sequential(nn.Flatten(), nn.Linear(data.flat_features, width), nn.ReLU(),
                         nn.Linear(width, data.n_outputs))


def build_parity(options, *, batch_size, seed, val_fraction):
    n = int(options.get("n", 64))
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 2, (n, 6), generator=g).float()
    y = (x.sum(dim=1) % 2).long()
    info = DataInfo(task="classification", input_kind="features", n_outputs=2, in_features=6,
                    n_samples=n)
    return DataBundle.from_tensors(x, y, info=info, batch_size=batch_size, seed=seed,
                                   val_fraction=val_fraction)


def build_not_a_module(options, *, data):
    return "nope"
'''


@pytest.fixture()
def plugin(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """Install a plug-in the way pip would leave it: a module and a *.dist-info on sys.path."""
    module = "acme_optim_plugin_test"
    (tmp_path / f"{module}.py").write_text(PLUGIN)
    info = tmp_path / "acme_optim_plugin_test-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-optim-plugin-test\n"
                                   "Version: 0.1\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(f"""\
        [optim_core.models]
        acme-wide = {module}:build_wide
        acme-broken = {module}:build_not_a_module
        acme-missing = {module}:does_not_exist
        mlp = {module}:build_not_a_module

        [optim_core.datasets]
        acme-parity = {module}:build_parity
        """))
    monkeypatch.syspath_prepend(str(tmp_path))
    return module


def test_plugins_are_listed_next_to_builtins(plugin: str) -> None:
    assert {"acme-wide", "mlp", "cnn", "transformer"} <= set(known_models())
    assert {"acme-parity", "digits", "sequences"} <= set(known_datasets())


def test_registered_model_on_builtin_data(plugin: str) -> None:
    spec = ExperimentSpec(model={"kind": "registered", "name": "acme-wide",
                                 "options": {"width": 5}}, data={"kind": "digits"})
    model, bundle = build_experiment(spec)
    assert model[1].out_features == 5
    x, _ = next(iter(bundle.train))
    assert model(x).shape == (spec.batch_size, 10)


def test_builtin_model_on_registered_data(plugin: str) -> None:
    spec = ExperimentSpec(model={"kind": "mlp", "hidden": [3]},
                          data={"kind": "registered", "name": "acme-parity",
                                "options": {"n": 40}}, batch_size=8, val_fraction=0.25)
    model, bundle = build_experiment(spec)
    assert (bundle.info.in_features, len(bundle.train.inputs), len(bundle.val.inputs)) == (6, 30,
                                                                                            10)
    assert sum(p.numel() for p in model.parameters()) == (6 * 3 + 3) + (3 * 2 + 2)


def test_unknown_name_lists_the_known_ones(plugin: str) -> None:
    with pytest.raises(UnknownComponentError) as info:
        resolve_model("acme-nope")
    message = str(info.value)
    assert "acme-wide" in message and "transformer" in message
    assert info.value.field == "experiment.model.name"
    assert isinstance(info.value, ValueError)


def test_builtins_win_over_a_plugin_of_the_same_name(plugin: str) -> None:
    spec = ExperimentSpec(model={"kind": "mlp"}, data={"kind": "digits"})
    assert isinstance(build_experiment(spec)[0], torch.nn.Module)


@pytest.mark.parametrize(("name", "options", "error"), [
    ("acme-broken", {}, SpecError),
    ("acme-missing", {}, UnknownComponentError),
    ("acme-wide", {"width": 0}, SpecError),
])
def test_bad_plugins_and_options_are_spec_errors(plugin: str, name: str, options: dict,
                                                 error: type[Exception]) -> None:
    spec = ExperimentSpec(model={"kind": "registered", "name": name, "options": options},
                          data={"kind": "digits"})
    with pytest.raises(error):
        build_experiment(spec)


def test_limits_apply_after_build_for_registered_models(plugin: str) -> None:
    spec = ExperimentSpec(model={"kind": "registered", "name": "acme-wide",
                                 "options": {"width": 100}}, data={"kind": "digits"})
    assert spec.param_count() is None
    with pytest.raises(ResourceLimitError) as info:
        build_model(spec.model, spec.data_info(), max_params=1000)
    assert "1,000" in str(info.value)
    assert build_model(spec.model, spec.data_info(), max_params=10**6) is not None


def test_without_the_plugin_the_name_is_unknown() -> None:
    with pytest.raises(UnknownComponentError):
        resolve_model("acme-wide")


def test_the_heartbeat_names_the_registry_groups() -> None:
    from optim_core.training import registry
    from workers import plugins

    assert (plugins.MODEL_GROUP, plugins.DATASET_GROUP) == (registry.MODEL_GROUP,
                                                            registry.DATASET_GROUP)
    assert set(plugins.installed_plugins()) == {"models", "datasets"}
