"""Advice routes: validate, translate, delegate to ``optim_core.advice`` (torch-free).

``POST /v1/advice``, ``/v1/advice/batch``, ``/v1/schedules/preview`` and ``/v1/diagnose``.
Advice bodies are serialised once, to bytes, and cached as those bytes; the ``cached`` flag is
spliced in front, so a cache hit costs no JSON parse and no text encoding.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Body, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from app.api.deps import CacheDep, CallerDep, SettingsDep
from app.api.responses import problems
from app.core.problems import (
    ProblemError,
    field_problem,
    internal_error,
    problem_for,
    render,
    validation_problem,
)
from app.core.routing import ContractRoute
from app.schemas import examples
from app.schemas.jobs import AdviceBatchRequest, BatchResult
from app.services.advice_cache import cache_key
from optim_core.advice.diagnose import Diagnosis, TrainingLog, diagnose
from optim_core.advice.engine import advise
from optim_core.advice.models import Advice, AdviceRequest, AdviceResponse
from optim_core.errors import SpecError
from optim_core.numerics.schedules import MAX_SAMPLE_POINTS, sample
from optim_core.specs.schedule import ScheduleSpec
from workers.problems import spec_error_item

log = logging.getLogger("app.advice")
router = APIRouter(tags=["advice"], route_class=ContractRoute)
JSON = "application/json"
_ITEM = TypeAdapter(AdviceRequest)  # compiled once, not per request
_BODY = TypeAdapter(Advice)  # dump_json gives bytes: no str to encode again
_ERRORS = problems(401, 422, 429, 503)
AdviceBatchResult = BatchResult[AdviceResponse]


def _with_cached(body: bytes, cached: bool) -> bytes:
    return (b'{"cached":true,' if cached else b'{"cached":false,') + body[1:]


def _advice_json(req: AdviceRequest) -> bytes:
    return _BODY.dump_json(advise(req))


@router.post("/advice", response_model=AdviceResponse, responses=_ERRORS,
             operation_id="advise", summary="Advice for one training run")
async def post_advice(req: Annotated[AdviceRequest, Body(openapi_examples=examples.ADVICE)],
                      cache: CacheDep, caller: CallerDep) -> Response:
    """Optimizer, schedule, clipping and search ranges for one training run, each value
    explained by the rule ids it came from."""
    key = cache_key(req)
    hit = (await cache.get_many([key]))[0]
    if hit is not None:
        return Response(_with_cached(hit, True), media_type=JSON)
    try:
        body = _advice_json(req)
    except SpecError as exc:  # a request the engine cannot advise on (a reference scaled too low)
        raise problem_for(exc) from exc
    await cache.set_many({key: body})
    return Response(_with_cached(body, False), media_type=JSON)


def _prefixed(errors: list[Any], index: int) -> list[dict[str, Any]]:
    return [{**e, "loc": ("body", "items", index, *e.get("loc", ()))} for e in errors]


@router.post("/advice/batch", response_model=AdviceBatchResult, responses=_ERRORS,
             operation_id="advise_batch", summary="Advice for many training runs",
             openapi_extra={"requestBody": {"content": {"application/json": {"examples": {
                 "two": {"summary": "Two specs", "value": {"items": [
                     examples.ADVICE["cnn"]["value"], examples.ADVICE["lora"]["value"]]}}}}}}})
async def post_advice_batch(batch: AdviceBatchRequest, settings: SettingsDep,
                            cache: CacheDep, caller: CallerDep) -> Response:
    """Many specs, one result each, in the shape of every batch answer (`succeeded`, `failed`,
    `items[]` with `index`, `status` and `result` or `problem`); a bad item is a problem
    document in its slot and the request is still 200."""
    limit = settings.advice_batch_max_items
    if len(batch.items) > limit:
        raise field_problem("body.items", f"at most {limit} items per batch, got "
                            f"{len(batch.items)}", allowed=f"max length {limit}",
                            value=len(batch.items))
    # Validating, hashing and advising up to `limit` items is CPU work of tens of milliseconds:
    # it runs in the threadpool so that the event loop keeps serving other requests meanwhile.
    # Only the cache calls (async Redis) stay on the loop.
    parsed, keys = await run_in_threadpool(_parse_items, batch.items)
    hits = dict(zip(keys, await cache.get_many(list(keys.values())), strict=True))
    out, fresh = await run_in_threadpool(_answer_items, parsed, keys, hits)
    await cache.set_many(fresh)
    return Response(out, media_type=JSON)


def _parse_items(items: list[dict[str, Any]]
                 ) -> tuple[list[AdviceRequest | bytes], dict[int, str]]:
    """Each item validated (or its problem document, as JSON), and the cache key of each valid
    one by index."""
    parsed: list[AdviceRequest | bytes] = []
    for i, item in enumerate(items):
        try:
            # Through JSON, strictly, as a single body is validated (app.core.routing).
            parsed.append(_ITEM.validate_json(json.dumps(item, allow_nan=False), strict=True))
        except ValidationError as exc:
            problem = validation_problem(_prefixed(exc.errors(), i))
            parsed.append(_problem_json(problem, i))
    keys = {i: cache_key(p) for i, p in enumerate(parsed) if isinstance(p, AdviceRequest)}
    return parsed, keys


def _answer_items(parsed: list[AdviceRequest | bytes], keys: dict[int, str],
                  hits: dict[int, bytes | None]) -> tuple[bytes, dict[str, bytes]]:
    """The batch's JSON body, advising each item the cache missed (once per distinct key), and
    those fresh bodies by key, for the cache."""
    fresh: dict[str, bytes] = {}
    parts: list[bytes] = []
    ok = 0
    for i, p in enumerate(parsed):
        if isinstance(p, bytes):
            parts.append(b'{"index":%d,"status":422,"problem":%b}' % (i, p))
            continue
        body = hits.get(i)
        cached = body is not None
        if body is None:
            body = fresh.get(keys[i])
            if body is None:
                try:
                    body = _advice_json(p)
                except Exception as exc:  # one item's failure stays in its slot
                    problem = _item_problem(exc, i)
                    parts.append(b'{"index":%d,"status":%d,"problem":%b}'
                                 % (i, problem.status, _problem_json(problem, i)))
                    continue
            fresh[keys[i]] = body
        ok += 1
        parts.append(b'{"index":%d,"status":200,"result":%b}' % (i, _with_cached(body, cached)))
    out = (b'{"succeeded":%d,"failed":%d,"items":[' % (ok, len(parsed) - ok)
           + b",".join(parts) + b"]}")
    return out, fresh


def _item_problem(exc: Exception, index: int) -> ProblemError:
    """The problem of one item the engine failed on: a SpecError names its field inside the
    item (``body.items[3].reference.lr``); anything else is that item's 500, logged, so that the
    other items are still answered."""
    if isinstance(exc, SpecError):
        item = spec_error_item(exc)
        item["field"] = f"body.items[{index}]" + item["field"].removeprefix("body")
        return problem_for(exc, errors=[item])
    log.error("advice failed for batch item %d", index, exc_info=exc)
    return internal_error()


def _problem_json(problem: ProblemError, index: int) -> bytes:
    return render(problem.to_dict(f"/v1/advice/batch#items[{index}]"))


class SchedulePreviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schedule: ScheduleSpec
    total_steps: int = Field(ge=1, le=100_000_000)
    n_points: int = Field(default=50, ge=2, le=MAX_SAMPLE_POINTS)


class SchedulePreview(BaseModel):
    schedule: dict[str, Any]
    rule_ids: list[str]
    steps: list[int]
    lrs: list[float]


@router.post("/schedules/preview", response_model=SchedulePreview, responses=_ERRORS,
             operation_id="preview_schedule", summary="A schedule's LR at evenly spaced steps")
async def post_schedule_preview(
        req: Annotated[SchedulePreviewRequest, Body(openapi_examples=examples.SCHEDULE_PREVIEW)],
        caller: CallerDep) -> SchedulePreview:
    """The LR at ``n_points`` evenly spaced steps of a schedule (both ends included)."""
    try:
        points = sample(req.schedule.build(), req.total_steps, req.n_points)
    except SpecError as exc:
        if not exc.field:
            exc.field = "schedule"
        raise problem_for(exc) from exc
    return SchedulePreview(schedule=req.schedule.model_dump(mode="json"),
                           rule_ids=list(type(req.schedule).rule_ids),
                           steps=[s for s, _ in points], lrs=[lr for _, lr in points])


# A plain ``def`` on purpose: FastAPI runs it in the threadpool, since diagnosing a log of up to
# MAX_POINTS values is CPU work that would otherwise hold up the event loop.
@router.post("/diagnose", response_model=Diagnosis, responses=_ERRORS,
             operation_id="diagnose", summary="Findings for a training log")
def post_diagnose(
        log: Annotated[TrainingLog, Body(openapi_examples=examples.DIAGNOSE)],
        caller: CallerDep) -> Diagnosis:
    """Findings of O7.5 and W8 for a training log, each with evidence and the change to make."""
    return diagnose(log)
