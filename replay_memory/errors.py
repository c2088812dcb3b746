"""Errors of the replay memory: every one names the offending field, its value and what is allowed."""

from __future__ import annotations


class ReplayMemoryError(ValueError):
    """Base of every validation error raised by :mod:`replay_memory`.

    Attributes:
        field: name of the argument or message field that was wrong (e.g. ``"priorities"``).
        value: the offending value (or a short description of it).
    """

    def __init__(self, field: str, value: object, allowed: str) -> None:
        self.field = field
        self.value = value
        super().__init__(f"{field}={value!r}: {allowed}")


class InvalidConfigError(ReplayMemoryError):
    """A memory configuration or call argument (capacity, alpha, beta, batch size, ...) is invalid."""


class ConfigMismatchError(ReplayMemoryError):
    """The memory already exists in Redis with a different configuration."""


class ObservationSpecError(ReplayMemoryError):
    """An observation's shape or dtype differs from the memory's declared spec."""


class InvalidTransitionError(ReplayMemoryError):
    """A payload is not a valid serialized ``hiverl.v1.Transition`` for this memory."""


class InvalidPriorityError(ReplayMemoryError):
    """A priority is NaN, infinite or negative."""


class UnknownIdError(ReplayMemoryError):
    """A priority update names an index/generation that was never written."""


class BatchTooLargeError(ReplayMemoryError):
    """A batch is larger than the memory (or larger than one shard's capacity for an insert)."""


class EmptyMemoryError(ReplayMemoryError):
    """Sampling from a memory whose priorities are all zero or that holds nothing."""
