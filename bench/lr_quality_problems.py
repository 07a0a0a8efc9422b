"""The problems of the LR-suggestion quality benchmark (``bench/lr_quality.py``).

Eight problems, each run with AdamW and with SGD + momentum, each seeded: the same seed gives the
same data, the same initial weights and the same batches in the same order. Data are generated
here or ship with scikit-learn (digits, breast cancer); nothing is downloaded.

Split (issue 11: keep problems the rule was not fitted on): ``FIT`` are the problems a rule may be
tuned on; ``HELD_OUT`` are only ever reported. The split was fixed before any result was seen.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import nn

from bench.problems import Batch, Problem, _batches

Optim = Callable[[list[nn.Parameter], float], torch.optim.Optimizer]

OPTIMIZERS: dict[str, Optim] = {
    # AdamW with OptimizerSpec's default weight decay; SGD + momentum 0.9 as W11 recommends.
    "adamw": lambda params, lr: torch.optim.AdamW(params, lr=lr, weight_decay=0.01),
    "sgd": lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=1e-4),
}


def _teacher_x(seed: int, n: int, dim: int) -> tuple[torch.Generator, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return g, torch.randn(n, dim, generator=g)


def _teacher_labels(g: torch.Generator, x: torch.Tensor, classes: int, hidden: int = 32
                    ) -> torch.Tensor:
    w1 = torch.randn(x.shape[1], hidden, generator=g) / math.sqrt(x.shape[1])
    w2 = torch.randn(hidden, classes, generator=g) / math.sqrt(hidden)
    return (torch.tanh(x @ w1) @ w2).argmax(dim=1)


def _problem(name: str, opt: str, seed: int, make_model: Callable[[], nn.Module],
             batches: list[Batch], loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
             ) -> Problem:
    def with_init(k: int) -> nn.Module:
        torch.manual_seed(seed + 1 + k)
        return make_model()
    return Problem(f"{name}/{opt}", lambda: with_init(0), batches, loss_fn, OPTIMIZERS[opt], opt,
                   make_model_init=with_init)


def convex_logreg(seed: int, opt: str) -> Problem:
    """Convex: multinomial logistic regression (one linear layer) on Gaussian class blobs."""
    g = torch.Generator().manual_seed(seed)
    centres = 0.5 * torch.randn(5, 16, generator=g)  # overlapping: a loss floor well above 0
    y = torch.randint(0, 5, (1024,), generator=g)
    x = centres[y] + torch.randn(1024, 16, generator=g)
    return _problem("convex_logreg", opt, seed, lambda: nn.Linear(16, 5),
                    _batches(x, y, 64, seed), nn.functional.cross_entropy)


def regression(seed: int, opt: str) -> Problem:
    """Regression: MLP, MSE on a random teacher network's output plus noise."""
    g, x = _teacher_x(seed, 1024, 10)
    w1 = torch.randn(10, 16, generator=g) / math.sqrt(10)
    w2 = torch.randn(16, 1, generator=g) / math.sqrt(16)
    y = torch.tanh(x @ w1) @ w2 * 2.0 + 0.1 * torch.randn(1024, 1, generator=g)
    return _problem("regression", opt, seed,
                    lambda: nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 1)),
                    _batches(x, y, 64, seed), nn.functional.mse_loss)


def classification(seed: int, opt: str) -> Problem:
    """Classification on real tabular data: scikit-learn's bundled breast-cancer set, standardised."""
    from sklearn.datasets import load_breast_cancer

    d = load_breast_cancer()
    x = torch.tensor(d.data, dtype=torch.float32)
    x = (x - x.mean(0)) / x.std(0)
    y = torch.tensor(d.target, dtype=torch.long)
    return _problem("classification", opt, seed,
                    lambda: nn.Sequential(nn.Linear(30, 32), nn.ReLU(), nn.Linear(32, 2)),
                    _batches(x, y, 32, seed), nn.functional.cross_entropy)


