"""build_param_groups: weight matrices and kernels decayed; biases, norms (and by default
embeddings) not (O7.3, W10c); tied weights placed once; frozen params skipped."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from optim_core.errors import SpecError
from optim_core.param_groups import build_param_groups


def _names(groups: list[dict], model: nn.Module) -> dict[str, set[str]]:
    ids = {id(p): n for n, p in model.named_parameters()}
    return {g["name"]: {ids[id(p)] for p in g["params"]} for g in groups}


def test_mlp_with_layernorm() -> None:
    model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.ReLU(), nn.Linear(8, 2))
    groups, report = build_param_groups(model, 0.05)
    names = _names(groups, model)
    assert names["decay"] == {"0.weight", "3.weight"}
    assert names["no_decay"] == {"0.bias", "1.weight", "1.bias", "3.bias"}
    assert {g["name"]: g["weight_decay"] for g in groups} == {"decay": 0.05, "no_decay": 0.0}
    data = report.to_dict()
    decay = next(g for g in data["groups"] if g["name"] == "decay")
    assert decay["num_tensors"] == 2 and decay["num_params"] == 4 * 8 + 8 * 2
    assert data["total_params"] == sum(p.numel() for p in model.parameters())
    assert "O7.3" in decay["rule_ids"]
    by_name = {d["name"]: d for d in data["params"]}
    assert by_name["1.weight"]["rule"] == "norm" and by_name["0.bias"]["rule"] == "bias"
    json.dumps(data)  # plain data, ready for the API


def test_cnn_with_batchnorm_and_groupnorm() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Conv2d(4, 4, 3, bias=False), nn.GroupNorm(2, 4),
                          nn.InstanceNorm2d(4, affine=True), nn.Flatten(), nn.LazyLinear(2))
    model(torch.zeros(1, 3, 8, 8))  # materialise the lazy layer
    groups, report = build_param_groups(model, 1e-4)
    names = _names(groups, model)
    assert names["decay"] == {"0.weight", "3.weight", "7.weight"}
    assert names["no_decay"] == {"0.bias", "1.weight", "1.bias", "4.weight", "4.bias",
                                 "5.weight", "5.bias", "7.bias"}
    # buffers (running stats) are not parameters and must not appear
    assert report.to_dict()["total_tensors"] == len(list(model.parameters()))


class _TinyRMSNorm(nn.Module):
    """A custom norm, recognised by its class name (like LlamaRMSNorm)."""

    def __init__(self, d: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(d))


class _TinyLM(nn.Module):
    def __init__(self, vocab: int = 11, d: int = 6) -> None:
        super().__init__()
        # The head is registered first so a first-owner-wins rule would call the tied matrix
        # a Linear weight; the decision must not depend on that order.
        self.head = nn.Linear(d, vocab, bias=False)
        self.embed = nn.Embedding(vocab, d)
        self.head.weight = self.embed.weight  # tied input/output embeddings
        self.pos = nn.Parameter(torch.zeros(4, d))  # learned positions: a 2-D matrix
        self.norm1 = nn.RMSNorm(d)
        self.attn = nn.MultiheadAttention(d, 2, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.norm_f = _TinyRMSNorm(d)
        self.gate = nn.Parameter(torch.tensor(0.5))  # a scalar gain: the 1-D fallback


def test_tiny_transformer_with_embedding_rmsnorm_and_tied_weights() -> None:
    model = _TinyLM()
    groups, report = build_param_groups(model, 0.1)
    names = _names(groups, model)
    assert names["decay"] == {"pos", "attn.in_proj_weight", "attn.out_proj.weight",
                              "mlp.0.weight", "mlp.2.weight"}
    assert names["no_decay"] == {"head.weight", "norm1.weight", "attn.in_proj_bias",
                                 "attn.out_proj.bias", "mlp.0.bias", "mlp.2.bias",
                                 "norm_f.scale", "gate"}
    all_params = [p for g in groups for p in g["params"]]
    assert len(all_params) == len({id(p) for p in all_params}) == len(list(model.parameters()))
    tied = next(d for d in report.to_dict()["params"] if d["name"] == "head.weight")
    assert tied["rule"] == "embedding" and tied["tied_with"] == ["embed.weight"]
    rules = {d["name"]: d["rule"] for d in report.to_dict()["params"]}
    assert rules["norm_f.scale"] == "norm" and rules["gate"] == "1d"


def test_decay_embeddings_moves_the_table_to_the_decay_group() -> None:
    model = _TinyLM()
    groups, report = build_param_groups(model, 0.1, decay_embeddings=True)
    names = _names(groups, model)
    assert "head.weight" in names["decay"] and "head.weight" not in names["no_decay"]
    assert report.decay_embeddings and report.group("decay").num_tensors == 6


def test_frozen_parameters_are_skipped_and_reported() -> None:
    model = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 1))
    model[0].requires_grad_(False)
    groups, report = build_param_groups(model, 0.01)
    assert sum(len(g["params"]) for g in groups) == 2
    data = report.to_dict()
    assert data["frozen_names"] == ["0.weight", "0.bias"] and data["frozen_params"] == 12
    model.requires_grad_(False)
    with pytest.raises(SpecError, match="no trainable parameters"):
        build_param_groups(model, 0.01)


def test_empty_group_is_omitted_but_reported() -> None:
    model = nn.LayerNorm(4)
    groups, report = build_param_groups(model, 0.01)
    assert [g["name"] for g in groups] == ["no_decay"]
    assert [g["num_tensors"] for g in report.to_dict()["groups"]] == [0, 2]


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_invalid_weight_decay(bad: float) -> None:
    with pytest.raises(SpecError) as err:
        build_param_groups(nn.Linear(2, 2), bad)
    assert err.value.field == "weight_decay"


def test_groups_drive_a_torch_optimizer() -> None:
    model = nn.Sequential(nn.Linear(2, 2), nn.LayerNorm(2))
    groups, _ = build_param_groups(model, 0.5)
    opt = torch.optim.AdamW(groups, lr=1e-3)
    assert sorted(g["weight_decay"] for g in opt.param_groups) == [0.0, 0.5]
    assert {g["name"] for g in opt.param_groups} == {"decay", "no_decay"}
