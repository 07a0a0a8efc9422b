"""Declarative model and data specs: what to build and train on (torch-free).

The API process validates requests with these pydantic models and refuses oversized ones (422)
*before* any worker builds a tensor, so everything here is plain Python: no torch import, and the
parameter count of every built-in model is computed analytically (`ExperimentSpec.param_count`).
`tests/core/test_specs.py` checks that count against ``sum(p.numel())`` of the torch model that
`optim_core.training.models` builds, so the two must change together.

Every numeric field is bounded with ``Field(ge=..., le=...)`` so that a 422 names the allowed range,
models forbid extra fields (a typo is an error, not a silently ignored setting), and the unions are
discriminated on ``kind`` so that an error names the one variant the client meant.

Shapes flow from data to model: the data spec says how many features / channels / classes / tokens
there are (`DataSpec.info()`), and the model spec says only what is inside. `ExperimentSpec` pairs the
two and checks that they fit (a CNN needs images, a transformer needs token sequences whose vocabulary
and length it can hold).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator

from optim_core.errors import SpecError
from optim_core.specs.base import StrictSpec as _Spec
from optim_core.specs.catalog import CATALOG

__all__ = [
    "CNNSpec",
    "ClassificationDataSpec",
    "DataInfo",
    "DataSpec",
    "DigitsDataSpec",
    "ExperimentSpec",
    "ImagesDataSpec",
    "MLPSpec",
    "ModelSpec",
    "RegisteredDataSpec",
    "RegisteredModelSpec",
    "RegressionDataSpec",
    "SequenceDataSpec",
    "TransformerSpec",
    "optimizer_state_slots",
]

# Hard ceilings of the schema itself. Deployment limits (max parameters, memory) are lower and live
# in the API settings; these only keep a single field from describing something absurd.
MAX_WIDTH = 16_384
MAX_SAMPLES = 200_000
MAX_VOCAB = 262_144
MAX_SEQ_LEN = 4_096
MAX_HEADS = 128
# Plug-in names and option keys: identifiers only, so they are safe in logs, keys and URLs.
NAME_PATTERN = r"^[A-Za-z][A-Za-z0-9_.\-]{0,63}$"

# A finite float: NaN or ±inf in a plug-in's options is refused with a 422 naming the option
# (a non-finite number has no JSON form to store, hash or pass on to the plug-in).
Scalar = str | int | Annotated[float, Field(allow_inf_nan=False)] | bool | None
Options = Annotated[dict[Annotated[str, Field(pattern=NAME_PATTERN)], Scalar],
                    Field(max_length=32)]




# --------------------------------------------------------------------------------------------------
# What the data looks like to a model (shared by built-in and registered data sets)
# --------------------------------------------------------------------------------------------------

Task = Literal["classification", "regression", "language_model"]
InputKind = Literal["features", "image", "tokens"]


class DataInfo(_Spec):
    """The shapes a model must accept and produce. Built-in data sets know it without building;
    a registered data set reports it in its `DataBundle`."""

    task: Task
    input_kind: InputKind
    n_outputs: int = Field(ge=1, description="classes, regression targets, or vocabulary size")
    in_features: int | None = Field(default=None, ge=1, description="flat input size")
    image_shape: tuple[int, int, int] | None = Field(default=None, description="(C, H, W)")
    vocab_size: int | None = Field(default=None, ge=2)
    seq_len: int | None = Field(default=None, ge=1)
    n_samples: int | None = Field(default=None, ge=1, description="train + validation")

    @property
    def flat_features(self) -> int:
        """Input size of a model that flattens its input (an MLP on images flattens C×H×W)."""
        if self.in_features is not None:
            return self.in_features
        if self.image_shape is not None:
            c, h, w = self.image_shape
            return c * h * w
        raise ValueError(f"{self.input_kind} inputs have no flat feature size")


# --------------------------------------------------------------------------------------------------
# Data specs
# --------------------------------------------------------------------------------------------------


class ClassificationDataSpec(_Spec):
    """Gaussian inputs, labels = argmax of a fixed random teacher MLP (learnable, not noise)."""

    kind: Literal["classification"] = "classification"
    n_samples: int = Field(default=2048, ge=16, le=MAX_SAMPLES)
    n_features: int = Field(default=32, ge=1, le=4096)
    n_classes: int = Field(default=4, ge=2, le=1000)
    teacher_hidden: int = Field(default=32, ge=1, le=1024, description="teacher MLP width")
    label_noise: float = Field(default=0.0, ge=0.0, le=0.5,
                               description="fraction of labels replaced by random classes")
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="fixes the task (teacher, inputs)")

    def info(self) -> DataInfo:
        return DataInfo(task="classification", input_kind="features", n_outputs=self.n_classes,
                        in_features=self.n_features, n_samples=self.n_samples)


class RegressionDataSpec(_Spec):
    """Gaussian inputs, targets = a fixed random teacher MLP's output (+ Gaussian noise)."""

    kind: Literal["regression"] = "regression"
    n_samples: int = Field(default=2048, ge=16, le=MAX_SAMPLES)
    n_features: int = Field(default=16, ge=1, le=4096)
    n_targets: int = Field(default=1, ge=1, le=256)
    teacher_hidden: int = Field(default=32, ge=1, le=1024)
    noise_std: float = Field(default=0.05, ge=0.0, le=10.0, description="target noise, σ")
    seed: int = Field(default=0, ge=0, le=2**31 - 1)

    def info(self) -> DataInfo:
        return DataInfo(task="regression", input_kind="features", n_outputs=self.n_targets,
                        in_features=self.n_features, n_samples=self.n_samples)


