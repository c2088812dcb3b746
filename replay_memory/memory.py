"""The hive's shared prioritized replay memory on Redis (single server, several servers, or a cluster).

Layout (per shard k, all keys sharing the hash tag ``{name:k}`` so one script sees them all):
a metadata hash, a hash of serialized transitions by slot, and a K-ary sum tree of the sampling
masses p^alpha stored as packed float64 strings, one string per level (see ``lua/common.lua`` and
``docs/replay_memory.md``). Every operation is one script call per shard and batch.
"""

from __future__ import annotations

import json
import numbers
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import redis
from redis.cluster import RedisCluster

from proto.hiverl.v1 import transition_pb2 as pb
from replay_memory.batches import MemoryStats, SampledBatch, TransitionBatch, concat_rows
from replay_memory.codec import check_priorities, decode_rows, encode_batch, parse_transition, validate_batch
from replay_memory.config import MemoryConfig
from replay_memory.errors import (
    BatchTooLargeError,
    ConfigMismatchError,
    EmptyMemoryError,
    InvalidConfigError,
    UnknownIdError,
)
from replay_memory.scripts import Scripts

#: Transitions per script call: bounds the time one call holds Redis (other clients wait).
MAX_CALL_ITEMS = 4096
#: Re-draws after dropping corrupt entries before giving a short batch back.
CORRUPT_RETRIES = 3


@dataclass
class Shard:
    """One shard: its index, the client of the server that owns it, its keys and scripts."""

    index: int
    client: Any
    keys: list[str]
    scripts: Scripts

    def call(self, name: str, args: list[Any], keys: list[str] | None = None) -> Any:
        return self.scripts(name, self.keys if keys is None else keys, args)


def shard_keys(config: MemoryConfig, k: int) -> list[str]:
    """Keys of shard ``k`` in the order the scripts expect (see ``lua/common.lua``)."""
    tag = f"{config.key_prefix}{{{config.name}:{k}}}"
    top = config.levels()
    return (
        [f"{tag}:meta", f"{tag}:data", f"{tag}:dropped"]
        + [f"{tag}:sum:{level}" for level in range(top + 1)]
        + [f"{tag}:prefix:{level}" for level in range(top)]
        + [f"{tag}:min:{level}" for level in range(1, top + 1)]
        + [f"{tag}:max:{level}" for level in range(1, top + 1)]
    )


def connect(redis_url: str) -> list[Any]:
    """Clients for ``redis_url``: one URL or comma-separated URLs.

    A cluster (any URL of one, detected with ``INFO cluster``) gives one ``RedisCluster`` client
    that routes every shard's hash tag to its node; several independent servers give one client
    each, and shard k lives on server ``k % len(servers)``.
    """
    urls = [u.strip() for u in redis_url.split(",") if u.strip()]
    if not urls:
        raise InvalidConfigError("redis_url", redis_url, "one or more comma-separated redis:// URLs")
    first = redis.Redis.from_url(urls[0])
    if int(first.info("cluster").get("cluster_enabled", 0)):
        first.close()
        return [RedisCluster.from_url(urls[0])]
    return [first] + [redis.Redis.from_url(u) for u in urls[1:]]


def _pack(values: np.ndarray) -> bytes:
    return np.ascontiguousarray(values, dtype="<f8").tobytes()


