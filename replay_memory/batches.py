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

    Observations come as the batch's unique frames and, per row, which frames make its observation:
    ``obs = frames[obs_frames].reshape(B, *obs_shape)`` (:attr:`obs`, :attr:`next_obs`). A frame
    stack's ``obs`` and ``next_obs`` share most of their frames, so a learner moves each unique frame
    once (to its GPU, say) and stacks them there; a flat observation (CartPole's) is one frame.

    Attributes:
        frames: ``[F, *frame_shape]`` in the spec dtype (``frame_shape`` is ``shape[1:]`` for a
            frame stack, ``shape`` for a flat observation).
        obs_frames, next_obs_frames: ``[B, C]`` int64 rows of ``frames`` (C = ``shape[0]`` for a
            frame stack, 1 for a flat observation).
        obs_shape: ``shape`` of one observation.
        actions: ``[B]`` int64. rewards: ``[B]`` float32. discounts: ``[B]`` float32 (0 where terminated).
        weights: ``[B]`` float32 importance weights ``(N P(i))^-beta / max_j w_j`` (max over the memory).
        indices: ``[B]`` int64 global slot ids (``shard * shard_capacity + slot``).
        generations: ``[B]`` int64 write sequence of each slot, for stale-update checks.
        probabilities: ``[B]`` float64 P(i) at sampling time.
    """

    frames: np.ndarray
    obs_frames: np.ndarray
    next_obs_frames: np.ndarray
    obs_shape: tuple[int, ...]
    actions: np.ndarray
    rewards: np.ndarray
    discounts: np.ndarray
    weights: np.ndarray
    indices: np.ndarray
    generations: np.ndarray
    probabilities: np.ndarray

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def obs(self) -> np.ndarray:
        """``[B, *obs_shape]`` observations at t (stacked from :attr:`frames`: a copy)."""
        return self.frames[self.obs_frames].reshape(len(self), *self.obs_shape)

    @property
    def next_obs(self) -> np.ndarray:
        """``[B, *obs_shape]`` observations at t+n (a copy)."""
        return self.frames[self.next_obs_frames].reshape(len(self), *self.obs_shape)

    def rows(self, start: int, stop: int) -> SampledBatch:
        """Rows ``start:stop`` as a batch of their own (the frames are shared, not copied)."""
        per_row = {name: getattr(self, name)[start:stop] for name in ROW_FIELDS}
        return SampledBatch(frames=self.frames, obs_shape=self.obs_shape, **per_row)


#: The per-row columns of a :class:`SampledBatch` (everything but ``frames`` and ``obs_shape``).
ROW_FIELDS = (
    "obs_frames",
    "next_obs_frames",
    "actions",
    "rewards",
    "discounts",
    "weights",
    "indices",
    "generations",
    "probabilities",
)


def concat_rows(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Decoded rows of several calls as one set of columns: the frames joined, each part's frame
    indices shifted past the frames before it."""
    if len(parts) == 1:
        return parts[0]
    offsets = np.cumsum([0] + [len(p["frames"]) for p in parts[:-1]])
    out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0] if not k.endswith("_frames")}
    for key in ("obs_frames", "next_obs_frames"):
        out[key] = np.concatenate([p[key] + offset for p, offset in zip(parts, offsets, strict=True)])
    return out


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
