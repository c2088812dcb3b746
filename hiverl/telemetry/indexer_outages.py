"""The indexer's own outages: its waits for Elasticsearch and Kafka, as ``outage`` events it indexes.

:class:`IndexerOutages` keeps one :class:`~hiverl.outages.OutageWatch` per service. Once an
outage is over, its event (``role`` ``indexer``, ``session_id`` :data:`INDEXER_SESSION`: it belongs
to no session, every session's live view shows it) waits in memory until :meth:`IndexerOutages.index`
gets it into Elasticsearch, at the indexer's next round.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from hiverl.events import TRAINING_LOG_TOPIC, envelope
from hiverl.outages import OUTAGE_EVENT, Outage, OutageWatch
from hiverl.telemetry.schema import TIMESTAMP_FIELD, daily_index, validate_event

log = logging.getLogger(__name__)

#: ``session_id`` of the indexer's own ``outage`` events.
INDEXER_SESSION = "indexer"
#: ``role`` of the indexer's own ``outage`` events.
INDEXER_ROLE = "indexer"


class IndexerOutages:
    """The watches of one indexer (consumer group ``group_id``) and its outage events not yet indexed."""

    def __init__(self, group_id: str) -> None:
        self.group_id = group_id
        self.watch = {
            service: OutageWatch(service, on_ended=self._record) for service in ("elasticsearch", "kafka")
        }
        self.recorded = 0
        self._pending: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def _record(self, outage: Outage) -> None:
        """An outage is over (a timer thread): log it, and keep its event for :meth:`index`."""
        log.warning(
            "indexer: %s was unreachable for %.1f s (%d failed calls)",
            outage.name,
            outage.duration_s(),
            outage.failures,
        )
        event = envelope(
            OUTAGE_EVENT,
            session_id=INDEXER_SESSION,
            worker_id=f"indexer-{self.group_id}",
            role=INDEXER_ROLE,
            event_id=f"indexer-{self.group_id}-{outage.service}-{outage.start:.6f}"[-128:],
            **outage.fields(),
        )
        event = validate_event(event, TRAINING_LOG_TOPIC)
        event[TIMESTAMP_FIELD] = int(event["event_time"] * 1000)
        with self._lock:
            self._pending.append(event)
            self.recorded += 1

    def index(self, es: Any, prefix: str) -> None:
        """Index the events waiting (those Elasticsearch does not take wait for the next call)."""
        with self._lock:
            events, self._pending = self._pending, []
        if not events:
            return
        try:
            operations: list[dict[str, Any]] = []
            for event in events:
                index = daily_index(prefix, TRAINING_LOG_TOPIC, event["event_time"])
                operations += [{"index": {"_index": index, "_id": event["event_id"]}}, event]
            items = es.bulk(operations=operations)["items"]
            events = [
                e for e, item in zip(events, items, strict=True) if item["index"].get("status", 500) >= 300
            ]
        except Exception as exc:  # Elasticsearch down again: the next round retries
            log.debug("indexing the indexer's outages failed: %s", exc)
        with self._lock:
            self._pending = events + self._pending

    def close(self, es: Any, prefix: str) -> None:
        """Record the outages not recorded yet (one going on ends now) and try to index them."""
        for watch in self.watch.values():
            watch.close()
        self.index(es, prefix)
