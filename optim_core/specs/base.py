"""The base of every declaration: unknown fields are refused (a misspelt setting must not be
silently ignored) and instances are frozen (so they hash into cache and de-duplication keys)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
