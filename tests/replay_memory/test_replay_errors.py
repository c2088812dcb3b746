"""Every bad input gets a clear error naming the field and value; nothing stored is lost."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from proto.hiverl.v1 import transition_pb2 as pb
from replay_memory import (
    BatchTooLargeError,
    ConfigMismatchError,
    EmptyMemoryError,
    InvalidConfigError,
    InvalidPriorityError,
    InvalidTransitionError,
    MemoryConfig,
    ObservationSpec,
    ObservationSpecError,
    ReplayMemoryError,
)
from replay_memory.codec import encode_batch
from tests.helpers.replay import MakeMemory, cartpole_batch, stored_entries


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"capacity": 0}, "capacity=0"),
        ({"capacity": 10, "shards": 3}, "capacity=10: a multiple of shards=3"),
        ({"alpha": 1.5}, "alpha=1.5"),
        ({"alpha": float("nan")}, "alpha=nan"),
        ({"shards": 0}, "shards=0"),
        ({"name": "a:b"}, "name='a:b'"),
    ],
)
def test_invalid_config(fields: dict, match: str) -> None:
    with pytest.raises(InvalidConfigError, match=match):
        MemoryConfig(**fields)


@pytest.mark.parametrize(
    ("shape", "dtype", "match"),
    [
        ((), "float32", "observation.shape=()"),
        ((4, 0), "uint8", "observation.shape"),
        ((4,), "int8", "observation.dtype='int8'"),
    ],
)
def test_invalid_observation_spec(shape: tuple, dtype: str, match: str) -> None:
    with pytest.raises(InvalidConfigError, match=match):
        ObservationSpec(shape, dtype)


def test_errors_are_value_errors() -> None:
    assert issubclass(ReplayMemoryError, ValueError)
    err = InvalidPriorityError("priorities[2]", float("nan"), "finite")
    assert (err.field, str(err)) == ("priorities[2]", "priorities[2]=nan: finite")


@pytest.fixture
def filled(make_memory: MakeMemory):
    memory = make_memory(capacity=16, alpha=0.6)
    memory.insert(cartpole_batch(np.arange(8)))
    before = stored_entries(memory)
    yield memory
    assert stored_entries(memory) == before  # the bad call changed nothing


def test_bad_sample_arguments(filled) -> None:
    with pytest.raises(InvalidConfigError, match="batch_size=0"):
        filled.sample(0, 0.4)
    with pytest.raises(InvalidConfigError, match=r"beta=1\.5"):
        filled.sample(4, 1.5)
    with pytest.raises(BatchTooLargeError, match="batch_size=9"):
        filled.sample(9, 0.4)


def test_bad_insert_observations(filled) -> None:
    batch = cartpole_batch([100, 101])
    with pytest.raises(ObservationSpecError, match=r"obs.shape=\(2, 5\)"):
        filled.insert(dataclasses.replace(batch, obs=np.zeros((2, 5), np.float32)))
    with pytest.raises(ObservationSpecError, match=r"next_obs\.dtype='float64'"):
        filled.insert(dataclasses.replace(batch, next_obs=batch.next_obs.astype(np.float64)))
    with pytest.raises(InvalidTransitionError, match=r"rewards\.shape"):
        filled.insert(dataclasses.replace(batch, rewards=np.zeros(3, np.float32)))
    with pytest.raises(InvalidTransitionError, match="rewards=nan"):
        filled.insert(dataclasses.replace(batch, rewards=np.array([0, np.nan], np.float32)))
    with pytest.raises(InvalidTransitionError, match="actions"):
        filled.insert(dataclasses.replace(batch, actions=np.array([0.5, 1.0])))
    with pytest.raises(BatchTooLargeError, match="batch_size=17"):
        filled.insert(cartpole_batch(np.arange(17)))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0])
def test_bad_priorities(filled, bad: float) -> None:
    with pytest.raises(InvalidPriorityError, match=r"priorities\[1\]="):
        filled.insert(cartpole_batch([100, 101], priorities=np.array([1.0, bad])))
    with pytest.raises(InvalidPriorityError, match=r"priorities\[1\]="):
        filled.update_priorities(np.array([0, 1]), np.array([0, 1]), np.array([1.0, bad]))


def test_bad_payloads(filled) -> None:
    good = encode_batch(cartpole_batch([100]), filled.config.observation)[0]
    with pytest.raises(InvalidTransitionError, match="payload="):
        filled.insert_encoded([good, b"\xff\xff\xff not protobuf"])
    t = pb.Transition.FromString(good)
    t.obs.shape[:] = [2, 2]
    with pytest.raises(ObservationSpecError, match=r"obs.shape=\(2, 2\)"):
        filled.insert_encoded([t.SerializeToString()])
    t = pb.Transition.FromString(good)
    t.next_obs.dtype = "uint8"
    with pytest.raises(ObservationSpecError, match=r"next_obs\.dtype='uint8'"):
        filled.insert_encoded([t.SerializeToString()])
    t = pb.Transition.FromString(good)
    t.obs.data = t.obs.data[:-1]
    with pytest.raises(InvalidTransitionError, match=r"obs\.data="):
        filled.insert_encoded([t.SerializeToString()])
    t = pb.Transition.FromString(good)
    t.initial_priority = float("nan")
    with pytest.raises(InvalidPriorityError, match="initial_priority"):
        filled.insert_encoded([t.SerializeToString()])


def test_good_payloads_are_stored_with_their_priority(make_memory: MakeMemory) -> None:
    memory = make_memory(capacity=4, alpha=1.0)
    payloads = encode_batch(
        cartpole_batch([7, 8], priorities=np.array([2.0, 3.0])), memory.config.observation
    )
    assert memory.insert_encoded(payloads) == 2
    assert stored_entries(memory) == {0: (7, 2.0), 1: (8, 3.0)}


def test_config_mismatch_on_open(make_memory: MakeMemory) -> None:
    make_memory(name="same", capacity=16)
    with pytest.raises(ConfigMismatchError, match=r"config\.capacity=32"):
        make_memory(name="same", capacity=32)
    with pytest.raises(ConfigMismatchError, match=r"config\.observation"):
        make_memory(name="same", capacity=16, observation=ObservationSpec((4, 84, 84), "uint8"))


def test_sampling_an_empty_or_zero_priority_memory(make_memory: MakeMemory) -> None:
    memory = make_memory(capacity=4, alpha=1.0)
    with pytest.raises(BatchTooLargeError):
        memory.sample(1, 0.4)
    memory.insert(cartpole_batch([0, 1], priorities=np.zeros(2)))
    with pytest.raises(EmptyMemoryError):
        memory.sample(1, 0.4)


def test_corrupt_entries_are_dropped_and_counted(make_memory: MakeMemory) -> None:
    memory = make_memory(capacity=16, alpha=0.0)
    memory.insert(cartpole_batch(np.arange(16)))
    shard = memory.shards[0]
    shard.client.hset(shard.keys[1], mapping={"3": b"garbage", "5": b""})  # 5: parses, but no obs
    for n in [16] + [12] * 9:  # a learner keeps going and always gets full batches
        batch = memory.sample(n, 0.4, rng=np.random.default_rng(0))
        assert len(batch) == n and not ({3, 5} & set(batch.indices.tolist()))
    s = memory.stats()
    assert (s.corrupt_dropped, s.size) == (2, 14)
    assert set(stored_entries(memory)) == set(range(16)) - {3, 5}
    # a dropped slot takes no priority updates; the next write there is a normal entry again
    assert memory.update_priorities(np.array([3]), np.array([3]), np.array([5.0])) == 0
    memory.insert(cartpole_batch(np.arange(16, 20)))
    assert memory.stats().size == 15 and 3 in stored_entries(memory)
