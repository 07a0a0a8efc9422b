"""The Python client, sync and async, against the real service and worker."""

from __future__ import annotations

import asyncio

import pytest

from optim_advisor_client import ApiError, AsyncClient, Client, RangeTestResult, WaitTimeout
from tests.jobs_support import long_range_test, tiny_range_test
from tests.live_server import LiveService

pytestmark = pytest.mark.integration


def test_sync_client_stream_wait_result_and_problems(live_service: LiveService) -> None:
    with Client(live_service.url) as c:
        job = c.range_test({**tiny_range_test(seed=31), "force": True})
        events = list(c.stream(job))
        steps = [e.data["step"] for e in events if e.event == "progress"]
        assert steps and steps == sorted(steps)
        assert events[-1].event == "status" and events[-1].data["status"] == "succeeded"
        done = c.wait(job, timeout=30)
        view = c.result(done)
        assert isinstance(view, RangeTestResult) and view.suggestions.recommended
        with pytest.raises(ApiError) as err:
            c.range_test({**tiny_range_test(seed=31), "config": {"num_steps": 3}})
        assert err.value.status == 422
        assert any(e["field"].endswith("num_steps") and "10" in e.get("allowed", "")
                   for e in err.value.errors)
        slow = c.range_test({**long_range_test(seed=32), "force": True})
        with pytest.raises(WaitTimeout):
            c.wait(slow, timeout=0.5)
        c.cancel(slow)
        assert c.wait(slow, timeout=60).status == "cancelled"


def test_async_client(live_service: LiveService) -> None:
    async def go() -> None:
        async with AsyncClient(live_service.url) as c:
            advice = await c.advise({"task": "encoder_finetune", "param_count": 355_000_000,
                                     "batch_size": 32, "seq_len": 512,
                                     "dataset_size": 393_000, "epochs": 10})
            assert advice.optimizer.lr > 0 and advice.rationale
            job = await c.range_test({**tiny_range_test(seed=33), "force": True})
            kinds = [e.event async for e in c.stream(job)]
            assert "progress" in kinds and kinds[-1] == "status"
            done = await c.wait(job, timeout=30)
            assert done.status == "succeeded"
            assert "<svg" in await c.plot_svg(done)
            page = await c.jobs(limit=5)
            assert job.id in [j.id for j in page.items]

    asyncio.run(go())
