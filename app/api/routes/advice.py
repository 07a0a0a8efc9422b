"""Advice routes: validate, translate, delegate to ``optim_core.advice`` (torch-free).

``POST /v1/advice``, ``/v1/advice/batch``, ``/v1/schedules/preview`` and ``/v1/diagnose``.
Advice bodies are serialised once (``model_dump_json``) and cached as that string; the ``cached``
flag is spliced in front so a cache hit costs no JSON parse.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request, Response
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from app.api.deps import SettingsDep
from app.core.problems import PROBLEM_JSON, ProblemError, validation_problem
from app.schemas import examples
from app.services.advice_cache import AdviceCache, cache_key
from optim_core.advice.diagnose import Diagnosis, TrainingLog, diagnose
from optim_core.advice.engine import advise
from optim_core.advice.models import AdviceRequest, AdviceResponse, BatchAdviceRequest
from optim_core.errors import SpecError
from optim_core.numerics.schedules import MAX_SAMPLE_POINTS, sample
from optim_core.specs.schedule import ScheduleSpec

router = APIRouter(tags=["advice"])
JSON = "application/json"
_ITEM = TypeAdapter(AdviceRequest)  # compiled once, not per request
_PROBLEM = {"content": {PROBLEM_JSON: {}}, "description": "problem+json (RFC 9457)"}


async def get_advice_cache(request: Request) -> AdviceCache:
    """The app's advice cache, created with the Redis clients in the lifespan. ``async`` so
    that FastAPI calls it on the loop: a sync dependency costs a threadpool hop per request."""
    return request.app.state.advice_cache


CacheDep = Annotated[AdviceCache, Depends(get_advice_cache)]


def _with_cached(body: str, cached: bool) -> str:
    return ('{"cached":true,' if cached else '{"cached":false,') + body[1:]


@router.post("/advice", response_model=AdviceResponse, responses={422: _PROBLEM})
async def post_advice(req: Annotated[AdviceRequest, Body(openapi_examples=examples.ADVICE)],
                      cache: CacheDep) -> Response:
    """Optimizer, schedule, clipping and search ranges for one training run, each value
    explained by the rule ids it came from."""
    key = cache_key(req)
    hit = (await cache.get_many([key]))[0]
    if hit is not None:
        return Response(_with_cached(hit, True), media_type=JSON)
    body = advise(req).model_dump_json()
    await cache.set_many({key: body})
    return Response(_with_cached(body, False), media_type=JSON)


def _prefixed(errors: list[Any], index: int) -> list[dict[str, Any]]:
    return [{**e, "loc": ("items", index, *e.get("loc", ()))} for e in errors]


@router.post("/advice/batch", responses={422: _PROBLEM})
async def post_advice_batch(batch: BatchAdviceRequest, settings: SettingsDep,
                            cache: CacheDep) -> Response:
    """Many specs, one result each; a bad item is a problem document in its slot and the
    request is still 200."""
    limit = settings.advice_batch_max_items
    if len(batch.items) > limit:
        raise validation_problem([{"loc": ("body", "items"), "type": "too_long",
                                   "msg": f"at most {limit} items per batch, got "
                                          f"{len(batch.items)}",
                                   "ctx": {"max_length": limit}, "input": None}])
    # Validating, hashing and advising up to `limit` items is CPU work of tens of milliseconds:
    # it runs in the threadpool so that the event loop keeps serving other requests meanwhile.
    # Only the cache calls (async Redis) stay on the loop.
    parsed, keys = await run_in_threadpool(_parse_items, batch.items)
    hits = dict(zip(keys, await cache.get_many(list(keys.values())), strict=True))
    out, fresh = await run_in_threadpool(_answer_items, parsed, keys, hits)
    await cache.set_many(fresh)
    return Response(out, media_type=JSON)


def _parse_items(items: list[dict[str, Any]]
                 ) -> tuple[list[AdviceRequest | str], dict[int, str]]:
    """Each item validated (or its problem document, as JSON), and the cache key of each valid
    one by index."""
    parsed: list[AdviceRequest | str] = []
    for i, item in enumerate(items):
        try:
            parsed.append(_ITEM.validate_python(item))
        except ValidationError as exc:
            problem = validation_problem(_prefixed(exc.errors(), i))
            parsed.append(_problem_json(problem, i))
    keys = {i: cache_key(p) for i, p in enumerate(parsed) if isinstance(p, AdviceRequest)}
    return parsed, keys


def _answer_items(parsed: list[AdviceRequest | str], keys: dict[int, str],
                  hits: dict[int, str | None]) -> tuple[str, dict[str, str]]:
    """The batch's JSON body, advising each item the cache missed (once per distinct key), and
    those fresh bodies by key, for the cache."""
    fresh: dict[str, str] = {}
    parts: list[str] = []
    ok = 0
    for i, p in enumerate(parsed):
        if isinstance(p, str):
            parts.append(f'{{"index":{i},"status":422,"problem":{p}}}')
            continue
        body = hits.get(i)
        cached = body is not None
        if body is None:
            body = fresh.get(keys[i]) or advise(p).model_dump_json()
            fresh[keys[i]] = body
        ok += 1
        parts.append(f'{{"index":{i},"status":200,"advice":{_with_cached(body, cached)}}}')
    out = (f'{{"succeeded":{ok},"failed":{len(parsed) - ok},"results":[' + ",".join(parts)
           + "]}")
    return out, fresh


def _problem_json(problem: ProblemError, index: int) -> str:
    return json.dumps(problem.to_dict(f"/v1/advice/batch#items[{index}]"), ensure_ascii=False)


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


@router.post("/schedules/preview", response_model=SchedulePreview, responses={422: _PROBLEM})
async def post_schedule_preview(
        req: Annotated[SchedulePreviewRequest, Body(openapi_examples=examples.SCHEDULE_PREVIEW)],
) -> SchedulePreview:
    """The LR at ``n_points`` evenly spaced steps of a schedule (both ends included)."""
    try:
        points = sample(req.schedule.build(), req.total_steps, req.n_points)
    except SpecError as exc:
        raise validation_problem([{"loc": ("body", exc.field or "schedule"), "msg": str(exc),
                                   "type": "value_error", "input": exc.value,
                                   "ctx": {"expected": exc.allowed} if exc.allowed else {}}]
                                 ) from exc
    return SchedulePreview(schedule=req.schedule.model_dump(mode="json"),
                           rule_ids=list(type(req.schedule).rule_ids),
                           steps=[s for s, _ in points], lrs=[lr for _, lr in points])


# A plain ``def`` on purpose: FastAPI runs it in the threadpool, since diagnosing a log of up to
# MAX_POINTS values is CPU work that would otherwise hold up the event loop.
@router.post("/diagnose", response_model=Diagnosis, responses={422: _PROBLEM})
def post_diagnose(
        log: Annotated[TrainingLog, Body(openapi_examples=examples.DIAGNOSE)]) -> Diagnosis:
    """Findings of O7.5 and W8 for a training log, each with evidence and the change to make."""
    return diagnose(log)
