"""The real ``optim-advisor`` console script against the real service and worker."""

from __future__ import annotations

import csv
import json
import pathlib
import subprocess
import sys
from typing import Any

import pytest

from tests.jobs_support import long_range_test, tiny_range_test, tiny_trials, wait_until
from tests.live_server import LiveService

pytestmark = pytest.mark.integration
SCRIPT = pathlib.Path(sys.executable).with_name("optim-advisor")


def cli(service: LiveService, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(SCRIPT), "--url", service.url, *args], capture_output=True,
                          text=True, timeout=timeout)
    # Not a TTY here: nothing may carry a control character (a CI log stays readable).
    for text in (proc.stdout, proc.stderr):
        assert "\x1b" not in text and "\r" not in text, text[-500:]
    return proc


def test_help_works_and_the_script_imports_no_torch() -> None:
    proc = subprocess.run([str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "lr-find" in proc.stdout
    code = ("import sys, optim_advisor_client.cli\n"
            "sys.exit(1 if {'torch', 'numpy'} & set(sys.modules) else 0)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_advise_yaml_table_and_json(live_service: LiveService, tmp_path: pathlib.Path) -> None:
    spec = tmp_path / "spec.yaml"
    spec.write_text("task: image_classification_cnn\narchitecture: cnn\nparam_count: 25600000\n"
                    "batch_size: 1024\ndataset_size: 1281167\nepochs: 90\n"
                    "normalization: [batchnorm]\n")
    proc = cli(live_service, "advise", str(spec))
    assert proc.returncode == 0, proc.stderr
    header = proc.stdout.splitlines()[2]
    assert header.split()[:3] == ["field", "value", "rules"]
    assert "optimizer.lr" in proc.stdout or "lr" in proc.stdout
    as_json = cli(live_service, "advise", str(spec), "--json")
    body = json.loads(as_json.stdout)
    assert body["rationale"] and all(r["rule_ids"] for r in body["rationale"])


def test_bad_input_names_the_field_and_the_allowed_range(live_service: LiveService,
                                                          tmp_path: pathlib.Path) -> None:
    spec = tmp_path / "bad.json"
    spec.write_text(json.dumps({"task": "llm_pretrain", "param_count": 0, "batch_size": 8,
                                "seq_len": 128, "dataset_size": 1000, "total_steps": 10}))
    proc = cli(live_service, "advise", str(spec))
    assert proc.returncode == 2
    assert "param_count" in proc.stderr and "allowed: >= 1" in proc.stderr, proc.stderr
    broken = tmp_path / "broken.yaml"
    broken.write_text("task: [unclosed\n")
    proc = cli(live_service, "advise", str(broken))
    assert proc.returncode == 2 and "not valid YAML" in proc.stderr


def _jsonl(path: pathlib.Path, items: list[dict[str, Any]]) -> pathlib.Path:
    path.write_text("".join(json.dumps(i) + "\n" for i in items))
    return path


def test_lr_find_batch_results_plots_and_reattach(live_service: LiveService,
                                                  tmp_path: pathlib.Path) -> None:
    items = [{**tiny_range_test(seed=s, num_steps=60), "labels": {"name": f"mlp-seed{s}"},
              "force": True} for s in (11, 12)]
    exps = _jsonl(tmp_path / "experiments.jsonl", items)
    out = tmp_path / "out"
    proc = cli(live_service, "lr-find", str(exps), "--out", str(out), "--progress", "stdout")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # one bar per job and the overall bar, as plain lines
    assert "mlp-seed11" in proc.stdout and "overall" in proc.stdout and "100%" in proc.stdout
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [r["name"] for r in rows] == ["mlp-seed11", "mlp-seed12"]
    assert all(r["status"] == "succeeded" and float(r["recommended_lr"]) > 0 for r in rows)
    plots = sorted((out / "plots").glob("*.svg"))
    assert len(plots) == 2 and all("<path" in p.read_text() for p in plots)
    first_ids = [r["job_id"] for r in json.loads((out / "results.json").read_text())]
    # Rerun: the state file re-attaches to the same jobs instead of submitting again.
    again = cli(live_service, "lr-find", str(exps), "--out", str(out))
    assert again.returncode == 0 and "re-attached to 2 job(s)" in again.stdout
    assert [r["job_id"] for r in json.loads((out / "results.json").read_text())] == first_ids


def test_lr_find_exits_non_zero_naming_the_refused_job(live_service: LiveService,
                                                       tmp_path: pathlib.Path) -> None:
    bad = {**tiny_range_test(seed=13), "labels": {"name": "too-short"}}
    bad["config"] = {**bad["config"], "num_steps": 3}
    exps = _jsonl(tmp_path / "e.jsonl", [{**tiny_range_test(seed=14), "labels": {"name": "ok"}},
                                        bad])
    proc = cli(live_service, "lr-find", str(exps), "--out", str(tmp_path / "o"))
    assert proc.returncode == 1
    assert "failed: too-short (refused)" in proc.stdout
    assert "num_steps" in proc.stdout and "allowed: >= 10" in proc.stdout


def test_jobs_list_show_watch_cancel_and_trials(live_service: LiveService,
                                                tmp_path: pathlib.Path) -> None:
    spec = tmp_path / "long.json"
    spec.write_text(json.dumps({**long_range_test(seed=15), "labels": {"name": "to-cancel"}}))
    from optim_advisor_client import Client

    with Client(live_service.url) as c:
        job = c.range_test(json.loads(spec.read_text()))
        wait_until(lambda: c.job(job).status == "running", 60, 0.2, "the job to run")
    import httpx

    running_plot = httpx.get(f"{live_service.url}/v1/jobs/{job.id}/plot.svg", timeout=10)
    assert running_plot.status_code == 409 and "running" in running_plot.json()["detail"]
    missing = httpx.get(f"{live_service.url}/v1/jobs/{'0' * 32}/plot.svg", timeout=10)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    listed = json.loads(cli(live_service, "jobs", "list", "--json").stdout)
    assert job.id in [j["id"] for j in listed["items"]]
    assert "to-cancel" in cli(live_service, "jobs", "list").stdout
    cancel = cli(live_service, "jobs", "cancel", job.id)
    assert cancel.returncode == 0 and job.id in cancel.stdout
    watch = cli(live_service, "jobs", "watch", job.id)
    assert watch.returncode == 1 and "cancelled" in watch.stdout
    trials = tmp_path / "trials.json"
    body = tiny_trials(seed=16)
    body["config"] |= {"refine": True}
    trials.write_text(json.dumps({**body, "labels": {"name": "trio"}}))
    done = cli(live_service, "trials", "submit", str(trials), "--wait", "--timeout", "150")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "best:" in done.stdout and "rank" in done.stdout
    # the refinements are marked, and the verdict is said in words
    assert "added by" in done.stdout and "refine" in done.stdout
    assert " won (score " in done.stdout


def test_keys_dispatches_to_app_keys_or_says_why_not(live_service: LiveService) -> None:
    proc = cli(live_service, "keys", "--help")
    try:
        import app.keys  # noqa: F401  (H8's module, once merged)
    except ImportError:
        assert proc.returncode == 2 and "key management is not available" in proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr
