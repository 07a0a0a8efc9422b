"""Server-Sent Events of jobs without starving the API: one shared reader per job, fanning out
to its subscribers, on a Redis pool of its own, under a cap on open streams.

Before, each stream held one of the API's pooled Redis connections in a blocking XREAD, so about
100 open streams took every connection and ordinary requests answered 503. Now:

* **one reader per job**: however many clients follow a job, one task reads its stream (XREAD
  BLOCK) and hands each entry to every subscriber's queue;
* **a pool of its own** for those blocking reads (``sse_max_streams`` connections at most: a
  reader per job, and never more jobs than streams), so the API's pool only ever serves short
  commands. A subscriber that resumes from an older ``Last-Event-ID`` than its job's reader reads
  the gap once (XRANGE, non-blocking) and then follows the reader;
* **a cap** on open streams per process (``sse_max_streams``) and per tenant
  (``sse_max_streams_per_tenant``, for a tenant id the caller passes; None = no tenant). Over the
  cap, :class:`StreamLimit` — the events route answers 503 (process) or 429 (tenant) with
  Retry-After; nothing else is refused.
* a subscriber whose queue overflows (a client that does not read) is dropped: the events stay
  in the stream, and the client resumes with ``Last-Event-ID``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import weakref
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

from app.core.problems import ProblemError
from app.schemas.jobs import event_id_parts
from workers.jobstore import JobKeys
from workers.jobstore.records import as_text
from workers.names import TERMINAL_STATUSES

log = logging.getLogger("app.events")

Entry = tuple[str, dict[str, str]]
QUEUE_MAX = 1000


class StreamLimit(ProblemError):
    """Too many open event streams (this process, or this tenant)."""


class _Dropped(Exception):
    """The subscriber fell too far behind; it resumes with Last-Event-ID."""


@dataclass(eq=False)
class _Subscriber:
    queue: asyncio.Queue[Entry | BaseException | None] = field(
        default_factory=lambda: asyncio.Queue(QUEUE_MAX))

    def offer(self, item: Entry | BaseException | None) -> bool:
        try:
            self.queue.put_nowait(item)
            return True
        except asyncio.QueueFull:
            return False


class _JobReader:
    """Reads one job's stream for all its subscribers (see the module docstring)."""

    def __init__(self, hub: EventHub, job_id: str, start: str) -> None:
        self.hub, self.job_id, self.last = hub, job_id, start
        self.subs: set[_Subscriber] = set()
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        key = self.hub.keys.events(self.job_id)
        try:
            start_checked = self.last == "0-0"  # nothing comes before it
            while self.subs:
                try:
                    if not start_checked:
                        await self._start_within_stream(key)
                        start_checked = True
                    res = await self.hub.reader.xread({key: self.last},
                                                      block=self.hub.block_ms, count=100)
                except Exception as exc:  # Redis down: every subscriber's stream ends
                    for sub in list(self.subs):
                        sub.offer(exc)
                    return
                entries = [(as_text(eid), {as_text(a): as_text(b) for a, b in f.items()})
                           for eid, f in (res[0][1] if res else [])]
                for entry in entries:
                    self.last = entry[0]
                for sub in list(self.subs):
                    # No await between reading and handing out: a subscriber joining now sees
                    # ``last`` and gets every later entry from its queue.
                    ok = all(sub.offer(e) for e in entries) and (entries or sub.offer(None))
                    if not ok:
                        self.subs.discard(sub)
                        with contextlib.suppress(asyncio.QueueFull):
                            sub.queue.get_nowait()
                        sub.offer(_Dropped())
        finally:
            self.hub._reader_done(self)

    async def _start_within_stream(self, key: str) -> None:
        """Start no later than the stream's newest entry. The first subscriber's Last-Event-ID
        is where the reader starts; one ahead of every entry (a client's clock, a made-up id)
        would have it wait past the events the job adds next, for every subscriber. Each
        subscriber still gets only the entries after its own id."""
        newest = await self.hub.reader.xrevrange(key, count=1)
        top = as_text(newest[0][0]) if newest else "0-0"
        if _sid(top) < _sid(self.last):
            self.last = top


def _sid(event_id: str) -> tuple[int, int]:
    """``(ms, seq)`` of an id Redis gave, or one ``event_id_parts`` already checked: no checks
    here, since it runs for every event of every subscriber."""
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq)


class _Ticket:
    """One admitted stream; released once, whichever happens first: the stream ends, or its
    generator is dropped without ever starting (a client gone before the first byte)."""

    def __init__(self, hub: EventHub, tenant: str | None) -> None:
        self.hub, self.tenant, self.released = hub, tenant, False

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.hub._release(self.tenant)


