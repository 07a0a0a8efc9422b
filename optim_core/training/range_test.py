"""The LR range test (measuring): sweep the LR up while training, record the loss. [torch]

Deciding which LR to use is ``optim_core.numerics.suggest`` (pure, torch-free); this module only measures.

Batch protocol
--------------
``train_data`` (and ``val_data``) is any re-iterable of batches (a ``DataLoader``, a list, ...). It
is cycled: when an iteration is exhausted it is iterated again (a one-shot generator that comes back
empty raises ``SpecError``). Each batch is moved to the device (tensors inside tuples, lists and
dicts, recursively), then:

* default: the batch is a ``tuple`` or ``list`` ``(inputs, targets)`` and the loss is
  ``loss_fn(model(inputs), targets)``; anything else (a dict, a bare tensor — even one with two
  rows, which would unpack into two halves) is a ``SpecError`` pointing to ``forward=``;
* ``forward=`` hook: ``forward(model, batch) -> loss`` for dict batches, several inputs, models that
  compute their own loss, ... (``loss_fn`` may then be None).

The loss must be a scalar tensor; it may be negative. The validation loss is the mean over the
fixed validation batches weighted by each batch's sample count (the first dimension of the batch's
first tensor, depth-first: ``inputs`` for ``(inputs, targets)``), as the short trials weight theirs;
a batch without any tensor counts as one sample.

Divergence
----------
The sweep stops by the shift-invariant divergence rule of ``optim_core.numerics.divergence``
(described there, once; the trials use the same rule), with ``divergence_threshold`` as its
threshold (default 1: the smoothed loss has climbed back by as much as it had fallen), or at once
on a NaN/Inf loss ("non_finite"). The stored curve ends at the step that triggered the stop (inclusive);
``steps_run`` counts the steps actually run, which can be up to ``check_every - 1`` more, because
the check happens every ``check_every`` steps (on CUDA without a host sync in between).

State
-----
Parameters, buffers, gradients, the optimizer's state and param groups, tensors the optimizer
updates that the model does not own (a learnable temperature, a loss head's weights: matched by
identity, values and ``.grad``), every submodule's train/eval flag (a frozen BatchNorm kept in eval
inside a training model stays so), and the RNG states (torch CPU; every CUDA device when CUDA is
initialised or the test runs on CUDA — CUDA is then initialised *before* the snapshot, so a first
CUDA use during the sweep is undone too; python ``random``; numpy) are restored exactly afterwards,
also on error or cancel (try/finally). The copy lives in host memory (no temp files: concurrent
workers share disks; no second copy of the model on the GPU).

Modes during the sweep: a model in training mode is trained with its submodules' flags as they are
(how the caller trains it); a model in eval mode is switched to training mode for the sweep.

Devices and speed
-----------------
An ``OptimizerSpec`` is built after the model has moved to the test's device and for that device,
so the fused kernels of ``optim_core.training.optimizers`` are used for that device. With ``amp="fp16"``, a fused
optimizer takes the GradScaler's inf check inside its kernel; a non-fused one (a ready optimizer
built without ``fused=True``, or one torch has no fused kernel for) makes ``GradScaler.step`` read
the inf flag on the host: one device sync per step.
"""

from __future__ import annotations

import contextlib
import math
import random
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parameter import is_lazy

from optim_core.errors import Cancelled, SpecError, TrainingError
from optim_core.numerics.divergence import DivergenceMonitor
from optim_core.numerics.finite import finite_floats, finite_or_none, json_safe
from optim_core.numerics.suggest import Suggestions, suggest
from optim_core.specs.optimizer import OptimizerSpec
from optim_core.specs.range_test import ProgressEvent, RangeTestConfig
from optim_core.training.data import split_batch
from optim_core.training.modes import eval_mode, restore_modes, save_modes
from optim_core.training.optimizers import build_optimizer
from optim_core.training.param_groups import build_param_groups

Batch = Any
ForwardFn = Callable[[nn.Module, Batch], torch.Tensor]
LossFn = Callable[[Any, Any], torch.Tensor]

