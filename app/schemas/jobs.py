"""Request and response bodies of the job API (torch-free; the specs and the typed results come
from optim_core)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt
from pydantic_core import PydanticCustomError

from app.core.problems import Problem
from optim_core.specs.jobs import RangeTestJobSpec, TrialsJobSpec
from optim_core.specs.range_test import JobPhase
from optim_core.specs.results import JobResult

Device = Literal["auto", "cuda", "cpu"]
JobKindName = Literal["range_test", "trials"]
JobStatusName = Literal["queued", "running", "succeeded", "failed", "cancelled"]
Label = Annotated[str, Field(max_length=200)]
# Label keys are identifiers a dashboard can filter and show: no control characters, no blanks.
LABEL_KEY_PATTERN = r"^[A-Za-z0-9_.:/-]+$"
LabelKey = Annotated[str, Field(min_length=1, max_length=64, pattern=LABEL_KEY_PATTERN)]

#: The most items one batch request may carry (the schema says so; settings may only lower it).
JOBS_BATCH_MAX = 50
#: The most jobs one list page may hold.
JOBS_PAGE_MAX = 100
#: ``?cursor=``: an opaque ``next_cursor`` from a previous page (URL-safe base64, no padding).
CURSOR_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
#: SSE event ids are Redis stream ids (``<ms>-<seq>``): ``Last-Event-ID`` resumes after one.
#: ASCII digits only: ``\d`` would also take other scripts' digits, which Redis refuses.
EVENT_ID_PATTERN = r"^[0-9]{1,20}-[0-9]{1,20}$"
#: Each part of a stream id is an unsigned 64-bit integer; Redis refuses a larger one, and a
#: pattern of 20 digits cannot say so.
EVENT_ID_PART_MAX = 2**64 - 1
EVENT_ID_ALLOWED = f"<ms>-<seq>, each an integer from 0 to {EVENT_ID_PART_MAX}"


def event_id_parts(event_id: str) -> tuple[int, int]:
    """``(ms, seq)`` of a stream id; ValueError, saying why, unless it is one Redis takes."""
    if re.fullmatch(EVENT_ID_PATTERN, event_id) is None:
        raise ValueError(f"not an event id ({EVENT_ID_ALLOWED})")
    ms, seq = (int(part) for part in event_id.split("-"))
    if ms > EVENT_ID_PART_MAX or seq > EVENT_ID_PART_MAX:
        raise ValueError(f"a part of the event id is above {EVENT_ID_PART_MAX} (2^64 - 1)")
    return ms, seq


def _event_id_in_range(value: str | None) -> str | None:
    if value is not None:
        try:
            event_id_parts(value)
        except ValueError as exc:
            raise PydanticCustomError("event_id_range", "{reason}",
                                      {"reason": str(exc), "allowed": EVENT_ID_ALLOWED}) from None
    return value


#: What the pattern of ``Last-Event-ID`` / ``?last_event_id=`` cannot check (each part <= 2^64 - 1).
EVENT_ID_IN_RANGE = AfterValidator(_event_id_in_range)

# Fields of a job request that are not part of the experiment's spec (nor of its cache key).
OPTION_FIELDS = frozenset({"device", "force", "priority", "labels"})

_DEVICE = Field(default="auto", description="auto: the gpu queue when a live worker consumes it, "
                                             "else cpu; cuda: the gpu queue; cpu: the cpu queue")
_FORCE = Field(default=False, description="run again even if an identical job succeeded")
_PRIORITY = Field(default=None, ge=0, le=9, description="0..9, higher runs first (default 4)")
_LABELS = Field(default_factory=dict, max_length=16,
                description="free-form labels stored with the job (not part of its cache key); "
                            "filter the job list with ?label=key:value")


class RangeTestJobRequest(RangeTestJobSpec):
    """An LR range test: the experiment, the test's settings, and how to run the job."""

    device: Device = _DEVICE
    force: StrictBool = _FORCE
    priority: StrictInt | None = _PRIORITY
    labels: dict[LabelKey, Label] = _LABELS


