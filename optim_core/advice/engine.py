"""The advice engine: an ``AdviceRequest`` in, an ``Advice`` out. Pure, torch-free, no I/O.

Every value is chosen by a rule row of ``rules.py`` (constants are read from the rows) and every
value gets one rationale entry naming the rule ids and the method. The order of decisions:
derived quantities (steps, examples) → optimizer (O7.1) → LR (task method, then batch scaling) →
weight decay → betas/eps/momentum → schedule → clipping → search ranges → warnings → confidence.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

from optim_core import __version__
from optim_core.advice import ranges
from optim_core.advice.artefacts import build_artefacts
from optim_core.advice.models import (
    LLM_TASKS,
    Advice,
    AdviceRequest,
    AdviceWarning,
    BatchScaling,
    OptimizerAdvice,
    ParamGroupRule,
    RationaleEntry,
    ScheduleAdvice,
    SearchAdvice,
    steps_per_epoch,
)
from optim_core.advice.rules import RULES_BY_ID, RULES_VERSION, param
from optim_core.specs.catalog import CATALOG, names_where

ADAPTIVE = names_where(lambda o: o.adaptive)
FINETUNE_TASKS = frozenset({"llm_finetune_full", "llm_finetune_peft", "encoder_finetune"})
# λ applied outside the gradient (θ ← θ − ηλθ) vs L2 inside it (scaled by the adaptive rate, W6).
DECOUPLED = names_where(lambda o: o.decoupled)
# Same update as AdamW's Adam step (O5.1), so AdamW's LR carries over unchanged.
ADAM_LIKE = names_where(lambda o: o.adam_like)
TRANSFORMER_TASKS = frozenset({"llm_pretrain", "llm_finetune_full", "llm_finetune_peft",
                               "encoder_finetune", "vision_transformer"})
# Rows that describe each optimizer, cited when the user chose it over O7.1's pick.
CHOSEN_IDS: dict[str, list[str]] = {
    "sgd": ["O3.1", "W11"], "adagrad": ["O4.1"], "rmsprop": ["O4.2"], "adam": ["O5.1"],
    "adam_l2": ["O5.1", "W11"], "adamw": ["O5.3", "W6"], "adafactor": ["O5.4"],
    "lamb": ["O5.4", "L-LAMB"], "lion": ["O5.4", "L-LION"]}
# Confidence lost when the optimizer is not O7.1's pick: the transfer rules are rules of thumb
# (Lion's 3-10x), or there is no anchor at all (RMSprop/AdaGrad: low). SGD's loss depends on the
# task and is taken where its LR is chosen.
CHOSEN_CONFIDENCE: dict[str, float] = {
    "lion": 0.1, "rmsprop": 0.4, "adagrad": 0.4, "adam": 0.05, "adam_l2": 0.1, "lamb": 0.05,
    "adamw": 0.05, "adafactor": 0.0, "sgd": 0.0}


@dataclass
class _Trace:
    """Accumulates rationale, warnings and fired rules while the engine decides."""

    rationale: list[RationaleEntry] = field(default_factory=list)
    warnings: list[AdviceWarning] = field(default_factory=list)
    fired: dict[str, None] = field(default_factory=dict)  # ordered set
    confidence: float = 0.85
    ref_used: bool = False
    wide_search: bool = False  # the LR is a guess (SGD without an anchor): search 3 decades

    def fire(self, *ids: str) -> None:
        for rid in ids:
            if rid not in RULES_BY_ID:  # a typo in the engine must fail loudly, in tests
                raise KeyError(f"unknown rule id {rid!r}")
            self.fired[rid] = None

    def why(self, field_: str, value: Any, ids: list[str], text: str) -> None:
        ids = list(dict.fromkeys(ids))
        self.fire(*ids)
        self.rationale.append(RationaleEntry(field=field_, value=value, rule_ids=ids, text=text))

    def warn(self, ids: list[str], text: str) -> None:
        self.fire(*ids)
        self.warnings.append(AdviceWarning(rule_ids=ids, text=text))

    def amend(self, field_: str, value: Any, ids: list[str], text: str) -> None:
        """Replace the last entry for ``field_`` by one with the new value, its ids plus
        ``ids``, and its text plus ``text``: a transfer keeps the reasoning it started from."""
        i = max(k for k, e in enumerate(self.rationale) if e.field == field_)
        old = self.rationale[i]
        ids = list(dict.fromkeys([*old.rule_ids, *ids]))
        self.fire(*ids)
        self.rationale[i] = RationaleEntry(field=field_, value=value, rule_ids=ids,
                                           text=f"{old.text}; {text}")


@dataclass(frozen=True)
class _Run:
    """Quantities derived from the request."""

    examples: float
    steps_per_epoch: int
    total_steps: int
    tokens_per_batch: float | None


def _derive(req: AdviceRequest) -> _Run:
    seq = req.seq_len or 1
    examples = req.dataset_size / seq if req.dataset_unit == "tokens" else float(req.dataset_size)
    examples = max(examples, 1.0)
    spe = steps_per_epoch(req.dataset_size, req.dataset_unit, req.seq_len, req.batch_size)
    total = req.total_steps or max(1, math.ceil((req.epochs or 1.0) * spe))
    tokens = float(req.batch_size * req.seq_len) if req.seq_len else None
    return _Run(examples, spe, total, tokens)


def _g(x: float) -> str:
    return f"{x:.3g}"


def _check_batch_unit(req: AdviceRequest, run: _Run, tr: _Trace) -> None:
    """L-BATCH-UNIT: a batch of more than 1e8 tokens per step is far beyond any published
    recipe; the likeliest cause is a token count typed into ``batch_size`` (sequences)."""
    cap = param("L-BATCH-UNIT", "max_tokens")
    if run.tokens_per_batch is None or run.tokens_per_batch <= cap:
        return
    assert req.seq_len is not None
    tr.confidence -= 0.2
    seqs = max(1, req.batch_size // req.seq_len)
    tr.warn(["L-BATCH-UNIT", "O7.1"], f"batch_size × seq_len = {req.batch_size} × {req.seq_len} "
            f"= {_g(run.tokens_per_batch)} tokens per step, above {_g(cap)} (~25× LLaMA's 4M): "
            f"batch_size counts sequences (or examples), not tokens — if {req.batch_size} is "
            f"tokens, the batch is {seqs} sequences of {req.seq_len}; the advice below takes "
            "the request as given")


# --------------------------------------------------------------------------- optimizer


def _engine_pick(req: AdviceRequest) -> tuple[str, list[str], str]:
    """O7.1's pick for the request: (name, rule ids, reason)."""
    is_t5 = req.architecture == "encoder_decoder_transformer" and req.task != "llm_finetune_peft"
    threshold = param("O7.1", "large_batch")
    large = req.batch_size > threshold
    decoder = _is_decoder_lm(req)
    if is_t5:
        name, ids, why = "adafactor", ["O7.1", "L-T5", "O5.4"], (
            "encoder-decoder (T5 family): Adafactor, as T5 was trained and fine-tuned")
    elif req.task == "image_classification_cnn":
        name, ids, why = "sgd", ["O7.1", "L-GOYAL17", "W11"], (
            "CNN image classification: SGD + momentum (can generalize better)")
    elif req.memory_tight and req.task != "llm_finetune_peft":
        name, ids, why = "adafactor", ["O7.1", "O5.4"], (
            "memory is tight: Adafactor keeps a factored second moment instead of Adam's two "
            "full-size states")
    elif large and decoder and req.task != "llm_finetune_peft":
        tokens = f" ({_g(req.batch_size * req.seq_len)} tokens)" if req.seq_len else ""
        name, ids, why = "adamw", ["O7.1", "L-LLMBATCH", "O5.3", "W6"], (
            f"AdamW: batch {req.batch_size} sequences{tokens} is beyond O7.1's {threshold}, but "
            "LAMB is not used for an LLM/decoder — every published LLM recipe trained AdamW at "
            "its batch (GPT-3 175B at 3.2M tokens, LLaMA at 4M tokens; L-LLMBATCH)")
    elif large and req.task != "llm_finetune_peft":
        name, ids, why = "lamb", ["O7.1", "O5.4", "L-LAMB"], (
            f"batch {req.batch_size} > {threshold} sequences/examples: LAMB (layer-wise trust "
            "ratio), as You et al. 2020 pre-trained BERT at 32k-64k sequences where earlier "
            "large-batch methods failed beyond 8,192 (RoBERTa's 8k × 512 still used Adam)")
    elif req.task == "llm_finetune_peft":
        ids = ["O7.1", "L-LORA"] + (["L-QLORA"] if req.memory_tight else [])
        name, why = "adamw", ("parameter-efficient fine-tuning: AdamW on the adapter weights; "
                              "their optimizer state is small"
                              + (", so a tight memory budget does not call for Adafactor "
                                 "(QLoRA used paged AdamW)" if req.memory_tight else ""))
    else:
        name, ids, why = "adamw", ["O7.1", "O5.3", "W6"], (
            "AdamW: the standard for transformers and the default for other tasks (decoupled "
            "decay, O5.3/W6)")
    return name, ids, why


