"""The memory monitor: polls the shared replay memory and publishes ``memory_monitoring`` events.

Every ``interval_s`` seconds (:meth:`MemoryMonitor.poll_once`):

1. read the memory's statistics (the whole memory, and each shard when the memory reports them)
   and the Redis servers' ``INFO`` (``used_memory``, ``connected_clients``);
2. derive fill ratio, bytes per transition, mean priority and the insert, sample and eviction
   rates from the counters' change since the previous poll (no rate on the first poll or after a
   counter went backwards, e.g. the memory was recreated);
3. publish one ``memory_stats`` event per shard plus one for the whole memory (``shard = -1``).

Redis restarts are survived by reconnecting with exponential backoff; Kafka outages by the sink
(:class:`hiverl.telemetry.KafkaSink` spools to disk and delivers later). Refused Redis credentials
(:mod:`hiverl.redis_access`) end the run: waiting would not fix them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from hiverl.events import MEMORY_MONITORING_TOPIC, Event, EventSink, envelope
from hiverl.redis_access import ACCESS_ERRORS

log = logging.getLogger(__name__)

TOTAL_SHARD = -1


@dataclass(frozen=True)
class MonitorSettings:
    """What to watch and how often.

    Attributes:
        memory_name: name of the replay memory (``MemoryConfig.name``).
        key_prefix: key prefix of the memory (``MemoryConfig.key_prefix``).
        interval_s: seconds between polls (> 0).
        session_id: ``session_id`` of the events (default: ``"memory-{memory_name}"``).
        backoff_max_s: longest wait between reconnection attempts (s).
    """

    memory_name: str = "hive"
    key_prefix: str = ""
    interval_s: float = 5.0
    session_id: str | None = None
    backoff_max_s: float = 30.0

    def __post_init__(self) -> None:
        if not self.interval_s > 0:
            raise ValueError(f"interval_s={self.interval_s!r}; expected seconds > 0")
        if not self.backoff_max_s > 0:
            raise ValueError(f"backoff_max_s={self.backoff_max_s!r}; expected seconds > 0")
        if not self.memory_name:
            raise ValueError("memory_name is empty; expected the replay memory's name (e.g. 'hive')")


@dataclass(frozen=True)
class ShardReading:
    """Statistics of one shard (or of the whole memory, ``shard = -1``) at one instant."""

    shard: int
    stats: Any  # replay_memory.MemoryStats
    redis_used_memory: int | None
    redis_connected_clients: int | None


class MemoryNotFoundError(LookupError):
    """The memory does not exist (yet) in Redis."""


# -- the stats source: the only place that knows the replay memory's API ---------------------------
class MemorySource:
    """Reads a replay memory's statistics; reconnects lazily after :meth:`reset`."""

    def __init__(self, redis_url: str, memory_name: str, key_prefix: str = "") -> None:
        self.redis_url = redis_url
        self.memory_name = memory_name
        self.key_prefix = key_prefix
        self._memory: Any = None
        self._servers: list[Any] = []

    def _open(self) -> None:
        import redis

        from replay_memory import InvalidConfigError, ReplayMemory

        urls = [u.strip() for u in self.redis_url.split(",") if u.strip()]
        self._servers = [redis.Redis.from_url(u, socket_timeout=5, socket_connect_timeout=5) for u in urls]
        try:  # the monitor does not know the memory's config: attach reads the stored one
            self._memory = ReplayMemory.attach(self.redis_url, self.memory_name, self.key_prefix)
        except InvalidConfigError as exc:
            raise MemoryNotFoundError(str(exc)) from exc

    def read(self) -> list[ShardReading]:
        """The whole memory (``shard = -1``) and, if the memory reports them, each shard."""
        if self._memory is None:
            self._open()
        infos = [_redis_info(s) for s in self._servers]
        readings = [
            ShardReading(
                TOTAL_SHARD,
                self._memory.stats(),
                _sum_or_none(i[0] for i in infos),
                _sum_or_none(i[1] for i in infos),
            )
        ]
        per_shard: Callable[[], Sequence[Any]] | None = getattr(self._memory, "shard_stats", None)
        if per_shard is not None:
            for k, stats in enumerate(per_shard()):
                used, clients = infos[k % len(infos)]
                readings.append(ShardReading(k, stats, used, clients))
        return readings

    def reset(self) -> None:
        """Drop the connections (after an error); the next :meth:`read` reconnects."""
        for closeable in [self._memory, *self._servers]:
            try:
                if closeable is not None:
                    closeable.close()
            except Exception:
                log.debug("close failed", exc_info=True)
        self._memory, self._servers = None, []


