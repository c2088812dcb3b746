"""KafkaSink: a process's one telemetry producer (an :class:`hiverl.events.EventSink`).

Every process that sends telemetry owns one: each role of a hive (learner, actor, evaluator), the
memory monitor, a benchmark.

The caller's cost is one dict copy and a deque append: :meth:`KafkaSink.publish` never touches the
network, never blocks and never raises on an outage. A background thread does the rest:

1. wake every ``linger_ms`` (1 s), take up to ``CHUNK`` events from the bounded in-memory queue, give
   each its ``event_id`` (this sink's random id and a sequence number: its document id in
   Elasticsearch, so an event sent twice overwrites itself) and pack them into records, up to
   ``events_per_record`` (100) events of one key each (:mod:`hiverl.telemetry.records`: compact JSON,
   non-finite floats as null; key ``"{session_id}/{worker_index}"`` so a worker's events share a
   partition and stay ordered). kafka-python's cost is per record and each round costs about 1 ms, so
   packing and 1 s rounds are what keep telemetry near 1 % of a worker's CPU (``bench/telemetry.py``);
2. while Kafka is reachable and the disk spool is empty, send the records with a compressing (zstd,
   else gzip), idempotent kafka-python producer and wait for every ack;
3. records Kafka did not acknowledge, and every record produced while it is down, go to the bounded
   on-disk :class:`~hiverl.telemetry.spool.Spool`; Kafka is probed with exponential backoff and the
   spool is delivered oldest first before new events are sent directly again.

Nothing is dropped silently: an over-full queue or spool drops the oldest events, counts them
(:meth:`KafkaSink.stats`, and ``telemetry_dropped_total`` in every stats event) and logs a warning.

Its ``outages`` watch hears of each failed and successful attempt to reach Kafka (a hive role's
records an ``outage`` event of service ``kafka`` once Kafka is back). A refusal is no outage: a login
Kafka rejects, or a topic the user may not write (:mod:`hiverl.telemetry.kafka_access`), is logged once
as an ERROR naming the user and the variable to check; the events wait in the spool as in an outage
(bounded as ever), the process goes on, and the sink tries again every ``reconnect_backoff_max_s``.
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

from hiverl.events import MEMORY_MONITORING_TOPIC, TRAINING_LOG_TOPIC
from hiverl.outages import OutageWatch
from hiverl.telemetry.admin import ensure_topics
from hiverl.telemetry.config import TelemetryConfig
from hiverl.telemetry.kafka_access import RefusalLog, client_security, open_producer, refusal, send_and_wait
from hiverl.telemetry.records import Record, pack_records
from hiverl.telemetry.spool import Spool, SpoolLockedError

log = logging.getLogger(__name__)

#: Events serialized and sent per round of the background thread.
CHUNK = 5000
#: Event types that get the producer's health fields (periodic statistics).
STATS_EVENT_TYPES = frozenset({"train_stats", "memory_stats"})
_WARN_EVERY_S = 10.0


@dataclass(frozen=True)
class SinkStats:
    """Counters of a :class:`KafkaSink` since it was created (events)."""

    published: int  # accepted by publish()
    delivered: int  # acknowledged by Kafka
    spooled: int  # waiting in the disk spool now
    queued: int  # waiting in memory now
    dropped_total: int  # dropped because the queue or the spool was full
    online: bool  # Kafka reachable at the last attempt
    refused: str = ""  # how Kafka refuses this producer now ('' when it does not)


def default_spool_name() -> str:
    """``host-pid``: unique per process; pass a stable name to resume a crashed process's spool."""
    return f"{socket.gethostname()}-{os.getpid()}"