def _is_decoder_lm(req: AdviceRequest) -> bool:
    """An LLM/decoder language model (L-LLMBATCH): a decoder, or an LLM task on a model that is
    not an encoder (BERT-style, L-LAMB) or an encoder-decoder (T5, L-T5)."""
    return req.architecture == "decoder_transformer" or (
        req.task in LLM_TASKS
        and req.architecture not in ("encoder_transformer", "encoder_decoder_transformer"))


def _choose_optimizer(req: AdviceRequest, tr: _Trace) -> str:
    pick, ids, why = _engine_pick(req)
    chosen = req.optimizer
    if chosen is None:
        tr.why("optimizer.name", pick, ids, why)
        return pick
    if chosen == pick:
        tr.why("optimizer.name", pick, ids, f"{pick}, as you chose; O7.1 picks it too: {why}")
        return pick
    # The pick's own literature ids are not cited: they would switch on its recipe (L-T5's
    # constant LR, L-QLORA's λ = 0) for an optimizer that recipe was not tuned with.
    tr.why("optimizer.name", chosen, ["O7.1", *CHOSEN_IDS[chosen]],
           f"{chosen}: your choice (request field 'optimizer'); O7.1 would pick {pick} "
           f"({why}); the LR, decay, betas/momentum, warmup and clipping below are adapted to "
           f"{chosen}")
    tr.confidence -= CHOSEN_CONFIDENCE[chosen]
    _advise_against(req, chosen, pick, tr)
    return chosen


def _advise_against(req: AdviceRequest, opt: str, pick: str, tr: _Trace) -> None:
    """Warnings where the guidelines advise against the chosen optimizer for this task."""
    if opt == "adagrad":
        tr.warn(["O4.1"], "AdaGrad accumulates squared gradients, so its effective LR decays "
                "monotonically and training can stall (O4.1); RMSprop/Adam fix this with an EMA")
    elif opt == "rmsprop":
        tr.warn(["O4.2", "O5.1"], "RMSprop has no momentum and no bias correction; Adam adds "
                "both (O5.1), and no published recipe anchors RMSprop's LR for this task")
    elif opt == "adam":
        tr.warn(["O5.3", "W6", "W11"], "plain Adam: weight_decay must be 0 (Adam(weight_decay=) "
                "would be L2 in the gradient, W11), so decoupled decay is unavailable — prefer "
                "AdamW (O5.3/W6), which is the same update plus decoupled decay")
    elif opt == "adam_l2":
        tr.warn(["O5.3", "W6", "W11"], "Adam + L2: the L2 term is divided by the adaptive rate "
                "√v̂, so parameters with large gradients are barely regularized — prefer AdamW's "
                "decoupled decay (O5.3/W6)")
    elif opt == "sgd" and (req.task in TRANSFORMER_TASKS or "transformer" in req.architecture
                           or req.architecture == "vit"):
        tr.warn(["O7.1"], f"SGD for a transformer ({req.task}): O7.1 advises {pick}; SGD + "
                "momentum is the CNN choice and usually trains transformers markedly worse")


# --------------------------------------------------------------------------- learning rate


def _reference_usable(req: AdviceRequest, opt: str, tr: _Trace) -> bool:
    ref = req.reference
    if ref is None:
        return False
    if ref.optimizer == opt:  # the recipe's optimizer is the one used: nothing to warn about
        pass
    elif ref.optimizer == "adagrad":
        tr.warn(["O4.1"], "the reference recipe uses AdaGrad, whose accumulated squared "
                "gradients make the LR decay monotonically until training stalls; the advice "
                "uses " + opt)
    elif ref.optimizer == "rmsprop":
        tr.warn(["O4.2"], "the reference recipe uses RMSprop (EMA β 0.9); Adam adds momentum "
                "and bias correction, so the advice uses " + opt)
    elif ref.optimizer in ("adam", "adam_l2") and opt in DECOUPLED:
        tr.warn(["W6", "W11"], "the reference recipe uses Adam; Adam(weight_decay=) is L2, "
                "scaled unevenly by the adaptive rate — the advice uses decoupled decay")
    if ref.optimizer is not None and (ref.optimizer == "sgd") != (opt == "sgd"):
        tr.warn(["O7.1"], f"the reference LR ({_g(ref.lr)}, {ref.optimizer}) is for another "
                f"optimizer family than {opt}; LRs do not transfer between SGD and adaptive "
                "methods, so the reference was not used")
        tr.confidence -= 0.1
        return False
    return True


def _scaled(req: AdviceRequest, tr: _Trace, opt: str, base: float, from_b: float, to_b: float,
            unit: str, why_base: str, base_ids: list[str],
            deit_linear: bool = False) -> tuple[float, BatchScaling]:
    """``base`` at ``from_b`` moved to ``to_b``: linear for SGD (O2.2b) and for DeiT's own
    published rule inside its range (``deit_linear``, L-DEIT); square root for the Adam family
    otherwise (L-MALLADI22)."""
    method = "linear" if opt == "sgd" or deit_linear else "sqrt"
    if deit_linear:
        bounds = (param("L-DEIT", "min_factor"),
                  param("L-DEIT", "linear_max_batch") / param("L-DEIT", "base_batch"))
        ids = ["L-DEIT", "O2.2a"]
    elif method == "linear":
        bounds, ids = param("L-GOYAL17", "ratio_clamp"), ["O2.2b", "O2.2a"]
    else:
        bounds, ids = param("L-MALLADI22", "clamp"), ["L-MALLADI22", "O2.2a"]
    factor = ranges.batch_factor(method, to_b, from_b, bounds)
    raw = to_b / from_b if method == "linear" else math.sqrt(to_b / from_b)
    if not math.isclose(raw, factor):
        tr.warn(ids, f"batch ratio {_g(to_b / from_b)} is outside the range where {method} "
                f"scaling is trusted; the factor was clamped from {_g(raw)} to {_g(factor)}")
        tr.confidence -= 0.1
    lr = ranges.sig(min(base * factor, 10.0))
    text = (f"{why_base}; {method} batch scaling from {_g(from_b)} to {_g(to_b)} {unit}: "
            f"× {_g(factor)} ⇒ {_g(lr)}")
    tr.why("optimizer.lr", lr, base_ids + ids, text)
    scaling = BatchScaling(applied=not math.isclose(factor, 1.0), method=method,
                           from_batch=ranges.sig(from_b), to_batch=ranges.sig(to_b), unit=unit,
                           factor=ranges.sig(factor, 4))
    tr.why("batch_scaling", scaling.method, ids,
           "linear for SGD (O2.2b, Goyal 2017) and for DeiT's published 5e-4 × B/512 up to "
           "B = 4,096 (L-DEIT); square root for the Adam family otherwise (Malladi 2022)"
           "; O2.2a: a larger batch has less gradient noise, which is what lets the LR grow")
    return lr, scaling


