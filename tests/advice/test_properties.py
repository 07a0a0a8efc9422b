"""Property tests: monotone LR in model size, warmup inside the run, finite non-negative values,
every output field explained; and the artefacts agree with the advice."""

from __future__ import annotations

import dataclasses
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optim_core.advice import AdviceRequest, advise
from optim_core.advice.models import MAX_STEPS, steps_per_epoch
from optim_core.specs.jobs import TrialsConfig
from optim_core.specs.optimizer import OPTIMIZER_NAMES, OptimizerSpec
from optim_core.specs.schedule import ScheduleSpecAdapter

TASKS = ["llm_pretrain", "llm_finetune_full", "llm_finetune_peft", "encoder_finetune",
         "image_classification_cnn", "vision_transformer", "other"]
ARCHS = ["decoder_transformer", "encoder_transformer", "encoder_decoder_transformer", "cnn",
         "vit", "mlp", "other"]


@st.composite
def requests(draw: st.DrawFn, task: str | None = None,
             optimizer: st.SearchStrategy[str | None] | None = None) -> AdviceRequest:
    task = task or draw(st.sampled_from(TASKS))
    steps = draw(st.one_of(st.none(), st.integers(1, 2_000_000)))
    batch_size = draw(st.integers(1, 50_000))
    seq_len = draw(st.integers(16, 8192)) if task.startswith("llm") else None
    dataset_size = draw(st.integers(1, 10**10))
    # Epochs are drawn inside the bound the request enforces (the run must fit MAX_STEPS).
    spe = steps_per_epoch(dataset_size, "examples", seq_len, batch_size)
    max_epochs = min(300.0, MAX_STEPS / spe)
    return AdviceRequest(
        task=task, architecture=draw(st.sampled_from(ARCHS)),
        param_count=draw(st.integers(1_000, 10**12)),
        batch_size=batch_size, seq_len=seq_len, dataset_size=dataset_size,
        total_steps=steps,
        epochs=None if steps else draw(st.floats(min(0.1, max_epochs / 2), max_epochs)),
        memory_tight=draw(st.booleans()), dropout=draw(st.floats(0.0, 0.9)),
        normalization=draw(st.lists(st.sampled_from(["layernorm", "batchnorm", "rmsnorm"]),
                                    min_size=1, max_size=2)),
        optimizer=draw(optimizer if optimizer is not None
                       else st.one_of(st.none(), st.sampled_from(OPTIMIZER_NAMES))))


def _numbers(obj: object) -> list[float]:
    if isinstance(obj, bool):
        return []
    if isinstance(obj, (int, float)):
        return [float(obj)]
    if isinstance(obj, dict):
        return [x for v in obj.values() for x in _numbers(v)]
    if isinstance(obj, (list, tuple)):
        return [x for v in obj for x in _numbers(v)]
    return []


@settings(max_examples=60, deadline=None)
@given(requests())
def test_sane_and_explained(req: AdviceRequest) -> None:
    a = advise(req)
    dump = a.model_dump(mode="json")
    nums = _numbers({k: v for k, v in dump.items() if k != "rationale"})
    assert all(math.isfinite(x) and x >= 0 for x in nums)
    s = a.schedule
    assert 0 <= s.warmup_steps < max(s.total_steps, 2) and s.warmup_steps <= 0.05 * s.total_steps + 1
    explained = {e.field for e in a.rationale}
    for name, value in dump["optimizer"].items():
        if value is not None:
            assert f"optimizer.{name}" in explained, name
    for name in ("name", "warmup_steps", "total_steps", "min_lr", "peak_lr"):
        assert f"schedule.{name}" in explained
    for name in ("clip_norm", "batch_scaling", "param_groups", "search.lr_range",
                 "search.weight_decay_grid", "monitor", "confidence"):
        assert name in explained
    assert all(e.rule_ids and e.text for e in a.rationale)
    # artefacts: the schedule spec builds, the trial config validates, the snippet parses
    ScheduleSpecAdapter.validate_python(s.spec)
    TrialsConfig.model_validate(a.artefacts.trial_config)
    compile(a.artefacts.pytorch, "<snippet>", "exec")
    _optimizer_valid(a, req)


def _optimizer_valid(a: object, req: AdviceRequest) -> None:
    """The advised optimizer is the requested one and its settings make a valid OptimizerSpec
    (which refuses settings the optimizer does not use, and adam with decay)."""
    opt = a.optimizer  # type: ignore[attr-defined]
    if req.optimizer is not None:
        assert opt.name == req.optimizer
    fields = {k: v for k, v in dataclasses.asdict(opt).items() if v is not None and k != "nesterov"}
    OptimizerSpec.model_validate({**fields, "nesterov": bool(opt.nesterov)})


# Every task × every optimizer choice (None = the engine's pick): a few examples each keeps
# tests/advice fast while no pair goes unvisited.
PAIRS = [(t, o) for t in TASKS for o in (None, *OPTIMIZER_NAMES)]


@pytest.mark.parametrize(("task", "opt"), PAIRS)
@settings(max_examples=3, deadline=None)
@given(data=st.data())
def test_every_task_and_optimizer_is_sane(task: str, opt: str | None, data: st.DataObject) -> None:
    req = data.draw(requests(task=task, optimizer=st.just(opt)))
    test_sane_and_explained.hypothesis.inner_test(req)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("task", "opt"), PAIRS)
@settings(max_examples=2, deadline=None)
@given(data=st.data(), n1=st.integers(1_000, 10**12), n2=st.integers(1_000, 10**12))
def test_lr_monotone_per_task_and_optimizer(task: str, opt: str | None, data: st.DataObject,
                                            n1: int, n2: int) -> None:
    req = data.draw(requests(task=task, optimizer=st.just(opt)))
    test_lr_does_not_rise_with_model_size.hypothesis.inner_test(req, n1, n2)  # type: ignore[attr-defined]


@settings(max_examples=40, deadline=None)
@given(requests(), st.integers(1_000, 10**12), st.integers(1_000, 10**12))
def test_lr_does_not_rise_with_model_size(req: AdviceRequest, n1: int, n2: int) -> None:
    small, large = sorted((n1, n2))
    lr_small = advise(req.model_copy(update={"param_count": small})).optimizer.lr
    lr_large = advise(req.model_copy(update={"param_count": large})).optimizer.lr
    assert lr_large <= lr_small * (1 + 1e-12)


@settings(max_examples=25, deadline=None)
@given(requests())
def test_snippet_schedule_equals_optim_core_schedule(req: AdviceRequest) -> None:
    a = advise(req)
    s = a.schedule
    src = a.artefacts.pytorch
    start = src.index("W, T, R")
    end = src.index("scheduler = ")
    ns: dict[str, object] = {"math": math}
    exec(src[start:end], ns)
    built = ScheduleSpecAdapter.validate_python(s.spec).build()
    for t in sorted({0, s.warmup_steps, s.total_steps // 2, max(s.total_steps - 1, 0)}):
        assert math.isclose(ns["lr_factor"](t) * s.peak_lr, built(t), rel_tol=1e-9)
