"""The indexer: a Kafka consumer group that bulk-indexes the telemetry topics into Elasticsearch.

One round (:meth:`Indexer.step`):

1. poll up to ``bulk_max_records`` records from both topics;
2. decode each record into its events (one, or a JSON array of several) and validate each against
   the schema; a malformed one (not JSON, wrong types, unknown event type) becomes a dead letter
   document instead, and indexing goes on;
3. bulk-index, ``bulk_max_records`` documents per request, into the daily index of the event's family
   with ``_id`` the event's ``event_id`` (else ``"{topic}-{partition}-{offset}"``): re-delivery
   overwrites, never duplicates; documents Elasticsearch rejects as malformed are dead-lettered too;
   while Elasticsearch is down, the partitions are paused and the bulk retried with exponential
   backoff (the consumer keeps its group membership);
4. commit the offsets only after every record of the round is in Elasticsearch.

Lag (records not yet indexed) is reported by :meth:`Indexer.stats`.

Its own waits (for Elasticsearch: templates, bulks; for Kafka: joining the group, commits) are
watched (:mod:`hiverl.telemetry.indexer_outages`): once one is over, the indexer indexes an
``outage`` event of its own (``role`` ``indexer``), which every session's live view shows.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hiverl.telemetry.admin import ensure_topics
from hiverl.telemetry.config import TelemetryConfig
from hiverl.telemetry.elastic import ensure_templates
from hiverl.telemetry.indexer_outages import IndexerOutages
from hiverl.telemetry.kafka_access import RefusalLog, client_security, refusal
from hiverl.telemetry.records import decode_events
from hiverl.telemetry.schema import (
    DEAD_LETTER_FAMILY,
    FAMILIES,
    TIMESTAMP_FIELD,
    EventSchemaError,
    daily_index,
    document_id,
    validate_event,
)

log = logging.getLogger(__name__)

#: Bytes of a malformed message kept in its dead letter document.
RAW_KEEP_BYTES = 32 * 1024
#: HTTP statuses of bulk items worth retrying (overload, unavailable shards).
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
#: kafka-python's errors of a commit that a group rebalance refused (Kafka itself answered).
REBALANCE_ERRORS = frozenset(
    {"CommitFailedError", "RebalanceInProgressError", "IllegalGenerationError", "UnknownMemberIdError"}
)


@dataclass
class IndexerStats:
    """Counters since start (documents; lag in records) and the lag at the last check."""

    indexed: int = 0
    dead_lettered: int = 0
    bulk_requests: int = 0
    bulk_failures: int = 0  # failed bulk requests (Elasticsearch down or overloaded)
    commits: int = 0
    lag: int | None = None  # records in the topics not yet indexed (None: unknown yet)
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)


@dataclass
class _Action:
    index: str
    doc_id: str
    source: dict[str, Any]
    record: Any  # kafka ConsumerRecord
    element: int | None  # the event's place in an array record; None for a record of one event
    dead: bool


class Indexer:
    """Bulk-indexes ``training_log`` and ``memory_monitoring`` into Elasticsearch."""

    def __init__(
        self,
        bootstrap_servers: str,
        es_url: str,
        config: TelemetryConfig | None = None,
        *,
        topics: Mapping[str, str] | None = None,
        group_id: str | None = None,
        security: Mapping[str, Any] | None = None,
    ) -> None:
        """Args:
        bootstrap_servers: Kafka ``host:port[,...]``.
        es_url: Elasticsearch URL (credentials may be embedded).
        config: prefix, group, bulk size (default: from the environment).
        topics: family → Kafka topic name (default: ``config.topic_prefix`` + the family's name;
            tests map to unique topics).
        group_id: consumer group (default ``config.indexer_group_id``).
        security: kafka-python's security arguments (default: ``KAFKA_SECURITY_PROTOCOL`` and friends).
        """
        self.config = config or TelemetryConfig()
        topics = dict(topics or {f: self.config.kafka_topic(f) for f in FAMILIES})
        unknown = set(topics) - set(FAMILIES)
        if unknown:
            raise ValueError(f"topics has unknown families {sorted(unknown)}; allowed: {FAMILIES}")
        self.family_by_topic = {topic: family for family, topic in topics.items()}
        self.bootstrap_servers = bootstrap_servers
        self.security = client_security(security)
        self._refusals = RefusalLog(log)
        self.group_id = group_id or self.config.indexer_group_id
        self.prefix = self.config.index_prefix
        self.stats = IndexerStats()
        self._stop = threading.Event()
        self._backoff_s = 0.5
        self._last_report = time.monotonic()
        self._uncommitted = False
        self.outages = IndexerOutages(self.group_id)  # its own waits, recorded as outage events

        from elasticsearch import Elasticsearch

        self.es = Elasticsearch(es_url, request_timeout=30, max_retries=0, retry_on_timeout=False)
        self.consumer: Any = None

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        """Apply the index templates and join the consumer group, retrying while a service is down."""
        while not self._stop.is_set():
            try:
                ensure_templates(self.es, self.prefix)
                self.outages.watch["elasticsearch"].succeeded()
                break
            except Exception as exc:
                reason = f"Elasticsearch not ready for templates ({exc.__class__.__name__})"
                self.outages.watch["elasticsearch"].failed(reason)
                self._sleep_backoff(reason)
        self._backoff_s = 0.5
        while not self._stop.is_set() and self.consumer is None:
            try:
                from kafka import KafkaConsumer

                # Create missing topics first: a group subscribed to a topic that does not exist yet
                # is only assigned its partitions at the next metadata refresh, minutes later.
                topics = list(self.family_by_topic)
                ensure_topics(self.bootstrap_servers, topics, self.config, 5.0, self.security)
                self.consumer = KafkaConsumer(
                    *self.family_by_topic,
                    bootstrap_servers=self.bootstrap_servers,
                    group_id=self.group_id,
                    client_id="hiverl-indexer",
                    enable_auto_commit=False,
                    auto_offset_reset="earliest",
                    max_poll_records=self.config.bulk_max_records,
                    bootstrap_timeout_ms=3000,
                    reconnect_backoff_max_ms=1000,
                    metadata_max_age_ms=10_000,  # see a recreated topic's partitions within seconds
                    **self.security,
                )
                self.outages.watch["kafka"].succeeded()
                self._refusals.accepted(self.bootstrap_servers)
            except Exception as exc:
                refused = refusal(exc, self.bootstrap_servers, self.security, list(self.family_by_topic))
                if refused is not None:  # no outage: said once, tried again at the longest backoff
                    wait_s = self.config.reconnect_backoff_max_s
                    self._refusals.refused(refused, f"The indexer tries again every {wait_s:.0f} s")
                    self._stop.wait(wait_s)
                    continue
                reason = f"Kafka not ready ({exc.__class__.__name__})"
                self.outages.watch["kafka"].failed(reason)
                self._sleep_backoff(reason)
        self._backoff_s = 0.5

    def run(self, stop: threading.Event | None = None) -> None:
        """Index until :meth:`stop` (or ``stop`` is set); logs a status line every ``stats_interval_s``."""
        if stop is not None:
            self._stop = stop
        self.start()
        while not self._stop.is_set():
            self.step()
            if time.monotonic() - self._last_report >= self.config.stats_interval_s:
                self.report()

    def stop(self) -> None:
        """Ask :meth:`run` to return after the current round."""
        self._stop.set()

    def close(self) -> None:
        """Record the outages not yet recorded (indexing them if Elasticsearch answers), leave the
        consumer group and close the clients."""
        self.outages.close(self.es, self.prefix)
        if self.consumer is not None:
            self.consumer.close(autocommit=False)
            self.consumer = None
        self.es.close()

    # -- one round --------------------------------------------------------------------------------
    def step(self, poll_timeout_s: float = 0.5) -> int:
        """Poll, index, commit; returns the number of records handled."""
        if self.consumer is None:
            self.start()
        if self._uncommitted:  # a previous commit failed: retry it first
            self._commit()
        if self.outages.pending:
            self.outages.index(self.es, self.prefix)
        # Step 1: poll a batch from both topics.
        polled = self.consumer.poll(
            timeout_ms=int(poll_timeout_s * 1000), max_records=self.config.bulk_max_records
        )
        records = [r for batch in polled.values() for r in batch]
        if not records:
            return 0
        # Step 2: decode and validate; malformed events and records become dead letters.
        actions = [action for r in records for action in self._actions(r)]
        # Step 3: bulk-index, retrying while Elasticsearch is down.
        size = self.config.bulk_max_records
        for start in range(0, len(actions), size):
            if not self._index_all(actions[start : start + size]):
                return 0  # stopped while Elasticsearch was down: commit nothing, re-delivery overwrites
        # Step 4: commit only now that every record is in Elasticsearch.
        self._commit()
        return len(records)

    def _actions(self, record: Any) -> list[_Action]:
        """The record's events as index actions (a record that is not JSON: one dead letter)."""
        try:
            events = decode_events(record.value)
        except (ValueError, TypeError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            return [self._dead_letter(record, None, f"{exc.__class__.__name__}: {exc}")]
        if not events:
            return [self._dead_letter(record, None, "EventSchemaError: an empty array holds no event")]
        if len(events) == 1:  # keyed by the record, as Logstash keys it, when it has no event_id
            return [self._action(record, events[0], None)]
        return [self._action(record, event, i) for i, event in enumerate(events)]

    def _action(self, record: Any, decoded: Any, element: int | None) -> _Action:
        family = self.family_by_topic[record.topic]
        try:
            event = validate_event(decoded, family)
            event_id = event.get("event_id")
            if event_id is None and element is not None:  # Logstash would give them all one id
                raise EventSchemaError("field 'event_id' is required in a record of several events")
            event[TIMESTAMP_FIELD] = int(event["event_time"] * 1000)
            doc_id = event_id or document_id(record.topic, record.partition, record.offset)
            index = daily_index(self.prefix, family, event["event_time"])
            return _Action(index, doc_id, event, record, element, False)
        except (EventSchemaError, TypeError, OverflowError) as exc:
            return self._dead_letter(record, element, f"{exc.__class__.__name__}: {exc}", decoded)

    def _dead_letter(self, record: Any, element: int | None, error: str, decoded: Any = None) -> _Action:
        # Filed under the Kafka record's own timestamp, not the time it was received: a redelivery
        # on another day lands in the same index and overwrites instead of duplicating.
        now = (
            record.timestamp / 1000.0
            if isinstance(record.timestamp, int) and record.timestamp > 0
            else time.time()
        )
        if element is None:
            raw = bytes(record.value or b"")[:RAW_KEEP_BYTES].decode("utf-8", errors="replace")
        else:
            raw = json.dumps(decoded, default=str)[:RAW_KEEP_BYTES]
        source = {
            TIMESTAMP_FIELD: int(now * 1000),
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "element": element,
            "error": error[:2000],
            "raw": raw,
        }
        index = daily_index(self.prefix, DEAD_LETTER_FAMILY, now)
        doc_id = document_id(record.topic, record.partition, record.offset)
        if element is not None:
            doc_id = f"{doc_id}-{element}"
        return _Action(index, doc_id, source, record, element, True)

    def _index_all(self, actions: list[_Action]) -> bool:
        """Index every action (retrying); False if stopped before all were in."""
        pending = actions
        paused = False
        while pending and not self._stop.is_set():
            try:
                operations: list[dict[str, Any]] = []
                for a in pending:
                    operations.append({"index": {"_index": a.index, "_id": a.doc_id}})
                    operations.append(a.source)
                self.stats.bulk_requests += 1
                response = self.es.bulk(operations=operations)
            except Exception as exc:  # connection refused, timeouts, 429/5xx for the whole request
                self.stats.bulk_failures += 1
                self.outages.watch["elasticsearch"].failed(f"bulk failed ({exc.__class__.__name__})")
                if not paused and self.consumer.assignment():
                    self.consumer.pause(*self.consumer.assignment())
                    paused = True
                self._sleep_backoff(f"bulk failed ({exc.__class__.__name__}: {str(exc)[:200]})")
                self.consumer.poll(timeout_ms=0)  # stay in the group while paused
                continue
            self.outages.watch["elasticsearch"].succeeded()
            retry: list[_Action] = []
            for a, item in zip(pending, response["items"], strict=True):
                result = item["index"]
                status = int(result.get("status", 500))
                if status < 300:
                    if a.dead:
                        self.stats.dead_lettered += 1
                        reason = str(a.source["error"]).split(":", 1)[0]
                        self.stats.dead_letter_reasons[reason] = (
                            self.stats.dead_letter_reasons.get(reason, 0) + 1
                        )
                    else:
                        self.stats.indexed += 1
                elif status in RETRYABLE_STATUSES or a.dead:
                    retry.append(a)
                else:  # rejected by the mapping (e.g. a number out of range): park it
                    error = result.get("error", {})
                    reason = error.get("reason", str(error)) if isinstance(error, dict) else str(error)
                    retry.append(
                        self._dead_letter(a.record, a.element, f"RejectedByElasticsearch: {reason}", a.source)
                    )
            if retry and len(retry) == len(pending):
                self._sleep_backoff(f"{len(retry)} bulk items not indexed yet")
            elif not retry:
                self._backoff_s = 0.5
            pending = retry
        if paused and self.consumer.assignment():
            self.consumer.resume(*self.consumer.assignment())
        return not pending

    def _commit(self) -> None:
        try:
            self.consumer.commit(timeout_ms=10_000)
            self.stats.commits += 1
            self._uncommitted = False
            self.outages.watch["kafka"].succeeded()
        except Exception as exc:  # Kafka down or a rebalance: re-delivered records overwrite by id
            self._uncommitted = True
            if exc.__class__.__name__ not in REBALANCE_ERRORS:  # a rebalance is no outage
                self.outages.watch["kafka"].failed(f"offset commit failed ({exc.__class__.__name__})")
            log.warning("offset commit failed (%s); will retry", exc.__class__.__name__)

    def _sleep_backoff(self, reason: str) -> None:
        log.warning("indexer: %s; retrying in %.1fs", reason, self._backoff_s)
        self._stop.wait(self._backoff_s)
        self._backoff_s = min(self._backoff_s * 2, self.config.reconnect_backoff_max_s)

    # -- lag and status ---------------------------------------------------------------------------
    def lag(self) -> int | None:
        """Records in the assigned partitions not yet consumed (end offset − position); None if no
        partitions are assigned yet or Kafka does not answer."""
        if self.consumer is None:
            return None
        partitions = list(self.consumer.assignment())
        if not partitions:
            return None
        try:
            ends = self.consumer.end_offsets(partitions, timeout_ms=5000)
            lag = sum(max(0, ends[tp] - self.consumer.position(tp, timeout_ms=5000)) for tp in partitions)
        except Exception:
            return None
        self.stats.lag = lag
        return lag

    def report(self) -> str:
        """Log and return a status line: indexed, dead-lettered, failures and lag."""
        self._last_report = time.monotonic()
        lag = self.lag()
        s = self.stats
        line = (
            f"indexed={s.indexed} dead_lettered={s.dead_lettered} bulk_failures={s.bulk_failures} "
            f"lag={'?' if lag is None else lag}"
        )
        log.info("indexer: %s", line)
        return line