def _unscaled(tr: _Trace, lr: float, ids: list[str], text: str) -> tuple[float, BatchScaling]:
    lr = ranges.sig(lr)
    tr.why("optimizer.lr", lr, ids, text)
    tr.why("batch_scaling", "none", ["O2.2b", "L-MALLADI22"],
           "no batch scaling: the method above is stated for typical batch sizes of this task "
           "and no reference recipe was given to scale from")
    return lr, BatchScaling(applied=False, method="none")


def _choose_lr(req: AdviceRequest, run: _Run, opt: str, tr: _Trace) -> tuple[float, BatchScaling]:
    lr, scaling = _base_lr(req, run, opt, tr)
    lr = _transfer_lr(req, opt, lr, tr)
    tr.amend("optimizer.lr", lr, ["O1.2"], f"η = {_g(lr)} is the step size that scales every "
             "update θ ← θ − η·∇L (O1.2; for adaptive methods η scales the normalised step)")
    return lr, scaling


def _transfer_lr(req: AdviceRequest, opt: str, lr: float, tr: _Trace) -> float:
    """The LR of the Adam-family method above, moved to an adaptive optimizer that is not
    Adam-like. SGD never comes here: its LR is chosen on its own (``_sgd_lr``)."""
    ref = req.reference
    if tr.ref_used and ref is not None and ref.optimizer in (None, opt) and opt != "adamw":
        # the recipe's LR is already this optimizer's (a recipe without an optimizer is taken
        # to be for the one the user runs)
        if req.optimizer is not None:
            tr.amend("optimizer.lr", lr, [], f"the reference recipe's LR is taken as {opt}'s "
                     "own, so no transfer")
        return lr
    if opt == "lion":
        k = param("L-LION", "lr_divisor")
        new = ranges.sig(lr / k)
        tr.amend("optimizer.lr", new, ["L-LION"], f"that is AdamW's LR; Lion's sign update has "
                 f"a larger norm, so its LR is 3-10x smaller (Chen 2023 §5): ÷ {k:g} (the "
                 f"lower end; 3x beat 10x in public language-model runs) ⇒ {_g(new)}")
        return new
    if opt in ("rmsprop", "adagrad"):
        lo, hi = param("O5.2", "lr_range")
        new = ranges.sig(ranges.clamp(lr, lo, hi))
        rid = "O4.2" if opt == "rmsprop" else "O4.1"
        tr.amend("optimizer.lr", new, [rid, "O5.2"], f"no published anchor for {opt} here: the "
                 f"Adam-family LR (same √v normalisation, {rid}) clamped to O5.2's "
                 f"{_g(lo)}…{_g(hi)} ⇒ {_g(new)}; low confidence — run the LR range test")
        return new
    if opt in ("adam", "adam_l2") and req.optimizer is not None:
        tr.amend("optimizer.lr", lr, ["O5.1"], "Adam's step is AdamW's without the decoupled "
                 "decay (O5.1), so AdamW's LR carries over")
    elif opt == "adafactor" and "L-T5" not in tr.fired:
        tr.amend("optimizer.lr", lr, ["L-ADAFACTOR"], "Adafactor without a T5 recipe: AdamW's "
                 "LR as Adafactor's external LR, with relative_step=False and "
                 "scale_parameter=False (Hugging Face's Adafactor notes) so the schedule "
                 "below applies")
    return lr


def _sgd_lr(req: AdviceRequest, tr: _Trace) -> tuple[float, BatchScaling]:
    """SGD for a task without an SGD recipe: LRs do not transfer from the adaptive methods."""
    if req.task == "vision_transformer":
        base, b0 = param("L-SGD-XFER", "vision_base_lr"), param("L-SGD-XFER", "vision_base_batch")
        tr.confidence -= 0.15
        return _scaled(req, tr, "sgd", base, b0, req.batch_size, "examples",
                       f"SGD LRs do not transfer from AdamW's; for vision, Goyal's SGD rule "
                       f"{_g(base)} per {b0} images (stated for ResNet/ImageNet)",
                       ["L-SGD-XFER", "L-GOYAL17"])
    lr = param("L-SGD-XFER", "guess_lr")
    tr.confidence -= 0.3
    tr.wide_search = True
    return _unscaled(tr, lr, ["L-SGD-XFER", "W11", "O7.1"], f"a guess: SGD LRs do not "
                     f"transfer from AdamW's and no published SGD recipe anchors {req.task}; "
                     f"W11's SGD(lr={_g(lr)}); confidence lowered and the LR search widened to "
                     "three decades")


def _outside_anchors(tr: _Trace, n: float, anchors: Any, rid: str, what: str,
                     penalty: float) -> None:
    """Warn (and lower the confidence by ``penalty``) when ``n`` parameters lies outside the
    anchors' fitted range: the methods hold the nearest anchor's value, they do not
    extrapolate."""
    if ranges.inside(n, anchors):
        return
    lo, hi = anchors[0][0], anchors[-1][0]
    side = "above" if n > hi else "below"
    tr.confidence -= penalty
    tr.warn([rid], f"{_g(n)} parameters is {side} the range of {rid}'s anchors ({what}: "
            f"{_g(lo)}…{_g(hi)} parameters); the LR is held at the nearest anchor's value, not "
            "extrapolated — treat it as a starting point and confirm it with a range test")