@dataclass
class RangeTestResult:
    """What one sweep measured. ``losses`` are smoothed, ``raw_losses`` as computed."""

    lrs: list[float]
    losses: list[float]
    raw_losses: list[float]
    stop_reason: str  # "completed" | "diverged" | "non_finite"
    steps_run: int
    suggestions: Suggestions
    seconds: float
    device: str
    val_steps: list[int] = field(default_factory=list)
    val_losses: list[float] = field(default_factory=list)
    config: RangeTestConfig = field(default_factory=RangeTestConfig)
    #: ``ParamGroupReport.to_dict()`` of the decay / no-decay groups this test built (None for a
    #: ready optimizer, whose groups the caller made). Not in ``to_dict()``: the experiment entry
    #: point reports it once, at the top level of its result.
    param_groups: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON: lists of floats, NaN/Inf as None."""
        out: dict[str, Any] = {
            "lrs": finite_floats(self.lrs),
            "losses": finite_floats(self.losses),
            "raw_losses": finite_floats(self.raw_losses),
            "stop_reason": self.stop_reason,
            "steps_run": self.steps_run,
            "suggestions": json_safe(self.suggestions.to_dict()),
            "seconds": float(self.seconds),
            "device": self.device,
            "config": self.config.model_dump(mode="json"),
        }
        if self.val_steps:
            out["val_steps"] = list(self.val_steps)
            out["val_losses"] = finite_floats(self.val_losses)
        return out


# --------------------------------------------------------------------------------------------
# state snapshot (host memory) and restore
# --------------------------------------------------------------------------------------------


def _to_host(obj: Any) -> Any:
    """Deep copy with every tensor cloned into host memory."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: _to_host(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_host(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_to_host(v) for v in obj)
    return obj


def _foreign_params(model: nn.Module, optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """Tensors the optimizer updates that are not the model's (by identity), in group order."""
    owned = {id(p) for p in model.parameters()}
    seen: set[int] = set()
    out: list[torch.Tensor] = []
    for group in optimizer.param_groups:
        for p in group["params"]:
            if id(p) not in owned and id(p) not in seen:
                seen.add(id(p))
                out.append(p)
    return out


@dataclass
class _Snapshot:
    params: dict[str, torch.Tensor]
    grads: dict[str, torch.Tensor | None]
    buffers: dict[str, torch.Tensor]
    optimizer: dict[str, Any] | None  # None: the test built the optimizer (it is thrown away)
    foreign: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]]  # (live, value, grad)
    modes: dict[str, bool]
    device: torch.device | None
    torch_rng: torch.Tensor
    cuda_rng: list[torch.Tensor] | None
    py_rng: Any
    np_rng: Any

    @classmethod
    def take(cls, model: nn.Module, optimizer: torch.optim.Optimizer | None,
             run_device: torch.device) -> _Snapshot:
        first = next(model.parameters(), None)
        if run_device.type == "cuda":
            # Initialise CUDA now: if the sweep were the first CUDA use, its RNG state would not
            # exist yet here, and the generator the sweep advances would never be put back.
            torch.cuda.init()
        cuda_rng = (torch.cuda.get_rng_state_all()
                    if torch.cuda.is_available() and torch.cuda.is_initialized() else None)
        foreign = [] if optimizer is None else _foreign_params(model, optimizer)
        return cls(
            params={k: _to_host(p) for k, p in model.named_parameters()},
            grads={k: None if p.grad is None else _to_host(p.grad)
                   for k, p in model.named_parameters()},
            # named_buffers includes non-persistent buffers, which state_dict() would miss.
            buffers={k: _to_host(b) for k, b in model.named_buffers()},
            optimizer=None if optimizer is None else _to_host(optimizer.state_dict()),
            foreign=[(p, _to_host(p), None if p.grad is None else _to_host(p.grad))
                     for p in foreign],
            modes=save_modes(model),
            device=None if first is None else first.device,
            torch_rng=torch.get_rng_state(),
            cuda_rng=cuda_rng,
            py_rng=random.getstate(),
            np_rng=np.random.get_state(),
        )

    def restore(self, model: nn.Module, optimizer: torch.optim.Optimizer | None) -> None:
        if self.device is not None:
            model.to(self.device)  # in place on Parameters: the optimizer's references stay valid
        with torch.no_grad():
            for k, p in model.named_parameters():
                p.copy_(self.params[k])
                g = self.grads[k]
                p.grad = None if g is None else g.to(p.device, copy=True)
            for k, b in model.named_buffers():
                if k in self.buffers:
                    b.copy_(self.buffers[k])
            for p, value, grad in self.foreign:
                p.copy_(value)
                p.grad = None if grad is None else grad.to(p.device, copy=True)
        if optimizer is not None and self.optimizer is not None:
            # load_state_dict casts floating state to each param's device/dtype and replaces the
            # state wholesale (state created during the sweep is dropped).
            optimizer.load_state_dict(self.optimizer)
        restore_modes(model, self.modes)
        torch.set_rng_state(self.torch_rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)
        random.setstate(self.py_rng)
        np.random.set_state(self.np_rng)


