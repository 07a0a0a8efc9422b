"""The request's ``optimizer`` field: the advice follows the user's optimizer, says what O7.1
would have picked, warns where the guidelines advise against the choice, and transfers the LR by
the documented rule for the target family (docs/ADVICE.md, "Chosen optimizer")."""

from __future__ import annotations

import math
from typing import Any

import pytest

from optim_core.advice.models import Advice
from optim_core.specs.optimizer import OptimizerSpec
from tests.advice.conftest import run
from tests.advice.test_rules import CNN, ENC, LLM, T5

VIT = dict(task="vision_transformer", architecture="vit", param_count=86_000_000,
           batch_size=512, dataset_size=1_281_167, epochs=300)


def _name_text(a: Advice) -> str:
    return next(e.text for e in a.rationale if e.field == "optimizer.name")


def _warned(a: Advice, rid: str) -> str:
    return " ".join(w.text for w in a.warnings if rid in w.rule_ids)


def test_no_choice_and_the_picks_own_choice_give_the_same_numbers() -> None:
    for spec, pick in ((LLM, "adamw"), (CNN, "sgd"), (T5, "adafactor")):
        own, chosen = run(**spec), run(**spec, optimizer=pick)
        assert chosen.optimizer == own.optimizer and chosen.schedule == own.schedule
        assert "as you chose" in _name_text(chosen)


def test_a_different_choice_cites_the_user_and_o71s_pick() -> None:
    a = run(**LLM, optimizer="lion")
    assert a.optimizer.name == "lion"
    entry = next(e for e in a.rationale if e.field == "optimizer.name")
    assert "O7.1" in entry.rule_ids and "your choice" in entry.text and "adamw" in entry.text


@pytest.mark.parametrize(("spec", "opt", "rid", "word"), [
    (ENC, "adagrad", "O4.1", "stall"),
    (ENC, "adam", "W6", "decoupled decay is unavailable"),
    (ENC, "adam_l2", "W6", "prefer AdamW"),
    (LLM, "sgd", "O7.1", "transformer"),
    (VIT, "sgd", "O7.1", "transformer"),
])
def test_advised_against_choices_warn(spec: dict[str, Any], opt: str, rid: str,
                                      word: str) -> None:
    assert word in _warned(run(**spec, optimizer=opt), rid)


def test_sgd_for_a_cnn_or_adamw_for_an_llm_is_not_warned_about() -> None:
    assert not _warned(run(**CNN, optimizer="sgd"), "O7.1")
    assert not [w for w in run(**LLM, optimizer="adamw").warnings if "O4.1" in w.rule_ids]


def test_plain_adam_has_no_decay_and_its_spec_validates() -> None:
    a = run(**ENC, optimizer="adam")
    assert a.optimizer.weight_decay == 0.0
    assert a.optimizer.lr == run(**ENC).optimizer.lr  # same update as AdamW without decay
    cand = a.artefacts.trial_config["candidates"][0]["optimizer"]
    assert OptimizerSpec.model_validate(cand).weight_decay == 0.0
    assert a.artefacts.hf_training_arguments["weight_decay"] == 0.0


def test_lion_keeps_lr_times_decay() -> None:
    own, lion = run(**ENC), run(**ENC, optimizer="lion")
    assert math.isclose(lion.optimizer.lr * lion.optimizer.weight_decay,
                        own.optimizer.lr * own.optimizer.weight_decay, rel_tol=0.02)
    assert lion.optimizer.eps is None and lion.artefacts.hf_training_arguments["optim"] == \
        "lion_32bit"
    assert "from pytorch_optimizer import Lion" in lion.artefacts.pytorch


def test_sgd_for_vision_transformer_uses_goyals_rule() -> None:
    a = run(**VIT, optimizer="sgd")
    assert math.isclose(a.optimizer.lr, 0.2) and a.optimizer.momentum == 0.9  # 0.1 × 512/256
    assert "L-SGD-XFER" in a.rules_fired and a.confidence < run(**VIT).confidence


def test_sgd_for_a_cnn_keeps_goyal_and_adamw_for_a_cnn_leaves_it() -> None:
    assert run(**CNN, optimizer="sgd").schedule.name == "warmup_step"
    a = run(**CNN, optimizer="adamw")
    assert a.optimizer.lr <= 1e-3 and a.schedule.name == "warmup_cosine"
    # AdamW on a CNN: the ConvNeXt/DeiT settings, which warm up and do not clip
    assert a.schedule.warmup_steps > 0 and a.clip_norm is None and a.clip_basis == "none"


@pytest.mark.parametrize("opt", ["rmsprop", "adagrad"])
def test_rmsprop_and_adagrad_are_clamped_to_o52_with_low_confidence(opt: str) -> None:
    a = run(**CNN, optimizer=opt)
    assert 1e-4 <= a.optimizer.lr <= 1e-3 and a.confidence_label == "low"


def test_adafactor_for_t5_keeps_the_t5_recipe() -> None:
    a = run(**T5, optimizer="adafactor")
    assert a.optimizer.lr == 1e-2 and "L-T5" in a.rules_fired


def test_lion_for_t5_does_not_inherit_t5s_recipe() -> None:
    a = run(**T5, optimizer="lion")
    assert "L-T5" not in a.rules_fired and a.schedule.name == "warmup_cosine"


def test_reference_of_the_same_optimizer_is_not_transferred_again() -> None:
    ref = {"batch_size": 32, "lr": 1e-5, "optimizer": "lion", "weight_decay": 0.1}
    a = run(**ENC, optimizer="lion", reference=ref)
    assert a.optimizer.lr == 1e-5 and a.optimizer.weight_decay == 0.1
