"""The session archive: one MongoDB document per training session, and the tools to compare them.

Small public surface (see ``docs/archive.md``)::

    from hiverl.archive import SessionArchive, start_document

    archive = SessionArchive()                       # MONGODB_URI / MONGODB_URI_FILE, HIVERL_ARCHIVE_*
    archive.start(start_document(config, session_id="s1", tags=["baseline"]))
    archive.heartbeat("s1", {"totals": {...}, "results": {...}, "learning_curve": {...}})
    archive.finish("s1", "finished", {"results": {...}})
    archive.list(SessionQuery(env_id="CartPole-v1", sort="best_return"))

:class:`SessionArchive` implements :class:`hiverl.events.SessionRecorder`; it spools documents
locally while the server is unreachable and delivers them later.
"""

from typing import TYPE_CHECKING, Any

from hiverl.archive.document import (
    MAX_CURVE_POINTS,
    SCHEMA_VERSION,
    ArchiveValidationError,
    SessionDocument,
    validate_document,
)
from hiverl.archive.query import Range, SessionQuery
from hiverl.archive.settings import ArchiveAuthError, ArchiveError, ArchiveSettings, ArchiveUnreachableError

if TYPE_CHECKING:
    from hiverl.archive.facts import start_document
    from hiverl.archive.store import SessionArchive, SyncReport

_LAZY = {
    "SessionArchive": "hiverl.archive.store",
    "SyncReport": "hiverl.archive.store",
    "start_document": "hiverl.archive.facts",
}


def __getattr__(name: str) -> Any:
    """The server-facing names load pymongo only when first used (keeps ``hiverl --help`` fast)."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'hiverl.archive' has no attribute {name!r}")


__all__ = [
    "MAX_CURVE_POINTS",
    "SCHEMA_VERSION",
    "ArchiveAuthError",
    "ArchiveError",
    "ArchiveSettings",
    "ArchiveUnreachableError",
    "ArchiveValidationError",
    "Range",
    "SessionArchive",
    "SessionDocument",
    "SessionQuery",
    "SyncReport",
    "start_document",
    "validate_document",
]
