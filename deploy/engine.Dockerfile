# syntax=docker/dockerfile:1
# The engine image: the Rasa server and the action server (Rasa Open Source 3.6.21, DESIGN.md's
# "two environments"), with the model trained at build time from the repository's data.
# Build from the project root:  docker build -f deploy/engine.Dockerfile -t assistant-engine .
# Steps as in the Makefile: `make engine` (the locked environment in .venv/engine), `make model`.
FROM python:3.10-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    RASA_TELEMETRY_ENABLED=false \
    TF_CPP_MIN_LOG_LEVEL=2 \
    PATH=/app/.venv/engine/bin:$PATH

WORKDIR /app
COPY requirements/engine.lock requirements/engine.lock
RUN python -m venv .venv/engine \
 && .venv/engine/bin/pip install --no-cache-dir -r requirements/engine.lock

COPY config.yml domain.yml credentials.yml endpoints.yml ./
COPY components components
COPY data data
RUN rasa train --fixed-model-name assistant --out models --quiet \
 && rm -rf .rasa

COPY actions actions
COPY scripts scripts
COPY deploy/endpoints.py deploy/endpoints.py

# Runs as a user without a home or a shell; everything it writes goes to /tmp (an emptyDir in
# Kubernetes, so the root file system can be read-only).
RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin assistant
USER 10001
ENV HOME=/tmp MPLCONFIGDIR=/tmp/matplotlib PYTHAINLP_DATA_DIR=/tmp/pythainlp-data
EXPOSE 5005 5055
# The Kubernetes manifests (deploy/k8s/) give each container its command.
CMD ["rasa", "run", "actions", "--actions", "actions", "-p", "5055"]
