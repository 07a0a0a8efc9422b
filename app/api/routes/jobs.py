"""/v1/jobs: LR range tests and optimizer trials as background jobs (202 + Location, poll, SSE,
cancel, list). Routes validate, translate and delegate to :class:`app.services.jobs.JobService`.

Jobs belong to the tenant that submitted them: another tenant's job answers 404, as a job that
does not exist (no existence leak)."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import TypeAdapter, ValidationError
from redis.exceptions import ResponseError as RedisResponseError

from app.api.deps import CallerDep, JobServiceDep, LimiterDep, SettingsDep
from app.api.responses import problems, sse_response
from app.auth.keys import OPEN_TENANT, Principal
from app.auth.limits import Limiter
from app.core.config import Settings
from app.core.problems import ProblemError, field_problem, items_problem, validation_problem
from app.core.routing import ContractRoute
from app.core.unavailable import is_refusing_writes
from app.schemas import examples
from app.schemas.jobs import (
    CURSOR_PATTERN,
    EVENT_ID_ALLOWED,
    EVENT_ID_IN_RANGE,
    EVENT_ID_PATTERN,
    JOBS_PAGE_MAX,
    OPTION_FIELDS,
    BatchItem,
    JobBatchResult,
    JobKindName,
    JobLinks,
    JobPage,
    JobStatusName,
    JobView,
    RangeTestBatchRequest,
    RangeTestJobRequest,
    TrialsJobRequest,
)
from app.services import events
from app.services.jobs import JobOptions, JobService, Submission, TenantFull
from app.services.limits import range_test_errors, trials_errors
from app.services.plugins import plugin_errors
from app.services.publish import ServiceUnavailable
from workers.problems import UNAVAILABLE, body_field

router = APIRouter(tags=["jobs"], route_class=ContractRoute)

_JOB_ID = re.compile(r"[0-9a-f]{32}")
_RANGE_ITEM: TypeAdapter[RangeTestJobRequest] = TypeAdapter(RangeTestJobRequest)
JobId = Annotated[str, Path(description="a job id (32 hex digits)", max_length=64)]


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def job_view(rec: dict[str, Any], *, cached: bool = False, deduplicated: bool = False,
             full: bool = True) -> JobView:
    jid = rec["id"]
    data = {k: v for k, v in rec.items() if k in JobView.model_fields and k not in (
        "links", "cached", "deduplicated")}
    if not full:
        data.pop("request", None)
        data.pop("result", None)
    return JobView.model_validate({**data, "cached": cached, "deduplicated": deduplicated,
                                   "links": JobLinks(self_=f"/v1/jobs/{jid}",
                                                     events=f"/v1/jobs/{jid}/events")})


def _dump(view: JobView) -> dict[str, Any]:
    return view.model_dump(mode="json", by_alias=True)


def _submission_response(sub: Submission) -> JSONResponse:
    view = job_view(sub.record, cached=sub.cached, deduplicated=sub.deduplicated)
    return JSONResponse(_dump(view), status_code=200 if sub.cached else 202,
                        headers={"Location": view.links.self_})


def _options(body: RangeTestJobRequest | TrialsJobRequest) -> JobOptions:
    return JobOptions(device=body.device, force=body.force, priority=body.priority,
                      labels=dict(body.labels))


def _spec(body: RangeTestJobRequest | TrialsJobRequest) -> dict[str, Any]:
    return body.model_dump(mode="json", exclude=set(OPTION_FIELDS))


def _limit_problem(errors: list[dict[str, Any]], prefix: str = "") -> ProblemError:
    return items_problem([{**e, "field": prefix + body_field(e["field"])} for e in errors],
                         title="Spec exceeds a configured limit", type_="resource-limit")


def _tenant_full(limiter: Limiter, tenant: str, active: int) -> ProblemError:
    return ProblemError(
        429, "Too many active jobs",
        f"tenant {tenant!r} has {active} jobs queued or running, the most allowed is "
        f"{limiter.tenant_max_active}; retry when some have finished", type_="tenant-job-cap",
        headers={"Retry-After": "10", "RateLimit-Limit": str(limiter.tenant_max_active),
                 "RateLimit-Remaining": "0"},
        active_jobs=active, max_active_jobs=limiter.tenant_max_active)


def _caps_apply(settings: Settings) -> bool:
    return settings.effective_auth == "keys" or settings.limits_when_open


async def _refusal(kind: str, body: RangeTestJobRequest | TrialsJobRequest,
                   service: JobService, settings: Settings) -> ProblemError | None:
    """Why this spec cannot be submitted (over a limit, or a plug-in no worker has), or None."""
    limits = (range_test_errors(body, settings) if kind == "range_test"  # type: ignore[arg-type]
              else trials_errors(body, settings))  # type: ignore[arg-type]
    if limits:
        return _limit_problem(limits)
    missing = await plugin_errors(body.experiment, body.device, service.store,
                                  settings.worker_heartbeat_ttl_s)
    if missing:
        return items_problem(missing, title="A plug-in the workers lack",
                             type_="unknown-component")
    return None


async def _submit_one(kind: str, body: RangeTestJobRequest | TrialsJobRequest,
                      caller: Principal, service: JobService, limiter: Limiter,
                      settings: Settings, request: Request) -> Submission:
    try:
        return await service.submit(kind, _spec(body), _options(body), _request_id(request),
                                    tenant=caller.tenant,
                                    max_active=limiter.tenant_max_active
                                    if _caps_apply(settings) else 0)
    except TenantFull as full:
        raise _tenant_full(limiter, caller.tenant, full.active) from None


_SUBMIT_DOC = (" Answers 202 with the job and a `Location` header; an identical request of the "
               "same tenant while that job is queued or running gets the same job "
               "(`deduplicated: true`); after it succeeded, 200 with the finished job and its "
               "stored result (`cached: true`) unless `force: true`. Specs over the configured "
               "limits (parameters, steps, batch size, estimated memory), or naming a plug-in no "
               "live worker has, are refused with 422 naming the field and what is allowed.")

_SUBMIT_RESPONSES = {200: {"description": "An identical job already succeeded: it, with its "
                                          "result (`cached: true`)", "model": JobView},
                     202: {"description": "Queued (or joined an identical queued or running "
                                          "job); `Location` names it",
                           "headers": {"Location": {"schema": {"type": "string"},
                                                    "description": "the job's URL"}}},
                     **problems(401, 422, 429, 503)}


@router.post("/jobs/lr-range-test", status_code=202, response_model=JobView,
             operation_id="submit_range_test", responses=_SUBMIT_RESPONSES,
             summary="Start an LR range test",
             description="An LR range test as a job (kind `range_test`)." + _SUBMIT_DOC)
async def submit_range_test(body: Annotated[RangeTestJobRequest,
                                             Body(openapi_examples=examples.RANGE_TEST)],
                            request: Request, caller: CallerDep, service: JobServiceDep,
                            limiter: LimiterDep, settings: SettingsDep) -> JSONResponse:
    refusal = await _refusal("range_test", body, service, settings)
    if refusal is not None:
        raise refusal
    return _submission_response(await _submit_one("range_test", body, caller, service, limiter,
                                                  settings, request))


@router.post("/jobs/trials", status_code=202, response_model=JobView,
             operation_id="submit_trials", responses=_SUBMIT_RESPONSES,
             summary="Start short optimizer trials",
             description="Short trials of several optimizers/LRs as a job (kind `trials`)."
                         + _SUBMIT_DOC)
async def submit_trials(body: Annotated[TrialsJobRequest, Body(openapi_examples=examples.TRIALS)],
                        request: Request, caller: CallerDep, service: JobServiceDep,
                        limiter: LimiterDep, settings: SettingsDep) -> JSONResponse:
    refusal = await _refusal("trials", body, service, settings)
    if refusal is not None:
        raise refusal
    return _submission_response(await _submit_one("trials", body, caller, service, limiter,
                                                  settings, request))


def _strict_item(raw: dict[str, Any]) -> RangeTestJobRequest:
    # Through JSON, strictly, as the single-job route validates (app.core.routing): `true` is not
    # a number there either.
    return _RANGE_ITEM.validate_json(json.dumps(raw, allow_nan=False), strict=True)


@router.post("/jobs/lr-range-test/batch", status_code=202, response_model=JobBatchResult,
             operation_id="submit_range_test_batch",
             responses={202: {"description": "At least one item was accepted"},
                        **problems(401, 422, 429, 503)},
             summary="Start many LR range tests",
             description="One job per item, answered in the shape of every batch "
                         "(`succeeded`, `failed`, `items[]` with `index`, `status` and `result` "
                         "or `problem`). Each item is validated on its own and has its own "
                         "status (202 queued or joined, 200 cached, 422 refused, 429 over the "
                         "tenant's job cap, 503 not submitted because Redis or the broker "
                         "stopped answering — that item and the ones after it). The answer is "
                         "202 if any item was accepted, else a problem: 503 after an outage, "
                         "else 422 (with the items as an extension member).",
             openapi_extra={"requestBody": {"content": {"application/json": {"examples": {
                 "two": {"summary": "Two range tests",
                         "value": {"items": [examples.RANGE_TEST["digits_cnn"]["value"]] * 2}}
             }}}}})
async def submit_range_test_batch(body: RangeTestBatchRequest, request: Request,
                                  caller: CallerDep, service: JobServiceDep,
                                  limiter: LimiterDep, settings: SettingsDep) -> JSONResponse:
    if len(body.items) > settings.jobs_batch_max_items:
        raise field_problem("body.items", f"{len(body.items)} items, at most "
                            f"{settings.jobs_batch_max_items} allowed", value=len(body.items),
                            allowed=f"max length {settings.jobs_batch_max_items}")
    out: list[BatchItem[JobView]] = []
    outage: str | None = None
    for i, raw in enumerate(body.items):
        try:
            item = _strict_item(raw)
        except ValidationError as exc:
            errs = [{**e, "loc": ("body", "items", i, *e["loc"])} for e in exc.errors()]
            out.append(BatchItem(index=i, status=422,
                                 problem=validation_problem(errs).to_dict()))
            continue
        refusal = await _refusal("range_test", item, service, settings)
        if refusal is not None:
            doc = refusal.to_dict()
            for e in doc.get("errors", []):
                e["field"] = e["field"].replace("body.", f"body.items[{i}].", 1)
            out.append(BatchItem(index=i, status=422, problem=doc))
            continue
        if outage is not None:  # Redis or the broker went away mid-batch: do not hammer it
            out.append(BatchItem(index=i, status=503, problem=_unavailable_item(i, outage)))
            continue
        try:
            sub = await _submit_one("range_test", item, caller, service, limiter, settings,
                                    request)
        except ProblemError as exc:
            if exc.status not in (422, 429):
                raise
            doc = exc.to_dict()
            for e in doc.get("errors", []):
                e["field"] = e["field"].replace("body.", f"body.items[{i}].", 1)
            out.append(BatchItem(index=i, status=exc.status, problem=doc))
            continue
        except (ServiceUnavailable, RedisResponseError, *UNAVAILABLE) as exc:
            if isinstance(exc, RedisResponseError) and not is_refusing_writes(exc):
                raise
            outage = f"{type(exc).__name__}"
            out.append(BatchItem(index=i, status=503, problem=_unavailable_item(i, outage)))
            continue
        out.append(BatchItem(index=i, status=200 if sub.cached else 202,
                             result=job_view(sub.record, cached=sub.cached,
                                             deduplicated=sub.deduplicated)))
    ok = sum(1 for b in out if b.result is not None)
    doc = JobBatchResult(succeeded=ok, failed=len(out) - ok, items=out).model_dump(
        mode="json", by_alias=True, exclude_none=True)
    # The jobs already created are reported whatever happened after them; with none accepted,
    # the answer is an error, so a problem document (RFC 9457) with the items as extensions.
    if ok:
        return JSONResponse(doc, status_code=202)
    if outage is not None:
        raise ProblemError(503, "Service unavailable",
                           f"no item was queued: the job store or broker stopped answering "
                           f"({outage})", type_="service-unavailable",
                           headers={"Retry-After": str(settings.retry_after_s)}, **doc)
    raise ProblemError(422, "Every item was refused",
                       f"all {len(out)} items were refused; each item's problem names the field",
                       type_="batch-refused", **doc)


def _unavailable_item(index: int, cause: str) -> dict[str, Any]:
    return ProblemError(503, "Service unavailable",
                        f"body.items[{index}]: the job store or broker stopped answering during "
                        f"the batch ({cause}); submit this item again shortly",
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
        raise field_problem("query.cursor", "not a cursor from this API",
                            allowed="a next_cursor value from a previous page") from exc


def _label_filter(labels: list[str]) -> dict[str, str]:
    wanted: dict[str, str] = {}
    for i, text in enumerate(labels):
        key, sep, value = text.partition(":")
        if not sep or not key:
            raise field_problem(f"query.label[{i}]", "a label filter is key:value",
                                value=text, allowed="key:value, e.g. team:vision")
        wanted[key] = value
    return wanted


@router.get("/jobs", response_model=JobPage, operation_id="list_jobs",
            responses=problems(401, 422, 429, 503), summary="Recent jobs",
            description="The caller's tenant's jobs, newest first, without results (GET a job "
                        "for its result). Filter by `status`, `kind` and `label` (each "
                        "repeatable; labels must all match); follow `next_cursor` for more.")
async def list_jobs(caller: CallerDep, service: JobServiceDep, settings: SettingsDep,
                    status: Annotated[list[JobStatusName] | None, Query(max_length=5)] = None,
                    kind: Annotated[list[JobKindName] | None, Query(max_length=2)] = None,
                    label: Annotated[list[Annotated[str, Query(max_length=265)]] | None, Query(
                        max_length=16, description="key:value; repeat for several (all must "
                                                   "match)")] = None,
                    limit: Annotated[int, Query(ge=1, le=JOBS_PAGE_MAX)] = 20,
                    cursor: Annotated[str | None, Query(pattern=CURSOR_PATTERN,
                                                        description="next_cursor of the "
                                                                    "previous page")] = None,
                    ) -> JobPage:
    if limit > settings.jobs_list_max_limit:
        raise field_problem("query.limit", "limit too large", value=limit,
                            allowed=f"<= {settings.jobs_list_max_limit}")
    before = _decode_cursor(cursor) if cursor else None
    wanted = _label_filter(label or [])
    tenant = caller.tenant

    def visible(rec: dict[str, Any]) -> bool:
        labels = rec.get("labels") or {}
        return (rec.get("tenant") or OPEN_TENANT) == tenant and all(
            labels.get(k) == v for k, v in wanted.items())

    recs, next_seq = await service.store.page(
        before_seq=before, limit=limit, statuses=set(status) if status else None,
        kinds=set(kind) if kind else None, tenant=tenant, where=visible)
    return JobPage(items=[job_view(r, full=False) for r in recs],
                   next_cursor=_encode_cursor(next_seq) if next_seq is not None else None)


async def owned_job_or_404(service: JobService, job_id: str, caller: Principal) -> dict[str, Any]:
    rec = await service.get(job_id) if _JOB_ID.fullmatch(job_id) else None
    if rec is None or (rec.get("tenant") or OPEN_TENANT) != caller.tenant:
        raise _not_found()
    return rec


def _not_found() -> ProblemError:
    # The id is in `instance` (the path) only, once: an answer of bounded size.
    return ProblemError(404, "Not found", "no such job (or it has expired)",
                        type_="job-not-found")


@router.get("/jobs/{job_id}", response_model=JobView, operation_id="get_job",
            responses=problems(401, 404, 429, 503), summary="A job",
            description="Status (queued, running, succeeded, failed, cancelled), progress "
                        "(complete once succeeded), timestamps, the typed `result` when it "
                        "succeeded (by `result.kind`), a `problem` when it failed.")
async def get_job(job_id: JobId, caller: CallerDep, service: JobServiceDep) -> JSONResponse:
    return JSONResponse(_dump(job_view(await owned_job_or_404(service, job_id, caller))))


@router.delete("/jobs/{job_id}", response_model=JobView, operation_id="cancel_job",
               responses={200: {"description": "Cancelled (it was queued, or already "
                                               "cancelled)"},
                          202: {"description": "Running: asked to stop "
                                               "(`cancel_requested: true`); it becomes "
                                               "`cancelled` at its next step check",
                                "model": JobView},
                          **problems(401, 404, 409, 429, 503)},
               summary="Cancel a job",
               description="A queued job is cancelled at once (200) and never starts. A running "
                           "one is asked to stop (202, `cancel_requested: true`) and becomes "
                           "`cancelled` at its next step check, within seconds. Cancelling a "
                           "cancelled job is 200; a succeeded or failed one is 409.")
async def cancel_job(job_id: JobId, caller: CallerDep, service: JobServiceDep) -> JSONResponse:
    await owned_job_or_404(service, job_id, caller)
    outcome, rec = await service.cancel(job_id)
    if outcome == "missing" or rec is None:
        raise _not_found()
    if outcome in ("succeeded", "failed"):
        raise ProblemError(409, "Job already ended", f"the job already {outcome}; nothing to "
                           "cancel", type_="job-ended", job_status=outcome)
    return JSONResponse(_dump(job_view(rec)), status_code=202 if outcome == "requested" else 200)


@router.get("/jobs/{job_id}/events", operation_id="stream_job_events",
            response_class=StreamingResponse,
            responses={200: sse_response(), **problems(401, 404, 422, 429, 503)},
            summary="Progress as Server-Sent Events",
            description="`text/event-stream` of `status` and `progress` events; each has an "
                        "`id` (a Redis stream id, `<ms>-<seq>`). The last event is a `status` "
                        "event with a terminal status (succeeded, failed, cancelled) or "
                        "`expired`; then the stream ends. Resumable: send `Last-Event-ID` "
                        "(browsers do on reconnect) or `?last_event_id=`.")
async def stream_job_events(
        job_id: JobId, request: Request, caller: CallerDep, service: JobServiceDep,
        settings: SettingsDep,
        last_event_id_header: Annotated[str | None, Header(
            alias="Last-Event-ID", pattern=EVENT_ID_PATTERN, max_length=41,
            description=f"resume after this event id ({EVENT_ID_ALLOWED})"),
            EVENT_ID_IN_RANGE] = None,
        last_event_id: Annotated[str | None, Query(
            pattern=EVENT_ID_PATTERN, max_length=41,
            description="resume after this event id (for clients that cannot set headers; "
                        f"{EVENT_ID_ALLOWED})"), EVENT_ID_IN_RANGE] = None) -> Response:
    await owned_job_or_404(service, job_id, caller)
    start = last_event_id_header or last_event_id or "0-0"
    body = events.open_stream(request.app.state.events, job_id, start, get_job=service.get,
                              is_disconnected=request.is_disconnected,
                              keepalive_s=settings.sse_keepalive_s,
                              tenant=caller.tenant if settings.effective_auth == "keys" else None)
    return StreamingResponse(body, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
