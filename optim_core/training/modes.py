"""Train/eval flags saved and restored per submodule: the one place this is done.

``model.train(flag)`` recurses and would overwrite every child's own flag, so a model with a
frozen-BatchNorm submodule in eval mode would come back changed. The range test's state restore
and every validation pass (range test and trials) save the flags of every submodule and set them
back one by one.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping

from torch import nn

__all__ = ["eval_mode", "restore_modes", "save_modes"]


def save_modes(model: nn.Module) -> dict[str, bool]:
    """Every submodule's train/eval flag, by qualified name."""
    return {name: m.training for name, m in model.named_modules()}


def restore_modes(model: nn.Module, modes: Mapping[str, bool]) -> None:
    # Set the attribute, not ``m.train(flag)``: that recurses and would overwrite the children.
    for name, m in model.named_modules():
        if name in modes:
            m.training = modes[name]


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Evaluate in eval mode, then put every submodule's flag back as it was."""
    modes = save_modes(model)
    model.eval()
    try:
        yield model
    finally:
        restore_modes(model, modes)