class KafkaSink:
    """Asynchronous, batched, compressed Kafka producer with a bounded disk spool for outages."""

    def __init__(
        self,
        bootstrap_servers: str,
        config: TelemetryConfig | None = None,
        *,
        spool_name: str | None = None,
        topics: Sequence[str] = (TRAINING_LOG_TOPIC, MEMORY_MONITORING_TOPIC),
        client_id: str = "hiverl-telemetry",
        outages: OutageWatch | None = None,
        security: Mapping[str, Any] | None = None,
    ) -> None:
        """Start the background thread; nothing here waits for Kafka.

        Args:
            bootstrap_servers: ``host:port[,host:port...]`` of the brokers.
            config: producer, spool and topic settings (default: from the environment).
            spool_name: sub-directory of the spool directory owned by this producer; a stable name
                (e.g. ``"{session}-w{index}"``) lets a restarted process deliver what a crashed one
                spooled. Default: ``host-pid``; if taken by a live process, ``-pid`` is appended.
            topics: topics created (partitions and retention from ``config``) before the first send.
                A telemetry family's name (``training_log``, ``memory_monitoring``), here and in
                :meth:`publish`, stands for its topic ``config.topic_prefix + name``.
            client_id: Kafka client id.
            outages: told (from the sink's thread) of each failed attempt to reach Kafka and of
                each success; the owner closes it.
            security: kafka-python's security arguments (default: ``KAFKA_SECURITY_PROTOCOL`` and
                friends, :meth:`hiverl.endpoints.Endpoints.kafka_client_settings`).
        """
        if not bootstrap_servers.strip():
            raise ValueError("bootstrap_servers is empty; expected host:port[,host:port...]")
        self.bootstrap_servers = bootstrap_servers
        self.config = config or TelemetryConfig()
        self.client_id = client_id
        self.outages = outages or OutageWatch("kafka")
        self.security = client_security(security)
        self._refusals = RefusalLog(log)
        self._refused_send: BaseException | None = None  # the last send Kafka refused
        self.topics = tuple(self.config.kafka_topic(t) for t in topics)
        name = spool_name or default_spool_name()
        root = self.config.resolved_spool_dir()
        try:
            self._spool = self._open_spool(root / name)
        except SpoolLockedError:
            self._spool = self._open_spool(root / f"{name}-{os.getpid()}")

        self._queue: collections.deque[tuple[str, dict[str, Any]]] = collections.deque()
        self._queue_max = self.config.queue_max_events
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._published = 0
        self._settled = 0  # published events delivered, spooled or dropped
        self._delivered = 0
        self._queue_dropped = 0
        self._unsettled: list[Record] = []  # serialized, not yet acknowledged or spooled
        self._producer: Any = None
        self._offline = False  # the last attempt to reach Kafka failed
        self._topics_ready = False
        self._next_probe = 0.0
        self._backoff_s = 0.5
        self._id_prefix = uuid.uuid4().hex[:16] + "-"
        self._next_seq = 0
        self._last_warning = 0.0
        self._closing = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="hiverl-kafka-sink", daemon=True)
        self._thread.start()
        atexit.register(self._close_at_exit)  # an interpreter exit without close() still flushes

    def _open_spool(self, directory: Path) -> Spool:
        return Spool(directory, self.config.spool_max_bytes, self.config.spool_segment_bytes)

    # -- the caller's side -------------------------------------------------------------------------
    def publish(self, topic: str, event: Mapping[str, Any]) -> None:
        """Enqueue ``event`` for ``topic``: O(1), no I/O. A full queue drops (and counts) its oldest."""
        if self._closed:
            raise RuntimeError("publish() on a closed KafkaSink")
        queue = self._queue
        with self._lock:
            if len(queue) >= self._queue_max:
                queue.popleft()
                self._queue_dropped += 1
                self._settled += 1
            queue.append((topic, dict(event)))
            self._published += 1
            backlog = len(queue)
        if backlog >= CHUNK:
            self._wake.set()

    def flush(self, timeout_s: float = 10.0) -> None:
        """Wait (at most ``timeout_s``) until every event published so far is acknowledged by Kafka
        or, while Kafka is down, safely in the disk spool."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            target = self._published
        while time.monotonic() < deadline and self._thread.is_alive():
            with self._lock:
                settled = self._settled
            if settled >= target and (self._spool.pending == 0 or self._offline):
                return
            self._wake.set()
            time.sleep(0.005)

    def close(self, timeout_s: float = 30.0) -> None:
        """Flush, stop the background thread and close the producer; undelivered events stay in the
        spool for the next producer with the same ``spool_name``."""
        if self._closed:
            return
        atexit.unregister(self._close_at_exit)
        self.flush(timeout_s)
        self._closing = True
        self._wake.set()
        self._thread.join(timeout_s)
        self._closed = True
        if self._producer is not None:
            self._producer.close(timeout=5)
            self._producer = None
        self._spool.close()

    def _close_at_exit(self) -> None:
        try:
            self.close(timeout_s=5.0)
        except Exception:  # at exit nothing is left to report to
            log.debug("closing the telemetry sink at exit failed", exc_info=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def stats(self) -> SinkStats:
        """Counters for status lines and periodic stats events."""
        with self._lock:
            return SinkStats(
                published=self._published,
                delivered=self._delivered,
                spooled=self._spool.pending,
                queued=len(self._queue),
                dropped_total=self._queue_dropped + self._spool.dropped_total,
                online=not self._offline and self._producer is not None,
                refused=self._refusals.current,
            )

    # -- the background thread -------------------------------------------------------------------
    def _run(self) -> None:
        wait_s = max(self.config.linger_ms, 5) / 1000
        while True:
            self._wake.wait(wait_s)
            self._wake.clear()
            try:
                self._round()
            except Exception:  # never let the thread die: the next round retries
                log.exception("telemetry sink round failed")
                time.sleep(0.5)
            idle = not self._queue and not self._unsettled
            if self._closing and idle and (self._spool.pending == 0 or self._offline):
                return

    def _round(self) -> None:
        while True:
            # Step 1: take a chunk from the in-memory queue and serialize it (unless a chunk is left
            # over from a round that failed unexpectedly: retry that one, never lose it).
            if not self._unsettled:
                with self._lock:
                    n = min(len(self._queue), CHUNK)
                    batch = [self._queue.popleft() for _ in range(n)]
                self._unsettled = self._records(batch)
            records = self._unsettled
            events = sum(r.events for r in records)
            # Step 2: straight to Kafka while it is up and nothing older waits in the spool.
            if records and self._spool.pending == 0 and self._connected():
                failed = self._deliver(records)
                self._spool.append(failed)
                if failed:
                    self._went_offline(f"{len(failed)} of {len(records)} records not acknowledged")
            elif records:
                self._spool.append(records)
            self._unsettled = []
            with self._lock:
                self._settled += events
            self._warn_about_drops()
            # Step 3: deliver the spool, oldest first, once Kafka answers again.
            if self._spool.pending and self._connected():
                self._drain_spool()
            if events < CHUNK:
                return

    def _records(self, batch: Sequence[tuple[str, dict[str, Any]]]) -> list[Record]:
        """Stamp ``batch``'s events (``event_id``; producer health on stats events) and pack them."""
        prefix, seq = self._id_prefix, self._next_seq
        for _, event in batch:
            event["event_id"] = prefix + str(seq)
            seq += 1
            if event.get("event_type") in STATS_EVENT_TYPES:
                event["telemetry_dropped_total"] = self._queue_dropped + self._spool.dropped_total
                event["telemetry_spooled"] = self._spool.pending
        self._next_seq = seq
        records = pack_records(batch, self.config.events_per_record)
        return [r._replace(topic=self.config.kafka_topic(r.topic)) for r in records]

    def _connected(self) -> bool:
        """A producer exists, or creating one (and the topics) succeeds; probes at most once per backoff."""
        if self._producer is not None:
            return True
        now = time.monotonic()
        if now < self._next_probe:
            return False
        try:
            if not self._topics_ready:
                ensure_topics(self.bootstrap_servers, self.topics, self.config, 3.0, self.security)
                self._topics_ready = True
            self._producer = open_producer(self.bootstrap_servers, self.client_id, self.config, self.security)
        except Exception as exc:  # timeouts, admin errors, a refusal
            self._offline = True
            if self._refused(exc):
                return False
            self.outages.failed(f"Kafka {self.bootstrap_servers} unreachable ({exc.__class__.__name__})")
            if self._backoff_s == 0.5:  # first failure of a streak: say why
                log.warning(
                    "Kafka %s unreachable: %s: %s", self.bootstrap_servers, exc.__class__.__name__, exc
                )
            self._next_probe = now + self._backoff_s
            self._backoff_s = min(self._backoff_s * 2, self.config.reconnect_backoff_max_s)
            log.debug(
                "Kafka %s unreachable (%s); retry in %.1fs", self.bootstrap_servers, exc, self._backoff_s
            )
            return False
        if self._spool.pending and not self._refusals.current:  # a refusal's tries stay quiet
            log.warning(
                "Kafka %s reachable again: delivering %d spooled events",
                self.bootstrap_servers,
                self._spool.pending,
            )
        self._backoff_s = 0.5
        self._offline = False
        self.outages.succeeded()
        return True

    def _refused(self, exc: BaseException) -> bool:
        """When ``exc`` is a refusal: say so (once), wait the longest backoff, and return True."""
        text = refusal(exc, self.bootstrap_servers, self.security, self.topics)
        if text is None:
            return False
        retry_s = self.config.reconnect_backoff_max_s
        self._refusals.refused(
            text, f"Telemetry waits in {self._spool.directory}; next try in {retry_s:.0f} s"
        )
        self._next_probe = time.monotonic() + retry_s
        return True

    def _went_offline(self, reason: str) -> None:
        producer, self._producer = self._producer, None
        self._offline = True
        refused, self._refused_send = self._refused_send, None
        if refused is None or not self._refused(refused):
            where = self._spool.directory
            log.warning("Kafka %s unavailable (%s): spooling to %s", self.bootstrap_servers, reason, where)
            self.outages.failed(f"Kafka {self.bootstrap_servers} unavailable ({reason})")
            self._next_probe = time.monotonic() + self._backoff_s
        if producer is not None:  # a fresh producer (new id, new sequences) after the outage
            try:
                producer.close(timeout=0)
            except Exception:
                log.debug("closing the failed producer", exc_info=True)

    def _deliver(self, records: Sequence[Record]) -> list[Record]:
        """Send ``records`` and wait for every ack; returns those not acknowledged, in order."""
        failed_at, refused = send_and_wait(
            self._producer, records, self.config.delivery_timeout_ms / 1000 + 10
        )
        self._refused_send = refused or self._refused_send
        if not failed_at:  # a login refused before, or a topic, is accepted now
            self._refusals.accepted(self.bootstrap_servers)
        failed = [record for i, record in enumerate(records) if i in failed_at]
        with self._lock:
            self._delivered += sum(r.events for r in records) - sum(r.events for r in failed)
        return failed

    def _drain_spool(self) -> None:
        while self._spool.pending and self._producer is not None:
            records, position = self._spool.peek(CHUNK)
            if not records:
                return
            failed = self._deliver(records)
            if failed:
                # Re-spool only what Kafka lacks (no duplicates); order across an outage is best effort.
                self._spool.commit(position, records)
                self._spool.append(failed)
                self._went_offline(f"{len(failed)} spooled records not acknowledged")
                return
            self._spool.commit(position, records)
            if self._queue:  # keep the in-memory queue moving behind the spool
                return

    def _warn_about_drops(self) -> None:
        dropped = self._queue_dropped + self._spool.dropped_total
        now = time.monotonic()
        if dropped and now - self._last_warning > _WARN_EVERY_S and dropped != getattr(self, "_warned_at", 0):
            self._last_warning = now
            self._warned_at = dropped
            log.warning(
                "telemetry dropped %d events so far (queue full: %d, spool full: %d)",
                dropped,
                self._queue_dropped,
                self._spool.dropped_total,
            )
