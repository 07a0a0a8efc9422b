"""The app served by a real uvicorn on a free loopback port, in a thread (for clients that speak
HTTP over a socket: generated clients, schemathesis)."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator

import httpx
import uvicorn

from app.core.config import Settings
from app.main import create_app
from tests.jobs_support import free_port


@contextlib.contextmanager
def live_server(settings: Settings) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the live server did not start")
        time.sleep(0.05)
    try:
        assert httpx.get(base + "/healthz", timeout=5).status_code == 200
        yield base
    finally:
        server.should_exit = True
        thread.join(15)
