"""/v1/rules: every rule the advice can cite, in words, with its source and parameters.

The rows are the rules table the engine fires (``optim_core.advice.rules.RULES``); the words are
its own summary of the guideline (``condition`` → ``effect``), never the seed files. ``sets`` is
read off the engine itself: the advice fields whose rationale cites the rule when the engine
advises the shipped example requests (app/schemas/examples.py) and a spread of variants."""

from __future__ import annotations

import functools
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from app.api.deps import CallerDep
from app.api.responses import problems
from app.core.problems import ProblemError
from app.core.routing import ContractRoute
from app.schemas import examples
from optim_core.advice.engine import advise
from optim_core.advice.models import RULES_PATH, AdviceRequest
from optim_core.advice.rules import RULES, RULES_VERSION, Rule

router = APIRouter(tags=["rules"], route_class=ContractRoute)


class RuleView(BaseModel):
    id: str = Field(examples=["O7.3"])
    kind: str = Field(description="update_rule, decision, refusal, literature, diagnostic or "
                                  "informational")
    text: str = Field(description="the rule in words: when it applies, and what it does")
    condition: str
    effect: str
    source: str = Field(description="the guideline section or paper it comes from")
    params: dict[str, Any] = Field(description="the constants the engine reads from this rule")
    sets: list[str] = Field(description="advice fields whose rationale cites this rule")
    link: str


class RuleList(BaseModel):
    rules_version: str
    items: list[RuleView]


def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple | list):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    return v


def _variants() -> list[dict[str, Any]]:
    base = [e["value"] for e in examples.ADVICE.values()]
    more = []
    for b in base:
        for opt in ("adamw", "sgd", "lamb", "adafactor", "lion", "adagrad", "rmsprop"):
            more.append({**b, "optimizer": opt})
        more.append({**b, "batch_size": 16384})
    return base + more


@functools.cache
def _sets() -> dict[str, list[str]]:
    seen: dict[str, set[str]] = {}
    for body in _variants():
        try:
            advice = advise(AdviceRequest.model_validate(body))
        except Exception:
            continue
        for entry in advice.rationale:
            for rid in entry.rule_ids:
                seen.setdefault(rid, set()).add(entry.field)
    return {k: sorted(v) for k, v in seen.items()}


def _view(rule: Rule) -> RuleView:
    return RuleView(id=rule.id, kind=rule.kind, text=f"When {rule.condition}: {rule.effect}.",
                    condition=rule.condition, effect=rule.effect, source=rule.source,
                    params=_jsonable(rule.params), sets=_sets().get(rule.id, []),
                    link=RULES_PATH + rule.id)


_BY_ID = {r.id: r for r in RULES}


@router.get("/rules", response_model=RuleList, operation_id="list_rules",
            responses=problems(401, 429), summary="Every rule the advice can cite")
async def list_rules(caller: CallerDep) -> RuleList:
    return RuleList(rules_version=RULES_VERSION, items=[_view(r) for r in RULES])


@router.get("/rules/{rule_id}", response_model=RuleView, operation_id="get_rule",
            responses=problems(401, 404, 429), summary="One rule, by the id advice cites")
async def get_rule(rule_id: Annotated[str, Path(max_length=32, examples=["O7.3"])],
                   caller: CallerDep) -> RuleView:
    rule = _BY_ID.get(rule_id)
    if rule is None:
        raise ProblemError(404, "Not found", "no rule with this id; GET /v1/rules lists them",
                           type_="rule-not-found")
    return _view(rule)
