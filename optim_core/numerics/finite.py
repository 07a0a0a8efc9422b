"""The one finite-number check: what a non-finite loss or LR becomes in plain, JSON-safe data.

NaN and ±Inf are facts of training (a diverged run) but not JSON (``json.dumps(allow_nan=False)``
refuses them, and a JSON parser elsewhere may choke on them): every result, progress event and
job record turns them into None through this module.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

__all__ = ["finite_floats", "finite_or_none", "is_finite", "json_safe"]


def is_finite(x: Any) -> bool:
    """A real number that is neither NaN nor infinite (None and non-numbers are not)."""
    if x is None or isinstance(x, bool):
        return False
    try:
        return math.isfinite(float(x))
    except (TypeError, ValueError, OverflowError):
        return False


def finite_or_none(x: Any) -> float | None:
    """``float(x)`` when finite, else None."""
    return float(x) if is_finite(x) else None


def finite_floats(xs: Iterable[Any]) -> list[float | None]:
    return [finite_or_none(x) for x in xs]


def json_safe(obj: Any) -> Any:
    """``obj`` with every float inside (dicts, lists, tuples) made finite or None."""
    if isinstance(obj, float):
        return finite_or_none(obj)
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [json_safe(v) for v in obj]
    return obj
