"""Helpers shared by the job service's tests and benchmark: an isolated Redis namespace, a real
Celery worker subprocess, specs of tiny jobs, and polling with a deadline."""

from __future__ import annotations

import contextlib
import math
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import redis

from workers.jobstore import JobKeys, live_worker_payloads

ROOT = pathlib.Path(__file__).resolve().parents[1]
JOBS_TEST_REDIS_URL = os.environ.get("OPTIM_JOBS_TEST_REDIS_URL", "redis://127.0.0.1:6379/12")

T = TypeVar("T")


def wait_until(check: Callable[[], T | None], timeout: float, interval: float = 0.05,
               what: str = "condition") -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class Namespace:
    """A per-session slice of Redis: its own DB and key prefixes, shared via OPTIM_* env."""

    redis_url: str
    uid: str
    broker_url: str | None = None  # None: the broker is the Redis at redis_url

    @property
    def broker_prefix(self) -> str:
        return f"t{self.uid}:"

    @property
    def jobs_prefix(self) -> str:
        return f"t{self.uid}:optim:"

    def env(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("OPTIM_")}
        env.update({
            "OPTIM_REDIS_URL": self.redis_url,
            "OPTIM_BROKER_KEY_PREFIX": self.broker_prefix,
            "OPTIM_JOBS_KEY_PREFIX": self.jobs_prefix,
            "OPTIM_JOB_MAX_DELIVERIES": "2",
            "OPTIM_JOB_SOFT_TIME_LIMIT_S": "120",
            "OPTIM_JOB_HARD_TIME_LIMIT_S": "150",
            "OPTIM_JOB_CANCEL_POLL_S": "0.2",
            "OPTIM_WORKER_HEARTBEAT_TTL_S": "6",
            "OPTIM_WORKER_SOFT_SHUTDOWN_TIMEOUT_S": "3",
            "OPTIM_LOG_FORMAT": "json",
            "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
            "OMP_NUM_THREADS": "1",
        })
        if self.broker_url:
            env["OPTIM_BROKER_URL"] = self.broker_url
        env.update(extra)
        return env

    def settings_kwargs(self) -> dict[str, Any]:
        return {"redis_url": self.redis_url, "broker_url": self.broker_url,
                "broker_key_prefix": self.broker_prefix,
                "jobs_key_prefix": self.jobs_prefix, "worker_heartbeat_ttl_s": 6,
                "job_soft_time_limit_s": 120, "job_hard_time_limit_s": 150}

    def cleanup(self) -> None:
        client = redis.Redis.from_url(self.redis_url)
        # advice:v1:* are advice-cache entries the integration tests make (a cache: safe to drop)
        for pattern in (f"{self.broker_prefix}*", f"_kombu.binding.*{self.uid}*", "advice:v1:*"):
            keys = list(client.scan_iter(match=pattern, count=500))
            for i in range(0, len(keys), 500):
                client.unlink(*keys[i:i + 500])
        client.close()


def new_namespace() -> Namespace:
    return Namespace(JOBS_TEST_REDIS_URL, uuid.uuid4().hex[:10])


