"""Refuse at submission a job naming a plug-in (registered model or data set) that no live worker
has installed. Workers publish their entry-point names in their heartbeat
(:mod:`workers.plugins`). With no live worker, or only workers too old to say, nothing is
refused: the job waits for a worker as any other."""

from __future__ import annotations

from typing import Any

from optim_core.specs.experiment import ExperimentSpec, RegisteredDataSpec, RegisteredModelSpec
from workers import names
from workers.jobstore import AsyncJobStore, heartbeat_age_ok


def _queues(device: str) -> set[str]:
    return {"cpu": {names.CPU_QUEUE}, "cuda": {names.GPU_QUEUE}}.get(device, set(names.QUEUES))


async def plugin_errors(exp: ExperimentSpec, device: str, store: AsyncJobStore,
                        heartbeat_ttl_s: float) -> list[dict[str, Any]]:
    wanted = [(part, spec) for part, spec in (("models", exp.model), ("datasets", exp.data))
              if isinstance(spec, RegisteredModelSpec | RegisteredDataSpec)]
    if not wanted:
        return []
    queues = _queues(device)
    workers = [w for w in await store.live_workers(heartbeat_ttl_s)
               if heartbeat_age_ok(w, heartbeat_ttl_s) and queues & set(w.get("queues", []))]
    told = [w["plugins"] for w in workers if isinstance(w.get("plugins"), dict)]
    if not told:
        return []
    errors = []
    for part, spec in wanted:
        have = sorted({n for p in told for n in p.get(part, [])})
        if spec.name not in have:
            where = "model" if part == "models" else "data"
            errors.append({"field": f"body.experiment.{where}.name", "value": spec.name,
                           "allowed": f"one of: {', '.join(have) or '(none installed)'}",
                           "message": f"no live worker for device {device!r} has the "
                                      f"{where} plug-in {spec.name!r} installed"})
    return errors
