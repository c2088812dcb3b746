"""The session archive in MongoDB: the recorder the training loop calls, and the queries.

The connection, its indexes and its error messages are :class:`~hiverl.archive.connection.ArchiveConnection`.

:class:`SessionArchive` implements :class:`hiverl.events.SessionRecorder` (``start``,
``heartbeat``, ``finish``) and the read side (``list``, ``get``, ``compare``, ``delete``,
``sweep``, ``sync``, ``put``). Every write is a full-document upsert keyed by session id and
guarded by ``update_seq``: the server keeps a version only if it is newer than the stored one,
so replaying the spool twice, or delivering an old spooled version after a newer one, can never
duplicate or roll back a session.

Outage: the recorder never raises because the archive is unreachable. The document goes to the
local :class:`~hiverl.archive.spool.Spool` instead and is delivered by the next successful write,
by the next session's ``start``, or by ``hiverl sessions sync``. After a failure the recorder
skips the server for ``retry_after_s`` so heartbeats do not stall the training loop.

"""

from __future__ import annotations

import builtins
import datetime as dt
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pymongo import ASCENDING, DESCENDING
from pymongo.errors import DuplicateKeyError

from hiverl.archive.connection import ArchiveConnection
from hiverl.archive.document import (
    ArchiveValidationError,
    SessionDocument,
    deep_merge,
    from_stored,
    to_stored,
    validate_document,
)
from hiverl.archive.encoding import encode
from hiverl.archive.query import SessionQuery
from hiverl.archive.settings import ArchiveAuthError, ArchiveError, ArchiveSettings, ArchiveUnreachableError
from hiverl.archive.spool import Spool, SpoolFullError
from hiverl.status import TERMINAL_STATUSES, SessionStatus

log = logging.getLogger(__name__)

#: Fields only the archive sets; a heartbeat or finish update may not change them.
_BOOKKEEPING = frozenset(
    {
        "schema_version",
        "session_id",
        "started_at",
        "update_seq",
        "updated_at",
        "heartbeat_at",
        "status",
        "ended_at",
    }
)

WriteOutcome = Literal["inserted", "updated", "unchanged", "skipped_older", "spooled"]


def default_spool_dir() -> Path:
    """``$HIVERL_HOME/spool/archive``; ``$HIVERL_HOME`` defaults to ``<repo>/var``."""
    from hiverl.services.catalog import home_dir

    return home_dir() / "spool" / "archive"


@dataclass
class SyncReport:
    """What :meth:`SessionArchive.sync` did with the spool."""

    delivered: list[str] = field(default_factory=list)
    already_newer: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    remaining: int = 0


