"""build_optimizer: each name runs the update GUIDELINES.md writes (O3.1, O3.2, O4.1, O4.2, O5.1,
O5.3, W4), computed by hand here in float64 from the formulas; AdamW differs from Adam + L2 (W6);
LAMB, Lion and Adafactor (library math) build and lower a quadratic; the factory's table, per-group
weight decay, fused selection and errors."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from optim_core.errors import SpecError, UnknownComponentError
from optim_core.specs.catalog import CATALOG
from optim_core.specs.optimizer import OPTIMIZER_NAMES, OptimizerSpec
from optim_core.training.optimizers import build_optimizer, optimizer_class

TH0 = [0.5, -1.5, 2.0]
G1 = [0.3, -0.2, 1.0]
G2 = [-0.1, 0.4, 0.7]


def _t(values: list[float]) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64)


def _steps(spec: OptimizerSpec, grads: list[list[float]], theta0: list[float] = TH0,
           ) -> torch.Tensor:
    """Parameters after one optimizer step per hand-set gradient."""
    p = nn.Parameter(_t(theta0))
    opt = build_optimizer([p], spec)
    for g in grads:
        p.grad = _t(g)
        opt.step()
    return p.detach()


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float = 1e-12) -> None:
    torch.testing.assert_close(a, b, rtol=rtol, atol=1e-15)


def test_o3_1_momentum() -> None:
    eta, beta = 0.1, 0.9
    got = _steps(OptimizerSpec(name="sgd", lr=eta, momentum=beta, weight_decay=0.0), [G1, G2])
    # v ← βv + ∇L; θ ← θ − ηv (torch's dampening is 0, so this is exactly its update)
    theta, v = _t(TH0), torch.zeros(3, dtype=torch.float64)
    for g in (_t(G1), _t(G2)):
        v = beta * v + g
        theta = theta - eta * v
    _close(got, theta)


def test_o3_2_nesterov_torch_form_and_look_ahead_equivalence() -> None:
    """torch's Nesterov is the reformulated update  v ← βv + g(θ);  θ ← θ − η(g + βv).

    O3.2 takes the gradient at the look-ahead point:  v' = βv + ∇L(θ − ηβv);  θ' = θ − ηv'.
    Substitute φ = θ − ηβv (the look-ahead point) and g = ∇L(φ):
        φ' = θ' − ηβv' = θ − ηv' − ηβv' = φ + ηβv − η(1+β)v'
    and since βv = v' − g:
        φ' = φ + η(v' − g) − η(1+β)v' = φ − η(g + βv'),
    which is torch's form with the parameters stored at the look-ahead point (v is the same
    sequence). So on any loss, torch's parameters equal θ_t − ηβv_t of the O3.2 iteration.
    """
    eta, beta = 0.05, 0.9
    spec = OptimizerSpec(name="sgd", lr=eta, momentum=beta, nesterov=True, weight_decay=0.0)
    got = _steps(spec, [G1, G2])
    theta, v = _t(TH0), torch.zeros(3, dtype=torch.float64)
    for g in (_t(G1), _t(G2)):  # torch's formula, by hand
        v = beta * v + g
        theta = theta - eta * (g + beta * v)
    _close(got, theta)

    # The look-ahead form on a quadratic L(θ) = ½ θᵀAθ − bᵀθ (gradient depends on where it is taken).
    a = torch.tensor([[3.0, 0.5, 0.0], [0.5, 2.0, 0.2], [0.0, 0.2, 1.0]], dtype=torch.float64)
    b = _t([1.0, -1.0, 0.5])

    def grad(x: torch.Tensor) -> torch.Tensor:
        return a @ x - b

    p = nn.Parameter(_t(TH0))
    opt = build_optimizer([p], spec)
    theta, v = _t(TH0), torch.zeros(3, dtype=torch.float64)
    for _ in range(5):
        p.grad = grad(p.detach())
        opt.step()
        v = beta * v + grad(theta - eta * beta * v)
        theta = theta - eta * v
        _close(p.detach(), theta - eta * beta * v, rtol=1e-10)


def test_o4_1_adagrad() -> None:
    """torch adds ε outside the root, g/(√G + ε); the guideline writes g/√(G + ε). With G of
    order 1 and ε = 1e-10 the two differ by ~1e-10 relative, so both are checked: torch's form
    tightly, the guideline's to 1e-8."""
    eta, eps = 0.1, 1e-10
    got = _steps(OptimizerSpec(name="adagrad", lr=eta, eps=eps), [G1, G2])
    theta, big_g = _t(TH0), torch.zeros(3, dtype=torch.float64)
    theta_guide = theta.clone()
    for g in (_t(G1), _t(G2)):
        big_g = big_g + g * g
        theta = theta - eta * g / (big_g.sqrt() + eps)
        theta_guide = theta_guide - eta * g / (big_g + eps).sqrt()
    _close(got, theta)
    _close(got, theta_guide, rtol=1e-8)


