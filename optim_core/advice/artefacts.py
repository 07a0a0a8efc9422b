"""Ready-to-use artefacts from an advice: a PyTorch snippet, Hugging Face ``TrainingArguments``
keywords and an ``optim_core`` trials config. Strings and dicts only — nothing here imports torch.

The snippet's ``lr_factor`` reproduces ``optim_core.numerics.schedules`` exactly (same warmup convention:
``(t + 1) / W``), and a test executes it against ``ScheduleSpec.build()``.
"""

from __future__ import annotations

from typing import Any

from optim_core.advice.models import Artefacts, OptimizerAdvice, ParamGroupRule, ScheduleAdvice
from optim_core.advice.ranges import clamp, sig
from optim_core.bounds import MAX_LR, MIN_LR

TRIAL_MAX_STEPS = 1000  # trials compare settings in a short run; TrialsConfig allows ≤ 5000
TRIAL_LR_FACTORS = (1 / 3, 1.0, 3.0)

_LR_FACTOR = {
    "constant": "    return 1.0\n",
    "linear_warmup": "    return (t + 1) / W if t < W else 1.0\n",
    "inverse_sqrt": ("    if t < W:\n        return (t + 1) / W\n"
                     "    return math.sqrt(max(W, 1)) / math.sqrt(t + 1)\n"),
    "warmup_cosine": ("    if t < W:\n        return (t + 1) / W\n"
                      "    start = max(W - 1, 0)\n"
                      "    horizon = T - 1 - start\n"
                      "    u = min(t - start, horizon)\n"
                      "    if u == horizon:\n        return R\n"
                      "    return R + 0.5 * (1 - R) * (1 + math.cos(math.pi * u / horizon))\n"),
    "warmup_linear": ("    if t < W:\n        return (t + 1) / W\n"
                      "    start = max(W - 1, 0)\n"
                      "    horizon = T - 1 - start\n"
                      "    u = min(t - start, horizon)\n"
                      "    if u == 0:\n        return 1.0\n"
                      "    if u == horizon:\n        return R\n"
                      "    return R + (1 - R) * (1 - u / horizon)\n"),
    # M: decay points (absolute steps), G: factor at each; a generator, not bisect, so the body
    # needs no import beyond math (tests exec it from the constants line on).
    "warmup_step": ("    if t < W:\n        return (t + 1) / W\n"
                    "    return G ** sum(1 for m in M if m <= t)\n"),
}


def _end_ratio(sched: ScheduleAdvice) -> float:
    """LR on the last step / peak, for the schedules that name an end value."""
    spec = sched.spec
    if sched.name == "warmup_linear":
        return float(spec.get("end_lr", 0.0)) / float(spec["max_lr"])
    if sched.name == "warmup_step":
        return sched.min_lr / sched.peak_lr
    return float(spec.get("min_lr_ratio", 1.0))


def lr_factor_source(sched: ScheduleAdvice) -> str:
    """``W``, ``T``, ``R`` constants and ``def lr_factor(t)``: the LR multiplier at 0-based step
    ``t`` (LambdaLR's contract)."""
    ratio = _end_ratio(sched)
    head = (f"W, T, R = {sched.warmup_steps}, {sched.total_steps}, {ratio!r}  "
            f"# warmup steps, total steps, min_lr / peak\n")
    if sched.name == "warmup_step":
        head += (f"M, G = {tuple(_decay_points(sched))!r}, {sched.spec.get('gamma', 0.1)!r}  "
                 "# steps at which the LR is multiplied by G (torch MultiStepLR after warmup)\n")
    head += ("\n\n"
            "def lr_factor(t: int) -> float:\n"
            f"    \"\"\"{sched.name} (optim_core.numerics.schedules convention: warmup (t + 1) / W).\"\"\"\n")
    return head + _LR_FACTOR[sched.name]


def _decay_points(sched: ScheduleAdvice) -> list[int]:
    """A warmup_step's decay steps up to the run's end (a step_size spec is expanded)."""
    spec = sched.spec
    if spec.get("milestones") is not None:
        return [int(m) for m in spec["milestones"]]
    size = int(spec["step_size"])
    return list(range(size, max(sched.total_steps, size + 1), size))