def _base_lr(req: AdviceRequest, run: _Run, opt: str, tr: _Trace) -> tuple[float, BatchScaling]:
    n = float(req.param_count)
    if _reference_usable(req, opt, tr):
        ref = req.reference
        assert ref is not None
        tr.confidence += 0.05
        tr.ref_used = True
        return _scaled(req, tr, opt, ref.lr, ref.batch_size, req.batch_size, "examples",
                       f"reference recipe LR {_g(ref.lr)} at batch {ref.batch_size}", [])
    if opt == "adafactor" and "L-T5" in tr.fired:
        key = "pretrain_lr" if req.task == "llm_pretrain" else "finetune_lr"
        lr = param("L-T5", key)
        return _unscaled(tr, lr, ["L-T5"], f"T5's Adafactor LR for "
                         f"{'pre-training' if key == 'pretrain_lr' else 'fine-tuning'}: {_g(lr)}")
    if opt == "sgd" and req.task != "image_classification_cnn":
        return _sgd_lr(req, tr)
    if req.task == "llm_pretrain":
        anchors = param("L-GPT3", "anchors")
        lr0 = ranges.loglog_interp(n, [(a[0], a[1]) for a in anchors])
        b0 = ranges.loglog_interp(n, [(a[0], a[2]) for a in anchors])
        _outside_anchors(tr, n, anchors, "L-GPT3", "GPT-3 Table 2.1", 0.15)
        assert run.tokens_per_batch is not None
        return _scaled(req, tr, opt, lr0, b0, run.tokens_per_batch, "tokens",
                       f"GPT-3 Table 2.1 LR interpolated log-log over parameters at "
                       f"N = {_g(n)}: {_g(lr0)} (anchor batch {_g(b0)} tokens)",
                       ["L-GPT3", "O7.2"])
    if req.task == "image_classification_cnn" and opt == "sgd":
        base, b0 = param("L-GOYAL17", "base_lr"), param("L-GOYAL17", "base_batch")
        if req.batch_size > param("L-GOYAL17", "max_batch"):
            tr.warn(["L-GOYAL17", "O7.1"], f"batch {req.batch_size} is beyond the ~8k where "
                    "linear scaling held for ResNet-50; O7.1 suggests a layer-wise method "
                    "(LARS/LAMB) for such batches")
            tr.confidence -= 0.1
        return _scaled(req, tr, opt, base, b0, req.batch_size, "examples",
                       f"Goyal et al.: LR {_g(base)} per {b0} images", ["L-GOYAL17"])
    if req.task == "vision_transformer":
        base, b0 = param("L-DEIT", "base_lr"), param("L-DEIT", "base_batch")
        knee = param("L-DEIT", "linear_max_batch")
        if req.batch_size <= knee:
            return _scaled(req, tr, opt, base, b0, req.batch_size, "examples",
                           f"DeiT's published rule 5e-4 × B/512, linear (Touvron 2021 Table 9; "
                           f"used up to batch {knee})", ["L-DEIT"], deit_linear=True)
        top = base * knee / b0
        return _scaled(req, tr, opt, top, knee, req.batch_size, "examples",
                       f"DeiT's linear rule 5e-4 × B/512 holds up to batch {knee} "
                       f"({_g(top)}, Touvron 2021 Table 9); beyond it the Adam-family √ rule",
                       ["L-DEIT"])
    if req.task == "llm_finetune_peft":
        anchors = param("L-LORA", "anchors")
        lr = ranges.loglog_interp(n, anchors)
        return _unscaled(tr, lr, ["L-LORA"], f"LoRA/QLoRA adapter LR, 2e-4 up to 13B and 1e-4 "
                         f"from 33B, log-log in between: {_g(lr)} at N = {_g(n)}")
    if req.task == "encoder_finetune":
        anchors = param("L-BERT", "anchors")
        _outside_anchors(tr, n, anchors, "L-BERT", "BERT-base/large fine-tuning", 0.1)
        lr = ranges.loglog_interp(n, anchors)
        return _unscaled(tr, lr, ["L-BERT", "L-ROBERTA", "O7.2"], "encoder fine-tuning LR "
                         f"log-log over parameters from 5e-5 at 1e8 to 1e-5 at 1e9: {_g(lr)}")
    if req.task == "llm_finetune_full":
        anchors = param("O7.2", "finetune_anchors")
        _outside_anchors(tr, n, anchors, "O7.2", "O7.2's fine-tuning range", 0.1)
        lr = ranges.loglog_interp(n, anchors)
        return _unscaled(tr, lr, ["O7.2", "L-ALPACA"], "O7.2's fine-tuning range 1e-5…5e-5, "
                         "larger model ⇒ smaller LR: log-log over parameters from 5e-5 at 1e8 "
                         f"to 1e-5 at 1e11: {_g(lr)} (Alpaca used 2e-5 at 7B)")
    # other (and an adaptive optimizer on a CNN, whose recipes are SGD's): O5.2's Adam range,
    # larger model ⇒ smaller LR (O7.2), log-log 1e6 → 1e9 parameters.
    lo, hi = param("O5.2", "lr_range")
    generic = [(1e6, hi), (1e9, lo)]
    lr = ranges.loglog_interp(n, generic)
    tr.confidence -= 0.3
    _outside_anchors(tr, n, generic, "O5.2", "O5.2's Adam range mapped over model size", 0.0)
    return _unscaled(tr, lr, ["O5.2", "O7.2"], f"O5.2's Adam range {_g(lo)}…{_g(hi)}, larger "
                     f"model ⇒ smaller LR (O7.2): log-log from {_g(hi)} at 1e6 to {_g(lo)} at "
                     f"1e9 parameters: {_g(lr)}")


def _check_lr_range(req: AdviceRequest, lr: float, opt: str, tr: _Trace) -> None:
    # O7.2's ranges are Adam-family LRs: SGD's, Lion's and the clamped RMSprop/AdaGrad LRs are
    # on other scales by design (their transfer rules say why).
    if "L-T5" in tr.fired or opt not in ADAM_LIKE | {"adafactor"}:
        return
    key = ("pretrain" if req.task == "llm_pretrain" else
           "finetune" if req.task in ("llm_finetune_full", "encoder_finetune") else None)
    if req.task == "llm_finetune_peft":
        lo, hi = param("O7.2", "finetune")
        tr.warn(["O7.2", "L-LORA"], f"LR {_g(lr)} is above O7.2's fine-tuning range "
                f"{_g(lo)}…{_g(hi)}: that range is for full fine-tuning; LoRA adapters start "
                "from zero and are trained at ~1e-4…2e-4 (Hu 2021, Dettmers 2023)")
        return
    if key is None:
        return
    lo, hi = param("O7.2", key)
    if not lo <= lr <= hi:
        tr.warn(["O7.2"], f"LR {_g(lr)} is outside O7.2's {key.replace('pre', 'pre-')} range "
                f"{_g(lo)}…{_g(hi)}; the value follows the size/batch method above "
                "(published recipes also leave it: GPT-3 125M used 6e-4)")


# --------------------------------------------------------------------------- weight decay


def _choose_wd(req: AdviceRequest, run: _Run, opt: str, lr: float, tr: _Trace) -> float:
    if opt == "adam":
        tr.why("optimizer.weight_decay", 0.0, ["O5.3", "W6", "W11"], "plain Adam takes "
               "weight_decay 0: its weight_decay is L2 in the gradient (W11), and decoupled "
               "decay (O5.3/W6) is only available as AdamW")
        return 0.0
    if opt == "lion":
        return _lion_wd(req, run, lr, tr)
    return _wd(req, run, opt, lr, tr)


def _lion_wd(req: AdviceRequest, run: _Run, lr: float, tr: _Trace) -> float:
    """AdamW's λ × Lion's LR divisor, so that the per-step decay lr·λ stays AdamW's."""
    k = param("L-LION", "lr_divisor")
    base = _wd(req, run, "adamw", lr * k, tr)
    ref = req.reference
    if tr.ref_used and ref is not None and ref.optimizer in (None, "lion") and \
            ref.weight_decay is not None:
        return base  # the recipe's λ is already Lion's
    cap = param("L-LION", "max_weight_decay")
    wd = ranges.sig(min(base * k, cap))
    tr.amend("optimizer.weight_decay", wd, ["L-LION"], f"that is AdamW's λ; Lion's LR is "
             f"÷ {k:g}, so λ × {k:g} keeps the decay per step lr·λ (Chen 2023 §5: λ 3-10x "
             f"larger) ⇒ {_g(wd)}" + (f", capped at {cap:g}" if base * k > cap else "")
             + "; O7.3's 0.01…0.1 is a range for AdamW's λ")
    return wd