def test_o4_2_rmsprop_alpha_is_beta() -> None:
    eta, beta, eps = 0.01, 0.9, 1e-12  # ε tiny so √(v+ε) (guideline) ≈ √v + ε (torch)
    got = _steps(OptimizerSpec(name="rmsprop", lr=eta, betas=(0.0, beta), eps=eps), [G1, G2])
    theta, v = _t(TH0), torch.zeros(3, dtype=torch.float64)
    theta_guide = theta.clone()
    for g in (_t(G1), _t(G2)):
        v = beta * v + (1 - beta) * g * g
        theta = theta - eta * g / (v.sqrt() + eps)
        theta_guide = theta_guide - eta * g / (v + eps).sqrt()
    _close(got, theta)
    _close(got, theta_guide, rtol=1e-8)


def _adam_by_hand(theta: torch.Tensor, grads: list[torch.Tensor], eta: float, b1: float,
                  b2: float, eps: float, l2: float = 0.0, decoupled: float = 0.0) -> torch.Tensor:
    """O5.1 with bias correction; ``l2`` adds λθ to the gradient (Adam + L2), ``decoupled`` is
    O5.3's θ ← θ − η(m̂/(√v̂+ε) + λθ)."""
    m = torch.zeros_like(theta)
    v = torch.zeros_like(theta)
    for t, g in enumerate(grads, start=1):
        g = g + l2 * theta
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat, v_hat = m / (1 - b1**t), v / (1 - b2**t)
        theta = theta - eta * (m_hat / (v_hat.sqrt() + eps) + decoupled * theta)
    return theta


def test_o5_1_adam_two_steps_with_bias_correction() -> None:
    eta, b1, b2, eps = 1e-2, 0.9, 0.999, 1e-8
    got = _steps(OptimizerSpec(name="adam", lr=eta, betas=(b1, b2), eps=eps), [G1, G2])
    _close(got, _adam_by_hand(_t(TH0), [_t(G1), _t(G2)], eta, b1, b2, eps))


def test_o5_3_adamw_decoupled_decay() -> None:
    """torch's AdamW first shrinks θ ← θ(1 − ηλ), then takes the Adam step from the shrunk θ.
    Because m̂, v̂ depend on the gradient only, θ(1 − ηλ) − ηu = θ − η(u + λθ): the guideline's
    form with λθ taken before the step is the same update (checked both ways)."""
    eta, lam, b1, b2, eps = 1e-2, 0.1, 0.9, 0.999, 1e-8
    spec = OptimizerSpec(name="adamw", lr=eta, weight_decay=lam, betas=(b1, b2), eps=eps)
    got = _steps(spec, [G1, G2])
    _close(got, _adam_by_hand(_t(TH0), [_t(G1), _t(G2)], eta, b1, b2, eps, decoupled=lam))
    # torch's own order of operations, by hand
    theta, m, v = _t(TH0), torch.zeros(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64)
    for t, g in enumerate((_t(G1), _t(G2)), start=1):
        theta = theta * (1 - eta * lam)
        m, v = b1 * m + (1 - b1) * g, b2 * v + (1 - b2) * g * g
        theta = theta - eta * (m / (1 - b1**t)) / ((v / (1 - b2**t)).sqrt() + eps)
    _close(got, theta)


def test_w4_sgd_l2_equals_weight_decay_with_factor_two() -> None:
    """W4 puts λ on Σw², so ∇(λΣw²) = 2λw and w ← (1 − 2ηλ)w − η∇L. torch's weight_decay λ' adds
    λ'w to the gradient: (1 − ηλ')w − ηg, i.e. λ' = 2λ in the seed's notation."""
    eta, lam = 0.1, 0.05
    got = _steps(OptimizerSpec(name="sgd", lr=eta, momentum=0.0, weight_decay=2 * lam), [G1])
    w, g = _t(TH0), _t(G1)
    _close(got, (1 - 2 * eta * lam) * w - eta * g)

    # and the same as plain SGD on the loss with the L2 term λΣw² added, through autograd
    p = nn.Parameter(_t(TH0))
    opt = build_optimizer([p], OptimizerSpec(name="sgd", lr=eta, momentum=0.0, weight_decay=0.0))
    loss = (p * _t(G1)).sum() + lam * (p * p).sum()  # ∇ of the first term is G1
    loss.backward()
    opt.step()
    _close(p.detach(), got)