# --------------------------------------------------------------------------------------------
# batches
# --------------------------------------------------------------------------------------------


def _move(batch: Any, device: torch.device) -> Any:
    non_blocking = device.type == "cuda"
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=non_blocking)
    if isinstance(batch, Mapping):
        return {k: _move(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(_move(v, device) for v in batch))
    if isinstance(batch, list | tuple):
        return type(batch)(_move(v, device) for v in batch)
    return batch


class _Cycle:
    """Re-iterates ``data`` each time it is exhausted."""

    def __init__(self, data: Iterable[Batch], name: str) -> None:
        self._data = data
        self._name = name
        self._it: Iterator[Batch] = iter(data)

    def next(self) -> Batch:
        try:
            return next(self._it)
        except StopIteration:
            self._it = iter(self._data)
            try:
                return next(self._it)
            except StopIteration:
                raise SpecError(
                    f"{self._name} yielded no batches (pass a re-iterable such as a DataLoader or "
                    "a list, not a one-shot generator)", field=self._name) from None


def _default_forward(loss_fn: LossFn | None) -> ForwardFn:
    if loss_fn is None:
        raise SpecError("loss_fn is required unless a forward(model, batch) hook is given",
                        field="loss_fn")

    def forward(model: nn.Module, batch: Batch) -> torch.Tensor:
        # Only a real pair (data.split_batch): a 2-row tensor or a 2-key dict is not one.
        inputs, targets = split_batch(
            batch, field="train_data",
            hint="; pass forward=(model, batch) -> loss for other shapes")
        return loss_fn(model(inputs), targets)

    return forward


# --------------------------------------------------------------------------------------------
# optimizer
# --------------------------------------------------------------------------------------------


def _make_optimizer(model: nn.Module, optimizer: OptimizerSpec | None, lr: float, *,
                    device_type: str | None = None,
                    ) -> tuple[torch.optim.Optimizer, dict[str, Any]]:
    """Build an ``OptimizerSpec`` through the factory (with the decay / no-decay parameter groups);
    None -> AdamW with the guideline defaults. ``device_type`` is where it will step: the factory
    picks the fused kernel from it. Returns the optimizer and the report of the groups it has."""
    spec = optimizer if optimizer is not None else OptimizerSpec(name="adamw", lr=lr)
    groups, report = build_param_groups(model, spec.weight_decay or 0.0, spec.decay_embeddings)
    return build_optimizer(groups, spec, device_type=device_type), report.to_dict()


def _lr_ratios(optimizer: torch.optim.Optimizer) -> list[float]:
    """Each group's LR as a fraction of the largest non-zero one: the sweep LR goes to that group,
    the others keep their proportion to it.

    Not against group 0: a group frozen with lr 0 would make every ratio undefined (and the frozen
    group would be swept). A group with lr 0 gets ratio 0 and stays frozen for the whole sweep.
    A tensor lr (torch allows one) is read as a float, so the groups get plain float LRs.
    """
    lrs = [float(g["lr"]) for g in optimizer.param_groups]
    base = max((lr for lr in lrs if lr != 0.0), default=0.0)
    if base == 0.0:
        raise SpecError("every param group of the optimizer has lr 0: nothing to sweep",
                        field="optimizer", value=lrs, allowed="at least one group with lr > 0")
    return [lr / base for lr in lrs]


def _set_lr(optimizer: torch.optim.Optimizer, lr: float, ratios: list[float]) -> None:
    for group, r in zip(optimizer.param_groups, ratios, strict=True):
        group["lr"] = lr * r


# --------------------------------------------------------------------------------------------
# the sweep
# --------------------------------------------------------------------------------------------


def _monitor(config: RangeTestConfig) -> DivergenceMonitor:
    """Host-side smoothing and the divergence rule, fed chunk by chunk at check time.

    The decision at step ``t`` uses only losses ``0..t``, so where the test stops does not depend
    on ``check_every`` (only how many extra steps ran before the check noticed).
    """
    return DivergenceMonitor(beta=config.smooth_beta, threshold=config.divergence_threshold,
                             num_steps=config.num_steps, enabled=config.stop_on_divergence)


def _check_materialised(model: nn.Module) -> None:
    """Refuse un-materialised lazy modules (``nn.LazyLinear``, ``LazyBatchNorm``, ...) up front:
    their parameters have no shape or data yet, so neither the state snapshot nor an optimizer
    can be made from them (torch would fail deep inside with a bare ValueError)."""
    lazy = [n for n, t in (*model.named_parameters(), *model.named_buffers()) if is_lazy(t)]
    if lazy:
        raise SpecError(
            f"{type(model).__name__} has un-materialised lazy parameters or buffers "
            f"({', '.join(lazy[:5])}{', ...' if len(lazy) > 5 else ''}): run one forward pass "
            "with a real batch first (or materialise the lazy modules) before the range test",
            field="model", value=lazy, allowed="a model whose lazy modules are materialised")


def lr_range_test(
    model: nn.Module,
    train_data: Iterable[Batch],
    loss_fn: LossFn | None,
    *,
    optimizer: torch.optim.Optimizer | OptimizerSpec | Mapping[str, Any] | None = None,
    config: RangeTestConfig | None = None,
    val_data: Iterable[Batch] | None = None,
    device: str | torch.device | None = None,
    progress: Callable[[ProgressEvent], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    forward: ForwardFn | None = None,
) -> RangeTestResult:
    """Run an LR range test on ``model`` and restore everything afterwards.

    ``optimizer``: a ready ``torch.optim.Optimizer`` (its param groups' LR ratios are kept: each
    group gets ``sweep_lr * group_lr / max_group_lr``, so a group with lr 0 stays frozen; at least
    one group needs lr > 0), an ``OptimizerSpec`` (built through
    ``optim_core.training.optimizers.build_optimizer``), or None for AdamW with default settings.
    ``device``: where to run (default: where the model's parameters are); the model is moved there
    and back. ``progress`` gets a ``ProgressEvent`` every ``config.check_every`` steps and at the
    end; ``should_stop()`` is polled between steps and raises ``Cancelled`` (state restored).
    ``forward(model, batch) -> loss`` replaces the default ``loss_fn(model(inputs), targets)``.
    """
    _check_materialised(model)
    cfg = config if config is not None else RangeTestConfig()
    first_param = next(model.parameters(), None)
    if first_param is None:
        raise SpecError("the model has no parameters", field="model")
    dev = torch.device(device) if device is not None else first_param.device
    if cfg.amp == "fp16" and dev.type != "cuda":
        raise SpecError("amp='fp16' needs CUDA (use 'bf16' on CPU)", field="amp", value=cfg.amp,
                        allowed="none | bf16 (any device) | fp16 (CUDA)")
    step_fn = forward if forward is not None else _default_forward(loss_fn)
    ready = optimizer if isinstance(optimizer, torch.optim.Optimizer) else None
    spec: OptimizerSpec | None = None
    if isinstance(optimizer, Mapping):
        spec = OptimizerSpec.model_validate(optimizer)  # the factory's dict form
    elif isinstance(optimizer, OptimizerSpec):
        spec = optimizer
    elif ready is None and optimizer is not None:
        # Never fall back to the default AdamW for something we do not understand.
        raise SpecError(f"optimizer must be a torch optimizer, an OptimizerSpec, a dict or None "
                        f"(got {type(optimizer).__name__})", field="optimizer")

    snapshot = _Snapshot.take(model, ready, dev)
    try:
        if dev != snapshot.device:
            model.to(dev)
            if ready is not None and snapshot.optimizer is not None:
                ready.load_state_dict(snapshot.optimizer)  # moves its state next to the params
        report: dict[str, Any] | None = None
        if ready is not None:
            opt = ready
        else:
            # Built after the move, for the device it will step on: the factory then picks the
            # fused kernel for that device (built before the move, it would pick the CPU's).
            opt, report = _make_optimizer(model, spec, cfg.start_lr, device_type=dev.type)
        result = _sweep(model, opt, train_data, val_data, step_fn, cfg, dev, progress,
                        should_stop)
        result.param_groups = report
        return result
    finally:
        snapshot.restore(model, ready)


def _sweep(model: nn.Module, opt: torch.optim.Optimizer, train_data: Iterable[Batch],
           val_data: Iterable[Batch] | None, step_fn: ForwardFn, cfg: RangeTestConfig,
           dev: torch.device, progress: Callable[[ProgressEvent], None] | None,
           should_stop: Callable[[], bool] | None) -> RangeTestResult:
    t0 = time.perf_counter()
    ratios = _lr_ratios(opt)
    params = [p for g in opt.param_groups for p in g["params"]]
    lrs = [cfg.lr_at(i) for i in range(cfg.num_steps)]
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(cfg.amp)
    scaler = torch.amp.GradScaler("cuda") if cfg.amp == "fp16" else None
    accum = cfg.accumulation_steps

    def autocast() -> contextlib.AbstractContextManager[Any]:
        if amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=dev.type, dtype=amp_dtype)

    train = _Cycle(train_data, "train_data")
    val_cache: list[Batch] = []
    if val_data is not None:
        val_it = iter(val_data)  # a fixed set: the first val_batches batches, moved once
        for _ in range(cfg.val_batches):
            try:
                val_cache.append(_move(next(val_it), dev))
            except StopIteration:
                break
        if not val_cache:
            raise SpecError("val_data yielded no batches", field="val_data")
    val_steps: list[int] = []
    val_losses: list[float] = []

    # Losses stay on the device between checks: no host sync per step on CUDA.
    buf = torch.zeros(cfg.num_steps, dtype=torch.float32, device=dev)
    monitor = _monitor(cfg)
    checked = 0
    step = 0
    if not model.training:
        # A model handed over in eval mode is trained; one in training mode keeps its submodules'
        # flags (a frozen BatchNorm stays frozen, as in the caller's own training).
        model.train()
    for step in range(cfg.num_steps):
        if should_stop is not None and should_stop():
            raise Cancelled(f"range test cancelled after {step} of {cfg.num_steps} steps")
        _set_lr(opt, lrs[step], ratios)
        opt.zero_grad(set_to_none=True)
        total: torch.Tensor | None = None
        for _ in range(accum):
            batch = _move(train.next(), dev)
            with autocast():
                loss = step_fn(model, batch)
            loss_d = loss.detach().float()
            total = loss_d if total is None else total + loss_d
            scaled = loss / accum if accum > 1 else loss
            if scaler is not None:
                scaler.scale(scaled).backward()
            else:
                scaled.backward()
        assert total is not None
        if scaler is not None:
            if cfg.max_grad_norm is not None:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            scaler.step(opt)
            scaler.update()
        else:
            if cfg.max_grad_norm is not None:
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            opt.step()
        buf[step] = total / accum if accum > 1 else total

        if val_cache and (step + 1) % cfg.val_every == 0:
            val_steps.append(step)
            val_losses.append(_val_loss(model, val_cache, step_fn, autocast))

        done = step + 1
        if done % cfg.check_every == 0 or done == cfg.num_steps:
            monitor.feed(buf[checked:done].tolist())  # the one host sync per check
            checked = done
            if progress is not None:
                s = monitor.smoothed[-1] if monitor.smoothed else math.nan
                progress(ProgressEvent(step=done, total=cfg.num_steps, lr=lrs[step],
                                       loss=finite_or_none(s)))
            if monitor.stop_at is not None:
                break
    steps_run = step + 1
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    seconds = time.perf_counter() - t0

    n = len(monitor.raw) if monitor.stop_at is None else monitor.stop_at + 1
    if monitor.raw and not math.isfinite(monitor.raw[0]):
        raise TrainingError("the loss was not finite at the first step (lr="
                            f"{lrs[0]:.3g}): check the model, data and loss function")
    lrs_out = lrs[:n]
    smoothed = monitor.smoothed[:n]
    keep = [i for i, s in enumerate(val_steps) if s < n]
    return RangeTestResult(
        lrs=lrs_out, losses=smoothed, raw_losses=monitor.raw[:n],
        stop_reason=monitor.stop_reason, steps_run=steps_run,
        suggestions=suggest(lrs_out, smoothed, monitor.raw[:n], num_steps=cfg.num_steps,
                            beta=cfg.smooth_beta),
        seconds=seconds, device=str(dev),
        val_steps=[val_steps[i] for i in keep], val_losses=[val_losses[i] for i in keep],
        config=cfg)


def _batch_size(batch: Any) -> int:
    """Samples in a batch: the first dimension of its first tensor (depth-first), else 1."""
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() > 0 else 1
    items = (batch.values() if isinstance(batch, Mapping)
             else batch if isinstance(batch, list | tuple) else ())
    for item in items:
        if isinstance(item, torch.Tensor | Mapping | list | tuple):
            return _batch_size(item)
    return 1


def _val_loss(model: nn.Module, batches: list[Batch], step_fn: ForwardFn,
              autocast: Callable[[], contextlib.AbstractContextManager[Any]]) -> float:
    """Sample-weighted mean loss over the fixed validation batches, in eval mode (as the trials'
    validation loss; a smaller last batch counts for its size). One host sync: optional feature."""
    with eval_mode(model):  # back to the sweep's flags, per submodule, afterwards
        weighted: list[torch.Tensor] = []
        count = 0
        with torch.no_grad(), autocast():
            for b in batches:
                n = _batch_size(b)
                weighted.append(step_fn(model, b).detach().float() * n)
                count += n
        return float(torch.stack(weighted).sum()) / count
