"""The roles' seam to the memory on the real Redis: SampleFetcher (prefetched chunks handed out in
request order, priorities written a chunk of learning steps at a time and drained) and retrying()
(an outage is a wait, never a crash; only a stop ends it)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest
import redis

from game.hive_memory import SampleFetcher, Stopped, retrying, split_batch
from hiverl.services import RedisServer, free_ports
from replay_memory import MemoryConfig, ObservationSpec, ReplayMemory
from tests.helpers.replay import cartpole_batch, sampled_ids

CHUNK = 4
BATCH = 8


def memory_config(prefix: str) -> MemoryConfig:
    return MemoryConfig(
        name="fetcher", capacity=1000, alpha=1.0, observation=ObservationSpec(shape=(4,)), key_prefix=prefix
    )


@pytest.fixture
def memory(redis_url: str, redis_prefix: str) -> Iterator[ReplayMemory]:
    with ReplayMemory.open(redis_url, memory_config(redis_prefix)) as opened:
        yield opened


def make_fetcher(redis_url: str, prefix: str, threads: int = 1) -> SampleFetcher:
    outages: list[str] = []
    return SampleFetcher(
        redis_url,
        memory_config(prefix),
        batch_size=BATCH,
        chunk=CHUNK,
        threads=threads,
        seed=0,
        should_stop=lambda: False,
        on_outage=outages.append,
    )


def test_prefetched_chunks_are_handed_out_in_request_order(
    memory: ReplayMemory, redis_url: str, redis_prefix: str
) -> None:
    """Each chunk is sampled while the memory holds a different phase of data (the newest phase with
    overwhelming priority), so every batch tells which request it came from."""
    fetcher = make_fetcher(redis_url, redis_prefix, threads=2)
    assert fetcher.request_size == BATCH * CHUNK
    assert fetcher.next_batch() is None  # nothing requested
    phases = [(0, 1.0), (1000, 1e8), (2000, 1e16)]
    try:
        for start, priority in phases:
            memory.insert(cartpole_batch(np.arange(start, start + 100), priorities=np.full(100, priority)))
            fetcher.request(beta=0.4)
            fetcher.in_flight[-1].result(timeout=30)  # sampled before the next phase is written
        assert fetcher.pending == 3 * CHUNK
        for number, (start, _) in enumerate(phases):
            for step in range(CHUNK):
                batch = fetcher.next_batch()
                assert batch is not None and len(batch) == BATCH
                ids = sampled_ids(batch)  # whole rows, never torn
                assert np.all((ids >= start) & (ids < start + 100)), (number, step, ids)
                assert fetcher.pending == 3 * CHUNK - (number * CHUNK + step + 1)
        assert fetcher.next_batch() is None and fetcher.pending == 0
        assert fetcher.blocked_s >= 0.0
    finally:
        fetcher.close()


def test_split_batch_keeps_rows_and_weights(memory: ReplayMemory) -> None:
    memory.insert(cartpole_batch(np.arange(50), priorities=np.arange(1, 51, dtype=np.float64)))
    whole = memory.sample(BATCH * CHUNK, beta=1.0, rng=np.random.default_rng(3))
    parts = split_batch(whole, CHUNK)
    assert [len(part) for part in parts] == [BATCH] * CHUNK
    assert np.array_equal(np.concatenate([p.indices for p in parts]), whole.indices)
    assert np.array_equal(np.concatenate([p.weights for p in parts]), whole.weights)
    assert split_batch(whole, 1) == [whole]


def test_priorities_are_written_a_chunk_of_learning_steps_at_a_time(
    memory: ReplayMemory, redis_url: str, redis_prefix: str
) -> None:
    memory.insert(cartpole_batch(np.arange(200), priorities=np.ones(200)))
    mass_before = memory.stats().priority_sum
    assert mass_before == pytest.approx(200.0)
    fetcher = make_fetcher(redis_url, redis_prefix)
    try:
        fetcher.request(beta=0.4)
        updated: set[int] = set()
        for step in range(CHUNK):
            batch = fetcher.next_batch()
            assert batch is not None
            fetcher.update_priorities(batch.indices, batch.generations, np.full(BATCH, 11.0, np.float32))
            updated |= {int(i) for i in batch.indices}
            if step < CHUNK - 1:  # still buffered: nothing sent, nothing written
                assert not fetcher.writes and len(fetcher.priority_buffer) == step + 1
                assert memory.stats().priority_sum == pytest.approx(mass_before)
        # The chunk-th step sent one write with every buffered step in it.
        assert len(fetcher.writes) == 1 and not fetcher.priority_buffer
        fetcher.writes[0].result(timeout=30)
        assert memory.stats().priority_sum == pytest.approx(mass_before + 10.0 * len(updated))
    finally:
        fetcher.close()


def test_drain_writes_buffered_priorities(memory: ReplayMemory, redis_url: str, redis_prefix: str) -> None:
    memory.insert(cartpole_batch(np.arange(100), priorities=np.ones(100)))
    fetcher = make_fetcher(redis_url, redis_prefix)
    try:
        fetcher.request(beta=0.4)
        batch = fetcher.next_batch()
        assert batch is not None
        fetcher.update_priorities(batch.indices, batch.generations, np.full(BATCH, 3.0, np.float32))
        assert memory.stats().priority_sum == pytest.approx(100.0)  # buffered
        fetcher.drain()  # before a checkpoint or exit nothing may stay buffered
        assert not fetcher.writes and not fetcher.priority_buffer
        distinct = len({int(i) for i in batch.indices})
        assert memory.stats().priority_sum == pytest.approx(100.0 + 2.0 * distinct)
        # close() drains too.
        fetcher.request(beta=0.4)
        second = fetcher.next_batch()
        assert second is not None
        fetcher.update_priorities(second.indices, second.generations, np.full(BATCH, 5.0, np.float32))
    finally:
        fetcher.close()
    assert not fetcher.priority_buffer and not fetcher.writes
    assert memory.stats().priority_sum > 100.0 + 2.0 * distinct


def test_retrying_waits_out_an_outage(private_redis: RedisServer) -> None:
    client = redis.Redis.from_url(private_redis.url, socket_connect_timeout=0.5, socket_timeout=2)
    client.set("k", "v")
    private_redis.stop()
    outages: list[str] = []
    result: dict[str, object] = {}

    def call() -> None:
        result["value"] = retrying(lambda: client.get("k"), lambda: False, outages.append)

    thread = threading.Thread(target=call)
    thread.start()
    time.sleep(1.0)
    assert thread.is_alive() and outages  # waiting, and saying so
    assert "Redis unavailable" in outages[0] and "retrying in" in outages[0]
    private_redis.start()  # AOF: the data is back
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert result["value"] == b"v"
    client.close()


def test_only_a_stop_ends_the_wait() -> None:
    port = free_ports()[0]  # nothing listens there
    attempts: list[float] = []

    def connect() -> None:
        attempts.append(time.monotonic())
        socket.create_connection(("127.0.0.1", port), timeout=1).close()

    outages: list[str] = []
    started = time.monotonic()
    with pytest.raises(Stopped):
        retrying(connect, lambda: time.monotonic() > started + 1.0, outages.append)
    assert 0.9 < time.monotonic() - started < 5.0
    # Retried with backoff (0.1, 0.2, 0.4 s, ...) until the stop came; each failure reported.
    assert len(attempts) >= 3 and len(outages) == len(attempts)
    gaps = np.diff(attempts)
    assert gaps[1] > gaps[0] * 1.5
