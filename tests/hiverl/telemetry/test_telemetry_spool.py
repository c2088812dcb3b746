"""The disk spool: FIFO across segments and reopenings, a bound that drops (and counts) the oldest."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from hiverl.telemetry.records import decode_events
from hiverl.telemetry.spool import Record, Spool, SpoolLockedError


def records(start: int, stop: int, per_record: int = 1) -> list[Record]:
    """Records of events ``{"seq": start}`` … ``{"seq": stop - 1}``, ``per_record`` events each."""
    out = []
    for first in range(start, stop, per_record):
        seqs = range(first, min(first + per_record, stop))
        value = b",".join(b'{"seq":%d}' % i for i in seqs)
        out.append(Record("t", b"s/0", value if len(seqs) == 1 else b"[%s]" % value, len(seqs)))
    return out


def drain(spool: Spool, chunk: int = 7) -> list[int]:
    out: list[int] = []
    while spool.pending:
        batch, position = spool.peek(chunk)
        out += [event["seq"] for record in batch for event in decode_events(record.value)]
        spool.commit(position, batch)
    return out


def test_records_leave_in_order_across_segments(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=100_000, segment_bytes=200)
    spool.append(records(0, 50))
    assert len(list(tmp_path.glob("*.seg"))) > 3
    assert spool.pending == 50
    assert drain(spool) == list(range(50))
    spool.append(records(50, 60))
    assert drain(spool) == list(range(50, 60))
    assert spool.pending == 0


def test_undelivered_records_survive_reopening(tmp_path: Path) -> None:
    spool = Spool(tmp_path, max_bytes=100_000, segment_bytes=200)
    spool.append(records(0, 30))
    batch, position = spool.peek(12)
    spool.commit(position, batch)
    batch, _ = spool.peek(5)  # peeked, never committed: must come again
    spool.close()
    with (tmp_path / sorted(p.name for p in tmp_path.glob("*.seg"))[-1]).open("ab") as f:
        f.write(b't\ts/0\t{"seq":9')  # a torn line from a crash is cut
    reopened = Spool(tmp_path, max_bytes=100_000, segment_bytes=200)
    assert reopened.pending == 18
    assert drain(reopened) == list(range(12, 30))


def test_the_bound_drops_the_oldest_and_counts_them(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = Spool(tmp_path, max_bytes=1000, segment_bytes=250)
    with caplog.at_level(logging.WARNING):
        spool.append(records(0, 200))
    assert spool.nbytes <= 1000
    assert spool.dropped_total > 0
    assert spool.dropped_total + spool.pending == 200
    assert "dropped the oldest" in caplog.text
    kept = drain(spool)
    assert kept == list(range(200 - len(kept), 200))  # the newest survive, in order


def test_one_process_owns_a_spool(tmp_path: Path) -> None:
    owner = Spool(tmp_path, max_bytes=10_000, segment_bytes=1000)
    # flock is per open file description: a second open in this process conflicts like another process
    with pytest.raises(SpoolLockedError):
        Spool(tmp_path, max_bytes=10_000, segment_bytes=1000)
    owner.close()
    Spool(tmp_path, max_bytes=10_000, segment_bytes=1000).close()  # released: the next owner may open


def test_bounds_are_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="segment_bytes"):
        Spool(tmp_path, max_bytes=1000, segment_bytes=800)


def test_a_reopened_spool_appends_behind_what_it_holds(tmp_path: Path) -> None:
    Spool(tmp_path, max_bytes=100_000, segment_bytes=10_000).append(records(0, 5))  # closed by GC
    reopened = Spool(tmp_path, max_bytes=100_000, segment_bytes=10_000)
    reopened.append(records(5, 8))
    assert drain(reopened) == list(range(8))


def test_events_are_counted_in_records_of_several(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = Spool(tmp_path, max_bytes=100_000, segment_bytes=300)
    spool.append(records(0, 95, per_record=10))  # 10 records, the last of 5 events
    assert spool.pending == 95
    batch, position = spool.peek(3)
    spool.commit(position, batch)
    assert spool.pending == 65
    spool.close()
    reopened = Spool(tmp_path, max_bytes=100_000, segment_bytes=300)  # counted again from the lines
    assert reopened.pending == 65
    with caplog.at_level(logging.WARNING):
        reopened.append(records(95, 1095, per_record=10))
        reopened.max_bytes = 2000
        reopened.append(records(1095, 1105, per_record=10))
    assert reopened.dropped_total > 0
    assert reopened.dropped_total + reopened.pending == 1105 - 30
    kept = drain(reopened)
    assert kept == list(range(1105 - len(kept), 1105))


def test_a_line_of_an_older_spool_is_one_event(tmp_path: Path) -> None:
    (tmp_path / "000000000001.seg").write_bytes(b't\ts/0\t{"seq":0}\nt\ts/0\t{"seq":1}\n')
    spool = Spool(tmp_path, max_bytes=100_000, segment_bytes=300)
    assert spool.pending == 2
    spool.append(records(2, 6, per_record=2))
    assert spool.pending == 6
    assert drain(spool, chunk=2) == list(range(6))
