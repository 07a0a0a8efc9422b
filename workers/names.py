"""Task and queue names: the API publishes by name and never imports the task bodies."""

from __future__ import annotations

from typing import Final, Literal

RANGE_TEST_TASK: Final = "optim.jobs.range_test"
TRIALS_TASK: Final = "optim.jobs.trials"

# One name per job kind everywhere in JSON: records, ?kind=, result.kind, metrics labels.
JobKind = Literal["range_test", "trials"]
JOB_KINDS: Final = ("range_test", "trials")
TASK_BY_KIND: Final[dict[str, str]] = {"range_test": RANGE_TEST_TASK, "trials": TRIALS_TASK}

CPU_QUEUE: Final = "cpu"
GPU_QUEUE: Final = "gpu"
QUEUES: Final = (CPU_QUEUE, GPU_QUEUE)

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
TERMINAL_STATUSES: Final = frozenset({"succeeded", "failed", "cancelled"})
ACTIVE_STATUSES: Final = frozenset({"queued", "running"})
ALL_STATUSES: Final = ("queued", "running", "succeeded", "failed", "cancelled")

# Bump when the shape of a stored job result changes: it is part of every job's cache key.
RESULT_SCHEMA_VERSION: Final = "2"  # 2: typed, flat results (optim_core.specs.results)
# The environment variable carrying a worker incarnation's boot id from its main process (which
# sets it at start) to its pool children.
BOOT_ENV: Final = "OPTIM_WORKER_BOOT_ID"
