"""Small seeded training problems shared by the suggestion-quality test and benchmarks.

Every problem is built in memory (the digits data ships inside scikit-learn; nothing is
downloaded) and is deterministic for a given seed: the same model initialisation, the same batches
in the same order. ``judge_suggestions`` is the measurement both ``tests/core/test_suggest_quality.py``
and ``bench/suggestion_quality.py`` use, so the test and the report cannot drift apart.

How a suggested LR is judged: train a fresh copy of the model for ``steps`` steps at that fixed LR
and take the mean loss over the whole training set at the end (``final``). Do the same for a grid of
log-spaced fixed LRs. The pick is *close* when::

    final <= best + TOLERANCE * (initial - best)

with ``best`` the lowest final loss over the grid and ``initial`` the loss before training: the pick
must get at least 90 % of the improvement the best grid LR gets. (Relative to the loss *drop*, not
to the grid's max: diverged grid points would otherwise make any pick look close.)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from optim_core.specs.range_test import RangeTestConfig
from optim_core.training.range_test import lr_range_test

#: a pick is close when it gets within this fraction of the best grid LR's loss drop.
TOLERANCE = 0.10
RULES = ("recommended", "steepest", "valley", "minimum_div10")

Batch = tuple[torch.Tensor, torch.Tensor]


@dataclass
class Problem:
    """A model factory, fixed batches, a loss and an optimizer factory (the LR is set later)."""

    name: str
    make_model: Callable[[], nn.Module]
    batches: list[Batch]
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
    make_optimizer: Callable[[list[nn.Parameter], float], torch.optim.Optimizer]
    optimizer_name: str
    #: The same architecture with other initial weights (offset k of the init seed; None: the
    #: problem has one init only) — what a trial that must not see the judged init trains.
    make_model_init: Callable[[int], nn.Module] | None = None


def _batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int) -> list[Batch]:
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(x), generator=g)
    x, y = x[perm], y[perm]
    return [(x[i:i + batch_size], y[i:i + batch_size])
            for i in range(0, len(x) - batch_size + 1, batch_size)]


def mlp_teacher(seed: int = 0, n: int = 1024, dim: int = 20, classes: int = 4,
                batch_size: int = 64) -> Problem:
    """MLP classifier on labels from a fixed random teacher network (learnable), AdamW."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g)
    w1 = torch.randn(dim, 32, generator=g) / math.sqrt(dim)
    w2 = torch.randn(32, classes, generator=g) / math.sqrt(32)
    y = (torch.tanh(x @ w1) @ w2).argmax(dim=1)

    def make_model() -> nn.Module:
        torch.manual_seed(seed + 1)
        return nn.Sequential(nn.Linear(dim, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(),
                             nn.Linear(64, classes))

    return Problem("mlp_teacher_adamw", make_model, _batches(x, y, batch_size, seed),
                   nn.functional.cross_entropy,
                   lambda params, lr: torch.optim.AdamW(params, lr=lr, weight_decay=0.01),
                   "adamw")


def digits_cnn(seed: int = 0, batch_size: int = 64) -> Problem:
    """Small CNN on scikit-learn's 8x8 digits (bundled, no download), SGD with momentum 0.9."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0
    y = torch.tensor(digits.target, dtype=torch.long)

    def make_model() -> nn.Module:
        torch.manual_seed(seed + 1)
        return nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(16 * 2 * 2, 10))

    return Problem("digits_cnn_sgd", make_model, _batches(x, y, batch_size, seed),
                   nn.functional.cross_entropy,
                   lambda params, lr: torch.optim.SGD(params, lr=lr, momentum=0.9),
                   "sgd_momentum")


def regression_mlp(seed: int = 0, n: int = 1024, dim: int = 8, batch_size: int = 64) -> Problem:
    """MLP regression (MSE) on a random teacher network's output plus noise, AdamW."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, dim, generator=g)
    w1 = torch.randn(dim, 16, generator=g) / math.sqrt(dim)
    w2 = torch.randn(16, 1, generator=g) / math.sqrt(16)
    y = torch.tanh(x @ w1) @ w2 * 3.0 + 0.1 * torch.randn(n, 1, generator=g)

    def make_model() -> nn.Module:
        torch.manual_seed(seed + 1)
        return nn.Sequential(nn.Linear(dim, 64), nn.ReLU(), nn.Linear(64, 1))

    return Problem("regression_mlp_adamw", make_model, _batches(x, y, batch_size, seed),
                   nn.functional.mse_loss,
                   lambda params, lr: torch.optim.AdamW(params, lr=lr, weight_decay=0.01),
                   "adamw")


PROBLEMS: dict[str, Callable[[], Problem]] = {
    "mlp_teacher_adamw": mlp_teacher,
    "digits_cnn_sgd": digits_cnn,
    "regression_mlp_adamw": regression_mlp,
}


def full_loss(problem: Problem, model: nn.Module) -> float:
    """Mean loss over every training batch (eval mode, no grad); inf when not finite."""
    model.eval()
    with torch.no_grad():
        vals = [float(problem.loss_fn(model(x), y)) for x, y in problem.batches]
    model.train()
    v = float(np.mean(vals))
    return v if math.isfinite(v) else math.inf


def train_fixed_lr(problem: Problem, lr: float, steps: int, schedule: str = "constant") -> float:
    """Final full-data loss after ``steps`` steps from the seeded init at LR ``lr``: held
    ``constant``, or as the peak of ``warmup_cosine`` (the trials' default schedule: 5 % warmup,
    cosine to 0.1 x peak — how a range test's pick is used). inf once a loss is NaN/Inf."""
    from optim_core.numerics.schedules import constant, warmup_cosine

    sched = (constant(lr) if schedule == "constant"
             else warmup_cosine(lr, max(1, round(0.05 * steps)), steps))
    model = problem.make_model()
    opt = problem.make_optimizer(list(model.parameters()), lr)
    model.train()
    for i in range(steps):
        for group in opt.param_groups:
            group["lr"] = sched(i)
        x, y = problem.batches[i % len(problem.batches)]
        opt.zero_grad(set_to_none=True)
        loss = problem.loss_fn(model(x), y)
        if not torch.isfinite(loss):
            return math.inf
        loss.backward()
        opt.step()
    return full_loss(problem, model)


def run_range_test(problem: Problem, config: RangeTestConfig | None = None) -> dict[str, Any]:
    """The range test on a fresh model with the problem's optimizer; ``to_dict()`` of the result."""
    model = problem.make_model()
    opt = problem.make_optimizer(list(model.parameters()), 1e-3)
    result = lr_range_test(model, problem.batches, problem.loss_fn, optimizer=opt,
                           config=config or RangeTestConfig())
    return result.to_dict()


def judge_suggestions(problem: Problem, steps: int = 150,
                      grid: tuple[float, ...] | None = None,
                      schedule: str = "constant") -> dict[str, Any]:
    """Train at each rule's LR and at every grid LR; report losses and whether each is close."""
    grid = grid or tuple(float(v) for v in np.logspace(-4, 0.5, 12))
    initial = full_loss(problem, problem.make_model())
    rt = run_range_test(problem)
    sugg = rt["suggestions"]
    grid_losses = {lr: train_fixed_lr(problem, lr, steps, schedule) for lr in grid}
    best_lr = min(grid_losses, key=lambda k: grid_losses[k])
    best = grid_losses[best_lr]
    limit = best + TOLERANCE * (initial - best)
    rules: dict[str, Any] = {}
    for rule in RULES:
        lr = sugg.get(rule)
        final = train_fixed_lr(problem, lr, steps, schedule) if lr else math.inf
        rules[rule] = {"lr": lr, "final_loss": _finite_or_none(final),
                       "close": bool(final <= limit),
                       "ratio_to_best_lr": (lr / best_lr) if lr else None}
    return {
        "problem": problem.name, "optimizer": problem.optimizer_name, "steps": steps,
        "schedule": schedule,
        "initial_loss": initial, "best_grid_lr": best_lr, "best_grid_loss": best,
        "limit": limit, "tolerance": TOLERANCE,
        "grid": [{"lr": lr, "final_loss": _finite_or_none(v)} for lr, v in grid_losses.items()],
        "range_test": {"stop_reason": rt["stop_reason"], "steps_run": rt["steps_run"],
                       "confidence": sugg["confidence"], "reason": sugg["reason"]},
        "rules": rules,
    }


def _finite_or_none(v: float) -> float | None:
    return v if math.isfinite(v) else None
