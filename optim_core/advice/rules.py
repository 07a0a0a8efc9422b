"""The rules table: one row per GUIDELINES.md rule id, plus literature rows (ids ``L-…``).

Each row is data: ``id``, ``condition`` (when it fires), ``effect`` (what it does to the advice),
``source`` (where it comes from) and ``params`` (the constants the engine reads from the row, so a
changed constant changes ``RULES_VERSION`` and therefore every cache key). The engine
(`engine.py`) fires rows by id and records which ones fired; informational rows (the update rules)
fire where the advised optimizer implements them and are quoted in the rationale and snippet.

Literature constants: docs/ADVICE.md ("Literature constants: what was checked") lists, row by
row, the source each was checked against and whether it confirmed the value.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from optim_core.advice.recipes import RECIPES_VERSION

Kind = Literal["update_rule", "decision", "refusal", "literature", "diagnostic", "informational"]


@dataclass(frozen=True)
class Rule:
    id: str
    condition: str
    effect: str
    source: str
    kind: Kind = "decision"
    params: dict[str, Any] = field(default_factory=dict)


_O = "Seed O (seeds/000_…, GUIDELINES.md)"
_W = "Seed W (seeds/001_…, GUIDELINES.md)"

RULES: tuple[Rule, ...] = (
    # --- update rules (informational: quoted where the advised optimizer implements them) ------
    Rule("O1.2", "always (every optimizer refines θ ← θ − η∇L)",
         "explains what the learning rate η scales", f"{_O} §1.2", "update_rule"),
    Rule("O2.1", "advised optimizer is SGD",
         "gradient is the minibatch average, so LR and batch size interact", f"{_O} §2.1",
         "update_rule"),
    Rule("O3.1", "advised optimizer is SGD",
         "momentum β = 0.9", f"{_O} §3.1", "update_rule"),
    Rule("O3.2", "advised optimizer is SGD",
         "Nesterov look-ahead offered as an option (the advice keeps plain momentum, as the "
         "reference recipes did)", f"{_O} §3.2", "update_rule"),
    Rule("O4.1", "reference recipe uses AdaGrad, or the user chose AdaGrad",
         "warn: AdaGrad's accumulated G makes the LR decay monotonically and stall; a chosen "
         "AdaGrad gets the Adam-family LR clamped to O5.2's range, low confidence",
         f"{_O} §4.1", "update_rule"),
    Rule("O4.2", "reference recipe uses RMSprop, or the user chose RMSprop",
         "note: RMSprop's EMA (β 0.9) fixes AdaGrad's stall; Adam adds momentum and bias "
         "correction, so the advice uses the Adam family; a chosen RMSprop gets β 0.9 and the "
         "Adam-family LR clamped to O5.2's range, low confidence", f"{_O} §4.2", "update_rule",
         {"beta": 0.9}),
    Rule("O5.1", "advised optimizer is in the Adam family (adamw, lamb)",
         "explains β1, β2 and bias correction", f"{_O} §5.1", "update_rule"),
    Rule("O5.2", "advised optimizer is in the Adam family",
         "defaults β1 0.9, β2 0.999, ε 1e-8 unless a literature row overrides",
         f"{_O} §5.2", "update_rule", {"lr_range": (1e-4, 1e-3)}),
    Rule("O5.3", "advised optimizer uses weight decay with adaptive steps",
         "use decoupled decay (AdamW), not L2 in Adam's gradient", f"{_O} §5.3", "update_rule"),
    Rule("W6", "advised optimizer uses weight decay with adaptive steps",
         "same as O5.3: L2 in Adam is scaled by the adaptive rate; prefer AdamW", f"{_W} §6",
         "update_rule"),
    Rule("W4", "advised optimizer is SGD with weight decay",
         "explains that L2 with SGD equals decay by (1 − 2ηλ)", f"{_W} §4", "update_rule"),
    Rule("O5.4", "advised optimizer is Adafactor or LAMB",
         "names the variant and why (memory: Adafactor; large batch: LAMB)", f"{_O} §5.4",
         "update_rule"),
    # --- batch size ---------------------------------------------------------------------------
    Rule("O2.2a", "the LR was scaled for a batch size, or the batch is large",
         "explains the noise/generalisation trade-off of the batch size", f"{_O} §2.2",
         "informational"),
    Rule("O2.2b", "a reference recipe is given and the optimizer is SGD",
         "linear scaling: batch × k ⇒ LR × k", f"{_O} §2.2"),
    # --- schedules ------------------------------------------------------------------------------
    Rule("O6.1", "the advised schedule decays", "explains why the LR decays over the run",
         f"{_O} §6.1", "informational"),
    Rule("O6.2", "the advised schedule has a warmup", "linear warmup (reasons: early large "
         "gradients, Adam's v̂ settling, BatchNorm statistics)", f"{_O} §6.2"),
    Rule("O6.2b", "a warmup is advised",
         "warmup at most 5 % of the run (and 1–5 % or 1,000–10,000 steps); a generic run's "
         "fraction falls from 5 % to 1 % as the run grows", f"{_O} §6.2",
         params={"max_fraction": 0.05, "min_fraction": 0.01}),
    Rule("O6.3a", "task is image classification with a CNN and the run is given in epochs "
         "(enough of them to put three decays on distinct epoch boundaries)",
         "step decay as Goyal trained ResNet-50: warmup_step, × 0.1 at 1/3, 2/3 and 8/9 of the "
         "epochs (30, 60, 80 of 90), on epoch boundaries", f"{_O} §6.3"),
    Rule("O6.3b", "the advised schedule is warmup_cosine", "cosine annealing to min_lr",
         f"{_O} §6.3"),
    Rule("O6.3c", "encoder fine-tuning, or adapter (LoRA) fine-tuning without QLoRA's memory "
         "budget: the recipes published with linear decay (BERT, RoBERTa, LoRA)",
         "warmup_linear: linear warmup then linear decay to 0 on the last step", f"{_O} §6.3"),
    Rule("O6.3d", "architecture is an encoder-decoder trained with Adafactor (T5) from scratch",
         "inverse square root schedule after warmup", f"{_O} §6.3"),
    Rule("O6.4", "task is LLM pre-training",
         "warmup 2,000 steps then cosine to η_min = 0.1 η_max", f"{_O} §6.4"),
    # --- practical guidelines -------------------------------------------------------------------
    Rule("O7.1", "always", "optimizer by task: LLM → AdamW; fine-tuning → AdamW/Adafactor; CNN → "
         "SGD + momentum; large batch (beyond 8,192 sequences/examples, and only where the "
         "literature switched: L-LAMB, not for LLMs: L-LLMBATCH) → LAMB; memory-tight → "
         "Adafactor", f"{_O} §7.1; the 8,192 threshold is You et al. 2020's (see L-LAMB)"),
    Rule("O7.2", "task is LLM pre-training or a fine-tune",
         "LR ranges: pre-training 1e-4…3e-4, fine-tuning 1e-5…5e-5; larger model ⇒ smaller LR; "
         "warn when the advice leaves the range", f"{_O} §7.2",
         params={"pretrain": (1e-4, 3e-4), "finetune": (1e-5, 5e-5)}),
    Rule("O7.3", "decoupled weight decay is advised",
         "λ in 0.01…0.1; never on biases or LayerNorm; larger models somewhat larger λ",
         f"{_O} §7.3"),
    Rule("O7.4", "always (the clip value is set per task)",
         "clip the global gradient norm at τ = 1.0; essential for LLMs", f"{_O} §7.4",
         params={"clip_norm": 1.0}),
    Rule("O7.5", "diagnose endpoint; advice monitor list",
         "NaN/Inf → lower LR, check clipping; plateau → raise LR, check warmup; oscillation → "
         "lower LR, raise batch; overfitting → more weight decay, add dropout. A plateau is < 5 % "
         "gain with no fitted downward slope beyond 3 standard errors of the batch noise (and "
         "≥ 1 % of the level); while the log's LR decays under a schedule the LR is not raised",
         f"{_O} §7.5",
         "diagnostic"),
    # --- weight decay ---------------------------------------------------------------------------
    Rule("W7a", "always", "weight-decay search grid {0, 1e-5, 1e-4, 1e-3, 1e-2}", f"{_W} §7",
         params={"grid": (0.0, 1e-5, 1e-4, 1e-3, 1e-2)}),
    Rule("W7b", "coupled decay (SGD): always; decoupled: small data set",
         "small data ⇒ larger λ, large data ⇒ smaller λ (log-log interpolation between "
         "1e4 examples → 1e-2 and 1e6 examples → 1e-4)", f"{_W} §7"),
    Rule("W7c", "any advice with weight decay",
         "refused: 'λ ≈ 0.01/lr' conflicts with O7.3 and W7b (λ = 10 at lr 1e-3); not applied, "
         "and the warning says what it would have given", f"{_W} §7 (GUIDELINES conflict note)",
         "refusal"),
    Rule("W7d", "dropout > 0", "less weight decay with dropout: λ × max(0.5, 1 − p)", f"{_W} §7",
         params={"floor": 0.5}),
    Rule("W8", "diagnose with a validation loss; advice monitor list",
         "over-fitting shows as validation loss rising while training loss falls", f"{_W} §8",
         "diagnostic"),
    Rule("W9", "architecture is linear", "L1 / elastic net for sparse features is mentioned; the "
         "advice keeps L2 / decoupled decay", f"{_W} §9", "informational"),
    Rule("W10a", "always", "some weight decay unless there is a reason (start 1e-4 / 1e-3)",
         f"{_W} §10"),
    Rule("W10b", "LR differs from the reference recipe's LR",
         "warn: retune λ after changing the LR", f"{_W} §10", "informational"),
    Rule("W10c", "always (parameter groups)",
         "no decay on biases and normalization (BatchNorm etc.) parameters", f"{_W} §10"),
    Rule("W10d", "always (monitor list)", "monitor ‖w‖₂ during training", f"{_W} §10",
         "informational"),
    Rule("W10e", "decoupled decay with a decaying schedule",
         "the effective decay η·λ shrinks as the LR decays", f"{_W} §10", "informational"),
    Rule("W11", "advised optimizer is AdamW or SGD",
         "PyTorch form of the optimizer (AdamW(..., weight_decay=); SGD(..., momentum=0.9))",
         f"{_W} §11", "informational"),
    # --- literature rows ------------------------------------------------------------------------
    Rule("L-MALLADI22", "reference recipe given (or LLM pre-training anchor batch) and the "
         "optimizer is Adam-family",
         "square-root scaling: batch × κ ⇒ LR × √κ (factor clamped to [1/16, 4])",
         "Malladi et al. 2022, 'On the SDEs and Scaling Rules for Adaptive Gradient Algorithms'",
         "literature", {"clamp": (1 / 16, 4.0)}),
    Rule("L-GOYAL17", "task is image classification with a CNN",
         "SGD (Nesterov) momentum 0.9, LR 0.1 × B/256, wd 1e-4 (ImageNet scale), 90 epochs, "
         "× 0.1 at epochs 30, 60, 80; 5-epoch gradual warmup for large minibatches (B > 256; "
         "the B = 256 reference LR 0.1 is He 2016's, without it); linear scaling holds up to ~8k",
         "Goyal et al. 2017, 'Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour', §2.1, "
         "§2.2, §5.1", "literature",
         {"ratio_clamp": (1 / 256, 32.0)}),
    Rule("L-HE19", "task is image classification with a CNN and the run is given in steps (or "
         "too few epochs for Goyal's three epoch-boundary decays)",
         "cosine decay to 0 (with Goyal's warmup rule) instead of step decay: He et al. found "
         "it as good or better, and it needs no epoch boundaries",
         "He et al. 2019, 'Bag of Tricks for Image Classification with CNNs', §5.1", "literature"),
    Rule("L-DEIT", "task is vision transformer",
         "AdamW, LR 5e-4 × B/512 (linear) up to B = 4,096, √ scaling (L-MALLADI22) from "
         "4,096 on; wd 0.05, 5-epoch warmup, cosine; the linear factor is floored at 1/16 "
         "(B = 32: this project's bound, as √'s)",
         "Touvron et al. 2021, 'Training data-efficient image transformers', Table 9: DeiT-B "
         "at batch 1024 with lr 0.0005 × bs/512; the same table's ViT-B column (Dosovitskiy "
         "2021) trained at batch 4096 with lr 0.003, where the linear rule gives 0.004 — so "
         "the rule is published up to 4,096, not beyond", "literature"),
    Rule("L-BERT", "task is encoder fine-tuning (LR, wd), or encoder pre-training (wd)",
         "AdamW, LR 2e-5…5e-5 (smaller for larger models), wd 0.01, warmup 10 % then linear "
         "decay to 0; pre-training also used wd 0.01 (as RoBERTa did)",
         "Devlin et al. 2019, 'BERT', §A.2 (pre-training), §A.3; google-research/bert "
         "optimization.py", "literature"),
    Rule("L-ROBERTA", "task is encoder fine-tuning (warmup), or encoder (BERT-style) "
         "pre-training with AdamW (β2, ε)",
         "GLUE fine-tuning: warmup 6 % of steps (O6.2b caps it at 5 %) then linear decay to 0, "
         "LR 1e-5…3e-5, wd 0.1 (the advice keeps BERT's wd 0.01 and β2 0.999: a request "
         "cannot tell the two apart); encoder pre-training: Adam β2 0.98, ε 1e-6 (more stable "
         "at large batches), applied",
         "Liu et al. 2019, 'RoBERTa', Table 9 (pre-training: β2 0.98, ε 1e-6, batch 8k × 512) "
         "and Table 10 (GLUE fine-tuning)", "literature"),
    Rule("L-ALPACA", "task is full fine-tuning of an LLM",
         "AdamW LR 2e-5 at 7B, cosine, warmup 3 %", "Taori et al. 2023, Stanford Alpaca README "
         "(training hyperparameters)", "literature"),
    Rule("L-T5", "architecture is an encoder-decoder (T5 family)",
         "Adafactor, no weight decay; pre-train LR 0.01 inverse sqrt after 10^4 steps; "
         "fine-tune constant 1e-3", "Raffel et al. 2020, 'T5', §3.1.2 and §3.1.3", "literature"),
    Rule("L-LORA", "task is parameter-efficient fine-tuning",
         "AdamW LR 2e-4 (≤ 13B; 1e-4 ≥ 33B), wd 0.01, warmup, linear decay to 0",
         "Hu et al. 2021, 'LoRA', Table 11 (GPT-2 M/L E2E); Dettmers et al. 2023 QLoRA App. B.2",
         "literature"),
    Rule("L-QLORA", "task is parameter-efficient fine-tuning and memory is tight",
         "quantized base + LoRA: paged AdamW, constant LR after 3 % warmup, clip 0.3 (adapter "
         "optimizer state is small, so O7.1's Adafactor is not needed); no weight decay",
         "Dettmers et al. 2023, 'QLoRA', App. B.2; artidoro/qlora qlora.py defaults", "literature"),
    Rule("L-LAMB", "batch beyond O7.1's 8,192 sequences/examples for an encoder (BERT-style) "
         "transformer, a ViT or a generic task; never an LLM/decoder (L-LLMBATCH), a CNN "
         "(SGD, L-GOYAL17) or adapters",
         "LAMB with the Adam-family LR (√-scaled from a reference), wd 0.01, ε 1e-6",
         "You et al. 2020, 'Large Batch Optimization for Deep Learning: Training BERT in 76 "
         "minutes', abstract and §4: earlier large-batch methods fail for BERT beyond 8,192; "
         "LAMB pre-trained BERT at 65,536 (seq 128) and 32,768 (seq 512) sequences, wd 0.01; "
         "RoBERTa (Liu 2019, Table 9) trained Adam at 8k × 512, so 8,192 itself stays AdamW",
         "literature", {"eps": 1e-6}),
    Rule("L-LLMBATCH", "LLM/decoder training with a batch beyond O7.1's 8,192 sequences",
         "keep AdamW: O7.1's large-batch LAMB is not applied to LLMs, because every published "
         "LLM recipe trained AdamW at its batch",
         "Brown et al. 2020 Table 2.1 (GPT-3 175B: AdamW at 3.2M tokens per batch); Touvron "
         "et al. 2023 §2.2 (LLaMA: AdamW at 4M tokens per batch)", "literature"),
    Rule("L-BATCH-UNIT", "batch_size × seq_len above 1e8 tokens per step",
         "warn that batch_size looks like a token count (it counts sequences), confidence "
         "− 0.2", "this project's plausibility bound: 1e8 tokens is ~25× the largest batch in "
         "the recipes of L-LLMBATCH (LLaMA's 4M tokens)", "decision",
         {"max_tokens": 1e8}),
    # --- transfer rows: the user chose an optimizer other than O7.1's pick --------------------
    Rule("L-LION", "the user chose Lion",
         "LR = the AdamW advice ÷ k and decoupled λ = AdamW's × k, k by regime (10 for vision, "
         "3 for language: the recipe row's lion_divisor); lr·λ is kept — at the λ bound 1.0 "
         "the LR absorbs the rest; betas (0.9, 0.99); same schedule shape as AdamW",
         "Chen et al. 2023, 'Symbolic Discovery of Optimization Algorithms', §5 (LR 3-10x "
         "smaller, λ 3-10x larger than AdamW; β 0.9/0.99), as quoted in lucidrains/lion-pytorch "
         "README, whose runs found 3x better than 10x for language modelling", "literature",
         {"betas": (0.9, 0.99)}),
    Rule("L-ADAFACTOR", "Adafactor without a T5-style recipe (not an encoder-decoder)",
         "external LR = the AdamW advice, with relative_step=False, scale_parameter=False, "
         "warmup_init=False (a manual schedule), warmup kept",
         "Hugging Face transformers.Adafactor docstring ('To use a manual (external) learning "
         "rate schedule you should set scale_parameter=False and relative_step=False')",
         "literature"),
    Rule("L-SGD-XFER", "the user chose SGD for a task whose SGD recipe is not known (not CNN)",
         "LRs do not transfer between SGD and adaptive methods: vision (ViT) → Goyal's "
         "0.1 × B/256, confidence − 0.15; other tasks → W11's SGD(lr=0.01) as a guess, "
         "confidence − 0.3 and an LR search range of three decades",
         "Goyal et al. 2017 §2.1 (0.1 × kn/256, stated for ResNet/ImageNet); W11's PyTorch "
         "example; the three-decade range is this project's choice", "literature",
         {"vision_base_lr": 0.1, "vision_base_batch": 256, "guess_lr": 0.01,
          "guess_decades": 3.0}),
    # --- recipe-table sources (recipes.py rows cite these; anchors name table and page) -----
    Rule("L-LLM-FAMILIES", "task is LLM (decoder) pre-training",
         "LR by a log-log least-squares fit over model size and batch (tokens) of published "
         "runs from several families; wd 0.1, β2 0.95, clip 1.0, 2,000 warmup steps, cosine to "
         "10 %", "GPT-3 (Brown 2020 Table 2.1), OPT (Zhang 2022 Table 1), Pythia (Biderman "
         "2023), LLaMA (Touvron 2023 Table 2), Llama 2 (Touvron 2023 Table 1), Gopher (Rae 2021 "
         "Table 1), Chinchilla (Hoffmann 2022), BLOOM (BigScience 2022), GPT-NeoX-20B (Black "
         "2022), DeepSeek LLM (2024 Table 2), OLMo (Groeneveld 2024), TinyLlama (Zhang 2024)",
         "literature"),
    Rule("L-DEEPSEEK", "task is LLM pre-training (cross-check only)",
         "compute law η_opt = 0.3118·C^−0.125 (C ≈ 6·N·D FLOPs here; the paper uses "
         "non-embedding FLOPs/token × tokens); when it is more than 3× from the advice the LR "
         "search range is widened to cover it",
         "DeepSeek-AI 2024, 'DeepSeek LLM', §3.1 (eq. for η_opt and B_opt = 0.2920·C^0.3271)",
         "literature", {"a": 0.3118, "b": -0.125}),
    Rule("L-ELECTRA", "encoder pre-training or fine-tuning",
         "ELECTRA's LRs (5e-4 small, 2e-4 base/large pre-training; 1e-4 base fine-tuning)",
         "Clark et al. 2020, 'ELECTRA', Tables 6 and 7", "literature"),
    Rule("L-WHISPER", "speech encoder-decoder (modality speech)",
         "AdamW β2 0.98, ε 1e-6, wd 0.1, 2,048 warmup steps, linear decay to 0, clip 1.0; LR "
         "by size 1.5e-3 (39M) … 1.75e-4 (1.55B) at batch 256; fine-tuning 1e-5",
         "Radford et al. 2022, 'Whisper', App. F Tables 17-18; Gandhi 2022 'Fine-Tune "
         "Whisper' (Hugging Face blog)", "literature"),
    Rule("L-SWIN", "vision transformer / AdamW vision from scratch",
         "AdamW 1e-3 at batch 1024, wd 0.05, 20 warmup epochs, cosine, clip 5.0",
         "Liu et al. 2021, 'Swin Transformer', App. A2.1", "literature"),
    Rule("L-CONVNEXT", "a modern CNN trained with AdamW, or vision fine-tuning",
         "ConvNeXt: AdamW 4e-3 at batch 4096, wd 0.05, 20 warmup epochs, cosine, no clipping; "
         "22K→1K fine-tuning 5e-5 at 512, wd 1e-8",
         "Liu et al. 2022, 'A ConvNet for the 2020s', Tables 5 and 6", "literature"),
    Rule("L-VIT", "vision transformer from scratch",
         "ViT-B/16 on ImageNet: Adam 3e-3 at batch 4096, wd 0.3, 10k warmup steps, clip 1.0",
         "Dosovitskiy et al. 2021, 'An Image is Worth 16x16 Words', Table 3 / App. B.1",
         "literature"),
    Rule("L-MAE", "vision pre-training (masked autoencoder) or fine-tuning a MAE model",
         "pre-training 1.5e-4 × B/256, wd 0.05, β2 0.95, 40 warmup epochs; fine-tuning 5e-4 "
         "× B/256, wd 0.05, layer decay 0.65, 5 warmup epochs",
         "He et al. 2022, 'Masked Autoencoders Are Scalable Vision Learners', App. A.1-A.2",
         "literature"),
    Rule("L-BIT", "vision fine-tuning with SGD",
         "BiT-HyperRule: SGD momentum 0.9, lr 0.003 at batch 512, × 0.1 at 30/60/90 %, no wd",
         "Kolesnikov et al. 2020, 'Big Transfer (BiT)', §3.3", "literature"),
    Rule("L-HE16", "CNN image classification (ImageNet, CIFAR)",
         "SGD momentum 0.9, lr 0.1 at batch 256 (ImageNet) / 128 (CIFAR-10), wd 1e-4, "
         "÷ 10 at fixed points",
         "He et al. 2016, 'Deep Residual Learning', §3.4 and §4.2", "literature"),
    Rule("L-ALEXNET", "CNN without BatchNorm",
         "SGD momentum 0.9, lr 0.01 at batch 128, wd 5e-4",
         "Krizhevsky et al. 2012, 'ImageNet Classification with Deep CNNs', §5", "literature"),
    Rule("L-VGG", "CNN without BatchNorm",
         "SGD momentum 0.9, lr 0.01 at batch 256, wd 5e-4",
         "Simonyan & Zisserman 2015, 'Very Deep Convolutional Networks', §3.1", "literature"),
    Rule("L-CIFAR", "CNN image classification on a small (CIFAR-scale) data set",
         "SGD momentum 0.9, lr 0.1 at batch 128, wd 1e-4 (He) or 5e-4 (WRN, ResNeXt), step "
         "decay at 50 %/75 % of the run, no warmup",
         "He et al. 2016 §4.2; Zagoruyko & Komodakis 2016 (WRN) §3; Huang et al. 2017 "
         "(DenseNet) §4.2; Xie et al. 2017 (ResNeXt) §5.3", "literature"),
    Rule("L-LARS", "CNN with a batch beyond O7.1's 8,192, or LARS chosen",
         "LARS: lr 0.3 × B/256 (SimCLR) / 0.2 × B/256 (BYOL), wd 1e-6…1.5e-6, 10 warmup "
         "epochs, cosine, no clipping",
         "You et al. 2017 (LARS); Chen et al. 2020 'SimCLR' App. B.1; Grill et al. 2020 "
         "'BYOL' App. C", "literature"),
    Rule("L-VICUNA", "full fine-tuning of an LLM",
         "AdamW 2e-5, batch 128, 3 epochs, warmup 3 %, cosine, wd 0",
         "Chiang et al. 2023, Vicuna (FastChat scripts/train_vicuna_13b.sh)", "literature"),
    Rule("L-TULU", "full fine-tuning or preference tuning of an LLM",
         "SFT: 2e-5 (1e-5 at 70B), batch 128, 2 epochs, warmup 3 %, linear; DPO: 5e-7, batch "
         "32, 3 epochs, warmup 10 %", "Ivison et al. 2023, 'Camels in a Changing Climate: "
         "Tulu 2', §3", "literature"),
    Rule("L-LIMA", "full fine-tuning of an LLM on a small set",
         "AdamW β2 0.95, wd 0.1, lr 1e-5 linearly decaying to 1e-6, no warmup, 15 epochs",
         "Zhou et al. 2023, 'LIMA', §3", "literature"),
    Rule("L-DPO", "preference tuning (DPO)",
         "RMSprop lr 1e-6, batch 64, 150 warmup steps (the paper); AdamW recipes use ~5e-7",
         "Rafailov et al. 2023, 'Direct Preference Optimization', App. B", "literature"),
    Rule("L-ZEPHYR", "preference tuning (DPO)",
         "DPO lr 5e-7, batch 32, warmup 10 %, linear decay",
         "Tunstall et al. 2023, 'Zephyr: Direct Distillation of LM Alignment', §4",
         "literature"),
    Rule("L-LLAVA", "multimodal projector alignment",
         "train only the projector: lr 2e-3 at batch 128 (LLaVA) / 1e-3 at 256 (LLaVA-1.5), "
         "1 epoch, warmup 3 %, cosine, wd 0",
         "Liu et al. 2023, 'Visual Instruction Tuning' §5; Liu et al. 2023, 'Improved "
         "Baselines with Visual Instruction Tuning' (LLaVA-1.5)", "literature"),
)

RULES_BY_ID: MappingProxyType[str, Rule] = MappingProxyType({r.id: r for r in RULES})


def _version(rules: tuple[Rule, ...]) -> str:
    # The hash covers every field, params included: a changed constant changes every cache key.
    payload = json.dumps([asdict(r) for r in rules], sort_keys=True, ensure_ascii=False,
                         default=list)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:16]


# The recipe table's rows are decisions too: a changed anchor changes every cache key.
RULES_VERSION: str = hashlib.sha256(
    (_version(RULES) + RECIPES_VERSION).encode()).hexdigest()[:16]


# (rule id, name) → value, flattened once: the engine reads a dozen per advice.
_PARAMS: MappingProxyType[tuple[str, str], Any] = MappingProxyType(
    {(r.id, k): v for r in RULES for k, v in r.params.items()})


def param(rule_id: str, name: str) -> Any:
    """A constant from a row: the engine reads numbers from the table, never its own copies."""
    return _PARAMS[rule_id, name]
