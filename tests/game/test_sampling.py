"""The learner's data path on the real Redis: sampler processes (chunks in request order, slots never
written while lent, failures and outages reported), the stager (batches on the device, observations
stacked from unique frames, whole rows) and the priority writer (a chunk of steps per round trip,
drained before a checkpoint)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from game.sampling import SamplerError, SamplerPool
from game.staging import DeviceBatch, PriorityWriter, Stager
from hiverl.services import RedisServer
from replay_memory import MemoryConfig, ObservationSpec, ReplayMemory, TransitionBatch
from tests.helpers.replay import cartpole_batch, sampled_ids

CHUNK = 4
BATCH = 8


def memory_config(prefix: str, spec: ObservationSpec | None = None) -> MemoryConfig:
    return MemoryConfig(
        name="sampling",
        capacity=1000,
        alpha=1.0,
        observation=spec or ObservationSpec(shape=(4,)),
        key_prefix=prefix,
    )


@pytest.fixture
def memory(redis_url: str, redis_prefix: str) -> Iterator[ReplayMemory]:
    with ReplayMemory.open(redis_url, memory_config(redis_prefix)) as opened:
        yield opened


def make_pool(
    redis_url: str, config: MemoryConfig, samplers: int = 1, slots: int = 2, **kwargs: object
) -> SamplerPool:
    return SamplerPool(
        redis_url,
        config,
        rows=BATCH * CHUNK,
        samplers=samplers,
        seed=0,
        slots_per_sampler=slots,
        **kwargs,  # type: ignore[arg-type]
    )


def host(batch: DeviceBatch) -> SimpleNamespace:
    """A device batch's columns as arrays (for tests.helpers.replay.sampled_ids)."""
    return SimpleNamespace(
        obs=batch.obs.numpy(),
        next_obs=batch.next_obs.numpy(),
        rewards=batch.rewards.numpy(),
        actions=batch.actions.numpy(),
    )


def test_chunks_are_handed_out_in_request_order_and_slots_are_never_written_while_lent(
    memory: ReplayMemory, redis_url: str, redis_prefix: str
) -> None:
    """Each chunk is sampled while the memory holds a different phase of data (the newest phase with
    overwhelming priority), so every batch tells which request it came from."""
    pool = make_pool(redis_url, memory.config, samplers=2, slots=1)
    stager = Stager(pool, torch.device("cpu"), (4,), BATCH)
    assert pool.next_chunk() is None  # nothing requested
    phases = [(0, 1.0), (1000, 1e8)]
    try:
        for start, priority in phases:
            memory.insert(cartpole_batch(np.arange(start, start + 100), priorities=np.full(100, priority)))
            sampler = pool.free[0][0]
            pool.request(beta=0.4)
            assert pool.connections[sampler].poll(30)  # sampled before the next phase is written
        assert not pool.can_request  # both slots lent: no third request until one is released
        for start, _ in phases:
            chunk = pool.next_chunk()
            assert chunk is not None and len(chunk) == BATCH * CHUNK
            batches = stager.stage(chunk)  # on a CPU the slot is free again at once
            assert [len(b) for b in batches] == [BATCH] * CHUNK
            for batch in batches:
                ids = sampled_ids(host(batch))  # whole rows, never torn
                assert np.all((ids >= start) & (ids < start + 100)), (start, ids)
                assert np.array_equal(batch.indices % 1000, batch.indices)
        assert pool.can_request and len(pool.free) == 2
        assert pool.next_chunk() is None and pool.blocked_s >= 0.0
    finally:
        pool.close()


def test_frame_stacks_are_stacked_from_their_unique_frames(redis_url: str, redis_prefix: str) -> None:
    """uint8 [4, 6, 6] stacks whose frames encode (id, position): every staged observation is the stack
    that was inserted, and next_obs shares its frames (n=1)."""
    spec = ObservationSpec(shape=(4, 6, 6), dtype="uint8")
    config = memory_config(redis_prefix, spec)
    ids = np.arange(60)
    frames = (ids[:, None] + np.arange(5)[None, :]).astype(np.uint8)  # frame k of id i: value i + k
    stacks = np.broadcast_to(frames[:, :, None, None], (60, 5, 6, 6))
    with ReplayMemory.open(redis_url, config) as memory:
        memory.insert(
            TransitionBatch(
                obs=np.ascontiguousarray(stacks[:, :4]),
                actions=ids % 3,
                rewards=ids.astype(np.float32),
                next_obs=np.ascontiguousarray(stacks[:, 1:]),
                discounts=np.full(60, 0.99, np.float32),
                terminated=np.zeros(60, bool),
                truncated=np.zeros(60, bool),
                n_steps=np.ones(60, np.int32),
                episode_ids=ids,
                step_indices=ids,
                worker_id="frames",
            )
        )
    pool = make_pool(redis_url, config)
    try:
        pool.request(beta=0.4)
        chunk = pool.next_chunk()
        assert chunk is not None
        assert len(chunk.frames) == 5 * len(chunk)  # 5 unique frames per row, not 8
        for batch in Stager(pool, torch.device("cpu"), spec.shape, BATCH).stage(chunk):
            assert batch.obs.dtype == torch.uint8 and batch.obs.shape == (BATCH, 4, 6, 6)
            row_ids = batch.rewards.numpy().astype(np.int64)
            np.testing.assert_array_equal(batch.obs.numpy(), stacks[row_ids, :4])
            np.testing.assert_array_equal(batch.next_obs.numpy(), stacks[row_ids, 1:])
            np.testing.assert_array_equal(batch.actions.numpy(), row_ids % 3)
    finally:
        pool.close()


