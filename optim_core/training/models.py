"""torch modules built from the built-in model specs of `optim_core.specs.experiment`.

The layer layout here and the analytic ``param_count`` in specs.py describe the same networks; the
tests build several specs of each kind and compare ``sum(p.numel())`` with the analytic count, so
change both together. Shapes (input features, channels, classes, vocabulary) come from the data's
`DataInfo`, never from the model spec.

Builders are reached through `optim_core.training.registry` (``build_model``), where they are registered under
their ``kind`` with the same signature a plug-in has: ``(options: dict, *, data: DataInfo)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from optim_core.specs.experiment import CNNSpec, DataInfo, MLPSpec, TransformerSpec, check_fit

__all__ = ["CNN", "MLP", "TransformerLM", "build_cnn", "build_mlp", "build_transformer"]

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU,
}


class MLP(nn.Sequential):
    """Flattens its input, then Linear → [LayerNorm] → activation → [Dropout] per hidden width."""

    def __init__(self, spec: MLPSpec, in_features: int, n_outputs: int) -> None:
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for h in spec.hidden:
            layers.append(nn.Linear(width, h))
            if spec.layer_norm:
                layers.append(nn.LayerNorm(h))
            layers.append(_ACTIVATIONS[spec.activation]())
            if spec.dropout > 0:
                layers.append(nn.Dropout(spec.dropout))
            width = h
        layers.append(nn.Linear(width, n_outputs))
        super().__init__(*layers)


class CNN(nn.Module):
    """Conv (no bias) → BatchNorm → ReLU → 2×2 pool per stage; global average pool; classifier."""

    def __init__(self, spec: CNNSpec, image_shape: tuple[int, int, int], n_outputs: int) -> None:
        super().__init__()
        c_in, h, w = image_shape
        stages: list[nn.Module] = []
        for c in spec.channels:
            # bias=False: BatchNorm's β makes a conv bias redundant (and specs.py counts none).
            stages += [nn.Conv2d(c_in, c, spec.kernel_size, padding=spec.kernel_size // 2,
                                 bias=False),
                       nn.BatchNorm2d(c), nn.ReLU()]
            if spec.pooling != "none" and h >= 2 and w >= 2:
                stages.append(nn.MaxPool2d(2) if spec.pooling == "max" else nn.AvgPool2d(2))
                h, w = h // 2, w // 2
            c_in = c
        self.features = nn.Sequential(*stages)
        head: list[nn.Module] = [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        if spec.dropout > 0:
            head.append(nn.Dropout(spec.dropout))
        if spec.classifier_hidden:
            head += [nn.Linear(c_in, spec.classifier_hidden), nn.ReLU()]
            c_in = spec.classifier_hidden
        head.append(nn.Linear(c_in, n_outputs))
        self.classifier = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def _norm(kind: str, d: int) -> nn.Module:
    return nn.LayerNorm(d) if kind == "layernorm" else nn.RMSNorm(d)


class _Block(nn.Module):
    """Pre-norm block: x + attn(norm(x)); x + mlp(norm(x))."""

    def __init__(self, spec: TransformerSpec) -> None:
        super().__init__()
        d = spec.d_model
        self.n_heads = spec.n_heads
        self.dropout = spec.dropout
        self.norm1 = _norm(spec.norm, d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.norm2 = _norm(spec.norm, d)
        self.mlp = nn.Sequential(nn.Linear(d, spec.mlp_hidden), nn.GELU(),
                                 nn.Linear(spec.mlp_hidden, d), nn.Dropout(spec.dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).split(d, dim=-1)
        q, k, v = (z.view(b, t, self.n_heads, d // self.n_heads).transpose(1, 2)
                   for z in (q, k, v))
        attn = F.scaled_dot_product_attention(
            q, k, v, is_causal=True, dropout_p=self.dropout if self.training else 0.0)
        x = x + F.dropout(self.proj(attn.transpose(1, 2).reshape(b, t, d)), self.dropout,
                          self.training)
        return x + self.mlp(self.norm2(x))


class TransformerLM(nn.Module):
    """Decoder-only LM: (batch, time) token ids → (batch, time, vocab) next-token logits."""

    def __init__(self, spec: TransformerSpec) -> None:
        super().__init__()
        self.seq_len = spec.seq_len
        self.tok = nn.Embedding(spec.vocab_size, spec.d_model)
        self.pos = nn.Embedding(spec.seq_len, spec.d_model)
        self.drop = nn.Dropout(spec.dropout)
        self.blocks = nn.ModuleList(_Block(spec) for _ in range(spec.n_layers))
        self.norm = _norm(spec.norm, spec.d_model)
        self.head = nn.Linear(spec.d_model, spec.vocab_size, bias=False)
        self.apply(self._init)
        # Residual projections scaled by 1/sqrt(2·layers) (GPT-2), so depth does not blow up the
        # residual stream at initialisation.
        for block in self.blocks:
            for lin in (block.proj, block.mlp[2]):
                nn.init.normal_(lin.weight, std=0.02 / math.sqrt(2 * spec.n_layers))
        if spec.tied_embeddings:
            self.head.weight = self.tok.weight

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        t = idx.shape[1]
        if t > self.seq_len:
            raise ValueError(f"sequence of {t} tokens is longer than the model's seq_len "
                             f"({self.seq_len})")
        pos = torch.arange(t, device=idx.device)
        x = self.drop(self.tok(idx) + self.pos(pos))
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


# -- builders, registered by kind in optim_core.training.registry (same signature as a plug-in) ----------


def _fit(spec: MLPSpec | CNNSpec | TransformerSpec, data: DataInfo) -> None:
    # Registered data sets report their DataInfo only once built, so the fit is checked here too.
    check_fit(spec, data)


def build_mlp(options: Mapping[str, Any], *, data: DataInfo) -> nn.Module:
    spec = MLPSpec.model_validate({**options, "kind": "mlp"})
    _fit(spec, data)
    return MLP(spec, data.flat_features, data.n_outputs)


def build_cnn(options: Mapping[str, Any], *, data: DataInfo) -> nn.Module:
    spec = CNNSpec.model_validate({**options, "kind": "cnn"})
    _fit(spec, data)
    assert data.image_shape is not None
    return CNN(spec, data.image_shape, data.n_outputs)


def build_transformer(options: Mapping[str, Any], *, data: DataInfo) -> nn.Module:
    spec = TransformerSpec.model_validate({**options, "kind": "transformer"})
    _fit(spec, data)
    return TransformerLM(spec)
