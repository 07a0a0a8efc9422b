"""Worker lifecycle hooks: JSON logging, a heartbeat for /readyz, a warm drain on shutdown, no
CUDA in the parent.

The heartbeat is a thread started in ``worker_ready`` (the worker's main process) that refreshes
``{jobs_key_prefix}worker:{boot}`` (payload, with a TTL) and the boot id's score in the
``{jobs_key_prefix}workers`` zset; the API reads live workers from the zset (no SCAN). The boot
id is new at each start of the main process (``worker_init``): liveness belongs to one
incarnation, never to a hostname that a restarted worker reuses.

Warm drain: Celery's warm shutdown (SIGTERM) waits for running jobs indefinitely and nothing asks
them to stop, so an orchestrator's SIGKILL would leave them ``running`` with an unacked message
for the whole visibility timeout. On ``worker_shutting_down`` (main process) this module sets
``{jobs_key_prefix}worker:{hostname}:draining``; each running job's CancelPoller (pool child)
sees it at its next poll, the job goes back to ``queued`` and its message back to the queue, and
the worker exits within about one poll interval plus one training step.

Warm-up: each pool child, once forked, imports torch and runs a tiny CPU job
(:func:`optim_core.training.experiment.warm_up`) before it takes work, so that no job's soft time limit can
land inside a first import and leave the child with half-initialised modules. Only the children
import torch; the parent never does, so CUDA is never initialised before a fork.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from typing import Any

import redis
from celery.signals import (
    setup_logging,
    worker_init,
    worker_process_init,
    worker_ready,
    worker_shutdown,
    worker_shutting_down,
)

from workers import logs
from workers.names import BOOT_ENV

log = logging.getLogger("workers.lifecycle")

_stop = threading.Event()
_thread: threading.Thread | None = None


@setup_logging.connect
def _setup_logging(loglevel: Any = None, **_: Any) -> None:
    logs.configure(loglevel or "INFO")


def torch_threads(explicit: int | None, concurrency: int, cores: int) -> int:
    """Intra-op threads per pool child: ``explicit``, else ``cores // concurrency`` (at least 1).
    Each child otherwise starts torch's default of one thread per core, and ``concurrency``
    children oversubscribe the cores (20 jobs on 2 children × 2 threads took 5× as long)."""
    return explicit if explicit else max(1, cores // max(1, concurrency))


def _cores() -> int:
    """Cores this process may use: its CPU affinity (taskset, cpusets), capped by a cgroup v2
    CPU quota (``docker run --cpus``, a compose ``cpus:`` limit), which affinity does not show."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]  # noqa: SIM115
        if quota != "max":
            cores = min(cores, max(1, int(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return cores


@worker_init.connect
def _new_boot_id(**_: Any) -> None:
    """A fresh id per start of the worker's main process (its incarnation), inherited by the
    pool children: liveness is this id's heartbeat, not the hostname's — a worker SIGKILLed and
    restarted under the same name (compose's ``worker-cpu@%h``) must not vouch for the jobs its
    predecessor was running."""
    os.environ[BOOT_ENV] = uuid.uuid4().hex


@worker_init.connect
def _size_child_threads(sender: Any = None, **_: Any) -> None:
    """Main process, before the pool forks: the children inherit OMP_NUM_THREADS (read when
    torch is imported, in the child) and set torch's thread count from it at warm-up. An
    OMP_NUM_THREADS set by the operator wins unless OPTIM_WORKER_TORCH_THREADS is set."""
    from workers.runtime import settings

    if settings.worker_torch_threads is None and os.environ.get("OMP_NUM_THREADS"):
        return
    concurrency = int(getattr(sender, "concurrency", 0) or 1)
    n = torch_threads(settings.worker_torch_threads, concurrency, _cores())
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(n)
    log.info("torch threads per pool child", extra={"threads": n, "concurrency": concurrency})


@worker_process_init.connect
def _warm_up_child(**_: Any) -> None:
    """Pool child, after the fork and before its first job (see the module docstring)."""
    try:
        import torch  # pool children only

        threads = os.environ.get("OMP_NUM_THREADS")
        if threads and threads.isdigit() and int(threads) > 0:
            torch.set_num_threads(int(threads))
        from optim_core.training.experiment import warm_up

        warm_up()
    except Exception:  # a child that cannot warm up still runs jobs, as it would have cold
        log.exception("pool child warm-up failed")


def _client(timeout_s: float) -> redis.Redis:
    from workers.jobstore.clients import sync_client
    from workers.runtime import settings

    return sync_client(settings.redis_url, timeout_s=timeout_s)


def _heartbeat_loop(client: redis.Redis, boot: str, payload: dict[str, Any],
                    ttl: int) -> None:
    from workers.jobstore import JobKeys, write_heartbeat
    from workers.runtime import settings

    keys = JobKeys(settings.jobs_key_prefix)
    interval = max(1.0, ttl / 3)
    while not _stop.is_set():
        try:
            write_heartbeat(client, keys, boot, payload, ttl)
        except redis.RedisError as exc:  # keep beating; /readyz reports the gap
            log.warning("heartbeat failed: %s", exc)
        _stop.wait(interval)


@worker_ready.connect
def _start_heartbeat(sender: Any = None, **_: Any) -> None:
    global _thread
    from workers.jobstore import JobKeys
    from workers.runtime import settings

    hostname = getattr(sender, "hostname", None) or f"worker@{os.getpid()}"
    boot = os.environ.setdefault(BOOT_ENV, uuid.uuid4().hex)
    queues = sorted(sender.app.amqp.queues.consume_from) if sender is not None else []
    client = _client(settings.redis_socket_timeout_s)
    # A worker restarted under the same name must not inherit its predecessor's drain.
    try:
        client.delete(JobKeys(settings.jobs_key_prefix).draining(hostname))
    except redis.RedisError as exc:
        log.warning("could not clear a stale draining flag: %s", exc)
    from workers.plugins import installed_plugins

    payload = {"hostname": hostname, "boot": boot, "queues": queues, "pid": os.getpid(),
               "plugins": installed_plugins()}
    _stop.clear()
    _thread = threading.Thread(target=_heartbeat_loop, name="optim-heartbeat", daemon=True,
                               args=(client, boot, payload, settings.worker_heartbeat_ttl_s))
    _thread.start()
    log.info("worker ready", extra={"hostname": hostname, "queues": queues})


@worker_shutting_down.connect
def _start_drain(sender: Any = None, how: str | None = None, **_: Any) -> None:
    """Main process, from the signal handler: ask this worker's running jobs to hand
    themselves back (see the module docstring). ``sender`` is the worker's hostname."""
    from workers.jobstore import JobKeys
    from workers.runtime import settings

    hostname = sender if isinstance(sender, str) else getattr(sender, "hostname", None)
    if not hostname:
        return
    try:
        client = _client(2.0)
        try:
            client.set(JobKeys(settings.jobs_key_prefix).draining(hostname), how or "Warm",
                       ex=settings.worker_drain_ttl_s)
        finally:
            client.close()
        log.info("draining: running jobs go back to the queue",
                 extra={"hostname": hostname, "how": how})
    except redis.RedisError as exc:  # then the shutdown waits for the jobs, as Celery would
        log.warning("could not set the draining flag: %s", exc)


@worker_shutdown.connect
def _stop_heartbeat(sender: Any = None, **_: Any) -> None:
    from workers.jobstore import JobKeys, forget_worker
    from workers.runtime import settings

    _stop.set()
    boot = os.environ.get(BOOT_ENV)
    if boot:
        try:
            client = _client(2.0)
            forget_worker(client, JobKeys(settings.jobs_key_prefix), boot)
            client.close()
        except redis.RedisError:
            pass
