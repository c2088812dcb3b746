"""A bounded, append-only on-disk queue of Kafka records (the producer's outage buffer).

Records are lines ``topic \\t key \\t events \\t value`` (``events``: how many events the value holds;
the value is compact JSON, which never contains a raw tab or newline; a line of three fields, from an
older spool, holds one event) in numbered segment files ``{seq:012d}.seg``; ``head.cursor`` holds the
segment and byte offset of the first undelivered record. Delivery reads from the head and advances the
cursor only after Kafka acknowledged (:meth:`Spool.peek` then :meth:`Spool.commit`), so records
leave in the order they came. When the spool exceeds ``max_bytes``, whole oldest segments are
deleted: the dropped events are counted (:attr:`Spool.dropped_total`) and a warning is logged.

One process owns a spool directory at a time (an ``flock`` on ``LOCK``). Writes are flushed to the
OS after every append (safe across a process crash, not a power cut: no fsync per event).
"""

from __future__ import annotations

import fcntl
import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from hiverl.telemetry.records import Record

log = logging.getLogger(__name__)


def _parse_line(line: bytes) -> Record:
    fields = line.rstrip(b"\n").split(b"\t", 3)
    if len(fields) == 3:  # an older spool's line: one event
        topic, key, value = fields
        return Record(topic.decode(), key, value, 1)
    topic, key, events, value = fields
    return Record(topic.decode(), key, value, int(events))


@dataclass(frozen=True)
class SpoolPosition:
    """Where delivery stands: segment sequence number and byte offset inside it."""

    segment: int
    offset: int


class SpoolLockedError(RuntimeError):
    """Another process owns this spool directory."""


@dataclass
class _Segment:
    seq: int
    path: Path
    nbytes: int  # file size
    records: int  # undelivered records in this segment
    events: int  # the events they hold


