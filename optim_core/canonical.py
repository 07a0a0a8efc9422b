"""Canonical JSON and content hashes: one request, one key, whatever the field order.

Used for the advice cache and for job de-duplication. The hash covers the request with its defaults
filled in (pydantic's ``model_dump(mode="json")``) plus the versions that change the answer.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel


def _finite_only(obj: Any) -> Any:
    """``obj`` with each non-finite float replaced by a tagged object (``{"$float": "nan"}``):
    JSON has no NaN, and a value the validators let through must not make a hash fail. The tag
    cannot clash with real data (its key is not a valid field or option name)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return {"$float": repr(obj)}
    if isinstance(obj, Mapping):
        return {k: _finite_only(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_only(v) for v in obj]
    return obj


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no insignificant whitespace; pydantic models are dumped first.
    Never fails on a non-finite float (see :func:`_finite_only`)."""
    if isinstance(obj, BaseModel):
        obj = obj.model_dump(mode="json")
    try:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                          allow_nan=False)
    except ValueError:  # a NaN or an inf somewhere: the rare path walks the whole object
        return json.dumps(_finite_only(obj), sort_keys=True, separators=(",", ":"),
                          ensure_ascii=False, allow_nan=False)


def content_hash(obj: Any, *, versions: Mapping[str, str] | None = None) -> str:
    """SHA-256 (hex) of ``obj`` in canonical form together with ``versions``."""
    payload = {"body": json.loads(canonical_json(obj)), "versions": dict(versions or {})}
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()
