"""The hive's blackboard in Redis: the learner's versioned weights, the rate limiter's two counters,
and the hive's stop flag, all in one hash per session (``{prefix}hiverl:{<session>}:board``).

| field | written by | meaning |
| --- | --- | --- |
| ``version`` | learner | bumped atomically with ``weights`` (one script): never torn, never goes back |
| ``weights`` | learner | the online network's ``state_dict`` (``torch.save`` bytes) |
| ``updates`` | learner | learning steps done when ``weights`` was published |
| ``inserts`` | actors | transitions inserted into the memory by every actor (``HINCRBY``) |
| ``samples`` | learner | transitions sampled for learning (``HSET``, monotonic) |
| ``stop`` | anyone | set to a reason (``solved``, ``requested``): every role finishes and exits |

A poll is one ``HMGET`` of the small fields; an actor fetches the blob only when ``version`` moved,
in one ``HMGET`` of ``version`` and ``weights`` together, so the blob it loads always matches the
version it records. A restarted learner keeps counting from the stored ``samples`` and publishes
above the stored ``version``; the hash survives Redis restarts with the memory (AOF).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import redis
import torch

from hiverl.session import board_key

_PUBLISH = """
local version = redis.call('HINCRBY', KEYS[1], 'version', 1)
redis.call('HSET', KEYS[1], 'weights', ARGV[1], 'updates', ARGV[2])
return version
"""


_SMALL_FIELDS = ("version", "updates", "inserts", "samples", "stop")


@dataclass(frozen=True)
class BoardState:
    """One poll of the board's small fields."""

    version: int  # 0 before the first publication
    updates: int
    inserts: int
    samples: int
    stop: str | None


@dataclass(frozen=True)
class Weights:
    """A published set of weights: ``state`` loads into :class:`game.dqn.QNetwork`."""

    version: int
    state: dict[str, torch.Tensor]
    updates: int  # the learner's learning steps when it published them


def encode_state(state: dict[str, torch.Tensor]) -> bytes:
    buffer = io.BytesIO()
    torch.save({name: tensor.detach().cpu() for name, tensor in state.items()}, buffer)
    return buffer.getvalue()


def decode_state(blob: bytes) -> dict[str, torch.Tensor]:
    loaded: dict[str, torch.Tensor] = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    return loaded


class Board:
    """Client of one session's board (one per process or thread; redis-py reconnects on its own)."""

    def __init__(self, redis_url: str, session_id: str, key_prefix: str = "") -> None:
        self.key = board_key(session_id, key_prefix)
        self.client: Any = redis.Redis.from_url(redis_url.split(",")[0].strip())
        self._publish = self.client.register_script(_PUBLISH)

    def close(self) -> None:
        self.client.close()

    @staticmethod
    def _int(value: bytes | None) -> int:
        return int(value) if value is not None else 0

    def _state(self, values: list[bytes | None]) -> BoardState:
        version, updates, inserts, samples, stop = values
        return BoardState(
            version=self._int(version),
            updates=self._int(updates),
            inserts=self._int(inserts),
            samples=self._int(samples),
            stop=stop.decode() if stop is not None else None,
        )

    def poll(self) -> BoardState:
        """The small fields, in one round trip."""
        return self._state(self.client.hmget(self.key, *_SMALL_FIELDS))

    def add_inserts(self, count: int) -> BoardState:
        """Count ``count`` inserted transitions and poll, in one round trip (an actor, per insert)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hincrby(self.key, "inserts", count)
        pipe.hmget(self.key, *_SMALL_FIELDS)
        return self._state(pipe.execute()[1])

    def set_samples(self, samples: int) -> BoardState:
        """Record the learner's sample count and poll, in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        pipe.hset(self.key, "samples", samples)
        pipe.hmget(self.key, *_SMALL_FIELDS)
        return self._state(pipe.execute()[1])

    def publish(self, state: dict[str, torch.Tensor], updates: int) -> int:
        """Store new weights atomically under the next version; returns that version."""
        return int(self._publish(keys=[self.key], args=[encode_state(state), updates]))

    def fetch(self, newer_than: int) -> Weights | None:
        """The published weights if their version is above ``newer_than``, else None (one round trip)."""
        version, blob, updates = self.client.hmget(self.key, "version", "weights", "updates")
        if version is None or blob is None or int(version) <= newer_than:
            return None
        return Weights(int(version), decode_state(blob), self._int(updates))

    def request_stop(self, reason: str) -> None:
        """Ask every role of the hive to finish (first reason wins)."""
        self.client.hsetnx(self.key, "stop", reason)

    def clear_stop(self) -> None:
        """Forget an earlier stop request (a resumed session trains again)."""
        self.client.hdel(self.key, "stop")

    def delete(self) -> None:
        self.client.delete(self.key)
