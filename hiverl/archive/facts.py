"""The facts of a session known at its start: host, hardware, package versions, git commit, config.

:func:`start_document` assembles them into the mapping :meth:`SessionArchive.start` takes; the
training loop adds nothing else at start. Every probe is best-effort: a missing ``git`` or an
unreadable ``/proc/cpuinfo`` leaves that field empty instead of failing the session.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import socket
import subprocess
from collections.abc import Iterable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from hiverl.archive.document import SCHEMA_VERSION

#: Distributions whose versions are recorded (missing ones are skipped).
RECORDED_PACKAGES = (
    "hiverl",
    "torch",
    "numpy",
    "gymnasium",
    "ale-py",
    "redis",
    "protobuf",
    "kafka-python",
    "pymongo",
    "pydantic",
)
_REPO_ROOT = Path(__file__).resolve().parents[2]


def cpu_model() -> str:
    """CPU model name from ``/proc/cpuinfo`` (Linux), else :func:`platform.processor`."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_names() -> list[str]:
    """CUDA device names via torch (imported here, lazily); empty without torch or a GPU."""
    try:
        import torch
    except ImportError:
        return []
    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def host_info() -> dict[str, Any]:
    """The :class:`~hiverl.archive.document.HostInfo` fields of this machine."""
    try:
        import psutil

        memory_gib: float | None = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        memory_gib = None
    return {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_gib": memory_gib,
        "gpus": gpu_names(),
    }


def package_versions(names: Iterable[str] = RECORDED_PACKAGES) -> dict[str, str]:
    """Installed version of each distribution in ``names`` (absent ones omitted)."""
    versions: dict[str, str] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_commit(repo: Path = _REPO_ROOT) -> str | None:
    """``git rev-parse HEAD`` of ``repo`` with ``-dirty`` if it has uncommitted changes; None outside git."""
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if head.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def hive_size(config: Mapping[str, Any], default: int = 1) -> int:
    """The config's ``actors`` (0: a solo hive), else an older config's ``workers``, else ``default``."""
    for key in ("actors", "workers"):
        value = config.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return default


def overrides_of(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config's per-actor ``actor_overrides`` (an older config's ``worker_overrides``)."""
    return dict(config.get("actor_overrides") or config.get("worker_overrides") or {})


def start_document(
    config: BaseModel | Mapping[str, Any],
    *,
    session_id: str,
    name: str = "",
    tags: Iterable[str] = (),
    started_at: dt.datetime | None = None,
) -> dict[str, Any]:
    """The start document of a session, ready for :meth:`SessionArchive.start`.

    Args:
        config: the resolved session settings (``hiverl.config.SessionConfig`` or its JSON dump);
            ``env_id``, ``actors`` and ``actor_overrides`` (an older config's ``workers`` and
            ``worker_overrides``) are read from it when present; a solo hive (``actors`` 0)
            counts as one worker.
        session_id: unique id (letters, digits, ``_.-``, at most 64 characters).
        name: human-readable name (defaults to the session id).
        tags: free labels for filtering.
        started_at: UTC start time (default: now).
    """
    resolved = config.model_dump(mode="json") if isinstance(config, BaseModel) else dict(config)
    now = started_at or dt.datetime.now(dt.UTC)
    return {
        "schema_version": SCHEMA_VERSION,
        "session_id": session_id,
        "name": name or session_id,
        "tags": list(tags),
        "status": "running",
        "started_at": now,
        "heartbeat_at": now,
        "updated_at": now,
        "env_id": resolved.get("env_id", ""),
        "num_workers": max(hive_size(resolved), 1),
        "host": host_info(),
        "packages": package_versions(),
        "git_commit": git_commit(),
        "config": resolved,
        "worker_overrides": overrides_of(resolved),
    }
