"""Every session-archive query of the dashboard: the filtered table, one session, the latest.

A thin layer over :class:`hiverl.archive.SessionArchive`; the table's filters that the archive
cannot express (any hyperparameter or result range) are applied here on flattened documents,
so a new hyperparameter becomes filterable without any change to this module.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dashboard.outage import OutageGuard
from hiverl.archive.facts import hive_size
from hiverl.config import quoted

MAX_SESSIONS = 5000


def flatten(document: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists and scalars kept as values)."""
    flat: dict[str, Any] = {}
    for key, value in document.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def to_epoch_s(value: Any) -> float | None:
    """Datetime, ISO string or number (s) -> epoch seconds; None if absent or unreadable."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).timestamp()
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return to_epoch_s(parsed)
    return None


def _json_safe(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return to_epoch_s(value)
    if isinstance(value, Mapping):
        return {str(k): _json_safe(v) for k, v in value.items() if k != "_id"}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


@dataclass(frozen=True)
class Range:
    """Closed numeric interval on one flattened field; either bound may be open (None)."""

    name: str
    low: float | None = None
    high: float | None = None

    @classmethod
    def parse(cls, text: str, what: str) -> Range:
        """``"name:low:high"`` (bounds may be empty) -> Range; ValueError naming ``what``."""
        parts = text.split(":")
        if len(parts) != 3 or not parts[0]:
            raise ValueError(f"{what}={quoted(text)} is not 'name:min:max' (min or max may be empty)")
        try:
            low = float(parts[1]) if parts[1] else None
            high = float(parts[2]) if parts[2] else None
        except ValueError:
            raise ValueError(f"{what}={quoted(text)}: min and max must be numbers") from None
        if any(bound is not None and math.isnan(bound) for bound in (low, high)):
            raise ValueError(f"{what}={quoted(text)}: min and max must be numbers, not nan")
        if low is not None and high is not None and low > high:
            raise ValueError(f"{what}={quoted(text)}: min {low} is above max {high}")
        return cls(parts[0], low, high)

    def contains(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        return (self.low is None or value >= self.low) and (self.high is None or value <= self.high)


@dataclass(frozen=True)
class SessionFilter:
    """What the sessions table shows. Hyperparameter names are flattened config keys."""

    env_id: str | None = None
    status: str | None = None
    tags: tuple[str, ...] = ()
    started_after_s: float | None = None
    started_before_s: float | None = None
    hyperparameters: tuple[Range, ...] = ()
    results: tuple[Range, ...] = ()
    text: str | None = None
    sort: str = "started_at"
    descending: bool = True
    limit: int = 500
    extra: dict[str, Any] = field(default_factory=dict)


def row(document: Mapping[str, Any]) -> dict[str, Any]:
    """One decoded archive document as a table row: top-level facts, flattened config and results."""
    doc = _json_safe(document)
    host = doc.get("host")
    return {
        "session_id": doc.get("session_id"),
        "name": doc.get("name") or "",
        "env_id": doc.get("env_id") or flatten(doc.get("config") or {}).get("env_id"),
        "status": doc.get("status"),
        "tags": doc.get("tags") or [],
        "started_at": to_epoch_s(document.get("started_at")),
        "ended_at": to_epoch_s(document.get("ended_at")),
        "actors": hive_size(doc.get("config") or {}, doc.get("num_workers") or 1),
        "host": host.get("hostname") if isinstance(host, Mapping) else host,
        "config": flatten(doc.get("config") or {}),
        "results": flatten({**(doc.get("results") or {}), **_totals(doc)}),
    }


def _totals(doc: Mapping[str, Any]) -> dict[str, Any]:
    totals = doc.get("totals")
    return {f"total_{k}": v for k, v in totals.items()} if isinstance(totals, Mapping) else {}


def learning_curve(document: Mapping[str, Any]) -> list[list[float]]:
    """The archived curve as ``[[hive env steps, mean return], ...]``."""
    curve = document.get("learning_curve") or {}
    steps, returns = curve.get("env_steps") or [], curve.get("mean_return") or []
    return [[float(x), float(y)] for x, y in zip(steps, returns, strict=False) if y is not None]


def matches(r: Mapping[str, Any], f: SessionFilter) -> bool:
    """Whether table row ``r`` passes filter ``f``."""
    if f.env_id and r["env_id"] != f.env_id:
        return False
    if f.status and r["status"] != f.status:
        return False
    if f.tags and not set(f.tags) <= set(r["tags"]):
        return False
    started = r["started_at"]
    if f.started_after_s is not None and (started is None or started < f.started_after_s):
        return False
    if f.started_before_s is not None and (started is None or started > f.started_before_s):
        return False
    if any(not rng.contains(r["config"].get(rng.name)) for rng in f.hyperparameters):
        return False
    if any(not rng.contains(r["results"].get(rng.name)) for rng in f.results):
        return False
    return not (f.text and f.text.lower() not in str(r["session_id"]).lower())


def _sort_key(sort: str) -> Any:
    def key(r: Mapping[str, Any]) -> tuple[int, Any]:
        if sort.startswith("config."):
            value = r["config"].get(sort[7:])
        elif sort.startswith("results."):
            value = r["results"].get(sort[8:])
        else:
            value = r.get(sort)
        if value is None:
            return (1, 0)  # missing values last in either order (see the reversal below)
        return (0, value if isinstance(value, int | float) else str(value))

    return key


def select(rows: Iterable[Mapping[str, Any]], f: SessionFilter) -> list[dict[str, Any]]:
    """Filter, sort and cut ``rows``; missing sort values go last."""
    kept = [dict(r) for r in rows if matches(r, f)]
    present = [r for r in kept if _sort_key(f.sort)(r)[0] == 0]
    missing = [r for r in kept if _sort_key(f.sort)(r)[0] == 1]
    try:
        present.sort(key=_sort_key(f.sort), reverse=f.descending)
    except TypeError:  # mixed numbers and strings in one column: compare as text
        present.sort(key=lambda r: str(_sort_key(f.sort)(r)[1]), reverse=f.descending)
    return (present + missing)[: f.limit]


def facets(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Values offered by the filter form: envs, statuses, tags, numeric config and result names."""
    envs: set[str] = set()
    statuses: set[str] = set()
    tags: set[str] = set()
    params: set[str] = set()
    results: set[str] = set()
    for r in rows:
        if r["env_id"]:
            envs.add(str(r["env_id"]))
        if r["status"]:
            statuses.add(str(r["status"]))
        tags.update(str(t) for t in r["tags"])
        params.update(
            k for k, v in r["config"].items() if isinstance(v, int | float) and not isinstance(v, bool)
        )
        results.update(
            k for k, v in r["results"].items() if isinstance(v, int | float) and not isinstance(v, bool)
        )
    return {
        "env_ids": sorted(envs),
        "statuses": sorted(statuses),
        "tags": sorted(tags),
        "hyperparameters": sorted(params),
        "results": sorted(results),
    }


