"""What every timed benchmark needs: stop the clock only once the device has finished."""

from __future__ import annotations

import torch


def sync(device: torch.device | str) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously; the CPU needs nothing)."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
