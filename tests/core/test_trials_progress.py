"""Progress names the phase, the candidate and its LR in both paths, and the done count a
diverged trial reports includes the steps it skipped."""

from __future__ import annotations

import pytest

from optim_core.specs.jobs import TrialsConfig
from optim_core.specs.range_test import ProgressEvent
from optim_core.training.trials import run_trials_on
from tests.core.test_trials import nan_setup


@pytest.mark.parametrize("batched", [False, True])
def test_a_diverged_trials_last_event_counts_its_skipped_steps(batched: bool) -> None:
    config = TrialsConfig(center_lr=0.01, default_optimizers=["adamw"], lr_factors=[1.0, 3.0],
                          steps=10, eval_every=5, extend_edges=0, batched=batched)
    events: list[ProgressEvent] = []
    result = run_trials_on(*nan_setup(), config, progress=events.append)
    assert all(t.diverged_at == 0 for t in result.trials)  # the case: both stop at once
    assert events[-1].step == events[-1].total == 20
    # each trial's one event already counts its 10 steps (sequentially: 10, then 20)
    assert sorted({e.step for e in events}) == ([10, 20] if not batched else [20])
