"""The exception tree of optim_core. Every error names the bad value and what was allowed.

    OptimCoreError
    ├── SpecError (also ValueError)         a spec or setting is invalid
    │   ├── UnknownComponentError            a registered model/data/optimizer name is unknown
    │   └── ResourceLimitError               a spec exceeds configured limits (params, steps, memory)
    ├── TrainingError                        training could not proceed (e.g. all losses non-finite)
    └── Cancelled                            a cooperative cancel was observed between steps
"""

from __future__ import annotations

from typing import Any


class OptimCoreError(Exception):
    """Base class for every error raised by optim_core."""


class SpecError(OptimCoreError, ValueError):
    """An invalid spec or setting. ``field`` is a dotted path, ``allowed`` a human-readable range."""

    def __init__(self, message: str, *, field: str | None = None, value: Any = None,
                 allowed: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.value = value
        self.allowed = allowed


class UnknownComponentError(SpecError):
    """A name that no registry (built-in or plugged in through entry points) knows."""


class ResourceLimitError(SpecError):
    """A spec that would exceed a configured limit (parameters, steps, batch size, memory)."""


class TrainingError(OptimCoreError):
    """Training could not proceed: e.g. the loss was non-finite from the very first step."""


class Cancelled(OptimCoreError):
    """Raised between steps when the caller's ``should_stop`` callback returned True."""
