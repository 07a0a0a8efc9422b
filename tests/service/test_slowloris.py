"""A client that sends its request a byte at a time is cut off after the read deadline
(app.server.GuardedHttp), while ordinary requests and keep-alive connections are served."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx

from tests.jobs_support import ROOT, free_port, wait_until


def _closed(sock: socket.socket) -> bool:
    try:
        sock.send(b"X")
        return sock.recv(1024) == b""
    except OSError:
        return True


def test_slow_requests_are_closed_after_the_read_deadline() -> None:
    port = free_port()
    env = {**os.environ, "OPTIM_HTTP_READ_TIMEOUT_S": "1.5", "OPTIM_LOG_LEVEL": "WARNING"}
    proc = subprocess.Popen([sys.executable, "-m", "uvicorn", "app.main:app", "--host",
                             "127.0.0.1", "--port", str(port), "--http", "app.server:GuardedHttp",
                             "--no-access-log"], cwd=ROOT, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: _answers(base), 60, 0.2, "the API")
        slow = []
        for _ in range(20):
            s = socket.create_connection(("127.0.0.1", port))
            s.settimeout(1)
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finishes its headers
            slow.append(s)
        t0 = time.monotonic()
        with httpx.Client(base_url=base) as c:  # one keep-alive connection, several requests
            for _ in range(3):
                assert c.get("/healthz").status_code == 200
                time.sleep(0.6)  # together longer than the deadline: each request gets its own
        time.sleep(max(0.0, 2.5 - (time.monotonic() - t0)))
        assert all(_closed(s) for s in slow)
        for s in slow:
            s.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)


def _answers(base: str) -> bool:
    try:
        return httpx.get(base + "/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
