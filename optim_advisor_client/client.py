"""Sync and async clients of the optim-advisor HTTP API, typed with the API's own models.

Each endpoint is described once (a :class:`_Call`: method, path, body, the model of the answer);
:class:`Client` and :class:`AsyncClient` only differ in how they send it. No torch, no numpy.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import httpx
from pydantic import BaseModel

from app.schemas.job_results import ResultView, read_result
from app.schemas.jobs import (
    JobBatchResult,
    JobPage,
    JobView,
    RangeTestJobRequest,
    TrialsJobRequest,
)
from optim_advisor_client.errors import (
    JobFailed,
    WaitTimeout,
    raise_for_problem,
    translate,
)
from optim_advisor_client.sse import Event, SseParser
from optim_core.advice.diagnose import Diagnosis, TrainingLog
from optim_core.advice.models import AdviceRequest, AdviceResponse

DEFAULT_URL = "http://127.0.0.1:8000"
URL_ENV, KEY_ENV = "OPTIM_ADVISOR_URL", "OPTIM_ADVISOR_API_KEY"
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})

T = TypeVar("T")
JobRef = str | JobView


@dataclass(frozen=True)
class _Call(Generic[T]):
    method: str
    path: str
    parse: Any  # a pydantic model class, or ``str`` / ``dict`` for raw bodies
    json: Any = None
    params: Mapping[str, Any] | None = None


def _body(spec: BaseModel | Mapping[str, Any], model: type[BaseModel]) -> dict[str, Any]:
    """A request body. A typed model is dumped; a plain mapping goes as it is, so that the
    service validates it and a bad one comes back as its problem document (field and allowed
    range), the same words whichever face sent it."""
    if isinstance(spec, BaseModel):
        return spec.model_dump(mode="json", exclude_unset=True, by_alias=True)
    return dict(spec)


def _id(job: JobRef) -> str:
    return job.id if isinstance(job, JobView) else str(job)


def _parse(call: _Call[Any], resp: httpx.Response) -> Any:
    raise_for_problem(resp)
    if call.parse is str:
        return resp.text
    if call.parse is dict:
        return resp.json()
    return call.parse.model_validate(resp.json())


class _Calls:
    """Every endpoint the client uses, once."""

    @staticmethod
    def advise(spec: AdviceRequest | Mapping[str, Any]) -> _Call[AdviceResponse]:
        return _Call("POST", "/v1/advice", AdviceResponse, json=_body(spec, AdviceRequest))

    @staticmethod
    def diagnose(log: TrainingLog | Mapping[str, Any]) -> _Call[Diagnosis]:
        return _Call("POST", "/v1/diagnose", Diagnosis, json=_body(log, TrainingLog))

    @staticmethod
    def rule(rule_id: str) -> _Call[dict[str, Any]]:
        return _Call("GET", f"/v1/rules/{rule_id}", dict)

    @staticmethod
    def range_test(spec: RangeTestJobRequest | Mapping[str, Any]) -> _Call[JobView]:
        return _Call("POST", "/v1/jobs/lr-range-test", JobView,
                     json=_body(spec, RangeTestJobRequest))

    @staticmethod
    def range_test_batch(items: list[Mapping[str, Any]]) -> _Call[JobBatchResult]:
        return _Call("POST", "/v1/jobs/lr-range-test/batch", JobBatchResult,
                     json={"items": [dict(i) for i in items]})

    @staticmethod
    def trials(spec: TrialsJobRequest | Mapping[str, Any]) -> _Call[JobView]:
        return _Call("POST", "/v1/jobs/trials", JobView, json=_body(spec, TrialsJobRequest))

    @staticmethod
    def job(job: JobRef) -> _Call[JobView]:
        return _Call("GET", f"/v1/jobs/{_id(job)}", JobView)

    @staticmethod
    def jobs(status: list[str] | None, kind: list[str] | None, limit: int,
             cursor: str | None) -> _Call[JobPage]:
        params: dict[str, Any] = {"limit": limit}
        if status:
            params["status"] = status
        if kind:
            params["kind"] = kind
        if cursor:
            params["cursor"] = cursor
        return _Call("GET", "/v1/jobs", JobPage, params=params)

    @staticmethod
    def cancel(job: JobRef) -> _Call[JobView]:
        return _Call("DELETE", f"/v1/jobs/{_id(job)}", JobView)

    @staticmethod
    def plot_svg(job: JobRef) -> _Call[str]:
        return _Call("GET", f"/v1/jobs/{_id(job)}/plot.svg", str)


def _settings(url: str | None, api_key: str | None) -> tuple[str, dict[str, str]]:
    base = (url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")
    key = api_key if api_key is not None else os.environ.get(KEY_ENV)
    headers = {"Accept": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    return base, headers


def _stream_headers(parser: SseParser) -> dict[str, str]:
    """Resume after the last event seen (the server honours ``Last-Event-ID``)."""
    headers = {"Accept": "text/event-stream"}
    if parser.last_id:
        headers["Last-Event-ID"] = parser.last_id
    return headers


def _is_final(ev: Event) -> bool:
    return ev.event == "status" and ev.data.get("status") in TERMINAL | {"expired"}


def _check_wait(view: JobView, raise_on_failure: bool) -> JobView:
    if raise_on_failure and view.status in ("failed", "cancelled"):
        raise JobFailed(view)
    return view


class Client:
    """``Client(url=None, api_key=None)``: the URL and key default to ``$OPTIM_ADVISOR_URL``
    (else http://127.0.0.1:8000) and ``$OPTIM_ADVISOR_API_KEY``; the key is sent as
    ``Authorization: Bearer``."""

    def __init__(self, url: str | None = None, api_key: str | None = None, *,
                 timeout: float = 30.0, transport: httpx.BaseTransport | None = None) -> None:
        self.url, headers = _settings(url, api_key)
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout,
                                  transport=transport)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, call: _Call[T]) -> T:
        try:
            resp = self._http.request(call.method, call.path, json=call.json,
                                      params=call.params)
        except httpx.HTTPError as exc:
            raise translate(exc) from exc
        return _parse(call, resp)

    def advise(self, spec: AdviceRequest | Mapping[str, Any]) -> AdviceResponse:
        return self._send(_Calls.advise(spec))

    def diagnose(self, log: TrainingLog | Mapping[str, Any]) -> Diagnosis:
        return self._send(_Calls.diagnose(log))

    def rule(self, rule_id: str) -> dict[str, Any]:
        return self._send(_Calls.rule(rule_id))

    def range_test(self, spec: RangeTestJobRequest | Mapping[str, Any]) -> JobView:
        return self._send(_Calls.range_test(spec))

    def range_test_batch(self, items: list[Mapping[str, Any]]) -> JobBatchResult:
        return self._send(_Calls.range_test_batch(items))

    def trials(self, spec: TrialsJobRequest | Mapping[str, Any]) -> JobView:
        return self._send(_Calls.trials(spec))

    def job(self, job: JobRef) -> JobView:
        return self._send(_Calls.job(job))

    def jobs(self, *, status: list[str] | None = None, kind: list[str] | None = None,
             limit: int = 20, cursor: str | None = None) -> JobPage:
        return self._send(_Calls.jobs(status, kind, limit, cursor))

    def cancel(self, job: JobRef) -> JobView:
        return self._send(_Calls.cancel(job))

    def plot_svg(self, job: JobRef) -> str:
        return self._send(_Calls.plot_svg(job))

    def result(self, job: JobRef) -> ResultView | None:
        view = job if isinstance(job, JobView) and job.result is not None else self.job(job)
        return read_result(view.result)

    def wait(self, job: JobRef, timeout: float | None = None, *, poll_s: float = 0.5,
             raise_on_failure: bool = False) -> JobView:
        """The job once it ended (succeeded, failed or cancelled); :class:`WaitTimeout` after
        ``timeout`` seconds (None: no limit)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            view = self.job(job)
            if view.status in TERMINAL:
                return _check_wait(view, raise_on_failure)
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(view.id, timeout or 0.0, view.status)
            time.sleep(poll_s)

    def stream(self, job: JobRef, *, reconnects: int = 5) -> Iterator[Event]:
        """The job's ``status`` and ``progress`` events as they happen, until its final status;
        a dropped connection resumes from the last event id."""
        parser, tries = SseParser(), 0
        while True:
            headers = _stream_headers(parser)
            try:
                with self._http.stream("GET", f"/v1/jobs/{_id(job)}/events", headers=headers,
                                       timeout=httpx.Timeout(30.0, read=None)) as resp:
                    if resp.status_code >= 400:
                        resp.read()
                        raise_for_problem(resp)
                    for line in resp.iter_lines():
                        ev = parser.feed(line)
                        if ev is None:
                            continue
                        yield ev
                        if _is_final(ev):
                            return
                return
            except (httpx.ReadError, httpx.RemoteProtocolError) as exc:
                tries += 1
                if tries > reconnects:
                    raise translate(exc) from exc
                time.sleep(min(2.0, 0.2 * tries))


class AsyncClient:
    """The asyncio twin of :class:`Client` (same methods, awaited)."""

    def __init__(self, url: str | None = None, api_key: str | None = None, *,
                 timeout: float = 30.0, transport: httpx.AsyncBaseTransport | None = None
                 ) -> None:
        self.url, headers = _settings(url, api_key)
        self._http = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=timeout,
                                       transport=transport)

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _send(self, call: _Call[T]) -> T:
        try:
            resp = await self._http.request(call.method, call.path, json=call.json,
                                            params=call.params)
        except httpx.HTTPError as exc:
            raise translate(exc) from exc
        return _parse(call, resp)

    async def advise(self, spec: AdviceRequest | Mapping[str, Any]) -> AdviceResponse:
        return await self._send(_Calls.advise(spec))

    async def diagnose(self, log: TrainingLog | Mapping[str, Any]) -> Diagnosis:
        return await self._send(_Calls.diagnose(log))

    async def rule(self, rule_id: str) -> dict[str, Any]:
        return await self._send(_Calls.rule(rule_id))

    async def range_test(self, spec: RangeTestJobRequest | Mapping[str, Any]) -> JobView:
        return await self._send(_Calls.range_test(spec))

    async def range_test_batch(self, items: list[Mapping[str, Any]]) -> JobBatchResult:
        return await self._send(_Calls.range_test_batch(items))

    async def trials(self, spec: TrialsJobRequest | Mapping[str, Any]) -> JobView:
        return await self._send(_Calls.trials(spec))

    async def job(self, job: JobRef) -> JobView:
        return await self._send(_Calls.job(job))

    async def jobs(self, *, status: list[str] | None = None, kind: list[str] | None = None,
                   limit: int = 20, cursor: str | None = None) -> JobPage:
        return await self._send(_Calls.jobs(status, kind, limit, cursor))

    async def cancel(self, job: JobRef) -> JobView:
        return await self._send(_Calls.cancel(job))

    async def plot_svg(self, job: JobRef) -> str:
        return await self._send(_Calls.plot_svg(job))

    async def result(self, job: JobRef) -> ResultView | None:
        view = job if isinstance(job, JobView) and job.result is not None \
            else await self.job(job)
        return read_result(view.result)

    async def wait(self, job: JobRef, timeout: float | None = None, *, poll_s: float = 0.5,
                   raise_on_failure: bool = False) -> JobView:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            view = await self.job(job)
            if view.status in TERMINAL:
                return _check_wait(view, raise_on_failure)
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(view.id, timeout or 0.0, view.status)
            await asyncio.sleep(poll_s)

    async def stream(self, job: JobRef, *, reconnects: int = 5) -> AsyncIterator[Event]:
        parser, tries = SseParser(), 0
        while True:
            headers = _stream_headers(parser)
            try:
                async with self._http.stream("GET", f"/v1/jobs/{_id(job)}/events",
                                             headers=headers,
                                             timeout=httpx.Timeout(30.0, read=None)) as resp:
                    if resp.status_code >= 400:
                        await resp.aread()
                        raise_for_problem(resp)
                    async for line in resp.aiter_lines():
                        ev = parser.feed(line)
                        if ev is None:
                            continue
                        yield ev
                        if _is_final(ev):
                            return
                return
            except (httpx.ReadError, httpx.RemoteProtocolError) as exc:
                tries += 1
                if tries > reconnects:
                    raise translate(exc) from exc
                await asyncio.sleep(min(2.0, 0.2 * tries))


__all__ = ["AsyncClient", "Client", "Event"]