def cnn_batchnorm(seed: int, opt: str) -> Problem:
    """CNN with BatchNorm on scikit-learn's bundled 8x8 digits."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(d.target, dtype=torch.long)

    def model() -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(16 * 2 * 2, 10))
    return _problem("cnn_batchnorm", opt, seed, model, _batches(x, y, 64, seed),
                    nn.functional.cross_entropy)


def deep_tanh(seed: int, opt: str) -> Problem:
    """Deep narrow tanh MLP (8 hidden layers of 32), teacher labels: slow, vanishing-gradient start."""
    g, x = _teacher_x(seed, 1024, 16)
    y = _teacher_labels(g, x, 4)

    def model() -> nn.Module:
        layers: list[nn.Module] = [nn.Linear(16, 32), nn.Tanh()]
        for _ in range(7):
            layers += [nn.Linear(32, 32), nn.Tanh()]
        return nn.Sequential(*layers, nn.Linear(32, 4))
    return _problem("deep_tanh", opt, seed, model, _batches(x, y, 64, seed),
                    nn.functional.cross_entropy)


def transformer_lm(seed: int, opt: str) -> Problem:
    """Small decoder-only LM (optim_core's TransformerLM, 2 layers, d 32) on Markov-chain tokens."""
    from optim_core.specs.experiment import SequenceDataSpec, TransformerSpec
    from optim_core.training.data import lm_cross_entropy, markov_sequences
    from optim_core.training.models import TransformerLM

    spec = SequenceDataSpec(n_sequences=512, seq_len=16, vocab_size=16, seed=seed)
    seq = torch.from_numpy(markov_sequences(spec))
    mspec = TransformerSpec(d_model=32, n_layers=2, n_heads=2, seq_len=16, vocab_size=16)
    return _problem("transformer_lm", opt, seed, lambda: TransformerLM(mspec),
                    _batches(seq[:, :-1], seq[:, 1:], 32, seed), lm_cross_entropy)


def noisy_first_batch(seed: int, opt: str) -> Problem:
    """The issue's trap: MLP regression whose *first* batch is unusually easy (the 64 samples with
    the smallest targets, so its loss at initialisation is well below the others'); the rest
    shuffled as usual."""
    g, x = _teacher_x(seed, 2048, 8)
    w1 = torch.randn(8, 16, generator=g) / math.sqrt(8)
    w2 = torch.randn(16, 1, generator=g) / math.sqrt(16)
    y = torch.tanh(x @ w1) @ w2 * 3.0 + 0.1 * torch.randn(2048, 1, generator=g)
    batches = _batches(x, y, 64, seed)
    flat_x = torch.cat([b[0] for b in batches])
    flat_y = torch.cat([b[1] for b in batches])
    easy = flat_y.abs().squeeze(1).argsort()
    order = torch.cat([easy[:64], easy[64:][torch.randperm(len(easy) - 64, generator=g)]])
    flat_x, flat_y = flat_x[order], flat_y[order]
    batches = [(flat_x[i:i + 64], flat_y[i:i + 64]) for i in range(0, len(flat_x), 64)]
    return _problem("noisy_first_batch", opt, seed,
                    lambda: nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 1)),
                    batches, nn.functional.mse_loss)


def label_noise(seed: int, opt: str) -> Problem:
    """MLP classification on teacher labels with 30 % of the labels replaced at random."""
    g, x = _teacher_x(seed, 1024, 20)
    y = _teacher_labels(g, x, 4)
    flip = torch.rand(1024, generator=g) < 0.3
    y = torch.where(flip, torch.randint(0, 4, (1024,), generator=g), y)
    return _problem("label_noise", opt, seed,
                    lambda: nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64),
                                          nn.ReLU(), nn.Linear(64, 4)),
                    _batches(x, y, 64, seed), nn.functional.cross_entropy)


PROBLEMS: dict[str, Callable[[int, str], Problem]] = {
    "convex_logreg": convex_logreg,
    "regression": regression,
    "classification": classification,
    "cnn_batchnorm": cnn_batchnorm,
    "deep_tanh": deep_tanh,
    "transformer_lm": transformer_lm,
    "noisy_first_batch": noisy_first_batch,
    "label_noise": label_noise,
}
#: the problems a rule may be fitted on; the others are held out (reported, never tuned on).
FIT = ("convex_logreg", "regression", "cnn_batchnorm", "noisy_first_batch")
HELD_OUT = tuple(p for p in PROBLEMS if p not in FIT)
