"""Seeded data sets from the built-in data specs, and the `DataBundle` every data builder returns.

Synthetic tasks are learnable on purpose (an LR test on pure noise measures nothing): labels and
targets come from a fixed random *teacher* network, images from fixed class patterns, token streams
from a fixed low-entropy Markov chain. Everything is generated with ``numpy.random.default_rng`` from
the data spec's ``seed`` (the task) — the same spec gives the same tensors on any machine — and the
batch order from the experiment's seed.

Batches are ``(inputs, targets)`` CPU tensors; ``loss_fn(model(inputs), targets)`` is the loss, which
is the batch protocol of `optim_core.training.range_test`. A `BatchLoader` can be iterated any number of times;
each pass is one epoch in a new (seeded) order, so a run that re-iterates is still reproducible.

Rewind contract (what the short trials rely on to give every candidate the same batches): before
each candidate, ``loader.set_epoch(0)`` is called when the train loader has a ``set_epoch`` method
(`BatchLoader` does), so its next iteration yields epoch 0's batches again. A loader without one
must yield the same batches in the same order on every iteration (a ``DataLoader`` without
shuffling, a list, ...); one that reshuffles on each ``iter()`` makes the comparison unfair.

Plug-in data builders (entry point group ``optim_core.datasets``) return a `DataBundle` too, most
easily through `DataBundle.from_tensors`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from optim_core.errors import SpecError
from optim_core.specs.experiment import (
    ClassificationDataSpec,
    DataInfo,
    DigitsDataSpec,
    ImagesDataSpec,
    RegressionDataSpec,
    SequenceDataSpec,
    split_sizes,
)

__all__ = [
    "BatchLoader",
    "DataBundle",
    "LossFn",
    "build_classification",
    "build_digits",
    "build_images",
    "build_regression",
    "build_sequences",
    "lm_cross_entropy",
    "split_batch",
]

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def lm_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy: (B, T, V) logits against (B, T) token ids."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def split_batch(batch: Any, *, field: str = "data", hint: str = "") -> tuple[Any, Any]:
    """``(inputs, targets)`` of a batch, or `SpecError` naming ``field`` (message + ``hint``) for
    anything else.

    Only a tuple or list of length 2 is a batch: unpacking "anything that iterates into two
    things" would take a 2-row tensor for two halves and a 2-key dict for its keys.
    """
    if not isinstance(batch, tuple | list) or len(batch) != 2:
        shape = (f"{type(batch).__name__} of length {len(batch)}"
                 if isinstance(batch, tuple | list) else type(batch).__name__)
        raise SpecError(f"a batch must be a tuple or list (inputs, targets){hint} (got {shape})",
                        field=field)
    return batch[0], batch[1]


_LOSSES: dict[str, LossFn] = {
    "classification": F.cross_entropy,
    "regression": F.mse_loss,
    "language_model": lm_cross_entropy,
}


class BatchLoader:
    """Mini-batches of in-memory tensors. Re-iterable: pass ``k`` uses the permutation drawn from
    ``(seed, k)``, so two loaders built alike yield the same batches in the same order.

    ``drop_last`` keeps training batches the same size (a BatchNorm batch of 1 fails); it is ignored
    when the data is smaller than one batch, so a loader never yields nothing.
    """

    def __init__(self, inputs: torch.Tensor, targets: torch.Tensor, *, batch_size: int,
                 shuffle: bool, seed: int = 0, drop_last: bool = False) -> None:
        if len(inputs) != len(targets):
            raise ValueError(f"{len(inputs)} inputs but {len(targets)} targets")
        if len(inputs) == 0:
            raise ValueError("a BatchLoader needs at least one sample")
        self.inputs, self.targets = inputs, targets
        self.batch_size = int(batch_size)
        self.shuffle, self.seed = shuffle, int(seed)
        self.drop_last = drop_last and len(inputs) >= self.batch_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """The next iteration yields epoch ``epoch``'s order (then ``epoch + 1``'s, ...).

        The rewind hook of the short trials (see the module docstring): ``set_epoch(0)`` makes
        every candidate see the same batches in the same order.
        """
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, got {epoch}")
        self.epoch = int(epoch)

    def __len__(self) -> int:
        n = len(self.inputs)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.inputs)
        if self.shuffle:
            order = torch.from_numpy(np.random.default_rng([self.seed, self.epoch]).permutation(n))
        else:
            order = torch.arange(n)
        self.epoch += 1
        for i in range(len(self)):
            idx = order[i * self.batch_size:(i + 1) * self.batch_size]
            yield self.inputs[idx], self.targets[idx]


@dataclass
class DataBundle:
    """What a data builder returns: train (and optional validation) batches, the loss, the shapes."""

    train: BatchLoader
    val: BatchLoader | None
    loss_fn: LossFn
    info: DataInfo

    @classmethod
    def from_tensors(cls, inputs: torch.Tensor, targets: torch.Tensor, *, info: DataInfo,
                     batch_size: int, seed: int, val_fraction: float,
                     loss_fn: LossFn | None = None) -> DataBundle:
        """Split the *last* ``val_fraction`` of the samples off for validation (shuffle first if the
        order means something) and wrap both parts. ``loss_fn`` defaults by ``info.task``."""
        n_train, n_val = split_sizes(len(inputs), val_fraction)
        if n_train < 1:
            raise ValueError(f"val_fraction {val_fraction} leaves no training samples")
        train = BatchLoader(inputs[:n_train], targets[:n_train], batch_size=batch_size,
                            shuffle=True, seed=seed, drop_last=True)
        val = (BatchLoader(inputs[n_train:], targets[n_train:], batch_size=batch_size,
                           shuffle=False) if n_val > 0 else None)
        return cls(train=train, val=val, loss_fn=loss_fn or _LOSSES[info.task], info=info)

    def describe(self) -> dict[str, Any]:
        """Plain-JSON summary for results."""
        return {"info": self.info.model_dump(mode="json"),
                "n_train": len(self.train.inputs),
                "n_val": len(self.val.inputs) if self.val is not None else 0,
                "train_batches_per_epoch": len(self.train)}


# -- generators --------------------------------------------------------------------------------


def _teacher(rng: np.random.Generator, x: np.ndarray, hidden: int, out: int) -> np.ndarray:
    """A fixed random one-hidden-layer tanh network (variance-preserving init)."""
    w1 = rng.standard_normal((x.shape[1], hidden)) / np.sqrt(x.shape[1])
    b1 = 0.1 * rng.standard_normal(hidden)
    w2 = rng.standard_normal((hidden, out)) / np.sqrt(hidden)
    return np.tanh(x @ w1 + b1) @ w2


def _features(spec: ClassificationDataSpec | RegressionDataSpec) -> tuple[np.random.Generator,
                                                                          np.ndarray]:
    rng = np.random.default_rng(spec.seed)
    return rng, rng.standard_normal((spec.n_samples, spec.n_features))


def build_classification(options: Mapping[str, Any], *, batch_size: int, seed: int,
                         val_fraction: float) -> DataBundle:
    spec = ClassificationDataSpec.model_validate({**options, "kind": "classification"})
    rng, x = _features(spec)
    y = _teacher(rng, x, spec.teacher_hidden, spec.n_classes).argmax(axis=1)
    flip = rng.random(spec.n_samples) < spec.label_noise
    y[flip] = rng.integers(0, spec.n_classes, int(flip.sum()))
    return DataBundle.from_tensors(
        torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.long),
        info=spec.info(), batch_size=batch_size, seed=seed, val_fraction=val_fraction)


def build_regression(options: Mapping[str, Any], *, batch_size: int, seed: int,
                     val_fraction: float) -> DataBundle:
    spec = RegressionDataSpec.model_validate({**options, "kind": "regression"})
    rng, x = _features(spec)
    y = _teacher(rng, x, spec.teacher_hidden, spec.n_targets)
    y = (y - y.mean(axis=0)) / (y.std(axis=0) + 1e-12)  # unit-variance targets: losses comparable
    y = y + spec.noise_std * rng.standard_normal(y.shape)
    return DataBundle.from_tensors(
        torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.float32),
        info=spec.info(), batch_size=batch_size, seed=seed, val_fraction=val_fraction)


def _class_patterns(rng: np.random.Generator, spec: ImagesDataSpec) -> np.ndarray:
    """(classes, C, H, W): each class a sum of three signed Gaussian blobs per channel."""
    yy, xx = np.mgrid[0:spec.height, 0:spec.width]
    sigma = max(spec.height, spec.width) / 6
    patterns = np.zeros((spec.n_classes, spec.channels, spec.height, spec.width))
    for k in range(spec.n_classes):
        for c in range(spec.channels):
            for _ in range(3):
                cy, cx = rng.uniform(0, spec.height), rng.uniform(0, spec.width)
                sign = rng.choice([-1.0, 1.0])
                patterns[k, c] += sign * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2)
                                                / (2 * sigma**2))
    return patterns / (np.abs(patterns).max(axis=(2, 3), keepdims=True) + 1e-12)


def build_images(options: Mapping[str, Any], *, batch_size: int, seed: int,
                 val_fraction: float) -> DataBundle:
    spec = ImagesDataSpec.model_validate({**options, "kind": "images"})
    rng = np.random.default_rng(spec.seed)
    patterns = _class_patterns(rng, spec)
    y = rng.integers(0, spec.n_classes, spec.n_samples)
    scale = rng.uniform(0.7, 1.3, spec.n_samples)
    shifts = rng.integers(-spec.max_shift, spec.max_shift + 1, (spec.n_samples, 2))
    x = np.empty((spec.n_samples, spec.channels, spec.height, spec.width))
    for i in range(spec.n_samples):
        x[i] = scale[i] * np.roll(patterns[y[i]], tuple(shifts[i]), axis=(1, 2))
    x += spec.noise_std * rng.standard_normal(x.shape)
    return DataBundle.from_tensors(
        torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.long),
        info=spec.info(), batch_size=batch_size, seed=seed, val_fraction=val_fraction)


def markov_sequences(spec: SequenceDataSpec) -> np.ndarray:
    """(n_sequences, seq_len + 1) token ids from the spec's fixed random Markov chain."""
    rng = np.random.default_rng(spec.seed)
    v, b, n = spec.vocab_size, spec.branching, spec.n_sequences
    n_ctx = v ** spec.order
    # Per context: `branching` distinct next tokens with peaked Dirichlet weights (low entropy).
    # (Distinct tokens while the (contexts × vocab) draw is small; beyond it, with replacement —
    # a repeated token merely merges two weights.)
    if n_ctx * v <= 2**24:
        nxt = np.argsort(rng.random((n_ctx, v)), axis=1)[:, :b]
    else:
        nxt = rng.integers(0, v, (n_ctx, b))
    cum = np.cumsum(rng.dirichlet(np.full(b, spec.concentration), size=n_ctx), axis=1)
    seq = np.empty((n, spec.seq_len + 1), dtype=np.int64)
    seq[:, :spec.order] = rng.integers(0, v, (n, spec.order))
    for t in range(spec.order, spec.seq_len + 1):
        ctx = seq[:, t - 1] if spec.order == 1 else seq[:, t - 2] * v + seq[:, t - 1]
        pick = (rng.random(n)[:, None] > cum[ctx]).sum(axis=1).clip(max=b - 1)
        seq[:, t] = nxt[ctx, pick]
    return seq