def _wd(req: AdviceRequest, run: _Run, opt: str, lr: float, tr: _Trace) -> float:
    if opt == "adafactor" and "L-T5" in tr.fired:
        tr.why("optimizer.weight_decay", 0.0, ["L-T5", "W10a"], "T5 trained Adafactor without "
               "weight decay — the 'reason not to' that W10a allows")
        return 0.0
    if "L-QLORA" in tr.fired:
        wd = param("L-QLORA", "weight_decay")
        tr.why("optimizer.weight_decay", wd, ["L-QLORA", "W10a"], "QLoRA trained the adapters "
               "without weight decay (the base is frozen and quantized) — W10a's 'reason not to'")
        return wd
    ref_wd = _reference_wd(req, opt, tr)
    if ref_wd is not None:
        return ref_wd
    p = req.dropout
    dfac = max(param("W7d", "floor"), 1.0 - p)
    if opt not in DECOUPLED:
        # SGD, and the adaptive methods whose weight_decay is L2 in the gradient (adam_l2,
        # rmsprop, adagrad): W7b's coupled λ — for the adaptive ones only a start for W7a's grid.
        base = ranges.loglog_interp(run.examples, param("W7b", "anchors"))
        wd = ranges.sig(max(base * dfac, param("W10a", "floor")))
        ids = (["W7b", "W7d", "W10a", "W4", "L-GOYAL17"] if opt == "sgd"
               else ["W7b", "W7d", "W10a", "W6", "W7a"])
        tail = ("ImageNet-size data gives Goyal's 1e-4" if opt == "sgd" else
                f"for {opt} this λ is L2 in the gradient, divided by the adaptive rate (W6), so "
                "its strength differs per parameter: tune it on W7a's grid")
        tr.why("optimizer.weight_decay", wd, ids,
               f"coupled decay (L2) by data-set size (W7b): log-log from 1e-2 at 1e4 to 1e-4 "
               f"at 1e6 examples gives {_g(base)} at {_g(run.examples)}; dropout {p:g} ⇒ × "
               f"{_g(dfac)} (W7d); floor 1e-4 (W10a); {tail}")
        return wd
    lo, hi = param("O7.3", "range")
    if opt == "lamb":
        base, ids, src = param("L-LAMB", "weight_decay"), ["L-LAMB"], (
            "You et al. 2020 trained LAMB with 0.01")
    elif req.task == "llm_pretrain" and req.architecture == "encoder_transformer":
        base, ids, src = param("L-BERT", "weight_decay"), ["L-BERT", "L-ROBERTA"], (
            "BERT and RoBERTa pre-trained their encoders with 0.01")
    elif req.task == "llm_pretrain":
        base, ids, src = param("L-GPT3", "weight_decay"), ["L-GPT3", "L-LLAMA", "O7.3"], (
            "GPT-3 and LLaMA used 0.1 (O7.3: larger models somewhat larger)")
    elif req.task == "llm_finetune_peft":
        base, ids, src = param("L-LORA", "weight_decay"), ["L-LORA"], "LoRA used 0.01"
    elif req.task == "encoder_finetune":
        base, ids, src = param("L-BERT", "weight_decay"), ["L-BERT"], "BERT used 0.01"
    elif req.task == "vision_transformer":
        base, ids, src = param("L-DEIT", "weight_decay"), ["L-DEIT"], "DeiT used 0.05"
    elif req.task == "llm_finetune_full":
        base, ids, src = lo, ["L-ALPACA", "W11"], (
            "full fine-tuning starts from trained weights: O7.3's lower end, W11's AdamW 0.01 "
            "(Alpaca used 0)")
    else:
        base = ranges.loglog_interp(float(req.param_count), [(1e8, lo), (1e10, hi)])
        ids, src = ["O7.3"], (f"O7.3 'larger models somewhat larger': log-log from {_g(lo)} at "
                              f"1e8 to {_g(hi)} at 1e10 parameters")
    wd = base
    small = run.examples < param("W7b", "small")
    if small:
        wd *= 2
        ids = [*ids, "W7b"]
    wd = ranges.sig(ranges.clamp(wd * dfac, lo, hi))
    tr.why("optimizer.weight_decay", wd, [*ids, "W7d", "O7.3", "O5.3"],
           f"decoupled decay: {src} ⇒ {_g(base)}"
           + (f"; small data set ({_g(run.examples)} < 1e4 examples) ⇒ × 2 (W7b)" if small else "")
           + f"; dropout {p:g} ⇒ × {_g(dfac)} (W7d); clamped to O7.3's {_g(lo)}…{_g(hi)}")
    return wd


def _reference_wd(req: AdviceRequest, opt: str, tr: _Trace) -> float | None:
    """The reference recipe's λ, when it was used for the LR and its decay means the same thing
    as ours: Adam's ``weight_decay`` is L2 in the gradient (W6), not decoupled decay, so it does
    not carry over to AdamW."""
    ref = req.reference
    if ref is None or ref.weight_decay is None or not tr.ref_used:
        return None
    if ref.optimizer in ("adam", "adam_l2") and opt in DECOUPLED:
        tr.warn(["W6", "W11"], f"the reference's weight_decay {_g(ref.weight_decay)} is L2 "
                "inside Adam, not decoupled decay: it does not transfer, so λ was chosen anew")
        return None
    if ref.optimizer is not None and ref.optimizer != "sgd" and \
            (ref.optimizer in DECOUPLED) != (opt in DECOUPLED):
        tr.warn(["W6"], f"the reference's weight_decay {_g(ref.weight_decay)} is "
                f"{'decoupled' if ref.optimizer in DECOUPLED else 'L2'} decay and {opt}'s is "
                f"{'decoupled' if opt in DECOUPLED else 'L2'}: it does not transfer, so λ was "
                "chosen anew")
        return None
    wd = ref.weight_decay
    if opt in DECOUPLED:
        lo, hi = param("O7.3", "range")
        if not lo <= wd <= hi:
            tr.warn(["O7.3"], f"the reference's weight decay {_g(wd)} is outside O7.3's "
                    f"{_g(lo)}…{_g(hi)}; kept, since the recipe was tuned with it")
    tr.why("optimizer.weight_decay", wd, ["W10b", "O7.3"],
           f"the reference recipe's λ = {_g(wd)}, kept with its LR; W10b: retune λ if the LR "
           "moves far from the recipe's")
    return wd


# --------------------------------------------------------------------------- schedule


