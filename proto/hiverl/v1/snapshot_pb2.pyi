from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable
from typing import ClassVar as _ClassVar, Optional as _Optional

DESCRIPTOR: _descriptor.FileDescriptor

class SnapshotHeader(_message.Message):
    __slots__ = ("format_version", "config_json", "created_time")
    FORMAT_VERSION_FIELD_NUMBER: _ClassVar[int]
    CONFIG_JSON_FIELD_NUMBER: _ClassVar[int]
    CREATED_TIME_FIELD_NUMBER: _ClassVar[int]
    format_version: int
    config_json: str
    created_time: float
    def __init__(self, format_version: _Optional[int] = ..., config_json: _Optional[str] = ..., created_time: _Optional[float] = ...) -> None: ...

class ShardSnapshot(_message.Message):
    __slots__ = ("shard", "cursor", "inserted_total", "sampled_total", "evicted_total", "corrupt_dropped", "max_priority", "entries", "dropped_slots")
    SHARD_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    INSERTED_TOTAL_FIELD_NUMBER: _ClassVar[int]
    SAMPLED_TOTAL_FIELD_NUMBER: _ClassVar[int]
    EVICTED_TOTAL_FIELD_NUMBER: _ClassVar[int]
    CORRUPT_DROPPED_FIELD_NUMBER: _ClassVar[int]
    MAX_PRIORITY_FIELD_NUMBER: _ClassVar[int]
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    DROPPED_SLOTS_FIELD_NUMBER: _ClassVar[int]
    shard: int
    cursor: int
    inserted_total: int
    sampled_total: int
    evicted_total: int
    corrupt_dropped: int
    max_priority: float
    entries: int
    dropped_slots: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, shard: _Optional[int] = ..., cursor: _Optional[int] = ..., inserted_total: _Optional[int] = ..., sampled_total: _Optional[int] = ..., evicted_total: _Optional[int] = ..., corrupt_dropped: _Optional[int] = ..., max_priority: _Optional[float] = ..., entries: _Optional[int] = ..., dropped_slots: _Optional[_Iterable[int]] = ...) -> None: ...

class SnapshotEntry(_message.Message):
    __slots__ = ("slot", "mass", "transition")
    SLOT_FIELD_NUMBER: _ClassVar[int]
    MASS_FIELD_NUMBER: _ClassVar[int]
    TRANSITION_FIELD_NUMBER: _ClassVar[int]
    slot: int
    mass: float
    transition: bytes
    def __init__(self, slot: _Optional[int] = ..., mass: _Optional[float] = ..., transition: _Optional[bytes] = ...) -> None: ...