class ImagesDataSpec(_Spec):
    """Small images: one fixed random smooth pattern per class, randomly shifted and scaled, plus
    pixel noise — a CNN can learn it, a linear model on raw pixels less easily."""

    kind: Literal["images"] = "images"
    n_samples: int = Field(default=2048, ge=16, le=MAX_SAMPLES)
    channels: int = Field(default=1, ge=1, le=4)
    height: int = Field(default=12, ge=4, le=64)
    width: int = Field(default=12, ge=4, le=64)
    n_classes: int = Field(default=4, ge=2, le=100)
    noise_std: float = Field(default=0.5, ge=0.0, le=5.0)
    max_shift: int = Field(default=1, ge=0, le=8, description="random translation in pixels")
    seed: int = Field(default=0, ge=0, le=2**31 - 1)

    def info(self) -> DataInfo:
        return DataInfo(task="classification", input_kind="image", n_outputs=self.n_classes,
                        image_shape=(self.channels, self.height, self.width),
                        n_samples=self.n_samples)


class SequenceDataSpec(_Spec):
    """Token sequences from a fixed random Markov chain of order 1 or 2 with low entropy: each context
    has ``branching`` possible next tokens with Dirichlet(``concentration``) weights. The model sees
    ``seq_len`` tokens and predicts the next token at every position."""

    kind: Literal["sequences"] = "sequences"
    n_sequences: int = Field(default=512, ge=16, le=MAX_SAMPLES)
    seq_len: int = Field(default=32, ge=2, le=MAX_SEQ_LEN)
    vocab_size: int = Field(default=32, ge=2, le=MAX_VOCAB)
    order: Literal[1, 2] = 1
    branching: int = Field(default=3, ge=1, le=64, description="next tokens per context")
    concentration: float = Field(default=0.5, ge=0.01, le=100.0,
                                 description="Dirichlet α of the next-token weights (low = peaked)")
    seed: int = Field(default=0, ge=0, le=2**31 - 1)

    # Field validators (not model ones) so that the 422's `loc` names the field; the fields they
    # compare against come earlier in declaration order.
    @field_validator("order")
    @classmethod
    def _table_fits(cls, order: int, info: ValidationInfo) -> int:
        # An order-2 chain keeps one row per token pair: bound the table (vocab_size² rows).
        vocab = info.data.get("vocab_size")
        if order == 2 and vocab is not None and vocab > 1024:
            raise SpecError(f"order 2 needs vocab_size ≤ 1024 (got {vocab}): the transition "
                            "table has vocab_size² rows", field="order", value=order,
                            allowed="1 (2 needs vocab_size ≤ 1024)")
        return order

    @field_validator("branching")
    @classmethod
    def _branching_within_vocab(cls, branching: int, info: ValidationInfo) -> int:
        vocab = info.data.get("vocab_size")
        if vocab is not None and branching > vocab:
            raise SpecError(f"branching must be ≤ vocab_size ({vocab})", field="branching",
                            value=branching, allowed=f">= 1 and <= vocab_size ({vocab})")
        return branching

    def info(self) -> DataInfo:
        return DataInfo(task="language_model", input_kind="tokens", n_outputs=self.vocab_size,
                        vocab_size=self.vocab_size, seq_len=self.seq_len,
                        n_samples=self.n_sequences)