def test_a_sampler_killed_is_an_error_not_a_hang(memory: ReplayMemory, redis_url: str) -> None:
    memory.insert(cartpole_batch(np.arange(100)))
    pool = make_pool(redis_url, memory.config)
    try:
        os.kill(pool.processes[0].pid, signal.SIGKILL)
        pool.processes[0].join(timeout=10)
        with pytest.raises(SamplerError, match="died"):
            pool.request(beta=0.4)
            pool.next_chunk()
    finally:
        pool.close()


def test_a_sampler_waits_out_a_redis_restart_and_says_so(private_redis: RedisServer) -> None:
    config = memory_config("outage:")
    with ReplayMemory.open(private_redis.url, config) as memory:
        memory.insert(cartpole_batch(np.arange(100)))
    outages: list[str] = []
    pool = make_pool(private_redis.url, config, slots=1, on_outage=outages.append)
    try:
        pool.request(beta=0.4)
        first = pool.next_chunk()
        assert first is not None
        pool.release(first)
        private_redis.stop()
        pool.request(beta=0.4)
        time.sleep(1.5)
        kind, text = pool.connections[0].recv()  # no chunk: the sampler is waiting, and says so
        assert kind == "outage" and "Redis unavailable" in text
        private_redis.start()  # AOF: the memory is back
        chunk = pool.next_chunk()
        assert chunk is not None and len(chunk) == BATCH * CHUNK
        assert outages and "Redis unavailable" in outages[0]
    finally:
        pool.close()


def test_priorities_are_written_a_chunk_of_steps_at_a_time_and_drained(
    memory: ReplayMemory, redis_url: str, redis_prefix: str
) -> None:
    memory.insert(cartpole_batch(np.arange(200), priorities=np.ones(200)))
    mass_before = memory.stats().priority_sum
    assert mass_before == pytest.approx(200.0)
    writer = PriorityWriter(
        redis_url, memory.config, chunk=CHUNK, priority_eps=1.0, should_stop=lambda: False, on_outage=print
    )
    sample = memory.sample(BATCH * CHUNK, beta=0.4, rng=np.random.default_rng(0))
    updated: set[int] = set()
    try:
        for step in range(CHUNK):
            rows = sample.rows(step * BATCH, (step + 1) * BATCH)
            writer.add(rows.indices, rows.generations, torch.full((BATCH,), 10.0))  # + eps = 11
            updated |= {int(i) for i in rows.indices}
            if step < CHUNK - 1:  # still buffered: nothing sent, nothing written
                assert not writer.writes and len(writer.buffer) == step + 1
                assert memory.stats().priority_sum == pytest.approx(mass_before)
        assert len(writer.writes) == 1 and not writer.buffer  # one write with every buffered step
        writer.writes[0].result(timeout=30)
        assert memory.stats().priority_sum == pytest.approx(mass_before + 10.0 * len(updated))
        # A partial chunk is written by drain() (before a checkpoint) and by close().
        rows = sample.rows(0, BATCH)
        writer.add(rows.indices, rows.generations, torch.full((BATCH,), 2.0))  # 3
        writer.drain()
        assert not writer.writes and not writer.buffer
        distinct = len({int(i) for i in rows.indices})
        assert memory.stats().priority_sum == pytest.approx(
            mass_before + 10.0 * len(updated) - 8.0 * distinct
        )
    finally:
        writer.close()


def test_slots_leave_no_file_behind(memory: ReplayMemory, redis_url: str) -> None:
    """Once every sampler runs, its slots live only in the mappings: a learner killed with -9 leaves
    nothing in /dev/shm."""
    memory.insert(cartpole_batch(np.arange(100)))
    pool = make_pool(redis_url, memory.config, samplers=2)
    try:
        for _ in range(2):  # an answer from each sampler: both mapped their slots
            pool.request(beta=0.4)
        for _ in range(2):
            chunk = pool.next_chunk()
            assert chunk is not None
            pool.release(chunk)
        assert pool.folder.is_dir() and not list(pool.folder.iterdir())
    finally:
        pool.close()
    assert not pool.folder.exists()
