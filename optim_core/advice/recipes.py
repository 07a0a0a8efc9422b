"""The recipe table: one row per (regime, optimizer), each built from published anchors.

A *regime* is what the request describes once its task, stage, modality, architecture and
memory budget are resolved (``regime_of``). A *row* says, for one regime and one optimizer, how
every value of the advice is chosen: the LR method and its anchors (published runs, each tagged
with its model family and source), betas/eps/momentum, weight decay, warmup, schedule shape,
clipping (and whether that clip is the recipe's or a safety default), confidence and its
adjustments. The engine (``engine.py``) reads rows and quotes their parameters; it holds no
numbers of its own.

Anchors are *fitted*: a row's LR is the median (or a log-log least-squares fit over model size
and batch) of its anchors, so excluding a family (``Table(exclude=...)``) refits the row without
it. When every anchor of a row is excluded, the row falls back to its ``fallback`` — a guideline
value (GUIDELINES.md, the optimizer's own defaults) that was not fitted to any family.

docs/ADVICE.md explains each row and where it stops holding.
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
from bisect import bisect_left, bisect_right
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from functools import cache, cached_property
from typing import Literal

LrMethod = Literal["fit", "per_batch_linear", "per_batch_sqrt", "median"]
ScheduleKind = Literal["warmup_cosine", "warmup_linear", "warmup_step", "linear_warmup",
                       "inverse_sqrt", "constant"]
ClipBasis = Literal["recipe", "safety_default", "none"]
# How a row with every anchor excluded gets its LR: its own guideline constant, or a transfer from
# related rows by a stated principle (docs/ADVICE.md, "When a family is left out").
FallbackRule = Literal["constant", "law", "pool", "ratio"]


@dataclass(frozen=True)
class Anchor:
    """One published run: the LR it used and what it was used at."""

    family: str                      # model family (the unit left out by leave-one-family-out)
    source: str                      # paper/table or config file the numbers were read from
    lr: float
    params: float | None = None      # model size (parameters)
    batch: float | None = None       # global batch, in the row's batch unit
    weight_decay: float | None = None
    warmup: float | None = None      # fraction of the run
    clip: float | None = None        # 0.0: the recipe did not clip; None: not stated


@dataclass(frozen=True)
class Lora:
    r: int
    alpha: int
    dropout: float
    target_modules: tuple[str, ...]
    source: str


@dataclass(frozen=True)
class Row:
    id: str
    regime: str
    optimizer: str
    sources: tuple[str, ...]         # rule ids (rules.py) this row cites
    lr_method: LrMethod
    anchors: tuple[Anchor, ...]
    fallback_lr: float               # not fitted: used when every anchor is excluded
    fallback_source: str
    batch_unit: Literal["examples", "tokens"] = "examples"
    weight_decay: float | None = None  # None: the anchors' median
    betas: tuple[float, float] | None = None
    eps: float | None = None
    momentum: float | None = None
    schedule: ScheduleKind = "warmup_cosine"
    min_lr_ratio: float = 0.0
    warmup_steps: int | None = None  # a fixed warmup in steps (O6.4) instead of a fraction
    warmup_epochs: float | None = None
    warmup_fraction: float | None = None  # None: the anchors' median
    warmup_above_batch: int | None = None  # warmup only above this batch (Goyal 2017)
    milestones: tuple[float, ...] = ()   # warmup_step: decay points as fractions of the run
    gamma: float = 0.1
    clip: float | None = None        # None: the anchors decide (majority of stated clips)
    clip_basis: ClipBasis | None = None
    confidence: float = 0.85
    lion_divisor: float = 3.0        # Chen 2023: LR ÷ k, λ × k for Lion (k by regime)
    linear_max_batch: float | None = None  # per_batch_linear holds up to here; √ beyond
    lr_floor_factor: float = 1 / 16  # batch factor clamp (both rules fail far from anchors)
    lr_ceiling_factor: float = 32.0
    lora: Lora | None = None
    # Clip when no anchor states one: O7.4's τ as a safety default, except where the domain's
    # recipes do not clip (vision: DeiT, ConvNeXt, MAE, ResNets; Adafactor clips its own update)
    unstated_clip: float | None = 1.0
    fallback_per_batch: bool = False  # fallback_lr is per unit of batch (linear rules)
    # "law": the size law of fallback_from[0] (its fit at the request's N, its anchors' batch);
    # "pool": the log-median LR of every remaining anchor of the fallback_from rows;
    # "ratio": fallback_from[0]'s LR × the fine-tune / pre-train ratio fitted across families.
    fallback_rule: FallbackRule = "constant"
    fallback_from: tuple[str, ...] = ()
    # The size exponent of ln η on ln N taken from another row's fit (the row refits only its
    # intercept and batch slope): see shared_size_slope().
    size_slope_from: str | None = None
    holds: str = ""                  # where the row stops holding (docs/ADVICE.md quotes it)


# --------------------------------------------------------------------------- anchors

_GPT3 = "Brown et al. 2020, GPT-3, Table 2.1"
_OPT = "Zhang et al. 2022, OPT, Table 1"
_PYTHIA = "Biderman et al. 2023, Pythia, Table 1/App. E"
_LLAMA = "Touvron et al. 2023, LLaMA, Table 2"
_LLAMA2 = "Touvron et al. 2023, Llama 2, Table 1"
_GOPHER = "Rae et al. 2021, Gopher, Table 1"


def _llm(family: str, source: str, rows: Iterable[tuple[float, float, float]],
         wd: float | None = 0.1) -> tuple[Anchor, ...]:
    return tuple(Anchor(family, source, lr, params=n, batch=b, weight_decay=wd, clip=1.0)
                 for n, lr, b in rows)


LLM_PRETRAIN_ANCHORS: tuple[Anchor, ...] = (
    *_llm("gpt3", _GPT3, [(125e6, 6e-4, 0.5e6), (350e6, 3e-4, 0.5e6), (760e6, 2.5e-4, 0.5e6),
                         (1.3e9, 2e-4, 1e6), (2.7e9, 1.6e-4, 1e6), (6.7e9, 1.2e-4, 2e6),
                         (13e9, 1e-4, 2e6), (175e9, 0.6e-4, 3.2e6)]),
    *_llm("opt", _OPT, [(125e6, 6e-4, 0.5e6), (350e6, 3e-4, 0.5e6), (1.3e9, 2e-4, 1e6),
                       (2.7e9, 1.6e-4, 1e6), (6.7e9, 1.2e-4, 2e6), (13e9, 1e-4, 4e6),
                       (30e9, 1e-4, 4e6), (66e9, 0.8e-4, 2e6), (175e9, 1.2e-4, 2e6)]),
    *_llm("pythia", _PYTHIA, [(70e6, 1e-3, 2.1e6), (160e6, 6e-4, 2.1e6), (410e6, 3e-4, 2.1e6),
                             (1.0e9, 3e-4, 2.1e6), (1.4e9, 2e-4, 2.1e6), (2.8e9, 1.6e-4, 2.1e6),
                             (6.9e9, 1.2e-4, 2.1e6), (12e9, 1.2e-4, 2.1e6)], wd=0.01),
    *_llm("llama", _LLAMA, [(6.7e9, 3e-4, 4e6), (13e9, 3e-4, 4e6), (32.5e9, 1.5e-4, 4e6),
                           (65.2e9, 1.5e-4, 4e6)]),
    *_llm("llama2", _LLAMA2, [(7e9, 3e-4, 4e6), (13e9, 3e-4, 4e6), (34e9, 1.5e-4, 4e6),
                             (70e9, 1.5e-4, 4e6)]),
    *_llm("gopher", _GOPHER, [(44e6, 6e-4, 0.25e6), (117e6, 6e-4, 0.25e6),
                             (417e6, 2e-4, 0.25e6), (1.4e9, 2e-4, 0.25e6),
                             (7.1e9, 1.2e-4, 2e6), (280e9, 4e-5, 3e6)], wd=None),
    *_llm("chinchilla", "Hoffmann et al. 2022, Chinchilla, §4 / Table 4",
          [(70e9, 1e-4, 1.5e6)], wd=None),
    *_llm("bloom", "BigScience 2022, BLOOM, §3.5 (176B)", [(176e9, 6e-5, 4.2e6)]),
    *_llm("gpt-neox", "Black et al. 2022, GPT-NeoX-20B, §3", [(20e9, 0.97e-4, 3.15e6)],
          wd=0.01),
    *_llm("deepseek", "DeepSeek-AI 2024, DeepSeek LLM, Table 2",
          [(7e9, 4.2e-4, 9.4e6), (67e9, 3.2e-4, 18.9e6)]),
    *_llm("olmo", "Groeneveld et al. 2024, OLMo, Table 5", [(1.2e9, 4e-4, 4e6),
                                                            (6.9e9, 3e-4, 4e6)]),
    *_llm("tinyllama", "Zhang et al. 2024, TinyLlama, §2.3", [(1.1e9, 4e-4, 2.1e6)]),
)

MLM_PRETRAIN_ANCHORS: tuple[Anchor, ...] = (
    Anchor("bert", "Devlin et al. 2019, BERT, §A.2", 1e-4, params=110e6, batch=256,
           weight_decay=0.01, warmup=0.01, clip=1.0),
    Anchor("bert", "Devlin et al. 2019, BERT, §A.2", 1e-4, params=340e6, batch=256,
           weight_decay=0.01, warmup=0.01, clip=1.0),
    Anchor("roberta", "Liu et al. 2019, RoBERTa, Table 9", 6e-4, params=125e6, batch=8192,
           weight_decay=0.01, warmup=0.048, clip=0.0),
    Anchor("roberta", "Liu et al. 2019, RoBERTa, Table 9", 4e-4, params=355e6, batch=8192,
           weight_decay=0.01, warmup=0.06, clip=0.0),
    Anchor("electra", "Clark et al. 2020, ELECTRA, Table 6", 5e-4, params=14e6, batch=128,
           weight_decay=0.01, warmup=0.01, clip=1.0),
    Anchor("electra", "Clark et al. 2020, ELECTRA, Table 6", 2e-4, params=110e6, batch=256,
           weight_decay=0.01, warmup=0.013, clip=1.0),
    Anchor("electra", "Clark et al. 2020, ELECTRA, Table 6", 2e-4, params=335e6, batch=2048,
           weight_decay=0.01, warmup=0.025, clip=1.0),
)

_NV_LAMB = ("You et al. 2020 (LAMB) as run in NVIDIA DeepLearningExamples BERT "
            "run_pretraining.sh defaults")
LAMB_MLM_ANCHORS: tuple[Anchor, ...] = (
    Anchor("bert", _NV_LAMB + " (phase 1, seq 128)", 6e-3, params=340e6, batch=65536,
           weight_decay=0.01, warmup=0.2843, clip=1.0),
    Anchor("bert", _NV_LAMB + " (phase 2, seq 512)", 4e-3, params=340e6, batch=32768,
           weight_decay=0.01, warmup=0.128, clip=1.0),
)

ENCODER_FT_ANCHORS: tuple[Anchor, ...] = (
    # BERT's grid {5e-5, 4e-5, 3e-5, 2e-5}: its geometric middle, 3.2e-5
    Anchor("bert", "Devlin et al. 2019, §A.3 (grid 2e-5…5e-5)", 3.2e-5, params=110e6, batch=32,
           weight_decay=0.01, warmup=0.1, clip=1.0),
    Anchor("bert", "Devlin et al. 2019, §4.2 SQuAD v1.1", 5e-5, params=340e6, batch=32,
           weight_decay=0.01, warmup=0.1, clip=1.0),
    Anchor("roberta", "Liu et al. 2019, Table 10 (grid 1e-5…3e-5)", 1.7e-5, params=355e6,
           batch=32, weight_decay=0.1, warmup=0.06, clip=0.0),
    Anchor("electra", "Clark et al. 2020, Table 7 (GLUE, base)", 1e-4, params=110e6, batch=32,
           weight_decay=0.0, warmup=0.1, clip=1.0),
    Anchor("electra", "Clark et al. 2020, Table 7 (GLUE, large)", 5e-5, params=335e6, batch=32,
           weight_decay=0.0, warmup=0.1, clip=1.0),
)

T5_PRETRAIN_ANCHORS = (Anchor("t5", "Raffel et al. 2020, T5, §3.1.2", 1e-2, params=220e6,
                              batch=128, weight_decay=0.0, clip=0.0),)
T5_FINETUNE_ANCHORS = (Anchor("t5", "Raffel et al. 2020, T5, §3.1.3", 1e-3, params=220e6,
                              batch=128, weight_decay=0.0, clip=0.0),)

_WHISPER = "Radford et al. 2022, Whisper, App. F Tables 17-18"
SPEECH_PRETRAIN_ANCHORS: tuple[Anchor, ...] = tuple(
    Anchor("whisper", _WHISPER, lr, params=n, batch=256, weight_decay=0.1, warmup=0.002,
           clip=1.0)
    for n, lr in ((39e6, 1.5e-3), (74e6, 1e-3), (244e6, 5e-4), (769e6, 2.5e-4),
                  (1550e6, 1.75e-4)))
SPEECH_FT_ANCHORS = (Anchor("whisper", "Gandhi 2022, 'Fine-Tune Whisper' (Hugging Face blog)",
                            1e-5, params=244e6, batch=16, weight_decay=0.0, warmup=0.125,
                            clip=1.0),)

# Per-batch rules: lr/batch is what the papers state (DeiT: 5e-4 × B/512).
VISION_ADAMW_ANCHORS: tuple[Anchor, ...] = (
    Anchor("deit", "Touvron et al. 2021, DeiT, Table 9", 1e-3, batch=1024, weight_decay=0.05,
           warmup=5 / 300, clip=0.0),
    Anchor("swin", "Liu et al. 2021, Swin, App. A2.1", 1e-3, batch=1024, weight_decay=0.05,
           warmup=20 / 300, clip=5.0),
    Anchor("convnext", "Liu et al. 2022, ConvNeXt, Table 5 (ImageNet-1K)", 4e-3, batch=4096,
           weight_decay=0.05, warmup=20 / 300, clip=0.0),
    Anchor("vit", "Dosovitskiy et al. 2021, ViT, Table 3 (ImageNet, 300 epochs)", 3e-3,
           batch=4096, weight_decay=0.3, warmup=10_000 / 93_600, clip=1.0),
    Anchor("mae", "He et al. 2022, MAE, App. A.1 (pre-training: 1.5e-4 × B/256)", 2.4e-3,
           batch=4096, weight_decay=0.05, warmup=40 / 800, clip=0.0),
)
VISION_FT_ANCHORS: tuple[Anchor, ...] = (
    Anchor("mae", "He et al. 2022, MAE, App. A.2 (fine-tuning ViT-B: 5e-4 × B/256)", 2e-3,
           batch=1024, weight_decay=0.05, warmup=5 / 100, clip=0.0),
    Anchor("convnext", "Liu et al. 2022, ConvNeXt, Table 6 (22K → 1K fine-tuning)", 5e-5,
           batch=512, weight_decay=1e-8, warmup=0.0, clip=0.0),
)
VISION_FT_SGD_ANCHORS = (Anchor("bit", "Kolesnikov et al. 2020, BiT, §3.3 (BiT-HyperRule)",
                                3e-3, batch=512, weight_decay=0.0, clip=0.0),)

CNN_IMAGENET_ANCHORS: tuple[Anchor, ...] = (
    Anchor("resnet", "He et al. 2016 §3.4; Goyal et al. 2017 §2.1", 0.1, batch=256,
           weight_decay=1e-4, clip=0.0),
    Anchor("resnext", "Xie et al. 2017, ResNeXt, §4", 0.1, batch=256, weight_decay=1e-4,
           clip=0.0),
    Anchor("densenet", "Huang et al. 2017, DenseNet, §4.2 (ImageNet)", 0.1, batch=256,
           weight_decay=1e-4, clip=0.0),
)
CNN_NOBN_ANCHORS: tuple[Anchor, ...] = (
    Anchor("alexnet", "Krizhevsky et al. 2012, AlexNet, §5", 0.01, batch=128,
           weight_decay=5e-4, clip=0.0),
    Anchor("vgg", "Simonyan & Zisserman 2015, VGG, §3.1", 0.01, batch=256, weight_decay=5e-4,
           clip=0.0),
)
CNN_SMALL_ANCHORS: tuple[Anchor, ...] = (
    Anchor("resnet", "He et al. 2016, §4.2 (CIFAR-10)", 0.1, batch=128, weight_decay=1e-4,
           warmup=0.0, clip=0.0),
    Anchor("wide-resnet", "Zagoruyko & Komodakis 2016, WRN, §3", 0.1, batch=128,
           weight_decay=5e-4, warmup=0.0, clip=0.0),
    Anchor("densenet", "Huang et al. 2017, DenseNet, §4.2 (CIFAR)", 0.1, batch=64,
           weight_decay=1e-4, warmup=0.0, clip=0.0),
    Anchor("resnext", "Xie et al. 2017, ResNeXt, §5.3 (CIFAR)", 0.1, batch=128,
           weight_decay=5e-4, warmup=0.0, clip=0.0),
)
CNN_LARS_ANCHORS: tuple[Anchor, ...] = (
    Anchor("simclr", "Chen et al. 2020, SimCLR, §B.1 (0.3 × B/256)", 4.8, batch=4096,
           weight_decay=1e-6, warmup=10 / 100, clip=0.0),
    Anchor("byol", "Grill et al. 2020, BYOL, §C (0.2 × B/256)", 3.2, batch=4096,
           weight_decay=1.5e-6, warmup=10 / 1000, clip=0.0),
)

SFT_ANCHORS: tuple[Anchor, ...] = (
    Anchor("alpaca", "Taori et al. 2023, Stanford Alpaca README", 2e-5, params=7e9, batch=128,
           weight_decay=0.0, warmup=0.03, clip=1.0),
    Anchor("alpaca", "Taori et al. 2023, Stanford Alpaca README", 1e-5, params=13e9,
           batch=128, weight_decay=0.0, warmup=0.03, clip=1.0),
    Anchor("vicuna", "Chiang et al. 2023, Vicuna (FastChat train script)", 2e-5, params=13e9,
           batch=128, weight_decay=0.0, warmup=0.03, clip=1.0),
    Anchor("tulu", "Ivison et al. 2023, Tulu 2, §3", 2e-5, params=7e9, batch=128,
           weight_decay=0.0, warmup=0.03),
    Anchor("tulu", "Ivison et al. 2023, Tulu 2, §3", 1e-5, params=70e9, batch=128,
           weight_decay=0.0, warmup=0.03),
    Anchor("lima", "Zhou et al. 2023, LIMA, §3", 1e-5, params=65e9, batch=32,
           weight_decay=0.1, warmup=0.0),
    Anchor("llava", "Liu et al. 2023, LLaVA-1.5 (stage 2 fine-tuning)", 2e-5, params=13e9,
           batch=128, weight_decay=0.0, warmup=0.03, clip=1.0),
)
LORA_ANCHORS: tuple[Anchor, ...] = (
    Anchor("lora", "Hu et al. 2021, LoRA, Table 11 (GPT-2 M, E2E)", 2e-4, params=355e6,
           batch=8, weight_decay=0.01, warmup=0.02),
    Anchor("lora", "Hu et al. 2021, LoRA, Table 9 (RoBERTa-base, MNLI)", 5e-4, params=125e6,
           batch=16, weight_decay=0.01, warmup=0.06),
    Anchor("alpaca-lora", "tloen/alpaca-lora finetune.py defaults", 3e-4, params=7e9,
           batch=128, weight_decay=0.0, warmup=0.08, clip=1.0),
)
QLORA_ANCHORS: tuple[Anchor, ...] = tuple(
    Anchor("qlora", "Dettmers et al. 2023, QLoRA, App. B.2 Table 9", lr, params=n, batch=b,
           weight_decay=0.0, warmup=0.03, clip=0.3)
    for n, lr, b in ((7e9, 2e-4, 16), (13e9, 2e-4, 16), (33e9, 1e-4, 32), (65e9, 1e-4, 64)))
DPO_ANCHORS: tuple[Anchor, ...] = (
    Anchor("zephyr", "Tunstall et al. 2023, Zephyr, §4", 5e-7, params=7e9, batch=32,
           weight_decay=0.0, warmup=0.1, clip=1.0),
    Anchor("tulu", "Ivison et al. 2023, Tulu 2, §3 (DPO)", 5e-7, params=70e9, batch=32,
           weight_decay=0.0, warmup=0.1),
)
DPO_RMSPROP_ANCHORS = (Anchor("dpo", "Rafailov et al. 2023, DPO, App. B", 1e-6, params=2.8e9,
                              batch=64, weight_decay=0.0, clip=10.0),)
PROJECTOR_ANCHORS: tuple[Anchor, ...] = (
    Anchor("llava", "Liu et al. 2023, LLaVA, §5 (stage 1)", 2e-3, batch=128, weight_decay=0.0,
           warmup=0.03),
    Anchor("llava", "Liu et al. 2023, LLaVA-1.5, App. (stage 1)", 1e-3, batch=256,
           weight_decay=0.0, warmup=0.03),
)


@dataclass(frozen=True)
class Pair:
    """One family's published pre-training LR and its own fine-tuning LR of the same model
    (both read from the anchors above; per example where the family's rule is per batch)."""

    families: tuple[str, ...]        # every family the pair's numbers come from
    pretrain_lr: float
    finetune_lr: float
    source: str


# Fine-tuning LR / pre-training LR, one pair per family (the unit left out). Fitted across
# families, it moves a regime's pre-training LR to its fine-tuning when the fine-tuning
# recipes of that family are excluded (the "ratio" fallback).
FINETUNE_PAIRS: tuple[Pair, ...] = (
    Pair(("bert",), 1e-4, 3.2e-5, "BERT-base: §A.2 pre-training, §A.3 grid middle"),
    Pair(("electra",), 2e-4, 7.1e-5, "ELECTRA base/large: Table 6 / Table 7 (1e-4, 5e-5)"),
    Pair(("roberta",), 4e-4, 1.7e-5, "RoBERTa-large: Table 9 / Table 10"),
    Pair(("t5",), 1e-2, 1e-3, "T5-base: §3.1.2 / §3.1.3"),
    Pair(("whisper",), 5e-4, 1e-5, "Whisper small: Table 17 / Gandhi 2022"),
    Pair(("llama", "alpaca"), 3e-4, 2e-5, "LLaMA-7B Table 2 / Alpaca 7B"),
    Pair(("llama2", "tulu"), 1.5e-4, 1e-5, "Llama 2 70B Table 1 / Tulu 2 70B"),
    Pair(("convnext",), 4e-3 / 4096, 5e-5 / 512, "ConvNeXt-B: Table 5 / Table 6, per example"),
    Pair(("mae",), 1.5e-4 / 256, 5e-4 / 256, "MAE ViT-B: App. A.1 / A.2, per example"),
)

# --------------------------------------------------------------------------- rows

_O52 = "O5.2's upper end (Adam's 1e-3 default), not fitted to a family"
_LORA_QV = Lora(8, 16, 0.05, ("q_proj", "v_proj"),
                "Hu et al. 2021 §7.1 (W_q, W_v under a budget; r 4-8); alpha 16 / dropout "
                "0.05 as tloen/alpaca-lora")
_LORA_ALL = Lora(64, 16, 0.1, ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                               "up_proj", "down_proj"),
                 "Dettmers et al. 2023 QLoRA App. B.2: r 64, alpha 16, every linear layer; "
                 "dropout 0.1 up to 13B (0.05 at 33B/65B)")

