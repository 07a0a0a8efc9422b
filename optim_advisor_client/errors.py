"""The client's exception tree, and the one table translating httpx's errors into it."""

from __future__ import annotations

from typing import Any

import httpx


class ClientError(Exception):
    """Base of everything this client raises."""


class ConnectError(ClientError):
    """The service could not be reached (wrong --url, not running, network)."""


class ApiError(ClientError):
    """The service answered with a problem document (RFC 9457)."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        self.status = status
        self.problem = problem
        super().__init__(format_problem(status, problem))

    @property
    def errors(self) -> list[dict[str, Any]]:
        """Per-field errors: each names ``field``, ``message`` and usually ``allowed``."""
        return list(self.problem.get("errors") or [])


class JobFailed(ClientError):
    def __init__(self, job: Any) -> None:
        self.job = job
        problem = job.problem or {}
        super().__init__(f"job {job.id} {job.status}: "
                         f"{problem.get('detail') or problem.get('title') or job.status}")


class WaitTimeout(ClientError):
    def __init__(self, job_id: str, timeout: float, status: str) -> None:
        self.job_id, self.timeout, self.status = job_id, timeout, status
        super().__init__(f"job {job_id} still {status} after {timeout:g} s")


def format_problem(status: int, problem: dict[str, Any]) -> str:
    """One line for the problem, then one line per field: ``field: message (allowed: …)``."""
    head = f"{status} {problem.get('title') or 'error'}"
    detail = problem.get("detail")
    lines = [f"{head}: {detail}" if detail else head]
    for err in problem.get("errors") or []:
        line = f"  {err.get('field', '?')}: {err.get('message', 'invalid')}"
        if err.get("allowed") is not None:
            line += f" (allowed: {err['allowed']})"
        if "value" in err:
            line += f" [got {err['value']!r}]"
        lines.append(line)
    return "\n".join(lines)


def raise_for_problem(resp: httpx.Response) -> None:
    if resp.status_code < 400:
        return
    try:
        body = resp.json()
    except ValueError:
        body = {"title": resp.reason_phrase, "detail": resp.text[:500]}
    if not isinstance(body, dict):
        body = {"title": resp.reason_phrase, "detail": str(body)[:500]}
    raise ApiError(resp.status_code, body)


# httpx's exceptions -> ours (one table; everything else from httpx is a ClientError).
_TRANSLATE: tuple[tuple[type[Exception], type[ClientError]], ...] = (
    (httpx.ConnectError, ConnectError),
    (httpx.ConnectTimeout, ConnectError),
    (httpx.RemoteProtocolError, ConnectError),
    (httpx.HTTPError, ClientError),
)


def translate(exc: Exception) -> ClientError:
    for foreign, ours in _TRANSLATE:
        if isinstance(exc, foreign):
            return ours(f"{type(exc).__name__}: {exc}")
    return ClientError(str(exc))
