"""The benchmark's app: the product app plus a trivial endpoint (never part of the product)."""

from __future__ import annotations

import os

from app.core.config import Settings
from app.main import create_app

_url = os.environ.get("BENCH_REDIS", "redis://127.0.0.1:6379/13")
app = create_app(Settings(redis_url=_url, cache_redis_url=_url))


@app.post("/bench/trivial")
async def trivial(body: dict) -> dict:
    return {"ok": True}