def _optimizer_line(opt: OptimizerAdvice) -> tuple[str, str]:
    if opt.name == "sgd":
        return "", (f"optimizer = torch.optim.SGD(param_groups, lr={opt.lr!r}, "
                    f"momentum={opt.momentum!r}, nesterov={opt.nesterov!r})  # O3.1, W11")
    if opt.name == "adafactor":
        return "", (f"optimizer = torch.optim.Adafactor(param_groups, lr={opt.lr!r})  "
                    "# O5.4 (torch >= 2.5)")
    if opt.name == "lars":
        return ("from pytorch_optimizer import LARS\n",
                f"optimizer = LARS(param_groups, lr={opt.lr!r}, momentum={opt.momentum!r})"
                "  # O7.1, L-LARS")
    if opt.name == "lion":
        return ("from pytorch_optimizer import Lion\n",
                f"optimizer = Lion(param_groups, lr={opt.lr!r}, betas={opt.betas!r})"
                "  # O5.4, L-LION")
    if opt.name == "rmsprop":
        alpha = opt.betas[1] if opt.betas is not None else 0.99
        return "", (f"optimizer = torch.optim.RMSprop(param_groups, lr={opt.lr!r}, "
                    f"alpha={alpha!r}, eps={opt.eps!r}, momentum={opt.momentum!r})  # O4.2")
    if opt.name == "adagrad":
        return "", (f"optimizer = torch.optim.Adagrad(param_groups, lr={opt.lr!r}, "
                    f"eps={opt.eps!r})  # O4.1")
    if opt.name in ("adam", "adam_l2"):
        # the param groups' weight_decay is L2 in Adam's gradient (W11); 0 for plain adam
        return "", (f"optimizer = torch.optim.Adam(param_groups, lr={opt.lr!r}, "
                    f"betas={opt.betas!r}, eps={opt.eps!r})  # O5.1; weight_decay is L2 (W11)")
    if opt.name == "lamb":
        return ("from pytorch_optimizer import Lamb\n",
                f"optimizer = Lamb(param_groups, lr={opt.lr!r}, betas={opt.betas!r}, "
                f"eps={opt.eps!r})  # O5.4, L-LAMB")
    return "", (f"optimizer = torch.optim.AdamW(param_groups, lr={opt.lr!r}, "
                f"betas={opt.betas!r}, eps={opt.eps!r})  # O5.3/W6, W11")


def pytorch_snippet(opt: OptimizerAdvice, groups: ParamGroupRule, sched: ScheduleAdvice,
                    clip: float | None) -> str:
    """Runnable PyTorch: the decay/no-decay split (one named rule), the optimizer, the schedule
    as a LambdaLR, and a loop that runs exactly ``T`` optimizer steps however many passes over
    ``loader`` that takes (a test executes it on a tiny model)."""
    extra_import, opt_line = _optimizer_line(opt)
    clip_line = (f"        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm={clip!r})"
                 "  # O7.4\n" if clip is not None
                 else "        # no gradient clipping (see rationale: clip_basis)\n")
    return (
        "import math\nimport re\n\nimport torch\n" + extra_import + "\n"
        "# model = ...  (your nn.Module); loader = ...  (your DataLoader); loss_fn(model, batch)\n"
        "# O7.3 / W10c: no decay on " + ", ".join(groups.no_decay) + "\n"
        "skip = set(getattr(model, \"no_weight_decay\", lambda: set())())  # timm convention\n"
        "embed = re.compile(r\"(^|[._])(pos_embed|pos_emb|position_embeddings|cls_token|"
        "dist_token|mask_token)$\")\n"
        "tables = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}\n"
        "decay, no_decay = [], []\n"
        "for name, p in model.named_parameters():\n"
        "    if not p.requires_grad:\n        continue\n"
        "    exempt = (p.ndim < 2 or name in skip or embed.search(name) is not None\n"
        f"              or {'False' if groups.decay_embeddings else 'id(p) in tables'})\n"
        "    (no_decay if exempt else decay).append(p)\n"
        "param_groups = [\n"
        f"    {{\"params\": decay, \"weight_decay\": {opt.weight_decay!r}}},\n"
        "    {\"params\": no_decay, \"weight_decay\": 0.0},\n]\n"
        + opt_line + "\n\n"
        + lr_factor_source(sched) + "\n\n"
        "scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)\n"
        f"# same as optim_core.specs.schedule.ScheduleSpecAdapter.validate_python({sched.spec!r}).build()\n"
        "step = 0\n"
        "while step < T:  # as many passes over the data as T steps take\n"
        "    for batch in loader:\n"
        "        if step == T:\n            break\n"
        "        loss = loss_fn(model, batch)\n"
        "        optimizer.zero_grad(set_to_none=True)\n"
        "        loss.backward()\n"
        + clip_line +
        "        optimizer.step()\n"
        "        scheduler.step()\n"
        "        step += 1\n"
    )


