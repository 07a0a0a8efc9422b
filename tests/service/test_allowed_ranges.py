"""Every cross-field check says what is allowed: the SpecError a validator raises carries
``allowed``, and the problem document's error item shows it (it was left out: only pydantic's own
constraints had one). One request per check, walked through the routes that take it; every error
item of every answer must have ``allowed``."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.main import create_app

PREVIEW = "/v1/schedules/preview"
RANGE_TEST = "/v1/jobs/lr-range-test"
DIAGNOSE = "/v1/diagnose"
ADVICE = "/v1/advice"
SEQ = {"kind": "sequences", "vocab_size": 32, "seq_len": 16}
MLP = {"kind": "mlp", "hidden": [8]}
TRANSFORMER = {"kind": "transformer", "d_model": 32, "n_heads": 4, "seq_len": 16,
               "vocab_size": 32}
LOSS = [2.0, 1.5, 1.2, 1.0]
RUN = {"task": "other", "param_count": 1000, "batch_size": 8, "dataset_size": 100}


def _preview(schedule: dict[str, Any]) -> dict[str, Any]:
    return {"schedule": schedule, "total_steps": 100}


def _range_test(data: dict[str, Any] | None = None, model: dict[str, Any] | None = None,
                **kw: Any) -> dict[str, Any]:
    experiment = {"data": data or {"kind": "digits"}, "model": model or MLP,
                  **kw.pop("experiment", {})}
    return {"experiment": experiment, **kw}


# (what, route, body, the field whose error must say what is allowed, a phrase of it)
CASES: list[tuple[str, str, dict[str, Any], str, str]] = [
    # schedules: the lengths and LRs of one schedule against each other
    ("wsd decay after the peak", PREVIEW, _preview(
        {"name": "wsd", "max_lr": 0.1, "warmup_steps": 10, "total_steps": 100,
         "decay_steps": 95}), "body.schedule.wsd.decay_steps", "(90)"),
    ("wsd total after warmup", PREVIEW, _preview(
        {"name": "wsd", "max_lr": 0.1, "warmup_steps": 100, "total_steps": 100,
         "decay_steps": 5}), "body.schedule.wsd.total_steps", "> warmup_steps (100)"),
    ("wsd exp needs a floor", PREVIEW, _preview(
        {"name": "wsd", "max_lr": 0.1, "warmup_steps": 10, "total_steps": 100,
         "decay_steps": 10, "min_lr_ratio": 0.0, "decay": "exp"}),
     "body.schedule.wsd.decay", "min_lr_ratio > 0"),
    ("warmup_cosine total after warmup", PREVIEW, _preview(
        {"name": "warmup_cosine", "max_lr": 0.1, "warmup_steps": 50, "total_steps": 50}),
     "body.schedule.warmup_cosine.total_steps", "> warmup_steps (50)"),
    ("warmup_linear total after warmup", PREVIEW, _preview(
        {"name": "warmup_linear", "max_lr": 0.1, "warmup_steps": 60, "total_steps": 50}),
     "body.schedule.warmup_linear.total_steps", "> warmup_steps (60)"),
    ("warmup_linear end below max", PREVIEW, _preview(
        {"name": "warmup_linear", "max_lr": 0.1, "warmup_steps": 5, "total_steps": 50,
         "end_lr": 0.2}), "body.schedule.warmup_linear.end_lr", "<= max_lr (0.1)"),
    ("cosine min below max", PREVIEW, _preview(
        {"name": "cosine", "max_lr": 0.1, "total_steps": 50, "min_lr": 0.5}),
     "body.schedule.cosine.min_lr", "<= max_lr (0.1)"),
    ("linear end below max", PREVIEW, _preview(
        {"name": "linear", "max_lr": 0.1, "total_steps": 50, "end_lr": 0.5}),
     "body.schedule.linear.end_lr", "<= max_lr (0.1)"),
    ("warmup_step step after warmup", PREVIEW, _preview(
        {"name": "warmup_step", "init_lr": 0.1, "warmup_steps": 10, "step_size": 5}),
     "body.schedule.warmup_step.step_size", ">= warmup_steps (10)"),
    ("warmup_step neither", PREVIEW, _preview(
        {"name": "warmup_step", "init_lr": 0.1, "warmup_steps": 10}),
     "body.schedule.warmup_step.milestones", "exactly one of step_size or milestones"),
    ("warmup_step both", PREVIEW, _preview(
        {"name": "warmup_step", "init_lr": 0.1, "warmup_steps": 10, "step_size": 20,
         "milestones": [30]}),
     "body.schedule.warmup_step.milestones", "exactly one of step_size or milestones"),
    ("warmup_step milestones increase", PREVIEW, _preview(
        {"name": "warmup_step", "init_lr": 0.1, "warmup_steps": 10, "milestones": [40, 30]}),
     "body.schedule.warmup_step.milestones", "strictly increasing"),
    ("warmup_step milestones after warmup", PREVIEW, _preview(
        {"name": "warmup_step", "init_lr": 0.1, "warmup_steps": 10, "milestones": [5, 30]}),
     "body.schedule.warmup_step.milestones", ">= warmup_steps (10)"),
    ("an unknown schedule", PREVIEW, _preview({"name": "nope", "lr": 0.1}),
     "body.schedule", "'constant'"),
    ("a schedule without a name", PREVIEW, _preview({"lr": 0.1}), "body.schedule", "'name'"),
    # the range test's sweep
    ("end above start", RANGE_TEST, _range_test(config={"start_lr": 1e-2, "end_lr": 1e-3}),
     "body.config.end_lr", "> start_lr (0.01)"),
    # models against their data, and data against itself
    ("n_heads divides d_model", RANGE_TEST, _range_test(SEQ, {**TRANSFORMER, "n_heads": 5}),
     "body.experiment.model.transformer.n_heads", "1, 2, 4, 8, 16, 32"),
    ("an mlp on tokens", RANGE_TEST, _range_test(SEQ, MLP), "body.experiment.model",
     "transformer"),
    ("a cnn on flat features", RANGE_TEST, _range_test(None, {"kind": "cnn"}),
     "body.experiment.model", "mlp"),
    ("a transformer on features", RANGE_TEST, _range_test(None, TRANSFORMER),
     "body.experiment.model", "mlp"),
    ("the model's vocabulary", RANGE_TEST, _range_test(
        {**SEQ, "vocab_size": 64}, TRANSFORMER), "body.experiment.model", ">= the data's "
     "vocab_size (64)"),
    ("the model's context", RANGE_TEST, _range_test(
        {**SEQ, "seq_len": 32}, TRANSFORMER), "body.experiment.model", ">= the data's "
     "seq_len (32)"),
    ("an order-2 chain's table", RANGE_TEST, _range_test(
        {**SEQ, "vocab_size": 2048, "order": 2}, TRANSFORMER),
     "body.experiment.data.sequences.order", "1"),
    ("branching within the vocabulary", RANGE_TEST, _range_test(
        {**SEQ, "branching": 40}, TRANSFORMER),
     "body.experiment.data.sequences.branching", "<= vocab_size (32)"),
    ("non-empty splits", RANGE_TEST, _range_test(
        {"kind": "classification", "n_samples": 16}, experiment={"val_fraction": 0.01}),
     "body.experiment.val_fraction", "1 to 15 of the 16"),
    ("an unknown model kind", RANGE_TEST, _range_test(None, {"kind": "nope"}),
     "body.experiment.model", "'mlp'"),
    # an optimizer's settings against its name
    ("a setting the optimizer has not", RANGE_TEST, _range_test(
        optimizer={"name": "adamw", "momentum": 0.9}), "body.optimizer.momentum",
     "left out for adamw"),
    ("rmsprop's betas", RANGE_TEST, _range_test(
        optimizer={"name": "rmsprop", "betas": [0.9, 0.99]}), "body.optimizer.betas", "[0, β]"),
    ("adam without decay", RANGE_TEST, _range_test(
        optimizer={"name": "adam", "weight_decay": 0.1}), "body.optimizer.weight_decay", "0 (adam)"),
    ("nesterov is sgd's", RANGE_TEST, _range_test(
        optimizer={"name": "adamw", "nesterov": True}), "body.optimizer.nesterov", "sgd"),
    ("nesterov needs momentum", RANGE_TEST, _range_test(
        optimizer={"name": "sgd", "momentum": 0.0, "nesterov": True}),
     "body.optimizer.nesterov", "momentum in (0, 1)"),
    # a training log's series against its losses
    ("steps per loss", DIAGNOSE, {"loss": LOSS, "steps": [0, 1]}, "body.steps",
     "4 values"),
    ("lrs per loss", DIAGNOSE, {"loss": LOSS, "lr": [1e-3]}, "body.lr", "4 values"),
    ("grad norms per loss", DIAGNOSE, {"loss": LOSS, "grad_norm": [1.0] * 5},
     "body.grad_norm", "4 values"),
    ("val steps per val loss", DIAGNOSE, {"loss": LOSS, "val_loss": [1.0, 0.9, 0.8],
                                          "val_steps": [0]}, "body.val_steps", "3 values"),
    # an advice request's fields against each other
    ("a stage the task fixes", ADVICE, {**RUN, "task": "llm_pretrain", "seq_len": 8,
                                        "epochs": 1, "stage": "finetune"},
     "body.stage", "pretrain"),
    ("a modality the task fixes", ADVICE, {**RUN, "task": "vision_transformer", "epochs": 1,
                                           "modality": "text"}, "body.modality", "vision"),
    ("seq_len for an LLM", ADVICE, {**RUN, "task": "llm_pretrain", "epochs": 1},
     "body.seq_len", "required for task llm_pretrain"),
    ("steps or epochs", ADVICE, {**RUN, "epochs": 1, "total_steps": 10}, "body.epochs",
     "exactly one"),
    ("epochs within the step bound", ADVICE, {**RUN, "dataset_size": 10**14, "batch_size": 1,
                                              "epochs": 10.0}, "body.epochs", "<="),
    ("tokens need seq_len", ADVICE, {**RUN, "epochs": 1, "dataset_unit": "tokens"},
     "body.dataset_unit", "seq_len"),
]


@pytest.fixture(scope="module")
def client(redis_url: str) -> Iterator[TestClient]:
    prefix = f"allowed-{uuid.uuid4().hex[:8]}:"
    settings = Settings(redis_url=redis_url, cache_redis_url=redis_url, jobs_key_prefix=prefix,
                        broker_key_prefix=prefix + "broker:")
    with TestClient(create_app(settings)) as c:
        yield c


@pytest.mark.parametrize(("route", "body", "field", "phrase"),
                         [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_every_cross_field_error_says_what_is_allowed(client: TestClient, route: str,
                                                      body: dict[str, Any], field: str,
                                                      phrase: str) -> None:
    r = client.post(route, json=body)
    assert r.status_code == 422, r.text
    errors = r.json()["errors"]
    assert all(e.get("allowed") for e in errors), errors
    mine = [e for e in errors if e["field"] == field]
    assert mine, errors
    assert any(phrase in e["allowed"] for e in mine), mine


def test_a_batch_item_says_it_too(client: TestClient) -> None:
    bad = {**RUN, "epochs": 1, "total_steps": 10}
    r = client.post("/v1/advice/batch", json={"items": [bad]})
    (err,) = r.json()["items"][0]["problem"]["errors"]
    assert err["field"] == "body.items[0].epochs" and "exactly one" in err["allowed"]


def test_type_errors_name_the_type_allowed(client: TestClient) -> None:
    r = client.post(DIAGNOSE, json={"loss": [True, 1.0, 1.0, 1.0], "steps": "x"})
    allowed = {e["field"]: e["allowed"] for e in r.json()["errors"]}
    assert allowed == {"body.loss[0]": "a number", "body.steps": "an array"}, allowed
