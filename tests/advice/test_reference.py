"""A reference recipe carries its weight decay over (W10b), unless it is Adam's L2 (W6); and the
advice's numbers are presented at three significant digits."""

from __future__ import annotations

import math

from optim_core.advice import AdviceRequest, advise

# RoBERTa-large on a GLUE task (Liu et al. 2019, Table 10: batch 32, LR 1e-5, λ 0.1).
ROBERTA = {"task": "encoder_finetune", "architecture": "encoder_transformer",
           "param_count": 355_000_000, "batch_size": 32, "seq_len": 512,
           "dataset_size": 393_000, "epochs": 10}


def _why(advice, field: str):
    return [r for r in advice.rationale if r.field == field]


def test_reference_weight_decay_is_kept_and_flagged_for_retuning() -> None:
    ref = {"batch_size": 32, "lr": 1e-5, "weight_decay": 0.1, "optimizer": "adamw"}
    advice = advise(AdviceRequest(**ROBERTA, reference=ref))
    assert advice.optimizer.weight_decay == 0.1
    (entry,) = _why(advice, "optimizer.weight_decay")
    assert "W10b" in entry.rule_ids
    assert math.isclose(advice.optimizer.lr, 1e-5)  # same batch: no scaling


def test_reference_weight_decay_scaled_batch_still_keeps_lambda_and_warns() -> None:
    ref = {"batch_size": 16, "lr": 1e-5, "weight_decay": 0.1}
    advice = advise(AdviceRequest(**ROBERTA, reference=ref))
    assert advice.optimizer.weight_decay == 0.1
    assert advice.optimizer.lr > 1e-5  # √2 batch scaling for AdamW
    assert any("W10b" in w.rule_ids for w in advice.warnings)  # LR moved: retune λ


def test_adam_l2_weight_decay_does_not_transfer_to_adamw() -> None:
    ref = {"batch_size": 32, "lr": 1e-5, "weight_decay": 0.3, "optimizer": "adam_l2"}
    advice = advise(AdviceRequest(**ROBERTA, reference=ref))
    assert advice.optimizer.name == "adamw"
    assert advice.optimizer.weight_decay != 0.3
    assert any("W6" in w.rule_ids and "does not transfer" in w.text for w in advice.warnings)


def test_without_reference_the_encoder_default_stands() -> None:
    advice = advise(AdviceRequest(**ROBERTA))
    assert advice.optimizer.weight_decay == 0.01  # BERT's; RoBERTa's 0.1 needs the reference


def _sig_digits(x: float) -> int:
    return len(f"{x:.15g}".split("e")[0].replace(".", "").replace("-", "").strip("0"))


def test_numbers_are_presented_at_three_significant_digits() -> None:
    for req in (ROBERTA, {"task": "llm_pretrain", "architecture": "decoder_transformer",
                          "param_count": 6_700_000_000, "batch_size": 1000, "seq_len": 2048,
                          "dataset_size": 300_000_000_000, "dataset_unit": "tokens",
                          "total_steps": 140_000}):
        advice = advise(AdviceRequest(**req))
        for value in (advice.optimizer.lr, advice.optimizer.weight_decay,
                      advice.schedule.min_lr, advice.schedule.peak_lr):
            assert _sig_digits(value) <= 3, value
