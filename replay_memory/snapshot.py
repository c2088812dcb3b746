"""``hiverl memory save`` / ``load``: a consistent snapshot of a memory in one file.

Save copies each shard's keys inside one script call (``COPY``, atomic: a point in time even
while workers write), then streams the copy to the file and deletes it; shards on different
servers are each consistent on their own. Load recreates the memory, in the saved layout or a
new one (more shards, another capacity); stop the workers of that memory while it runs.
"""

from __future__ import annotations

import dataclasses
import os
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
from google.protobuf.message import Message

from proto.hiverl.v1 import snapshot_pb2 as spb
from proto.hiverl.v1 import transition_pb2 as pb
from replay_memory.config import MemoryConfig
from replay_memory.errors import ConfigMismatchError, InvalidConfigError, InvalidTransitionError
from replay_memory.memory import ReplayMemory, Shard

MAGIC = b"HIVERLMEM\n"
FORMAT_VERSION = 1
CHUNK = 1000


def _write(f: BinaryIO, message: Message) -> None:
    data = message.SerializeToString()
    f.write(struct.pack("<I", len(data)))
    f.write(data)


def _read(f: BinaryIO, message: Message) -> Message:
    head = f.read(4)
    if len(head) != 4:
        raise InvalidTransitionError("snapshot", "truncated file", "a complete hiverl memory snapshot")
    data = f.read(struct.unpack("<I", head)[0])
    message.ParseFromString(data)
    return message


