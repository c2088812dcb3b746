"""The arrays that go into and come out of the memory."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class TransitionBatch:
    """B transitions from one worker, already n-step aggregated.

    Attributes:
        obs: ``[B, *shape]`` observations at step t, in the memory's spec dtype.
        actions: ``[B]`` int64 discrete action indices.
        rewards: ``[B]`` float32 n-step discounted returns ``sum_{k<n} gamma^k r_{t+k}``.
        next_obs: ``[B, *shape]`` observations at t+n (the bootstrap state).
        discounts: ``[B]`` float32 ``gamma^n``, or 0.0 where the episode terminated within n.
        terminated: ``[B]`` bool.
        truncated: ``[B]`` bool.
        n_steps: ``[B]`` int32, the n actually used (shorter at an episode's end).
        episode_ids: ``[B]`` int64.
        step_indices: ``[B]`` int64, env step of ``obs`` within its episode.
        worker_id: the writer's id.
        priorities: ``[B]`` float32 initial priorities (Ape-X), or None for the largest seen so far.
    """

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_obs: np.ndarray
    discounts: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    n_steps: np.ndarray
    episode_ids: np.ndarray
    step_indices: np.ndarray
    worker_id: str
    priorities: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.actions)


@dataclass
class SampledBatch:
    """B transitions drawn with probability P(i) = p_i^alpha / sum_k p_k^alpha.

    Attributes:
        obs, next_obs: ``[B, *shape]`` in the spec dtype.
        actions: ``[B]`` int64. rewards: ``[B]`` float32. discounts: ``[B]`` float32 (0 where terminated).
        weights: ``[B]`` float32 importance weights ``(N P(i))^-beta / max_j w_j`` (max over the memory).
        indices: ``[B]`` int64 global slot ids (``shard * shard_capacity + slot``).
        generations: ``[B]`` int64 write sequence of each slot, for stale-update checks.
        probabilities: ``[B]`` float64 P(i) at sampling time.
    """

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_obs: np.ndarray
    discounts: np.ndarray
    weights: np.ndarray
    indices: np.ndarray
    generations: np.ndarray
    probabilities: np.ndarray

    def __len__(self) -> int:
        return len(self.indices)


@dataclass
class MemoryStats:
    """Counters and sizes of the whole memory (summed over shards).

    ``priority_sum``/``priority_min``/``priority_max`` are over the stored sampling masses p_i^alpha
    of the live entries (min over non-zero ones; 0 when empty). ``bytes_used`` is Redis's own
    ``MEMORY USAGE`` of the memory's keys (hashes are estimated by Redis from a sample).
    """

    size: int
    capacity: int
    inserted_total: int
    sampled_total: int
    evicted_total: int
    priority_sum: float
    priority_min: float
    priority_max: float
    bytes_used: int
    corrupt_dropped: int
    shards: int
    max_priority_seen: float = 1.0