def _choose_schedule(req: AdviceRequest, run: _Run, opt: str, lr: float,
                     tr: _Trace) -> ScheduleAdvice:
    total = run.total_steps
    maxf = param("O6.2b", "max_fraction")
    t5 = "L-T5" in tr.fired
    tr.why("schedule.total_steps", total, ["O6.1"],
           "the request's total_steps" if req.total_steps else
           f"epochs × ceil(examples / batch) = {req.epochs:g} × {run.steps_per_epoch}")
    if total < 2 or (t5 and req.task != "llm_pretrain"):
        spec: dict[str, Any] = {"name": "constant", "lr": lr}
        ids = ["L-T5", "O6.1"] if t5 else ["O6.1"]
        why = ("T5 fine-tuned with a constant Adafactor LR" if t5 else
               "a one-step run has nothing to schedule")
        return _schedule_out(tr, spec, lr, 0, total, lr, ids, why, "no warmup: " + why)
    if t5:
        w = ranges.warmup_from_steps(total, param("L-T5", "warmup_steps"), maxf)
        spec = {"name": "inverse_sqrt", "init_lr": lr, "warmup_steps": w}
        end = lr * math.sqrt(max(w, 1)) / math.sqrt(total)
        return _schedule_out(tr, spec, lr, w, total, end, ["L-T5", "O6.3d"],
                             "T5 pre-training: inverse square root after 10^4 steps (O6.3d)",
                             f"T5's 10^4 steps capped at 5 % of the run (O6.2b): {w}")
    if req.task == "llm_finetune_peft" and req.memory_tight:
        w = ranges.warmup_from_fraction(total, param("L-QLORA", "warmup_fraction"), maxf)
        spec = {"name": "linear_warmup", "peak_lr": lr, "warmup_steps": w}
        return _schedule_out(tr, spec, lr, w, total, lr, ["L-QLORA", "O6.2"],
                             "QLoRA: constant LR after a short warmup",
                             f"QLoRA's warmup ratio 0.03 of {total} steps: {w}")
    if req.task == "llm_pretrain":
        ratio = param("O6.4", "min_lr_ratio")
        w = ranges.warmup_from_steps(total, param("O6.4", "warmup_steps"), maxf)
        ids, why = ["O6.4", "L-LLAMA", "O6.3b"], "O6.4: warmup then cosine to 0.1 × peak"
        wwhy = f"O6.4's 2,000 steps (LLaMA's too), capped at 5 % of {total} steps (O6.2b): {w}"
    elif req.task == "image_classification_cnn":
        return _cnn_schedule(req, run, opt, lr, tr)
    elif req.task == "vision_transformer":
        ratio = 0.0
        target = param("L-DEIT", "warmup_epochs") * run.steps_per_epoch
        w = ranges.warmup_from_steps(total, target, maxf)
        ids, why = ["L-DEIT", "O6.3b"], "warmup then cosine to 0 (DeiT)"
        wwhy = f"5 epochs ({target} steps, L-DEIT) capped at 5 % of {total} steps (O6.2b): {w}"
    else:
        ratio = 0.0
        frac, rid = {"llm_finetune_full": (param("L-ALPACA", "warmup_fraction"), "L-ALPACA"),
                     "llm_finetune_peft": (param("L-LORA", "warmup_fraction"), "L-LORA"),
                     "encoder_finetune": (param("L-ROBERTA", "warmup_fraction"),
                                          "L-ROBERTA")}.get(
            req.task, (ranges.loglog_interp(total, [(1e3, maxf),
                                                   (1e5, param("O6.2b", "min_fraction"))]),
                       "O6.2b"))
        w = ranges.warmup_from_fraction(total, frac, maxf)
        wwhy = (f"{frac:.3g} of {total} steps ({rid}; O6.2b caps it at 5 %, fraction "
                f"falls log-log from 5 % at 1e3 to 1 % at 1e5 steps for generic runs): {w}")
        if req.task in ("encoder_finetune", "llm_finetune_peft"):
            # The published fine-tuning recipes decay linearly to 0 after the warmup: BERT
            # (run_classifier.py), RoBERTa (fairseq polynomial_decay, power 1) and LoRA
            # (--scheduler linear). QLoRA (memory_tight PEFT) returned above with its constant LR.
            src = (["L-BERT", "L-ROBERTA"] if req.task == "encoder_finetune" else ["L-LORA"])
            spec = {"name": "warmup_linear", "max_lr": lr, "warmup_steps": w,
                    "total_steps": total, "end_lr": 0.0}
            why = ("warmup then linear decay to 0 (O6.3c), as "
                   + ("BERT (Devlin 2019) and RoBERTa (Liu 2019) fine-tuned"
                      if req.task == "encoder_finetune" else "LoRA (Hu 2021) fine-tuned"))
            return _schedule_out(tr, spec, lr, w, total, 0.0, [*src, "O6.3c"], why, wwhy)
        ids = [rid, "O6.3b"]
        if req.task == "llm_finetune_full":
            # Alpaca's published schedule is cosine (train.py --lr_scheduler_type cosine), not
            # the linear decay of the encoder and LoRA recipes, so the cosine shape is kept.
            why = "warmup then cosine to 0 (Alpaca's published schedule)"
        else:
            ratio = param("O6.4", "min_lr_ratio")
            ids.append("O6.4")
            why = "warmup then cosine to 0.1 × peak (O6.4's shape, the common default)"
    spec = {"name": "warmup_cosine", "max_lr": lr, "warmup_steps": w, "total_steps": total,
            "min_lr_ratio": ratio}
    return _schedule_out(tr, spec, lr, w, total, lr * ratio, ids, why, wwhy)


def _cnn_milestones(req: AdviceRequest, run: _Run, w: int) -> list[int] | None:
    """Goyal's decay epochs (30, 60, 80 of 90) scaled to the run's epochs and rounded to whole
    epochs, as steps; None when the run is not epoch-shaped (given in steps, or too few epochs for
    three distinct boundaries) or a milestone would fall inside the warmup or past the run."""
    if req.epochs is None or req.epochs < param("L-GOYAL17", "min_epochs"):
        return None
    scale = req.epochs / param("L-GOYAL17", "epochs")
    ms = [round(m * scale) * run.steps_per_epoch for m in param("L-GOYAL17", "milestone_epochs")]
    ok = (ms[0] >= max(w, 1) and ms[-1] <= run.total_steps - 1
          and all(b > a for a, b in itertools.pairwise(ms)))
    return ms if ok else None


