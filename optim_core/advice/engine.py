"""The advice engine: an ``AdviceRequest`` in, an ``Advice`` out. Pure, torch-free, no I/O.

Decisions are rows of the recipe table (``recipes.py``): the request resolves to a regime, O7.1
(or the user) picks the optimizer, and the (regime, optimizer) row — or, where the optimizer has
no row of its own, the regime's native row and a transfer rule — supplies every value. The engine
only evaluates the row's methods; each rationale entry is formatted from the numbers it quotes.

``Engine(exclude=families)`` refits every row without those families' anchors: the
leave-one-family-out benchmark (bench/advice_recipes.py) scores each family with an engine that
never saw it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from optim_core import __version__
from optim_core.advice import ranges
from optim_core.advice.artefacts import build_artefacts
from optim_core.advice.models import (
    Advice,
    AdviceRequest,
    AdviceWarning,
    BatchScaling,
    LoraAdvice,
    OptimizerAdvice,
    ParamGroupRule,
    RationaleEntry,
    RecipeUsed,
    ScheduleAdvice,
    SearchAdvice,
    steps_per_epoch,
)
from optim_core.advice.recipes import (
    CONFIDENCE,
    DISAGREEMENT_FACTOR,
    LARGE_BATCH,
    Fitted,
    Table,
    regime_of,
    table,
)
from optim_core.advice.rules import RULES_BY_ID, RULES_VERSION, param
from optim_core.bounds import MAX_LR, MIN_LR
from optim_core.errors import SpecError
from optim_core.specs.catalog import CATALOG, names_where

DECOUPLED = names_where(lambda o: o.decoupled)
ADAM_LIKE = names_where(lambda o: o.adam_like)
MOMENTUM_SGD = frozenset({"sgd", "lars"})  # LR on SGD's scale (linear batch rule, O2.2b)
VISION = frozenset({"vision_adamw", "vision_finetune", "cnn_finetune", "cnn_imagenet",
                    "cnn_small", "cnn_nobn"})
# A size/batch fit extrapolates this far beyond its anchors (with a warning), then holds.
FIT_REACH = {"params": 10.0, "batch": 8.0}
LLM_LIKE = frozenset({"llm_pretrain", "llm_sft", "llm_lora", "llm_qlora", "llm_preference",
                      "mm_projector"})
# Rule ids that describe each optimizer (cited with it).
OPT_IDS: dict[str, list[str]] = {
    "sgd": ["O3.1", "W11"], "lars": ["L-LARS", "O7.1"], "adagrad": ["O4.1"],
    "rmsprop": ["O4.2"], "adam": ["O5.1"], "adam_l2": ["O5.1", "W11"],
    "adamw": ["O5.3", "W6"], "adafactor": ["O5.4"], "lamb": ["O5.4", "L-LAMB"],
    "lion": ["O5.4", "L-LION"]}


def _g(x: float) -> str:
    return f"{x:.3g}"


@dataclass
class _Trace:
    # One RationaleEntry per field, kept in the order fields were first decided; the index finds
    # an entry again when a later decision (a transfer, a bound) revises it.
    entries: list[RationaleEntry] = field(default_factory=list)
    index: dict[str, RationaleEntry] = field(default_factory=dict)
    warnings: list[AdviceWarning] = field(default_factory=list)
    fired: dict[str, None] = field(default_factory=dict)
    confidence: float = 0.85
    wide_search: bool = False
    ref_used: bool = False

    def fire(self, *ids: str) -> None:
        self._fire(ids)

    def _fire(self, ids: Iterable[str]) -> None:
        fired = self.fired
        for rid in ids:
            if rid not in fired:
                if rid not in RULES_BY_ID:  # a typo in a row or the engine fails loudly
                    raise KeyError(f"unknown rule id {rid!r}")
                fired[rid] = None

    def why(self, field_: str, value: Any, ids: Iterable[str], text: str) -> None:
        """One entry per field: a later decision on the same field (a transfer, a bound)
        replaces the value and extends the reasoning it started from."""
        cited: list[str] = []
        for rid in ids:  # 1-6 ids: a list scan is cheaper than building a dict
            if rid not in cited:
                cited.append(rid)
        self._fire(cited)
        old = self.index.get(field_)
        if old is None:
            entry = RationaleEntry(field_, value, cited, text)
            self.index[field_] = entry
            self.entries.append(entry)
            return
        old.revise(value, cited, text)

    def warn(self, ids: list[str], text: str) -> None:
        self.fire(*ids)
        self.warnings.append(AdviceWarning(ids, text))

    def lose(self, cause: str) -> None:
        self.confidence -= CONFIDENCE[cause]


@dataclass(frozen=True)
class _Run:
    examples: float
    steps_per_epoch: int
    total_steps: int
    tokens_per_batch: float | None


def _derive(req: AdviceRequest) -> _Run:
    seq = req.seq_len or 1
    examples = req.dataset_size / seq if req.dataset_unit == "tokens" else float(req.dataset_size)
    spe = steps_per_epoch(req.dataset_size, req.dataset_unit, req.seq_len, req.batch_size)
    total = req.total_steps or max(1, math.ceil((req.epochs or 1.0) * spe))
    tokens = float(req.batch_size * req.seq_len) if req.seq_len else None
    return _Run(max(examples, 1.0), spe, total, tokens)


# --------------------------------------------------------------------------- the engine


class Engine:
    """The advice engine over one fitted table (``exclude``: families left out of the fits)."""

    def __init__(self, exclude: Iterable[str] = ()) -> None:
        self.table: Table = table(frozenset(exclude))

    # -- optimizer ---------------------------------------------------------------------------

    def _pick(self, req: AdviceRequest, regime: str) -> tuple[str, list[str], str]:
        native = self.table.native[regime].row.optimizer
        big = req.batch_size > LARGE_BATCH
        if req.memory_tight and regime not in ("llm_qlora", "llm_lora", "t5_pretrain",
                                               "t5_finetune"):
            return "adafactor", ["O7.1", "O5.4"], (
                "memory is tight: Adafactor keeps a factored second moment instead of Adam's "
                "two full-size states")
        if big and regime in ("cnn_imagenet", "cnn_small", "cnn_nobn"):
            return "lars", ["O7.1", "L-LARS"], (
                f"batch {req.batch_size} > {LARGE_BATCH}: LARS (layer-wise trust ratio on SGD), "
                "as the large-batch ResNet recipes (SimCLR, BYOL) used; linear scaling of plain "
                f"SGD held only to ~{LARGE_BATCH} (Goyal 2017)")
        if big and regime in ("mlm_pretrain", "vision_adamw", "generic"):
            return "lamb", ["O7.1", "O5.4", "L-LAMB"], (
                f"batch {req.batch_size} > {LARGE_BATCH}: LAMB, as You et al. 2020 pre-trained "
                "BERT at 32k-64k sequences where earlier large-batch methods failed")
        if big and regime in LLM_LIKE:
            return native, ["O7.1", "L-LLMBATCH"], (
                f"{native}: batch {req.batch_size} is beyond O7.1's {LARGE_BATCH}, but every "
                "published LLM recipe trained AdamW at its batch (L-LLMBATCH)")
        fitted = self.table.native[regime]
        return native, ["O7.1", *fitted.row.sources[:2]], (
            f"{native}: the optimizer of the published recipes for {regime} "
            f"({', '.join(fitted.families) or 'no family left'})")

    def _choose_optimizer(self, req: AdviceRequest, regime: str, tr: _Trace) -> str:
        pick, ids, why = self._pick(req, regime)
        chosen = req.optimizer
        if chosen is None or chosen == pick:
            tr.why("optimizer.name", pick, [*ids, *OPT_IDS[pick]],
                   why if chosen is None else f"{pick}, as you chose; O7.1 picks it too: {why}")
            return pick
        tr.why("optimizer.name", chosen, ["O7.1", *OPT_IDS[chosen]],
               f"{chosen}: your choice (request field 'optimizer'); O7.1 would pick {pick} "
               f"({why}); the values below are {chosen}'s")
        _advise_against(req, regime, chosen, pick, tr)
        return chosen

    # -- the row -----------------------------------------------------------------------------

    def _row_for(self, regime: str, opt: str) -> tuple[Fitted, str | None]:
        """The row that decides, and the transfer that moves its LR to ``opt`` (None: the row
        is ``opt``'s own)."""
        own = self.table.get(regime, opt)
        if own is not None and (own.anchors or own.row.fallback_lr > 0):
            return own, None
        native = self.table.native[regime]
        if native.row.optimizer == "adafactor":
            # T5's Adafactor LR (relative scale, no decay) is no other optimizer's
            generic = self.table.native["generic"]
            return generic, None if opt == generic.row.optimizer else opt
        if opt in MOMENTUM_SGD and native.row.optimizer not in MOMENTUM_SGD:
            return native, "to_sgd"
        if opt not in MOMENTUM_SGD and native.row.optimizer in MOMENTUM_SGD:
            # an adaptive method on an SGD regime: the ViT/ConvNeXt family of settings
            alt = self.table.get("cnn_imagenet", "adamw")
            assert alt is not None
            return alt, "adaptive_on_cnn" if opt == "adamw" else opt
        return native, opt

    def advise(self, req: AdviceRequest) -> Advice:
        tr = _Trace()
        run = _derive(req)
        _check_batch_unit(req, run, tr)
        regime = regime_of(req.task, req.stage or "pretrain", req.modality or "other",
                           req.architecture, req.memory_tight, run.examples, req.normalization)
        opt = self._choose_optimizer(req, regime, tr)
        fitted, transfer = self._row_for(regime, opt)
        row = fitted.row
        tr.confidence = row.confidence
        tr.fire(*row.sources)
        if transfer is not None:
            tr.lose("transfer")
        lr, scaling, spread = _lr(req, run, fitted, opt, transfer, tr)
        wd = _weight_decay(req, fitted, opt, transfer, tr)
        lr, wd = _lion(req, fitted, opt, transfer, lr, wd, tr)
        tr.why("optimizer.lr", lr, ["O1.2"], f"η = {_g(lr)} is the step size that scales "
               "every update θ ← θ − η·∇L (O1.2; for adaptive methods η scales the normalised "
               "step)")
        _check_lr_range(regime, lr, opt, transfer, tr)
        details = _details(fitted, opt, transfer, tr)
        groups = _param_groups(req, tr)
        optimizer = OptimizerAdvice(name=opt, lr=lr, weight_decay=wd, decay_embeddings=False,
                                    **details)
        sched = _schedule(req, run, fitted, opt, transfer, lr, tr)
        clip, basis = _clip(fitted, opt, transfer, tr)
        search = _search(req, run, regime, lr, wd, spread, tr)
        peft = _peft(fitted, req, tr)
        monitor = _monitor(tr)
        _final_warnings(req, opt, lr, wd, sched, tr)
        conf = round(ranges.clamp(tr.confidence, 0.05, 0.95), 2)
        label = "high" if conf >= 0.75 else "medium" if conf >= 0.5 else "low"
        tr.why("confidence", conf, ["O7.2"], f"row {row.id}'s {row.confidence:g}, lowered by "
               "the causes above (transfer, extrapolation, disagreement, clamped batch); "
               "confirm with a range test (O7.2)")
        recipe = RecipeUsed(id=row.id if transfer is None else f"{row.id} → {opt}",
                            regime=regime, stage=req.stage or "pretrain",
                            modality=req.modality or "other", sources=list(row.sources),
                            anchor_families=fitted.families,
                            published_lr_range=spread[:2] if spread else None,
                            disagreement=bool(spread and spread[2]))
        artefacts = build_artefacts(optimizer, groups, sched, clip, tr_fired=list(tr.fired))
        tr.why("artefacts", "pytorch, hf_training_arguments, trial_config",
               ["W11", "O7.3", "O7.4"], "the same values as code: PyTorch param groups + "
               "optimizer + schedule + clipping, Hugging Face TrainingArguments keywords, and "
               "an optim_core TrialsConfig")
        return Advice.model_construct(
            recipe=recipe, optimizer=optimizer, param_groups=groups, schedule=sched,
            clip_norm=clip, clip_basis=basis, peft=peft, batch_scaling=scaling, search=search,
            monitor=monitor, rationale=tr.entries, warnings=tr.warnings, confidence=conf,
            confidence_label=label, rules_fired=list(tr.fired), rules_version=RULES_VERSION,
            optim_core_version=__version__, artefacts=artefacts)


# --------------------------------------------------------------------------- pieces


def _check_batch_unit(req: AdviceRequest, run: _Run, tr: _Trace) -> None:
    cap = param("L-BATCH-UNIT", "max_tokens")
    if run.tokens_per_batch is None or run.tokens_per_batch <= cap:
        return
    assert req.seq_len is not None
    tr.lose("batch_unit")
    seqs = max(1, req.batch_size // req.seq_len)
    tr.warn(["L-BATCH-UNIT", "O7.1"], f"batch_size × seq_len = {req.batch_size} × {req.seq_len} "
            f"= {_g(run.tokens_per_batch)} tokens per step, above {_g(cap)}: batch_size counts "
            f"sequences, not tokens — if {req.batch_size} is tokens, the batch is {seqs} "
            f"sequences of {req.seq_len}; the advice takes the request as given")


def _advise_against(req: AdviceRequest, regime: str, opt: str, pick: str, tr: _Trace) -> None:
    if opt == "adagrad":
        tr.warn(["O4.1"], "AdaGrad accumulates squared gradients, so its effective LR decays "
                "monotonically and training can stall (O4.1); RMSprop/Adam fix this with an EMA")
    elif opt == "rmsprop" and regime != "llm_preference":
        tr.warn(["O4.2", "O5.1"], "RMSprop has no momentum and no bias correction; Adam adds "
                "both (O5.1), and no published recipe anchors RMSprop's LR for this task")
    elif opt == "adam":
        tr.warn(["O5.3", "W6", "W11"], "plain Adam: weight_decay must be 0 (Adam(weight_decay=) "
                "would be L2 in the gradient, W11), so decoupled decay is unavailable — prefer "
                "AdamW (O5.3/W6), the same update plus decoupled decay")
    elif opt == "adam_l2":
        tr.warn(["O5.3", "W6", "W11"], "Adam + L2: the L2 term is divided by the adaptive rate "
                "√v̂, so parameters with large gradients are barely regularized — prefer AdamW's "
                "decoupled decay (O5.3/W6)")
    elif opt in MOMENTUM_SGD and (regime not in VISION or req.task == "vision_transformer"):
        tr.warn(["O7.1"], f"{opt} for a transformer ({regime}): O7.1 advises {pick}; SGD + "
                "momentum is the CNN choice and usually trains transformers markedly worse")


def _reference_usable(req: AdviceRequest, opt: str, tr: _Trace) -> bool:
    ref = req.reference
    if ref is None:
        return False
    if ref.optimizer == "adagrad" and opt != "adagrad":
        tr.warn(["O4.1"], "the reference recipe uses AdaGrad, whose accumulated squared "
                "gradients make the LR decay monotonically until training stalls; the advice "
                f"uses {opt}")
    elif ref.optimizer == "rmsprop" and opt != "rmsprop":
        tr.warn(["O4.2"], "the reference recipe uses RMSprop (EMA β 0.9); Adam adds momentum "
                f"and bias correction, so the advice uses {opt}")
    elif ref.optimizer in ("adam", "adam_l2") and opt in DECOUPLED:
        tr.warn(["W6", "W11"], "the reference recipe uses Adam; Adam(weight_decay=) is L2, "
                "scaled unevenly by the adaptive rate — the advice uses decoupled decay")
    if ref.optimizer is not None and (ref.optimizer in MOMENTUM_SGD) != (opt in MOMENTUM_SGD):
        tr.warn(["O7.1"], f"the reference LR ({_g(ref.lr)}, {ref.optimizer}) is for another "
                f"optimizer family than {opt}; LRs do not transfer between SGD and adaptive "
                "methods, so the reference was not used")
        tr.confidence -= CONFIDENCE["clamped_batch"]
        return False
    return True


def _least_reference(factor: float) -> float:
    """The smallest reference LR, at three significant digits, that ``factor`` scales to at
    least MIN_LR: rounded up, so that the bound a refusal states is one the engine accepts."""
    x = ranges.sig(MIN_LR / factor)
    step = 10.0 ** (math.floor(math.log10(x)) - 2)
    while ranges.sig(x * factor) < MIN_LR:
        x = ranges.sig(x + step)
    return x


def _batch_of(req: AdviceRequest, run: _Run, fitted: Fitted) -> tuple[float, str]:
    if fitted.row.batch_unit == "tokens" and run.tokens_per_batch is not None:
        return run.tokens_per_batch, "tokens"
    return float(req.batch_size), "examples"


def _spread(fitted: Fitted, n: float, b: float) -> tuple[float, float, bool] | None:
    """The LRs the row's anchors give at this request (each moved by the row's own size/batch
    rule), over anchors of the same setting: (lowest, highest, disagree by > 2×)."""
    row, anchors = fitted.row, fitted.anchors
    if not anchors:
        return None
    vals: list[float] = []
    if row.lr_method == "fit" and fitted.coef is not None:
        _, cb, cc = fitted.coef
        for a in fitted.near_size(n, 3.0) or anchors:
            assert a.params and a.batch
            vals.append(a.lr * (n / a.params) ** cb * (b / a.batch) ** cc)
    elif row.lr_method in ("per_batch_linear", "per_batch_sqrt"):
        p = 1.0 if row.lr_method == "per_batch_linear" else 0.5
        vals = [a.lr * (b / (a.batch or b)) ** p for a in anchors]
    else:
        vals = [a.lr for a in anchors]
    lo, hi = min(vals), max(vals)
    return ranges.sig(lo), ranges.sig(hi), hi / lo > DISAGREEMENT_FACTOR


def _lr(req: AdviceRequest, run: _Run, fitted: Fitted, opt: str, transfer: str | None,
        tr: _Trace) -> tuple[float, BatchScaling, tuple[float, float, bool] | None]:
    row = fitted.row
    b, unit = _batch_of(req, run, fitted)
    n = float(req.param_count)
    ids = list(row.sources)
    if _reference_usable(req, opt, tr):
        ref = req.reference
        assert ref is not None
        tr.confidence -= CONFIDENCE["reference"]
        tr.ref_used = True
        method = "linear" if opt in MOMENTUM_SGD else "sqrt"
        rid = "O2.2b" if method == "linear" else "L-MALLADI22"
        bounds = param("L-GOYAL17", "ratio_clamp") if method == "linear" else \
            param("L-MALLADI22", "clamp")
        factor = ranges.batch_factor(method, req.batch_size, ref.batch_size, bounds)
        lr = ranges.sig(min(ref.lr * factor, MAX_LR))
        if lr < MIN_LR:
            # Scaling down can take a reference inside the bounds below them (÷ 256 at most);
            # the advice would then be an LR no request may give, so the reference is refused.
            raise SpecError(
                f"the reference LR {_g(ref.lr)} at batch {ref.batch_size}, {method}-scaled to "
                f"batch {req.batch_size} (× {_g(factor)}), gives {_g(lr)}, below the smallest "
                f"LR advised ({MIN_LR:g})", field="reference.lr", value=ref.lr,
                allowed=f">= {_least_reference(factor):g} for this batch change (MIN_LR "
                        f"{MIN_LR:g} ÷ the factor {_g(factor)}), <= {MAX_LR:g}")
        tr.why("optimizer.lr", lr, [rid, "O2.2a"], f"your reference recipe's LR {_g(ref.lr)} "
               f"at batch {ref.batch_size}, {method} batch scaling to {req.batch_size}: × "
               f"{_g(factor)} ⇒ {_g(lr)}")
        scaling = BatchScaling(applied=not math.isclose(factor, 1.0), method=method,
                               from_batch=float(ref.batch_size), to_batch=float(req.batch_size),
                               factor=ranges.sig(factor, 4))
        tr.why("batch_scaling", method, [rid, "O2.2a"], f"{method} from the reference recipe; "
               "O2.2a: a larger batch has less gradient noise, which lets the LR grow")
        return lr, scaling, None
    spread = _spread(fitted, n, b) if transfer is None or transfer in ("lion",) else None
    scaling = BatchScaling(applied=False, method="none")
    if not fitted.anchors:
        tr.lose("no_anchor_left")
        lr, text = _fallback_lr(fitted, n, b)
        ids.append("O7.2")
    elif row.lr_method == "fit":
        assert fitted.coef is not None
        a0, cb, cc = fitted.coef
        n_lo, n_hi = fitted.size_range
        b_lo, b_hi = fitted.batch_range
        n_used = ranges.clamp(n, n_lo / FIT_REACH["params"], n_hi * FIT_REACH["params"])
        b_used = ranges.clamp(b, b_lo / FIT_REACH["batch"], b_hi * FIT_REACH["batch"])
        lr = math.exp(a0 + cb * math.log(n_used) + cc * math.log(b_used))
        k, fams = len(fitted.anchors), len(fitted.families)
        text = (f"log-log fit over {k} published runs of {fams} families "
                f"({', '.join(fitted.families)}): ln η = {a0:.3f} {cb:+.3f}·ln N "
                f"{cc:+.3f}·ln B ({unit}) at N = {_g(n_used)}, B = {_g(b_used)} ⇒ {_g(lr)}")
        if not (n_lo <= n <= n_hi and b_lo <= b <= b_hi):
            tr.lose("outside_anchors")
            tr.warn(list(row.sources[:1]), f"N = {_g(n)}, B = {_g(b)} {unit} is outside the "
                    f"anchors' {_g(n_lo)}…{_g(n_hi)} parameters / {_g(b_lo)}…"
                    f"{_g(b_hi)} {unit}: the fit is extrapolated (at most "
                    f"{FIT_REACH['params']:g}× in size, {FIT_REACH['batch']:g}× in batch, then "
                    "held) — confirm it with a range test")
        if cc > 0:
            scaling = BatchScaling(applied=True, method="sqrt" if cc >= 0.45 else "none",
                                   from_batch=ranges.sig(fitted.batch_geomean),
                                   to_batch=ranges.sig(b_used), unit=unit,
                                   factor=ranges.sig(cc, 4))
    elif row.lr_method in ("per_batch_linear", "per_batch_sqrt"):
        assert fitted.per_batch is not None
        mid = fitted.batch_geomean
        knee = row.linear_max_batch or math.inf
        linear = row.lr_method == "per_batch_linear"
        raw = (min(b, knee) * (math.sqrt(b / knee) if b > knee else 1.0)) if linear \
            else math.sqrt(b)
        lo_f, hi_f = row.lr_floor_factor, row.lr_ceiling_factor
        eff = ranges.clamp(raw / (mid if linear else math.sqrt(mid)), lo_f, hi_f)
        lr = fitted.per_batch * eff * (mid if linear else math.sqrt(mid))
        if not math.isclose(eff, raw / (mid if linear else math.sqrt(mid))):
            tr.lose("clamped_batch")
            tr.warn(["O2.2a"], f"batch {req.batch_size} is far from the anchors' {_g(mid)}: "
                    f"the batch factor was clamped to {_g(eff)}")
        rule = ("linear" if linear else "square-root") + (
            f" up to batch {_g(knee)}, √ beyond" if linear and knee < math.inf else "")
        text = (f"{rule} batch rule, median over {len(fitted.anchors)} published runs "
                f"({', '.join(fitted.families)}) of η per "
                f"{'example' if linear else '√example'} = {fitted.per_batch:.3g} at batch "
                f"{_g(b)} ⇒ {_g(lr)}")
        scaling = BatchScaling(applied=True, method="linear" if linear and b <= knee else "sqrt",
                               from_batch=ranges.sig(mid), to_batch=float(req.batch_size),
                               factor=ranges.sig(lr / (fitted.median_lr or lr), 4))
        ids += ["O2.2b"] if linear else ["L-MALLADI22"]
    else:
        assert fitted.median_lr is not None
        lr = fitted.median_lr
        text = (f"median LR of {len(fitted.anchors)} published runs "
                f"({', '.join(f'{a.family} {_g(a.lr)}' for a in fitted.anchors)}) ⇒ {_g(lr)}; "
                "these recipes do not scale it with batch or size")
    lr = ranges.sig(min(lr, MAX_LR))
    tr.why("optimizer.lr", lr, ids, text)
    lr = _transfer_lr(opt, transfer, fitted, lr, req, tr)
    if spread is not None and spread[2]:
        tr.lose("disagreement")
        tr.warn(list(row.sources), f"published recipes for this setting disagree by more than "
                f"{DISAGREEMENT_FACTOR:g}×: at this size and batch their LRs span "
                f"{_g(spread[0])}…{_g(spread[1])} ({', '.join(fitted.families)}); the advice "
                f"takes {_g(lr)} and search.lr_range covers the span")
    tr.why("batch_scaling", scaling.method, ["O2.2a"], "how the row moves the LR with the "
           "batch: " + (f"fitted exponent {scaling.factor:g} on the batch" if row.lr_method
                        == "fit" and scaling.applied else scaling.method))
    return lr, scaling, spread


def _point_lr(fitted: Fitted, n: float, b: float) -> float:
    """A row's LR at (N, B) by its own method, without the notes (a fallback's source)."""
    if not fitted.anchors:
        return _fallback_lr(fitted, n, b)[0]
    if fitted.coef is not None:
        a0, cb, cc = fitted.coef
        n_lo, n_hi = fitted.size_range
        b_lo, b_hi = fitted.batch_range
        n = ranges.clamp(n, n_lo / FIT_REACH["params"], n_hi * FIT_REACH["params"])
        b = ranges.clamp(b, b_lo / FIT_REACH["batch"], b_hi * FIT_REACH["batch"])
        return math.exp(a0 + cb * math.log(n) + cc * math.log(b))
    if fitted.per_batch is not None:
        power = 1.0 if fitted.row.lr_method == "per_batch_linear" else 0.5
        return fitted.per_batch * b ** power
    assert fitted.median_lr is not None
    return fitted.median_lr


def _fallback_lr(fitted: Fitted, n: float, b: float) -> tuple[float, str]:
    """The LR of a row with every anchor excluded: a transfer from related rows (its
    ``fallback_rule``) or, where the row names none or they are empty too, its constant."""
    row, src = fitted.row, fitted.source
    head = f"no published anchor left for {row.id}: "
    if fitted.pooled_lr is not None:
        return fitted.pooled_lr, (
            head + f"the log-median LR of the {' and '.join(row.fallback_from)} recipes "
            f"({', '.join(fitted.pooled_families)}), the same kind of fine-tuning in other "
            f"families ⇒ {_g(fitted.pooled_lr)}")
    if src is not None and fitted.ratio is not None:
        base = _point_lr(src, n, b)
        lr = base * fitted.ratio
        return lr, (head + f"{src.row.id}'s LR here ({_g(base)}) × {fitted.ratio:.3g}, the "
                    "log-median fine-tune / pre-train LR ratio of "
                    f"{len(fitted.ratio_families)} families' own pairs "
                    f"({', '.join(fitted.ratio_families)}) ⇒ {_g(lr)}")
    if src is not None and src.coef is not None:
        b_src = src.batch_geomean
        lr = _point_lr(src, n, b_src)
        return lr, (head + f"{src.row.id}'s size law (fitted over {len(src.families)} "
                    f"families: ln η = {src.coef[0]:.3f} {src.coef[1]:+.3f}·ln N "
                    f"{src.coef[2]:+.3f}·ln B) at N = {_g(n)} and its anchors' batch "
                    f"{_g(b_src)} {src.row.batch_unit}: a transformer's LR scale follows its "
                    f"size, not its data's modality ⇒ {_g(lr)}")
    lr = row.fallback_lr * (b if row.fallback_per_batch else 1.0)
    return lr, (head + f"{row.fallback_source} ⇒ {_g(lr)}"
                + (f" (per unit of batch × {_g(b)})" if row.fallback_per_batch else ""))


def _transfer_lr(opt: str, transfer: str | None, fitted: Fitted, lr: float,
                 req: AdviceRequest, tr: _Trace) -> float:
    if transfer is None or transfer == "lion":
        return lr
    src = fitted.row.optimizer
    if transfer == "to_sgd":
        if fitted.row.regime in VISION:
            base, b0 = param("L-SGD-XFER", "vision_base_lr"), param("L-SGD-XFER",
                                                                   "vision_base_batch")
            new = ranges.sig(min(base * req.batch_size / b0, MAX_LR))
            tr.why("optimizer.lr", new, ["L-SGD-XFER", "L-GOYAL17"], f"{opt}: LRs do not "
                   f"transfer from {src}'s; Goyal's SGD rule {_g(base)} per {b0} images ⇒ "
                   f"{_g(new)}")
            return new
        new = param("L-SGD-XFER", "guess_lr")
        tr.lose("transfer_guess")
        tr.wide_search = True
        tr.why("optimizer.lr", new, ["L-SGD-XFER", "W11"], f"a guess: {opt} LRs do not transfer "
               f"from {src}'s and no published {opt} recipe anchors this task; W11's "
               f"SGD(lr={_g(new)}), LR search widened to three decades")
        return new
    if opt in ("rmsprop", "adagrad"):
        lo, hi = param("O5.2", "lr_range")
        new = ranges.sig(ranges.clamp(lr, lo, hi))
        rid = "O4.2" if opt == "rmsprop" else "O4.1"
        tr.lose("transfer_guess")
        tr.why("optimizer.lr", new, [rid, "O5.2"], f"no published {opt} anchor here: the "
               f"{src} LR {_g(lr)} clamped to O5.2's {_g(lo)}…{_g(hi)} ⇒ {_g(new)}")
        return new
    if transfer == "adaptive_on_cnn":
        tr.why("optimizer.lr", lr, ["L-CONVNEXT", "O7.1"], "AdamW on a CNN: the ConvNeXt/DeiT "
               "family of settings (the SGD recipes' LRs do not transfer)")
    elif opt == "adafactor":
        tr.why("optimizer.lr", lr, ["L-ADAFACTOR"], f"Adafactor with {src}'s LR as its external "
               "LR (relative_step=False, scale_parameter=False) so the schedule applies")
    elif opt == "lamb":
        tr.why("optimizer.lr", lr, ["L-LAMB"], f"no published LAMB run left for this regime: "
               f"{src}'s LR; LAMB's trust ratio usually tolerates several times more — search "
               "upwards")
        tr.wide_search = True
    elif opt == "lars":
        tr.why("optimizer.lr", lr, ["L-LARS"], f"LARS with {src}'s LR (no LARS anchor here)")
    else:
        tr.why("optimizer.lr", lr, ["O5.1"], f"{opt}'s step is {src}'s Adam step, so its LR "
               "carries over")
    return lr


def _lion(req: AdviceRequest, fitted: Fitted, opt: str, transfer: str | None, lr: float,
          wd: float, tr: _Trace) -> tuple[float, float]:
    """Chen et al. 2023: Lion's sign update has a larger norm, so LR ÷ k and λ × k, k by regime
    (10 for vision, 3 for language); lr·λ, the decay per step, is kept — when λ·k would exceed
    the spec's bound 1.0, λ is 1.0 and the LR gives up the rest, so the product still holds."""
    if opt != "lion" or tr.ref_used:
        return lr, wd
    k = fitted.row.lion_divisor
    product = lr * wd
    new_wd = wd * k
    new_lr = lr / k
    capped = new_wd > 1.0
    if capped:
        new_wd = 1.0
        new_lr = product / new_wd if product > 0 else new_lr
    new_lr, new_wd = ranges.sig(new_lr), ranges.sig(new_wd)
    tr.why("optimizer.lr", new_lr, ["L-LION"], f"that is AdamW's LR; Lion ÷ {k:g} for "
           f"{fitted.row.regime} (Chen 2023: {k:g}× in this regime)" + (
               f", then set so lr·λ = {_g(product)} holds with λ at the bound 1.0" if capped
               else "") + f" ⇒ {_g(new_lr)}")
    tr.why("optimizer.weight_decay", new_wd, ["L-LION"], f"AdamW's λ {_g(wd)} × {k:g}"
           + (" (bound 1.0)" if capped else "") + f" ⇒ {_g(new_wd)}: lr·λ = "
           f"{_g(new_lr * new_wd)} vs AdamW's {_g(product)}")
    return new_lr, new_wd


def _check_lr_range(regime: str, lr: float, opt: str, transfer: str | None,
                    tr: _Trace) -> None:
    if opt not in ADAM_LIKE or regime not in ("llm_pretrain", "llm_sft", "encoder_finetune"):
        return
    key = "pretrain" if regime == "llm_pretrain" else "finetune"
    lo, hi = param("O7.2", key)
    if not lo / 2 <= lr <= hi * 2:
        tr.warn(["O7.2"], f"LR {_g(lr)} is outside O7.2's {key} range {_g(lo)}…{_g(hi)} (by "
                "more than 2×); the value follows the published recipes above")


def _weight_decay(req: AdviceRequest, fitted: Fitted, opt: str, transfer: str | None,
                  tr: _Trace) -> float:
    row = fitted.row
    if opt == "adam":
        tr.why("optimizer.weight_decay", 0.0, ["O5.3", "W6", "W11"], "plain Adam takes "
               "weight_decay 0 (its weight_decay is L2 in the gradient, W11)")
        return 0.0
    ref = req.reference
    if tr.ref_used and ref is not None and ref.weight_decay is not None and \
            ref.optimizer in ("adam", "adam_l2") and opt in DECOUPLED:
        tr.warn(["W6", "W11"], f"the reference's weight_decay {_g(ref.weight_decay)} is L2 "
                "inside Adam, not decoupled decay: it does not transfer, so λ was chosen anew")
    elif tr.ref_used and ref is not None and ref.weight_decay is not None:
        tr.why("optimizer.weight_decay", ref.weight_decay, ["W10b", "O7.3"],
               f"the reference recipe's λ = {_g(ref.weight_decay)}, kept with its LR")
        return ref.weight_decay
    if transfer in ("to_sgd",) or (opt in MOMENTUM_SGD and row.optimizer not in MOMENTUM_SGD):
        wd = ranges.sig(CATALOG[opt].defaults["weight_decay"])
        tr.why("optimizer.weight_decay", wd, ["W11", "W10a"], f"{opt}'s catalogue default "
               f"{_g(wd)} (W11): the {row.optimizer} row's λ is decoupled decay")
        return wd
    base = fitted.weight_decay
    wds = [a.weight_decay for a in fitted.anchors if a.weight_decay is not None]
    # W7d: dropout also regularises — but a published λ was tuned with its recipe's dropout, so
    # only a λ without published anchors is reduced.
    p = req.dropout if not fitted.anchors else 0.0
    dfac = max(param("W7d", "floor"), 1.0 - p)
    wd = ranges.sig(base * dfac)
    src = (f"the row's {_g(base)}" if row.weight_decay is not None else
           f"median of the published runs' λ ({', '.join(_g(w) for w in wds)}) = {_g(base)}")
    tr.why("optimizer.weight_decay", wd, [*row.sources[:2], "W7d", "W10a", "W7c"],
           f"{'decoupled' if opt in DECOUPLED else 'coupled (L2)'} decay: {src}"
           + (f"; dropout {p:g} ⇒ × {_g(dfac)} (W7d)" if p > 0 else "")
           + (" — a published 0 is W10a's 'reason not to'" if wd == 0 else "")
           + "; W7c's λ ≈ 0.01/lr is not used (it conflicts with O7.3)")
    return wd


def _details(fitted: Fitted, opt: str, transfer: str | None, tr: _Trace) -> dict[str, Any]:
    row = fitted.row
    out: dict[str, Any] = {"betas": None, "eps": None, "momentum": None, "nesterov": None}
    defaults = CATALOG[opt].defaults
    own = transfer is None
    if opt in MOMENTUM_SGD:
        m = row.momentum if own and row.momentum is not None else defaults["momentum"]
        out.update(momentum=m, nesterov=False if opt == "sgd" else None)
        tr.why("optimizer.momentum", m, ["O3.1", "W11"], f"momentum β = {m:g} (O3.1)")
        if opt == "sgd":
            tr.why("optimizer.nesterov", False, ["O3.2"], "plain momentum, as He 2016 trained "
                   "ResNet; Nesterov (O3.2) is an equally good option")
        return out
    if opt == "lion":
        betas = tuple(param("L-LION", "betas"))
        out.update(betas=betas)
        tr.why("optimizer.betas", list(betas), ["L-LION"], f"Lion's β {betas} (Chen 2023 §5)")
        return out
    if opt == "rmsprop":
        beta = row.betas[1] if own and row.betas else param("O4.2", "beta")
        out.update(betas=(0.0, beta), eps=defaults["eps"], momentum=0.0)
        tr.why("optimizer.betas", [0.0, beta], ["O4.2"], f"RMSprop's squared-gradient EMA "
               f"β {beta} (torch alpha) as betas[1]; no first moment")
        tr.why("optimizer.eps", defaults["eps"], ["O4.2"], f"ε {defaults['eps']:g} (catalogue)")
        tr.why("optimizer.momentum", 0.0, ["O4.2"], "no heavy-ball momentum: O4.2's RMSprop "
               "has none (Adam adds it, O5.1)")
        return out
    if opt == "adagrad":
        out.update(eps=defaults["eps"])
        tr.why("optimizer.eps", defaults["eps"], ["O4.1"], f"ε {defaults['eps']:g} (torch's "
               "AdaGrad default; O4.1 gives no number)")
        return out
    if opt == "adafactor":
        tr.why("optimizer.betas", None, ["O5.4"], "Adafactor: no first moment, its own decay "
               "schedule for the factored second moment")
        tr.why("optimizer.eps", None, ["O5.4"], "Adafactor's ε1 library default (1e-30)")
        return out
    betas = row.betas if row.betas and row.optimizer in ADAM_LIKE else defaults["betas"]
    eps = row.eps if row.eps and row.optimizer in ADAM_LIKE else defaults["eps"]
    if opt == "lamb" and not own:
        eps = param("L-LAMB", "eps")
    out.update(betas=tuple(betas), eps=eps)
    tr.why("optimizer.betas", list(betas), [*row.sources[:1], "O5.1", "O5.2"],
           f"β1 {betas[0]}, β2 {betas[1]} ({row.id})")
    tr.why("optimizer.eps", eps, [*row.sources[:1], "O5.2"], f"ε {eps:g} ({row.id})")
    return out


def _param_groups(req: AdviceRequest, tr: _Trace) -> ParamGroupRule:
    norms = [n for n in req.normalization if n != "none"]
    no_decay = (["bias"] + [f"{n} weight and bias" for n in norms]
                + ["embeddings (tables, pos_embed, cls_token)", "model.no_weight_decay() names"])
    rule = ParamGroupRule(decay="weight matrices and convolution kernels", no_decay=no_decay,
                          decay_embeddings=False)
    tr.why("param_groups", no_decay, ["W10c", "O7.3"], "no weight decay on biases, "
           "normalization parameters (every 1-D tensor), embeddings and learned positions/"
           "special tokens (timm/DeiT exclude pos_embed and cls_token; a model's own "
           "no_weight_decay() is honoured)")
    tr.why("optimizer.decay_embeddings", False, ["O7.3"], "embeddings are not decayed: the "
           "library default (optim_core param groups) and the timm/DeiT rule")
    return rule


def _warmup(req: AdviceRequest, run: _Run, fitted: Fitted, transfer: str | None,
            total: int) -> tuple[int, str]:
    row = fitted.row
    maxf = param("O6.2b", "max_fraction")
    if row.warmup_above_batch is not None and req.batch_size <= row.warmup_above_batch:
        return 0, (f"no warmup: batch {req.batch_size} ≤ {row.warmup_above_batch}, where the "
                   "recipe trained without one")
    if row.warmup_epochs is not None:
        target = round(row.warmup_epochs * run.steps_per_epoch)
        w = ranges.warmup_from_steps(total, max(target, 1), maxf)
        return w, (f"{row.warmup_epochs:g} epochs ({target} steps), capped at "
                   f"{maxf:.0%} of the run (O6.2b): {w}")
    if row.warmup_steps is not None:
        w = ranges.warmup_from_steps(total, row.warmup_steps, maxf)
        return w, f"{row.warmup_steps} steps ({row.id}), capped at {maxf:.0%} (O6.2b): {w}"
    frac = fitted.warmup_fraction
    if frac < 0:  # no anchor states one: O6.2b's generic fraction, 5 % at 1e3 → 1 % at 1e5 steps
        frac = ranges.loglog_interp(total, [(1e3, maxf), (1e5, param("O6.2b", "min_fraction"))])
        w = ranges.warmup_from_fraction(total, frac, maxf)
        return w, (f"O6.2b's generic warmup, falling log-log from {maxf:.0%} at 1e3 to "
                   f"{param('O6.2b', 'min_fraction'):.0%} at 1e5 steps: {frac:.3g} of {total}: {w}")
    if frac == 0:
        return 0, f"no warmup: the published runs of {row.id} used none"
    w = ranges.warmup_from_fraction(total, frac, maxf)
    return w, (f"{frac:.3g} of {total} steps (median of the published runs), capped at "
               f"{maxf:.0%} (O6.2b): {w}")


def _schedule(req: AdviceRequest, run: _Run, fitted: Fitted, opt: str, transfer: str | None,
              lr: float, tr: _Trace) -> ScheduleAdvice:
    row = fitted.row
    total = run.total_steps
    tr.why("schedule.total_steps", total, ["O6.1"],
           "the request's total_steps" if req.total_steps else
           f"epochs × ceil(examples / batch) = {req.epochs:g} × {run.steps_per_epoch}")
    kind = row.schedule
    if total < 2:
        kind = "constant"
    w, wwhy = (0, "no warmup") if kind == "constant" else _warmup(req, run, fitted, transfer,
                                                                   total)
    spec: dict[str, Any]
    end = lr
    if kind == "constant":
        spec = {"name": "constant", "lr": lr}
    elif kind == "linear_warmup":
        spec = {"name": "linear_warmup", "peak_lr": lr, "warmup_steps": w}
    elif kind == "inverse_sqrt":
        spec = {"name": "inverse_sqrt", "init_lr": lr, "warmup_steps": w}
        end = lr * math.sqrt(max(w, 1)) / math.sqrt(total)
    elif kind == "warmup_linear":
        w = min(w, total - 1)
        end = lr * row.min_lr_ratio
        spec = {"name": "warmup_linear", "max_lr": lr, "warmup_steps": w, "total_steps": total,
                "end_lr": ranges.sig(end)}
    elif kind == "warmup_step":
        ms = _milestones(req, run, row.milestones, w, total)
        if ms:
            spec = {"name": "warmup_step", "init_lr": lr, "warmup_steps": w,
                    "gamma": row.gamma, "milestones": ms}
            end = lr * row.gamma ** len(ms)
        else:  # too short a run for distinct decay points: cosine to 0 (He et al. 2019)
            kind = "warmup_cosine"
            tr.fire("L-HE19")
            spec = {"name": "warmup_cosine", "max_lr": lr, "warmup_steps": min(w, total - 1),
                    "total_steps": total, "min_lr_ratio": 0.0}
            end = 0.0
    else:
        w = min(w, total - 1)
        spec = {"name": "warmup_cosine", "max_lr": lr, "warmup_steps": w, "total_steps": total,
                "min_lr_ratio": row.min_lr_ratio}
        end = lr * row.min_lr_ratio
    desc = {"constant": "a constant LR", "linear_warmup": "warmup then constant",
            "inverse_sqrt": "warmup then inverse square root",
            "warmup_linear": f"warmup then linear decay to {row.min_lr_ratio:g} × peak",
            "warmup_cosine": f"warmup then cosine to {spec.get('min_lr_ratio', 0):g} × peak",
            "warmup_step": (f"warmup then × {row.gamma:g} at "
                            f"{', '.join(f'{m:.0%}' for m in row.milestones)} of the run")}[kind]
    sched_ids = {"constant": "O6.1", "linear_warmup": "O6.2", "inverse_sqrt": "O6.3d",
                 "warmup_linear": "O6.3c", "warmup_cosine": "O6.3b",
                 "warmup_step": "O6.3a"}[kind]
    tr.why("schedule.name", kind, [*row.sources[:2], sched_ids, "O6.1"],
           f"{desc}, as the published runs of {row.id} did")
    tr.why("schedule.peak_lr", lr, ["O6.1"], "the schedule peaks at the advised LR")
    tr.why("schedule.warmup_steps", w, ["O6.2", "O6.2b"], wwhy)
    end = ranges.sig(end)
    tr.why("schedule.min_lr", end, ["O6.1"], f"LR on the last step: {_g(end)}")
    return ScheduleAdvice(name=spec["name"], peak_lr=lr, warmup_steps=w, total_steps=total,
                          min_lr=end, spec=spec)


def _milestones(req: AdviceRequest, run: _Run, fractions: tuple[float, ...], w: int,
                total: int) -> list[int]:
    """Decay points at the row's fractions of the run, on epoch boundaries when the run is
    given in epochs; empty when they would collide or fall inside the warmup."""
    spe = run.steps_per_epoch if req.epochs is not None else 1
    ms = [round(f * total / spe) * spe for f in fractions]
    ok = (ms and ms[0] >= max(w, 1) and ms[-1] <= total - 1
          and all(b > a for a, b in itertools.pairwise(ms)))
    return ms if ok else []


def _clip(fitted: Fitted, opt: str, transfer: str | None,
          tr: _Trace) -> tuple[float | None, str]:
    row = fitted.row
    clip, basis = fitted.clip, fitted.clip_basis
    if transfer == "to_sgd":
        clip, basis = (param("O7.4", "clip_norm"), "safety_default")
    if basis == "none" or clip is None:
        tr.why("clip_norm", None, ["O7.4"], f"no clipping: the published runs of {row.id} "
               "did not clip")
        return None, "none"
    if basis == "recipe":
        tr.why("clip_norm", clip, ["O7.4", *row.sources[:1]], f"clip the global gradient "
               f"norm at {clip:g}, as the published runs of {row.id} did")
    else:
        tr.why("clip_norm", clip, ["O7.4"], f"clip at τ = {clip:g}: a safety default (O7.4), "
               f"not part of a published {row.id} recipe")
    return clip, basis


def _deepseek_lr(req: AdviceRequest, run: _Run) -> float | None:
    """DeepSeek LLM 2024 §3.1: η_opt = a·C^b, C ≈ 6·N·D FLOPs (the paper's C is non-embedding
    FLOPs/token × tokens; 6N is the usual approximation)."""
    if run.tokens_per_batch is None:
        return None
    tokens = run.tokens_per_batch * run.total_steps
    c = 6.0 * req.param_count * tokens
    return param("L-DEEPSEEK", "a") * c ** param("L-DEEPSEEK", "b")


def _search(req: AdviceRequest, run: _Run, regime: str, lr: float, wd: float,
            spread: tuple[float, float, bool] | None, tr: _Trace) -> SearchAdvice:
    k = 3.0
    lo, hi = lr / k, lr * k
    ids = ["O7.2"]
    text = f"{k:g}× either side of the advised LR"
    if spread is not None and spread[2]:
        lo, hi = min(lo, spread[0] / k), max(hi, spread[1] * k)
        text += f", widened to the published span {_g(spread[0])}…{_g(spread[1])} (× {k:g})"
    if tr.wide_search:
        half = 10 ** (param("L-SGD-XFER", "guess_decades") / 2)
        lo, hi = min(lo, lr / half), max(hi, lr * half)
        ids.append("L-SGD-XFER")
        text += "; three decades around it: the LR is a guess"
    if regime == "llm_pretrain":
        ds = _deepseek_lr(req, run)
        if ds is not None:
            ratio = ds / lr
            ids.append("L-DEEPSEEK")
            text += (f"; DeepSeek LLM's compute law η = {param('L-DEEPSEEK', 'a')}·"
                     f"C^{param('L-DEEPSEEK', 'b')} at C ≈ 6ND = "
                     f"{_g(6.0 * req.param_count * (run.tokens_per_batch or 0) * run.total_steps)}"
                     f" gives {_g(ds)} ({_g(ratio)}× the advice)")
            if not 1 / k <= ratio <= k:
                lo, hi = min(lo, ds / 2), max(hi, ds * 2)
                text += ", so the range covers it"
    lo, hi = max(lo, MIN_LR), min(hi, MAX_LR)  # a range test must be able to start at lo
    lo, hi = ranges.sig(lo), ranges.sig(hi)
    grid = sorted(set(param("W7a", "grid")) | {round(wd, 12)})
    tr.why("search.lr_range", [lo, hi], ids, "LR range test bounds: " + text)
    tr.why("search.weight_decay_grid", grid, ["W7a", "W10b"], "grid search of λ with "
           "validation (W7a's grid plus the advised λ); retune λ if the LR changes (W10b)")
    return SearchAdvice(lr_range=(lo, hi), weight_decay_grid=grid)


def _peft(fitted: Fitted, req: AdviceRequest, tr: _Trace) -> LoraAdvice | None:
    lora = fitted.row.lora
    if lora is None:
        return None
    dropout = lora.dropout if req.param_count < 20e9 or fitted.row.regime != "llm_qlora" \
        else 0.05
    out = LoraAdvice(r=lora.r, lora_alpha=lora.alpha, lora_dropout=dropout,
                     target_modules=list(lora.target_modules), sources=[lora.source])
    tr.why("peft", {"r": out.r, "lora_alpha": out.lora_alpha, "lora_dropout": dropout,
                    "target_modules": out.target_modules}, list(fitted.row.sources),
           f"LoRA r {out.r}, alpha {out.lora_alpha}, dropout {dropout:g} on "
           f"{', '.join(out.target_modules)} ({lora.source}); names are the Llama/Mistral "
           "module names — use your model's")
    return out


def _monitor(tr: _Trace) -> list[str]:
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
    if opt in DECOUPLED and wd > 0 and sched.name != "constant":
        tr.fire("W10e")
    ref = req.reference
    if ref is not None and tr.ref_used and not math.isclose(ref.lr, lr):
        tr.warn(["W10b"], f"the LR moved from the reference's {_g(ref.lr)} to {_g(lr)}: "
                "retune λ (W10b)")
    if req.architecture == "linear":
        tr.warn(["W9"], "a linear model: L1 (lasso) or elastic net gives sparse weights if "
                "feature selection is wanted; the advice uses L2-type decay")
    if opt in MOMENTUM_SGD:
        tr.fire("O2.1", "W4", "W11", "O3.2")
    else:
        tr.fire("O5.3", "W6")
        if opt in ADAM_LIKE:
            tr.fire("O5.1")
        if opt in ("adamw", "adam", "adam_l2"):
            tr.fire("W11")
        if opt in ("adafactor", "lamb", "lion"):
            tr.fire("O5.4")


_DEFAULT = Engine()


def advise(req: AdviceRequest) -> Advice:
    """The advice for one request (the service's engine: every anchor). Pure, deterministic."""
    return _DEFAULT.advise(req)
