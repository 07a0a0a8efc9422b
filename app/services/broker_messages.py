"""Which jobs the Redis broker holds a message for.

kombu's Redis transport keeps a queue as one list per priority step and every message delivered
but not yet acknowledged in the ``unacked`` hash (delivery tag → ``[message, exchange, routing
key]``); the key layout lives in ``workers.config``, beside the transport options that decide
it. With ``task_acks_late`` a running job's message stays in ``unacked`` until it ends. A
message is a JSON envelope whose body is base64 JSON (the Celery serializer is JSON): read here
with ``json`` and ``base64`` only — nothing from the broker is unpickled or executed.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
from collections.abc import Iterable, Sequence
from typing import Any

import redis.asyncio as aioredis

from workers.config import KOMBU_UNACKED, queue_keys


def job_of(envelope: Any) -> tuple[str, int] | None:
    """(job id, generation) of one kombu message envelope, or None for anything that is not one
    of our task messages (another producer's, or malformed)."""
    if not isinstance(envelope, dict):
        return None
    headers, body = envelope.get("headers"), envelope.get("body")
    if not isinstance(headers, dict) or not isinstance(headers.get("id"), str):
        return None
    try:
        if (envelope.get("properties") or {}).get("body_encoding") == "base64":
            body = base64.b64decode(body, validate=True)
        payload = json.loads(body)
    except (TypeError, ValueError, binascii.Error):
        return None
    # Celery's message protocol 2: [args, kwargs, embed]
    kwargs = payload[1] if isinstance(payload, list) and len(payload) == 3 else None
    if not isinstance(kwargs, dict) or kwargs.get("job_id") != headers["id"]:
        return None
    generation = kwargs.get("generation", 0)
    return headers["id"], generation if isinstance(generation, int) else 0


def _decoded(raws: Iterable[bytes | str]) -> Iterable[Any]:
    for raw in raws:
        try:
            yield json.loads(raw)
        except ValueError:
            continue


async def job_messages(broker: aioredis.Redis, broker_prefix: str,
                       queues: Sequence[str]) -> set[tuple[str, int]]:
    """Every (job id, generation) with a message waiting in ``queues`` or delivered and not yet
    acknowledged. One MULTI/EXEC, so that no message moves from a list to ``unacked`` between
    the reads; one that a worker has taken off a list and not yet recorded as unacked (a round
    trip of its own) is still missed — callers must see a job missing for a while."""
    pipe = broker.pipeline(transaction=True)
    for key in itertools.chain.from_iterable(queue_keys(broker_prefix, q) for q in queues):
        pipe.lrange(key, 0, -1)
    pipe.hvals(broker_prefix + KOMBU_UNACKED)
    *waiting, unacked = await pipe.execute()
    envelopes = list(_decoded(itertools.chain.from_iterable(waiting)))
    envelopes += [row[0] for row in _decoded(unacked) if isinstance(row, list) and row]
    return {job for job in map(job_of, envelopes) if job is not None}
