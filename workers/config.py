"""The Celery configuration, built from settings (no torch, no signal handlers).

Both sides build their Celery app from here: the worker's (``workers.celery_app``, with the task
bodies and the lifecycle signals) and the API's *producer* app, which publishes by task name
(:mod:`workers.names`) and never imports the task bodies or the worker's signal handlers.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Queue

from workers import names
from workers.settings import WorkerSettings

# kombu's Redis transport keeps one list per priority step; 0 is served first. The API's
# priority (0..9, higher first) is mapped to ``9 - priority``. RabbitMQ serves the higher number
# first, so it gets the API's priority as is.
PRIORITY_STEPS: list[int] = list(range(10))
DEFAULT_PRIORITY = 5
# Where kombu's Redis transport keeps them, under the broker's global_keyprefix: one list per
# step (``queue``, ``queue\x06\x163``, …) and, for messages delivered and not yet acknowledged,
# the ``unacked`` hash (kombu.transport.redis.Channel.unacked_key).
KOMBU_PRIORITY_SEP = "\x06\x16"
KOMBU_UNACKED = "unacked"


def queue_keys(broker_prefix: str, queue: str) -> list[str]:
    """The Redis lists kombu keeps for one queue: one per priority step."""
    return [broker_prefix + queue + (f"{KOMBU_PRIORITY_SEP}{p}" if p else "")
            for p in PRIORITY_STEPS]


def broker_priority(s: WorkerSettings, priority: int | None) -> int:
    """The message priority for the API's ``priority`` (0..9, higher first) on this broker."""
    if priority is None:
        return DEFAULT_PRIORITY
    return priority if s.broker_is_amqp else 9 - priority


def _queues(s: WorkerSettings) -> list[Queue]:
    if not s.broker_is_amqp:
        return [Queue(names.CPU_QUEUE), Queue(names.GPU_QUEUE)]
    # Quorum queues: replicated, durable, and an unacked message goes back the moment its
    # consumer's connection dies. (RabbitMQ 4 quorum queues honour priorities in two levels,
    # above 4 first; they refuse x-max-priority, so none is declared.)
    return [Queue(n, queue_arguments={"x-queue-type": "quorum"}, durable=True)
            for n in (names.CPU_QUEUE, names.GPU_QUEUE)]


def _broker_options(s: WorkerSettings) -> dict[str, Any]:
    if s.broker_is_amqp:
        # Publisher confirms: a publish returns once RabbitMQ has the message.
        return {"confirm_publish": True}
    return {
        # Longer than the hard time limit, or a long job is redelivered while it still runs.
        "visibility_timeout": s.visibility_timeout_s,
        "global_keyprefix": s.broker_key_prefix,
        "socket_timeout": s.redis_socket_timeout_s,
        "socket_connect_timeout": s.redis_socket_timeout_s,
        "socket_keepalive": True,
        "retry_on_timeout": True,
        "health_check_interval": 10,  # a connection dropped by a restarted Redis is replaced
        "priority_steps": PRIORITY_STEPS,
    }


def celery_config(s: WorkerSettings) -> dict[str, Any]:
    """The Celery settings, each one there for a reason (see docs in the module and report)."""
    return {
        "broker_url": s.effective_broker_url,
        "result_backend": s.redis_url,
        "broker_transport_options": _broker_options(s),
        "result_backend_transport_options": {
            "visibility_timeout": s.visibility_timeout_s,
            "global_keyprefix": s.broker_key_prefix,
        },
        "redis_socket_timeout": s.redis_socket_timeout_s,
        "redis_socket_connect_timeout": s.redis_socket_timeout_s,
        # Plain JSON only: requests are dicts, never pickled objects.
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        # Our own job record in Redis is the source of truth; Celery's results are not read.
        "task_ignore_result": True,
        # Ack after the job ends; a job whose worker dies goes back to the queue.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        # A pool child reports "up" only after its warm-up (workers.lifecycle: torch import and a
        # tiny CPU job, a few seconds on a busy machine); Celery's default of 4 s would kill it.
        "worker_proc_alive_timeout": 120.0,
        "task_soft_time_limit": s.job_soft_time_limit_s,
        "task_time_limit": s.job_hard_time_limit_s,
        "task_queues": _queues(s),
        "task_default_queue": names.CPU_QUEUE,
        "task_create_missing_queues": False,
        "task_default_priority": DEFAULT_PRIORITY,
        "task_queue_max_priority": None if s.broker_is_amqp else 9,
        "broker_heartbeat": 30 if s.broker_is_amqp else None,
        # Only applies to a *cold* shutdown (a second signal): running jobs get this long to
        # reach a step check. A warm shutdown (SIGTERM) does not wait on running jobs: the
        # worker sets its draining flag (workers.lifecycle) and they hand themselves back to
        # the queue at their next cancel poll (workers.tasks._hand_back).
        "worker_soft_shutdown_timeout": s.worker_soft_shutdown_timeout_s,
        "worker_enable_soft_shutdown_on_idle": True,
        # False: True cancels every running job on a broker blip of a second, and with the Redis
        # transport the cancelled job's message then waits for the visibility timeout (over an
        # hour) before anyone runs it again. Keeping the job running is safe: its child writes
        # the job record over its own connection (retrying), and if the message is redelivered
        # anyway, begin() skips a job that already ended and counts the delivery otherwise.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "broker_connection_retry_on_startup": True,
        "worker_hijack_root_logger": False,
        "worker_redirect_stdouts": False,
        # Publishing gives up quickly: the API answers 503 instead of hanging.
        "task_publish_retry": True,
        "task_publish_retry_policy": {"max_retries": 2, "interval_start": 0.0,
                                      "interval_step": 0.2, "interval_max": 0.5},
        "broker_connection_timeout": s.redis_socket_timeout_s,
        "worker_send_task_events": False,
        "enable_utc": True,
    }


def create_celery(s: WorkerSettings, *, include_tasks: bool = False) -> Celery:
    """A configured Celery app. ``include_tasks`` makes a worker import :mod:`workers.tasks`
    (whose bodies import torch lazily, inside the task)."""
    app = Celery("optim_advisor", include=["workers.tasks"] if include_tasks else [])
    app.conf.update(celery_config(s))
    return app