ROWS: tuple[Row, ...] = (
    Row("llm_pretrain/adamw", "llm_pretrain", "adamw",
        ("L-LLM-FAMILIES", "L-DEEPSEEK", "O6.4", "O7.2", "O7.4"), "fit",
        LLM_PRETRAIN_ANCHORS, 3e-4, "O7.2's pre-training range top", batch_unit="tokens",
        weight_decay=0.1, betas=(0.9, 0.95), eps=1e-8, warmup_steps=2000, min_lr_ratio=0.1,
        clip=1.0, clip_basis="recipe",
        holds="decoder LMs 40M-280B at 0.25M-19M tokens per batch, standard parametrisation; "
              "not μP, not beyond the anchors' sizes"),
    Row("mlm_pretrain/adamw", "mlm_pretrain", "adamw", ("L-BERT", "L-ROBERTA", "L-ELECTRA"),
        "fit", MLM_PRETRAIN_ANCHORS, 1e-4, "O7.2's pre-training range", weight_decay=0.01,
        betas=(0.9, 0.98), eps=1e-6, schedule="warmup_linear",
        size_slope_from="llm_pretrain/adamw",
        holds="BERT-style encoders 14M-355M at 128-8k sequences"),
    Row("mlm_pretrain/lamb", "mlm_pretrain", "lamb", ("L-LAMB",), "per_batch_sqrt",
        LAMB_MLM_ANCHORS, 0.0, "the AdamW row √-scaled (no LAMB anchor left)",
        weight_decay=0.01, betas=(0.9, 0.999), eps=1e-6, schedule="warmup_linear",
        holds="BERT-large at 32k-64k sequences (NVIDIA's LAMB defaults)"),
    Row("encoder_finetune/adamw", "encoder_finetune", "adamw",
        ("L-BERT", "L-ROBERTA", "L-ELECTRA"), "fit", ENCODER_FT_ANCHORS, 5e-5,
        "O7.2's fine-tuning range top", weight_decay=0.01, betas=(0.9, 0.999), eps=1e-8,
        schedule="warmup_linear", holds="GLUE/SQuAD-style fine-tuning of 100M-400M encoders"),
    Row("t5_pretrain/adafactor", "t5_pretrain", "adafactor", ("L-T5",), "median",
        T5_PRETRAIN_ANCHORS, 1e-2, "Adafactor's relative-step ceiling 1e-2 (Shazeer & "
        "Stern 2018)", weight_decay=0.0, schedule="inverse_sqrt", warmup_steps=10_000,
        clip=None, holds="T5-family text encoder-decoders"),
    Row("t5_finetune/adafactor", "t5_finetune", "adafactor", ("L-T5",), "median",
        T5_FINETUNE_ANCHORS, 1e-2, "Adafactor's relative-step ceiling 1e-2",
        weight_decay=0.0, schedule="constant", fallback_rule="ratio",
        fallback_from=("t5_pretrain/adafactor",), holds="T5-family fine-tuning"),
    Row("speech_pretrain/adamw", "speech_pretrain", "adamw", ("L-WHISPER",), "fit",
        SPEECH_PRETRAIN_ANCHORS, 1e-3, _O52, weight_decay=0.1, betas=(0.9, 0.98), eps=1e-6,
        schedule="warmup_linear", warmup_steps=2048, fallback_rule="law",
        fallback_from=("llm_pretrain/adamw",),
        holds="speech encoder-decoders (Whisper) 39M-1.5B at batch 256"),
    Row("speech_finetune/adamw", "speech_finetune", "adamw", ("L-WHISPER",), "median",
        SPEECH_FT_ANCHORS, 3e-5, "O7.2's fine-tuning range middle", betas=(0.9, 0.999),
        eps=1e-8, schedule="warmup_linear", warmup_steps=500, fallback_rule="pool",
        fallback_from=("encoder_finetune/adamw", "llm_sft/adamw"),
        holds="fine-tuning a pre-trained Whisper checkpoint on one language"),
    Row("vision_adamw/adamw", "vision_adamw", "adamw",
        ("L-DEIT", "L-SWIN", "L-CONVNEXT", "L-VIT", "L-MAE"), "per_batch_linear",
        VISION_ADAMW_ANCHORS, 1e-3, _O52, betas=(0.9, 0.999), eps=1e-8,
        linear_max_batch=4096, lion_divisor=10.0,
        unstated_clip=None, holds="ViT/DeiT/Swin and ConvNeXt (AdamW) on ImageNet from scratch, batch 512-4096"),
    Row("vision_finetune/adamw", "vision_finetune", "adamw", ("L-MAE", "L-CONVNEXT"),
        "per_batch_linear", VISION_FT_ANCHORS[:1], 1e-4, "O7.2 scaled to vision (not fitted)",
        betas=(0.9, 0.999), eps=1e-8, linear_max_batch=4096, lion_divisor=10.0,
        confidence=0.6, fallback_rule="ratio", fallback_from=("vision_adamw/adamw",),
        unstated_clip=None, holds="depends on the pre-training: MAE (self-supervised) fine-tunes ~40× higher "
              "than supervised 22K→1K transfer"),
    Row("cnn_finetune/sgd", "cnn_finetune", "sgd", ("L-BIT",), "per_batch_linear",
        VISION_FT_SGD_ANCHORS, 0.01, "W11's SGD(lr=0.01)", weight_decay=0.0, momentum=0.9,
        schedule="warmup_step", milestones=(0.3, 0.6, 0.9), warmup_fraction=0.0,
        unstated_clip=None, holds="BiT-style transfer with SGD"),
    Row("cnn_finetune/adamw", "cnn_finetune", "adamw", ("L-CONVNEXT",), "per_batch_linear",
        VISION_FT_ANCHORS[1:], 1e-4, "O7.2 scaled to vision (not fitted)", betas=(0.9, 0.999),
        eps=1e-8, linear_max_batch=4096, lion_divisor=10.0, confidence=0.6,
        fallback_rule="ratio", fallback_from=("cnn_imagenet/adamw",),
        unstated_clip=None, holds="supervised 22K→1K transfer of a ConvNeXt with AdamW"),
    Row("cnn_imagenet/sgd", "cnn_imagenet", "sgd", ("L-HE16", "L-GOYAL17", "O2.2b", "W4"),
        "per_batch_linear", CNN_IMAGENET_ANCHORS, 0.1 / 256, "O2.2b's linear rule from 0.1 per 256",
        momentum=0.9, schedule="warmup_step", milestones=(1 / 3, 2 / 3, 8 / 9),
        warmup_epochs=5, warmup_above_batch=256, linear_max_batch=8192,
        fallback_per_batch=True,
        unstated_clip=None, holds="BatchNorm CNNs on ImageNet-size data, batch ≤ 8k (Goyal)"),
    Row("cnn_nobn/sgd", "cnn_nobn", "sgd", ("L-ALEXNET", "L-VGG", "O2.2b"), "per_batch_linear",
        CNN_NOBN_ANCHORS, 0.01 / 256, "W11's SGD(lr=0.01) per 256", momentum=0.9, schedule="warmup_step",
        milestones=(1 / 3, 2 / 3, 8 / 9), warmup_fraction=0.0, linear_max_batch=8192,
        fallback_per_batch=True,
        unstated_clip=None, holds="CNNs without BatchNorm (AlexNet/VGG era)"),
    Row("cnn_small/sgd", "cnn_small", "sgd", ("L-CIFAR", "W7b", "O2.2b"), "per_batch_linear",
        CNN_SMALL_ANCHORS, 0.1 / 256, "Goyal's 0.1 per 256 (not fitted to CIFAR)",
        momentum=0.9, schedule="warmup_step", milestones=(0.5, 0.75), linear_max_batch=1024,
        fallback_per_batch=True,
        unstated_clip=None, holds="CIFAR-scale data (< 2e5 examples), BatchNorm ResNets/WRN/DenseNet"),
    Row("cnn_imagenet/adamw", "cnn_imagenet", "adamw", ("L-CONVNEXT", "L-DEIT"),
        "per_batch_linear", VISION_ADAMW_ANCHORS, 1e-3, _O52, betas=(0.9, 0.999), eps=1e-8,
        linear_max_batch=4096, lion_divisor=10.0,
        unstated_clip=None, holds="modern CNNs trained as ViTs are (ConvNeXt): the DeiT family of settings"),
    Row("cnn_imagenet/lars", "cnn_imagenet", "lars", ("L-LARS",), "per_batch_linear",
        CNN_LARS_ANCHORS, 0.1 / 256, "Goyal's SGD 0.1 per 256 (LARS is SGD + trust ratio)",
        momentum=0.9, linear_max_batch=4096,
        fallback_per_batch=True,
        unstated_clip=None, holds="large-batch (4k-32k) ResNets: SimCLR/BYOL self-supervised recipes"),
    Row("llm_sft/adamw", "llm_sft", "adamw",
        ("L-ALPACA", "L-VICUNA", "L-TULU", "L-LIMA", "O7.2"), "fit", SFT_ANCHORS, 2e-5,
        "O7.2's fine-tuning range", betas=(0.9, 0.999), eps=1e-8,
        holds="instruction tuning of 7B-70B decoders, 1-15 epochs"),
    Row("llm_lora/adamw", "llm_lora", "adamw", ("L-LORA",), "median", LORA_ANCHORS, 2e-4,
        "Dettmers 2023 (QLoRA) 2e-4", betas=(0.9, 0.999), eps=1e-8, schedule="warmup_linear",
        lora=_LORA_QV, holds="LoRA adapters (r 4-64) on 100M-13B models"),
    Row("llm_qlora/adamw", "llm_qlora", "adamw", ("L-QLORA",), "fit", QLORA_ANCHORS, 2e-4,
        "L-LORA's 2e-4", betas=(0.9, 0.999), eps=1e-8, schedule="linear_warmup",
        lora=_LORA_ALL, holds="4-bit base + LoRA on every linear layer, 7B-65B"),
    Row("llm_preference/adamw", "llm_preference", "adamw", ("L-DPO", "L-ZEPHYR", "L-TULU"),
        "median", DPO_ANCHORS, 1e-6, "Rafailov 2023's 1e-6 (DPO, RMSprop)",
        betas=(0.9, 0.999), eps=1e-8, schedule="warmup_linear", confidence=0.7,
        holds="DPO-style preference tuning (β ~ 0.1) of 7B-70B SFT models"),
    Row("llm_preference/rmsprop", "llm_preference", "rmsprop", ("L-DPO",), "median",
        DPO_RMSPROP_ANCHORS, 5e-7, "the AdamW DPO recipes' 5e-7", weight_decay=0.0,
        betas=(0.0, 0.99), eps=1e-8, schedule="linear_warmup", warmup_steps=150,
        confidence=0.6, holds="the DPO paper's own RMSprop setting"),
    Row("mm_projector/adamw", "mm_projector", "adamw", ("L-LLAVA",), "median",
        PROJECTOR_ANCHORS, 1e-3, _O52, betas=(0.9, 0.999), eps=1e-8, confidence=0.7,
        holds="training only a new vision→LLM projector (frozen LLM and encoder), 1 epoch"),
    Row("generic/adamw", "generic", "adamw", ("O5.2", "O7.2", "O7.3"), "median", (), 1e-3,
        _O52, weight_decay=0.01, betas=(0.9, 0.999), eps=1e-8, min_lr_ratio=0.1,
        confidence=0.55, clip=1.0, clip_basis="safety_default",
        holds="no published recipe: a starting point for a range test"),
)

