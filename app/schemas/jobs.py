"""Request and response bodies of the job API (torch-free; the specs come from optim_core)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from optim_core.specs.jobs import RangeTestJobSpec, TrialsJobSpec

Device = Literal["auto", "cuda", "cpu"]
Label = Annotated[str, Field(max_length=200)]
# Label keys are identifiers a dashboard can filter and show: no control characters, no blanks.
LabelKey = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:/-]+$")]

# Fields of a job request that are not part of the experiment's spec (nor of its cache key).
OPTION_FIELDS = frozenset({"device", "force", "priority", "labels"})

_DEVICE = Field(default="auto", description="auto: the gpu queue when a live worker consumes it, "
                                             "else cpu; cuda: the gpu queue; cpu: the cpu queue")
_FORCE = Field(default=False, description="run again even if an identical job succeeded")
_PRIORITY = Field(default=None, ge=0, le=9, description="0..9, higher runs first (default 4)")
_LABELS = Field(default_factory=dict, max_length=16,
                description="free-form labels stored with the job (not part of its cache key)")


class RangeTestJobRequest(RangeTestJobSpec):
    """An LR range test: the experiment, the test's settings, and how to run the job."""

    device: Device = _DEVICE
    force: bool = _FORCE
    priority: int | None = _PRIORITY
    labels: dict[LabelKey, Label] = _LABELS


class TrialsJobRequest(TrialsJobSpec):
    """Short optimizer trials: the experiment, the trials' settings, and how to run the job."""

    device: Device = _DEVICE
    force: bool = _FORCE
    priority: int | None = _PRIORITY
    labels: dict[LabelKey, Label] = _LABELS


class RangeTestBatchRequest(BaseModel):
    """Many range tests at once; each item is validated on its own (failures reported per item)."""

    model_config = ConfigDict(extra="forbid")
    items: list[dict[str, Any]] = Field(min_length=1, description="RangeTestJobRequest bodies")


class Progress(BaseModel):
    step: int
    total: int
    lr: float | None = None
    loss: float | None = None
    # trials jobs only (optim_core.specs.range_test.ProgressEvent): where the job is
    phase: Literal["range_test", "trial", "extension"] | None = None
    candidate: str | None = None
    candidate_lr: float | None = None
    seed: int | None = None


class JobLinks(BaseModel):
    self_: str = Field(alias="self", serialization_alias="self")
    events: str

    model_config = ConfigDict(populate_by_name=True)


class JobView(BaseModel):
    id: str
    kind: Literal["lr-range-test", "trials"]
    status: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    queue: str | None = None
    device: Device | None = None
    priority: int | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    request_id: str | None = None
    created_at: str | None = None
    started_at: str | None = Field(default=None, description="start of the latest delivery")
    finished_at: str | None = None
    updated_at: str | None = None
    deliveries: int = Field(default=0, description="times a worker started this job")
    worker: str | None = Field(default=None,
                               description="the worker running (or that ran) the latest delivery")
    generation: int = Field(default=0, description="times the job was queued again because its "
                                                   "worker was lost (a new message each time)")
    cancel_requested: bool = False
    progress: Progress | None = None
    result: dict[str, Any] | None = Field(default=None, description="present when succeeded")
    problem: dict[str, Any] | None = Field(default=None, description="present when failed")
    request: dict[str, Any] | None = Field(default=None, description="the normalised spec")
    cached: bool = Field(default=False, description="an earlier identical job's stored result")
    deduplicated: bool = Field(default=False,
                               description="joined an identical job that was queued or running")
    links: JobLinks


class JobPage(BaseModel):
    items: list[JobView]
    next_cursor: str | None = Field(default=None, description="pass as ?cursor= for the next page")


class BatchItem(BaseModel):
    index: int
    status: int = Field(description="202 queued (or joined), 200 cached, 4xx/5xx refused")
    job: JobView | None = None
    problem: dict[str, Any] | None = None


class BatchResponse(BaseModel):
    accepted: int
    rejected: int
    items: list[BatchItem]
