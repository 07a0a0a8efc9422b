"""The worker process's settings, read once from the environment (prefix ``OPTIM_``).

A module of its own so that the signal handlers (``workers.lifecycle``) and the task bodies
(``workers.tasks``) read the same instance without importing the Celery app that loads them.
"""

from __future__ import annotations

from workers.settings import WorkerSettings

settings = WorkerSettings()
