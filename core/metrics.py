"""Prometheus metrics of the service, served by `bot.health` on `/metrics`.

Every name starts with `onethread_`. The metrics live on prometheus-client's default
registry, created once at import; the functions below are what the engine, the jobs and
the adapters call. They are cheap, never raise on a known label value, and may be
called any number of times, so instrumented code needs no guards (and tests need no
set-up: importing this module twice is importing it once).

Label values are bounded by construction (platforms, stage names, job names, failure
reasons): never put a user id, chat id or text in a label, because every distinct value
is a new time series kept for the life of the process.

Timings are taken by the caller (`time.perf_counter()` differences, in seconds), so a
test can pass any value and the engine keeps its own per-stage timings dict for the
reply's snapshot: `observe_timings` turns that dict into observations in one call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Literal, Protocol, get_args

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

Stage = Literal[
    "embed", "store", "queued", "assemble", "model_slot", "llm_first_token", "llm", "record"
]
STAGES: tuple[Stage, ...] = get_args(Stage)

FailureReason = Literal[
    "llm_error",
    "llm_rate_limited",
    "deadline",
    "delivery",
    "internal",
    "storage_unavailable",
    "storage_busy",
    "shutdown",
]
"""Why a reply did not reach the person: the model failed (after the client's retries),
the model endpoint said it is overloaded, the reply missed its deadline, the platform
refused the finished reply, an unexpected error in the engine, the database could not
be reached or had no connection free, or the process stopped in the middle."""

# Buckets in seconds. Stages range from sub-millisecond (assemble) to a minute (a long
# answer), so the buckets span both ends rather than prometheus-client's web defaults.
_STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
_LLM_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60, 120)
_RECALL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
_JOB_BUCKETS = (0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 900, 1800, 3600)

MESSAGES_IN = Counter(
    "onethread_messages_in",
    "Messages addressed to the bot that the engine accepted for handling, by platform.",
    ["platform"],
)
MESSAGES_OUT = Counter(
    "onethread_messages_out",
    "Model replies delivered to the platform, by platform.",
    ["platform"],
)
REPLIES_FAILED = Counter(
    "onethread_replies_failed",
    "Replies that did not reach the person, by reason.",
    ["reason"],
)
LLM_LATENCY = Histogram(
    "onethread_llm_latency_seconds",
    "Time for one complete model answer, request to last token.",
    buckets=_LLM_BUCKETS,
)
LLM_TOKENS = Counter(
    "onethread_llm_tokens",
    "Model tokens, by direction (in: prompt, out: completion).",
    ["direction"],
)
STAGE_SECONDS = Histogram(
    "onethread_stage_seconds",
    "Time spent in each stage of answering one message "
    "(embed, store, queued, assemble, llm_first_token, llm, record).",
    ["stage"],
    buckets=_STAGE_BUCKETS,
)
RECALL_SECONDS = Histogram(
    "onethread_recall_seconds",
    "Time for one hybrid recall (vector + full text, one statement) over a person's"
    " memory, ranking included.",
    buckets=_RECALL_BUCKETS,
)
JOB_RUNS = Counter(
    "onethread_job_runs",
    "Background job runs, by job and final status.",
    ["job", "status"],
)
JOB_SECONDS = Histogram(
    "onethread_job_duration_seconds",
    "Duration of background job runs, by job.",
    ["job"],
    buckets=_JOB_BUCKETS,
)
RATE_LIMITED = Counter(
    "onethread_rate_limited",
    "Messages refused because their sender exceeded the per-user rate limit.",
)
BANNED = Counter(
    "onethread_banned",
    "Messages ignored because their sender is banned.",
)
REPLIES_IN_FLIGHT = Gauge(
    "onethread_replies_in_flight",
    "Replies this process is writing now: waiting for a model slot or streaming.",
)
MODEL_QUEUE = Gauge(
    "onethread_model_queue",
    "Replies waiting for a model slot (LLM_MAX_CONCURRENCY calls run at once).",
)
ADAPTER_CONNECTED = Gauge(
    "onethread_adapter_connected",
    "1 when the platform adapter of this process is connected, 0 otherwise.",
    ["platform"],
)

# Label values known in advance are created now, so dashboards and alerts see a 0
# instead of a missing series before the first event.
# Every answer observes these; `labels()` finds a child under a lock, so keep them.
_STAGE_CHILDREN: dict[str, Histogram] = {s: STAGE_SECONDS.labels(stage=s) for s in STAGES}
for _reason in get_args(FailureReason):
    REPLIES_FAILED.labels(reason=_reason)
_TOKENS_IN = LLM_TOKENS.labels(direction="in")
_TOKENS_OUT = LLM_TOKENS.labels(direction="out")


def count_message_in(platform: str) -> None:
    """One message addressed to the bot arrived from `platform` (e.g. "telegram")."""
    MESSAGES_IN.labels(platform=str(platform)).inc()


def count_message_out(platform: str) -> None:
    """One model reply was delivered on `platform`."""
    MESSAGES_OUT.labels(platform=str(platform)).inc()


def count_reply_failed(reason: FailureReason) -> None:
    REPLIES_FAILED.labels(reason=reason).inc()


def count_rate_limited() -> None:
    RATE_LIMITED.inc()


def count_banned() -> None:
    BANNED.inc()


def observe_llm(seconds: float, *, tokens_in: int, tokens_out: int) -> None:
    """One complete model answer: its latency and its token counts."""
    LLM_LATENCY.observe(max(0.0, seconds))
    _TOKENS_IN.inc(max(0, tokens_in))
    _TOKENS_OUT.inc(max(0, tokens_out))


def observe_stage(stage: Stage, seconds: float) -> None:
    _STAGE_CHILDREN[stage].observe(max(0.0, seconds))


def observe_timings(timings_ms: Mapping[str, int | float]) -> None:
    """Observe the engine's per-stage timings dict (`{"embed_ms": 12, ...}`).

    Keys are `<stage>_ms` with a stage of `Stage`; other keys are skipped (logged at
    DEBUG), so adding a timing to the reply snapshot never breaks answering.
    """
    for key, value in timings_ms.items():
        child = _STAGE_CHILDREN.get(key.removesuffix("_ms")) if key.endswith("_ms") else None
        if child is not None:
            child.observe(max(0.0, float(value) / 1000))
        else:
            logger.debug("timing %s is not a known stage; not observed", key)


def observe_recall(seconds: float) -> None:
    RECALL_SECONDS.observe(max(0.0, seconds))


def observe_job_run(job: str, status: str, seconds: float) -> None:
    """One finished job run; `status` as recorded in `job_runs` (ok, failed, ...)."""
    JOB_RUNS.labels(job=job, status=str(status)).inc()
    JOB_SECONDS.labels(job=job).observe(max(0.0, seconds))


def set_adapter_connected(platform: str, connected: bool) -> None:
    ADAPTER_CONNECTED.labels(platform=str(platform)).set(1 if connected else 0)


def watch_adapter(platform: str, is_connected: Callable[[], bool]) -> None:
    """Read `is_connected` at every scrape instead of being told (replaces `set_...`).

    Meant for the readiness probes' `is_ready`: the gauge then says exactly what
    `/readyz` says, with no hook in the adapters.
    """
    ADAPTER_CONNECTED.labels(platform=str(platform)).set_function(
        lambda: 1.0 if is_connected() else 0.0
    )


class PoolStats(Protocol):
    """What the pool gauges read; asyncpg's `Pool` has these methods."""

    def get_size(self) -> int: ...

    def get_idle_size(self) -> int: ...

    def get_max_size(self) -> int: ...


class _PoolCollector(Collector):
    """Reads the registered pool at scrape time: the numbers are never stale and the
    pool needs no hook of its own. asyncpg pools cannot be weakly referenced, so the
    pool is held until `register_pool(None)` or the next registration."""

    def __init__(self) -> None:
        self.pool: PoolStats | None = None

    def collect(self) -> Iterable[Metric]:
        connections = GaugeMetricFamily(
            "onethread_db_pool_connections",
            "Open connections of the database pool, by state (in_use, idle).",
            labels=["state"],
        )
        maximum = GaugeMetricFamily(
            "onethread_db_pool_max_connections",
            "The most connections the database pool may open (DB_POOL_MAX_SIZE).",
        )
        pool = self.pool
        if pool is not None:
            size, idle = pool.get_size(), pool.get_idle_size()
            connections.add_metric(["in_use"], max(0, size - idle))
            connections.add_metric(["idle"], idle)
            maximum.add_metric([], pool.get_max_size())
        return [connections, maximum]

    def describe(self) -> Iterable[Metric]:
        # Names only, without reading a pool: lets the registry check for clashes.
        return [
            GaugeMetricFamily("onethread_db_pool_connections", "", labels=["state"]),
            GaugeMetricFamily("onethread_db_pool_max_connections", ""),
        ]


_POOL_COLLECTOR = _PoolCollector()
REGISTRY.register(_POOL_COLLECTOR)


def register_pool(pool: PoolStats | None) -> None:
    """Report `pool` in the pool gauges (replacing any earlier one); None stops reporting."""
    _POOL_COLLECTOR.pool = pool


# The embedded database and backups (bot/supervisor.py, bot/backup.py). ----------------

RestartOutcome = Literal["restarted", "failed"]

EMBEDDED_RESTARTS = Counter(
    "onethread_embedded_restarts",
    "Attempts of this process to start the embedded PostgreSQL server again after it"
    " died, by outcome (restarted, failed).",
    ["outcome"],
)
for _outcome in get_args(RestartOutcome):
    EMBEDDED_RESTARTS.labels(outcome=_outcome)
BACKUP_AGE = Gauge(
    "onethread_backup_age_seconds",
    "Seconds since the newest good backup in BACKUP_DIR was taken (+Inf: none there).",
)
BACKUP_AGE.set(float("inf"))


def count_embedded_restart(outcome: RestartOutcome) -> None:
    EMBEDDED_RESTARTS.labels(outcome=outcome).inc()


def watch_backup_age(seconds: Callable[[], float]) -> None:
    """Read the backup age at every scrape (the folder is shared by every process that
    writes backups there, so it is the truth, not what this process did)."""
    BACKUP_AGE.set_function(seconds)
