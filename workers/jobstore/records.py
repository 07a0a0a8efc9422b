"""Job records as plain data in and out of Redis hashes, and the arguments of the transition
script (shared by the sync and the async store)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from optim_core.numerics.finite import finite_or_none
from workers.jobstore.keys import (
    DEFAULT_TENANT,
    INT_FIELDS,
    JSON_FIELDS,
    REQUIRED_FIELDS,
    JobKeys,
    now_iso,
)
from workers.names import TERMINAL_STATUSES

log = logging.getLogger("workers.jobstore")


def encode_fields(values: Mapping[str, Any]) -> list[str]:
    """Flatten a mapping into HSET arguments; JSON-encode structured values, drop None."""
    out: list[str] = []
    for key, value in values.items():
        if value is None:
            continue
        if key in JSON_FIELDS or isinstance(value, (dict, list)):
            text = json.dumps(value, separators=(",", ":"), allow_nan=False)
        elif isinstance(value, bool):
            text = "1" if value else "0"
        else:
            text = str(value)
        out += [key, text]
    return out


def decode_record(raw: Mapping[str, str]) -> dict[str, Any] | None:
    """The record as plain data, or None when ``raw`` is not a whole job record (missing, or a
    hash without its required fields): callers answer 404 rather than fail on it. A field that
    does not decode is dropped (and logged) instead of failing the whole record."""
    if not raw or any(not raw.get(k) for k in REQUIRED_FIELDS):
        if raw:
            log.warning("ignoring a partial job record", extra={"fields": sorted(raw)[:20]})
        return None
    rec: dict[str, Any] = dict(raw)
    for key in (*JSON_FIELDS, *INT_FIELDS):
        if key not in rec:
            continue
        try:
            rec[key] = json.loads(rec[key]) if key in JSON_FIELDS else int(rec[key])
        except ValueError:
            log.warning("dropping an undecodable job field",
                        extra={"job_id": rec.get("id"), "field": key})
            del rec[key]
    rec["cancel_requested"] = rec.get("cancel_requested") == "1"
    return rec


def progress_doc(event: Any) -> dict[str, Any]:
    """A ProgressEvent (pydantic model, dataclass or mapping) as plain JSON-safe data."""
    if hasattr(event, "model_dump"):
        data = event.model_dump()
    elif isinstance(event, Mapping):
        data = dict(event)
    else:
        data = {k: getattr(event, k, None) for k in ("step", "total", "lr", "loss")}
    doc = {"step": int(data.get("step") or 0), "total": int(data.get("total") or 0),
           "lr": finite_or_none(data.get("lr")), "loss": finite_or_none(data.get("loss"))}
    # Where a trials job is (ProgressEvent.phase / candidate / candidate_lr / seed); absent on
    # events that do not say.
    for key in ("phase", "candidate"):
        if data.get(key) is not None:
            doc[key] = str(data[key])
    if data.get("candidate_lr") is not None:
        doc["candidate_lr"] = finite_or_none(data["candidate_lr"])
    if data.get("seed") is not None:
        doc["seed"] = int(data["seed"])
    return doc


def status_csv(statuses: Sequence[str]) -> str:
    return ",".join(statuses)


def as_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def record_tenant(value: Any) -> str:
    """The tenant a record names (records written without one belong to the default)."""
    return as_text(value) if value else DEFAULT_TENANT


def state_keys(keys: JobKeys, job_id: str, tenant: str) -> list[str]:
    """The first five KEYS of every script that changes a job's state (see ``scripts``)."""
    return [keys.job(job_id), *keys.tenant(tenant).counters, keys.events(job_id)]


def transition_args(keys: JobKeys, owner: tuple[str, str], job_id: str, to: str,
                     allowed_from: Sequence[str], fields: Mapping[str, Any] | None,
                     result_ttl_s: int, generation: int | None = None
                     ) -> tuple[list[str], list[Any]]:
    """``owner``: (claim key or '', tenant) as read from the record."""
    claim_key, tenant = owner
    terminal = to in TERMINAL_STATUSES
    release = to in ("failed", "cancelled")
    extra = dict(fields or {})
    if terminal:
        extra.setdefault("finished_at", now_iso())
    args: list[Any] = [status_csv(allowed_from), to, now_iso(),
                       result_ttl_s if terminal else 0, "1" if release else "0",
                       result_ttl_s if to == "succeeded" else 0, job_id,
                       "" if generation is None else generation, *encode_fields(extra)]
    k = [*state_keys(keys, job_id, tenant), claim_key or keys.no_claim(job_id)]
    return k, args


def call_transition(script: Any, keys: JobKeys, owner: tuple[str, str], job_id: str, to: str,
                     allowed_from: Sequence[str], fields: Mapping[str, Any] | None,
                     result_ttl_s: int, generation: int | None = None) -> tuple[str, str]:
    k, args = transition_args(keys, owner, job_id, to, allowed_from, fields, result_ttl_s,
                               generation)
    outcome, prev = script(keys=k, args=args)
    return as_text(outcome), as_text(prev)


def decode_payloads(values: Sequence[Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for v in values:
        if v:
            try:
                out.append(json.loads(v))
            except ValueError:
                continue
    return out
