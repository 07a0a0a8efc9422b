"""`scripts/up` brings the service up with one command and Ctrl-C stops all of it."""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import subprocess
import time
import urllib.request

import pytest
import redis

from tests.jobs_support import ROOT, free_port, new_namespace, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _children(pid: int) -> set[int]:
    """All descendants of ``pid`` (from /proc), whatever process group they are in."""
    parents: dict[int, int] = {}
    for entry in pathlib.Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    out: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - out
        out |= frontier
    return out


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purpose
        return (pathlib.Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                != "Z")
    except OSError:
        return False


def _redis_answers(port: int) -> bool:
    try:
        return bool(redis.Redis(port=port, socket_timeout=1, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def _default_sigint() -> None:
    # As in a terminal, where Ctrl-C reaches the script: a test run started in the background
    # (`cmd &` without job control) inherits SIGINT ignored, and bash cannot trap a signal that
    # was ignored when it started, so the script would never see the Ctrl-C this test sends.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_up_starts_api_and_worker_and_ctrl_c_stops_everything(tmp_path: pathlib.Path) -> None:
    ns = new_namespace()
    port = free_port()
    # Nothing answers on this Redis port: up must start a Redis, and stop it again on Ctrl-C.
    redis_port = free_port()
    env = ns.env(OPTIM_PORT=str(port), OPTIM_WORKER_QUEUES="cpu", OPTIM_WORKER_CONCURRENCY="1",
                 OPTIM_STOP_TIMEOUT_S="30", OPTIM_REDIS_URL=f"redis://127.0.0.1:{redis_port}/0")
    log = open(tmp_path / "up.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([str(ROOT / "scripts" / "up")], cwd=ROOT, env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=_default_sigint)
    children: set[int] = set()
    try:
        wait_until(lambda: proc.poll() is None and _status(f"http://127.0.0.1:{port}/readyz")
                   == 200, 150, 0.5, "scripts/up to be ready")
        assert _status(f"http://127.0.0.1:{port}/docs") == 200
        assert _status(f"http://127.0.0.1:{port}/ui/") == 200
        assert _redis_answers(redis_port)
        children = _children(proc.pid)
        assert len(children) >= 3  # uvicorn, the worker's parent and its pool child
        text = (tmp_path / "up.log").read_text(errors="replace")
        assert f"http://127.0.0.1:{port}/docs" in text
        assert f"http://127.0.0.1:{port}/ui/" in text  # the dashboard's URL beside the docs'

        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends to the script
        rc = proc.wait(timeout=60)
        wait_until(lambda: not any(_alive(p) for p in children), 15, 0.2, "children to exit")
        assert time.monotonic() - t0 < 60
        assert rc in (0, 130), rc
        text = (tmp_path / "up.log").read_text(errors="replace")
        assert "stopped" in text
        wait_until(lambda: not _redis_answers(redis_port), 10, 0.2, "its Redis to stop")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        for p in children | _children(proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGKILL)
        log.close()
        ns.cleanup()


def test_up_exits_1_with_the_reason_when_the_api_never_answers(tmp_path: pathlib.Path) -> None:
    ns = new_namespace()
    env = ns.env(OPTIM_PORT=str(free_port()), OPTIM_WORKER_QUEUES="cpu",
                 OPTIM_WORKER_CONCURRENCY="1", OPTIM_UP_WAIT_S="0", OPTIM_STOP_TIMEOUT_S="20")
    proc = subprocess.run([str(ROOT / "scripts" / "up")], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, start_new_session=True)
    try:
        assert proc.returncode == 1, proc.stderr[-2000:]
        assert "did not answer" in proc.stderr and "is up" not in proc.stderr
        assert "stopped" in proc.stderr  # and it stopped what it had started
    finally:
        ns.cleanup()


def test_bootstrap_refuses_to_start_redis_for_a_remote_url() -> None:
    # 0.0.0.0 is not a loopback name, so bootstrap must treat it as another machine's address and
    # refuse to start a server for it; yet connecting to it stays on this machine (tests send no
    # traffic anywhere else), and nothing listens on the free port, so the ping fails at once.
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPTIM_")}
    env["REDIS_URL"] = f"redis://0.0.0.0:{free_port()}/0"
    proc = subprocess.run([str(ROOT / "scripts" / "bootstrap")], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "0.0.0.0" in proc.stderr and "none is started" in proc.stderr
