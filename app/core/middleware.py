"""Pure ASGI middleware: request ids (X-Request-ID in and out), an access log line, HTTP metrics,
a bound on the request body size (413 problem+json) and the 500 problem+json for unhandled
errors (answered here, so that it carries the request id too)."""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core import paths
from app.core.logging import request_id_var
from app.core.metrics import HttpMetrics
from app.core.problems import PROBLEM_JSON, ProblemError, internal_error, render

log = logging.getLogger("app.access")
error_log = logging.getLogger("app.problems")
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def route_template(scope: Scope) -> str:
    """The matched route's template with its router prefix ("/v1/jobs/{job_id}"), for labels
    that do not explode with ids. Included routers match relative paths, so the prefix is the
    part of the real path in front of the template's segments."""
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    if not path:
        return UNMATCHED
    real = scope.get("path", "").rstrip("/").split("/")
    n = len(path.rstrip("/").split("/")) - 1
    prefix = "/".join(real[: len(real) - n]) if n else scope.get("path", "")
    return prefix.rstrip("/") + path if path != "/" else (prefix or "/")


UNMATCHED = "unmatched"


def matched_template(scope: Scope) -> str:
    """The template of the route that *would* serve ``scope``, for a request refused before
    routing (the Content-Length check): one of the app's own templates or ``unmatched``, so the
    metrics' label set stays bounded whatever paths clients send."""
    app = scope.get("app")
    found = paths.match(app, scope.get("path", "")) if app is not None else None
    return found.template if found else UNMATCHED


class BodyTooLarge(StarletteHTTPException):
    """The body is over the limit. An HTTPException on purpose: FastAPI re-raises HTTPExceptions
    from ``request.body()`` unchanged but wraps anything else into a 400, which turned a chunked
    oversized body into "There was an error parsing the body"."""

    def __init__(self, limit_bytes: int) -> None:
        super().__init__(413, f"request body: over the limit of {limit_bytes} bytes")
        self.limit_bytes = limit_bytes


def _problem_413(limit: int, path: str, rid: str) -> bytes:
    return render(ProblemError(413, "Content too large",
                               f"request body: over the limit of {limit} bytes",
                               type_="content-too-large", limit_bytes=limit).to_dict(path, rid))


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp, *, header: str, metrics: HttpMetrics,
                 max_body_bytes: int) -> None:
        self.app = app
        self.header = header.lower().encode()
        self.header_name = header
        self.metrics = metrics
        self.max_body = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        given = headers.get(self.header, b"").decode("latin-1")
        rid = given if _SAFE_ID.fullmatch(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = rid
        token = request_id_var.set(rid)
        t0 = time.perf_counter()
        status = 500
        path = scope.get("path", "")

        length = headers.get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            await self._send_413(send, rid, path)
            self._done(scope, 413, t0, template=matched_template(scope))
            request_id_var.reset(token)
            return

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            msg = await receive()
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                if received > self.max_body:
                    raise BodyTooLarge(self.max_body)
            return msg

        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started
            if message["type"] == "http.response.start":
                started = True
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"],
                                      (self.header_name.encode(), rid.encode())]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_id)
        except BodyTooLarge:  # read outside FastAPI's body parsing (its handler renders it)
            if not started:
                await self._send_413(send, rid, path)
            status = 413
        except Exception:
            # Answered here rather than by the app's Exception handler: Starlette runs that one
            # in ServerErrorMiddleware, outside this middleware, so its 500 had no X-Request-ID
            # and its log line no request id. Not re-raised once answered: the server would
            # only log the traceback a second time, without the id.
            error_log.exception("unhandled error on %s %s", scope.get("method", "?"), path)
            if started:
                raise  # the status line is out: only the server can end the response (abort)
            await self._send_problem(send, rid, 500, render(internal_error().to_dict(path, rid)))
            status = 500
        finally:
            self._done(scope, status, t0)
            request_id_var.reset(token)

    async def _send_413(self, send: Send, rid: str, path: str) -> None:
        await self._send_problem(send, rid, 413, _problem_413(self.max_body, path, rid))

    async def _send_problem(self, send: Send, rid: str, status: int, body: bytes) -> None:
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode()),
            (self.header_name.encode(), rid.encode())]})
        await send({"type": "http.response.body", "body": body})

    def _done(self, scope: Scope, status: int, t0: float, *, template: str | None = None
              ) -> None:
        seconds = time.perf_counter() - t0
        template = template or route_template(scope)
        method = scope.get("method", "?")
        self.metrics.observe(template, method, status, seconds)
        log.info("request", extra={"method": method, "path": scope.get("path"),
                                   "route": template, "status": status,
                                   "ms": round(seconds * 1000, 2)})