def config_diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Side-by-side flattened configs: every key of either, with both values and ``differs``."""
    flat_a, flat_b = flatten(a), flatten(b)
    return [
        {
            "key": key,
            "a": flat_a.get(key),
            "b": flat_b.get(key),
            "differs": flat_a.get(key) != flat_b.get(key),
        }
        for key in sorted(set(flat_a) | set(flat_b))
    ]


class ArchiveQueries:
    """Read access through :class:`hiverl.archive.SessionArchive`; every call raises
    :class:`~dashboard.outage.ServiceDown` when the archive is unreachable."""

    def __init__(
        self, mongo_uri: str, database: str | None = None, timeout_s: float = 1.0, backoff_s: float = 5.0
    ) -> None:
        from hiverl.archive import ArchiveSettings, SessionArchive

        settings = ArchiveSettings(**{})
        update: dict[str, Any] = {"timeout_s": timeout_s}
        if database:
            update["database"] = database
        self.archive = SessionArchive(mongo_uri, settings.model_copy(update=update))
        self.guard = OutageGuard("mongodb", backoff_s)

    def _list(self, sweep: bool = False, **query: Any) -> list[dict[str, Any]]:
        from hiverl.archive import SessionQuery

        documents = self.guard.call(lambda: self.archive.list(SessionQuery(**query), sweep=sweep))
        return [document.model_dump(mode="python") for document in documents]

    def rows(self, limit: int = MAX_SESSIONS) -> list[dict[str, Any]]:
        """Table rows of the most recently started ``limit`` sessions (silent ones marked crashed)."""
        return [row(doc) for doc in self._list(sweep=True, limit=limit)]

    def get(self, session_id: str) -> dict[str, Any] | None:
        """The full document of one session (JSON-safe), or None."""
        document = self.guard.call(lambda: self.archive.get(session_id, sweep=False))
        return _json_safe(document.model_dump(mode="python")) if document else None

    def curves(self, session_ids: Iterable[str]) -> dict[str, list[list[float]]]:
        """Archived learning curves (hive env steps, mean return); empty for unknown sessions."""
        curves = {}
        for session_id in session_ids:
            document = self.guard.call(functools.partial(self.archive.get, session_id, sweep=False))
            curves[session_id] = learning_curve(document.model_dump(mode="python")) if document else []
        return curves

    def running(self) -> list[dict[str, Any]]:
        return [row(doc) for doc in self._list(sweep=True, status="running", limit=100)]

    def latest(self) -> dict[str, Any] | None:
        found = self._list(limit=1)
        return row(found[0]) if found else None

    def close(self) -> None:
        self.archive.close()
