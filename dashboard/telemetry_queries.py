"""Every Elasticsearch query of the dashboard: live series, learning curves, recent sessions.

The only module that knows index and field names of the telemetry (``hiverl.telemetry`` indexes
the Kafka topics into one alias per topic). Series are downsampled in Elasticsearch: a
``date_histogram`` whose interval gives about ``points`` buckets over the requested range, with
``avg`` per bucket, so a chart costs the same for a minute or a week of events.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

from dashboard.outage import OutageGuard, QueryRefused, ServiceDown
from hiverl.events import MEMORY_MONITORING_TOPIC, TRAINING_LOG_TOPIC
from hiverl.telemetry.indexer_outages import INDEXER_ROLE
from hiverl.telemetry.schema import TIMESTAMP_FIELD, alias_name

#: Time field of every indexed event (epoch seconds ``event_time`` becomes this date).
TIME_FIELD = TIMESTAMP_FIELD
#: Fields charted per actor from ``train_stats`` events (the learner's too: loss, updates/s).
TRAIN_FIELDS = ("loss", "epsilon", "env_steps_per_s", "updates_per_s")
#: Series label of the learner's ``train_stats`` (which have no ``worker_index``).
LEARNER = "learner"
_NO_INDEX = -1
#: Field of the evaluator's ``eval`` events charted against time.
EVAL_FIELD = "eval_return"
#: Fields charted from ``memory_stats`` events: the whole memory's (``shard == -1``) totals.
MEMORY_FIELDS = ("size", "bytes_used", "insert_rate", "sample_rate")
WHOLE_MEMORY_SHARD = -1
#: Field of ``episode`` events charted per actor, with a moving average.
RETURN_FIELD = "episode_return"
MAX_POINTS = 2000
MAX_WORKERS = 256
#: Latest time a query may name: the end of year 9999 (epoch milliseconds), as dates allow.
MAX_EPOCH_MS = 253_402_300_799_999.0
#: Default span of a live view of a session without events: the last 15 minutes.
DEFAULT_SPAN_MS = 15 * 60_000
#: The most outages a live view lists (the latest ones).
MAX_OUTAGES = 500

Series = list[list[float]]  # [[epoch_ms, value], ...], time ascending


def interval_ms(start_ms: float, end_ms: float, points: int) -> int:
    """Bucket width (ms, >= 1 s) giving at most about ``points`` buckets over [start, end]."""
    return max(1000, math.ceil(max(end_ms - start_ms, 1.0) / max(points, 1)))


def moving_average(buckets: Sequence[tuple[float, float, int]], window: int) -> Series:
    """Trailing average over ``window`` buckets of (time_ms, mean, count), weighted by count."""
    out: Series = []
    for i, (t, _, _) in enumerate(buckets):
        recent = buckets[max(0, i - window + 1) : i + 1]
        weight = sum(count for _, _, count in recent)
        if weight:
            out.append([t, sum(mean * count for _, mean, count in recent) / weight])
    return out


class RangeError(ValueError):
    """A time range Elasticsearch cannot bucket (start not before end, outside 0 .. year 9999):
    the caller's error, refused before any query; ``field`` names the bad bound."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def check_range(start_ms: float, end_ms: float, defaulted: str = "") -> None:
    """:class:`RangeError` unless 0 <= start_ms < end_ms <= :data:`MAX_EPOCH_MS` (both finite).
    ``defaulted`` names a bound that was not given (the other one is then the bad one)."""
    for field, value in (("start_ms", start_ms), ("end_ms", end_ms)):
        if not (math.isfinite(value) and 0 <= value <= MAX_EPOCH_MS):
            raise RangeError(field, f"{field}={value} is not epoch milliseconds between 0 and the year 9999")
    if start_ms >= end_ms:
        field = "end_ms" if defaulted == "start_ms" else "start_ms"
        start_note = " (the session's first event)" if defaulted == "start_ms" else ""
        end_note = " (the session's last event, or now)" if defaulted == "end_ms" else ""
        raise RangeError(
            field, f"start_ms={start_ms:.0f}{start_note} must be before end_ms={end_ms:.0f}{end_note}"
        )


