"""Which sessions to list: filters on env, status, tags, start time, config and result ranges.

Pure data (no server): :class:`SessionQuery` builds the MongoDB filter and sort path that
:meth:`hiverl.archive.store.SessionArchive.list` runs.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from hiverl.archive.document import SessionDocument
from hiverl.archive.encoding import escape_key
from hiverl.status import SessionStatus


@dataclass(frozen=True)
class Range:
    """Closed numeric interval on one field; either bound may be open (None).

    ``Range.parse("agent.lr:1e-4:1e-3")``; ``"best_return:150:"`` has no upper bound.
    """

    name: str
    low: float | None = None
    high: float | None = None

    @classmethod
    def parse(cls, text: str, option: str = "--param") -> Range:
        """``"name:min:max"`` (either bound may be empty) -> Range; ValueError naming the option."""
        parts = text.rsplit(":", 2)
        if len(parts) != 3 or not parts[0]:
            raise ValueError(f"{option} {text!r} is not 'name:min:max' (min or max may be empty)")
        try:
            low = float(parts[1]) if parts[1] else None
            high = float(parts[2]) if parts[2] else None
        except ValueError:
            raise ValueError(f"{option} {text!r}: min and max must be numbers") from None
        if low is None and high is None:
            raise ValueError(f"{option} {text!r}: give at least one of min and max")
        if low is not None and high is not None and low > high:
            raise ValueError(f"{option} {text!r}: min {low} is above max {high}")
        return cls(parts[0], low, high)

    def condition(self) -> dict[str, float]:
        cond: dict[str, float] = {}
        if self.low is not None:
            cond["$gte"] = self.low
        if self.high is not None:
            cond["$lte"] = self.high
        return cond


@dataclass(frozen=True)
class SessionQuery:
    """Which sessions :meth:`SessionArchive.list` returns, and in what order.

    ``params`` ranges apply to config keys (``agent.lr``), ``results`` ranges to result fields
    (``best_return``). ``sort`` is a result field (``best_return``), a top-level field
    (``started_at``) or a dotted path (``config.agent.lr``).
    """

    env_id: str | None = None
    status: str | None = None
    tags: tuple[str, ...] = ()
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    params: tuple[Range, ...] = ()
    results: tuple[Range, ...] = ()
    sort: str = "started_at"
    descending: bool = True
    limit: int = 100

    def __post_init__(self) -> None:
        if self.status is not None:
            object.__setattr__(self, "status", SessionStatus.parse(self.status).value)
        if self.limit < 0:
            raise ValueError(f"limit={self.limit} must be >= 0 (0 = no limit)")

    def filter(self) -> dict[str, Any]:
        """The MongoDB filter document."""
        query: dict[str, Any] = {}
        if self.env_id:
            query["env_id"] = self.env_id
        if self.status:
            query["status"] = self.status
        if self.tags:
            query["tags"] = {"$all": list(self.tags)}
        started: dict[str, dt.datetime] = {}
        if self.since:
            started["$gte"] = self.since
        if self.until:
            started["$lte"] = self.until
        if started:
            query["started_at"] = started
        for rng in self.params:
            query[_path("config", rng.name)] = rng.condition()
        for rng in self.results:
            query[_path("results", rng.name)] = rng.condition()
        return query

    def sort_path(self) -> str:
        top = set(SessionDocument.model_fields)
        if "." in self.sort or self.sort in top:
            return ".".join(escape_key(part) for part in self.sort.split("."))
        return _path("results", self.sort)


def _path(section: str, dotted: str) -> str:
    return ".".join([section, *(escape_key(part) for part in dotted.split("."))])
