"""Reading kombu's Redis envelopes for job ids: what is ours is found, anything else is skipped
without an error (the real format, produced by Celery, is read in
tests/integration/test_lost_message.py)."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from app.services.broker_messages import job_of
from workers.config import queue_keys

JOB = "0123abcd" + "f" * 24


def envelope(kwargs: Any, *, job_id: str = JOB, encoding: str | None = "base64") -> dict[str, Any]:
    body = json.dumps([[], kwargs, {"callbacks": None}])
    return {"body": base64.b64encode(body.encode()).decode() if encoding else body,
            "headers": {"id": job_id, "task": "optim.range_test"},
            "properties": {"body_encoding": encoding, "delivery_tag": "t"} if encoding else {}}


def test_a_task_message_names_its_job_and_generation() -> None:
    assert job_of(envelope({"job_id": JOB, "generation": 2})) == (JOB, 2)
    assert job_of(envelope({"job_id": JOB})) == (JOB, 0)  # published before generations
    assert job_of(envelope({"job_id": JOB, "generation": 1}, encoding=None)) == (JOB, 1)


@pytest.mark.parametrize("bad", [
    None, "text", [], {}, {"headers": {"id": JOB}},
    {"headers": {"id": 7}, "body": "e30="},
    {"headers": {"id": JOB}, "body": "%%%", "properties": {"body_encoding": "base64"}},
    {"headers": {"id": JOB}, "body": base64.b64encode(b"not json").decode(),
     "properties": {"body_encoding": "base64"}},
    envelope({"job_id": "another job"}),  # another producer's task
    envelope("not a dict"),
])
def test_anything_else_is_skipped(bad: Any) -> None:
    assert job_of(bad) is None


def test_a_generation_that_is_not_a_number_reads_as_the_first() -> None:
    assert job_of(envelope({"job_id": JOB, "generation": "2"})) == (JOB, 0)


def test_one_list_per_priority_step_under_the_prefix() -> None:
    keys = queue_keys("p:", "cpu")
    assert keys[0] == "p:cpu" and keys[3] == "p:cpu\x06\x163" and len(keys) == 10
