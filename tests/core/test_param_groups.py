"""build_param_groups: weight matrices and kernels decayed; biases, norms (and by default
embeddings) not (O7.3, W10c); tied weights placed once; frozen params skipped."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from torch import nn

from optim_core.errors import SpecError
from optim_core.training.param_groups import build_param_groups


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
        # Learned positions as a raw Parameter (timm's pos_embed): an embedding, though 2-D.
        self.pos_embed = nn.Parameter(torch.zeros(4, d))
        self.norm1 = nn.RMSNorm(d)
        self.attn = nn.MultiheadAttention(d, 2, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
        self.norm_f = _TinyRMSNorm(d)
        self.gate = nn.Parameter(torch.tensor(0.5))  # a scalar gain: the 1-D fallback


def test_tiny_transformer_with_embedding_rmsnorm_and_tied_weights() -> None:
    model = _TinyLM()
    groups, report = build_param_groups(model, 0.1)
    names = _names(groups, model)
    assert names["decay"] == {"attn.in_proj_weight", "attn.out_proj.weight",
                              "mlp.0.weight", "mlp.2.weight"}
    assert names["no_decay"] == {"head.weight", "pos_embed", "norm1.weight", "attn.in_proj_bias",
                                 "attn.out_proj.bias", "mlp.0.bias", "mlp.2.bias",
                                 "norm_f.scale", "gate"}
    all_params = [p for g in groups for p in g["params"]]
    assert len(all_params) == len({id(p) for p in all_params}) == len(list(model.parameters()))
    tied = next(d for d in report.to_dict()["params"] if d["name"] == "head.weight")
    assert tied["rule"] == "embedding" and tied["tied_with"] == ["embed.weight"]
    rules = {d["name"]: d["rule"] for d in report.to_dict()["params"]}
    assert rules["norm_f.scale"] == "norm" and rules["gate"] == "1d"
    assert rules["pos_embed"] == "embedding"


def test_decay_embeddings_moves_the_table_to_the_decay_group() -> None:
    model = _TinyLM()
    groups, report = build_param_groups(model, 0.1, decay_embeddings=True)
    names = _names(groups, model)
    assert "head.weight" in names["decay"] and "head.weight" not in names["no_decay"]
    assert "pos_embed" in names["decay"]  # raw embedding Parameters follow the same setting
    assert report.decay_embeddings and report.group("decay").num_tensors == 6


def test_attention_bias_kv_and_other_bias_names_are_not_decayed() -> None:
    # bias_k / bias_v are (1, 1, d): by shape they would be decayed as matrices.
    model = nn.MultiheadAttention(6, 2, add_bias_kv=True)
    model.register_parameter("relative_position_bias_table", nn.Parameter(torch.zeros(9, 2)))
    model.register_parameter("biased_proj", nn.Parameter(torch.zeros(3, 3)))  # not a bias
    groups, report = build_param_groups(model, 0.1)
    names = _names(groups, model)
    assert names["decay"] == {"in_proj_weight", "out_proj.weight", "biased_proj"}
    assert names["no_decay"] == {"in_proj_bias", "bias_k", "bias_v", "out_proj.bias",
                                 "relative_position_bias_table"}
    assert set(report.to_dict()["groups"][1]["by_rule"]) == {"bias"}


class _TinyViT(nn.Module):
    """Raw embedding Parameters with timm / HF names, plus look-alikes that are not embeddings."""

    def __init__(self, d: int = 8) -> None:
        super().__init__()
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.dist_token = nn.Parameter(torch.zeros(1, 1, d))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(torch.zeros(1, 5, d))
        self.enc = nn.Module()
        self.enc.pos_emb = nn.Parameter(torch.zeros(5, d))
        self.enc.position_embeddings = nn.Parameter(torch.zeros(5, d))
        self.proj = nn.Parameter(torch.zeros(d, d))  # a plain matrix
        self.token_mixer = nn.Parameter(torch.zeros(5, 5))  # "token" alone is not an embedding


_VIT_EMBEDDINGS = {"cls_token", "dist_token", "mask_token", "pos_embed", "enc.pos_emb",
                   "enc.position_embeddings"}


@pytest.mark.parametrize("decay_embeddings", [False, True])
def test_raw_embedding_parameters_follow_decay_embeddings(decay_embeddings: bool) -> None:
    model = _TinyViT()
    groups, report = build_param_groups(model, 0.1, decay_embeddings=decay_embeddings)
    names = _names(groups, model)
    if decay_embeddings:
        assert names["decay"] == _VIT_EMBEDDINGS | {"proj", "token_mixer"}
    else:
        assert names["decay"] == {"proj", "token_mixer"}
        assert names["no_decay"] == _VIT_EMBEDDINGS
    rule = "embedding_decayed" if decay_embeddings else "embedding"
    rules = {d["name"]: d["rule"] for d in report.to_dict()["params"]}
    assert {n for n, r in rules.items() if r == rule} == _VIT_EMBEDDINGS


def test_weight_norm_gain_is_not_decayed() -> None:
    from torch.nn.utils import parametrizations

    model = nn.Sequential(parametrizations.weight_norm(nn.Linear(3, 4)),
                          parametrizations.weight_norm(nn.Conv1d(2, 3, 3)))
    with warnings.catch_warnings():  # the legacy API is deprecated, but models still use it
        warnings.simplefilter("ignore")
        model.append(nn.utils.weight_norm(nn.Conv1d(3, 3, 1)))
    groups, report = build_param_groups(model, 0.1)
    names = _names(groups, model)
    # g is (out, 1[, 1]): by shape it would pass for a matrix; v is the direction, decayed.
    assert names["decay"] == {"0.parametrizations.weight.original1",
                              "1.parametrizations.weight.original1", "2.weight_v"}
    assert names["no_decay"] == {"0.bias", "1.bias", "2.bias",
                                 "0.parametrizations.weight.original0",
                                 "1.parametrizations.weight.original0", "2.weight_g"}
    rules = {d["name"]: d["rule"] for d in report.to_dict()["params"]}
    assert rules["2.weight_g"] == rules["0.parametrizations.weight.original0"] == "gain"


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
