"""The archive of a hive that runs one role per process (``hiverl learner``, compose's ``learner``).

``hiverl train`` archives through its trainer. When each role runs alone (compose, one container
per role), the learner is the session's owner: at start it writes the run folder's
``session.json`` (as the trainer does) and records the start in the archive; when it ends it
records the end, rebuilt from every role's ``events-<role>.jsonl`` in the shared run folder. A
resumed learner (a restart, ``docker compose down`` then ``up``) keeps the first start time and
continues the archived session, which is written again at its next end.
"""

from __future__ import annotations

import json
import logging
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from game.checkpoints import atomic_write_bytes
from hiverl.archive.facts import git_commit, package_versions
from hiverl.config import SessionConfig
from hiverl.status import SessionStatus

log = logging.getLogger(__name__)


def session_document(
    config: SessionConfig,
    status: SessionStatus,
    *,
    started_at: str,
    run_folder: Path,
    actors: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The run folder's ``session.json``: id, status, seeds, resolved config, git commit, versions.

    ``actors``: the hive's actors when the settings do not know them (a compose hive's replicas)."""
    hive = config.actors if actors is None else actors
    return {
        "session_id": config.session_id,
        "status": status,
        "env_id": config.env_id,
        "actors": hive,
        "started_at": started_at,
        "updated_at": datetime.now(UTC).isoformat(),
        "seeds": config.role_seeds(),
        "config": {**config.to_json_dict(), "actors": hive},
        "git_commit": git_commit(),
        "versions": {"python": platform.python_version(), **package_versions()},
        "run_folder": str(run_folder),
        **extra,
    }


def write_session_file(run_folder: Path, document: dict[str, Any]) -> None:
    """``<run_folder>/session.json``, replaced atomically (a reader never sees half of it)."""
    run_folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(run_folder / "session.json", json.dumps(document, indent=2, default=str).encode())


class RunArchive:
    """``session.json`` and the archive record of a hive whose learner runs in this process.

    Args:
        config: the resolved session settings (``session_id`` set).
        archive: record in the MongoDB archive too (spooled while it is unreachable); without it
            only ``session.json`` is written.
    """

    def __init__(self, config: SessionConfig, *, archive: bool = True) -> None:
        assert config.session_id is not None
        self.config = config
        self.session_id = config.session_id
        self.folder = Path(config.run_dir) / config.session_id
        self.path = self.folder / "session.json"
        self.recorder: Any = None
        if archive:
            from hiverl.archive.recorder import ArchiveRecorder
            from hiverl.archive.store import SessionArchive

            self.recorder = ArchiveRecorder(SessionArchive())
        previous = self._read()
        self.started_at = str(previous.get("started_at") or datetime.now(UTC).isoformat())

    def _read(self) -> dict[str, Any]:
        try:
            loaded = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return loaded if isinstance(loaded, dict) else {}

    def _write(self, status: SessionStatus) -> dict[str, Any]:
        # The hive's actors: one events file each in the shared run folder (their number is the
        # compose replicas', which this process's settings do not know).
        actors = max(self.config.actors, len(list(self.folder.glob("events-actor-*.jsonl"))))
        document = session_document(
            self.config, status, started_at=self.started_at, run_folder=self.folder, actors=actors
        )
        write_session_file(self.folder, document)
        return document

    def start(self) -> None:
        """``session.json`` says running; the archive records the (re)start."""
        document = self._write(SessionStatus.RUNNING)
        if self.recorder is not None:
            self.recorder.start(document)

    def finish(self, status: SessionStatus) -> None:
        """``session.json`` says ``status``; the archive records the end, rebuilt from the events."""
        self._write(status)
        if self.recorder is not None:
            self.recorder.finish(self.session_id, status, {})