class WorkerProcess:
    """One real ``celery worker`` (prefork) subprocess against real Redis."""

    def __init__(self, ns: Namespace, *, concurrency: int = 2, queues: str = "cpu",
                 log_path: pathlib.Path | None = None, env: dict[str, str] | None = None,
                 name: str = "it") -> None:
        self.ns = ns
        # ``name`` tells apart several workers of one namespace (hostname and log file).
        self.hostname = f"{name}-{ns.uid}@{socket.gethostname()}"
        self.log_path = log_path or ROOT / ".run" / f"worker-{name}-{ns.uid}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "celery", "-A", "workers.celery_app", "worker",
               "-P", "prefork", "-c", str(concurrency), "-Q", queues, "-n", self.hostname,
               "--loglevel", "INFO", "--without-gossip", "--without-mingle"]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 (closed in stop())
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=ns.env(**(env or {})), stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 90) -> None:
        """Until this process (its boot id, not just its hostname) beats; sets ``self.boot``."""
        client = redis.Redis.from_url(self.ns.redis_url, decode_responses=True)
        keys = JobKeys(self.ns.jobs_prefix)

        def ready() -> str | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited ({self.proc.returncode}): {self.tail()}")
            for beat in live_worker_payloads(client, keys, 3600):
                if beat.get("hostname") == self.hostname and beat.get("pid") == self.proc.pid:
                    return str(beat["boot"])
            return None

        try:
            self.boot = wait_until(ready, timeout, 0.2, "the worker's heartbeat")
        finally:
            client.close()

    def tail(self, n: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def stop(self, timeout: float = 30) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()
        return self.proc.returncode


def tiny_range_test(seed: int = 0, *, num_steps: int = 80, **config: Any) -> dict[str, Any]:
    """A range test that takes well under a second of CPU."""
    return {
        "experiment": {
            "data": {"kind": "classification", "n_samples": 512, "n_features": 8,
                     "n_classes": 3, "seed": 0},
            "model": {"kind": "mlp", "hidden": [32]},
            "batch_size": 32, "seed": seed,
        },
        "config": {"num_steps": num_steps, "start_lr": 1e-5, "end_lr": 10.0, "check_every": 5,
                   **config},
        "device": "cpu",
    }


def long_range_test(seed: int = 0) -> dict[str, Any]:
    """A range test that runs for several seconds (no divergence stop): to cancel or kill."""
    return {
        "experiment": {
            "data": {"kind": "classification", "n_samples": 4096, "n_features": 64,
                     "n_classes": 4, "seed": 0},
            "model": {"kind": "mlp", "hidden": [256, 256]},
            "batch_size": 256, "seed": seed,
        },
        "config": {"num_steps": 5000, "start_lr": 1e-6, "end_lr": 1e-3, "check_every": 5,
                   "stop_on_divergence": False, "val_every": 1000},
        "device": "cpu",
    }


def tiny_trials(seed: int = 0) -> dict[str, Any]:
    return {
        "experiment": {
            "data": {"kind": "classification", "n_samples": 512, "n_features": 8,
                     "n_classes": 3, "seed": 0},
            "model": {"kind": "mlp", "hidden": [16]},
            "batch_size": 32, "seed": seed,
        },
        "config": {"steps": 40, "eval_every": 10, "center_lr": 0.01, "val_batches": 2,
                   "default_optimizers": ["adamw"], "lr_factors": [0.3, 1.0, 3.0]},
        "device": "cpu",
    }


def refined_lrs(lrs: list[float], best: float) -> list[float]:
    """What ``refine`` should add beside ``best``: the geometric means with its neighbours among
    ``lrs`` (written out here, not read from optim_core, so a test checks the rule)."""
    grid = sorted(set(lrs))
    at = grid.index(best)
    return [math.sqrt(best * grid[j]) for j in (at - 1, at + 1) if 0 <= j < len(grid)]


class PrivateRedis:
    """A redis-server with the broker's settings (AOF, noeviction) in a temporary directory."""

    def __init__(self, data_dir: pathlib.Path) -> None:
        self.port = free_port()
        self.data_dir = data_dir
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--bind", "127.0.0.1", "--port", str(self.port),
             "--dir", str(self.data_dir), "--appendonly", "yes", "--save", "",
             "--maxmemory-policy", "noeviction"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url, socket_timeout=1)
        wait_until(lambda: _pings(client), 20, 0.05, "the private redis-server to answer")
        client.close()

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        # SHUTDOWN flushes the AOF; queued messages and job records survive. The server closes
        # the connection as it exits, hence the suppressed ConnectionError.
        with contextlib.suppress(redis.ConnectionError):
            redis.Redis.from_url(self.url, socket_timeout=2).shutdown()
        self.proc.wait(20)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def rabbitmq_server() -> str | None:
    """The rabbitmq-server start script itself (not Debian's wrapper, which would switch to
    the rabbitmq user and could not write our temporary directory), or None."""
    for path in ("/usr/lib/rabbitmq/bin/rabbitmq-server", shutil.which("rabbitmq-server")):
        if path and os.access(path, os.X_OK):
            return path
    return None


