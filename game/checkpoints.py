"""The model store: the learner's checkpoints of a session, written atomically.

Layout: ``<model_dir>/<session_id>/learner.pt`` (networks, optimizer, counters, RNG states: what
``--resume`` and a restarted learner restore) and ``latest.pt`` (the same content, the name
``hiverl evaluate`` and users look for).

Every file is written to a temporary name in the same folder, fsynced, then renamed over the old
one with :func:`os.replace`, and the folder is fsynced: after a crash (even ``kill -9``) a reader
sees either the old or the new checkpoint, never a torn one.
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_FORMAT = 1


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so readers never see a partial file (temp + fsync + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :class:`ModelStore` (tensors and plain Python values only)."""
    state: dict[str, Any] = torch.load(Path(path), map_location=map_location, weights_only=True)
    if state.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: checkpoint format {state.get('format')!r}, expected {CHECKPOINT_FORMAT}")
    return state


class ModelStore:
    """Checkpoints of one session under ``<root>/<session_id>/``."""

    def __init__(self, root: str | Path, session_id: str) -> None:
        self.folder = Path(root) / session_id

    @property
    def learner_path(self) -> Path:
        return self.folder / "learner.pt"

    @property
    def latest_path(self) -> Path:
        return self.folder / "latest.pt"

    def save(self, state: dict[str, Any]) -> Path:
        """Atomically store the learner's checkpoint and make it the session's latest."""
        buffer = io.BytesIO()
        torch.save({"format": CHECKPOINT_FORMAT, **state}, buffer)
        data = buffer.getvalue()
        atomic_write_bytes(self.learner_path, data)
        atomic_write_bytes(self.latest_path, data)
        return self.learner_path

    def load(self, map_location: str | torch.device = "cpu") -> dict[str, Any] | None:
        """The learner's checkpoint, or None when the session has none yet."""
        path = self.learner_path
        return load_checkpoint(path, map_location) if path.exists() else None
