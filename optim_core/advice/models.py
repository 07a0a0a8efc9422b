"""Request and response models of the advice engine (pydantic v2, torch-free).

Every numeric field is bounded so that a 422 names the allowed range. Cross-field checks are
field validators with ``validate_default=True`` on the *later* field, so that the error's ``loc``
names that field (``seq_len``, ``epochs``) instead of the whole body.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from optim_core.bounds import MAX_LR, MIN_LR
from optim_core.specs.optimizer import OptimizerName

Task = Literal["llm_pretrain", "llm_finetune_full", "llm_finetune_peft", "llm_preference",
               "multimodal_projector", "encoder_pretrain", "encoder_finetune", "seq2seq",
               "image_classification_cnn", "vision_transformer", "other"]
Stage = Literal["pretrain", "finetune"]
Modality = Literal["text", "vision", "speech", "multimodal", "other"]
Architecture = Literal["decoder_transformer", "encoder_transformer",
                       "encoder_decoder_transformer", "cnn", "vit", "mlp", "rnn", "linear",
                       "other"]
Normalization = Literal["layernorm", "rmsnorm", "batchnorm", "groupnorm", "none"]
# Any optimizer of the catalogue (optim_core.specs.catalog) can be the reference or the choice.
RefOptimizer = OptimizerName

LLM_TASKS: frozenset[str] = frozenset({"llm_pretrain", "llm_finetune_full", "llm_finetune_peft",
                                       "llm_preference", "multimodal_projector"})
# What each task fixes of (stage, modality); None: the request's field decides (default first).
TASK_STAGE: dict[str, Stage | None] = {
    "llm_pretrain": "pretrain", "encoder_pretrain": "pretrain", "llm_finetune_full": "finetune",
    "llm_finetune_peft": "finetune", "llm_preference": "finetune",
    "multimodal_projector": "finetune", "encoder_finetune": "finetune", "seq2seq": None,
    "image_classification_cnn": None, "vision_transformer": None, "other": None}
TASK_MODALITY: dict[str, Modality | None] = {
    "llm_pretrain": "text", "encoder_pretrain": "text", "llm_finetune_full": "text",
    "llm_finetune_peft": "text", "llm_preference": "text", "multimodal_projector": "multimodal",
    "encoder_finetune": "text", "seq2seq": None, "image_classification_cnn": "vision",
    "vision_transformer": "vision", "other": None}
DEFAULT_MODALITY: dict[str, Modality] = {"seq2seq": "text", "other": "other"}
MAX_PARAMS = 10**13
T = TypeVar("T")
MAX_STEPS = 100_000_000


def steps_per_epoch(dataset_size: int, dataset_unit: str, seq_len: int | None,
                    batch_size: int) -> int:
    """Optimizer steps in one pass over the data (a token count becomes sequences first)."""
    examples = dataset_size / (seq_len or 1) if dataset_unit == "tokens" else float(dataset_size)
    return max(1, math.ceil(max(examples, 1.0) / batch_size))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReferenceRecipe(_Model):
    """A recipe the user trusts, to scale from: its batch size (same unit as ``batch_size``)
    and its LR."""

    batch_size: int = Field(ge=1, le=10_000_000, description="the recipe's global batch size")
    lr: float = Field(ge=MIN_LR, le=MAX_LR, description="the recipe's peak LR")
    optimizer: RefOptimizer | None = Field(
        default=None, description="the recipe's optimizer, if known (checked against O4/O5/W11)")
    weight_decay: float | None = Field(
        default=None, ge=0.0, le=1.0,
        description="the recipe's weight decay, if known: kept (and flagged for retuning, W10b)")


class AdviceRequest(_Model):
    """The training run as a user knows it."""

    task: Task
    architecture: Architecture = "other"
    param_count: int = Field(ge=1, le=MAX_PARAMS, description="trainable+frozen parameters")
    batch_size: int = Field(ge=1, le=10_000_000,
                            description="global batch size in examples (sequences, images)")
    seq_len: int | None = Field(default=None, ge=1, le=1_048_576, validate_default=True,
                                description="tokens per sequence; required for LLM tasks")
    dataset_size: int = Field(ge=1, le=10**14, description="training set size, in dataset_unit")
    dataset_unit: Literal["examples", "tokens"] = "examples"
    total_steps: int | None = Field(default=None, ge=1, le=MAX_STEPS,
                                    description="optimizer steps; give this or epochs")
    epochs: float | None = Field(default=None, gt=0.0, le=100_000.0, validate_default=True,
                                 description="passes over the data; give this or total_steps")
    memory_tight: bool = False
    dropout: float = Field(default=0.0, ge=0.0, lt=1.0)
    normalization: list[Normalization] = Field(default_factory=lambda: ["layernorm"],
                                               max_length=5)
    reference: ReferenceRecipe | None = None
    # Last, so the cross-field validators above (which read ``info.data``) are unaffected.
    optimizer: RefOptimizer | None = Field(
        default=None,
        description="the optimizer you will use; the advice adapts LR, betas/momentum, weight "
                    "decay, warmup and clipping to it (left out: the engine picks one, O7.1)")
    stage: Stage | None = Field(
        default=None, validate_default=True,
        description="pre-training (from scratch) or fine-tuning (from trained weights); fixed "
                    "by the llm_*/encoder_* tasks, free for seq2seq, vision and other "
                    "(default pretrain)")
    modality: Modality | None = Field(
        default=None, validate_default=True,
        description="the data the model reads; fixed by most tasks, free for seq2seq "
                    "(text: T5 family; speech: Whisper family) and other")

    @field_validator("stage")
    @classmethod
    def _stage_fits_task(cls, v: str | None, info: ValidationInfo) -> str | None:
        task = info.data.get("task")
        fixed = TASK_STAGE.get(task) if task is not None else None
        if fixed is not None and v is not None and v != fixed:
            raise PydanticCustomError(
                "stage_conflict", "task {task} is {fixed}; got stage {got}",
                {"task": task, "fixed": fixed, "got": v, "expected": fixed})
        if task is None:
            return v
        return v if v is not None else (fixed or "pretrain")

    @field_validator("modality")
    @classmethod
    def _modality_fits_task(cls, v: str | None, info: ValidationInfo) -> str | None:
        task = info.data.get("task")
        if task is None:
            return v
        fixed = TASK_MODALITY.get(task)
        if fixed is not None and v is not None and v != fixed:
            raise PydanticCustomError(
                "modality_conflict", "task {task} reads {fixed}; got modality {got}",
                {"task": task, "fixed": fixed, "got": v, "expected": fixed})
        return v if v is not None else (fixed or DEFAULT_MODALITY.get(task, "other"))

    @field_validator("seq_len")
    @classmethod
    def _seq_len_for_llm(cls, v: int | None, info: ValidationInfo) -> int | None:
        task = info.data.get("task")
        if v is None and task in LLM_TASKS:
            raise PydanticCustomError(
                "seq_len_required", "seq_len is required for task {task}",
                {"task": task, "ge": 1, "allowed": f"an integer >= 1, required for task {task}"})
        return v

    @field_validator("epochs")
    @classmethod
    def _steps_xor_epochs(cls, v: float | None, info: ValidationInfo) -> float | None:
        steps = info.data.get("total_steps")
        if "total_steps" not in info.data:  # total_steps itself was invalid; reported on its own
            return v
        if (steps is None) == (v is None):
            got = "neither" if v is None else "both"
            raise PydanticCustomError(
                "steps_xor_epochs", "give exactly one of total_steps or epochs (got {got})",
                {"got": got, "expected": "total_steps or epochs (exactly one)"})
        if v is not None and {"dataset_size", "dataset_unit", "batch_size"} <= info.data.keys():
            # epochs are turned into steps; the run they describe must fit the step bound too.
            spe = steps_per_epoch(info.data["dataset_size"], info.data["dataset_unit"],
                                  info.data.get("seq_len"), info.data["batch_size"])
            if math.ceil(v * spe) > MAX_STEPS:
                raise PydanticCustomError(
                    "too_many_steps",
                    "epochs × steps per epoch = {steps} optimizer steps, over the limit",
                    {"steps": math.ceil(v * spe), "le": MAX_STEPS // spe})
        return v

    @field_validator("dataset_unit")
    @classmethod
    def _tokens_need_seq_len(cls, v: str, info: ValidationInfo) -> str:
        # dataset_unit comes after seq_len: a token count needs seq_len to become examples.
        if v == "tokens" and info.data.get("seq_len") is None and "seq_len" in info.data:
            raise PydanticCustomError(
                "tokens_need_seq_len", "dataset_unit 'tokens' needs seq_len",
                {"expected": "'examples' (or give seq_len)"})
        return v


# --------------------------------------------------------------------------- response

# The parts of a response are plain slotted dataclasses, not models: the engine builds ~30 of them
# per advice (20 rationale entries, 8 parts below), and a model's validating __init__ costs
# ~3.5 µs where a dataclass's costs ~0.9 (timeit, OptimizerAdvice's 8 fields). As models, the
# 8 parts were 11 % of an advice's instructions (callgrind: 1.40M → 1.25M Ir for engine + JSON).
# Pydantic still validates, serialises and documents them as fields of ``Advice`` — the same
# bytes and the same OpenAPI schema (``additionalProperties: false`` from ``__pydantic_config__``).
# Not frozen: a frozen dataclass sets each field through object.__setattr__ (~2.5 µs); nothing
# mutates them after the engine returns. Keyword-only, so a field with a default can precede one
# without.
def _part(cls: type[T]) -> type[T]:
    cls.__pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[attr-defined]
    return dataclass(slots=True, kw_only=True)(cls)


@_part
class OptimizerAdvice:
    name: str
    lr: float
    betas: tuple[float, float] | None = None
    eps: float | None = None
    momentum: float | None = None
    nesterov: bool | None = None
    weight_decay: float
    decay_embeddings: bool


@_part
class ParamGroupRule:
    decay: str
    no_decay: list[str]
    decay_embeddings: bool


@_part
class LoraAdvice:
    """Adapter settings for parameter-efficient fine-tuning (peft.LoraConfig's fields)."""

    r: int
    lora_alpha: int
    lora_dropout: float
    target_modules: list[str]
    sources: list[str]


@_part
class RecipeUsed:
    """Which recipe row decided the advice, and the published recipes behind it."""

    id: str
    regime: str
    stage: Stage
    modality: Modality
    sources: list[str]
    anchor_families: list[str]
    published_lr_range: tuple[float, float] | None = None
    disagreement: bool = False


@_part
class ScheduleAdvice:
    name: str
    peak_lr: float
    warmup_steps: int
    total_steps: int
    min_lr: float
    spec: dict[str, Any]


@_part
class BatchScaling:
    applied: bool
    method: Literal["linear", "sqrt", "none"]
    from_batch: float | None = None
    to_batch: float | None = None
    unit: Literal["examples", "tokens"] = "examples"
    factor: float = 1.0


@_part
class SearchAdvice:
    lr_range: tuple[float, float]
    weight_decay_grid: list[float]


#: Where the API serves each rule (GET /v1/rules/{id}); rationale entries link there.
RULES_PATH = "/v1/rules/"


# Positional (the engine's hottest constructor), and a response part like those above.
@dataclass(slots=True)
class RationaleEntry:
    field: str
    value: Any
    rule_ids: list[str]
    text: str
    # Derived from rule_ids (GET these for each cited rule's words, source and parameters): always
    # rebuilt, so a response read back (the Python client) cannot carry stale links.
    rule_links: list[str] | None = None

    def __post_init__(self) -> None:
        self.rule_links = [RULES_PATH + i for i in self.rule_ids]

    def revise(self, value: Any, rule_ids: list[str], text: str) -> None:
        """A later decision on the same field (a transfer, a bound): the new value, the reasoning
        extended, the ids it cites added, and the links following them."""
        self.value = value
        self.text = f"{self.text}; {text}"
        self.rule_ids.extend(i for i in rule_ids if i not in self.rule_ids)
        self.__post_init__()


@dataclass(slots=True)
class AdviceWarning:
    rule_ids: list[str]
    text: str


@_part
class Artefacts:
    pytorch: str
    hf_training_arguments: dict[str, Any]
    hf_notes: list[str]
    trial_config: dict[str, Any]


class Advice(_Model):
    """The advice without transport details (``cached`` is added by the API)."""

    recipe: RecipeUsed
    optimizer: OptimizerAdvice
    param_groups: ParamGroupRule
    schedule: ScheduleAdvice
    clip_norm: float | None
    clip_basis: Literal["recipe", "safety_default", "none"]
    peft: LoraAdvice | None = None
    batch_scaling: BatchScaling
    search: SearchAdvice
    monitor: list[str]
    rationale: list[RationaleEntry]
    warnings: list[AdviceWarning]
    confidence: float = Field(ge=0.0, le=1.0)
    confidence_label: Literal["low", "medium", "high"]
    rules_fired: list[str]
    rules_version: str
    optim_core_version: str
    artefacts: Artefacts


class AdviceResponse(Advice):
    cached: bool


class BatchAdviceRequest(_Model):
    # The item bound comes from settings (advice_batch_max_items) and is checked in the route;
    # the schema's own cap only keeps a body from being absurd.
    items: list[dict[str, Any]] = Field(min_length=1, max_length=10_000)