class DigitsDataSpec(_Spec):
    """scikit-learn's bundled digits (1797 8×8 images, 10 classes; ships in the wheel, no download).
    Flat 64 features for an MLP, or 1×8×8 images for a CNN (``as_images``)."""

    kind: Literal["digits"] = "digits"
    as_images: bool = False

    def info(self) -> DataInfo:
        if self.as_images:
            return DataInfo(task="classification", input_kind="image", n_outputs=10,
                            image_shape=(1, 8, 8), n_samples=1797)
        return DataInfo(task="classification", input_kind="features", n_outputs=10,
                        in_features=64, n_samples=1797)


class RegisteredDataSpec(_Spec):
    """A data set a deployment plugged in (entry point group ``optim_core.datasets``)."""

    kind: Literal["registered"] = "registered"
    name: str = Field(pattern=NAME_PATTERN)
    options: Options = Field(default_factory=dict)

    def info(self) -> None:
        """Unknown until the plug-in builds it (the worker gets it from the `DataBundle`)."""
        return None


DataSpec = Annotated[
    ClassificationDataSpec | RegressionDataSpec | ImagesDataSpec | SequenceDataSpec
    | DigitsDataSpec | RegisteredDataSpec,
    Field(discriminator="kind"),
]


# --------------------------------------------------------------------------------------------------
# Model specs. Each built-in one has `param_count(data)` (exact) and `activation_floats(data)`
# (a rough per-sample count of floats kept for the backward pass, for the memory estimate).
# --------------------------------------------------------------------------------------------------

Activation = Literal["relu", "gelu", "tanh", "silu"]


class MLPSpec(_Spec):
    """Linear → [LayerNorm] → activation → [Dropout] per hidden width, then a Linear head.
    Images are flattened (C×H×W features)."""

    kind: Literal["mlp"] = "mlp"
    hidden: list[Annotated[int, Field(ge=1, le=MAX_WIDTH)]] = Field(
        default_factory=lambda: [64, 64], max_length=16)
    activation: Activation = "relu"
    dropout: float = Field(default=0.0, ge=0.0, le=0.9)
    layer_norm: bool = False

    def param_count(self, data: DataInfo) -> int:
        total, width = 0, data.flat_features
        for h in self.hidden:
            total += width * h + h + (2 * h if self.layer_norm else 0)
            width = h
        return total + width * data.n_outputs + data.n_outputs

    def activation_floats(self, data: DataInfo) -> int:
        # per layer: linear out, [norm out], activation out, [dropout mask]
        per = 2 + int(self.layer_norm) + int(self.dropout > 0)
        return data.flat_features + sum(per * h for h in self.hidden) + 2 * data.n_outputs


class CNNSpec(_Spec):
    """Per stage: Conv2d (no bias: BatchNorm follows) → BatchNorm2d → ReLU → 2×2 pooling (while the
    map is at least 2×2); then global average pooling and a classifier: [Linear → ReLU] → Linear."""

    kind: Literal["cnn"] = "cnn"
    channels: list[Annotated[int, Field(ge=1, le=1024)]] = Field(
        default_factory=lambda: [16, 32], min_length=1, max_length=8)
    kernel_size: Literal[1, 3, 5, 7] = 3
    pooling: Literal["max", "avg", "none"] = "max"
    classifier_hidden: int = Field(default=0, ge=0, le=MAX_WIDTH,
                                   description="0 = a single Linear after global pooling")
    dropout: float = Field(default=0.0, ge=0.0, le=0.9, description="before the classifier")

    def param_count(self, data: DataInfo) -> int:
        assert data.image_shape is not None
        total, c_in = 0, data.image_shape[0]
        for c in self.channels:
            total += c_in * c * self.kernel_size**2 + 2 * c  # conv weight + BatchNorm γ, β
            c_in = c
        if self.classifier_hidden:
            total += c_in * self.classifier_hidden + self.classifier_hidden
            c_in = self.classifier_hidden
        return total + c_in * data.n_outputs + data.n_outputs

    def activation_floats(self, data: DataInfo) -> int:
        assert data.image_shape is not None
        c0, h, w = data.image_shape
        total = c0 * h * w
        for c in self.channels:
            total += 3 * c * h * w  # conv out, BN out, ReLU out
            if self.pooling != "none" and h >= 2 and w >= 2:
                h, w = h // 2, w // 2
                total += c * h * w
        return total + 2 * (self.classifier_hidden + data.n_outputs)