# Confidence adjustments (subtracted from a row's ``confidence``), by cause.
CONFIDENCE = {
    "no_anchor_left": 0.25,       # every anchor excluded or the regime has none: fallback LR
    "outside_anchors": 0.15,      # model size outside the anchors' range (held, not fitted)
    "transfer": 0.15,             # the optimizer has no row here: LR moved from another row
    "transfer_guess": 0.3,        # ... and no published relation between the two (SGD ↔ Adam)
    "disagreement": 0.1,          # anchors of this setting disagree by more than 2×
    "clamped_batch": 0.1,         # the batch factor was clamped
    "batch_unit": 0.2,            # batch_size × seq_len looks like a token count
    "reference": -0.05,           # the user's own reference recipe
}
DISAGREEMENT_FACTOR = 2.0
SMALL_DATA_EXAMPLES = 2e5        # below: CIFAR-scale (50k); ImageNet is 1.28M
LARGE_BATCH = 8192               # O7.1 / You et al. 2020


@dataclass(frozen=True)
class Fitted:
    """A row with its anchors filtered and its LR model fitted."""

    row: Row
    anchors: tuple[Anchor, ...]
    coef: tuple[float, float, float] | None  # ln lr = a + b ln N + c ln B ("fit")
    per_batch: float | None                   # lr / batch or lr / √batch (per_batch_*)
    median_lr: float | None
    weight_decay: float
    warmup_fraction: float
    clip: float | None
    clip_basis: ClipBasis
    family_names: tuple[str, ...]
    # set when every anchor is excluded and the row transfers (``fallback_rule``)
    source: Fitted | None = None          # the related row ("law", "ratio")
    pooled_lr: float | None = None        # "pool": log-median of the related rows' anchors
    pooled_families: tuple[str, ...] = ()
    ratio: float | None = None            # "ratio": fine-tune / pre-train, across families
    ratio_families: tuple[str, ...] = ()

    @property
    def families(self) -> list[str]:
        return list(self.family_names)

    # Per-row intermediates the engine reads on every request, computed once per table.
    @cached_property
    def size_range(self) -> tuple[float, float]:
        ns = [a.params for a in self.anchors if a.params]
        return (min(ns), max(ns)) if ns else (math.nan, math.nan)

    @cached_property
    def batch_range(self) -> tuple[float, float]:
        bs = [a.batch for a in self.anchors if a.batch]
        return (min(bs), max(bs)) if bs else (math.nan, math.nan)

    @cached_property
    def batch_geomean(self) -> float:
        """Geometric mean of the stated batches (1.0 for an anchor that states none)."""
        bs = [a.batch or 1.0 for a in self.anchors]
        return math.exp(sum(math.log(x) for x in bs) / len(bs)) if bs else math.nan

    @cached_property
    def by_log_size(self) -> tuple[tuple[float, ...], tuple[Anchor, ...]]:
        """Anchors with a size, sorted by ln N (for the anchors near a request's size)."""
        pairs = sorted(((math.log(a.params), i) for i, a in enumerate(self.anchors)
                        if a.params))
        return (tuple(x for x, _ in pairs), tuple(self.anchors[i] for _, i in pairs))

    def near_size(self, n: float, factor: float) -> tuple[Anchor, ...]:
        """The anchors whose size is within ``factor``× of n."""
        logs, anchors = self.by_log_size
        ln, lf = math.log(n), math.log(factor)
        return anchors[bisect_left(logs, ln - lf):bisect_right(logs, ln + lf)]


