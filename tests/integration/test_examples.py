"""Every request example shown in the interactive docs is accepted and does what it says: the
advice examples answer 200, the job examples run to ``succeeded`` on the real worker."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.schemas import examples
from tests.integration.conftest import wait_status

pytestmark = pytest.mark.integration

SYNC = [("/v1/advice", examples.ADVICE), ("/v1/schedules/preview", examples.SCHEDULE_PREVIEW),
        ("/v1/diagnose", examples.DIAGNOSE)]
JOBS = [("/v1/jobs/lr-range-test", examples.RANGE_TEST), ("/v1/jobs/trials", examples.TRIALS)]


def _cases(groups: list[tuple[str, dict[str, dict[str, Any]]]]) -> list[Any]:
    return [pytest.param(path, ex["value"], id=f"{path}:{name}")
            for path, group in groups for name, ex in group.items()]


def test_the_docs_show_the_examples(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    for path, group in SYNC + JOBS:
        content = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]
        assert set(content["examples"]) == set(group)


@pytest.mark.parametrize(("path", "body"), _cases(SYNC))
def test_sync_examples_answer(client: TestClient, path: str, body: dict[str, Any]) -> None:
    r = client.post(path, json=body)
    assert r.status_code == 200, r.text


def test_the_diagnose_example_finds_what_it_says(client: TestClient) -> None:
    body = examples.DIAGNOSE["overfitting"]["value"]
    kinds = [f["kind"] for f in client.post("/v1/diagnose", json=body).json()["findings"]]
    assert "overfitting" in kinds


@pytest.mark.parametrize(("path", "body"), _cases(JOBS))
def test_job_examples_run(client: TestClient, path: str, body: dict[str, Any]) -> None:
    r = client.post(path, json={**body, "device": "cpu"})
    assert r.status_code in (200, 202), r.text
    done = wait_status(client, r.json()["id"], {"succeeded", "failed", "cancelled"}, timeout=120)
    assert done["status"] == "succeeded", done.get("problem")