class EventHub:
    """Per API process. ``reader`` is a client on its own pool (see the module docstring)."""

    def __init__(self, reader: aioredis.Redis, main: aioredis.Redis, keys: JobKeys, *,
                 max_streams: int, max_streams_per_tenant: int | None = None,
                 block_ms: int = 1000, retry_after_s: int = 5) -> None:
        self.reader, self.main, self.keys = reader, main, keys
        self.max_streams, self.max_per_tenant = max_streams, max_streams_per_tenant
        self.block_ms, self.retry_after_s = block_ms, retry_after_s
        self.open_streams = 0
        self.per_tenant: Counter[str] = Counter()
        self._readers: dict[str, _JobReader] = {}

    def admit(self, tenant: str | None = None) -> _Ticket:
        """Count one more stream, or raise :class:`StreamLimit` (503 process, 429 tenant)."""
        headers = {"Retry-After": str(self.retry_after_s)}
        if self.open_streams >= self.max_streams:
            raise StreamLimit(503, "Too many event streams",
                              f"this server already serves {self.open_streams} event streams "
                              f"(at most sse_max_streams={self.max_streams}); poll GET "
                              "/v1/jobs/{id} or retry later", type_="too-many-streams",
                              headers=headers, limit=self.max_streams)
        if tenant is not None and self.max_per_tenant is not None \
                and self.per_tenant[tenant] >= self.max_per_tenant:
            raise StreamLimit(429, "Too many event streams for this tenant",
                              f"{self.per_tenant[tenant]} event streams are open for this "
                              f"tenant (at most {self.max_per_tenant})",
                              type_="too-many-streams", headers=headers,
                              limit=self.max_per_tenant)
        self.open_streams += 1
        if tenant is not None:
            self.per_tenant[tenant] += 1
        return _Ticket(self, tenant)

    def _release(self, tenant: str | None) -> None:
        self.open_streams -= 1
        if tenant is not None:
            self.per_tenant[tenant] -= 1
            if self.per_tenant[tenant] <= 0:
                del self.per_tenant[tenant]

    async def entries(self, job_id: str, after: str) -> AsyncIterator[Entry | None]:
        """The job's events after ``after``, then live ones; None when a read found nothing
        (about every ``block_ms``: time to check the job and send a keep-alive). ValueError,
        before any reading, for an ``after`` Redis would refuse: it must not reach the job's
        shared reader, whose error every subscriber would get."""
        start = event_id_parts(after)
        sub = _Subscriber()
        reader = self._readers.get(job_id)
        if reader is None:
            reader = self._readers[job_id] = _JobReader(self, job_id, after)
            reader.subs.add(sub)
            reader.task = asyncio.create_task(reader.run())
            gap_to = after
        else:
            reader.subs.add(sub)
            gap_to = reader.last
        last = start
        try:
            # the reader is ahead: read the gap once
            if start < _sid(gap_to):
                rows = await self.main.xrange(self.keys.events(job_id), f"({after}", gap_to)
                for eid, f in rows:
                    text = as_text(eid)
                    last = _sid(text)
                    yield text, {as_text(a): as_text(b) for a, b in f.items()}
            while True:
                item = await sub.queue.get()
                if isinstance(item, BaseException):
                    raise item
                if item is None:
                    yield None
                elif (key := _sid(item[0])) > last:
                    last = key
                    yield item
        finally:
            reader.subs.discard(sub)

    def _reader_done(self, reader: _JobReader) -> None:
        if self._readers.get(reader.job_id) is reader:
            del self._readers[reader.job_id]
        for sub in list(reader.subs):  # joined while it was stopping: they need a new reader
            sub.offer(ConnectionError("event reader stopped"))

    async def aclose(self) -> None:
        for reader in list(self._readers.values()):
            if reader.task is not None:
                reader.task.cancel()
        await self.reader.aclose()


def sse(event: str, data: str, event_id: str | None = None) -> str:
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {data}\n\n"


def open_stream(hub: EventHub, job_id: str, last: str, *,
                get_job: Callable[[str], Awaitable[dict[str, Any] | None]],
                is_disconnected: Callable[[], Awaitable[bool]], keepalive_s: float,
                tenant: str | None = None) -> AsyncIterator[str]:
    """Admit one stream now (raising :class:`StreamLimit`, an ordinary error answer, over the
    cap) and return its text/event-stream body. ``get_job`` goes through the job service: a job
    whose worker was lost is re-queued or failed there, which then ends the stream."""
    ticket = hub.admit(tenant)
    body = _stream(hub, ticket, job_id, last, get_job=get_job,
                   is_disconnected=is_disconnected, keepalive_s=keepalive_s)
    weakref.finalize(body, ticket.release)
    return body


async def _stream(hub: EventHub, ticket: _Ticket, job_id: str, last: str, *,
                  get_job: Callable[[str], Awaitable[dict[str, Any] | None]],
                  is_disconnected: Callable[[], Awaitable[bool]], keepalive_s: float
                  ) -> AsyncIterator[str]:
    sent_at = time.monotonic()
    try:
        async for item in hub.entries(job_id, last):
            if await is_disconnected():
                return
            if item is not None:
                eid, fields = item
                sent_at = time.monotonic()
                yield sse(fields.get("event", "message"), fields.get("data", "{}"), eid)
                if fields.get("event") == "status" and \
                        json.loads(fields.get("data", "{}")).get("status") in TERMINAL_STATUSES:
                    return
                continue
            rec = await get_job(job_id)
            if rec is None or rec["status"] in TERMINAL_STATUSES:  # events trimmed or expired
                yield sse("status", json.dumps({"status": rec["status"] if rec else "expired"}))
                return
            if time.monotonic() - sent_at > keepalive_s:
                sent_at = time.monotonic()
                yield ": keep-alive\n\n"
    except _Dropped:
        log.info("event stream dropped: the client fell behind", extra={"job_id": job_id})
    finally:
        ticket.release()