def save(memory: ReplayMemory, path: str | Path) -> int:
    """Writes a snapshot of ``memory`` to ``path`` (atomically replaced); returns entries saved."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    total = 0
    with tmp.open("wb") as f:
        f.write(MAGIC)
        _write(
            f,
            spb.SnapshotHeader(
                format_version=FORMAT_VERSION, config_json=memory.config.to_json(), created_time=time.time()
            ),
        )
        for shard in memory.shards:
            total += _save_shard(memory.config, shard, f)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)
    return total


def _save_shard(config: MemoryConfig, shard: Shard, f: BinaryIO) -> int:
    copies = [f"{key}:snapshot" for key in shard.keys]
    shard.call("snapshot", [], keys=shard.keys + copies)
    client = shard.client
    try:
        meta = {k.decode(): v.decode() for k, v in client.hgetall(copies[0]).items()}
        cap = config.shard_capacity
        cursor = int(meta["cursor"])
        masses = np.frombuffer(client.get(copies[3]) or b"", "<f8")
        dropped = sorted(int(s) for s in client.smembers(copies[2]))
        live = [(cursor - 1 - k) % cap for k in range(min(cursor, cap) - 1, -1, -1)]  # oldest first
        entries: list[tuple[int, bytes]] = []
        for lo in range(0, len(live), CHUNK):
            slots = live[lo : lo + CHUNK]
            for slot, payload in zip(slots, client.hmget(copies[1], slots), strict=True):
                if payload is not None:
                    entries.append((slot, payload))
        _write(
            f,
            spb.ShardSnapshot(
                shard=shard.index,
                cursor=cursor,
                inserted_total=int(meta["inserted_total"]),
                sampled_total=int(meta["sampled_total"]),
                evicted_total=int(meta["evicted_total"]),
                corrupt_dropped=int(meta["corrupt_dropped"]),
                max_priority=float(meta["max_priority"]),
                entries=len(entries),
                dropped_slots=dropped,
            ),
        )
        for slot, payload in entries:
            _write(f, spb.SnapshotEntry(slot=slot, mass=float(masses[slot]), transition=payload))
        return len(entries)
    finally:
        client.delete(*copies)


def read_header(path: str | Path) -> MemoryConfig:
    """The configuration stored in a snapshot file."""
    with Path(path).open("rb") as f:
        return _open(f)


def _open(f: BinaryIO) -> MemoryConfig:
    if f.read(len(MAGIC)) != MAGIC:
        raise InvalidTransitionError("snapshot", getattr(f, "name", "?"), "not a hiverl memory snapshot file")
    header = _read(f, spb.SnapshotHeader())
    assert isinstance(header, spb.SnapshotHeader)
    if header.format_version != FORMAT_VERSION:
        raise InvalidTransitionError(
            "snapshot.format_version", header.format_version, f"expected {FORMAT_VERSION}"
        )
    return MemoryConfig.from_json(header.config_json)


def load(
    redis_url: str,
    path: str | Path,
    key_prefix: str = "",
    replace: bool = False,
    name: str | None = None,
    shards: int | None = None,
    capacity: int | None = None,
) -> MemoryConfig:
    """Recreates the memory saved in ``path`` on ``redis_url``; returns its config.

    With the saved layout (default) slots, generations, masses and counters come back exactly.
    With another ``shards`` or ``capacity`` (re-sharding, growing), the entries are re-inserted
    oldest first (by write time) with their priorities, into a fresh memory of that layout: the
    newest ones are kept if the new capacity is smaller, and the counters restart.

    Args:
        key_prefix: key prefix of the recreated memory.
        name: load under this name instead of the saved one.
        replace: delete an existing memory of the same name first; without it, loading into an
            existing non-empty memory is refused (nothing is changed).
        shards, capacity: a new layout (default: the saved one).
    """
    with Path(path).open("rb") as f:
        saved = _open(f)
        config = dataclasses.replace(
            saved,
            key_prefix=key_prefix,
            name=name or saved.name,
            shards=shards or saved.shards,
            capacity=capacity or saved.capacity,
        )
        _clear(redis_url, config, replace)
        with ReplayMemory.open(redis_url, config) as memory:
            if (config.shards, config.capacity) == (saved.shards, saved.capacity):
                for shard in memory.shards:
                    _load_shard(shard, f)
            else:
                _reinsert(memory, saved, f)
    return config


def _clear(redis_url: str, config: MemoryConfig, replace: bool) -> None:
    """Deletes an existing memory of this name (all its shards, whatever its layout) if allowed."""
    try:
        existing = ReplayMemory.attach(redis_url, config.name, config.key_prefix)
    except InvalidConfigError:
        return  # no such memory
    with existing:
        if len(existing) and not replace:
            raise ConfigMismatchError(
                "name", config.name, "memory exists and is not empty; load with --replace to overwrite it"
            )
        for shard in existing.shards:
            shard.client.delete(*shard.keys)


def _reinsert(memory: ReplayMemory, saved: MemoryConfig, f: BinaryIO) -> None:
    entries: list[tuple[float, int, int, bytes, float]] = []  # (time, shard, order, payload, priority)
    max_priority = 1.0
    for k in range(saved.shards):
        head = _read(f, spb.ShardSnapshot())
        assert isinstance(head, spb.ShardSnapshot)
        max_priority = max(max_priority, head.max_priority)
        for order, saved_chunk in enumerate(_chunks(f, head.entries)):
            for i, e in enumerate(saved_chunk):
                # the raw priority back from the mass p^alpha (unknown at alpha = 0: the max seen)
                p = e.mass ** (1 / saved.alpha) if saved.alpha > 0 else -1.0
                t = pb.Transition.FromString(e.transition).time
                entries.append((t, k, order * CHUNK + i, e.transition, p))
    entries.sort(key=lambda e: e[:3])
    for shard in memory.shards:
        shard.client.hset(shard.keys[0], "max_priority", repr(max_priority))
    step = min(CHUNK, memory.config.shard_capacity)
    for lo in range(0, len(entries), step):
        batch = entries[lo : lo + step]
        memory._insert_payloads([e[3] for e in batch], np.array([e[4] for e in batch]))


def _load_shard(shard: Shard, f: BinaryIO) -> None:
    head = _read(f, spb.ShardSnapshot())
    assert isinstance(head, spb.ShardSnapshot)
    if head.shard != shard.index:
        raise InvalidTransitionError("snapshot.shard", head.shard, f"expected shard {shard.index}")
    for chunk in _chunks(f, head.entries):
        slots = np.array([e.slot for e in chunk], dtype="<f8")
        masses = np.array([e.mass for e in chunk], dtype="<f8")
        shard.call("restore", [len(chunk), slots.tobytes(), masses.tobytes(), *(e.transition for e in chunk)])
    client = shard.client
    client.hset(
        shard.keys[0],
        mapping={
            "cursor": head.cursor,
            "inserted_total": head.inserted_total,
            "sampled_total": head.sampled_total,
            "evicted_total": head.evicted_total,
            "corrupt_dropped": head.corrupt_dropped,
            "max_priority": repr(head.max_priority),
        },
    )
    if head.dropped_slots:
        client.sadd(shard.keys[2], *head.dropped_slots)


def _chunks(f: BinaryIO, n: int) -> Iterator[list[spb.SnapshotEntry]]:
    chunk: list[spb.SnapshotEntry] = []
    for _ in range(n):
        e = _read(f, spb.SnapshotEntry())
        assert isinstance(e, spb.SnapshotEntry)
        chunk.append(e)
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
