"""The recommended LR is judged by training, not by eye.

For each problem (``bench/problems.py``: an AdamW MLP on teacher-network labels, an SGD+momentum CNN
on scikit-learn's bundled digits), a fresh model is trained for 150 steps with the recommended LR as
the peak of the trials' schedule (5 % warmup, cosine to 0.1 x peak — how the pick is used, and the
protocol of ``bench/lr_quality.py``), and the same at 12 log-spaced grid LRs (1e-4 … 3.16). The
pick passes when its final full-data training loss is within 10 % of the best grid LR's
improvement::

    final(recommended) <= best + 0.10 * (initial - best)

Only the recommended pick is asserted. The known rules (steepest, valley, minimum/10) are measured
and printed (run with ``-s``) — they may fail; ``bench/suggestion_quality.py`` writes the same
measurement to ``bench/results/suggestion_quality.json``.
"""

from __future__ import annotations

import json
import math

import pytest

from bench.problems import RULES, digits_cnn, judge_suggestions, mlp_teacher

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("make", [mlp_teacher, digits_cnn], ids=["mlp_teacher", "digits_cnn"])
def test_recommended_lr_trains_close_to_the_best_fixed_lr(make) -> None:  # type: ignore[no-untyped-def]
    report = judge_suggestions(make(seed=0), steps=150, schedule="warmup_cosine")
    print(json.dumps({r: report["rules"][r] for r in RULES}, indent=1))
    rec = report["rules"]["recommended"]
    assert rec["lr"] is not None and math.isfinite(rec["lr"])
    assert rec["final_loss"] is not None, "training at the recommended LR diverged"
    assert rec["final_loss"] <= report["limit"], (
        f"recommended lr={rec['lr']:.3g} reached {rec['final_loss']:.4f}; the best grid lr "
        f"{report['best_grid_lr']:.3g} reached {report['best_grid_loss']:.4f} "
        f"(limit {report['limit']:.4f})")
    # the pick must also have been a real improvement over not training at all
    assert rec["final_loss"] < report["initial_loss"]