class PrivateRabbitMQ:
    """A RabbitMQ node of our own: its own node name, ports and data directory, so that tests
    can restart it and never collide with the machine's RabbitMQ or a parallel run. Stop and
    start keep its data (durable quorum queues and their messages survive)."""

    def __init__(self, data_dir: pathlib.Path, consumer_timeout_ms: int = 3_900_000) -> None:
        self.port, self.dist_port = free_port(), free_port()
        self.node = f"optim{uuid.uuid4().hex[:8]}@localhost"
        self.dir = data_dir
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}//"
        self.proc: subprocess.Popen[bytes] | None = None
        self.dir.mkdir(parents=True, exist_ok=True)
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            # Above the job hard time limit: RabbitMQ must not take a long job's delivery back.
            f"consumer_timeout = {consumer_timeout_ms}\n"
            "disk_free_limit.absolute = 1MB\n")  # a full shared disk must not block publishers
        (self.dir / "enabled_plugins").write_text("[].\n")
        (self.dir / "rabbitmq-env.conf").write_text("")

    def _env(self) -> dict[str, str]:
        d = str(self.dir)
        return {**os.environ, "HOME": d, "RABBITMQ_NODENAME": self.node,
                "RABBITMQ_NODE_PORT": str(self.port), "RABBITMQ_DIST_PORT": str(self.dist_port),
                "RABBITMQ_MNESIA_BASE": f"{d}/mnesia", "RABBITMQ_LOG_BASE": f"{d}/log",
                "RABBITMQ_CONFIG_FILE": f"{d}/rabbitmq", "RABBITMQ_CONF_ENV_FILE":
                f"{d}/rabbitmq-env.conf", "RABBITMQ_ENABLED_PLUGINS_FILE": f"{d}/enabled_plugins",
                "RABBITMQ_PID_FILE": f"{d}/rabbitmq.pid", "ERL_EPMD_ADDRESS": "127.0.0.1"}

    def start(self, timeout: float = 90) -> None:
        server = rabbitmq_server()
        if server is None:
            raise AssertionError("rabbitmq-server is not installed (scripts/test installs it)")
        log = open(self.dir / "server.log", "ab")  # noqa: SIM115 (the child keeps it open)
        self.proc = subprocess.Popen([server], env=self._env(), stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

        def accepting() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError("rabbitmq-server exited: " + (
                    self.dir / "server.log").read_text(errors="replace")[-3000:])
            try:
                import kombu

                with kombu.Connection(self.url, connect_timeout=1) as conn:
                    conn.connect()
                return True
            except Exception:
                return False

        wait_until(accepting, timeout, 0.3, "the private RabbitMQ to accept AMQP connections")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)  # a clean stop: queues and messages are kept
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


def start_api(ns: Namespace, log: pathlib.Path, **env: str) -> tuple[subprocess.Popen[bytes], str]:
    """A real uvicorn (with the production read deadline) serving the app for ``ns`` on a free
    loopback port; returns the process and its base URL."""
    import httpx

    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "app.main:app", "--host", "127.0.0.1", "--port",
             str(port), "--http", "app.server:GuardedHttp", "--no-access-log"], cwd=ROOT,
            env=ns.env(OPTIM_LOG_LEVEL="WARNING", **env), stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"the API exited: {log.read_text(errors='replace')[-2000:]}")
        try:
            return httpx.get(base + "/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_until(up, 60, 0.2, "the API to answer")
    return proc, base
