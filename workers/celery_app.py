"""The worker's Celery app: ``celery -A workers.celery_app worker``.

Built from :mod:`workers.config` with the worker's settings (:mod:`workers.runtime`); importing
it registers the task bodies (lazily, by name) and the worker's signal handlers. The API never
imports this module: it builds a producer app from :mod:`workers.config` instead.
"""

from __future__ import annotations

from workers import (
    lifecycle,  # signal handlers (heartbeat, JSON logs, GPU memory) register on import
)
from workers.config import create_celery
from workers.runtime import settings

app = create_celery(settings, include_tasks=True)
celery_app = app

__all__ = ["app", "celery_app", "lifecycle", "settings"]