def _histogram(field_names: Sequence[str], interval: int, start_ms: float, end_ms: float) -> dict[str, Any]:
    return {
        "date_histogram": {
            "field": TIME_FIELD,
            "fixed_interval": f"{interval}ms",
            "offset": f"+{int(start_ms) % interval}ms",  # buckets start at start_ms, not before it
            "min_doc_count": 1,
            "hard_bounds": {"min": int(start_ms), "max": int(end_ms)},
        },
        "aggs": {name: {"avg": {"field": name}} for name in field_names},
    }


def _time_range(start_ms: float, end_ms: float) -> dict[str, Any]:
    return {"range": {TIME_FIELD: {"gte": int(start_ms), "lte": int(end_ms), "format": "epoch_millis"}}}


def _buckets(agg: dict[str, Any], name: str) -> list[tuple[float, float, int]]:
    return [
        (float(b["key"]), float(b[name]["value"]), int(b["doc_count"]))
        for b in agg["buckets"]
        if b.get(name, {}).get("value") is not None
    ]


def _series(agg: dict[str, Any], name: str) -> Series:
    """The ``t`` histogram of a filter aggregation as a series (empty without one)."""
    return [[t, v] for t, v, _ in _buckets(agg["t"], name)] if "t" in agg else []


class TelemetryQueries:
    """Read-only queries on the telemetry aliases; every call raises :class:`ServiceDown` on outage."""

    def __init__(self, es_url: str, index_prefix: str, timeout_s: float = 2.0, backoff_s: float = 5.0):
        from elasticsearch import Elasticsearch

        self.es = Elasticsearch(es_url, request_timeout=timeout_s, max_retries=0, retry_on_timeout=False)
        self.training_index = alias_name(index_prefix, TRAINING_LOG_TOPIC)
        self.memory_index = alias_name(index_prefix, MEMORY_MONITORING_TOPIC)
        self.guard = OutageGuard("elasticsearch", backoff_s)

    def _search(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        from elasticsearch import ApiError, NotFoundError

        def run() -> dict[str, Any]:
            try:
                return dict(self.es.search(index=index, body=body, ignore_unavailable=True))
            except NotFoundError:  # no telemetry indexed yet: nothing to show, not an outage
                return {"hits": {"hits": [], "total": {"value": 0}}, "aggregations": {}}
            except ApiError as error:  # a 4xx refuses this query only: Elasticsearch is up
                if 400 <= error.status_code < 500 and error.status_code not in (408, 429):
                    raise QueryRefused("elasticsearch", f"{error.status_code} {str(error)[:200]}") from error
                raise

        return self.guard.call(run)

    # -- sessions seen in telemetry ------------------------------------------------------------
    def recent_sessions(self, within_s: float = 120.0, now_s: float | None = None) -> list[dict[str, Any]]:
        """Sessions with events in the last ``within_s`` seconds: id, env, actors, last event."""
        end_ms = (now_s or time.time()) * 1000
        body = {
            "size": 0,
            "query": {
                "bool": {
                    "filter": [_time_range(end_ms - within_s * 1000, end_ms)],
                    "must_not": [{"term": {"role": INDEXER_ROLE}}],  # the indexer's outages: no session
                }
            },
            "aggs": {
                "sessions": {
                    "terms": {"field": "session_id", "size": 100},
                    "aggs": {
                        "last": {"max": {"field": TIME_FIELD}},
                        "first": {"min": {"field": TIME_FIELD}},
                        "env": {"terms": {"field": "env_id", "size": 1}},
                        "actors": {"cardinality": {"field": "worker_index"}},
                    },
                }
            },
        }
        aggs = self._search(self.training_index, body).get("aggregations", {})
        sessions = []
        for bucket in aggs.get("sessions", {}).get("buckets", []):
            env_buckets = bucket["env"]["buckets"]
            sessions.append(
                {
                    "session_id": bucket["key"],
                    "env_id": env_buckets[0]["key"] if env_buckets else None,
                    "actors": bucket["actors"]["value"],
                    "first_event_ms": bucket["first"]["value"],
                    "last_event_ms": bucket["last"]["value"],
                }
            )
        return sorted(sessions, key=lambda s: -(s["last_event_ms"] or 0))

    def time_bounds(self, session_ids: Sequence[str]) -> dict[str, tuple[float, float]]:
        """First and last event time (epoch ms) of each session that has events."""
        body = {
            "size": 0,
            "query": {"terms": {"session_id": list(session_ids)}},
            "aggs": {
                "sessions": {
                    "terms": {"field": "session_id", "size": max(1, len(session_ids))},
                    "aggs": {"first": {"min": {"field": TIME_FIELD}}, "last": {"max": {"field": TIME_FIELD}}},
                }
            },
        }
        aggs = self._search(self.training_index, body).get("aggregations", {})
        return {
            b["key"]: (b["first"]["value"], b["last"]["value"])
            for b in aggs.get("sessions", {}).get("buckets", [])
            if b["first"]["value"] is not None
        }

    # -- the live view -------------------------------------------------------------------------
    def live_series(
        self,
        session_id: str,
        start_ms: float | None = None,
        end_ms: float | None = None,
        points: int = 300,
        ma_window: int = 10,
    ) -> dict[str, Any]:
        """Downsampled series of one session between ``start_ms`` and ``end_ms`` (epoch ms);
        :class:`RangeError` when the range (defaults resolved) is empty or out of bounds.

        Returns ``{"start_ms", "end_ms", "interval_ms", "workers": {field: {label: Series}},
        "eval": {"eval_return": Series}, "memory": {field: Series}, "outages": [...], "event_count"}``
        where the ``workers`` fields are ``episode_return``, ``episode_return_ma`` and
        :data:`TRAIN_FIELDS`, labelled by actor index (``"0"``, ``"1"``, ...) or :data:`LEARNER` for
        the learner's ``train_stats``; ``eval`` holds the evaluator's mean greedy return per time
        bucket; ``outages`` are those that overlap the range (:meth:`outages`).
        """
        points = max(10, min(points, MAX_POINTS))
        defaulted = "start_ms" if start_ms is None else "end_ms" if end_ms is None else ""
        if start_ms is not None and end_ms is not None:
            check_range(start_ms, end_ms)
        else:
            bounds = self.time_bounds([session_id]).get(session_id)
            now_ms = time.time() * 1000
            end_ms = end_ms if end_ms is not None else max(now_ms, bounds[1] if bounds else now_ms)
            start_ms = (
                start_ms
                if start_ms is not None
                else (bounds[0] if bounds else max(0.0, end_ms - DEFAULT_SPAN_MS))
            )
            check_range(start_ms, end_ms, defaulted)
        interval = interval_ms(start_ms, end_ms, points)
        session_filter = {"term": {"session_id": session_id}}
        per_worker = {
            "terms": {"field": "worker_index", "size": MAX_WORKERS},
        }
        body = {
            "size": 0,
            "track_total_hits": True,
            "query": {"bool": {"filter": [session_filter, _time_range(start_ms, end_ms)]}},
            "aggs": {
                "episodes": {
                    "filter": {"term": {"event_type": "episode"}},
                    "aggs": {
                        "by_worker": {
                            **per_worker,
                            "aggs": {"t": _histogram([RETURN_FIELD], interval, start_ms, end_ms)},
                        }
                    },
                },
                "train": {
                    "filter": {"term": {"event_type": "train_stats"}},
                    "aggs": {
                        "by_worker": {
                            # the learner's stats have no worker_index: bucketed as -1
                            "terms": {**per_worker["terms"], "missing": _NO_INDEX},
                            "aggs": {"t": _histogram(TRAIN_FIELDS, interval, start_ms, end_ms)},
                        }
                    },
                },
                "evals": {
                    "filter": {"term": {"event_type": "eval"}},
                    "aggs": {"t": _histogram([EVAL_FIELD], interval, start_ms, end_ms)},
                },
            },
        }
        result = self._search(self.training_index, body)
        aggs = result.get("aggregations", {})
        workers: dict[str, dict[str, Series]] = {
            name: {} for name in (RETURN_FIELD, f"{RETURN_FIELD}_ma", *TRAIN_FIELDS)
        }
        for bucket in aggs.get("episodes", {}).get("by_worker", {}).get("buckets", []):
            label = str(bucket["key"])
            means = _buckets(bucket["t"], RETURN_FIELD)
            workers[RETURN_FIELD][label] = [[t, v] for t, v, _ in means]
            workers[f"{RETURN_FIELD}_ma"][label] = moving_average(means, ma_window)
        for bucket in aggs.get("train", {}).get("by_worker", {}).get("buckets", []):
            label = LEARNER if int(bucket["key"]) == _NO_INDEX else str(bucket["key"])
            for name in TRAIN_FIELDS:
                series = [[t, v] for t, v, _ in _buckets(bucket["t"], name)]
                if series:  # e.g. no epsilon from the learner, no loss from an actor
                    workers[name][label] = series
        memory_body = {
            "size": 0,
            "query": {
                "bool": {
                    "filter": [
                        session_filter,
                        {"term": {"shard": WHOLE_MEMORY_SHARD}},
                        _time_range(start_ms, end_ms),
                    ]
                }
            },
            "aggs": {"t": _histogram(MEMORY_FIELDS, interval, start_ms, end_ms)},
        }
        memory_aggs = self._search(self.memory_index, memory_body).get("aggregations", {})
        memory = {
            name: [[t, v] for t, v, _ in _buckets(memory_aggs["t"], name)] if "t" in memory_aggs else []
            for name in MEMORY_FIELDS
        }
        total = result.get("hits", {}).get("total", {})
        return {
            "session_id": session_id,
            "start_ms": start_ms,
            "end_ms": end_ms,
            "interval_ms": interval,
            "workers": workers,
            "eval": {EVAL_FIELD: _series(aggs.get("evals", {}), EVAL_FIELD)},
            "memory": memory,
            "outages": self.outages(session_id, start_ms, end_ms),
            "event_count": total.get("value", 0) if isinstance(total, dict) else int(total or 0),
        }

    def outages(self, session_id: str, start_ms: float, end_ms: float) -> list[dict[str, Any]]:
        """The ``outage`` events of the session's roles (and the indexer's own) whose span overlaps
        [start_ms, end_ms], oldest first: ``{"service", "role", "worker_index", "start_ms",
        "end_ms", "duration_s", "recovered"}``, one per role and outage."""
        body = {
            "size": MAX_OUTAGES,
            "sort": [{"outage_start": "desc"}],
            "_source": ["service", "role", "worker_index", "outage_start", "outage_end", "outage_recovered"],
            "query": {
                "bool": {
                    "filter": [
                        {"term": {"event_type": "outage"}},
                        {"range": {"outage_end": {"gte": start_ms / 1000}}},
                        {"range": {"outage_start": {"lte": end_ms / 1000}}},
                    ],
                    "should": [{"term": {"session_id": session_id}}, {"term": {"role": INDEXER_ROLE}}],
                    "minimum_should_match": 1,
                }
            },
        }
        hits = self._search(self.training_index, body).get("hits", {}).get("hits", [])
        outages = []
        for hit in reversed(hits):
            source = hit.get("_source", {})
            start, end = source.get("outage_start"), source.get("outage_end")
            if not isinstance(start, int | float) or not isinstance(end, int | float):
                continue
            outages.append(
                {
                    "service": source.get("service"),
                    "role": source.get("role"),
                    "worker_index": source.get("worker_index"),
                    "start_ms": start * 1000,
                    "end_ms": end * 1000,
                    "duration_s": max(0.0, end - start),
                    "recovered": source.get("outage_recovered", True),
                }
            )
        return outages

    # -- comparing sessions ----------------------------------------------------------------
    def learning_curves(self, session_ids: Sequence[str], points: int = 200) -> dict[str, Series]:
        """Mean episode return (all actors) against seconds since each session's first event."""
        points = max(10, min(points, MAX_POINTS))
        bounds = self.time_bounds(session_ids)
        curves: dict[str, Series] = {}
        for session_id in session_ids:
            if session_id not in bounds:
                curves[session_id] = []
                continue
            first, last = bounds[session_id]
            interval = interval_ms(first, last, points)
            body = {
                "size": 0,
                "query": {
                    "bool": {
                        "filter": [{"term": {"session_id": session_id}}, {"term": {"event_type": "episode"}}]
                    }
                },
                "aggs": {"t": _histogram([RETURN_FIELD], interval, first, last)},
            }
            aggs = self._search(self.training_index, body).get("aggregations", {})
            means = _buckets(aggs["t"], RETURN_FIELD) if "t" in aggs else []
            curves[session_id] = [[(t - first) / 1000.0, v] for t, v, _ in means]
        return curves

    def close(self) -> None:
        self.es.close()


__all__ = ["QueryRefused", "RangeError", "ServiceDown", "TelemetryQueries"]