def _lmedian(xs: list[float]) -> float:
    """Median in log space (zeros are kept as zeros: a published 0 is a value)."""
    if any(x <= 0 for x in xs):
        return statistics.median(xs)
    return math.exp(statistics.median([math.log(x) for x in xs]))


def _lmean(xs: list[float]) -> float:
    """Geometric mean when every value is positive; the median when a published 0 is among them
    (a 0 is a choice — no decay — that a mean would blur into a small λ)."""
    if any(x <= 0 for x in xs):
        return statistics.median(xs)
    logs = sorted(math.log(x) for x in xs)
    if len(logs) >= 5:  # trimmed: one outlier recipe (ViT's 0.3) does not move the row
        logs = logs[1:-1]
    return math.exp(sum(logs) / len(logs))


def _solve3(m: list[list[float]], v: list[float]) -> list[float] | None:
    """Gaussian elimination for a 3×3 system (no numpy in the API process)."""
    a = [[*row[:], v[i]] for i, row in enumerate(m)]
    n = 3
    for c in range(n):
        p = max(range(c, n), key=lambda r: abs(a[r][c]))
        if abs(a[p][c]) < 1e-12:
            return None
        a[c], a[p] = a[p], a[c]
        for r in range(n):
            if r != c:
                f = a[r][c] / a[c][c]
                a[r] = [x - f * y for x, y in zip(a[r], a[c], strict=True)]
    return [a[i][n] / a[i][i] for i in range(n)]


