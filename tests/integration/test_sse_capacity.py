"""Event streams cannot starve the API: more streams than the cap are held open against a live
server whose Redis pool is smaller than the number of streams, and ordinary requests keep
answering 200; only the stream route refuses (503 with Retry-After) over the cap. Several
subscribers of one job share one reader and each gets every event."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid

import httpx
import pytest

from tests.jobs_support import JOBS_TEST_REDIS_URL, Namespace, start_api, tiny_range_test

pytestmark = pytest.mark.integration

CAP = 12


def test_streams_over_the_cap_leave_ordinary_requests_alone(tmp_path) -> None:
    ns = Namespace(JOBS_TEST_REDIS_URL, uuid.uuid4().hex[:10])
    # No worker in this namespace: the jobs stay queued and their streams stay open.
    api, base = start_api(ns, tmp_path / "api.log", OPTIM_SSE_MAX_STREAMS=str(CAP),
                     OPTIM_REDIS_MAX_CONNECTIONS="4")

    async def go() -> None:
        async with httpx.AsyncClient(base_url=base, timeout=20) as c:
            ids = [(await c.post("/v1/jobs/lr-range-test",
                                 json=tiny_range_test(seed=i))).json()["id"] for i in range(3)]
            opened: list[httpx.Response] = []
            streams = [c.stream("GET", f"/v1/jobs/{ids[i % 3]}/events") for i in range(CAP + 4)]
            statuses = []
            for s in streams:
                resp = await s.__aenter__()
                opened.append(resp)
                statuses.append(resp.status_code)
            assert statuses[:CAP] == [200] * CAP, statuses
            over = opened[CAP:]
            assert {r.status_code for r in over} == {503}, [r.status_code for r in over]
            body = await over[0].aread()
            assert b"too-many-streams" in body and over[0].headers["retry-after"]
            # Each open stream has its first event (the queued status).
            lines_of = [r.aiter_lines() for r in opened[:CAP]]
            firsts = await asyncio.gather(*(anext(it) for it in lines_of))
            assert all(line.startswith("id: ") for line in firsts), firsts
            # Meanwhile the API answers everything else, many times over its pool size.
            for _ in range(5):
                answers = await asyncio.gather(
                    *(c.get(f"/v1/jobs/{ids[i % 3]}") for i in range(10)),
                    c.get("/v1/jobs", params={"limit": 5}), c.get("/healthz"),
                    c.post("/v1/jobs/lr-range-test", json=tiny_range_test(seed=77)))
                assert [a.status_code for a in answers[:-1]] == [200] * 12, \
                    [a.text for a in answers if a.status_code >= 300][:2]
                assert answers[-1].status_code == 202
            # A cancel ends its job's streams with the final status; the others stay open.
            assert (await c.delete(f"/v1/jobs/{ids[0]}")).status_code == 200
            ended = []
            for it in lines_of[:CAP:3]:  # the streams of ids[0]
                lines = [line async for line in it]
                ended.append(any('"cancelled"' in line for line in lines))
            assert all(ended), ended
            for s in streams:
                await s.__aexit__(None, None, None)
            # Closed streams free their places.
            await asyncio.sleep(1.5)
            async with c.stream("GET", f"/v1/jobs/{ids[1]}/events") as again:
                assert again.status_code == 200

    try:
        asyncio.run(go())
    finally:
        os.killpg(api.pid, signal.SIGTERM)
        api.wait(20)
        ns.cleanup()