def test_adamw_is_not_adam_plus_l2_w6() -> None:
    """Same start, same gradients, different parameters: Adam + L2 feeds λθ through the adaptive
    denominator, so its decay is divided by √v̂ and depends on each coordinate's gradient scale;
    AdamW's decay is ηλθ for every coordinate."""
    eta, lam = 1e-2, 0.1
    theta0 = [1.0, 1.0]  # two identical weights …
    grads = [[5.0, 0.0]]  # … one with a large gradient, one that gets no gradient
    adam = _steps(OptimizerSpec(name="adam", lr=eta), grads, theta0)
    adamw = _steps(OptimizerSpec(name="adamw", lr=eta, weight_decay=lam), grads, theta0)
    adam_l2 = _steps(OptimizerSpec(name="adam_l2", lr=eta, weight_decay=lam), grads, theta0)
    assert not torch.allclose(adamw, adam_l2)
    _close(adam_l2, _adam_by_hand(_t(theta0), [_t(g) for g in grads], eta, 0.9, 0.999, 1e-8,
                                  l2=lam))

    decay_w = adamw - adam  # what the decay changed, per coordinate
    decay_l2 = adam_l2 - adam
    _close(decay_w, torch.full((2,), -eta * lam * 1.0, dtype=torch.float64), rtol=1e-9)
    # Adam + L2 moves by η·(g + λθ)/(√v̂ + ε) with √v̂ = |g + λθ| on step 1. The weight with a
    # large gradient barely feels λθ (it is divided by √v̂ ≈ |g|): almost no decay. The weight with
    # no gradient moves by λθ/|λθ| · η = η, ten times AdamW's ηλθ here: uneven regularization.
    assert abs(decay_l2[0]) < 1e-3 * abs(decay_w[0])
    assert decay_l2[1] == pytest.approx(-eta * (lam / (lam + 1e-8)), rel=1e-12)
    assert abs(decay_l2[1]) > 5 * abs(decay_w[1])


