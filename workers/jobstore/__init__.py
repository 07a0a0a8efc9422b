"""Job records, claims, progress, cancel flags and events in Redis (no torch, no Celery).

One hash per job is the source of truth for its state (Celery's result backend is never read: it
calls every unknown id PENDING). The package is split by concept:

* ``keys``     the key layout (every key the store writes, documented there) and its sizes;
* ``scripts``  the Lua scripts, one per state change;
* ``records``  records as plain data in and out of Redis hashes;
* ``sync``     the worker's store (:class:`JobStore`) and worker heartbeats;
* ``aio``      the API's store (:class:`AsyncJobStore`, redis.asyncio).
"""

from workers.jobstore.aio import AsyncJobStore, Submitted
from workers.jobstore.keys import DURATION_BUCKETS, EVENTS_MAXLEN, JobKeys, new_job_id, now_iso
from workers.jobstore.records import decode_record, encode_fields, progress_doc
from workers.jobstore.sync import (
    Begin,
    JobStore,
    forget_worker,
    heartbeat_age_ok,
    live_worker_payloads,
    write_heartbeat,
)

__all__ = [
    "DURATION_BUCKETS",
    "EVENTS_MAXLEN",
    "AsyncJobStore",
    "Begin",
    "JobKeys",
    "JobStore",
    "Submitted",
    "decode_record",
    "encode_fields",
    "forget_worker",
    "heartbeat_age_ok",
    "live_worker_payloads",
    "new_job_id",
    "now_iso",
    "progress_doc",
    "write_heartbeat",
]