def _redis_info(client: Any) -> tuple[int | None, int | None]:
    memory = client.info("memory")
    clients = client.info("clients")
    return int(memory["used_memory"]), int(clients["connected_clients"])


def _sum_or_none(values: Any) -> int | None:
    vals = [v for v in values if v is not None]
    return sum(vals) if vals else None


# -- turning readings into events -------------------------------------------------------------------
@dataclass
class _Previous:
    time_s: float
    inserted: int
    sampled: int
    evicted: int


def _rate(now: int, before: int, dt_s: float) -> float | None:
    if dt_s <= 0 or now < before:
        return None
    return (now - before) / dt_s


@dataclass
class MemoryMonitor:
    """Polls ``source`` every ``settings.interval_s`` and publishes to ``sink``."""

    source: MemorySource
    sink: EventSink
    settings: MonitorSettings = field(default_factory=MonitorSettings)
    topic: str = MEMORY_MONITORING_TOPIC
    polls: int = 0
    failures: int = 0
    _previous: dict[int, _Previous] = field(default_factory=dict)
    _backoff_s: float = 0.5

    def events(self, readings: Sequence[ShardReading], now_s: float) -> list[Event]:
        """``memory_stats`` events for ``readings`` taken at ``now_s`` (updates the rate baselines)."""
        session = self.settings.session_id or f"memory-{self.settings.memory_name}"
        out = []
        for r in readings:
            s = r.stats
            prev = self._previous.get(r.shard)
            dt_s = now_s - prev.time_s if prev else 0.0
            out.append(
                envelope(
                    "memory_stats",
                    session_id=session,
                    worker_id=f"monitor-{self.settings.memory_name}",
                    memory_name=self.settings.memory_name,
                    shard=r.shard,
                    shards=s.shards,
                    size=s.size,
                    capacity=s.capacity,
                    fill_ratio=s.size / s.capacity if s.capacity else 0.0,
                    bytes_used=s.bytes_used,
                    bytes_per_transition=s.bytes_used / s.size if s.size else None,
                    inserted_total=s.inserted_total,
                    sampled_total=s.sampled_total,
                    evicted_total=s.evicted_total,
                    corrupt_dropped=s.corrupt_dropped,
                    insert_rate=_rate(s.inserted_total, prev.inserted, dt_s) if prev else None,
                    sample_rate=_rate(s.sampled_total, prev.sampled, dt_s) if prev else None,
                    eviction_rate=_rate(s.evicted_total, prev.evicted, dt_s) if prev else None,
                    priority_sum=float(s.priority_sum),
                    priority_min=float(s.priority_min),
                    priority_max=float(s.priority_max),
                    priority_mean=float(s.priority_sum) / s.size if s.size else None,
                    redis_used_memory=r.redis_used_memory,
                    redis_connected_clients=r.redis_connected_clients,
                )
            )
            out[-1]["event_time"] = now_s
            self._previous[r.shard] = _Previous(now_s, s.inserted_total, s.sampled_total, s.evicted_total)
        return out

    def poll_once(self) -> list[Event]:
        """Read, publish and return this poll's events; raises on a Redis or memory error."""
        readings = self.source.read()
        events = self.events(readings, time.time())
        for event in events:
            self.sink.publish(self.topic, event)
        self.polls += 1
        return events

    def run(self, stop: threading.Event | None = None, max_polls: int | None = None) -> None:
        """Poll until ``stop`` is set (or ``max_polls`` polls succeeded), surviving Redis restarts."""
        stop = stop or threading.Event()
        while not stop.is_set() and (max_polls is None or self.polls < max_polls):
            started = time.monotonic()
            try:
                self.poll_once()
                self._backoff_s = 0.5
                wait_s = self.settings.interval_s - (time.monotonic() - started)
            except ACCESS_ERRORS:  # refused credentials never heal: the caller ends the monitor
                raise
            except Exception as exc:  # Redis down, memory missing, ...: reconnect with backoff
                self.failures += 1
                self.source.reset()
                wait_s = self._backoff_s
                log.warning("memory monitor: %s: %s; retrying in %.1fs", exc.__class__.__name__, exc, wait_s)
                self._backoff_s = min(self._backoff_s * 2, self.settings.backoff_max_s)
            stop.wait(max(wait_s, 0.0))
