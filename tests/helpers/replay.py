"""Replay-memory test data: transitions that carry an integer id in every field.

(obs[0], reward, next_obs[0] - 0.5, action = id % 2), so a test can tell which write a sampled row
came from and that it is whole.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from replay_memory import ReplayMemory, TransitionBatch

MakeMemory = Callable[..., ReplayMemory]


def cartpole_batch(
    ids: np.ndarray | list[int], worker: str = "w0", priorities: np.ndarray | None = None
) -> TransitionBatch:
    """Transitions whose every field encodes its id."""
    ids = np.asarray(ids, dtype=np.int64)
    b = len(ids)
    obs = np.zeros((b, 4), np.float32)
    obs[:, 0] = ids
    obs[:, 1] = np.arange(b)
    next_obs = obs.copy()
    next_obs[:, 0] += 0.5
    return TransitionBatch(
        obs=obs,
        actions=ids % 2,
        rewards=ids.astype(np.float32),
        next_obs=next_obs,
        discounts=np.full(b, 0.99, np.float32),
        terminated=np.zeros(b, bool),
        truncated=np.zeros(b, bool),
        n_steps=np.ones(b, np.int32),
        episode_ids=np.zeros(b, np.int64),
        step_indices=ids,
        worker_id=worker,
        priorities=None if priorities is None else np.asarray(priorities, np.float32),
    )


def sampled_ids(batch: object) -> np.ndarray:
    """Ids of sampled rows, after checking each row is one whole write (not torn)."""
    obs, next_obs, rewards, actions = (getattr(batch, k) for k in ("obs", "next_obs", "rewards", "actions"))
    ids = obs[:, 0].astype(np.int64)
    assert np.array_equal(rewards, obs[:, 0])
    assert np.array_equal(next_obs[:, 0], obs[:, 0] + 0.5)
    assert np.array_equal(actions, ids % 2)
    return ids


def stored_entries(memory: ReplayMemory) -> dict[int, tuple[int, float]]:
    """global slot -> (id, mass p^alpha) of every live entry, read straight from Redis."""
    from proto.hiverl.v1 import transition_pb2 as pb

    out: dict[int, tuple[int, float]] = {}
    cap = memory.config.shard_capacity
    for shard in memory.shards:
        masses = np.frombuffer(shard.client.get(shard.keys[3]), "<f8")
        for slot, payload in shard.client.hgetall(shard.keys[1]).items():
            t = pb.Transition.FromString(payload)
            out[shard.index * cap + int(slot)] = (int(t.step_index), float(masses[int(slot)]))
    return out