class TrialsJobRequest(TrialsJobSpec):
    """Short optimizer trials: the experiment, the trials' settings, and how to run the job."""

    device: Device = _DEVICE
    force: StrictBool = _FORCE
    priority: StrictInt | None = _PRIORITY
    labels: dict[LabelKey, Label] = _LABELS


class RangeTestBatchRequest(BaseModel):
    """Many range tests at once; each item is validated on its own (failures reported per item,
    in its slot)."""

    model_config = ConfigDict(extra="forbid")
    items: list[dict[str, Any]] = Field(
        min_length=1, max_length=JOBS_BATCH_MAX,
        description=f"RangeTestJobRequest bodies (at most {JOBS_BATCH_MAX})",
        json_schema_extra={"items": {"$ref": "#/components/schemas/RangeTestJobRequest"}})


class Progress(BaseModel):
    step: int = Field(description="steps done; equals total once the job succeeded")
    total: int
    lr: float | None = None
    loss: float | None = None
    # trials jobs only (optim_core.specs.range_test.ProgressEvent): where the job is
    phase: JobPhase | None = None
    candidate: str | None = None
    candidate_lr: float | None = None
    seed: int | None = None


class JobLinks(BaseModel):
    self_: str = Field(alias="self", serialization_alias="self")
    events: str

    model_config = ConfigDict(populate_by_name=True)


class JobView(BaseModel):
    id: str = Field(pattern=r"^[0-9a-f]{32}$")
    kind: JobKindName
    status: JobStatusName
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
                                                   "worker or, with a Redis broker, its message "
                                                   "was lost (a new message each time)")
    cancel_requested: bool = False
    progress: Progress | None = None
    result: JobResult | None = Field(default=None, description="present when succeeded; its "
                                                               "`kind` is the job's kind")
    problem: Problem | None = Field(default=None, description="present when failed")
    request: dict[str, Any] | None = Field(
        default=None, description="the normalised spec (RangeTestJobSpec or TrialsJobSpec, "
                                  "defaults filled in); stored once, here")
    cached: bool = Field(default=False, description="an earlier identical job's stored result")
    deduplicated: bool = Field(default=False,
                               description="joined an identical job that was queued or running")
    links: JobLinks


class JobPage(BaseModel):
    items: list[JobView]
    next_cursor: str | None = Field(default=None, description="pass as ?cursor= for the next page")


T = TypeVar("T")


class BatchItem(BaseModel, Generic[T]):
    """One item of a batch, in its slot: its HTTP status, and either ``result`` or ``problem``."""

    index: int = Field(ge=0)
    status: int = Field(description="the status this item alone would have had")
    result: T | None = None
    problem: Problem | None = None


class BatchResult(BaseModel, Generic[T]):
    """The one shape of every batch answer."""

    succeeded: int = Field(ge=0, description="items answered with a result")
    failed: int = Field(ge=0, description="items answered with a problem")
    items: list[BatchItem[T]]


JobBatchResult = BatchResult[JobView]


# --- Server-sent events (GET /v1/jobs/{id}/events) -------------------------------------------
class StatusEventData(BaseModel):
    """``event: status``. The stream's last event is a status event whose ``status`` is
    terminal (succeeded, failed, cancelled) or ``expired`` (the job is gone)."""

    status: Literal["queued", "running", "succeeded", "failed", "cancelled", "expired"]
    reason: str | None = Field(default=None, description="e.g. worker-lost (queued again)")


class ProgressEventData(Progress):
    """``event: progress``: ``step`` of ``total`` done, at ``lr``, with the smoothed ``loss``
    (and, for trials, the phase, candidate, its LR and seed): the job's ``progress``."""


# --- Advice batches (the body; each item an AdviceRequest, validated on its own) -------------
#: The most items one advice batch may carry (settings may only lower it).
ADVICE_BATCH_MAX = 100


class AdviceBatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: list[dict[str, Any]] = Field(
        min_length=1, max_length=ADVICE_BATCH_MAX,
        description=f"AdviceRequest bodies (at most {ADVICE_BATCH_MAX}); each is validated on "
                    "its own and answered in its slot",
        json_schema_extra={"items": {"$ref": "#/components/schemas/AdviceRequest"}})
