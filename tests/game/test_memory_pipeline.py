"""The worker's MemoryPipeline on the real Redis: prefetched samples and coalesced priority writes."""

from __future__ import annotations

import numpy as np
import pytest

from game.worker import MemoryPipeline
from replay_memory import MemoryConfig, ObservationSpec, ReplayMemory
from tests.replay_memory.conftest import cartpole_batch

CHUNK = 4
BATCH = 8


@pytest.fixture
def pipeline(redis_url: str, redis_prefix: str) -> MemoryPipeline:
    memory = ReplayMemory.open(
        redis_url,
        MemoryConfig(
            name="pipeline",
            capacity=1000,
            alpha=1.0,
            observation=ObservationSpec(shape=(4,)),
            key_prefix=redis_prefix,
        ),
    )
    return MemoryPipeline(memory, batch_size=BATCH, chunk=CHUNK, seed=0)


def test_priorities_are_written_a_chunk_of_learning_steps_at_a_time(pipeline: MemoryPipeline) -> None:
    pipeline.insert(cartpole_batch(np.arange(200), priorities=np.ones(200)))
    assert pipeline.size() == 200
    mass_before = pipeline.memory.stats().priority_sum
    assert mass_before == pytest.approx(200.0)

    updated: set[int] = set()
    for step in range(CHUNK):
        sample = pipeline.sample(beta=0.4)
        assert len(sample.indices) == BATCH
        pipeline.update_priorities(sample.indices, sample.generations, np.full(BATCH, 11.0))
        updated |= {int(i) for i in sample.indices}
        pipeline.size()  # calls run in order on one thread: everything submitted so far is done
        if step < CHUNK - 1:  # still buffered: nothing written yet
            assert pipeline.memory.stats().priority_sum == pytest.approx(mass_before)

    assert pipeline.memory.stats().priority_sum == pytest.approx(mass_before + 10.0 * len(updated))
    pipeline.close()


def test_drain_writes_buffered_priorities(pipeline: MemoryPipeline) -> None:
    pipeline.insert(cartpole_batch(np.arange(100), priorities=np.ones(100)))
    sample = pipeline.sample(beta=0.4)
    pipeline.update_priorities(sample.indices, sample.generations, np.full(BATCH, 3.0))
    pipeline.drain()  # before a checkpoint or exit nothing may stay buffered
    distinct = len({int(i) for i in sample.indices})
    assert pipeline.memory.stats().priority_sum == pytest.approx(100.0 + 2.0 * distinct)
    pipeline.close()