def _quadratic(shape: tuple[int, ...]) -> tuple[nn.Parameter, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return nn.Parameter(torch.randn(*shape, generator=gen)), torch.randn(*shape, generator=gen)


@pytest.mark.parametrize(("name", "lr"), [("lamb", 1e-2), ("lion", 1e-2), ("adafactor", 1e-2)])
def test_library_optimizers_lower_a_quadratic(name: str, lr: float) -> None:
    w, target = _quadratic((4, 3))
    bias, bias_target = _quadratic((3,))
    opt = build_optimizer([{"params": [w]}, {"params": [bias], "weight_decay": 0.0}],
                          OptimizerSpec(name=name, lr=lr))

    def loss() -> torch.Tensor:
        return ((w - target) ** 2).sum() + ((bias - bias_target) ** 2).sum()

    start = loss().item()
    for _ in range(5):
        opt.zero_grad()
        loss().backward()
        opt.step()
    assert math.isfinite(loss().item()) and loss().item() < start


@pytest.mark.parametrize("name", OPTIMIZER_NAMES)
def test_every_name_builds_from_a_module_with_the_o7_3_split(name: str) -> None:
    model = nn.Sequential(nn.Linear(3, 4), nn.LayerNorm(4), nn.Linear(4, 1))
    spec = OptimizerSpec(name=name)
    opt = build_optimizer(model, spec)
    decay = {g["name"]: g["weight_decay"] for g in opt.param_groups}
    assert decay["no_decay"] == 0.0
    assert decay["decay"] == spec.weight_decay
    assert opt.defaults["lr"] == spec.lr
    # CPU: the fused kernel where torch has one for the CPU (CATALOG[name].fused_on)
    assert bool(opt.defaults.get("fused")) is ("cpu" in CATALOG[name].fused_on)
    model(torch.ones(2, 3)).sum().backward()
    opt.step()


def test_groups_keep_their_own_weight_decay() -> None:
    a, b, c = (nn.Parameter(torch.ones(2, 2)) for _ in range(3))
    opt = build_optimizer([{"params": [a], "weight_decay": 0.3}, {"params": [b]},
                           {"params": [c], "weight_decay": 0.0}],
                          OptimizerSpec(name="adamw", weight_decay=0.05))
    assert [g["weight_decay"] for g in opt.param_groups] == [0.3, 0.05, 0.0]


def test_table_maps_spec_fields_to_constructor_arguments() -> None:
    p = [nn.Parameter(torch.ones(2, 2))]
    rms = build_optimizer(p, {"name": "rmsprop", "betas": (0.0, 0.95), "momentum": 0.5})
    assert (rms.defaults["alpha"], rms.defaults["momentum"]) == (0.95, 0.5)
    ada = build_optimizer(p, {"name": "adafactor", "eps": 1e-20})
    assert ada.defaults["eps"] == (1e-20, 1e-3)
    l2 = build_optimizer(p, {"name": "adam_l2", "weight_decay": 0.2})
    assert type(l2) is torch.optim.Adam and not l2.defaults["decoupled_weight_decay"]
    assert l2.defaults["weight_decay"] == 0.2
    assert build_optimizer(p, {"name": "lion"}).defaults["weight_decouple"] is True


@pytest.mark.parametrize("name", list(CATALOG))
def test_every_catalogue_row_builds_the_class_it_names(name: str) -> None:
    # The row is data (an import path and a kwargs mapping): check it against the real class, so
    # a typo in a path or a keyword the constructor does not take fails here, not in a job.
    row = CATALOG[name]
    cls = optimizer_class(name)
    assert issubclass(cls, torch.optim.Optimizer)
    assert f"{cls.__module__.split('.')[0]}" == row.class_path.split(".")[0].split(":")[0]
    opt = build_optimizer([nn.Parameter(torch.ones(2, 2))], {"name": name})
    assert type(opt) is cls
    assert opt.defaults["lr"] == row.defaults["lr"]
    assert opt.defaults["weight_decay"] == row.defaults["weight_decay"]


def test_fused_is_chosen_from_the_device() -> None:
    p = [nn.Parameter(torch.ones(2, 2))]
    # The device type decides (torch checks the device only at step time, so the CUDA decision
    # can be tested on a CPU-only machine): fused where torch has a kernel for that device …
    for name in ("adamw", "adam", "adam_l2", "sgd"):
        assert build_optimizer(p, {"name": name}, device_type="cuda").defaults["fused"] is True
        assert build_optimizer(p, {"name": name}, device_type="cpu").defaults["fused"] is True
    assert build_optimizer(p, {"name": "adagrad"}, device_type="cpu").defaults["fused"] is True
    # … and not where it has none: Adagrad's fused kernel is CPU-only, RMSprop has none.
    assert not build_optimizer(p, {"name": "adagrad"}, device_type="cuda").defaults["fused"]
    assert "fused" not in build_optimizer(p, {"name": "rmsprop"}, device_type="cuda").defaults
    # Without a device type it is read from the parameters (on the CPU here).
    assert build_optimizer(p, {"name": "adamw"}).defaults["fused"] is True


@pytest.mark.parametrize("name", ["adamw", "adam_l2", "sgd", "adagrad"])
def test_the_fused_cpu_optimizer_steps_like_the_default_path(name: str) -> None:
    # Fused is a speed choice only: what build_optimizer makes on the CPU (fused) takes the
    # same two steps as the same settings on torch's per-tensor loop, to float64 rounding.
    p0 = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    spec = OptimizerSpec(name=name, lr=1e-2, weight_decay=0.1)
    out = []
    for fused in (True, False):
        p = nn.Parameter(p0.clone())
        opt = build_optimizer([p], spec)
        assert opt.defaults["fused"] is True
        if not fused:  # torch reads these per group at step time
            for group in opt.param_groups:
                group.update(fused=False, foreach=False)
        for g in (torch.ones_like(p0), -0.5 * torch.ones_like(p0)):
            p.grad = g.clone()
            opt.step()
        out.append(p.detach())
    torch.testing.assert_close(out[0], out[1], rtol=1e-12, atol=1e-14)


def test_errors() -> None:
    p = [nn.Parameter(torch.ones(1))]
    with pytest.raises(UnknownComponentError) as err:
        build_optimizer(p, {"name": "adamax"})
    assert err.value.field == "name" and "adamw" in err.value.allowed
    with pytest.raises(SpecError, match="no parameters"):
        build_optimizer([], OptimizerSpec(name="sgd"))