class TransformerSpec(_Spec):
    """Decoder-only (GPT-style, pre-norm) language model: token + learned position embeddings,
    ``n_layers`` blocks of causal self-attention and an MLP (``mlp_ratio`` × d_model, GELU), a final
    norm and a bias-free LM head (tied to the token embedding if ``tied_embeddings``)."""

    kind: Literal["transformer"] = "transformer"
    d_model: int = Field(default=64, ge=8, le=8192)
    n_layers: int = Field(default=2, ge=1, le=64)
    n_heads: int = Field(default=4, ge=1, le=MAX_HEADS)
    seq_len: int = Field(default=64, ge=2, le=MAX_SEQ_LEN, description="context length")
    vocab_size: int = Field(default=32, ge=2, le=MAX_VOCAB)
    mlp_ratio: float = Field(default=4.0, ge=1.0, le=8.0)
    dropout: float = Field(default=0.0, ge=0.0, le=0.9)
    tied_embeddings: bool = True
    norm: Literal["layernorm", "rmsnorm"] = "layernorm"

    @field_validator("n_heads")
    @classmethod
    def _heads_divide_width(cls, n_heads: int, info: ValidationInfo) -> int:
        d_model = info.data.get("d_model")
        if d_model is not None and d_model % n_heads:
            heads = [h for h in range(1, MAX_HEADS + 1) if d_model % h == 0]
            raise SpecError(f"d_model ({d_model}) must be divisible by n_heads ({n_heads})",
                            field="n_heads", value=n_heads,
                            allowed=f"a divisor of d_model ({d_model}): "
                                    + ", ".join(map(str, heads)))
        return n_heads

    @property
    def mlp_hidden(self) -> int:
        return int(self.mlp_ratio * self.d_model)

    def param_count(self, data: DataInfo | None = None) -> int:
        d, v, h = self.d_model, self.vocab_size, self.mlp_hidden
        norm = 2 * d if self.norm == "layernorm" else d
        block = (2 * norm                 # two pre-norms
                 + 3 * d * d + 3 * d      # fused q, k, v projection with bias
                 + d * d + d              # attention output projection
                 + d * h + h + h * d + d)  # MLP
        head = 0 if self.tied_embeddings else v * d
        return v * d + self.seq_len * d + self.n_layers * block + norm + head

    def activation_floats(self, data: DataInfo | None = None) -> int:
        t = data.seq_len if data is not None and data.seq_len else self.seq_len
        d, h = self.d_model, self.mlp_hidden
        per_block = t * (10 * d + 2 * h) + 2 * self.n_heads * t * t  # + attention probabilities
        return t * d + self.n_layers * per_block + 2 * t * self.vocab_size  # logits + softmax


class RegisteredModelSpec(_Spec):
    """A model a deployment plugged in (entry point group ``optim_core.models``). Its size is unknown
    until it is built, so deployment limits are enforced by the worker after building it."""

    kind: Literal["registered"] = "registered"
    name: str = Field(pattern=NAME_PATTERN)
    options: Options = Field(default_factory=dict)


ModelSpec = Annotated[
    MLPSpec | CNNSpec | TransformerSpec | RegisteredModelSpec, Field(discriminator="kind")
]


# --------------------------------------------------------------------------------------------------
# The pair, its size and a rough memory estimate
# --------------------------------------------------------------------------------------------------

BYTES_PER_FLOAT = 4  # float32 training; mixed precision changes activations, not the order of size


def optimizer_state_slots(optimizer_name: str) -> float:
    """Floats of optimizer state kept per parameter (its catalogue row); 2.0 if unknown."""
    row = CATALOG.get(optimizer_name)
    return 2.0 if row is None else row.state_slots


