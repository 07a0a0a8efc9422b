"""Large batches (O7.1 / L-LAMB / L-LLMBATCH / L-BATCH-UNIT), DeiT's linear rule (L-DEIT) and
warnings for model sizes outside the anchors' fitted range."""

from __future__ import annotations

import math

import pytest

from tests.advice.conftest import run
from tests.advice.test_rules import BERT_LAMB, ENC, LLM, ROBERTA_PT, warns

GPT3_175B = dict(task="llm_pretrain", architecture="decoder_transformer",
                 param_count=175_000_000_000, batch_size=1536, seq_len=2048,
                 dataset_size=300 * 10**9, dataset_unit="tokens", total_steps=95_000)
LLAMA_65B = dict(task="llm_pretrain", architecture="decoder_transformer",
                 param_count=65_200_000_000, batch_size=2048, seq_len=2048,
                 dataset_size=1_400 * 10**9, dataset_unit="tokens", total_steps=350_000)


@pytest.mark.parametrize("batch", [2048, 8192, 8193, 16_384, 65_536])
@pytest.mark.parametrize("spec", [GPT3_175B, LLAMA_65B, {**LLM, "architecture": "other"}])
def test_llm_pretraining_keeps_adamw_at_any_batch(spec: dict, batch: int) -> None:
    a = run(**{**spec, "batch_size": batch})
    assert a.optimizer.name == "adamw" and "L-LAMB" not in a.rules_fired
    assert ("L-LLMBATCH" in a.rules_fired) == (batch > 8192)


def test_roberta_pretraining_at_8k_sequences_is_adam_with_its_betas() -> None:
    a = run(**ROBERTA_PT)  # Liu 2019 Table 9: Adam, β2 0.98, ε 1e-6, lr 4e-4, wd 0.01
    assert a.optimizer.name == "adamw" and "L-LAMB" not in a.rules_fired
    assert a.optimizer.betas == (0.9, 0.98) and a.optimizer.eps == 1e-6
    assert max(a.optimizer.lr, 4e-4) / min(a.optimizer.lr, 4e-4) <= 3.0


@pytest.mark.parametrize("batch", [16_384, 32_768, 65_536])
def test_bert_pretraining_beyond_8k_sequences_gets_lamb(batch: int) -> None:
    a = run(**{**BERT_LAMB, "batch_size": batch})
    assert a.optimizer.name == "lamb" and "L-LAMB" in a.rules_fired


def test_tokens_typed_into_batch_size_warn() -> None:
    assert not warns(run(**LLAMA_65B), "L-BATCH-UNIT")  # 4.2M tokens: plausible
    a = run(**{**LLAMA_65B, "batch_size": 4_000_000})  # "4M" typed as sequences
    text = warns(a, "L-BATCH-UNIT")
    assert "8.19e+09 tokens" in text and "1953 sequences of 2048" in text
    assert a.optimizer.name == "adamw"


@pytest.mark.parametrize(("spec", "rid", "rng", "n_inside"), [
    ({**GPT3_175B, "param_count": 10**13}, "L-LLM-FAMILIES", "4.4e+07…2.8e+11", 3e8),
    ({**LLM, "param_count": 10_000_000}, "L-LLM-FAMILIES", "4.4e+07…2.8e+11", 3e8),
    ({**ENC, "param_count": 10**10}, "L-BERT", "1.1e+08…3.55e+08", 3e8),
    (dict(task="llm_finetune_full", param_count=10**12, batch_size=64, seq_len=512,
          dataset_size=50_000, epochs=3), "L-ALPACA", "7e+09…7e+10", 13e9),
])
def test_outside_the_anchors_warns_with_the_rule_and_range(spec: dict, rid: str, rng: str,
                                                           n_inside: float) -> None:
    a = run(**spec)
    marker = "outside the anchors'"
    text = warns(a, rid)
    assert marker in text and rng in text, text
    inside = run(**{**spec, "param_count": int(n_inside)})
    assert marker not in warns(inside, rid)
    assert a.confidence < inside.confidence


@pytest.mark.parametrize(("batch", "lr", "method"), [
    (256, 2.5e-4, "linear"), (512, 5e-4, "linear"), (1024, 1e-3, "linear"),
    (4096, 4e-3, "linear"), (16_384, 8e-3, "sqrt")])
def test_deit_linear_up_to_4096_then_sqrt(batch: int, lr: float, method: str) -> None:
    a = run(task="vision_transformer", architecture="vit", param_count=86_000_000,
            batch_size=batch, dataset_size=1_281_167, epochs=300)
    assert math.isclose(a.optimizer.lr, lr) and a.batch_scaling.method == method
