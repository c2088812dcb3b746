"""The memory monitor against a real replay memory on Redis: fields, rates, Redis restarts, the CLI."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from hiverl.events import JsonlSink
from hiverl.services import RedisServer
from hiverl.telemetry.schema import MEMORY_MONITORING_TOPIC, validate_event
from monitor.service import MemoryMonitor, MemorySource, MonitorSettings
from replay_memory import MemoryConfig, ObservationSpec, ReplayMemory, TransitionBatch


def make_memory(redis_url: str, prefix: str, shards: int = 2) -> ReplayMemory:
    config = MemoryConfig(
        name="hive",
        capacity=64,
        shards=shards,
        observation=ObservationSpec((4,), "float32"),
        key_prefix=prefix,
    )
    return ReplayMemory.open(redis_url, config)


def batch(n: int, start: int = 0) -> TransitionBatch:
    rng = np.random.default_rng(start)
    return TransitionBatch(
        obs=rng.normal(size=(n, 4)).astype(np.float32),
        actions=np.zeros(n, np.int64),
        rewards=np.ones(n, np.float32),
        next_obs=rng.normal(size=(n, 4)).astype(np.float32),
        discounts=np.full(n, 0.99, np.float32),
        terminated=np.zeros(n, bool),
        truncated=np.zeros(n, bool),
        n_steps=np.ones(n, np.int32),
        episode_ids=np.zeros(n, np.int64),
        step_indices=np.arange(start, start + n, dtype=np.int64),
        worker_id="w0",
        priorities=np.linspace(1.0, 2.0, n, dtype=np.float32),
    )


def read_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_events_carry_sizes_rates_priorities_and_redis_info(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    memory = make_memory(redis_url, redis_prefix, shards=1)
    memory.insert(batch(40))
    sink = JsonlSink(tmp_path / "events.jsonl")
    monitor = MemoryMonitor(
        MemorySource(redis_url, "hive", redis_prefix), sink, MonitorSettings(interval_s=0.1)
    )
    first = monitor.poll_once()
    memory.insert(batch(50, start=40))  # 90 inserted into 64 slots: evictions
    memory.sample(8, beta=0.4)
    second = monitor.poll_once()
    sink.close()
    memory.close()

    [total1] = [e for e in first if e["shard"] == -1]
    [total2] = [e for e in second if e["shard"] == -1]
    assert (
        total1["size"] == 40 and total1["capacity"] == 64 and total1["fill_ratio"] == pytest.approx(40 / 64)
    )
    assert total1["insert_rate"] is None  # no rate before a second poll
    assert total2["size"] == 64 and total2["evicted_total"] == 26 and total2["inserted_total"] == 90
    dt = total2["event_time"] - total1["event_time"]
    assert total2["insert_rate"] == pytest.approx(50 / dt)
    assert total2["sample_rate"] == pytest.approx(total2["sampled_total"] / dt)
    assert total2["eviction_rate"] == pytest.approx(26 / dt)
    assert total2["priority_mean"] == pytest.approx(total2["priority_sum"] / 64)
    assert 0 < total2["priority_min"] <= total2["priority_mean"] <= total2["priority_max"]
    assert total2["bytes_used"] > 0 and total2["bytes_per_transition"] == pytest.approx(
        total2["bytes_used"] / 64
    )
    assert total2["redis_used_memory"] > 0 and total2["redis_connected_clients"] >= 1
    for event in read_events(tmp_path / "events.jsonl"):
        assert event.pop("topic") == MEMORY_MONITORING_TOPIC
        validate_event(event, MEMORY_MONITORING_TOPIC)  # every event follows the schema


def test_the_monitor_survives_a_redis_restart(private_redis: RedisServer, tmp_path: Path) -> None:
    make_memory(private_redis.url, "m:").close()
    sink = JsonlSink(tmp_path / "events.jsonl")
    monitor = MemoryMonitor(
        MemorySource(private_redis.url, "hive", "m:"),
        sink,
        MonitorSettings(interval_s=0.2, backoff_max_s=0.5),
    )
    stop = threading.Event()
    thread = threading.Thread(target=monitor.run, args=(stop,), daemon=True)
    thread.start()
    try:
        while monitor.polls < 2:
            time.sleep(0.1)
        private_redis.stop()
        while monitor.failures < 2:
            time.sleep(0.1)
        private_redis.start()
        polls_after_restart = monitor.polls + 3
        deadline = time.monotonic() + 60
        while monitor.polls < polls_after_restart and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stop.set()
        thread.join(10)
        sink.close()
    assert monitor.polls >= polls_after_restart, "no polls after Redis came back"
    assert monitor.failures >= 2


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="interval_s"):
        MonitorSettings(interval_s=0)
    with pytest.raises(ValueError, match="memory_name"):
        MonitorSettings(memory_name="")


def test_hiverl_monitor_polls_and_publishes(
    redis_url: str, redis_prefix: str, kafka_bootstrap: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from hiverl.cli import app

    make_memory(redis_url, redis_prefix).close()
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_bootstrap)
    monkeypatch.setenv("HIVERL_HOME", str(tmp_path / "home"))
    out = tmp_path / "events.jsonl"
    result = CliRunner().invoke(
        app,
        [
            "monitor",
            "--interval",
            "0.1",
            "--key-prefix",
            redis_prefix,
            "--max-polls",
            "2",
            "--jsonl",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "after 2 polls" in result.output
    events = read_events(out)
    assert len(events) >= 2 and all(e["memory_name"] == "hive" for e in events)


def test_the_monitor_waits_for_a_memory_that_does_not_exist_yet(
    redis_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    sink = JsonlSink(tmp_path / "events.jsonl")
    monitor = MemoryMonitor(MemorySource(redis_url, "hive", redis_prefix), sink,
                            MonitorSettings(interval_s=0.1, backoff_max_s=0.2))  # fmt: skip
    stop = threading.Event()
    thread = threading.Thread(target=monitor.run, args=(stop,), daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while monitor.failures < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert monitor.polls == 0
        make_memory(redis_url, redis_prefix).close()
        while monitor.polls < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(10)
        sink.close()
    assert monitor.failures >= 2 and monitor.polls >= 1
    assert read_events(tmp_path / "events.jsonl")[0]["size"] == 0
