"""What plug-ins this worker has installed (entry-point names; read without importing torch or
the plug-ins themselves). Published in the worker's heartbeat, so that the API refuses at
submission a job that names a model or data set no live worker has."""

from __future__ import annotations

from importlib.metadata import entry_points

# The entry-point groups of optim_core.training.registry (tests/core/test_registry.py pins them).
MODEL_GROUP = "optim_core.models"
DATASET_GROUP = "optim_core.datasets"


def installed_plugins() -> dict[str, list[str]]:
    return {"models": sorted({ep.name for ep in entry_points(group=MODEL_GROUP)}),
            "datasets": sorted({ep.name for ep in entry_points(group=DATASET_GROUP)})}
