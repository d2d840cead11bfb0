"""The metrics change when their functions are called and are exported under their names.

Metrics live on the process-wide default registry, so every test compares values before
and after its own calls instead of expecting absolute numbers.
"""

from __future__ import annotations

import importlib

import pytest
from prometheus_client import REGISTRY, generate_latest

from core import metrics
from core.storage.database import create_pool


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def _exported() -> str:
    return generate_latest(REGISTRY).decode()


def test_message_counters_per_platform() -> None:
    before_in = _value("onethread_messages_in_total", platform="telegram")
    before_out = _value("onethread_messages_out_total", platform="discord")
    metrics.count_message_in("telegram")
    metrics.count_message_in("telegram")
    metrics.count_message_out("discord")
    assert _value("onethread_messages_in_total", platform="telegram") == before_in + 2
    assert _value("onethread_messages_out_total", platform="discord") == before_out + 1
    assert 'onethread_messages_in_total{platform="telegram"}' in _exported()


def test_failures_rate_limits_and_bans() -> None:
    before = _value("onethread_replies_failed_total", reason="delivery")
    limited = _value("onethread_rate_limited_total")
    banned = _value("onethread_banned_total")
    metrics.count_reply_failed("delivery")
    metrics.count_rate_limited()
    metrics.count_banned()
    assert _value("onethread_replies_failed_total", reason="delivery") == before + 1
    assert _value("onethread_rate_limited_total") == limited + 1
    assert _value("onethread_banned_total") == banned + 1


def test_every_known_stage_and_reason_is_exported_before_it_happens() -> None:
    text = _exported()
    for stage in metrics.STAGES:
        assert f'onethread_stage_seconds_count{{stage="{stage}"}}' in text
    assert 'onethread_replies_failed_total{reason="llm_error"}' in text


def test_llm_latency_and_tokens() -> None:
    count = _value("onethread_llm_latency_seconds_count")
    tokens_in = _value("onethread_llm_tokens_total", direction="in")
    tokens_out = _value("onethread_llm_tokens_total", direction="out")
    metrics.observe_llm(1.5, tokens_in=120, tokens_out=30)
    assert _value("onethread_llm_latency_seconds_count") == count + 1
    assert _value("onethread_llm_tokens_total", direction="in") == tokens_in + 120
    assert _value("onethread_llm_tokens_total", direction="out") == tokens_out + 30


def test_stage_timings_from_the_engine_dict() -> None:
    before = {s: _value("onethread_stage_seconds_count", stage=s) for s in metrics.STAGES}
    llm_sum = _value("onethread_stage_seconds_sum", stage="llm")
    metrics.observe_timings(
        {"embed_ms": 12, "model_slot_ms": 30, "llm_ms": 2000, "unknown_ms": 5, "llm": 1}
    )
    metrics.observe_stage("record", 0.01)
    after = {s: _value("onethread_stage_seconds_count", stage=s) for s in metrics.STAGES}
    changed = {s for s in metrics.STAGES if after[s] != before[s]}
    assert changed == {"embed", "model_slot", "llm", "record"}
    assert _value("onethread_stage_seconds_sum", stage="llm") == pytest.approx(llm_sum + 2.0)


def test_recall_and_jobs() -> None:
    recalls = _value("onethread_recall_seconds_count")
    runs = _value("onethread_job_runs_total", job="memory", status="ok")
    durations = _value("onethread_job_duration_seconds_count", job="memory")
    metrics.observe_recall(0.004)
    metrics.observe_job_run("memory", "ok", 3.2)
    assert _value("onethread_recall_seconds_count") == recalls + 1
    assert _value("onethread_job_runs_total", job="memory", status="ok") == runs + 1
    assert _value("onethread_job_duration_seconds_count", job="memory") == durations + 1


def test_adapter_connected_gauge() -> None:
    metrics.set_adapter_connected("discord", True)
    assert _value("onethread_adapter_connected", platform="discord") == 1
    metrics.set_adapter_connected("discord", False)
    assert _value("onethread_adapter_connected", platform="discord") == 0


def test_watched_adapter_is_read_at_scrape_time() -> None:
    connected = False
    metrics.watch_adapter("console", lambda: connected)
    assert _value("onethread_adapter_connected", platform="console") == 0
    connected = True
    assert _value("onethread_adapter_connected", platform="console") == 1


async def test_pool_gauges_read_the_registered_pool(fresh_dsn: str) -> None:
    pool = await create_pool(fresh_dsn, min_size=2, max_size=5)
    try:
        metrics.register_pool(pool)
        assert _value("onethread_db_pool_max_connections") == 5
        assert _value("onethread_db_pool_connections", state="idle") == 2
        async with pool.acquire():
            assert _value("onethread_db_pool_connections", state="in_use") == 1
            assert _value("onethread_db_pool_connections", state="idle") == 1
        assert "onethread_db_pool_connections" in _exported()
    finally:
        metrics.register_pool(None)
        await pool.close()
    assert REGISTRY.get_sample_value("onethread_db_pool_max_connections") is None


def test_importing_again_registers_nothing_twice() -> None:
    assert importlib.import_module("core.metrics") is metrics
    metrics.count_message_in("console")
    assert "onethread_messages_in_total" in _exported()
