"""Redis or broker outages answer 503 problem+json with Retry-After — never a hang or a 500.

Besides lost connections and timeouts, Redis refusing writes is an outage too: ``OOM`` (the
broker's noeviction policy at maxmemory), ``READONLY`` (a replica after a failover) and
``MISCONF`` (persistence failing with stop-writes-on-bgsave-error) all clear without a change
to the request, so they answer 503 + Retry-After like a dead Redis."""

from __future__ import annotations

import logging

import redis.exceptions as redis_errors
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from app.core.problems import ProblemError, problem_response
from app.services.publish import ServiceUnavailable
from workers.problems import UNAVAILABLE, kind_of

log = logging.getLogger("app.unavailable")


def install(app: FastAPI, retry_after_s: int) -> None:
    async def _unavailable(request: Request, exc: Exception) -> JSONResponse:
        log.warning("dependency unavailable", extra={"error": repr(exc)[:300]})
        kind = kind_of(redis_errors.ConnectionError())  # the table's 503
        problem = ProblemError(kind.status, kind.title,
                               "The job store or broker is not answering; try again shortly.",
                               type_=kind.type, headers={"Retry-After": str(retry_after_s)})
        return problem_response(problem, request)

    for exc_type in (ServiceUnavailable, *UNAVAILABLE):
        app.add_exception_handler(exc_type, _unavailable)

    async def _response_error(request: Request, exc: Exception) -> JSONResponse:
        if is_refusing_writes(exc):
            return await _unavailable(request, exc)
        log.exception("Redis error on %s %s", request.method, request.url.path)
        return problem_response(ProblemError(
            500, "Internal server error",
            "The server failed to handle this request; it has been logged.",
            type_="internal-error"), request)

    app.add_exception_handler(redis_errors.ResponseError, _response_error)


# Error prefixes of a Redis that is up but refuses writes for a while (see the module docstring).
_REFUSING = ("OOM", "READONLY", "MISCONF")


def is_refusing_writes(exc: BaseException) -> bool:
    """An OOM / READONLY / MISCONF reply, also when it comes back from inside a Lua script."""
    if isinstance(exc, (redis_errors.OutOfMemoryError, redis_errors.ReadOnlyError)):
        return True
    if not isinstance(exc, redis_errors.ResponseError):
        return False
    text = str(exc)
    # Inside a script Redis 7 keeps the code ("OOM command not allowed ... script: ..."); older
    # servers wrap it ("ERR Error running script ...: -OOM ...").
    return text.startswith(_REFUSING) or any(f"-{p} " in text for p in _REFUSING)
