"""/v1/jobs: LR range tests and optimizer trials as background jobs (202 + Location, poll, SSE,
cancel, list). Routes validate, translate and delegate to :class:`app.services.jobs.JobService`."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError as RedisResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from app.api.deps import SettingsDep
from app.core.problems import ProblemError, validation_problem
from app.core.unavailable import is_refusing_writes
from app.schemas import examples
from app.schemas.jobs import (
    OPTION_FIELDS,
    BatchItem,
    BatchResponse,
    JobLinks,
    JobPage,
    JobView,
    RangeTestBatchRequest,
    RangeTestJobRequest,
    TrialsJobRequest,
)
from app.services import events
from app.services.jobs import JobOptions, JobService, Submission
from app.services.limits import limit_problem, range_test_errors, trials_errors
from app.services.publish import ServiceUnavailable
from workers.jobstore import AsyncJobStore

router = APIRouter(tags=["jobs"])

_EVENT_ID = re.compile(r"^\d{1,20}-\d{1,20}$")
_PROBLEM = {"content": {"application/problem+json": {}}}
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "No such job", **_PROBLEM},
    422: {"description": "Invalid spec, or over a limit (names the field and the limit)",
          **_PROBLEM},
    503: {"description": "Redis or the broker is unavailable (Retry-After)", **_PROBLEM},
}


def _service(request: Request) -> JobService:
    return request.app.state.jobs


def _store(request: Request) -> AsyncJobStore:
    return request.app.state.jobs.store


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def job_view(rec: dict[str, Any], *, cached: bool = False, deduplicated: bool = False,
             full: bool = True) -> JobView:
    jid = rec["id"]
    data = {k: v for k, v in rec.items() if k not in ("links", "cached", "deduplicated")}
    if not full:
        data.pop("request", None)
        data.pop("result", None)
    return JobView.model_validate({**data, "cached": cached, "deduplicated": deduplicated,
                                   "links": JobLinks(self_=f"/v1/jobs/{jid}",
                                                     events=f"/v1/jobs/{jid}/events")})


def _submission_response(sub: Submission) -> JSONResponse:
    view = job_view(sub.record, cached=sub.cached, deduplicated=sub.deduplicated)
    status = 200 if sub.cached else 202
    return JSONResponse(view.model_dump(mode="json", by_alias=True), status_code=status,
                        headers={"Location": view.links.self_})


def _options(body: RangeTestJobRequest | TrialsJobRequest) -> JobOptions:
    return JobOptions(device=body.device, force=body.force, priority=body.priority,
                      labels=dict(body.labels))


def _spec(body: RangeTestJobRequest | TrialsJobRequest) -> dict[str, Any]:
    return body.model_dump(mode="json", exclude=set(OPTION_FIELDS))


_SUBMIT_DOC = (" Answers 202 with the job and a `Location` header; an identical request while "
               "that job is queued or running gets the same job (`deduplicated: true`); after it "
               "succeeded, 200 with the finished job and its stored result (`cached: true`) unless "
               "`force: true`. Specs over the configured limits (parameters, steps, batch size, "
               "estimated memory) are refused with 422 naming the field and the limit.")


async def _submit(kind: str, body: RangeTestJobRequest | TrialsJobRequest,
                  limit_errors: list[dict[str, Any]], request: Request) -> JSONResponse:
    """Refuse a spec over the limits (422 naming the field and the limit), else submit it."""
    if limit_errors:
        raise limit_problem(limit_errors)
    sub = await _service(request).submit(kind, _spec(body), _options(body), _request_id(request))
    return _submission_response(sub)


@router.post("/jobs/lr-range-test", status_code=202, response_model=JobView,
             responses={200: {"description": "cached result", "model": JobView}, **_ERRORS},
             summary="Start an LR range test", description="An LR range test as a job." + _SUBMIT_DOC)
async def submit_range_test(body: Annotated[RangeTestJobRequest,
                                             Body(openapi_examples=examples.RANGE_TEST)],
                            request: Request,
                            settings: SettingsDep) -> JSONResponse:
    return await _submit("lr-range-test", body, range_test_errors(body, settings), request)


@router.post("/jobs/trials", status_code=202, response_model=JobView,
             responses={200: {"description": "cached result", "model": JobView}, **_ERRORS},
             summary="Start short optimizer trials",
             description="Short trials of several optimizers/LRs as a job." + _SUBMIT_DOC)
async def submit_trials(body: Annotated[TrialsJobRequest, Body(openapi_examples=examples.TRIALS)],
                        request: Request,
                        settings: SettingsDep) -> JSONResponse:
    return await _submit("trials", body, trials_errors(body, settings), request)


@router.post("/jobs/lr-range-test/batch", status_code=202, response_model=BatchResponse,
             responses=_ERRORS, summary="Start many LR range tests",
             description="One job per item; each item is validated on its own and reported with "
                         "its own status (202 queued or joined, 200 cached, 422 refused, 503 not "
                         "submitted because Redis or the broker stopped answering — that item "
                         "and the ones after it). The answer is 202 if any item was accepted, "
                         "else 503 after an outage, else 422.")
async def submit_range_test_batch(body: RangeTestBatchRequest, request: Request,
                                  settings: SettingsDep) -> JSONResponse:
    if len(body.items) > settings.jobs_batch_max_items:
        raise ProblemError(422, "Too many items", f"items: {len(body.items)} items, at most "
                           f"{settings.jobs_batch_max_items} allowed", type_="validation-error",
                           errors=[{"field": "items", "value": len(body.items),
                                    "allowed": f"max length {settings.jobs_batch_max_items}",
                                    "message": "too many items"}])
    out: list[BatchItem] = []
    outage: str | None = None
    for i, raw in enumerate(body.items):
        try:
            item = RangeTestJobRequest.model_validate(raw)
        except ValidationError as exc:
            errs = [{**e, "loc": ("items", i, *e["loc"])} for e in exc.errors()]
            out.append(BatchItem(index=i, status=422, problem=validation_problem(errs).to_dict()))
            continue
        errors = range_test_errors(item, settings)
        if errors:
            errs = [{**e, "field": f"items[{i}].{e['field']}"} for e in errors]
            out.append(BatchItem(index=i, status=422, problem=limit_problem(errs).to_dict()))
            continue
        if outage is not None:  # Redis or the broker went away mid-batch: do not hammer it
            out.append(BatchItem(index=i, status=503, problem=_unavailable_item(i, outage)))
            continue
        try:
            sub = await _service(request).submit("lr-range-test", _spec(item), _options(item),
                                                 _request_id(request))
        except _OUTAGES as exc:
            if isinstance(exc, RedisResponseError) and not is_refusing_writes(exc):
                raise
            outage = f"{type(exc).__name__}"
            out.append(BatchItem(index=i, status=503, problem=_unavailable_item(i, outage)))
            continue
        out.append(BatchItem(index=i, status=200 if sub.cached else 202,
                             job=job_view(sub.record, cached=sub.cached,
                                          deduplicated=sub.deduplicated)))
    accepted = sum(1 for b in out if b.job is not None)
    resp = BatchResponse(accepted=accepted, rejected=len(out) - accepted, items=out)
    # The jobs already created are reported whatever happened after them; with none accepted,
    # an outage answers 503 (+ Retry-After), refusals alone 422.
    body = resp.model_dump(mode="json", by_alias=True)
    if accepted:
        return JSONResponse(body, status_code=202)
    # Nothing was queued: the answer is an error, so it is a problem document (RFC 9457) that
    # carries the per-item results as extension members.
    if outage is not None:
        raise ProblemError(503, "Service unavailable",
                           f"no item was queued: the job store or broker stopped answering ({outage})",
                           type_="service-unavailable",
                           headers={"Retry-After": str(settings.retry_after_s)}, **body)
    raise ProblemError(422, "Every item was refused",
                       f"all {len(out)} items were refused; each item's problem names the field",
                       type_="batch-refused", **body)


# What makes a batch item 503 rather than failing the whole request (ResponseError only when
# Redis refuses writes: OOM / READONLY / MISCONF).
_OUTAGES = (ServiceUnavailable, RedisConnectionError, RedisTimeoutError, RedisResponseError,
            ConnectionError, TimeoutError)


def _unavailable_item(index: int, cause: str) -> dict[str, Any]:
    return ProblemError(503, "Service unavailable",
                        f"items[{index}]: the job store or broker stopped answering during the "
                        f"batch ({cause}); submit this item again shortly",
                        type_="service-unavailable").to_dict()


def _encode_cursor(seq: int) -> str:
    return base64.urlsafe_b64encode(f"v1:{seq}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        version, seq = text.split(":", 1)
        if version != "v1":
            raise ValueError(version)
        return int(seq)
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise ProblemError(422, "Request validation failed", "cursor: not a cursor from this API",
                           type_="validation-error",
                           errors=[{"field": "cursor", "message": "invalid cursor",
                                    "allowed": "a next_cursor value from a previous page"}]
                           ) from exc


@router.get("/jobs", response_model=JobPage, responses=_ERRORS, summary="Recent jobs",
            description="Newest first, without results (GET a job for its result). Filter by "
                        "status and kind; follow `next_cursor` for more.")
async def list_jobs(request: Request, settings: SettingsDep,
                    status: Annotated[list[Literal["queued", "running", "succeeded", "failed",
                                                   "cancelled"]] | None, Query()] = None,
                    kind: Annotated[list[Literal["lr-range-test", "trials"]] | None,
                                    Query()] = None,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
                    cursor: Annotated[str | None, Query(max_length=100)] = None) -> JobPage:
    if limit > settings.jobs_list_max_limit:
        raise ProblemError(422, "Request validation failed",
                           f"limit: {limit} is over the limit (allowed: <= "
                           f"{settings.jobs_list_max_limit})", type_="validation-error",
                           errors=[{"field": "limit", "value": limit,
                                    "allowed": f"<= {settings.jobs_list_max_limit}",
                                    "message": "limit too large"}])
    before = _decode_cursor(cursor) if cursor else None
    recs, next_seq = await _store(request).page(
        before_seq=before, limit=limit, statuses=set(status) if status else None,
        kinds=set(kind) if kind else None)
    return JobPage(items=[job_view(r, full=False) for r in recs],
                   next_cursor=_encode_cursor(next_seq) if next_seq is not None else None)


async def _get_or_404(request: Request, job_id: str) -> dict[str, Any]:
    rec = await _service(request).get(job_id) if re.fullmatch(r"[0-9a-f]{32}", job_id) else None
    if rec is None:
        raise ProblemError(404, "Not found", f"no job with id {job_id!r} (or it has expired)",
                           type_="job-not-found", job_id=job_id)
    return rec


@router.get("/jobs/{job_id}", response_model=JobView, responses=_ERRORS, summary="A job",
            description="Status (queued, running, succeeded, failed, cancelled), progress, "
                        "timestamps, the result when it succeeded, a problem when it failed.")
async def get_job(job_id: str, request: Request) -> JSONResponse:
    view = job_view(await _get_or_404(request, job_id))
    return JSONResponse(view.model_dump(mode="json", by_alias=True))


@router.delete("/jobs/{job_id}", response_model=JobView,
               responses={**_ERRORS, 409: {"description": "already succeeded or failed",
                                           **_PROBLEM}},
               summary="Cancel a job",
               description="A queued job is cancelled at once (200) and never starts. A running "
                           "one is asked to stop (202, `cancel_requested: true`) and becomes "
                           "`cancelled` at its next step check, within seconds. Cancelling a "
                           "cancelled job is 200; a succeeded or failed one is 409.")
async def cancel_job(job_id: str, request: Request) -> JSONResponse:
    await _get_or_404(request, job_id)
    outcome, rec = await _service(request).cancel(job_id)
    if outcome == "missing" or rec is None:
        raise ProblemError(404, "Not found", f"no job with id {job_id!r}", type_="job-not-found")
    if outcome in ("succeeded", "failed"):
        raise ProblemError(409, "Job already ended", f"the job already {outcome}; nothing to "
                           "cancel", type_="job-ended", status_of_job=outcome)
    view = job_view(rec)
    return JSONResponse(view.model_dump(mode="json", by_alias=True),
                        status_code=202 if outcome == "requested" else 200)


@router.get("/jobs/{job_id}/events", responses={**_ERRORS, 200: {
                "description": "text/event-stream: `status` and `progress` events; the stream "
                               "ends after the final status event",
                "content": {"text/event-stream": {}}}},
            summary="Progress as Server-Sent Events",
            description="Resumable: send `Last-Event-ID` (browsers do on reconnect) or "
                        "`?last_event_id=`.")
async def job_events(job_id: str, request: Request, settings: SettingsDep,
                     last_event_id_header: Annotated[str | None,
                                                     Header(alias="Last-Event-ID")] = None,
                     last_event_id: Annotated[str | None, Query(max_length=45)] = None
                     ) -> Response:
    await _get_or_404(request, job_id)
    start = last_event_id_header or last_event_id or "0-0"
    if not _EVENT_ID.fullmatch(start):
        raise ProblemError(422, "Request validation failed",
                           "Last-Event-ID: not an event id from this stream",
                           type_="validation-error",
                           errors=[{"field": "Last-Event-ID", "message": "invalid event id",
                                    "allowed": "an id: value from this stream, e.g. 1700-0"}])
    body = events.open_stream(request.app.state.events, job_id, start,
                              get_job=_service(request).get,
                              is_disconnected=request.is_disconnected,
                              keepalive_s=settings.sse_keepalive_s)
    return StreamingResponse(body, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
