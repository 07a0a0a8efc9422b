"""Counting the reads of tensor values into Python: each one is a host sync on CUDA, so counting
them on the CPU checks the GPU paths' sync discipline without a GPU."""

from __future__ import annotations

from typing import Any

import torch


class HostReads(torch.overrides.TorchFunctionMode):
    """Counts ``.item()``, ``.tolist()``, ``bool()``/``float()``/``int()`` and ``.numpy()`` on
    tensors while active."""

    READS = frozenset({torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.__bool__,
                       torch.Tensor.__float__, torch.Tensor.__int__, torch.Tensor.numpy})

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None
                           ) -> Any:
        if func in self.READS:
            self.count += 1
        return func(*args, **(kwargs or {}))
