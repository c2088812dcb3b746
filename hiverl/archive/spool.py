"""The local spool: session documents that could not reach the archive, waiting on disk.

One file per session, ``<spool dir>/<session_id>.json``, holding the newest version the recorder
produced (the JSON form of :func:`~hiverl.archive.document.to_json_ready`). A newer version
replaces the file atomically (write to a temporary file, then rename), so the spool never holds
two versions of a session and a crash mid-write leaves the previous version intact. The spool is
bounded by the number of sessions it holds (``max_sessions``); beyond it, new sessions are refused
with :class:`SpoolFullError` (sessions already spooled are still updated) so that nothing already
spooled is ever dropped.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from hiverl.archive.document import SessionDocument, from_stored, to_json_ready


class SpoolFullError(RuntimeError):
    """The spool already holds ``max_sessions`` other sessions."""


class Spool:
    """Newest undelivered version of each session, one JSON file per session under ``directory``."""

    def __init__(self, directory: str | Path, max_sessions: int = 1000) -> None:
        if max_sessions < 1:
            raise ValueError(f"max_sessions={max_sessions} must be at least 1")
        self.directory = Path(directory)
        self.max_sessions = max_sessions

    def _path(self, session_id: str) -> Path:
        return self.directory / f"{session_id}.json"

    def put(self, document: SessionDocument) -> None:
        """Keep ``document`` unless the spool already holds the same or a newer version of it."""
        path = self._path(document.session_id)
        held = self.get(document.session_id)
        if held is not None and held.update_seq >= document.update_seq:
            return
        if held is None and len(self.session_ids()) >= self.max_sessions:
            raise SpoolFullError(
                f"spool {self.directory} is full ({self.max_sessions} sessions); "
                f"run `hiverl sessions sync` once the archive is reachable"
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(
            "w", encoding="utf-8", dir=self.directory, prefix=".tmp-", suffix=".json", delete=False
        ) as handle:
            json.dump(to_json_ready(document), handle, separators=(",", ":"))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(handle.name, path)

    def get(self, session_id: str) -> SessionDocument | None:
        """The spooled version of ``session_id``, or None."""
        path = self._path(session_id)
        if not path.exists():
            return None
        return from_stored(json.loads(path.read_text(encoding="utf-8")))

    def session_ids(self) -> list[str]:
        """Ids of the spooled sessions, oldest file first."""
        if not self.directory.exists():
            return []
        files = sorted(self.directory.glob("*.json"), key=lambda p: p.stat().st_mtime)
        return [p.stem for p in files if not p.name.startswith(".tmp-")]

    def __iter__(self) -> Iterator[SessionDocument]:
        for session_id in self.session_ids():
            document = self.get(session_id)
            if document is not None:
                yield document

    def __len__(self) -> int:
        return len(self.session_ids())

    def remove(self, session_id: str, delivered_seq: int) -> None:
        """Forget ``session_id`` if the spooled version is not newer than ``delivered_seq``."""
        held = self.get(session_id)
        if held is not None and held.update_seq <= delivered_seq:
            self._path(session_id).unlink(missing_ok=True)