def _now() -> dt.datetime:
    # MongoDB keeps milliseconds; truncating here keeps the in-memory and stored copies equal.
    now = dt.datetime.now(dt.UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


class SessionArchive(ArchiveConnection):
    """The ``sessions`` collection: recorder for the training loop, queries for CLI and dashboard.

    Args:
        uri: MongoDB URI (default: ``Endpoints().mongodb_uri``, i.e. ``MONGODB_URI`` or its file).
        settings: database, timeouts, spool location (default: from ``HIVERL_ARCHIVE_*``).
    """

    def __init__(self, uri: str | None = None, settings: ArchiveSettings | None = None) -> None:
        super().__init__(uri, settings)
        self.spool = Spool(self.settings.spool_dir or default_spool_dir(), self.settings.spool_max_sessions)
        self._live: dict[str, SessionDocument] = {}
        self._lock = threading.RLock()
        self._offline_until = 0.0

    # -- writing ----------------------------------------------------------------------------------

    def put(self, document: SessionDocument, *, force: bool = False) -> WriteOutcome:
        """Upsert ``document`` unless the stored version is the same or newer (``force`` overrides).

        Returns ``inserted``, ``updated``, ``unchanged`` (same ``update_seq`` stored) or
        ``skipped_older`` (a newer version is stored). Raises :class:`ArchiveError` on outage.
        """
        stored = to_stored(document)

        def write() -> WriteOutcome:
            if force:
                result = self._collection.replace_one({"_id": document.session_id}, stored, upsert=True)
                return "inserted" if result.upserted_id is not None else "updated"
            try:
                result = self._collection.replace_one(
                    {"_id": document.session_id, "update_seq": {"$lt": document.update_seq}},
                    stored,
                    upsert=True,
                )
            except DuplicateKeyError:  # the stored version is not older: the filter missed, upsert collided
                held = self._collection.find_one({"_id": document.session_id}, {"update_seq": 1})
                same = held is not None and held.get("update_seq") == document.update_seq
                return "unchanged" if same else "skipped_older"
            return "inserted" if result.upserted_id is not None else "updated"

        outcome: WriteOutcome = self._server_call(f"write session {document.session_id}", write)
        return outcome

    def _deliver(self, document: SessionDocument, *, always_try: bool = False) -> WriteOutcome:
        """Write to the server, or spool on outage (the recorder's path; never raises on outage)."""
        if always_try or time.monotonic() >= self._offline_until:
            try:
                outcome = self.put(document)
            except ArchiveAuthError:
                raise
            except ArchiveError as exc:
                self._offline_until = time.monotonic() + self.settings.retry_after_s
                log.warning("%s; spooling session %s locally", exc, document.session_id)
            else:
                self._offline_until = 0.0
                self.spool.remove(document.session_id, document.update_seq)
                if len(self.spool):
                    try:
                        self.sync()
                    except ArchiveError as exc:
                        log.warning("spooled sessions stay spooled: %s", exc)
                return outcome
        try:
            self.spool.put(document)
        except SpoolFullError as exc:
            log.error("session %s version %d is lost: %s", document.session_id, document.update_seq, exc)
        return "spooled"

    def start(self, document: Mapping[str, Any]) -> None:
        """Record a session start (status ``running``) and deliver anything spooled earlier.

        A resumed session (its id already archived or spooled) continues its version sequence,
        so the new start replaces the old final state. Raises :class:`ArchiveValidationError` if
        ``document`` is invalid (before training starts) and :class:`ArchiveAuthError` on bad
        credentials; an unreachable archive only spools.
        """
        now = _now()
        raw = {"heartbeat_at": now, "updated_at": now, "status": "running", **dict(document)}
        raw["update_seq"] = 0
        session = validate_document(raw)
        if session.status != SessionStatus.RUNNING:
            raise ArchiveValidationError(
                f"field 'status': a new session must be 'running' (got {session.status.value!r})"
            )
        with self._lock:
            earlier = [self.spool.get(session.session_id)]
            try:
                earlier.append(self.get(session.session_id, sweep=False))
            except ArchiveAuthError:
                raise
            except ArchiveError:
                pass  # unreachable: the spool's version (if any) is what we know
            seqs = [d.update_seq for d in earlier if d is not None]
            if seqs:
                session = session.model_copy(update={"update_seq": max(seqs) + 1})
            self._live[session.session_id] = session
            self._deliver(session, always_try=True)

    def _advance(self, session_id: str, update: Mapping[str, Any], **fields: Any) -> SessionDocument | None:
        current = self._live.get(session_id) or self.spool.get(session_id)
        if current is None:
            try:
                current = self.get(session_id, sweep=False)
            except ArchiveError:
                current = None
        if current is None:
            log.error("session %s was never started in this archive; update dropped", session_id)
            return None
        forbidden = sorted(_BOOKKEEPING & set(update))
        now = _now()
        base = current.model_dump(mode="python")
        bookkeeping = {"heartbeat_at": now, "updated_at": now, "update_seq": current.update_seq + 1, **fields}
        try:
            if forbidden:
                raise ArchiveValidationError(
                    f"update of session {session_id!r} may not set {', '.join(forbidden)} "
                    "(the archive sets them)"
                )
            advanced = validate_document({**deep_merge(base, update), **bookkeeping})
        except ArchiveValidationError as exc:
            # One bad update never stops the hive: keep the last valid state, still prove liveness.
            log.error("%s; keeping the previous results of session %s", exc, session_id)
            advanced = validate_document({**base, **bookkeeping})
        self._live[session_id] = advanced
        return advanced

    def heartbeat(self, session_id: str, update: Mapping[str, Any]) -> None:
        """Merge ``update`` (partial document: totals, results, learning_curve, ...) and write.

        Mappings merge recursively; lists and scalars replace. An invalid update is logged and
        dropped (the heartbeat time still advances). Never raises on outage.
        """
        with self._lock:
            advanced = self._advance(session_id, update)
            if advanced is not None:
                self._deliver(advanced)

    def finish(self, session_id: str, status: str, update: Mapping[str, Any]) -> None:
        """Final update: ``status`` is ``finished``, ``stopped`` or ``crashed``; sets ``ended_at``.

        ``results.wall_clock_s`` defaults to the time since start. Never raises on outage (the
        final version is spooled); raises ValueError for an unknown status.
        """
        final = SessionStatus.parse(status) if status in SessionStatus.words() else None
        if final is None or not final.terminal:
            raise ValueError(f"status={status!r} is not one of {', '.join(TERMINAL_STATUSES)}")
        with self._lock:
            now = _now()
            advanced = self._advance(session_id, update, status=final, ended_at=now)
            if advanced is None:
                return
            if advanced.results.wall_clock_s is None:
                results = advanced.results.model_copy(
                    update={"wall_clock_s": (now - advanced.started_at).total_seconds()}
                )
                advanced = advanced.model_copy(update={"results": results})
                self._live[session_id] = advanced
            self._deliver(advanced, always_try=True)
            self._live.pop(session_id, None)

    def sync(self) -> SyncReport:
        """Deliver every spooled document (oldest first). Raises :class:`ArchiveError` on outage."""
        report = SyncReport()
        for session_id in self.spool.session_ids():
            try:
                document = self.spool.get(session_id)
            except (ValueError, OSError) as exc:
                report.failed[session_id] = str(exc)
                continue
            if document is None:
                continue
            outcome = self.put(document)
            (report.already_newer if outcome in ("skipped_older", "unchanged") else report.delivered).append(
                session_id
            )
            self.spool.remove(session_id, document.update_seq)
        report.remaining = len(self.spool)
        return report

    # -- reading ----------------------------------------------------------------------------------

    def sweep(self, timeout_s: float | None = None) -> list[str]:
        """Mark ``running`` sessions silent for longer than ``timeout_s`` as ``crashed``; their ids.

        ``ended_at`` becomes the last heartbeat. ``update_seq`` is kept, so a recorder that was
        only cut off (and later delivers a newer version) overrides the verdict.
        """
        timeout = self.settings.heartbeat_timeout_s if timeout_s is None else timeout_s
        cutoff = _now() - dt.timedelta(seconds=timeout)

        def mark() -> list[str]:
            crashed = []
            stale = self._collection.find(
                {"status": "running", "heartbeat_at": {"$lt": cutoff}}, {"_id": 1, "heartbeat_at": 1}
            )
            for stored in list(stale):
                last = stored["heartbeat_at"]
                result = self._collection.update_one(
                    {"_id": stored["_id"], "status": "running", "heartbeat_at": last},
                    {
                        "$set": {
                            "status": "crashed",
                            "ended_at": last,
                            "message": f"no heartbeat for more than {timeout:g} s after {last.isoformat()}; "
                            "marked crashed by a reader",
                        }
                    },
                )
                if result.modified_count:
                    crashed.append(str(stored["_id"]))
            return crashed

        crashed: list[str] = self._server_call("mark silent sessions crashed", mark)
        if crashed:
            log.info("marked crashed (no heartbeat for %g s): %s", timeout, ", ".join(crashed))
        return crashed

    def _sweep_quietly(self) -> None:
        try:
            self.sweep()
        except ArchiveAuthError:
            raise
        except ArchiveUnreachableError:
            return  # the read that follows fails with its own message
        except ArchiveError as exc:  # a read-only user may not update; reading still works
            log.warning("could not mark silent sessions crashed: %s", exc)

    def get(self, session_id: str, *, sweep: bool = True) -> SessionDocument | None:
        """One session (validated), or None. ``sweep`` first marks silent sessions crashed."""
        if sweep:
            self._sweep_quietly()
        stored = self._server_call("read a session", lambda: self._collection.find_one({"_id": session_id}))
        return None if stored is None else from_stored(stored)

    def list(self, query: SessionQuery | None = None, *, sweep: bool = True) -> list[SessionDocument]:
        """Sessions matching ``query`` (default: the 100 most recently started)."""
        query = query or SessionQuery()
        if sweep:
            self._sweep_quietly()
        direction = DESCENDING if query.descending else ASCENDING

        def find() -> builtins.list[dict[str, Any]]:
            cursor = self._collection.find(encode_filter(query.filter())).sort(
                [(query.sort_path(), direction), ("_id", ASCENDING)]
            )
            return list(cursor.limit(query.limit) if query.limit else cursor)

        documents: builtins.list[SessionDocument] = []
        for stored in self._server_call("list sessions", find):
            try:
                documents.append(from_stored(stored))
            except ArchiveValidationError as exc:
                log.warning("skipping an unreadable stored session: %s", exc)
        return documents

    def iter_all(self, query: SessionQuery | None = None) -> Iterator[SessionDocument]:
        """Every session matching ``query`` regardless of its limit (export)."""
        base = query or SessionQuery()
        unlimited = SessionQuery(**{**base.__dict__, "limit": 0})
        yield from self.list(unlimited)

    def compare(self, session_ids: Sequence[str]) -> builtins.list[SessionDocument]:
        """The sessions ``session_ids`` in that order; KeyError naming those not archived."""
        if len(session_ids) < 1:
            raise ValueError("compare needs at least one session id")
        self._sweep_quietly()
        ids = list(dict.fromkeys(session_ids))
        stored = self._server_call(
            "read sessions", lambda: list(self._collection.find({"_id": {"$in": ids}}))
        )
        found = {d.session_id: d for d in (from_stored(raw) for raw in stored)}
        missing = [s for s in session_ids if s not in found]
        if missing:
            raise KeyError(f"not in the archive: {', '.join(missing)}")
        return [found[s] for s in session_ids]

    def delete(self, session_ids: Iterable[str]) -> int:
        """Remove sessions (and their spooled versions); returns how many were stored."""
        ids = list(session_ids)
        result = self._server_call(
            "delete sessions", lambda: self._collection.delete_many({"_id": {"$in": ids}})
        )
        for session_id in ids:
            self.spool.remove(session_id, delivered_seq=2**62)
        return int(result.deleted_count)


def encode_filter(query: Mapping[str, Any]) -> dict[str, Any]:
    """A query filter with non-finite float bounds encoded like stored values."""
    return {
        k: (encode(v) if not isinstance(v, dict) else {op: encode(x) for op, x in v.items()})
        for k, v in query.items()
    }
