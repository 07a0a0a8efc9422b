"""A row whose every anchor is left out transfers from related rows by a stated rule, and
clipping is decided by the remaining families' votes (recipes.py, docs/ADVICE.md)."""

from __future__ import annotations

import math

import pytest

from optim_core.advice.engine import Engine
from optim_core.advice.models import AdviceRequest
from optim_core.advice.recipes import (
    FINETUNE_PAIRS,
    ROWS,
    Anchor,
    Row,
    _clip_vote,
    table,
)

WHISPER = {"task": "seq2seq", "modality": "speech", "stage": "pretrain",
           "architecture": "encoder_decoder_transformer", "param_count": 769_000_000,
           "batch_size": 256, "dataset_size": 81_600_000, "total_steps": 1_048_576}
T5_FT = {"task": "seq2seq", "modality": "text", "stage": "finetune",
         "architecture": "encoder_decoder_transformer", "param_count": 220_000_000,
         "batch_size": 128, "seq_len": 512, "dataset_size": 1_000_000, "total_steps": 262_144}
WHISPER_FT = {**WHISPER, "stage": "finetune", "param_count": 244_000_000, "batch_size": 16,
              "dataset_size": 6540, "total_steps": 4000}


def _entry(advice, field: str) -> str:
    return next(e.text for e in advice.rationale if e.field == field)


def test_speech_without_whisper_takes_the_llm_size_law() -> None:
    eng = Engine(exclude={"whisper"})
    llm = table(frozenset({"whisper"})).get("llm_pretrain", "adamw")
    assert llm is not None and llm.coef is not None
    a0, cb, cc = llm.coef
    b = math.exp(sum(math.log(x.batch) for x in llm.anchors) / len(llm.anchors))
    advice = eng.advise(AdviceRequest(**WHISPER))
    expected = math.exp(a0 + cb * math.log(769e6) + cc * math.log(b))
    assert advice.optimizer.lr == pytest.approx(expected, rel=0.01)
    assert "llm_pretrain/adamw's size law" in _entry(advice, "optimizer.lr")
    # the law falls with size, as Whisper's own table does
    small = eng.advise(AdviceRequest(**{**WHISPER, "param_count": 39_000_000}))
    assert small.optimizer.lr > 2 * advice.optimizer.lr


def test_t5_finetune_without_t5_is_its_pretraining_lr_times_the_families_ratio() -> None:
    fitted = table(frozenset({"t5"})).get("t5_finetune", "adafactor")
    assert fitted is not None and fitted.ratio is not None
    assert "t5" not in fitted.ratio_families  # the excluded family's own pair is not used
    ratios = sorted(p.finetune_lr / p.pretrain_lr for p in FINETUNE_PAIRS
                    if "t5" not in p.families)
    assert ratios[0] <= fitted.ratio <= ratios[-1]
    advice = Engine(exclude={"t5"}).advise(AdviceRequest(**T5_FT))
    # T5's pre-training row has no anchor left either: Adafactor's own 1e-2, times the ratio
    assert advice.optimizer.lr == pytest.approx(1e-2 * fitted.ratio, rel=0.01)
    assert "fine-tune / pre-train" in _entry(advice, "optimizer.lr")


def test_speech_finetune_without_whisper_pools_other_fine_tuning_rows() -> None:
    advice = Engine(exclude={"whisper"}).advise(AdviceRequest(**WHISPER_FT))
    t = table(frozenset({"whisper"}))
    lrs = sorted(a.lr for rid in ("encoder_finetune", "llm_sft")
                 for a in t.native[rid].anchors)
    assert lrs[0] <= advice.optimizer.lr <= lrs[-1]
    assert "log-median LR" in _entry(advice, "optimizer.lr")


def test_the_service_engine_never_uses_a_fallback() -> None:
    t = table()
    for r in ROWS:
        f = t.get(r.regime, r.optimizer)
        assert f is not None
        assert f.source is None and f.pooled_lr is None and f.ratio is None, r.id


def test_mlm_shares_the_llm_size_exponent() -> None:
    t = table()
    llm, mlm = t.get("llm_pretrain", "adamw"), t.get("mlm_pretrain", "adamw")
    assert llm is not None and mlm is not None and llm.coef and mlm.coef
    assert mlm.coef[1] == llm.coef[1]
    assert 0.0 <= mlm.coef[2] <= 0.5


def _row(unstated: float | None) -> Row:
    return Row("x/adamw", "x", "adamw", (), "median", (), 1e-3, "test",
               unstated_clip=unstated)


def _a(family: str, clip: float | None) -> Anchor:
    return Anchor(family, "test", 1e-3, clip=clip)


@pytest.mark.parametrize(("anchors", "unstated", "expected"), [
    # one vote per family: a family with many sizes does not outvote two others
    ([_a("a", 1.0), _a("a", 1.0), _a("a", 1.0), _a("b", 0.0), _a("c", 0.0)], 1.0,
     (None, "none")),
    # a tie takes the domain default: language clips (like the clipping half) ...
    ([_a("a", 2.0), _a("b", 0.0)], 1.0, (2.0, "recipe")),
    # ... vision does not
    ([_a("a", 5.0), _a("b", 0.0)], None, (None, "none")),
    # nothing stated: the safety default, or none in vision
    ([_a("a", None)], 1.0, (1.0, "safety_default")),
    ([_a("a", None)], None, (None, "none")),
])
def test_clip_vote(anchors: list[Anchor], unstated: float | None,
                   expected: tuple[float | None, str]) -> None:
    assert _clip_vote(_row(unstated), tuple(anchors)) == expected