def fit_loglog(anchors: tuple[Anchor, ...], size_slope: float | None = None
               ) -> tuple[float, float, float] | None:
    """Least squares of ln lr on ln N and ln batch. The batch slope is clamped to [0, 0.5]
    (no published rule has LR falling with batch, none grows faster than √ for Adam), and
    refitted on ln N alone when the anchors cannot separate the two. With ``size_slope`` the
    size exponent is given (shared_size_slope) and only the intercept and batch slope are fitted."""
    pts = [(math.log(a.params), math.log(a.batch), math.log(a.lr)) for a in anchors
           if a.params and a.batch]
    if size_slope is not None and pts:
        return _fit_given_size_slope(pts, size_slope)
    if len({p[0] for p in pts}) < 2:
        return None
    xs = [[1.0, x, b] for x, b, _ in pts]
    ys = [y for *_, y in pts]
    m = [[sum(r[i] * r[j] for r in xs) for j in range(3)] for i in range(3)]
    v = [sum(r[i] * y for r, y in zip(xs, ys, strict=True)) for i in range(3)]
    sol = _solve3(m, v) if len({p[1] for p in pts}) > 1 else None
    if sol is None or not 0.0 <= sol[2] <= 0.5:
        c = 0.0 if sol is None else min(max(sol[2], 0.0), 0.5)
        # fix c, refit a and b on ln lr − c ln B
        ys2 = [y - c * b for (_, b, _), y in zip(pts, ys, strict=True)]
        n = len(pts)
        mx = sum(p[0] for p in pts) / n
        my = sum(ys2) / n
        sxx = sum((p[0] - mx) ** 2 for p in pts)
        b1 = sum((p[0] - mx) * (y - my) for p, y in zip(pts, ys2, strict=True)) / sxx
        return (my - b1 * mx, b1, c)
    return (sol[0], sol[1], sol[2])


