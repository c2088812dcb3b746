"""Priority updates: batched, applied to live slots, ignored for slots overwritten since sampling."""

from __future__ import annotations

import numpy as np
import pytest

from replay_memory import UnknownIdError
from tests.helpers.replay import MakeMemory, cartpole_batch, stored_entries


def test_stale_updates_are_ignored_and_live_ones_applied(make_memory: MakeMemory) -> None:
    memory = make_memory(capacity=8, alpha=1.0)
    memory.insert(cartpole_batch(np.arange(8)))
    batch = memory.sample(8, 0.5, rng=np.random.default_rng(0))
    memory.insert(cartpole_batch(np.arange(8, 12)))  # overwrites slots 0..3

    applied = memory.update_priorities(batch.indices, batch.generations, np.full(len(batch), 10.0))
    live = batch.indices >= 4
    assert applied == int(live.sum())
    masses = {slot: mass for slot, (_, mass) in stored_entries(memory).items()}
    for slot in range(8):
        expected = 10.0 if slot in set(batch.indices[live].tolist()) else 1.0
        assert masses[slot] == expected, slot

    # the new writes in slots 0..3 have generations 8..11: updates to them apply
    applied = memory.update_priorities(np.arange(4), np.arange(8, 12), np.array([2.0, 3.0, 4.0, 5.0]))
    assert applied == 4
    masses = {slot: mass for slot, (_, mass) in stored_entries(memory).items()}
    assert [masses[s] for s in range(4)] == [2.0, 3.0, 4.0, 5.0]
    assert memory.stats().max_priority_seen == 10.0


def test_update_changes_sampling(make_memory: MakeMemory) -> None:
    memory = make_memory(capacity=4, alpha=1.0)
    memory.insert(cartpole_batch(np.arange(4)))
    memory.update_priorities(np.arange(4), np.arange(4), np.array([0.0, 0.0, 0.0, 1.0]))
    batch = memory.sample(4, 1.0, rng=np.random.default_rng(1))
    assert set(batch.indices.tolist()) == {3}
    assert memory.stats().priority_sum == 1.0


def test_unknown_ids_change_nothing(make_memory: MakeMemory) -> None:
    memory = make_memory(capacity=8, alpha=1.0)
    memory.insert(cartpole_batch(np.arange(4)))
    before = stored_entries(memory)
    with pytest.raises(UnknownIdError, match="generation=9"):  # slot 1 written once, generation 1
        memory.update_priorities(np.array([0, 1]), np.array([0, 9]), np.array([5.0, 5.0]))
    with pytest.raises(UnknownIdError, match="indices\\[0\\]=8"):
        memory.update_priorities(np.array([8]), np.array([0]), np.array([5.0]))
    with pytest.raises(UnknownIdError, match="generations\\[0\\]=-1"):
        memory.update_priorities(np.array([0]), np.array([-1]), np.array([5.0]))
    assert stored_entries(memory) == before
