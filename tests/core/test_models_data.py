"""Built models match the analytic parameter count; data is seeded, re-iterable and learnable."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from optim_core.specs.experiment import ExperimentSpec, SequenceDataSpec
from optim_core.training.data import BatchLoader, markov_sequences
from optim_core.training.registry import build_experiment, count_params

SEQ = {"kind": "sequences", "vocab_size": 16, "seq_len": 8, "n_sequences": 64}
SPECS = [
    ({"kind": "mlp"}, {"kind": "digits"}),
    ({"kind": "mlp", "hidden": []}, {"kind": "regression", "n_targets": 3, "n_samples": 64}),
    ({"kind": "mlp", "hidden": [7, 5, 3], "layer_norm": True, "dropout": 0.1,
      "activation": "gelu"}, {"kind": "classification", "n_samples": 64}),
    ({"kind": "mlp", "hidden": [9]}, {"kind": "images", "channels": 3, "n_samples": 64}),
    ({"kind": "cnn"}, {"kind": "digits", "as_images": True}),
    ({"kind": "cnn", "channels": [4, 6, 8], "kernel_size": 5, "pooling": "avg",
      "classifier_hidden": 12, "dropout": 0.2},
     {"kind": "images", "channels": 2, "height": 9, "width": 7, "n_samples": 64}),
    ({"kind": "cnn", "channels": [3], "kernel_size": 1, "pooling": "none"},
     {"kind": "images", "n_samples": 64}),
    ({"kind": "transformer", "d_model": 16, "n_heads": 2, "n_layers": 1, "seq_len": 8,
      "vocab_size": 16}, SEQ),
    ({"kind": "transformer", "d_model": 24, "n_heads": 3, "n_layers": 2, "seq_len": 12,
      "vocab_size": 20, "mlp_ratio": 2.5, "tied_embeddings": False, "norm": "rmsnorm",
      "dropout": 0.1}, SEQ),
]


@pytest.mark.parametrize(("model", "data"), SPECS)
def test_built_model_matches_analytic_count_and_shapes(model: dict, data: dict) -> None:
    spec = ExperimentSpec(model=model, data=data, batch_size=8)
    net, bundle = build_experiment(spec)
    assert count_params(net) == sum(p.numel() for p in net.parameters()) == spec.param_count()
    inputs, targets = next(iter(bundle.train))
    out = net(inputs)
    assert len(out) == 8 == len(targets)
    loss = bundle.loss_fn(out, targets)
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert bundle.info == spec.data_info()


def test_loader_is_seeded_re_iterable_and_covers_every_sample() -> None:
    x, y = torch.arange(10).float(), torch.arange(10)

    def epochs(seed: int) -> list[list[int]]:
        loader = BatchLoader(x, y, batch_size=3, shuffle=True, seed=seed)
        return [[int(i) for _, b in loader for i in b] for _ in range(2)]

    first, again, other = epochs(1), epochs(1), epochs(2)
    assert first == again
    assert first[0] != first[1]  # a new order each pass
    assert first != other
    assert sorted(first[0]) == list(range(10))
    dropped = BatchLoader(x, y, batch_size=3, shuffle=True, drop_last=True)
    assert len(dropped) == 3 and all(len(b) == 3 for _, b in dropped)


@pytest.mark.parametrize("data", [{"kind": "classification", "label_noise": 0.2},
                                  {"kind": "regression"}, {"kind": "images"}, SEQ,
                                  {"kind": "digits", "as_images": True}])
def test_data_is_deterministic_and_split(data: dict) -> None:
    spec = ExperimentSpec(model={"kind": "mlp"} if data["kind"] != "sequences" else
                          {"kind": "transformer", "d_model": 8, "n_heads": 1, "seq_len": 8,
                           "vocab_size": 16}, data=data, val_fraction=0.25)
    a, b = build_experiment(spec)[1], build_experiment(spec)[1]
    assert torch.equal(a.train.inputs, b.train.inputs) and torch.equal(a.val.targets,
                                                                        b.val.targets)
    info = spec.data_info()
    assert len(a.train.inputs) + len(a.val.inputs) == info.n_samples
    assert len(a.val.inputs) == round(info.n_samples * 0.25)
    changed = spec.model_copy(update={"data": spec.data.model_copy(update={"seed": 1})}) \
        if hasattr(spec.data, "seed") else None
    if changed is not None:
        assert not torch.equal(build_experiment(changed)[1].train.inputs, a.train.inputs)


def test_digits_is_the_bundled_sklearn_set() -> None:
    spec = ExperimentSpec(model={"kind": "mlp"}, data={"kind": "digits"}, val_fraction=0.0)
    bundle = build_experiment(spec)[1]
    assert bundle.val is None
    assert bundle.train.inputs.shape == (1797, 64)
    assert float(bundle.train.inputs.min()) >= 0.0 and float(bundle.train.inputs.max()) <= 1.0
    assert sorted(set(bundle.train.targets.tolist())) == list(range(10))


def test_classification_labels_are_balanced_enough_to_learn() -> None:
    spec = ExperimentSpec(model={"kind": "mlp"}, data={"kind": "classification", "n_classes": 4})
    y = build_experiment(spec)[1].train.targets
    counts = torch.bincount(y, minlength=4).float() / len(y)
    assert counts.min() > 0.05  # the teacher uses every class


def test_markov_chain_has_low_entropy() -> None:
    spec = SequenceDataSpec(vocab_size=32, branching=3, n_sequences=256, seq_len=64)
    seq = markov_sequences(spec)
    pairs = np.zeros((32, 32))
    np.add.at(pairs, (seq[:, :-1].ravel(), seq[:, 1:].ravel()), 1)
    p = pairs / pairs.sum(axis=1, keepdims=True).clip(min=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -np.nansum(np.where(p > 0, p * np.log(p), 0.0), axis=1)
    weights = pairs.sum(axis=1) / pairs.sum()
    assert float((weights * h).sum()) < math.log(3) < math.log(32)  # ≤ branching choices


@pytest.mark.parametrize(("model", "data", "steps"), [
    ({"kind": "mlp", "hidden": [32]}, {"kind": "classification", "n_samples": 512}, 60),
    ({"kind": "cnn", "channels": [8]}, {"kind": "images", "n_samples": 256, "height": 8,
                                        "width": 8}, 40),
    ({"kind": "transformer", "d_model": 16, "n_heads": 2, "n_layers": 1, "seq_len": 8,
      "vocab_size": 16}, {**SEQ, "n_sequences": 256}, 60),
])
def test_tasks_are_learnable(model: dict, data: dict, steps: int) -> None:
    torch.manual_seed(0)
    spec = ExperimentSpec(model=model, data=data, batch_size=32)
    net, bundle = build_experiment(spec)

    def val_loss() -> float:
        net.eval()
        with torch.no_grad():
            losses = [float(bundle.loss_fn(net(x), y)) for x, y in bundle.val]
        net.train()
        return sum(losses) / len(losses)

    before = val_loss()
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    done = 0
    while done < steps:
        for x, y in bundle.train:
            opt.zero_grad()
            bundle.loss_fn(net(x), y).backward()
            opt.step()
            done += 1
            if done == steps:
                break
    assert val_loss() < 0.8 * before


# -- property: the analytic count is the built count, for random small specs of each kind ------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_widths = st.lists(st.integers(1, 12), max_size=3)
_mlp = st.fixed_dictionaries({"kind": st.just("mlp"), "hidden": _widths,
                              "layer_norm": st.booleans()})
_cnn = st.fixed_dictionaries({"kind": st.just("cnn"),
                              "channels": st.lists(st.integers(1, 6), min_size=1, max_size=3),
                              "kernel_size": st.sampled_from([1, 3, 5]),
                              "classifier_hidden": st.integers(0, 8)})
_lm = st.integers(1, 3).flatmap(lambda heads: st.fixed_dictionaries({
    "kind": st.just("transformer"), "n_heads": st.just(heads),
    "d_model": st.integers(2, 4).map(lambda k: 4 * heads * k),
    "n_layers": st.integers(1, 2), "seq_len": st.integers(4, 10), "vocab_size": st.integers(4, 12),
    "mlp_ratio": st.sampled_from([1.0, 1.5, 2.0, 4.0]), "tied_embeddings": st.booleans(),
    "norm": st.sampled_from(["layernorm", "rmsnorm"])}))
_PAIRS = st.one_of(
    st.tuples(_mlp, st.fixed_dictionaries({"kind": st.just("classification"),
                                           "n_samples": st.just(16),
                                           "n_features": st.integers(1, 9),
                                           "n_classes": st.integers(2, 5)})),
    st.tuples(_cnn, st.fixed_dictionaries({"kind": st.just("images"), "n_samples": st.just(16),
                                           "channels": st.integers(1, 3),
                                           "height": st.integers(4, 9)})),
    st.tuples(_lm, st.just({"kind": "sequences", "vocab_size": 4, "seq_len": 4,
                            "n_sequences": 16})),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_PAIRS)
def test_analytic_count_equals_built_count(pair: tuple[dict, dict]) -> None:
    from optim_core.training.registry import build_model

    model, data = pair
    spec = ExperimentSpec(model=model, data=data)
    net = build_model(spec.model, spec.data_info())
    assert sum(p.numel() for p in net.parameters()) == spec.param_count()