_PASS_SNIPPET = "pass the {what} from the PyTorch snippet with Trainer(optimizers=(optimizer, scheduler))"
# Our optimizer name -> (Trainer's ``optim`` value, a note for what the keywords cannot carry).
_HF_OPTIM: dict[str, tuple[str, str]] = {
    "adamw": ("adamw_torch", ""),
    # AdamW with λ = 0 is Adam's update exactly; Trainer has no plain "adam"
    "adam": ("adamw_torch", "Trainer has no plain Adam: 'adamw_torch' with weight_decay 0 is "
                            "the same update"),
    "adafactor": ("adafactor", "Trainer's 'adafactor' uses an external LR (scale_parameter="
                               "False, relative_step=False), so learning_rate and the schedule "
                               "apply; with transformers.Adafactor directly pass those two and "
                               "warmup_init=False"),
    "lion": ("lion_32bit", "'lion_32bit' needs bitsandbytes; without it "
                           + _PASS_SNIPPET.format(what="Lion")),
    "adagrad": ("adagrad", ""),
    "rmsprop": ("rmsprop", "Trainer's 'rmsprop' (recent transformers) does not take alpha/"
                           "momentum from these keywords; for the advised values "
                           + _PASS_SNIPPET.format(what="RMSprop")),
    "sgd": ("sgd", "Trainer's 'sgd' does not take momentum from these keywords; "
                   + _PASS_SNIPPET.format(what="SGD")),
}
# adam_l2, lamb: no Trainer equivalent.
_HF_OPTIM_FALLBACK = ("adamw_torch", "Trainer has no built-in {name}; "
                      + _PASS_SNIPPET.format(what="optimizer"))


def hf_training_arguments(opt: OptimizerAdvice, groups: ParamGroupRule, sched: ScheduleAdvice,
                          clip: float | None, fired: list[str]) -> tuple[dict[str, Any], list[str]]:
    notes: list[str] = []
    kw: dict[str, Any] = {"learning_rate": opt.lr, "weight_decay": opt.weight_decay,
                          "max_steps": sched.total_steps, "warmup_steps": sched.warmup_steps,
                          "max_grad_norm": clip if clip is not None else 0.0}
    # Trainer's adam_* keywords feed its Adam-family optimizers (and bitsandbytes' Lion, whose
    # betas it takes from adam_beta1/2); RMSprop's betas are not Adam's, so they stay out.
    if opt.betas is not None and opt.name != "rmsprop":
        kw.update(adam_beta1=opt.betas[0], adam_beta2=opt.betas[1])
        if opt.eps is not None:
            kw["adam_epsilon"] = opt.eps
    optim, note = _HF_OPTIM.get(opt.name, _HF_OPTIM_FALLBACK)
    kw["optim"] = "paged_adamw_32bit" if opt.name == "adamw" and "L-QLORA" in fired else optim
    if note:
        notes.append(note.format(name=opt.name))
    ratio = sched.spec.get("min_lr_ratio", 0.0)
    kw["lr_scheduler_type"] = {"constant": "constant", "linear_warmup": "constant_with_warmup",
                               "inverse_sqrt": "inverse_sqrt", "warmup_linear": "linear",
                               # no HF equivalent: only the warmup; see the note below
                               "warmup_step": "constant_with_warmup"}.get(
        sched.name, "cosine_with_min_lr" if ratio else "cosine")
    if sched.name == "warmup_cosine" and ratio:
        kw["lr_scheduler_kwargs"] = {"min_lr_rate": ratio}
    if sched.name == "warmup_linear" and _end_ratio(sched) > 0:
        notes.append("Trainer's 'linear' decays to 0; for the advised end LR "
                     f"{sched.min_lr:g} use the LambdaLR from the PyTorch snippet with "
                     "Trainer(optimizers=(optimizer, scheduler))")
    if sched.name == "warmup_step":
        notes.append("Hugging Face has no warmup + step-decay (multi-step) scheduler: "
                     "lr_scheduler_type 'constant_with_warmup' gives only the warmup. For the × "
                     f"{sched.spec.get('gamma', 0.1):g} decays at steps "
                     f"{', '.join(map(str, _decay_points(sched)))} pass the LambdaLR from the "
                     "PyTorch snippet with Trainer(optimizers=(optimizer, scheduler))")
    if any("batchnorm" in n or "groupnorm" in n for n in groups.no_decay):
        notes.append("Trainer excludes only biases and LayerNorm from decay; with BatchNorm/"
                     "GroupNorm build the param groups from the PyTorch snippet")
    return kw, notes