class ReplayMemory:
    """A prioritized replay memory shared by every worker; use :meth:`open`.

    Thread-unsafe per instance (give each thread or process its own); any number of instances
    may use the same memory concurrently.
    """

    def __init__(self, clients: list[Any], config: MemoryConfig) -> None:
        self.config = config
        self._clients = clients
        scripts = [Scripts(c) for c in clients]
        self.shards = [
            Shard(k, clients[k % len(clients)], shard_keys(config, k), scripts[k % len(clients)])
            for k in range(config.shards)
        ]
        self._rng = np.random.default_rng()
        self._next_shard = int(self._rng.integers(config.shards))
        self._cursors = [0] * config.shards  # each shard's write sequence in its last reply to us

    # ---------------------------------------------------------------- lifecycle
    @classmethod
    def open(cls, redis_url: str, config: MemoryConfig) -> ReplayMemory:
        """Create the memory if missing, else check the stored config matches ours."""
        if not isinstance(config, MemoryConfig):
            raise InvalidConfigError("config", config, "a MemoryConfig")
        memory = cls(connect(redis_url), config)
        try:
            ours = config.to_json()
            for shard in memory.shards:
                _created, stored = shard.call(
                    "create",
                    [ours, config.shard_capacity, config.fanout, repr(float(config.alpha))],
                )
                _check_same_config(config, json.loads(stored))
        except BaseException:
            memory.close()
            raise
        return memory

    @classmethod
    def attach(cls, redis_url: str, name: str = "hive", key_prefix: str = "") -> ReplayMemory:
        """Opens an existing memory by name, with the configuration stored in Redis.

        It only reads (each shard's stored configuration), so a read-only Redis user may attach:
        the memory monitor's (``docker/redis/start.sh``).
        """
        clients = connect(redis_url)
        try:
            probe = MemoryConfig(name=name, key_prefix=key_prefix)
            stored = clients[0].hget(shard_keys(probe, 0)[0], "config")
            if stored is None:
                raise InvalidConfigError(
                    "name", name, f"no replay memory of that name at prefix {key_prefix!r}"
                )
            memory = cls(clients, MemoryConfig.from_json(stored.decode(), key_prefix=key_prefix))
            for shard in memory.shards[1:]:
                other = shard.client.hget(shard.keys[0], "config")
                if other is None:
                    raise InvalidConfigError("name", name, f"shard {shard.index} of the memory is missing")
                _check_same_config(memory.config, json.loads(other))
        except BaseException:
            for c in clients:
                c.close()
            raise
        return memory

    def close(self) -> None:
        """Closes the connections."""
        for c in self._clients:
            c.close()

    def __enter__(self) -> ReplayMemory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __len__(self) -> int:
        """Transitions stored (all shards)."""
        return sum(int(s.client.hlen(s.keys[1])) for s in self.shards)

    @property
    def writes_seen(self) -> int:
        """Transitions ever written to this memory by every client, as of this instance's last call.

        Read for free from the replies of :meth:`insert` and :meth:`sample` (each shard's write
        sequence as it last answered; 0 before the first call). It is the hive's clock: a worker
        that paces its learning by it learns from each transition the hive collects, whoever
        collected it.
        """
        return sum(self._cursors)

    def _seen(self, shard: int, cursor: int) -> None:
        # Replies on different threads' connections can arrive out of order: the clock never goes back.
        self._cursors[shard] = max(self._cursors[shard], cursor)

    # ---------------------------------------------------------------- writing
    def insert(self, batch: TransitionBatch) -> int:
        """Validates, encodes and stores B transitions (FIFO: the oldest are evicted); returns B."""
        validate_batch(batch, self.config.observation)
        payloads = encode_batch(batch, self.config.observation)
        prios = None if batch.priorities is None else check_priorities(batch.priorities)
        return self._insert_payloads(payloads, prios)

    def insert_encoded(self, payloads: Sequence[bytes]) -> int:
        """Stores already serialized ``hiverl.v1.Transition`` messages after checking each one.

        Their ``initial_priority`` is used when set, else the largest priority seen so far.
        Raises :class:`InvalidTransitionError` / :class:`ObservationSpecError` before storing
        anything if one payload is bad.
        """
        if len(payloads) == 0:
            raise BatchTooLargeError("payloads", 0, "at least one transition")
        prios = np.full(len(payloads), -1.0)
        for i, payload in enumerate(payloads):
            if not isinstance(payload, bytes | bytearray | memoryview):
                raise InvalidConfigError(f"payloads[{i}]", type(payload).__name__, "bytes")
            t = parse_transition(bytes(payload), self.config.observation)
            if t.HasField("initial_priority"):
                prios[i] = check_priorities(
                    np.array([t.initial_priority]), f"payloads[{i}].initial_priority"
                )[0]
        return self._insert_payloads([bytes(p) for p in payloads], None if (prios < 0).all() else prios)

    def _insert_payloads(self, payloads: list[bytes], priorities: np.ndarray | None) -> int:
        if len(payloads) > self.config.capacity:
            raise BatchTooLargeError(
                "batch_size", len(payloads), f"at most capacity={self.config.capacity} transitions per insert"
            )
        step = min(MAX_CALL_ITEMS, self.config.shard_capacity)
        for lo in range(0, len(payloads), step):
            shard = self.shards[self._next_shard]
            self._next_shard = (self._next_shard + 1) % len(self.shards)
            chunk = payloads[lo : lo + step]
            prio = b"" if priorities is None else _pack(priorities[lo : lo + step])
            first, _evicted = shard.call("insert", [len(chunk), prio, *chunk])
            self._seen(shard.index, int(first) + len(chunk))
        return len(payloads)

    # ---------------------------------------------------------------- sampling
    def sample(
        self,
        batch_size: int,
        beta: float,
        rng: np.random.Generator | None = None,
        frames_out: memoryview | None = None,
    ) -> SampledBatch:
        """Draws ``batch_size`` transitions with P(i) = p_i^alpha / sum_k p_k^alpha (stratified).

        Args:
            batch_size: B >= 1, at most the number of transitions stored.
            beta: importance-sampling exponent in [0, 1].
            rng: source of the draws (default: this instance's generator).
            frames_out: writable bytes the batch's frames are decoded into when they fit (shared
                memory of the caller's); a batch drawn from several shards gets new memory.
        """
        if not isinstance(batch_size, numbers.Integral) or isinstance(batch_size, bool) or batch_size < 1:
            raise InvalidConfigError("batch_size", batch_size, "an int >= 1")
        if not isinstance(beta, numbers.Real) or not 0.0 <= beta <= 1.0:
            raise InvalidConfigError("beta", beta, "a float in [0, 1]")
        rng = self._rng if rng is None else rng
        parts = [self._sample_once(int(batch_size), rng, frames_out=frames_out)]
        missing = int(batch_size) - len(parts[0]["indices"])
        for _ in range(CORRUPT_RETRIES):
            if missing <= 0:
                break
            parts.append(self._sample_once(missing, rng, strict=False))
            missing -= len(parts[-1]["indices"])
        min_mass = min(float(p.pop("min_mass")) for p in parts)
        cat = concat_rows(parts)
        weights = (min_mass / cat["masses"]) ** beta
        return SampledBatch(
            frames=cat["frames"],
            obs_frames=cat["obs_frames"],
            next_obs_frames=cat["next_obs_frames"],
            obs_shape=self.config.observation.shape,
            actions=cat["actions"],
            rewards=cat["rewards"],
            discounts=cat["discounts"],
            weights=weights.astype(np.float32),
            indices=cat["indices"],
            generations=cat["generations"],
            probabilities=cat["probabilities"],
        )

    def _sample_once(
        self, n: int, rng: np.random.Generator, strict: bool = True, frames_out: memoryview | None = None
    ) -> dict[str, np.ndarray]:
        # 1. How many draws per shard: in proportion to each shard's priority mass.
        if len(self.shards) == 1:
            plan = [(self.shards[0], n)]
            shard_total: dict[int, float] = {}
            min_mass = np.inf
        else:
            shard_masses = [self._mass(s) for s in self.shards]
            size = sum(m[0] for m in shard_masses)
            totals = np.array([m[1] for m in shard_masses])
            if strict and n > size:
                raise BatchTooLargeError("batch_size", n, f"at most the {size} transitions stored")
            if not totals.sum() > 0:
                raise EmptyMemoryError(
                    "batch_size", n, "the memory holds no transition with non-zero priority"
                )
            counts = rng.multinomial(n, totals / totals.sum())
            plan = [(s, int(c)) for s, c in zip(self.shards, counts, strict=True) if c > 0]
            shard_total = {s.index: float(t) for s, t in zip(self.shards, totals, strict=True)}
            min_mass = min(m[2] for m in shard_masses)
        grand_total = sum(shard_total.values())

        # 2. One stratified descent per shard: fractions (j + U_j) / n_k, sorted.
        rows: list[dict[str, np.ndarray]] = []
        for shard, count in plan:
            fractions = np.minimum((np.arange(count) + rng.random(count)) / count, 1.0 - 2**-53)
            try:
                reply = shard.call(
                    "sample", [count, _pack(fractions), "strict" if strict and len(self.shards) == 1 else ""]
                )
            except redis.ResponseError as e:
                raise _translate(e, n) from e
            cursor, _size, mass_pair, slots_b, masses_b, payloads = reply
            self._seen(shard.index, int(cursor))
            total, shard_min = struct.unpack("<dd", mass_pair)
            slots = np.frombuffer(slots_b, "<f8").astype(np.int64)
            masses = np.frombuffer(masses_b, "<f8")
            cap = self.config.shard_capacity
            generations = slots + cap * ((int(cursor) - 1 - slots) // cap)
            # P(i) = P(shard) * P(i | shard); a single shard is the whole memory
            share = shard_total[shard.index] / grand_total if shard_total else 1.0
            probabilities = share * masses / total
            min_mass = min(min_mass, shard_min)

            # 3. Decode; corrupt or missing entries are dropped from the memory and counted.
            arrays, bad = decode_rows(
                payloads, self.config.observation, frames_out if len(plan) == 1 else None
            )
            if bad:
                shard.call("drop", [len(bad), _pack(slots[bad]), _pack(generations[bad])])
                keep = np.setdiff1d(np.arange(len(slots)), bad)
                slots, masses, generations, probabilities = (
                    slots[keep],
                    masses[keep],
                    generations[keep],
                    probabilities[keep],
                )
            arrays.update(
                indices=slots + shard.index * cap,
                generations=generations,
                masses=masses,
                probabilities=probabilities,
            )
            rows.append(arrays)
        out = concat_rows(rows)
        out["min_mass"] = np.array(min_mass)
        return out

    def _mass(self, shard: Shard) -> tuple[int, float, float]:
        size, pair = shard.call("mass", [])
        total, mn = struct.unpack("<dd", pair)
        return int(size), total, mn

    # ---------------------------------------------------------------- priorities
    def update_priorities(self, indices: np.ndarray, generations: np.ndarray, priorities: np.ndarray) -> int:
        """Sets new priorities of sampled transitions; returns how many were applied.

        Args:
            indices: ``[B]`` global slot ids from :attr:`SampledBatch.indices`.
            generations: ``[B]`` from :attr:`SampledBatch.generations`; an update whose slot was
                overwritten since (or whose entry was dropped) is ignored.
            priorities: ``[B]`` new priorities (e.g. |TD error| + eps), finite and >= 0.
        """
        idx = np.asarray(indices)
        gen = np.asarray(generations)
        if idx.ndim != 1 or idx.dtype.kind not in "iu":
            raise UnknownIdError("indices", f"{idx.dtype}{idx.shape}", "a 1-D integer array")
        if gen.shape != idx.shape or gen.dtype.kind not in "iu":
            raise UnknownIdError("generations", f"{gen.dtype}{gen.shape}", f"integers of shape {idx.shape}")
        prio = check_priorities(priorities)
        if prio.shape != idx.shape:
            raise InvalidConfigError("priorities.shape", prio.shape, f"expected {idx.shape}")
        out_of_range = (idx < 0) | (idx >= self.config.capacity)
        if out_of_range.any():
            i = int(np.flatnonzero(out_of_range)[0])
            raise UnknownIdError(f"indices[{i}]", int(idx[i]), f"slot ids are 0..{self.config.capacity - 1}")
        if (gen < 0).any():
            i = int(np.flatnonzero(gen < 0)[0])
            raise UnknownIdError(f"generations[{i}]", int(gen[i]), "generations are >= 0")
        cap = self.config.shard_capacity
        applied = 0
        for shard in self.shards:
            mine = np.flatnonzero(idx // cap == shard.index)
            for lo in range(0, len(mine), MAX_CALL_ITEMS):
                sel = mine[lo : lo + MAX_CALL_ITEMS]
                args = [len(sel), _pack(idx[sel] - shard.index * cap), _pack(gen[sel]), _pack(prio[sel])]
                try:
                    applied += int(shard.call("update", args))
                except redis.ResponseError as e:
                    raise _translate(e, len(sel)) from e
        return applied

    # ---------------------------------------------------------------- inspection
    def stats(self) -> MemoryStats:
        """Sizes, counters and priority masses summed over shards."""
        size = inserted = sampled = evicted = corrupt = used = 0
        total, mn, mx, max_seen = 0.0, np.inf, 0.0, 0.0
        for shard in self.shards:
            n, masses, meta_flat = shard.call("stats", [])
            meta = {meta_flat[i].decode(): meta_flat[i + 1] for i in range(0, len(meta_flat), 2)}
            t, a, b = struct.unpack("<ddd", masses)
            size += int(n)
            inserted += int(meta["inserted_total"])
            sampled += int(meta["sampled_total"])
            evicted += int(meta["evicted_total"])
            corrupt += int(meta["corrupt_dropped"])
            max_seen = max(max_seen, float(meta["max_priority"]))
            total, mn, mx = total + t, min(mn, a), max(mx, b)
            for key in shard.keys:
                used += int(shard.client.memory_usage(key) or 0)
        return MemoryStats(
            size=size,
            capacity=self.config.capacity,
            inserted_total=inserted,
            sampled_total=sampled,
            evicted_total=evicted,
            priority_sum=total,
            priority_min=mn if size and np.isfinite(mn) else 0.0,
            priority_max=mx,
            bytes_used=used,
            corrupt_dropped=corrupt,
            shards=self.config.shards,
            max_priority_seen=max_seen,
        )


def _check_same_config(config: MemoryConfig, stored: dict[str, Any]) -> None:
    ours = config.stored_form()
    for key in sorted(set(ours) | set(stored)):
        if ours.get(key) != stored.get(key):
            raise ConfigMismatchError(
                f"config.{key}",
                ours.get(key),
                f"memory {config.name!r} already exists with {key}={stored.get(key)!r}; "
                "open it with the same config or use another name",
            )


def _translate(e: redis.ResponseError, n: int) -> Exception:
    """Script errors (validated server-side, before any change) as ReplayMemoryError subclasses."""
    text = str(e)
    if "unknown id" in text:
        return UnknownIdError("indices", text.split("unknown id: ", 1)[-1].split(" (")[0], text)
    if "exceeds the" in text:
        return BatchTooLargeError("batch_size", n, text)
    if "non-zero priority" in text:
        return EmptyMemoryError("batch_size", n, text)
    return e


__all__ = ["ReplayMemory", "Shard", "connect", "pb", "shard_keys"]
