"""The prepared GPU script (``bench/gpu_check.py``), dry-run on the CPU at toy sizes: every step
it takes on a lent GPU runs here first, so device time is not spent debugging it. The timings of
this run mean nothing and are not checked; what it reports, and how it judges the targets, is."""

from __future__ import annotations

import json
import math
import pathlib

import pytest
import torch

from bench import gpu_check


def test_dry_run_runs_every_check_and_judges_the_targets(
        tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = gpu_check.main(["--device", "cpu", "--quick", "--out", str(tmp_path)])
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert rc == 0, report
    assert report["device"] == "cpu" and report["quick"] is True
    rt = report["range_test"]
    assert rt["rc"] == 0, rt["stderr"]
    med = rt["median_seconds"]
    assert set(med) == {"bare_loop", "ours", "torch_lr_finder"}
    assert math.isclose(rt["ratio_ours_to_bare"], med["ours"] / med["bare_loop"])
    assert rt["meets_bare"] is (rt["ratio_ours_to_bare"] <= gpu_check.RANGE_TEST_MAX_RATIO)
    assert rt["beats_tlf"] is (rt["ratio_ours_to_tlf"] < 1.0)
    # the range test bench's own JSON sits beside the report, at the sizes asked for
    bench_doc = json.loads((tmp_path / "range_test_cpu_check.json").read_text())
    assert bench_doc["steps"] == 20 and "128-32-32-10" in bench_doc["model"]
    rows = report["batched_trials"]
    assert [r["case"] for r in rows] == list(gpu_check._sizes(quick=True).trials)
    for r in rows:  # K = 8 ran batched (the script exits if it fell back to a loop)
        assert r["k1_s"] > 0 and math.isclose(r["ratio"], r["k8_s"] / r["k1_s"])
        assert r["meets_target"] is (r["k8_s"] <= gpu_check.BATCHED_MAX_RATIO * r["k1_s"])
    # without CUDA the gpu tests skip, and pytest's exit code still says they were collected
    tests = report["gpu_tests"]
    assert tests["rc"] == 0 and "skipped" in tests["tail"]
    printed = capsys.readouterr().out
    assert "device: " in printed and "| trials, K=8 batched vs K=1 |" in printed


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without CUDA")
def test_without_cuda_the_real_run_refuses_and_writes_nothing(tmp_path: pathlib.Path) -> None:
    assert gpu_check.main(["--out", str(tmp_path / "out")]) == 2
    assert not (tmp_path / "out").exists()
