"""Last-Event-ID is a Redis stream id, ``<ms>-<seq>`` with each part an unsigned 64-bit integer.
One the pattern lets through but Redis refuses (a part above 2^64 - 1, another script's digits)
is a 422 naming the header or the query parameter and the allowed range, not a stream that
aborts after its 200; and no start id of one subscriber can break or starve the others of the
job's shared reader (against a real Redis)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis.asyncio as aioredis
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app
from app.schemas.jobs import EVENT_ID_PART_MAX, event_id_parts
from app.services.events import Entry, EventHub
from workers.jobstore.keys import JobKeys

MAX = str(EVENT_ID_PART_MAX)
OVER = str(EVENT_ID_PART_MAX + 1)
JOB = "0" * 32  # refused before the job is looked up


@pytest.fixture(scope="module")
def client(redis_url: str) -> Iterator[TestClient]:
    prefix = f"event-ids-{uuid.uuid4().hex[:8]}:"
    settings = Settings(redis_url=redis_url, jobs_key_prefix=prefix,
                        broker_key_prefix=prefix + "broker:")
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.mark.parametrize("event_id", ["99999999999999999999-0", f"{OVER}-0", f"0-{OVER}",
                                      "0-99999999999999999999", f"{OVER}-{OVER}"])
def test_an_id_beyond_64_bits_is_a_422_naming_the_header_or_the_query(
        client: TestClient, event_id: str) -> None:
    for kw, field in (({"headers": {"Last-Event-ID": event_id}}, "header.last-event-id"),
                      ({"params": {"last_event_id": event_id}}, "query.last_event_id")):
        r = client.get(f"/v1/jobs/{JOB}/events", **kw)
        assert r.status_code == 422, r.text
        assert r.headers["content-type"].startswith("application/problem+json")
        (err,) = r.json()["errors"]
        assert err["field"] == field and MAX in err["allowed"], err


def test_digits_of_other_scripts_are_refused_by_the_pattern(client: TestClient) -> None:
    r = client.get(f"/v1/jobs/{JOB}/events", params={"last_event_id": "\u0663-0"})  # Arabic 3
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "query.last_event_id"


def test_the_largest_id_passes_validation(client: TestClient) -> None:
    r = client.get(f"/v1/jobs/{JOB}/events", headers={"Last-Event-ID": f"{MAX}-{MAX}"})
    assert r.status_code == 404, r.text  # valid: the (missing) job is looked up


def test_event_id_parts() -> None:
    assert event_id_parts(f"{MAX}-{MAX}") == (EVENT_ID_PART_MAX, EVENT_ID_PART_MAX)
    for bad in (f"{OVER}-0", "5", "1-2-3", "\u0663-0", " 1-0"):
        with pytest.raises(ValueError):
            event_id_parts(bad)


# -- the shared reader, against a real Redis ----------------------------------------------------


async def _next(it: AsyncIterator[Entry | None]) -> Entry | None:
    return await asyncio.wait_for(anext(it), 10)  # a bound against a hang, not a timing check


async def _next_entry(it: AsyncIterator[Entry | None]) -> Entry:
    """The next entry, past the keep-alive ticks (None), within the same bound."""
    async def entry() -> Entry:
        while (item := await anext(it)) is None:
            pass
        return item

    return await asyncio.wait_for(entry(), 10)


def test_no_start_id_breaks_or_starves_the_other_subscribers(redis_url: str) -> None:
    keys = JobKeys(f"event-ids-{uuid.uuid4().hex[:8]}:")
    job = uuid.uuid4().hex

    async def go() -> None:
        reader = aioredis.Redis.from_url(redis_url, decode_responses=True)
        main = aioredis.Redis.from_url(redis_url, decode_responses=True)
        hub = EventHub(reader, main, keys, max_streams=10, block_ms=50)
        stream = keys.events(job)
        try:
            old = [await main.xadd(stream, {"event": "progress", "data": str(i)})
                   for i in range(3)]
            # Refused before it reaches Redis, and before it makes a reader for the job.
            with pytest.raises(ValueError):
                await anext(hub.entries(job, f"{OVER}-0"))
            assert job not in hub._readers
            # A valid id ahead of every entry starts the job's reader; then one from the start.
            ahead = hub.entries(job, f"{MAX}-0")
            assert await _next(ahead) is None  # nothing after its id
            behind = hub.entries(job, "0-0")
            assert [(await _next_entry(behind))[0] for _ in old] == old
            new = await main.xadd(stream, {"event": "status", "data": "{}"})
            # The reader did not wait past the new entry for the first subscriber's id.
            assert (await _next_entry(behind))[0] == new
            assert await _next(ahead) is None  # and that subscriber still gets only later ones
            await ahead.aclose()
            await behind.aclose()
        finally:
            await main.delete(stream)
            await hub.aclose()
            await main.aclose()

    asyncio.run(go())
