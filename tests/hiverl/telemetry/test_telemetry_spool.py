"""The disk spool: FIFO across segments and reopenings, a bound that drops (and counts) the oldest."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from hiverl.telemetry.spool import Spool, SpoolLockedError


def records(start: int, stop: int) -> list[tuple[str, bytes, bytes]]:
    return [("t", b"s/0", b'{"seq":%d}' % i) for i in range(start, stop)]


def drain(spool: Spool, chunk: int = 7) -> list[int]:
    out: list[int] = []
    while spool.pending:
        batch, position = spool.peek(chunk)
        out += [int(v.split(b":")[1].rstrip(b"}")) for _, _, v in batch]
        spool.commit(position, len(batch))
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
    spool.commit(position, len(batch))
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
