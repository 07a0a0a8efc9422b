# syntax=docker/dockerfile:1.7
# optim-advisor images.
#   api    : FastAPI + uvicorn, no torch (the API process never imports it)
#   worker : Celery worker with torch; CPU build by default, a CUDA build by build argument:
#            docker build --target worker --build-arg TORCH_VARIANT=cu128 -t optim-advisor-worker:cu128 .
#   flower : Flower (docker-compose.yml's optional "flower" profile), no torch
ARG PYTHON_VERSION=3.11

# ---------------------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --home-dir /srv --shell /usr/sbin/nologin app
WORKDIR /srv

# ---------------------------------------------------------------------------------------------
# Dependencies of the API only (no torch): cached until pyproject.toml changes.
FROM base AS api-deps
COPY pyproject.toml README.md ./
RUN python -m venv "$VIRTUAL_ENV" \
 && mkdir -p app workers optim_core \
 && touch app/__init__.py workers/__init__.py optim_core/__init__.py \
 && pip install . \
 && pip uninstall -y optim-advisor

# ---------------------------------------------------------------------------------------------
# Worker dependencies: torch first, from the index of the chosen build, so that nothing else
# pulls a different torch. TORCH_VARIANT: cpu (default), cu126, cu128, ...
FROM api-deps AS worker-deps
ARG TORCH_VERSION=2.13.0
ARG TORCH_VARIANT=cpu
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/${TORCH_VARIANT}
# The project's own extras are pinned by pyproject.toml; torch is pinned explicitly.
# hadolint ignore=DL3013
RUN pip install --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}" \
 && pip install ".[torch]" \
 && pip uninstall -y optim-advisor

# ---------------------------------------------------------------------------------------------
# Flower's dependencies: the API's (Flower only talks to the broker, so no torch) plus Flower
# itself, which pyproject.toml lists only among the dev extras.
FROM api-deps AS flower-deps
RUN pip install "flower>=2.0,<3"

# ---------------------------------------------------------------------------------------------
# The project itself, built once as a wheel for both images (only the four packages go in; the
# dashboard and the docs' assets ship inside app/ui/static).
FROM base AS project
COPY pyproject.toml README.md ./
COPY app ./app
COPY workers ./workers
COPY optim_core ./optim_core
COPY optim_advisor_client ./optim_advisor_client
RUN pip wheel --no-deps --wheel-dir /wheels .

# ---------------------------------------------------------------------------------------------
FROM base AS api
COPY --from=api-deps /opt/venv /opt/venv
RUN --mount=type=bind,from=project,source=/wheels,target=/wheels \
    pip install --no-deps /wheels/*.whl
USER 10001:10001
EXPOSE 8000
# The address uvicorn binds, for the app's auth check: a non-loopback address needs API keys
# (python -m app.keys create ...) or an explicit OPTIM_AUTH=open.
ENV OPTIM_HOST=0.0.0.0
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["python", "-c", "import sys,urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2).status == 200 else 1)"]
# GuardedHttp: each request must arrive whole within OPTIM_HTTP_READ_TIMEOUT_S (slowloris).
CMD ["uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", "8000", "--proxy-headers", "--http", "app.server:GuardedHttp", "--timeout-keep-alive", "5", "--timeout-graceful-shutdown", "20"]

# ---------------------------------------------------------------------------------------------
FROM base AS worker
COPY --from=worker-deps /opt/venv /opt/venv
RUN --mount=type=bind,from=project,source=/wheels,target=/wheels \
    pip install --no-deps /wheels/*.whl
USER 10001:10001
# The worker refreshes a heartbeat key in Redis; the check asks Redis for it (cheap, and it
# works while the pool is busy with a long job).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["python", "-m", "workers.healthcheck"]
# Queues and concurrency come from the environment (see docker-compose.yml). Each pool child
# runs torch with cores // concurrency threads (workers.lifecycle reads the container's CPU
# quota from cgroup v2); OPTIM_WORKER_TORCH_THREADS overrides it.
CMD ["sh", "-c", "exec celery -A workers.celery_app worker --loglevel=INFO -Q \"${OPTIM_WORKER_QUEUES:-cpu}\" -c \"${OPTIM_WORKER_CONCURRENCY:-1}\" --max-tasks-per-child \"${OPTIM_WORKER_MAX_TASKS_PER_CHILD:-1}\" -n \"worker-${OPTIM_WORKER_QUEUES:-cpu}@%h\""]

# ---------------------------------------------------------------------------------------------
# Started by docker-compose.yml's flower service, whose command refuses to run without basic
# auth and asks the workers for task events (they send none while Flower is off).
FROM base AS flower
COPY --from=flower-deps /opt/venv /opt/venv
RUN --mount=type=bind,from=project,source=/wheels,target=/wheels \
    pip install --no-deps /wheels/*.whl
USER 10001:10001
EXPOSE 5555
# /healthcheck is the one Flower page that needs no credentials.
HEALTHCHECK --interval=30s --timeout=3s --start-period=15s --retries=3 \
  CMD ["python", "-c", "import sys,urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:5555/healthcheck', timeout=2).status == 200 else 1)"]
