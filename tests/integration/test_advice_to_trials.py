"""The advice's trial config goes straight into a trials job: POST /v1/advice, take
``artefacts.trial_config`` as is, add the team's experiment, POST /v1/jobs/trials, get a ranking."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from tests.integration.conftest import wait_status

pytestmark = pytest.mark.integration

# A CNN on sklearn's digits (1,437 training images at val_fraction 0.2), 30 epochs at batch 64.
ADVICE_REQUEST = {"task": "image_classification_cnn", "architecture": "cnn",
                  "param_count": 5_178, "batch_size": 64, "dataset_size": 1_437, "epochs": 30,
                  "normalization": ["batchnorm"]}
EXPERIMENT = {"data": {"kind": "digits", "as_images": True},
              "model": {"kind": "cnn", "channels": [16, 32]}, "batch_size": 64, "seed": 0}


def test_advice_trial_config_runs_as_a_trials_job(client: TestClient) -> None:
    advice = client.post("/v1/advice", json=ADVICE_REQUEST)
    assert advice.status_code == 200, advice.text
    body = advice.json()
    config = body["artefacts"]["trial_config"]

    job = client.post("/v1/jobs/trials", json={"experiment": EXPERIMENT, "config": config,
                                               "device": "cpu"})
    assert job.status_code == 202, job.text
    done = wait_status(client, job.json()["id"], {"succeeded", "failed"}, timeout=120)
    assert done["status"] == "succeeded", done.get("problem")

    result = done["result"]
    labels = [c["label"] for c in config["candidates"]]
    assert sorted(result["ranking"]) == sorted(labels)
    advised = next(t for t in result["candidates"] if t["label"] == "advice")
    # The job trained with the advice's optimizer and LR, and the advised LR learned the task.
    assert advised["optimizer"]["name"] == body["optimizer"]["name"]
    assert advised["peak_lr"] == pytest.approx(body["optimizer"]["lr"])
    assert not advised["diverged"]
    assert advised["final_train_loss"] < 0.5 * advised["curve"]["train_losses"][0]
    assert advised["final_val_loss"] is not None
