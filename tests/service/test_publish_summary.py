"""What the broker (and so Flower) shows of a job: a summary, never the request body."""

from __future__ import annotations

from typing import Any

import anyio

from app.core.config import Settings
from app.services.publish import JobPublisher


def test_the_published_task_hides_the_request_from_flower() -> None:
    publisher = JobPublisher(Settings())
    sent: dict[str, Any] = {}
    publisher.celery.send_task = lambda name, **kw: sent.update(kw, name=name)  # type: ignore
    secret = {"experiment": {"model": {"kind": "registered", "name": "secret-model"}}}
    try:
        anyio.run(lambda: publisher.publish(kind="range_test", job_id="a" * 32, request=secret,
                                            device="cpu", queue="cpu", priority=7,
                                            request_id="r1"))
    finally:
        publisher.close()
    assert sent["kwargs"]["request"] == secret  # the worker still gets it
    assert "secret-model" not in sent["kwargsrepr"] and "a" * 32 in sent["kwargsrepr"]
    assert sent["argsrepr"] == "()"
    assert sent["priority"] == 2  # the Redis transport serves 0 first: 9 - 7
