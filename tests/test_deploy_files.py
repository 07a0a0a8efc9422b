"""The production shape (Dockerfile, docker-compose.yml) is checked here, since no Docker engine
runs on CI: structure and linting, not a build."""

from __future__ import annotations

import pathlib
import shutil
import subprocess

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_broker_and_cache_redis_have_their_roles(compose: dict) -> None:
    broker = compose["services"]["redis-broker"]["command"]
    cache = compose["services"]["redis-cache"]["command"]
    # Broker: queued jobs must survive a restart and nothing may be evicted; bounded, so a full
    # broker refuses writes (503) rather than being OOM-killed.
    assert "--appendonly yes" in broker and "noeviction" in broker and "--maxmemory " in broker
    # Cache: bounded and LRU, no persistence.
    assert "allkeys-lru" in cache and "--maxmemory " in cache and "--appendonly no" in cache


def test_gpu_worker_reserves_a_gpu_and_runs_one_job_per_child(compose: dict) -> None:
    gpu = compose["services"]["worker-gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
    assert gpu["environment"]["OPTIM_WORKER_QUEUES"] == "gpu"
    assert gpu["environment"]["OPTIM_WORKER_MAX_TASKS_PER_CHILD"] == "1"
    assert gpu["build"]["args"]["TORCH_VARIANT"].startswith("cu")
    assert compose["services"]["worker-cpu"]["environment"]["OPTIM_WORKER_QUEUES"] == "cpu"


def test_cpu_worker_memory_covers_its_concurrency_at_the_api_limit(compose: dict) -> None:
    from app.core.config import Settings

    cpu = compose["services"]["worker-cpu"]
    limit = cpu["deploy"]["resources"]["limits"]["memory"]
    assert limit.endswith("g")
    per_job_gb = Settings().max_memory_mb / 1024
    assert float(limit[:-1]) >= int(cpu["environment"]["OPTIM_WORKER_CONCURRENCY"]) * per_job_gb


def test_flower_is_loopback_only_and_requires_basic_auth(compose: dict) -> None:
    flower = compose["services"]["flower"]
    assert all(str(p).startswith("127.0.0.1:") for p in flower["ports"])
    command = " ".join(flower["command"])
    assert "--basic-auth=" in command and 'test -n "$$FLOWER_BASIC_AUTH"' in command


def _stage(text: str, name: str) -> str:
    """The lines of one Dockerfile stage, ``FROM ... AS name`` up to the next ``FROM``."""
    start = text.index(f" AS {name}\n")
    end = text.find("\nFROM ", start)
    return text[start:] if end < 0 else text[start:end]


def test_flower_has_its_own_image_and_asks_workers_for_events(compose: dict) -> None:
    flower = compose["services"]["flower"]
    assert flower["build"]["target"] == "flower"
    text = (ROOT / "Dockerfile").read_text()
    # Flower is only a dev extra of pyproject.toml: the image installs it (from the stage its
    # venv is copied from), and nothing of torch.
    stage = _stage(text, "flower")
    assert "COPY --from=flower-deps /opt/venv" in stage and "USER 10001" in stage
    deps = _stage(text, "flower-deps")
    assert 'pip install "flower>=2.0,<3"' in deps and "torch" not in deps
    assert "FROM api-deps AS flower-deps" in text
    # The workers send no task events of their own (worker_send_task_events is off, so they
    # pay nothing while Flower is down): Flower asks them for events while it runs.
    assert "--enable_events=true" in " ".join(flower["command"])


def test_flower_command_options_are_flower_options(compose: dict) -> None:
    pytest.importorskip("flower")
    from flower import options  # defines Flower's options in tornado's registry

    # A misspelt option would stop Flower at startup, so check each against Flower's own list
    # (tornado keeps them with dashes and accepts either spelling).
    command = " ".join(compose["services"]["flower"]["command"])
    args = command.split(" flower ", 1)[1].split()
    names = {a[2:].split("=", 1)[0].replace("_", "-") for a in args if a.startswith("--")}
    assert {"port", "basic-auth", "enable-events"} <= names
    assert names <= set(options.options._options), names


def test_services_point_at_their_redis(compose: dict) -> None:
    for name in ("api", "worker-cpu", "worker-gpu"):
        env = compose["services"][name]["environment"]
        assert "redis-broker" in env["OPTIM_REDIS_URL"]
        assert "redis-cache" in env["OPTIM_CACHE_REDIS_URL"]


def test_dockerfile_is_multistage_nonroot_with_healthchecks() -> None:
    text = (ROOT / "Dockerfile").read_text()
    stages = [line.split()[-1] for line in text.splitlines() if line.startswith("FROM ")]
    assert {"api", "worker", "flower"} <= set(stages)
    for name in ("api", "worker", "flower"):
        stage = _stage(text, name)
        assert "USER 10001" in stage and "HEALTHCHECK" in stage, name
    assert "ARG TORCH_VARIANT=cpu" in text


@pytest.mark.skipif(shutil.which("hadolint") is None, reason="hadolint not installed")
def test_dockerfile_lints_clean() -> None:
    proc = subprocess.run(["hadolint", str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose not installed")
def test_compose_file_validates() -> None:
    proc = subprocess.run(["docker-compose", "--profile", "gpu", "--profile", "flower", "config",
                           "-q"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_rabbitmq_is_the_broker_with_a_consumer_timeout_above_the_hard_limit(
        compose: dict) -> None:
    from workers.settings import WorkerSettings

    rabbit = compose["services"]["rabbitmq"]
    args = rabbit["environment"]["RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS"].split()
    timeout_ms = int(args[args.index("consumer_timeout") + 1])
    assert timeout_ms > WorkerSettings().job_hard_time_limit_s * 1000
    for name in ("api", "worker-cpu", "worker-gpu", "flower"):
        env = compose["services"][name]["environment"]
        assert env["OPTIM_BROKER_URL"].startswith("amqp://"), name
        assert "rabbitmq" in compose["services"][name]["depends_on"], name
