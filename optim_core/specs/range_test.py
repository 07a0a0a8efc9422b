"""Settings of the LR range test, and the progress event it reports (torch-free).

Kept out of ``range_test.py`` (which imports torch) so that the API process can validate a request
and answer 422 naming the field and its allowed range before anything is queued.

Defaults are those a user of fastai / torch-lr-finder expects: an exponential sweep from 1e-7 to 10
in 100 steps, EMA smoothing with beta 0.98 (with start-up bias correction).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from optim_core.bounds import MIN_LR
from optim_core.errors import SpecError

#: The highest LR a sweep may end at (the one home of the bound its error message states).
END_LR_MAX = 1e4


class RangeTestConfig(BaseModel):
    """How the LR range test sweeps, smooths, stops and measures.

    It stops by the divergence rule of ``optim_core.numerics.divergence`` (shift-invariant, so
    negative and offset losses work), with ``divergence_threshold`` as its threshold.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    start_lr: float = Field(1e-7, ge=MIN_LR, le=1e3, description="first LR of the sweep")
    end_lr: float = Field(10.0, gt=0.0, le=END_LR_MAX,
                          description="last LR of the sweep (> start_lr)")
    num_steps: int = Field(100, ge=10, le=10_000, description="optimizer steps in the sweep")
    mode: Literal["exp", "linear"] = Field(
        "exp", description="exp: LR grows geometrically; linear: LR grows by a constant amount")
    smooth_beta: float = Field(
        0.98, ge=0.0, lt=1.0, description="EMA weight on the old value (0 = no smoothing)")
    stop_on_divergence: bool = Field(True, description="stop when the smoothed loss diverges")
    divergence_threshold: float = Field(
        1.0, gt=0.0, le=1000.0,
        description="the divergence rule's threshold (optim_core.numerics.divergence): stop "
                    "when the smoothed loss rises above its best by this many times the drop "
                    "seen so far (or the batch noise, when little has dropped)")
    check_every: int = Field(
        10, ge=1, le=1000,
        description="steps between host-side checks (divergence, NaN, progress); on CUDA the "
                    "losses stay on the device in between")
    accumulation_steps: int = Field(
        1, ge=1, le=1024, description="micro-batches per optimizer step (gradient accumulation)")
    amp: Literal["none", "bf16", "fp16"] = Field(
        "none", description="autocast dtype; fp16 uses a GradScaler and needs CUDA")
    max_grad_norm: float | None = Field(
        None, gt=0.0, le=1e6, description="clip gradients to this global norm (None: no clipping)")
    val_every: int = Field(
        10, ge=1, le=10_000, description="steps between validation-loss evaluations")
    val_batches: int = Field(
        4, ge=1, le=1000, description="number of (fixed) validation batches per evaluation")

    @field_validator("end_lr")
    @classmethod
    def _end_above_start(cls, end_lr: float, info: ValidationInfo) -> float:
        # A field validator (not a model one) so the error's `loc` is ("end_lr",) and the API's
        # problem+json names the field; start_lr is validated first (field order).
        start_lr = info.data.get("start_lr")
        if start_lr is not None and not end_lr > start_lr:
            raise SpecError(f"end_lr must be greater than start_lr ({start_lr!r})",
                            field="end_lr", value=end_lr,
                            allowed=f"> start_lr ({start_lr!r}) and <= {END_LR_MAX:g}")
        return end_lr

    def lr_at(self, step: int) -> float:
        """LR used at 0-based ``step``: ``start_lr`` at step 0, ``end_lr`` at the last step."""
        frac = step / (self.num_steps - 1)
        if self.mode == "exp":
            return float(self.start_lr * (self.end_lr / self.start_lr) ** frac)
        return float(self.start_lr + (self.end_lr - self.start_lr) * frac)


#: why a trial ran: the planned grid, past the grid's winning edge (``extend_edges``), or half a
#: grid step beside the best (``refine``)
TrialPhase = Literal["trial", "extension", "refine"]
#: where a trials job is: a range test measuring a centre LR, or one of the trials' phases
JobPhase = Literal["range_test", TrialPhase]


class ProgressEvent(BaseModel):
    """One progress report: ``step`` steps done out of ``total``, at ``lr``, smoothed ``loss``.

    ``loss`` is None when it is not a finite number (JSON has no NaN). A trials job says where it
    is: ``phase`` (``range_test`` measuring an optimizer's centre LR, ``trial``, ``extension``:
    a trial past the edge of the LR grid, or ``refine``: half a grid step beside the best),
    ``candidate`` (the optimizer name in a range test, the candidate's label in a trial; batched
    candidates report one event each, as sequential ones do), its peak ``candidate_lr`` and ``seed``
    (0 … seeds − 1). ``step``/``total`` count every phase together; ``total`` grows when an
    extension or a refinement is added. A plain range-test job leaves them None.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    step: int = Field(ge=0)
    total: int = Field(ge=0)
    lr: float
    loss: float | None = None
    phase: JobPhase | None = None
    candidate: str | None = None
    candidate_lr: float | None = None
    seed: int | None = Field(default=None, ge=0)