def _fit_given_size_slope(pts: list[tuple[float, float, float]], b1: float
                          ) -> tuple[float, float, float]:
    ys = [y - b1 * x for x, _, y in pts]
    n = len(pts)
    mb = sum(p[1] for p in pts) / n
    my = sum(ys) / n
    sbb = sum((p[1] - mb) ** 2 for p in pts)
    c = 0.0 if sbb < 1e-12 else sum((p[1] - mb) * (y - my) for p, y in zip(pts, ys,
                                                                         strict=True)) / sbb
    c = min(max(c, 0.0), 0.5)
    return (my - c * mb, b1, c)


def _fit_row(row: Row, exclude: frozenset[str],
             done: dict[str, Fitted] | None = None) -> Fitted:
    anchors = tuple(a for a in row.anchors if a.family not in exclude)
    slope = None
    if row.size_slope_from is not None and done is not None:
        src = done[row.size_slope_from].coef
        slope = None if src is None else src[1]
    coef = fit_loglog(anchors, slope) if row.lr_method == "fit" and anchors else None
    per_batch = None
    if row.lr_method in ("per_batch_linear", "per_batch_sqrt") and anchors:
        power = 1.0 if row.lr_method == "per_batch_linear" else 0.5
        per_batch = _lmedian([a.lr / (a.batch or 1.0) ** power for a in anchors])
    median_lr = _lmedian([a.lr for a in anchors]) if anchors else None
    wds = [a.weight_decay for a in anchors if a.weight_decay is not None]
    wd = row.weight_decay if row.weight_decay is not None else (
        _lmean(wds) if wds else 0.01)
    warm = [a.warmup for a in anchors if a.warmup is not None]
    warmup = row.warmup_fraction if row.warmup_fraction is not None else (
        _lmedian(warm) if warm and all(w > 0 for w in warm) else
        statistics.median(warm) if warm else -1.0)  # -1: O6.2b's generic rule
    clip, basis = row.clip, row.clip_basis
    if basis is None:
        clip, basis = _clip_vote(row, anchors)
    names = tuple(dict.fromkeys(a.family for a in anchors))
    return Fitted(row, anchors, coef, per_batch, median_lr, wd, warmup, clip, basis, names)