class ExperimentSpec(_Spec):
    """A model, the data it trains on, and how batches are drawn. The validator checks that the
    model fits the data and names the field that does not."""

    # `data` comes first so that the validator of `model` can see it (and the 422 names `model`).
    data: DataSpec
    model: ModelSpec
    batch_size: int = Field(default=64, ge=1, le=8192)
    seed: int = Field(default=0, ge=0, le=2**31 - 1,
                      description="initialisation, shuffling and dropout (the task is fixed by "
                                  "data.seed)")
    val_fraction: float = Field(default=0.2, ge=0.0, le=0.5,
                                description="held-out share of the samples; 0 = no validation")

    @field_validator("model")
    @classmethod
    def _model_fits_data(cls, model: BaseModel, info: ValidationInfo) -> BaseModel:
        data = info.data.get("data")
        if data is not None:
            check_fit(model, data.info())  # type: ignore[arg-type]
        return model

    @field_validator("val_fraction")
    @classmethod
    def _splits_not_empty(cls, val_fraction: float, info: ValidationInfo) -> float:
        data = info.data.get("data")
        data_info = data.info() if data is not None else None
        if data_info is not None and data_info.n_samples is not None:
            n_train, n_val = split_sizes(data_info.n_samples, val_fraction)
            if n_train < 1 or (val_fraction > 0 and n_val < 1):
                n = data_info.n_samples
                raise SpecError(f"leaves an empty train or validation split of {n} samples",
                                field="val_fraction", value=val_fraction,
                                allowed=f"0, or a share that leaves 1 to {n - 1} of the {n} "
                                        "samples for validation")
        return val_fraction

    def data_info(self) -> DataInfo | None:
        return self.data.info()

    def param_count(self) -> int | None:
        """Exact parameter count of the built model, computed without torch.

        None for a registered model (or a built-in model on registered data): the size is only
        known once built, so the worker enforces limits after building (`ResourceLimitError`)."""
        info = self.data.info()
        if isinstance(self.model, RegisteredModelSpec) or info is None:
            return None
        return self.model.param_count(info)

    def estimate_memory_bytes(self, optimizer_name: str = "adamw") -> int | None:
        """A rough upper-end estimate of training memory, in bytes, used for limits only:

            4 B × (params × (2 + optimizer state slots) + batch_size × activation floats)

        i.e. float32 weights, gradients, optimizer state (`optimizer_state_slots`), and the
        activations kept for backward for one batch (a per-layer count of outputs, see each model's
        ``activation_floats``). It ignores allocator overhead, cuDNN workspaces and framework
        buffers, so treat it as ±2×. None where `param_count` is None."""
        params = self.param_count()
        info = self.data.info()
        if params is None or info is None or isinstance(self.model, RegisteredModelSpec):
            return None
        floats = (params * (2.0 + optimizer_state_slots(optimizer_name))
                  + self.batch_size * self.model.activation_floats(info))
        return int(BYTES_PER_FLOAT * floats)


def split_sizes(n_samples: int, val_fraction: float) -> tuple[int, int]:
    """(train, validation) sizes; `optim_core.training.data` splits with exactly these."""
    n_val = round(n_samples * val_fraction)
    return n_samples - n_val, n_val


def _kinds_for(info: DataInfo) -> str:
    """The built-in model kinds that take this data (a registered model may take any)."""
    if info.input_kind == "tokens":
        kinds = "transformer" if info.vocab_size and info.seq_len else "registered"
    elif info.input_kind == "image" and info.task == "classification":
        kinds = "mlp, cnn"
    else:
        kinds = "mlp"
    return f"model.kind one of: {kinds} (for {info.input_kind} {info.task} data)"


def check_fit(model: MLPSpec | CNNSpec | TransformerSpec | RegisteredModelSpec,
              info: DataInfo | None) -> None:
    """Raise SpecError (naming the field and what it allows) if a built-in model cannot take
    this data. Also used by the worker for registered data, whose `DataInfo` is known only after
    building.

    Messages say ``model.<field>`` / ``data.<field>`` because they are raised from the validator
    of `ExperimentSpec.model` (loc ``model``) but may concern the data."""
    if info is None or isinstance(model, RegisteredModelSpec):
        return
    if isinstance(model, MLPSpec):
        if info.input_kind == "tokens":
            raise SpecError("model: an mlp cannot take token sequences; use kind 'transformer'",
                            field="experiment.model.kind", value="mlp",
                            allowed=_kinds_for(info))
    elif isinstance(model, CNNSpec):
        if info.input_kind != "image" or info.task != "classification":
            raise SpecError("model: a cnn needs image classification data (data.kind 'images', "
                            "or 'digits' with data.as_images true)",
                            field="experiment.model.kind", value="cnn",
                            allowed=_kinds_for(info))
    elif isinstance(model, TransformerSpec):
        if info.input_kind != "tokens" or info.vocab_size is None or info.seq_len is None:
            raise SpecError("model: a transformer needs token sequences (data.kind "
                            "'sequences')", field="experiment.model.kind", value="transformer",
                            allowed=_kinds_for(info))
        if model.vocab_size < info.vocab_size:
            raise SpecError(f"model.vocab_size ({model.vocab_size}) must be ≥ the data's "
                            f"vocab_size ({info.vocab_size})",
                            field="experiment.model.vocab_size", value=model.vocab_size,
                            allowed=f">= the data's vocab_size ({info.vocab_size})")
        if model.seq_len < info.seq_len:
            raise SpecError(f"model.seq_len ({model.seq_len}) must be ≥ the data's seq_len "
                            f"({info.seq_len})", field="experiment.model.seq_len",
                            value=model.seq_len,
                            allowed=f">= the data's seq_len ({info.seq_len})")
