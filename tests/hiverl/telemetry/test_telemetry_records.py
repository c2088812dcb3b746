"""Events as Kafka records: keys, JSON values, and packing several events of one key into a record."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hiverl.events import envelope
from hiverl.telemetry.records import (
    MAX_RECORD_BYTES,
    decode_events,
    event_key,
    pack_records,
    serialize_event,
    serialize_events,
    split_into_records,
)


def episode(i: int, **fields: Any) -> dict[str, Any]:
    return envelope("episode", session_id="s", worker_index=0, episode=i, **fields)


def test_one_event_is_an_object_several_are_an_array() -> None:
    assert json.loads(serialize_events([episode(0)]))["episode"] == 0
    assert [e["episode"] for e in json.loads(serialize_events([episode(0), episode(1)]))] == [0, 1]
    one = episode(0)
    assert decode_events(serialize_events([one])) == [json.loads(serialize_event(one))]


def test_non_finite_floats_become_null_also_beside_an_integer_beyond_64_bits() -> None:
    fast = json.loads(serialize_events([episode(0, loss=float("nan")), episode(1, loss=float("-inf"))]))
    assert [e["loss"] for e in fast] == [None, None]
    # orjson refuses integers beyond 64 bits: the standard library's encoder takes over, same output
    slow = json.loads(serialize_events([episode(0, loss=float("inf")), episode(1, big=2**70)]))
    assert slow[0]["loss"] is None and slow[1]["big"] == 2**70
    odd: dict[Any, Any] = {"when": object(), 3: "x"}  # a value JSON lacks, a key that is not a string
    assert json.loads(serialize_event(odd))["3"] == "x"


@given(n=st.integers(1, 450), cap=st.integers(1, 120))
def test_records_hold_the_events_in_order_at_most_cap_each(n: int, cap: int) -> None:
    events = [episode(i) for i in range(n)]
    records = split_into_records(events, cap)
    assert [e["episode"] for value, _ in records for e in decode_events(value)] == list(range(n))
    assert [len(decode_events(value)) for value, _ in records] == [count for _, count in records]
    assert all(count <= cap for _, count in records)
    assert len(records) == -(-n // cap)  # no record smaller than it has to be


def test_a_record_over_the_byte_bound_is_halved_until_it_fits() -> None:
    big = "x" * (MAX_RECORD_BYTES // 10)  # ten of these are over the bound
    events = [episode(i, note=big) for i in range(40)]
    records = split_into_records(events, 100)
    assert all(len(value) <= MAX_RECORD_BYTES for value, _ in records)
    assert [e["episode"] for value, _ in records for e in decode_events(value)] == list(range(40))
    alone = split_into_records([episode(0, note="y" * (MAX_RECORD_BYTES + 1))], 100)
    assert len(alone) == 1 and alone[0][1] == 1  # one event alone larger than the bound is sent as is


def test_the_cap_is_checked() -> None:
    with pytest.raises(ValueError, match="max_events=0"):
        split_into_records([episode(0)], 0)


def test_packing_keeps_each_keys_order_and_never_mixes_keys() -> None:
    batch = [
        ("training_log", envelope("episode", session_id="s", worker_index=i % 3, seq=i)) for i in range(250)
    ] + [("memory_monitoring", envelope("memory_stats", session_id="s", worker_id="monitor", seq=250))]
    records = pack_records(batch, 40)
    seen: dict[bytes, list[int]] = {}
    for record in records:
        events = decode_events(record.value)
        assert record.events == len(events) <= 40
        assert {event_key(e) for e in events} == {record.key}
        seen.setdefault(record.key, []).extend(e["seq"] for e in events)
    assert seen == {
        b"s/0": list(range(0, 250, 3)),
        b"s/1": list(range(1, 250, 3)),
        b"s/2": list(range(2, 250, 3)),
        b"s/monitor": [250],
    }
    assert [r.topic for r in records].count("memory_monitoring") == 1