def _clip_vote(row: Row, anchors: tuple[Anchor, ...]) -> tuple[float | None, ClipBasis]:
    """Clipping as the remaining *families* do: one vote per family (its anchors' majority, so a
    family with many sizes does not outvote the others); the majority of families decides. A tie
    takes the domain's default, ``unstated_clip``: language rows clip at O7.4's τ (clipping is
    cheap insurance where half the field uses it), vision rows do not (DeiT, ConvNeXt, MAE, the
    ResNets trained unclipped). With no stated clip at all the same default applies, as a safety
    default; Adafactor clips its own update and never gets one."""
    default = None if row.optimizer == "adafactor" else row.unstated_clip
    votes: dict[str, list[float]] = {}
    for a in anchors:
        if a.clip is not None:
            votes.setdefault(a.family, []).append(a.clip)
    clipping: list[float] = []  # the clip of each family that votes to clip
    for cs in votes.values():
        on = [x for x in cs if x > 0]
        if 2 * len(on) > len(cs) or (2 * len(on) == len(cs) and on and default is not None):
            clipping.append(statistics.median(on))
    fams = len(votes)
    if fams and (2 * len(clipping) > fams or (2 * len(clipping) == fams and clipping
                                               and default is not None)):
        return statistics.median(clipping), "recipe"
    if fams or default is None:
        return None, "none"
    return default, "safety_default"  # no recipe says: O7.4's τ as a safety default


