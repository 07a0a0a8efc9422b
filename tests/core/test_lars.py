"""LARS is one catalogue row: the spec validates it, the factory builds it, and it steps."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from optim_core.specs.catalog import CATALOG  # noqa: E402
from optim_core.specs.optimizer import OptimizerSpec  # noqa: E402
from optim_core.training.optimizers import build_optimizer  # noqa: E402


def test_lars_builds_from_its_row_and_steps() -> None:
    spec = OptimizerSpec(name="lars", lr=0.5)
    assert spec.momentum == CATALOG["lars"].defaults["momentum"] == 0.9
    assert spec.weight_decay == CATALOG["lars"].defaults["weight_decay"]
    assert spec.betas is None and spec.eps is None  # not settings of LARS
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    opt = build_optimizer(model, spec)
    assert type(opt).__name__ == "LARS"
    x, y = torch.randn(32, 4), torch.randn(32, 1)
    before = [p.detach().clone() for p in model.parameters()]
    losses = []
    for _ in range(20):
        loss = torch.nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters(), strict=True))
    assert losses[-1] < losses[0]


def test_lars_rejects_settings_it_does_not_have() -> None:
    with pytest.raises(ValueError, match="betas is not a setting of lars"):
        OptimizerSpec(name="lars", betas=(0.9, 0.99))