def build_sequences(options: Mapping[str, Any], *, batch_size: int, seed: int,
                    val_fraction: float) -> DataBundle:
    spec = SequenceDataSpec.model_validate({**options, "kind": "sequences"})
    seq = torch.from_numpy(markov_sequences(spec))
    return DataBundle.from_tensors(seq[:, :-1], seq[:, 1:], info=spec.info(),
                                   batch_size=batch_size, seed=seed, val_fraction=val_fraction)


def build_digits(options: Mapping[str, Any], *, batch_size: int, seed: int,
                 val_fraction: float) -> DataBundle:
    """sklearn's bundled digits, pixels scaled to [0, 1]. The sample order is fixed by permutation
    seed 0 (not the experiment seed), so every experiment validates on the same digits."""
    from sklearn.datasets import load_digits  # lazy: only this data set needs scikit-learn

    spec = DigitsDataSpec.model_validate({**options, "kind": "digits"})
    digits = load_digits()
    order = np.random.default_rng(0).permutation(len(digits.target))
    x = torch.tensor(digits.data[order] / 16.0, dtype=torch.float32)
    if spec.as_images:
        x = x.reshape(-1, 1, 8, 8)
    y = torch.tensor(digits.target[order], dtype=torch.long)
    return DataBundle.from_tensors(x, y, info=spec.info(), batch_size=batch_size, seed=seed,
                                   val_fraction=val_fraction)
