"""Events as Kafka records: the key (which partition, hence the order) and the JSON value.

A record's value is one event (a JSON object) or several events of one key, oldest first (a JSON
array). Batching events into records is what keeps telemetry cheap for the process that sends it:
the Kafka client's cost is per record (~15 µs of Python each), so a record of ``k`` events costs
each of them ``1/k`` of it. Logstash's ``json`` codec makes one event per array element, as
:func:`decode_events` does for ``hiverl index``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import orjson

#: A record's value is split (halved) until it is at most this many bytes, or holds a single event.
MAX_RECORD_BYTES = 512 * 1024


class Record(NamedTuple):
    """A Kafka record to send: its topic, key and value, and how many events the value holds."""

    topic: str
    key: bytes
    value: bytes
    events: int = 1


def event_key(event: Mapping[str, Any]) -> bytes:
    """Kafka key ``"{session_id}/{worker_index}"`` (``worker_id`` or ``"hive"`` when no index)."""
    worker = event.get("worker_index")
    if worker is None:
        worker = event.get("worker_id", "hive")
    return f"{event.get('session_id', '')}/{worker}".encode()


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _dumps(value: Any) -> bytes:
    """Compact JSON, NaN and ±inf as null: orjson (~0.2 µs per event), else (an integer beyond 64 bits,
    a key that is not a string) the standard library's encoder."""
    try:
        return orjson.dumps(value, default=str)
    except TypeError:
        if isinstance(value, list):
            value = [{k: _finite(v) for k, v in event.items()} for event in value]
        else:
            value = {k: _finite(v) for k, v in value.items()}
        return json.dumps(value, separators=(",", ":"), allow_nan=False, default=str).encode()


def serialize_event(event: Mapping[str, Any]) -> bytes:
    """Compact JSON; NaN and ±inf (invalid JSON, rejected by Elasticsearch) become null."""
    return _dumps(event)


def serialize_events(events: Sequence[Mapping[str, Any]]) -> bytes:
    """One event as a JSON object, several as a JSON array; non-finite floats become null."""
    return _dumps(events[0] if len(events) == 1 else list(events))


def split_into_records(events: Sequence[Mapping[str, Any]], max_events: int) -> list[tuple[bytes, int]]:
    """``events`` (one key's, in order) as record values: ``(value, number of events)`` each, at most
    ``max_events`` events and :data:`MAX_RECORD_BYTES` bytes (unless one event alone is larger), in
    the events' order."""
    if max_events < 1:
        raise ValueError(f"max_events={max_events}; expected at least 1")
    values: list[tuple[bytes, int]] = []
    for start in range(0, len(events), max_events):
        pending = [events[start : start + max_events]]
        while pending:
            part = pending.pop(0)
            value = serialize_events(part)
            if len(value) > MAX_RECORD_BYTES and len(part) > 1:
                half = len(part) // 2
                pending[:0] = [part[:half], part[half:]]
                continue
            values.append((value, len(part)))
    return values


def decode_events(value: bytes) -> list[Any]:
    """The events in a record's value, in order (an object gives one, an array its elements; the
    elements are not checked here). Raises ``ValueError`` (``json.JSONDecodeError``,
    ``UnicodeDecodeError``) when the value is not JSON."""
    decoded = json.loads(value)
    return decoded if isinstance(decoded, list) else [decoded]


def pack_records(batch: Iterable[tuple[str, Mapping[str, Any]]], max_events: int) -> list[Record]:
    """``(topic, event)`` pairs as records: one key's events share records (at most ``max_events``
    each), in order; keys in the order first seen."""
    by_key: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for topic, event in batch:
        # what event_key() reads, without building the key for every event
        group = (topic, event.get("session_id"), event.get("worker_index"), event.get("worker_id"))
        by_key.setdefault(group, []).append(event)
    return [
        Record(group[0], event_key(events[0]), value, n)
        for group, events in by_key.items()
        for value, n in split_into_records(events, max_events)
    ]
