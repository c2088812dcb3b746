"""Outages of a service as one component saw them: when it began, when it ended, how long it lasted.

A component that rides out an outage (a hive role waiting for Redis, a producer spooling while
Kafka is away, the indexer waiting for Kafka or Elasticsearch) keeps one :class:`OutageWatch` per
service and tells it about each failed call (:meth:`OutageWatch.failed`) and each call that
succeeded (:meth:`OutageWatch.succeeded`, cheap enough for every call). The watch makes outages
of them:

* an outage begins at the first failure (``on_failure`` hears of every failure, with the outage);
* it is over at the first success after a failure: ``on_recovered`` says so at once;
* it is recorded once no failure followed for ``settle_s`` seconds (longer than the longest backoff
  between retries): ``on_ended`` gets it, for one ``outage`` event (:meth:`Outage.fields`). A failure
  within that time (a wait still failing elsewhere in the component, a helper's late report, one
  shard of several still down) continues the same outage instead of starting a new one.

:meth:`OutageWatch.close` records what is left when the component ends: an outage still going on
ends then, with ``outage_recovered`` false.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

#: The event type of an outage (topic ``training_log``).
OUTAGE_EVENT: Final = "outage"
#: Names of the services an outage can be of (the events' ``service``).
SERVICES: Final = ("redis", "kafka", "elasticsearch")
#: Display names, for progress lines.
SERVICE_NAMES: Final = {"redis": "Redis", "kafka": "Kafka", "elasticsearch": "Elasticsearch"}
#: A failure this soon after a recovery continues the outage (longer than the roles' 5 s backoff).
SETTLE_S: Final = 6.0


@dataclass
class Outage:
    """One outage of ``service`` (times in Unix epoch seconds)."""

    service: str
    start: float  # the first failed call
    end: float | None = None  # the first call that succeeded after the last failure (None: still down)
    failures: int = 0  # failed calls (or probes) during the outage
    text: str = ""  # the last failure, in words
    recovered: bool = True  # False: the component stopped while it was still waiting

    @property
    def name(self) -> str:
        return SERVICE_NAMES.get(self.service, self.service)

    def duration_s(self, now: float | None = None) -> float:
        end = self.end if self.end is not None else (time.time() if now is None else now)
        return max(0.0, end - self.start)

    def facts(self) -> dict[str, Any]:
        """What a lifecycle message says of it: the service, since when, until when (None: still down)."""
        return {"service": self.service, "since": self.start, "until": self.end, "failures": self.failures}

    def fields(self) -> dict[str, Any]:
        """The ``outage`` event's own fields (see ``hiverl.telemetry.schema``)."""
        end = self.end if self.end is not None else time.time()
        return {
            "service": self.service,
            "outage_start": self.start,
            "outage_end": end,
            "outage_duration_s": round(max(0.0, end - self.start), 3),
            "outage_failures": self.failures,
            "outage_recovered": self.recovered,
        }


OutageCallback = Callable[[Outage], None]


class OutageWatch:
    """Failures and successes of calls to one service (from any thread) as outages; see the module.

    Every callback gets a copy of the outage and runs outside the watch's lock: ``on_failure``
    (outage, text) and ``on_recovered`` in the thread that reported, ``on_ended`` in a timer thread
    (or in the thread that calls :meth:`close`).
    """

    def __init__(
        self,
        service: str,
        *,
        on_failure: Callable[[Outage, str], None] | None = None,
        on_recovered: OutageCallback | None = None,
        on_ended: OutageCallback | None = None,
        settle_s: float = SETTLE_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.service = service
        self.on_failure = on_failure
        self.on_recovered = on_recovered
        self.on_ended = on_ended
        self.settle_s = settle_s
        self.clock = clock
        self._outage: Outage | None = None
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self.ended: list[Outage] = []  # every outage recorded so far, oldest first

    @property
    def down(self) -> bool:
        """A failure is the latest news: the service has not answered since."""
        outage = self._outage
        return outage is not None and outage.end is None

    @property
    def current(self) -> Outage | None:
        """A copy of the outage going on or not yet recorded (None: none)."""
        outage = self._outage
        return dataclasses.replace(outage) if outage is not None else None

    def failed(self, text: str = "") -> None:
        """A call failed because the service is unreachable: an outage begins or goes on."""
        with self._lock:
            outage = self._outage
            if outage is None:
                outage = self._outage = Outage(self.service, self.clock())
            outage.end = None
            outage.failures += 1
            outage.text = text
            self._cancel_timer()
            snapshot = dataclasses.replace(outage)
        if self.on_failure is not None:
            self.on_failure(snapshot, text)

    def succeeded(self) -> None:
        """A call succeeded: an outage going on is over (recorded once ``settle_s`` passed quietly)."""
        if not self.down:  # the common case: one attribute read, no lock
            return
        with self._lock:
            outage = self._outage
            if outage is None or outage.end is not None:
                return
            outage.end = self.clock()
            snapshot = dataclasses.replace(outage)
            self._timer = threading.Timer(self.settle_s, self._settle, args=(outage, outage.failures))
            self._timer.daemon = True
            self._timer.start()
        if self.on_recovered is not None:
            self.on_recovered(snapshot)

    def close(self) -> None:
        """Record what is left now: an outage over but not yet settled, or one still going on
        (it ends now, not recovered). Failures reported after this start a new outage."""
        with self._lock:
            outage, self._outage = self._outage, None
            self._cancel_timer()
            if outage is None:
                return
            if outage.end is None:
                outage.end = max(self.clock(), outage.start)
                outage.recovered = False
        self._ended(outage)

    def _settle(self, outage: Outage, failures: int) -> None:
        with self._lock:
            if self._outage is not outage or outage.end is None or outage.failures != failures:
                return  # it went on, or close() recorded it
            self._outage = None
            self._timer = None
        self._ended(outage)

    def _ended(self, outage: Outage) -> None:
        self.ended.append(outage)
        if self.on_ended is not None:
            self.on_ended(dataclasses.replace(outage))

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