def _log_pairs(pairs: Iterable[Pair], exclude: frozenset[str]) -> tuple[float | None,
                                                                         tuple[str, ...]]:
    """The fine-tune / pre-train LR ratio over the families not excluded: the log-median of the
    families' ratios (a pair whose numbers come from an excluded family is not used)."""
    kept = [p for p in pairs if not exclude.intersection(p.families)]
    if not kept:
        return None, ()
    return (_lmedian([p.finetune_lr / p.pretrain_lr for p in kept]),
            tuple(f for p in kept for f in p.families))


def _with_fallback(fitted: Fitted, rows: dict[str, Fitted], exclude: frozenset[str]) -> Fitted:
    row = fitted.row
    if fitted.anchors or row.fallback_rule == "constant":
        return fitted
    if row.fallback_rule == "pool":
        pool = [a for rid in row.fallback_from for a in rows[rid].anchors]
        if not pool:
            return fitted
        return replace(fitted, pooled_lr=_lmedian([a.lr for a in pool]),
                       pooled_families=tuple(dict.fromkeys(a.family for a in pool)))
    source = rows[row.fallback_from[0]]
    if row.fallback_rule == "law":
        return replace(fitted, source=source) if source.coef is not None else fitted
    ratio, fams = _log_pairs(FINETUNE_PAIRS, exclude)
    if ratio is None:
        return fitted
    return replace(fitted, source=source, ratio=ratio, ratio_families=fams)


class Table:
    """The rows, fitted once for a set of excluded families (empty for the service)."""

    def __init__(self, exclude: Iterable[str] = ()) -> None:
        self.exclude = frozenset(exclude)
        by_id: dict[str, Fitted] = {}
        for r in ROWS:  # a row's size-slope source comes before it in ROWS
            by_id[r.id] = _fit_row(r, self.exclude, by_id)
        # a row whose anchors are all excluded transfers from rows fitted without them too
        by_id = {rid: _with_fallback(f, by_id, self.exclude) for rid, f in by_id.items()}
        self.rows = {(f.row.regime, f.row.optimizer): f for f in by_id.values()}
        self.native = {}
        for r in ROWS:  # the first row of a regime is its default optimizer's
            self.native.setdefault(r.regime, self.rows[(r.regime, r.optimizer)])

    def get(self, regime: str, optimizer: str) -> Fitted | None:
        return self.rows.get((regime, optimizer))


@cache
def table(exclude: frozenset[str] = frozenset()) -> Table:
    return Table(exclude)


def families() -> list[str]:
    return sorted({a.family for r in ROWS for a in r.anchors})


def regime_of(task: str, stage: str, modality: str, architecture: str, memory_tight: bool,
              examples: float, normalization: Iterable[str]) -> str:
    """The regime a request describes (the first key of the table)."""
    if task in ("llm_pretrain", "encoder_pretrain"):
        if task == "encoder_pretrain" or architecture == "encoder_transformer":
            return "mlm_pretrain"
        return "t5_pretrain" if architecture == "encoder_decoder_transformer" else "llm_pretrain"
    if task == "llm_finetune_full":
        return "t5_finetune" if architecture == "encoder_decoder_transformer" else "llm_sft"
    if task == "llm_finetune_peft":
        return "llm_qlora" if memory_tight else "llm_lora"
    if task == "llm_preference":
        return "llm_preference"
    if task == "multimodal_projector":
        return "mm_projector"
    if task == "encoder_finetune":
        return "encoder_finetune"
    if task == "seq2seq":
        kind = "speech" if modality == "speech" else "t5"
        return f"{kind}_{stage}"
    if task in ("image_classification_cnn", "vision_transformer"):
        if stage == "finetune":
            return "vision_finetune" if task == "vision_transformer" else "cnn_finetune"
        if task == "vision_transformer":
            return "vision_adamw"
        if all(n == "none" for n in normalization):  # AlexNet/VGG: no normalization at all
            return "cnn_nobn"
        return "cnn_small" if examples < SMALL_DATA_EXAMPLES else "cnn_imagenet"
    return "generic"


def _version() -> str:
    payload = json.dumps([asdict(r) for r in ROWS] + [asdict(p) for p in FINETUNE_PAIRS] + [CONFIDENCE, DISAGREEMENT_FACTOR,
                                                      SMALL_DATA_EXAMPLES, LARGE_BATCH],
                         sort_keys=True, default=list)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


RECIPES_VERSION = _version()

__all__ = ["CONFIDENCE", "FINETUNE_PAIRS", "RECIPES_VERSION", "ROWS", "Anchor", "Fitted", "Lora",
           "Pair", "Row", "Table",
           "families", "fit_loglog", "regime_of", "table"]
