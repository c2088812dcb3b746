"""An event as a Kafka record: its key (which partition, hence its order) and its JSON value."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any


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


def serialize_event(event: Mapping[str, Any]) -> bytes:
    """Compact JSON; NaN and ±inf (invalid JSON, rejected by Elasticsearch) become null."""
    try:
        return json.dumps(event, separators=(",", ":"), allow_nan=False, default=str).encode()
    except ValueError:
        clean = {k: _finite(v) for k, v in event.items()}
        return json.dumps(clean, separators=(",", ":"), allow_nan=False, default=str).encode()
