"""Canonical JSON and content hashes: one request, one key, whatever the field order.

Used for the advice cache and for job de-duplication. The hash covers the request with its defaults
filled in (pydantic's ``model_dump(mode="json")``) plus the versions that change the answer.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no insignificant whitespace; pydantic models are dumped first."""
    if isinstance(obj, BaseModel):
        obj = obj.model_dump(mode="json")
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      allow_nan=False)


def content_hash(obj: Any, *, versions: Mapping[str, str] | None = None) -> str:
    """SHA-256 (hex) of ``obj`` in canonical form together with ``versions``."""
    payload = {"body": json.loads(canonical_json(obj)), "versions": dict(versions or {})}
    return hashlib.sha256(canonical_json(payload).encode("utf-8")).hexdigest()
