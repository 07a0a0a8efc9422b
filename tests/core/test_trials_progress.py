"""Progress names the phase, the candidate and its LR in both paths, and the done count a
diverged trial reports includes the steps it skipped."""

from __future__ import annotations

from collections import defaultdict

import pytest

from optim_core.specs.jobs import TrialsConfig
from optim_core.specs.range_test import ProgressEvent
from optim_core.training.trials import run_trials_on
from tests.core.test_trials import _setup, nan_setup


def _events(config: TrialsConfig) -> tuple[list[str], dict[str, float], list[ProgressEvent]]:
    events: list[ProgressEvent] = []
    result = run_trials_on(*_setup(), config, progress=events.append)
    return ([t.label for t in result.trials], {t.label: t.peak_lr for t in result.trials},
            events)


def _by_candidate(events: list[ProgressEvent]) -> dict[str | None, list[tuple]]:
    out: dict[str | None, list[tuple]] = defaultdict(list)
    for e in events:
        out[e.candidate].append((e.phase, e.candidate_lr, e.seed, e.lr))
    return dict(out)


def test_batched_events_name_each_candidate_and_its_lr_as_the_sequential_ones() -> None:
    config = TrialsConfig(center_lr=0.01, default_optimizers=["adamw", "sgd"],
                          lr_factors=[1.0, 3.0], steps=8, eval_every=4, extend_edges=0)
    labels, lrs, seq = _events(config)
    _, _, bat = _events(config.model_copy(update={"batched": True}))
    for e in bat:
        assert e.candidate in labels and e.candidate_lr == lrs[e.candidate]
    # per candidate, the batched stream is the sequential one: same points, phase, LRs, seed
    assert _by_candidate(bat) == _by_candidate(seq)
    assert [e.step for e in bat] == sorted(e.step for e in bat)
    assert bat[-1].step == bat[-1].total == 4 * 8


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
