"""schemathesis over the whole OpenAPI document, against the live app (a real uvicorn and Redis):
0 server errors and 0 responses that break their declared schema, status codes, content types
or headers. Bounded: a few examples per operation, so it adds seconds, not minutes.

The app runs open (as scripts/up does on 127.0.0.1) in a namespace of its own with no worker:
what it queues is never run, and is removed with the namespace."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.failures import ServerError
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.core.config import Settings
from tests.inprocess_server import live_server
from tests.jobs_support import Namespace, new_namespace

pytestmark = pytest.mark.integration

EXAMPLES = 15  # per operation and mode


@schemathesis.check
def no_server_error(ctx: object, response: schemathesis.Response, case: schemathesis.Case
                    ) -> bool | None:
    """Any 5xx is a failure, except the 503 that /readyz declares for "no live worker" (this
    server has none, on purpose) and that says when to retry. (A ``device: cuda`` job with no
    GPU worker is a 422 on ``body.device``: nothing failed.)"""
    status = response.status_code
    if status == 503 and case.operation.path == "/readyz" and "retry-after" in {
            k.lower() for k in response.headers}:
        return None
    if status >= 500:
        raise ServerError(operation=case.operation.label, status_code=status)
    return None


CHECKS = [no_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def fuzz_ns() -> Iterator[Namespace]:
    ns = new_namespace()
    yield ns
    ns.cleanup()


@pytest.fixture(scope="module")
def fuzz_server(fuzz_ns: Namespace) -> Iterator[str]:
    with live_server(Settings(**fuzz_ns.settings_kwargs(), auth="open")) as base:
        yield base


def _operations(base: str) -> list[schemathesis.APIOperation]:
    return [r.ok() for r in schemathesis.openapi.from_url(f"{base}/openapi.json")
            .get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_keeps_its_contract(fuzz_server: str, mode: GenerationMode) -> None:
    operations = _operations(fuzz_server)
    assert len(operations) >= 15  # the whole schema, not a part of it
    failures: list[str] = []
    calls = 0
    for op in operations:
        @given(case=op.as_strategy(generation_mode=mode))
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  phases=[Phase.explicit, Phase.generate],
                  suppress_health_check=list(HealthCheck))
        def run(case: schemathesis.Case) -> None:
            nonlocal calls
            calls += 1
            case.call_and_validate(checks=CHECKS, timeout=10)

        try:
            run()
        except Unsatisfiable:  # nothing to negate (no parameters, no body): nothing to send
            continue
        except (Exception, BaseExceptionGroup) as exc:  # collected, reported together below
            failures.append(f"{op.method.upper()} {op.path}: {str(exc)[:1500]}")
    assert not failures, "\n\n".join(failures)
    assert calls >= len(operations)