class Spool:
    """Bounded FIFO of :data:`Record` on disk. Not thread-safe: one thread (the sink's) uses it."""

    def __init__(self, directory: str | Path, max_bytes: int, segment_bytes: int) -> None:
        """Open (or create) the spool in ``directory``; bounds in bytes, ``segment_bytes <= max_bytes/2``."""
        if max_bytes <= 0 or segment_bytes <= 0:
            raise ValueError(f"max_bytes={max_bytes} and segment_bytes={segment_bytes} must be > 0")
        if segment_bytes * 2 > max_bytes:
            raise ValueError(f"segment_bytes={segment_bytes} must be at most max_bytes/2 = {max_bytes // 2}")
        self.directory = Path(directory)
        self.max_bytes = max_bytes
        self.segment_bytes = segment_bytes
        self.dropped_total = 0
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock_file = (self.directory / "LOCK").open("a")
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock_file.close()
            raise SpoolLockedError(f"spool {self.directory} is in use by another process") from None
        self._cursor_path = self.directory / "head.cursor"
        self._segments: list[_Segment] = []
        self._tail: IO[bytes] | None = None
        self._load()

    # -- state ------------------------------------------------------------------------------------
    def _load(self) -> None:
        cursor = self._read_cursor()
        for path in sorted(self.directory.glob("*.seg")):
            seq = int(path.stem)
            data = path.read_bytes()
            if cursor is not None and seq < cursor.segment:
                path.unlink()  # delivered before a crash, not yet deleted
                continue
            start = cursor.offset if cursor is not None and seq == cursor.segment else 0
            if data and not data.endswith(b"\n"):  # torn last line from a crash: cut it
                data = data[: data.rfind(b"\n") + 1]
                path.write_bytes(data)
            lines = data[start:].splitlines()
            events = sum(_parse_line(line).events for line in lines)
            self._segments.append(_Segment(seq, path, len(data), len(lines), events))
        if self._segments and (cursor is None or cursor.segment != self._segments[0].seq):
            self._write_cursor(SpoolPosition(self._segments[0].seq, 0))

    def _read_cursor(self) -> SpoolPosition | None:
        try:
            seg, off = self._cursor_path.read_text().split()
            return SpoolPosition(int(seg), int(off))
        except (FileNotFoundError, ValueError):
            return None

    def _write_cursor(self, position: SpoolPosition) -> None:
        tmp = self._cursor_path.with_suffix(".tmp")
        tmp.write_text(f"{position.segment} {position.offset}\n")
        os.replace(tmp, self._cursor_path)

    @property
    def pending(self) -> int:
        """Events waiting for delivery."""
        return sum(s.events for s in self._segments)

    @property
    def nbytes(self) -> int:
        """Bytes on disk in segment files (delivered head bytes included until the segment goes)."""
        return sum(s.nbytes for s in self._segments)

    # -- writing ------------------------------------------------------------------------------------
    def append(self, records: Iterable[Record]) -> None:
        """Append records at the tail, then enforce the bound (dropping the oldest segments)."""
        for topic, key, value, events in records:
            line = b"%s\t%s\t%d\t%s\n" % (topic.encode(), key, events, value)
            if b"\n" in line[:-1] or line.count(b"\t") != 3:
                raise ValueError(f"record for topic {topic!r} contains a tab or newline outside JSON")
            if not self._segments or self._segments[-1].nbytes >= self.segment_bytes:
                self._roll()
            self._ensure_tail_open()  # a spool reopened after a restart appends to its last segment
            tail_segment = self._segments[-1]
            assert self._tail is not None
            self._tail.write(line)
            tail_segment.nbytes += len(line)
            tail_segment.records += 1
            tail_segment.events += events
        if self._tail is not None:
            self._tail.flush()
        self._enforce_bound()

    def _roll(self) -> None:
        if self._tail is not None:
            self._tail.close()
        seq = self._segments[-1].seq + 1 if self._segments else self._next_seq()
        path = self.directory / f"{seq:012d}.seg"
        self._tail = path.open("ab")
        self._segments.append(_Segment(seq, path, 0, 0, 0))
        if len(self._segments) == 1:
            self._write_cursor(SpoolPosition(seq, 0))

    def _next_seq(self) -> int:
        cursor = self._read_cursor()
        return cursor.segment + 1 if cursor is not None else 1

    def _ensure_tail_open(self) -> None:
        if self._segments and self._tail is None:
            self._tail = self._segments[-1].path.open("ab")

    def _enforce_bound(self) -> None:
        while self.nbytes > self.max_bytes and len(self._segments) > 1:
            oldest = self._segments.pop(0)
            oldest.path.unlink(missing_ok=True)
            self.dropped_total += oldest.events
            self._write_cursor(SpoolPosition(self._segments[0].seq, 0))
            log.warning(
                "telemetry spool %s over its bound of %d bytes: dropped the oldest %d events (%d so far)",
                self.directory,
                self.max_bytes,
                oldest.events,
                self.dropped_total,
            )

    # -- delivering ---------------------------------------------------------------------------------
    def peek(self, max_records: int) -> tuple[list[Record], SpoolPosition]:
        """Up to ``max_records`` oldest undelivered records (from the head segment) and the position
        after them, to pass to :meth:`commit` once they are delivered."""
        self._ensure_tail_open()
        if self._tail is not None:
            self._tail.flush()
        cursor = self._read_cursor()
        while self._segments and self._segments[0].records == 0 and len(self._segments) > 1:
            self._drop_head()
            cursor = self._read_cursor()
        if not self._segments or cursor is None:
            return [], SpoolPosition(0, 0)
        head = self._segments[0]
        records: list[Record] = []
        offset = cursor.offset
        with head.path.open("rb") as f:
            f.seek(offset)
            for line in f:
                if len(records) >= max_records:
                    break
                records.append(_parse_line(line))
                offset += len(line)
        return records, SpoolPosition(head.seq, offset)

    def commit(self, position: SpoolPosition, delivered: Sequence[Record]) -> None:
        """Mark the ``delivered`` records up to ``position`` (both from :meth:`peek`) as delivered."""
        if not self._segments or self._segments[0].seq != position.segment:
            return  # the head was dropped by the bound meanwhile; nothing to advance
        head = self._segments[0]
        head.records -= len(delivered)
        head.events -= sum(r.events for r in delivered)
        if head.records == 0 and len(self._segments) > 1:
            self._drop_head()
        elif head.records == 0:  # the only segment, fully delivered: start afresh
            if self._tail is not None:
                self._tail.close()
                self._tail = None
            head.path.unlink(missing_ok=True)
            self._segments.clear()
            self._write_cursor(SpoolPosition(head.seq + 1, 0))
        else:
            self._write_cursor(position)

    def _drop_head(self) -> None:
        head = self._segments.pop(0)
        head.path.unlink(missing_ok=True)
        self._write_cursor(SpoolPosition(self._segments[0].seq, 0))

    def close(self) -> None:
        """Close files and release the directory lock (records stay for the next owner)."""
        if self._tail is not None:
            self._tail.close()
            self._tail = None
        self._lock_file.close()
