"""``ScheduleLR``: drive any torch optimizer from a pure schedule (``optim_core.numerics.schedules``).

It subclasses torch's ``LRScheduler`` so it works wherever a torch scheduler does (Lightning,
checkpoints, ``get_last_lr``), but unlike ``LambdaLR`` the schedule gives the learning rate
itself, not a factor of the optimizer's initial LR: the value a user previews through the API is
the value the optimizer uses. Groups may scale it by a stored ``lr_scale`` (e.g. a smaller LR for
a pretrained backbone).

Usage, the torch order (step the optimizer, then the scheduler)::

    sched = ScheduleLR(opt, warmup_cosine(3e-4, 100, 10_000))   # opt now uses schedule(0)
    for batch in data:
        loss.backward(); opt.step(); opt.zero_grad(); sched.step()

``last_epoch`` counts optimizer steps: the ``t``-th ``opt.step()`` (0-based) runs at
``schedule(t) * lr_scale``. Construction sets step 0's LR immediately, so the first update never
runs at whatever LR the optimizer was built with.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.optim.lr_scheduler import LRScheduler

from optim_core.errors import SpecError
from optim_core.numerics.schedules import Schedule

__all__ = ["ScheduleLR"]


class ScheduleLR(LRScheduler):
    """Set every param group's ``lr`` to ``schedule(step) * group.get("lr_scale", 1.0)``."""

    def __init__(self, optimizer: torch.optim.Optimizer, schedule: Schedule,
                 last_epoch: int = -1) -> None:
        if not callable(schedule):
            raise SpecError(f"schedule must be a callable step -> lr, got {schedule!r}",
                            field="schedule", value=schedule, allowed="Callable[[int], float]")
        for i, group in enumerate(optimizer.param_groups):
            scale = group.get("lr_scale", 1.0)
            if isinstance(scale, bool) or not isinstance(scale, int | float) or not scale > 0:
                raise SpecError(f"param_groups[{i}].lr_scale must be a number > 0, got {scale!r}",
                                field=f"param_groups[{i}].lr_scale", value=scale, allowed="> 0")
        self.schedule = schedule
        # The base class runs the first step(), which moves last_epoch to 0 and applies
        # schedule(0): the LR for the first optimizer step is set here, not after it.
        super().__init__(optimizer, last_epoch)

    def get_lr(self) -> list[float | torch.Tensor]:
        lr = float(self.schedule(self.last_epoch))
        return [lr * group.get("lr_scale", 1.0) for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        # The schedule is code, not state (and a closure cannot be pickled): the caller rebuilds it
        # from its ScheduleSpec, and only the step count and last LRs are saved.
        return {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "schedule")}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the step count, then re-apply ``schedule(step)``: the LR then follows this
        scheduler's schedule even if the optimizer's state dict was loaded after it."""
        super().load_state_dict({k: v for k, v in state_dict.items() if k != "schedule"})
        for group, lr in zip(self.optimizer.param_groups, self.get_lr(), strict=True):
            if isinstance(group["lr"], torch.Tensor):  # capturable/fused optimizers keep a tensor
                group["lr"].fill_(lr)
            else:
                group["lr"] = lr
        self._last_lr = [float(group["lr"]) for group in self.optimizer.param_groups]
