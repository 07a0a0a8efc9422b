"""Open (no keys) only on loopback, judged by the address the server really binds: a real
uvicorn started on 0.0.0.0 without OPTIM_HOST refuses to start without keys, unless
OPTIM_AUTH=open says so on purpose; and a request that arrives on a non-loopback address needs a
key in ``auto`` mode whatever OPTIM_HOST says. (Loopback traffic only.)"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from types import SimpleNamespace

import httpx
import pytest
from starlette.requests import Request

from app.api.deps import get_caller
from app.core.config import Settings
from app.core.problems import ProblemError
from tests.jobs_support import ROOT, Namespace, free_port, new_namespace

pytestmark = pytest.mark.integration


@pytest.fixture()
def ns() -> Iterator[Namespace]:
    namespace = new_namespace()
    yield namespace
    namespace.cleanup()


def _uvicorn(ns: Namespace, port: int, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "0.0.0.0", "--port",
         str(port), "--http", "app.server:GuardedHttp"],
        cwd=ROOT, env=ns.env(**env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_uvicorn_on_all_interfaces_without_keys_refuses_to_start(ns: Namespace) -> None:
    env = ns.env()
    assert "OPTIM_HOST" not in env and "OPTIM_AUTH" not in env
    proc = _uvicorn(ns, free_port())
    try:
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0
    assert b"refusing to serve 0.0.0.0 without API keys" in out


def test_uvicorn_on_all_interfaces_runs_open_only_when_told_to(ns: Namespace) -> None:
    port = free_port()
    proc = _uvicorn(ns, port, OPTIM_AUTH="open")
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else b""
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/v1/jobs", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "uvicorn did not answer"
                time.sleep(0.2)
        assert r.status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert proc.stdout is not None
    assert b"auth: OPEN on 0.0.0.0" in proc.stdout.read()


def _request(local: tuple[str, int], settings: Settings) -> Request:
    app = SimpleNamespace(state=SimpleNamespace(settings=settings, limiter=None, api_keys=None))
    return Request({"type": "http", "method": "GET", "path": "/v1/jobs", "headers": [],
                    "query_string": b"", "server": local, "client": ("10.1.2.3", 5555),
                    "app": app})


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_request_on_a_non_loopback_address_needs_a_key_in_auto_mode(
        anyio_backend: str) -> None:
    settings = Settings(host="127.0.0.1")  # what OPTIM_HOST (wrongly) says
    assert settings.open_on("127.0.0.1") and settings.open_on("testserver")
    assert not settings.open_on("192.0.2.10")
    assert Settings(host="127.0.0.1", auth="open").open_on("192.0.2.10")
    with pytest.raises(ProblemError) as refused:
        await get_caller(_request(("192.0.2.10", 8000), settings))
    assert refused.value.status == 401
    caller = await get_caller(_request(("127.0.0.1", 8000), settings))
    assert caller.tenant == "local"
