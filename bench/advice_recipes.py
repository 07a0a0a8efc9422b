"""How often the advice agrees with published training recipes, overall, per task, and
leave-one-family-out (each family scored by an engine whose fitted anchors exclude it).

    .venv/bin/python bench/advice_recipes.py [--misses] [--json out.json]

The recipes are data (tests/advice/recipes/published.json): each names its source, the request
that describes the run (batch in examples, tokens via seq_len, steps), and the published values.
Tolerances: optimizer family equal (adam ≈ adamw); LR within 2× / 3× (of the range, where the
paper gives a grid); weight decay within 3× (a published 0 accepts ≤ 0.01, W10a's "some decay";
tiny values ≤ 1e-5 count as 0); warmup within 3× or both under 1 % of the run; schedule shape
equal (cosine, linear, step, constant, inverse_sqrt); clipping on/off equal. A value the source
does not state is not scored.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
from collections import defaultdict
from typing import Any

from optim_core.advice.engine import Engine
from optim_core.advice.models import AdviceRequest

ROOT = pathlib.Path(__file__).resolve().parents[1]
RECIPES = ROOT / "tests" / "advice" / "recipes" / "published.json"
COLUMNS = ("optimizer", "lr2", "lr3", "wd3", "warmup3", "schedule", "clip")
TARGETS = {"lr2": 0.85, "lr3": 0.95, "optimizer": 0.98, "wd3": 0.80, "warmup3": 0.70,
           "schedule": 0.85, "clip": 0.90}
FAMILY_OF = {"adam": "adam", "adamw": "adam", "adam_l2": "adam"}
SHAPE = {"warmup_cosine": "cosine", "cosine": "cosine", "warmup_linear": "linear",
         "linear": "linear", "warmup_step": "step", "step": "step", "constant": "constant",
         "linear_warmup": "constant", "inverse_sqrt": "inverse_sqrt"}
TASK_OF = {"llm_pretrain": "llm_pretrain", "encoder_pretrain": "encoder_pretrain",
           "encoder_finetune": "encoder_finetune", "seq2seq": "seq2seq",
           "vision_transformer": "vision", "image_classification_cnn": "vision",
           "llm_finetune_full": "llm_finetune", "llm_finetune_peft": "llm_peft",
           "llm_preference": "llm_preference", "multimodal_projector": "multimodal"}


def load() -> list[dict[str, Any]]:
    return json.loads(RECIPES.read_text())


def _ratio(advised: float, published: float | None, rng: list[float] | None) -> float:
    lo, hi = rng if rng else (published, published)
    assert lo is not None and hi is not None
    if lo <= advised <= hi:
        return 1.0
    return max(advised / hi, lo / advised)


def score(recipe: dict[str, Any], engine: Engine) -> dict[str, bool | None]:
    """Each column's verdict for one recipe (None: the source does not state the value)."""
    adv = engine.advise(AdviceRequest(**recipe["request"]))
    pub = recipe["published"]
    out: dict[str, bool | None] = {}
    name = adv.optimizer.name
    out["optimizer"] = FAMILY_OF.get(name, name) == FAMILY_OF.get(pub["optimizer"],
                                                                  pub["optimizer"])
    r = _ratio(adv.optimizer.lr, pub.get("lr"), pub.get("lr_range"))
    out["lr2"], out["lr3"] = r <= 2.0 + 1e-9, r <= 3.0 + 1e-9
    wd = pub.get("weight_decay")
    if wd is None:
        out["wd3"] = None
    elif wd <= 1e-5:
        out["wd3"] = adv.optimizer.weight_decay <= 0.01
    else:
        aw = adv.optimizer.weight_decay
        out["wd3"] = aw > 0 and max(aw / wd, wd / aw) <= 3.0 + 1e-9
    warm = pub.get("warmup_steps")
    if warm is None:
        out["warmup3"] = None
    else:
        total = adv.schedule.total_steps
        aw = adv.schedule.warmup_steps
        small = 0.01 * total
        out["warmup3"] = (aw < small and warm < small) or (
            aw > 0 and warm > 0 and max(aw / warm, warm / aw) <= 3.0 + 1e-9)
    sched = pub.get("schedule")
    out["schedule"] = None if sched is None else SHAPE[adv.schedule.name] == sched
    clip = pub.get("clip")
    out["clip"] = None if clip is None else (adv.clip_norm is not None) == bool(clip)
    return out


def _rates(rows: list[dict[str, bool | None]]) -> dict[str, tuple[int, int]]:
    out = {}
    for c in COLUMNS:
        vals = [r[c] for r in rows if r[c] is not None]
        out[c] = (sum(bool(v) for v in vals), len(vals))
    return out


def _table(title: str, groups: dict[str, list[dict[str, bool | None]]]) -> str:
    head = f"{'':<18}{'n':>4}" + "".join(f"{c:>11}" for c in COLUMNS)
    lines = [title, head]
    for g, rows in groups.items():
        rates = _rates(rows)
        cells = "".join(f"{(h / n if n else float('nan')):>10.0%} " if n else f"{'-':>11}"
                        for h, n in rates.values())
        lines.append(f"{g:<18}{len(rows):>4}{cells}")
    return "\n".join(lines)


def run(loo: bool) -> tuple[list[dict[str, Any]], list[dict[str, bool | None]]]:
    recipes = load()
    full = Engine()
    engines: dict[str, Engine] = {}
    scores = []
    for rec in recipes:
        eng = full
        if loo:
            eng = engines.setdefault(rec["family"], Engine(exclude={rec["family"]}))
        scores.append(score(rec, eng))
    return recipes, scores


def grouped(recipes: list[dict[str, Any]], scores: list[dict[str, bool | None]]
            ) -> dict[str, list[dict[str, bool | None]]]:
    groups: dict[str, list[dict[str, bool | None]]] = defaultdict(list)
    for rec, s in zip(recipes, scores, strict=True):
        groups["overall"].append(s)
        groups[TASK_OF[rec["request"]["task"]]].append(s)
    return dict(groups)


def overall(scores: list[dict[str, bool | None]]) -> dict[str, float]:
    return {c: (h / n if n else math.nan) for c, (h, n) in _rates(scores).items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--misses", action="store_true", help="list each leave-one-out miss")
    ap.add_argument("--json", type=pathlib.Path)
    args = ap.parse_args()
    recipes = load()
    print(f"{len(recipes)} published recipes, {len({r['family'] for r in recipes})} families "
          f"({sum('unsure' in r for r in recipes)} marked unsure)\n")
    result = {}
    for loo in (False, True):
        recs, scores = run(loo)
        title = ("leave-one-family-out (each family scored by an engine fitted without it)"
                 if loo else "with every anchor (the service's engine)")
        print(_table(title, grouped(recs, scores)) + "\n")
        result["loo" if loo else "full"] = overall(scores)
        if loo:
            rates = overall(scores)
            print("targets (leave-one-out): " + ", ".join(
                f"{c} {rates[c]:.0%} {'≥' if rates[c] >= t else '<'} {t:.0%}"
                for c, t in TARGETS.items()))
            if args.misses:
                for rec, s in zip(recs, scores, strict=True):
                    bad = [c for c in COLUMNS if s[c] is False]
                    if bad:
                        print(f"  miss {rec['family']:<12} {rec['name']:<36} {', '.join(bad)}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
