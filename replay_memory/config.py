"""Typed, validated configuration of a replay memory."""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from replay_memory.errors import InvalidConfigError

#: Version of the stored layout (keys, scripts, payload schema); bumped on incompatible changes.
LAYOUT_VERSION = 1
#: Children per sum-tree node: wide nodes keep the tree shallow (4 levels at 1M slots) and each
#: node is read with one GETRANGE of 512 bytes.
DEFAULT_FANOUT = 64
SUPPORTED_DTYPES = ("float32", "uint8")


@dataclass(frozen=True)
class ObservationSpec:
    """Shape and dtype of one observation (without the batch dimension).

    ``(4,)``/``float32`` for CartPole, ``(4, 84, 84)``/``uint8`` for stacked Atari frames. How it
    is encoded is the memory's business: raw bytes for small float arrays, zstd over the unique
    frames of ``obs`` and ``next_obs`` for uint8 frame stacks (see :mod:`replay_memory.codec`).
    """

    shape: tuple[int, ...] = (4,)
    dtype: str = "float32"

    def __post_init__(self) -> None:
        shape = tuple(self.shape)
        if not shape or not all(
            isinstance(d, numbers.Integral) and not isinstance(d, bool) and d > 0 for d in shape
        ):
            raise InvalidConfigError("observation.shape", self.shape, "a non-empty tuple of positive ints")
        object.__setattr__(self, "shape", tuple(int(d) for d in shape))
        try:  # accept numpy dtypes and types as well as their names
            dtype = np.dtype(self.dtype).name
        except TypeError:
            dtype = str(self.dtype)
        if dtype not in SUPPORTED_DTYPES:
            raise InvalidConfigError("observation.dtype", self.dtype, f"one of {SUPPORTED_DTYPES}")
        object.__setattr__(self, "dtype", dtype)

    @property
    def nbytes(self) -> int:
        """Bytes of one raw observation."""
        return math.prod(self.shape) * (4 if self.dtype == "float32" else 1)

    @property
    def is_frame_stack(self) -> bool:
        """uint8 ``[frames, H, W]`` observations, stored as shared compressed frames."""
        return self.dtype == "uint8" and len(self.shape) == 3


@dataclass(frozen=True)
class MemoryConfig:
    """Everything that defines one replay memory; checked against Redis on :meth:`ReplayMemory.open`.

    Attributes:
        name: namespace; all keys of shard k share the hash tag ``{name:k}``.
        capacity: transitions in the whole memory (a FIFO ring per shard of ``capacity // shards``).
        alpha: priority exponent of P(i) = p_i^alpha / sum_k p_k^alpha; 0 is uniform sampling.
        shards: number of shards (hash tags), spread over the Redis servers or cluster nodes.
        observation: shape and dtype of one observation.
        key_prefix: prepended to every key (tests isolate themselves with it).
        fanout: children per sum-tree node (a storage-layout detail; rarely changed).
    """

    name: str = "hive"
    capacity: int = 100_000
    alpha: float = 0.6
    shards: int = 1
    observation: ObservationSpec = field(default_factory=ObservationSpec)
    key_prefix: str = ""
    fanout: int = DEFAULT_FANOUT

    def __post_init__(self) -> None:
        if not self.name or any(c in self.name for c in "{}: \n"):
            raise InvalidConfigError("name", self.name, "a non-empty name without braces, colons or spaces")
        if not _is_int(self.shards) or not 1 <= self.shards <= 1024:
            raise InvalidConfigError("shards", self.shards, "an int in 1..1024")
        if not _is_int(self.capacity) or not 2 * self.shards <= self.capacity <= 2**31:
            raise InvalidConfigError("capacity", self.capacity, f"an int in {2 * self.shards}..2**31")
        if self.capacity % self.shards:
            raise InvalidConfigError("capacity", self.capacity, f"a multiple of shards={self.shards}")
        if not isinstance(self.alpha, numbers.Real) or not 0.0 <= self.alpha <= 1.0:
            raise InvalidConfigError("alpha", self.alpha, "a float in [0, 1]")
        if not isinstance(self.observation, ObservationSpec):
            raise InvalidConfigError("observation", self.observation, "an ObservationSpec")
        if not _is_int(self.fanout) or not 2 <= self.fanout <= 256:
            raise InvalidConfigError("fanout", self.fanout, "an int in 2..256")
        for name in ("capacity", "shards", "fanout"):  # numpy ints become plain ints (JSON, Lua)
            object.__setattr__(self, name, int(getattr(self, name)))
        object.__setattr__(self, "alpha", float(self.alpha))

    @property
    def shard_capacity(self) -> int:
        """Slots per shard."""
        return self.capacity // self.shards

    def levels(self) -> int:
        """Number of sum-tree levels above the slots of one shard (at least 1)."""
        size, levels = self.shard_capacity, 0
        while True:
            size = -(-size // self.fanout)
            levels += 1
            if size == 1:
                return levels

    def stored_form(self) -> dict[str, Any]:
        """The fields that must match between the memory in Redis and a client (JSON-able)."""
        d = asdict(self)
        del d["key_prefix"]
        d["observation"]["shape"] = list(self.observation.shape)
        d["layout_version"] = LAYOUT_VERSION
        return d

    def to_json(self) -> str:
        return json.dumps(self.stored_form(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str, key_prefix: str = "") -> MemoryConfig:
        d = json.loads(text)
        d.pop("layout_version", None)
        obs = d.pop("observation")
        return cls(observation=ObservationSpec(tuple(obs["shape"]), obs["dtype"]), key_prefix=key_prefix, **d)


def _is_int(x: object) -> bool:
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)