def _optimizer_spec(opt: OptimizerAdvice, lr: float) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": opt.name, "lr": lr, "weight_decay": opt.weight_decay,
                            "decay_embeddings": opt.decay_embeddings}
    for key in ("betas", "eps", "momentum"):
        value = getattr(opt, key)
        if value is not None:
            spec[key] = list(value) if key == "betas" else value
    if opt.nesterov:
        spec["nesterov"] = True
    return spec


def _trial_schedule(sched: ScheduleAdvice, lr: float, steps: int) -> dict[str, Any]:
    """The advised schedule's shape over a trial of ``steps`` steps, peaking at ``lr``."""
    if steps < 2 or sched.name == "constant":
        return {"name": "constant", "lr": lr}
    w = min(round(sched.warmup_steps * steps / sched.total_steps), steps - 1)
    if sched.name == "linear_warmup":
        return {"name": "linear_warmup", "peak_lr": lr, "warmup_steps": w}
    if sched.name == "inverse_sqrt":
        return {"name": "inverse_sqrt", "init_lr": lr, "warmup_steps": w}
    if sched.name == "warmup_linear":
        return {"name": "warmup_linear", "max_lr": lr, "warmup_steps": w, "total_steps": steps,
                "end_lr": lr * _end_ratio(sched)}
    if sched.name == "warmup_step":
        # The decay points keep their place in the run (Goyal's 1/3, 2/3, 8/9); points that
        # collapse together or into the warmup in a short trial are dropped.
        ms = sorted({round(m * steps / sched.total_steps) for m in _decay_points(sched)})
        ms = [m for m in ms if max(w, 1) <= m <= steps - 1]
        if not ms:
            return {"name": "linear_warmup", "peak_lr": lr, "warmup_steps": w}
        return {"name": "warmup_step", "init_lr": lr, "warmup_steps": w,
                "gamma": sched.spec.get("gamma", 0.1), "milestones": ms}
    return {"name": "warmup_cosine", "max_lr": lr, "warmup_steps": w, "total_steps": steps,
            "min_lr_ratio": sched.spec.get("min_lr_ratio", 0.0)}


def trial_config(opt: OptimizerAdvice, sched: ScheduleAdvice, clip: float | None) -> dict[str, Any]:
    """A ``TrialsConfig``-shaped dict: the advice and its LR × 1/3 and × 3, same schedule shape."""
    steps = max(2, min(sched.total_steps, TRIAL_MAX_STEPS))
    candidates = []
    for f in TRIAL_LR_FACTORS:
        lr = sig(clamp(opt.lr * f, MIN_LR, MAX_LR))  # within the bounds of the advised LR
        label = "advice" if f == 1.0 else f"advice lr x {f:.3g}"
        candidates.append({"optimizer": _optimizer_spec(opt, lr),
                           "schedule": _trial_schedule(sched, lr, steps),
                           "clip_norm": clip, "label": label})
    return {"candidates": candidates, "steps": steps,
            "eval_every": max(1, steps // 10)}


def build_artefacts(opt: OptimizerAdvice, groups: ParamGroupRule, sched: ScheduleAdvice,
                    clip: float | None, *, tr_fired: list[str]) -> Artefacts:
    kw, notes = hf_training_arguments(opt, groups, sched, clip, tr_fired)
    return Artefacts(pytorch=pytorch_snippet(opt, groups, sched, clip),
                     hf_training_arguments=kw, hf_notes=notes,
                     trial_config=trial_config(opt, sched, clip))
