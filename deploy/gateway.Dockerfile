# syntax=docker/dockerfile:1
# The gateway image: channels, router, /nlg, console and storage (DESIGN.md's gateway
# environment, pydantic 2 libraries), and the database migrations (alembic).
# Build from the project root:  docker build -f deploy/gateway.Dockerfile -t assistant-gateway .
# Steps as in the Makefile: `make gateway` (the locked environment in .venv/gateway), `make migrate`.
FROM python:3.10-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/app/.venv/gateway/bin:$PATH

WORKDIR /app
COPY requirements/gateway.lock requirements/gateway.lock
RUN python -m venv .venv/gateway \
 && .venv/gateway/bin/pip install --no-cache-dir -r requirements/gateway.lock

COPY alembic.ini ./
COPY migrations migrations
COPY locales locales
COPY bot bot
COPY scripts scripts

RUN useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin assistant
USER 10001
ENV HOME=/tmp MPLCONFIGDIR=/tmp/matplotlib GATEWAY_HOST=0.0.0.0 GATEWAY_PORT=8000
EXPOSE 8000
CMD ["python", "-m", "bot.app"]
