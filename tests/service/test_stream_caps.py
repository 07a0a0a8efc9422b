"""The event-stream caps as small logic: the process cap answers 503, a tenant's cap 429, and a
released stream frees its place in both (the real-server test is
tests/integration/test_sse_capacity.py)."""

from __future__ import annotations

import pytest

from app.services.events import EventHub, StreamLimit
from workers.jobstore.keys import JobKeys


def _hub(max_streams: int, per_tenant: int | None) -> EventHub:
    # admit/release never touch Redis: the clients are not used here.
    return EventHub(None, None, JobKeys("t:"), max_streams=max_streams,  # type: ignore[arg-type]
                    max_streams_per_tenant=per_tenant)


def test_a_tenant_over_its_cap_gets_429_while_others_still_stream() -> None:
    hub = _hub(max_streams=10, per_tenant=2)
    a = [hub.admit("a"), hub.admit("a")]
    with pytest.raises(StreamLimit) as over:
        hub.admit("a")
    assert over.value.status == 429 and over.value.headers["Retry-After"]
    b = hub.admit("b")  # another tenant is not affected
    assert hub.open_streams == 3
    a[0].release()
    hub.admit("a")  # a released stream frees the tenant's place
    b.release()
    assert hub.open_streams == 2 and hub.per_tenant["a"] == 2 and hub.per_tenant["b"] == 0


def test_the_process_cap_answers_503_whoever_asks() -> None:
    hub = _hub(max_streams=2, per_tenant=None)
    hub.admit("a"), hub.admit(None)
    with pytest.raises(StreamLimit) as over:
        hub.admit("b")
    assert over.value.status == 503