def _cnn_schedule(req: AdviceRequest, run: _Run, opt: str, lr: float,
                  tr: _Trace) -> ScheduleAdvice:
    total, spe = run.total_steps, run.steps_per_epoch
    maxf = param("O6.2b", "max_fraction")
    if opt != "sgd":
        # Goyal's step decay and its no-warmup rule at B ≤ 256 are SGD's recipe; an adaptive
        # method needs the warmup for its second-moment estimate (O6.2) at any batch, and gets
        # He 2019's cosine, which needs no epoch boundaries.
        target = param("L-GOYAL17", "warmup_epochs") * spe
        w = ranges.warmup_from_steps(total, target, maxf)
        spec0: dict[str, Any] = {"name": "warmup_cosine", "max_lr": lr, "warmup_steps": w,
                                 "total_steps": total,
                                 "min_lr_ratio": param("L-HE19", "min_lr_ratio")}
        return _schedule_out(tr, spec0, lr, w, total, 0.0, ["L-HE19", "O6.3b"],
                             f"warmup then cosine to 0 (He et al. 2019): Goyal's step decay is "
                             f"an SGD recipe, and {opt} is adaptive",
                             f"5 epochs ({target} steps) capped at 5 % of {total} steps "
                             f"(O6.2b): {w} — {opt}'s second-moment estimate settles (O6.2)")
    # Goyal §2.2 warms up "with a large minibatch of size kn": the reference LR 0.1 at 256 images
    # is He 2016's, trained without a gradual warmup; so the warmup is only for larger batches.
    threshold = param("L-GOYAL17", "warmup_above_batch")
    if req.batch_size > threshold:
        target = param("L-GOYAL17", "warmup_epochs") * spe
        w = ranges.warmup_from_steps(total, target, maxf)
        wwhy = (f"batch {req.batch_size} > {threshold}: Goyal's gradual warmup over 5 epochs "
                f"({target} steps, L-GOYAL17) capped at 5 % of {total} steps (O6.2b): {w}")
    else:
        w = 0
        wwhy = (f"no warmup: batch {req.batch_size} ≤ {threshold}, where Goyal's reference LR "
                "0.1 × B/256 is He 2016's and was trained without one (L-GOYAL17 warms up large "
                "minibatches only)")
    ms = _cnn_milestones(req, run, w)
    if ms is not None:
        gamma = param("L-GOYAL17", "gamma")
        spec: dict[str, Any] = {"name": "warmup_step", "init_lr": lr, "warmup_steps": w,
                                "gamma": gamma, "milestones": ms}
        epochs = [m // spe for m in ms]
        why = (f"Goyal et al. 2017's step decay (O6.3a): × {gamma:g} at epochs 30, 60, 80 of 90, "
               f"i.e. 1/3, 2/3 and 8/9 of the run, rounded to whole epochs: epochs "
               f"{', '.join(map(str, epochs))} of {req.epochs:g} = steps "
               f"{', '.join(map(str, ms))}")
        end = lr * gamma ** len(ms)
        return _schedule_out(tr, spec, lr, w, total, end, ["L-GOYAL17", "O6.3a"], why, wwhy)
    spec = {"name": "warmup_cosine", "max_lr": lr, "warmup_steps": w, "total_steps": total,
            "min_lr_ratio": param("L-HE19", "min_lr_ratio")}
    why = ("warmup then cosine to 0 (He et al. 2019): the run is "
           + ("given in steps" if req.epochs is None else f"only {req.epochs:g} epochs")
           + ", so Goyal's epoch-boundary step decay (O6.3a) has no epochs to fall on")
    return _schedule_out(tr, spec, lr, w, total, 0.0, ["L-HE19", "L-GOYAL17", "O6.3b"], why, wwhy)


def _schedule_out(tr: _Trace, spec: dict[str, Any], lr: float, w: int, total: int, end: float,
                  ids: list[str], why: str, wwhy: str) -> ScheduleAdvice:
    decays = spec["name"] not in ("constant", "linear_warmup")
    tr.why("schedule.name", spec["name"], ids + (["O6.1"] if decays else []), why)
    tr.why("schedule.peak_lr", lr, ["O6.1"], "the schedule peaks at the advised LR")
    tr.why("schedule.warmup_steps", w, ["O6.2", "O6.2b"] + [i for i in ids if i.startswith("L")],
           "linear warmup (early large gradients, Adam's v̂ settling, BatchNorm statistics): "
           + wwhy if w else wwhy)
    end = ranges.sig(end)
    tr.why("schedule.min_lr", end, ids, f"LR on the last step: {_g(end)}")
    return ScheduleAdvice(name=spec["name"], peak_lr=lr, warmup_steps=w, total_steps=total,
                          min_lr=end, spec=spec)


# --------------------------------------------------------------------------- the rest


def _optimizer_details(req: AdviceRequest, opt: str, tr: _Trace) -> dict[str, Any]:
    out: dict[str, Any] = {"betas": None, "eps": None, "momentum": None, "nesterov": None}
    if opt == "sgd":
        m = param("O3.1", "momentum")
        out.update(momentum=m, nesterov=False)
        tr.why("optimizer.momentum", m, ["O3.1", "O2.1", "W11"], "momentum β = 0.9 (O3.1, W11)")
        tr.why("optimizer.nesterov", False, ["O3.2", "L-GOYAL17"], "plain momentum, as He 2016 "
               "trained ResNet; Goyal used Nesterov (O3.2) and found the two equally effective")
    elif opt == "lion":
        betas = tuple(param("L-LION", "betas"))
        out.update(betas=betas)
        tr.why("optimizer.betas", list(betas), ["L-LION", "O5.4"], f"Lion's β1 {betas[0]} "
               f"(interpolation for the sign) and β2 {betas[1]} (momentum EMA), Chen 2023 §5; "
               "(0.95, 0.98) if training is unstable")
        tr.why("optimizer.eps", None, ["L-LION"], "Lion has no ε: its update is a sign")
    elif opt == "rmsprop":
        beta, eps = param("O4.2", "beta"), CATALOG["rmsprop"].defaults["eps"]
        out.update(betas=(0.0, beta), eps=eps, momentum=0.0)
        tr.why("optimizer.betas", [0.0, beta], ["O4.2"], f"RMSprop's squared-gradient EMA β "
               f"{beta} (O4.2; torch alpha) as betas[1]; betas[0] = 0: no first-moment EMA")
        tr.why("optimizer.eps", eps, ["O4.2"], f"ε {eps:g} (torch's RMSprop default)")
        tr.why("optimizer.momentum", 0.0, ["O4.2"], "no heavy-ball momentum: O4.2's RMSprop "
               "has none (Adam is RMSprop plus momentum and bias correction, O5.1)")
    elif opt == "adagrad":
        eps = CATALOG["adagrad"].defaults["eps"]
        out.update(eps=eps)
        tr.why("optimizer.eps", eps, ["O4.1"], f"ε {eps:g} (torch's AdaGrad default; O4.1 "
               "gives no number)")
    elif opt in ADAM_LIKE:
        b1, b2, eps = param("O5.2", "beta1"), param("O5.2", "beta2"), param("O5.2", "eps")
        ids, eps_ids = ["O5.1", "O5.2"], ["O5.2"]
        b_why, eps_why = " (O5.2 defaults)", " (O5.2)"
        encoder = req.architecture == "encoder_transformer"
        if opt == "lamb":
            eps, eps_ids, eps_why = param("L-LAMB", "eps"), ["O5.2", "L-LAMB"], (
                " (You et al. 2020 trained LAMB with BERT's 1e-6)")
        if req.task == "llm_pretrain" and encoder and opt != "lamb":
            b2, eps = param("L-ROBERTA", "beta2"), param("L-ROBERTA", "eps")
            ids, eps_ids = [*ids, "L-ROBERTA"], ["O5.2", "L-ROBERTA"]
            b_why = (" (RoBERTa's pre-training β2 0.98: more stable at large batches, Liu 2019 "
                     "Table 9)")
            eps_why = " (RoBERTa's pre-training ε, Liu 2019 Table 9)"
        elif req.task == "llm_pretrain" and not (encoder and opt == "lamb"):
            b2 = param("L-GPT3", "beta2")
            ids += ["L-GPT3", "L-LLAMA"]
            b_why = " (0.95 as GPT-3 and LLaMA: faster second-moment adaptation for LLMs)"
        out.update(betas=(b1, b2), eps=eps)
        tr.why("optimizer.betas", [b1, b2], ids, f"β1 {b1}, β2 {b2}{b_why}")
        tr.why("optimizer.eps", eps, eps_ids, f"ε {eps:g}{eps_why}")
    else:  # adafactor: no betas/eps to set beyond the library's factored defaults
        tr.why("optimizer.betas", None, ["O5.4"], "Adafactor without first moment (β1 off) and "
               "its own decay schedule for the factored second moment")
        tr.why("optimizer.eps", None, ["O5.4"], "Adafactor's ε1 library default (1e-30)")
    return out


def _param_groups(req: AdviceRequest, tr: _Trace) -> ParamGroupRule:
    norms = [n for n in req.normalization if n != "none"]
    no_decay = ["bias"] + [f"{n} weight and bias" for n in norms]
    ids = ["W10c"] + (["O7.3"] if any(n in ("layernorm", "rmsnorm") for n in norms) else [])
    rule = ParamGroupRule(decay="all weight matrices, convolution kernels and embedding tables",
                          no_decay=no_decay, decay_embeddings=True)
    tr.why("param_groups", no_decay, ids, "no weight decay on biases and normalization "
           "parameters (O7.3: LayerNorm; W10c: BatchNorm and other norms) — every 1-D tensor")
    tr.why("optimizer.decay_embeddings", True, ["O7.3", "W10c"], "embedding tables are weight "
           "matrices; O7.3/W10c exclude only biases and normalization parameters")
    return rule


def _clip(req: AdviceRequest, opt: str, tr: _Trace) -> float | None:
    if req.task == "llm_finetune_peft" and req.memory_tight:
        c = param("L-QLORA", "clip_norm")
        tr.why("clip_norm", c, ["L-QLORA", "O7.4"], f"QLoRA clipped the global norm at {c}")
        return c
    if req.task == "image_classification_cnn" and opt != "sgd":
        c = param("O7.4", "clip_norm")
        tr.why("clip_norm", c, ["O7.4"], f"clip the global gradient norm at τ = {c}: the "
               f"ResNet recipes that skip it are SGD's, {opt} is not")
        return c
    if req.task == "image_classification_cnn":
        tr.why("clip_norm", None, ["O7.4", "L-GOYAL17"], "no clipping: O7.4 makes it essential "
               "for LLMs; the ResNet recipes train SGD + BatchNorm without it")
        return None
    c = param("O7.4", "clip_norm")
    tr.why("clip_norm", c, ["O7.4"], f"clip the global gradient norm at τ = {c}")
    return c


def _search(req: AdviceRequest, lr: float, wd: float, tr: _Trace) -> SearchAdvice:
    lo, hi = lr / 10, min(lr * 10, 10.0)
    ids = ["O7.2"]
    text = "one decade either side of the advised LR (the recipe tests accept 3×)"
    if tr.wide_search:
        half = 10 ** (param("L-SGD-XFER", "guess_decades") / 2)
        lo, hi = lr / half, min(lr * half, 10.0)
        ids.append("L-SGD-XFER")
        text = "three decades around the advised LR, because that LR is a guess (L-SGD-XFER)"
    a, b = param("L-KAPLAN20", "a"), param("L-KAPLAN20", "b")
    n_lo, n_hi = param("L-KAPLAN20", "n_range")
    if req.task == "llm_pretrain" and n_lo <= req.param_count <= n_hi:
        k = ranges.kaplan_lr(req.param_count, a, b)
        if k > 0:
            lo, hi = min(lo, k / 3), max(hi, min(k * 3, 10.0))
            ids.append("L-KAPLAN20")
            text += f"; widened to cover Kaplan 2020's LR(N) = {_g(k)} (×/÷ 3)"
    grid = sorted(set(param("W7a", "grid")) | {round(wd, 12)})
    tr.why("search.lr_range", [lo, hi], ids, "LR range test bounds: " + text)
    tr.why("search.weight_decay_grid", grid, ["W7a", "W10b"], "grid search of λ with "
           "validation (W7a's grid plus the advised λ); retune λ if the LR changes (W10b)")
    return SearchAdvice(lr_range=(lo, hi), weight_decay_grid=grid)


def _monitor(opt: str, tr: _Trace) -> list[str]:
    items = ["training and validation loss: validation rising while training falls is "
             "over-fitting (W8) ⇒ more weight decay / dropout (O7.5)",
             "loss NaN/Inf or oscillation ⇒ lower LR (O7.5); plateau ⇒ raise LR (O7.5)",
             "global gradient norm before clipping (O7.4)",
             "weight norm ‖w‖₂ (W10d)"]
    tr.why("monitor", len(items), ["W8", "O7.5", "W10d", "O7.4"],
           "what to watch; POST /v1/diagnose reads these logs")
    return items


def _final_warnings(req: AdviceRequest, opt: str, lr: float, wd: float, sched: ScheduleAdvice,
                    tr: _Trace) -> None:
    if wd > 0:
        w7c = param("W7c", "numerator") / lr
        tr.warn(["W7c", "O7.3", "W7b"], f"W7c's 'λ ≈ 0.01 / lr' would give λ = {_g(w7c)} at "
                f"lr {_g(lr)}; not applied: it conflicts with O7.3 (0.01…0.1) and W7b "
                f"(1e-4…1e-1) — per step it would shrink every weight by η·λ = 1 %")
    if opt in DECOUPLED and wd > 0 and sched.name != "constant":
        tr.fire("W10e")
        tr.warn(["W10e"], "decoupled decay is scaled by the LR (η·λ): as the schedule decays, "
                "the effective decay shrinks with it")
    ref = req.reference
    if ref is not None and tr.ref_used and not math.isclose(ref.lr, lr):
        tr.warn(["W10b"], f"the LR moved from the reference's {_g(ref.lr)} to {_g(lr)}: "
                "retune λ (W10b)")
    if req.architecture == "linear":
        tr.warn(["W9"], "a linear model: L1 (lasso) or elastic net gives sparse weights if "
                "feature selection is wanted; the advice uses L2-type decay")
    if opt == "sgd":
        tr.fire("O2.1", "W4", "W11", "O3.2")
    else:
        tr.fire("O5.3", "W6")  # implemented (decoupled) or warned about (L2 / none)
        if opt in ADAM_LIKE:
            tr.fire("O5.1")
        if opt in ("adamw", "adam", "adam_l2"):
            tr.fire("W11")
        if opt in ("adafactor", "lamb", "lion"):
            tr.fire("O5.4")
        if opt in ("rmsprop", "adagrad"):
            tr.fire("O4.2" if opt == "rmsprop" else "O4.1")


def _confidence(tr: _Trace) -> tuple[float, str]:
    c = round(ranges.clamp(tr.confidence, 0.05, 0.95), 2)
    label = "high" if c >= 0.75 else "medium" if c >= 0.5 else "low"
    tr.why("confidence", c, ["O7.2"], "0.85 for a task with a published anchor; lowered for "
           "extrapolation outside the anchors, clamped batch factors, a generic task, or a "
           "memory-driven optimizer swap; confirm with a range test (O7.2)")
    return c, label


def advise(req: AdviceRequest) -> Advice:
    """The advice for one request. Pure and deterministic."""
    tr = _Trace()
    run = _derive(req)
    _check_batch_unit(req, run, tr)
    opt = _choose_optimizer(req, tr)
    if opt == "adafactor" and "L-T5" not in tr.fired:
        tr.confidence -= 0.15
    lr, scaling = _choose_lr(req, run, opt, tr)
    _check_lr_range(req, lr, opt, tr)
    wd = _choose_wd(req, run, opt, lr, tr)
    details = _optimizer_details(req, opt, tr)
    groups = _param_groups(req, tr)
    optimizer = OptimizerAdvice(name=opt, lr=lr, weight_decay=wd, decay_embeddings=True,
                                **details)
    sched = _choose_schedule(req, run, opt, lr, tr)
    clip = _clip(req, opt, tr)
    search = _search(req, lr, wd, tr)
    monitor = _monitor(opt, tr)
    _final_warnings(req, opt, lr, wd, sched, tr)
    conf, label = _confidence(tr)
    artefacts = build_artefacts(optimizer, groups, sched, clip, tr_fired=list(tr.fired))
    tr.why("artefacts", "pytorch, hf_training_arguments, trial_config", ["W11", "O7.3", "O7.4"],
           "the same values as code: PyTorch param groups + optimizer + schedule + clipping, "
           "Hugging Face TrainingArguments keywords, and an optim_core TrialsConfig")
    return Advice(optimizer=optimizer, param_groups=groups, schedule=sched, clip_norm=clip,
                  batch_scaling=scaling, search=search, monitor=monitor,
                  rationale=tr.rationale, warnings=tr.warnings, confidence=conf,
                  confidence_label=label, rules_fired=list(tr.fired),
                  rules_version=RULES_VERSION, optim_core_version=__version__,
                  artefacts=artefacts)
