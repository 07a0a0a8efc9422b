"""Shutdown cannot hang: the reaper ends on a cancel even when a timeout turned it into a
TimeoutError, and each shutdown step is bounded (a step that never ends, or swallows its cancel,
is left behind with a warning; one that fails does not stop the others)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from app import main


class _CancelSeenAsTimeout:
    """A sweep whose Redis call is cancelled and reports it as its own timeout, as an
    ``asyncio.timeout`` that misreads the cancel does."""

    def __init__(self) -> None:
        self.sweeps = 0
        self.misread = True  # False: cancels pass through (lets a failing test end)

    async def publish_unpublished(self) -> int:
        self.sweeps += 1
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            if not self.misread:
                raise
            raise TimeoutError from None
        return 0

    async def reap_lost_workers(self) -> int:  # pragma: no cover - never reached
        return 0


def test_the_reaper_ends_on_a_cancel_that_came_out_as_a_timeout() -> None:
    async def go() -> tuple[bool, int]:
        jobs = _CancelSeenAsTimeout()
        task = asyncio.create_task(main._reap_forever(jobs, 0.0))  # type: ignore[arg-type]
        while jobs.sweeps == 0:
            await asyncio.sleep(0)
        task.cancel()
        await asyncio.wait({task}, timeout=2)
        ended = task.done() and task.cancelled()
        jobs.misread = False
        task.cancel()
        return ended, jobs.sweeps

    ended, sweeps = asyncio.run(go())
    assert ended and sweeps == 1


def test_a_step_that_never_ends_is_left_behind(monkeypatch: pytest.MonkeyPatch,
                                               caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setattr(main, "SHUTDOWN_STEP_S", 0.05)

    released = asyncio.Event()

    async def stubborn() -> None:
        while not released.is_set():
            try:
                await released.wait()
            except asyncio.CancelledError:
                continue  # swallows every cancel

    async def failing() -> None:
        raise ConnectionError("gone")

    async def go() -> list[str]:
        ran: list[str] = []

        async def last() -> None:
            ran.append("last")

        await main._bounded("a stubborn step", stubborn())
        await main._bounded("a failing step", failing())
        await main._bounded("the last step", last())
        released.set()  # the step left behind may end now, so that the loop closes cleanly
        return ran

    with caplog.at_level(logging.WARNING, logger="app.main"):
        ran = asyncio.run(asyncio.wait_for(go(), 5))
    assert ran == ["last"]
    text = caplog.text
    assert "a stubborn step did not finish" in text and "a failing step failed" in text
