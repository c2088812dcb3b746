"""Durability: a Redis restart keeps contents and priorities; save/load round-trips a snapshot."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from typer.testing import CliRunner

from hiverl.cli import app
from replay_memory import ConfigMismatchError, MemoryConfig, ReplayMemory
from replay_memory.snapshot import load, save
from tests.helpers.replay import MakeMemory, cartpole_batch, sampled_ids, stored_entries


def _fill(memory: ReplayMemory) -> None:
    memory.insert(cartpole_batch(np.arange(20), priorities=np.linspace(0.1, 4.0, 20)))
    memory.insert(cartpole_batch(np.arange(20, 40)))  # the oldest 8 are evicted
    batch = memory.sample(8, 0.4, rng=np.random.default_rng(5))
    assert memory.update_priorities(batch.indices, batch.generations, np.arange(5.0, 13.0)) == 8


def test_restart_keeps_contents_and_priorities(private_redis) -> None:
    config = MemoryConfig(name="durable", capacity=32, alpha=0.6)
    with ReplayMemory.open(private_redis.url, config) as memory:
        _fill(memory)
        before, stats_before = stored_entries(memory), memory.stats()
    private_redis.restart()
    with ReplayMemory.open(private_redis.url, config) as memory:
        assert stored_entries(memory) == before
        after = memory.stats()
        for field in (
            "size",
            "inserted_total",
            "evicted_total",
            "sampled_total",
            "priority_sum",
            "max_priority_seen",
        ):
            assert getattr(after, field) == getattr(stats_before, field), field
        # the hive resumes: scripts reload after the restart, sampling and writing work
        sampled_ids(memory.sample(8, 0.4))
        memory.insert(cartpole_batch([100]))
        assert memory.stats().inserted_total == stats_before.inserted_total + 1


def test_save_load_round_trip(make_memory: MakeMemory, redis_url: str, redis_prefix: str, tmp_path) -> None:
    memory = make_memory(name="orig", capacity=32, alpha=0.6, shards=2)
    _fill(memory)
    memory.sample(8, 0.4)
    path = tmp_path / "memory.snapshot"
    assert save(memory, path) == len(memory) > 16
    load(redis_url, path, key_prefix=redis_prefix, name="copy")
    with ReplayMemory.attach(redis_url, "copy", key_prefix=redis_prefix) as copy:
        assert stored_entries(copy) == stored_entries(memory)
        a, b = memory.stats(), copy.stats()
        for field in ("size", "inserted_total", "evicted_total", "sampled_total", "corrupt_dropped"):
            assert getattr(a, field) == getattr(b, field), field
        assert (a.priority_sum, a.priority_min, a.priority_max) == pytest.approx(
            (b.priority_sum, b.priority_min, b.priority_max), rel=1e-12
        )
        # generations survive too: an update with ids sampled before the save applies to the copy
        batch = memory.sample(4, 0.4, rng=np.random.default_rng(0))
        assert copy.update_priorities(batch.indices, batch.generations, np.full(4, 20.0)) == 4
    with pytest.raises(ConfigMismatchError, match="--replace"):
        load(redis_url, path, key_prefix=redis_prefix, name="copy")
    load(redis_url, path, key_prefix=redis_prefix, name="copy", replace=True)


def test_snapshot_is_consistent_while_writing(make_memory: MakeMemory, redis_url: str, tmp_path) -> None:
    memory = make_memory(name="busy", capacity=500)
    writer = make_memory(name="busy", capacity=500)
    stop = threading.Event()

    def write() -> None:
        i = 0
        while not stop.is_set():
            writer.insert(cartpole_batch(np.arange(i, i + 7)))
            i += 7

    thread = threading.Thread(target=write)
    thread.start()
    try:
        while memory.stats().inserted_total < 1000:
            pass
        save(memory, tmp_path / "busy.snapshot")
    finally:
        stop.set()
        thread.join()
    from replay_memory.snapshot import read_header

    assert read_header(tmp_path / "busy.snapshot").capacity == 500
    load(redis_url, tmp_path / "busy.snapshot", key_prefix=memory.config.key_prefix, name="busy2")
    with ReplayMemory.attach(redis_url, "busy2", memory.config.key_prefix) as copy:
        ids = sorted(ident for ident, _ in stored_entries(copy).values())
        # one point in time: the newest 500 writes, whole batches, no gap
        assert len(ids) == 500 and ids == list(range(ids[0], ids[0] + 500))
        assert (ids[-1] + 1) % 7 == 0


def test_cli_stats_save_load(make_memory: MakeMemory, redis_url: str, redis_prefix: str, tmp_path) -> None:
    memory = make_memory(name="cli", capacity=32, alpha=0.6)
    _fill(memory)
    runner = CliRunner()
    env = {"REDIS_URL": redis_url}
    args = ["--name", "cli", "--key-prefix", redis_prefix]
    result = runner.invoke(app, ["memory", "stats", *args], env=env)
    assert result.exit_code == 0, result.output
    for text in (
        "size               32 / 32",
        "inserted           40",
        "evicted            8",
        "priority mass sum",
    ):
        assert text in result.output
    path = tmp_path / "cli.snapshot"
    result = runner.invoke(app, ["memory", "save", str(path), *args], env=env)
    assert result.exit_code == 0 and "saved 32 transitions" in result.output, result.output
    result = runner.invoke(app, ["memory", "load", str(path), *args], env=env)
    assert result.exit_code == 1 and "--replace" in result.output
    result = runner.invoke(app, ["memory", "load", str(path), *args, "--replace"], env=env)
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["memory", "stats", "--name", "nope", "--key-prefix", redis_prefix], env=env)
    assert result.exit_code == 1 and "no replay memory" in result.output


def test_load_into_a_new_layout(make_memory: MakeMemory, redis_url: str, redis_prefix: str, tmp_path) -> None:
    memory = make_memory(name="small", capacity=32, alpha=0.6)
    _fill(memory)
    path = tmp_path / "small.snapshot"
    save(memory, path)
    mass_by_id = dict(stored_entries(memory).values())

    # grow: twice the capacity over two shards; every entry keeps its priority
    load(redis_url, path, key_prefix=redis_prefix, name="grown", shards=2, capacity=64)
    with ReplayMemory.attach(redis_url, "grown", key_prefix=redis_prefix) as grown:
        assert (grown.config.shards, grown.config.capacity, len(grown)) == (2, 64, 32)
        got = dict(stored_entries(grown).values())
        assert got.keys() == mass_by_id.keys()
        for ident, mass in mass_by_id.items():
            assert got[ident] == pytest.approx(mass, rel=1e-9)
        sampled_ids(grown.sample(32, 0.4))

    # shrink: the newest writes are kept
    load(redis_url, path, key_prefix=redis_prefix, name="shrunk", shards=2, capacity=16)
    with ReplayMemory.attach(redis_url, "shrunk", key_prefix=redis_prefix) as shrunk:
        assert sorted(ident for ident, _ in stored_entries(shrunk).values()) == list(range(24, 40))
