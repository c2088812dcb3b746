"""The hive's shared prioritized replay memory on Redis.

Any number of game workers insert transitions and sample prioritized minibatches concurrently;
see ``docs/replay_memory.md`` for the design and :class:`ReplayMemory` for the API.
"""

from replay_memory.batches import MemoryStats, SampledBatch, TransitionBatch
from replay_memory.config import MemoryConfig, ObservationSpec
from replay_memory.errors import (
    BatchTooLargeError,
    ConfigMismatchError,
    EmptyMemoryError,
    InvalidConfigError,
    InvalidPriorityError,
    InvalidTransitionError,
    ObservationSpecError,
    ReplayMemoryError,
    UnknownIdError,
)
from replay_memory.memory import ReplayMemory

__all__ = [
    "BatchTooLargeError",
    "ConfigMismatchError",
    "EmptyMemoryError",
    "InvalidConfigError",
    "InvalidPriorityError",
    "InvalidTransitionError",
    "MemoryConfig",
    "MemoryStats",
    "ObservationSpec",
    "ObservationSpecError",
    "ReplayMemory",
    "ReplayMemoryError",
    "SampledBatch",
    "TransitionBatch",
    "UnknownIdError",
]
