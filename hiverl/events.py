"""The seam between the workers and the hive's telemetry and archive.

Workers never talk to Kafka or MongoDB directly: they hand events to an :class:`EventSink`
(the training loop only enqueues) and session lifecycle updates to a :class:`SessionRecorder`.
Concrete sinks: a JSON-lines file (always available), Kafka (``hiverl.telemetry``); the recorder
is backed by the MongoDB archive (``hiverl.archive``).

Every event is a flat JSON object carrying the envelope built by :func:`envelope`; the full,
versioned field list is documented in ``docs/telemetry.md``.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

#: Kafka topic for per-episode events and periodic training statistics.
TRAINING_LOG_TOPIC = "training_log"
#: Kafka topic for replay memory statistics published by the monitor.
MEMORY_MONITORING_TOPIC = "memory_monitoring"
#: Version of the event schema; bump on any incompatible change.
EVENT_SCHEMA_VERSION = 1
#: This host, in every event (looked up once: a syscall per event is a measurable part of its cost).
_HOST = socket.gethostname()

Event = dict[str, Any]


def envelope(
    event_type: str,
    *,
    session_id: str,
    worker_index: int | None = None,
    worker_id: str | None = None,
    env_id: str | None = None,
    **fields: Any,
) -> Event:
    """Build an event: the common envelope fields plus ``fields``.

    Args:
        event_type: ``"episode"``, ``"train_stats"`` or ``"memory_stats"``.
        session_id: the session this event belongs to.
        worker_index: 0-based index of the worker in the hive (None for hive-wide events).
        worker_id: stable worker identifier (host-pid or container name).
        env_id: gymnasium environment id.
        fields: event-specific fields (numbers, strings, booleans).
    """
    event: Event = {
        "schema_version": EVENT_SCHEMA_VERSION,
        "event_type": event_type,
        "event_time": time.time(),
        "session_id": session_id,
        "host": _HOST,
    }
    if worker_index is not None:
        event["worker_index"] = worker_index
    if worker_id is not None:
        event["worker_id"] = worker_id
    if env_id is not None:
        event["env_id"] = env_id
    event.update(fields)
    return event


class EventSink(Protocol):
    """Where a worker's telemetry goes. ``publish`` must be cheap and must never raise on outage."""

    def publish(self, topic: str, event: Mapping[str, Any]) -> None: ...

    def flush(self, timeout_s: float = 10.0) -> None: ...

    def close(self) -> None: ...


class SessionRecorder(Protocol):
    """Lifecycle of a session document in the archive (start, heartbeats, end).

    ``finish`` gets a final :class:`hiverl.status.SessionStatus` (a ``str``); the caller flushes
    the session's events before it (the archive may read them back from the run folder).
    """

    def start(self, document: Mapping[str, Any]) -> None: ...

    def heartbeat(self, session_id: str, update: Mapping[str, Any]) -> None: ...

    def finish(self, session_id: str, status: str, update: Mapping[str, Any]) -> None: ...


class JsonlSink:
    """Appends every event as one JSON line to ``path`` (thread-safe).

    Line-buffered: each event is in the file once ``publish`` returns, so readers of a live run
    folder see it at once and a process killed with SIGKILL loses none it had published."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("a", encoding="utf-8", buffering=1)
        self._lock = threading.Lock()

    def publish(self, topic: str, event: Mapping[str, Any]) -> None:
        line = json.dumps({"topic": topic, **event}, separators=(",", ":"), default=str)
        with self._lock:
            self._file.write(line + "\n")

    def flush(self, timeout_s: float = 10.0) -> None:
        with self._lock:
            self._file.flush()

    def close(self) -> None:
        with self._lock:
            if not self._file.closed:
                self._file.close()


class FanoutSink:
    """Publishes every event to several sinks (e.g. the local JSON-lines file and Kafka)."""

    def __init__(self, *sinks: EventSink) -> None:
        self.sinks = sinks

    def publish(self, topic: str, event: Mapping[str, Any]) -> None:
        for sink in self.sinks:
            sink.publish(topic, event)

    def flush(self, timeout_s: float = 10.0) -> None:
        for sink in self.sinks:
            sink.flush(timeout_s)

    def close(self) -> None:
        for sink in self.sinks:
            sink.close()
