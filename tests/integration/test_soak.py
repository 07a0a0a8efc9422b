"""A bounded soak (bench/soak.py): jobs at concurrency while a worker is SIGKILLed and restarted
under the same name and Redis restarts. Nothing lost, nothing completed twice, nothing stuck, no
server error other than 503 during the outage."""

from __future__ import annotations

import pathlib
import shutil

import pytest

from bench.soak import Soak

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server"),
]


def test_a_bounded_soak_loses_nothing(tmp_path: pathlib.Path) -> None:
    report = Soak(jobs=16, concurrency=6, broker="redis", max_seconds=150, workdir=tmp_path).run()
    assert len(report["faults"]) == 2, report
    assert report["submitted"] == 16 and report["succeeded"] == 16, report
    assert report["lost"] == 0 and report["stuck"] == 0 and report["completed_twice"] == 0, report
    assert report["server_errors"] == 0, report
