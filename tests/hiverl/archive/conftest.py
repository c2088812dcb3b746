"""Fixtures of the archive tests: an archive on the shared server's per-test database, documents."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hiverl.archive import ArchiveSettings, SessionArchive

_ids = itertools.count()


@pytest.fixture
def settings(mongo_db: str, tmp_path: Path) -> ArchiveSettings:
    """Archive settings on the test's own database, with a private spool and no retry back-off."""
    return ArchiveSettings(
        database=mongo_db,
        spool_dir=tmp_path / "spool",
        retry_after_s=0.0,
        timeout_s=1.0,
        heartbeat_timeout_s=60.0,
    )


@pytest.fixture
def archive(mongo_uri: str, settings: ArchiveSettings) -> Iterator[SessionArchive]:
    with SessionArchive(mongo_uri, settings) as archive:
        yield archive


def make_document(session_id: str | None = None, **fields: Any) -> dict[str, Any]:
    """A valid start document without the slow host probes; ``fields`` override (top level)."""
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    document: dict[str, Any] = {
        "session_id": session_id or f"s{next(_ids)}",
        "name": "test session",
        "tags": ["test"],
        "started_at": now,
        "env_id": "CartPole-v1",
        "num_workers": 2,
        "host": {"hostname": "testhost", "cpu_count": 2},
        "packages": {"hiverl": "0.1.0"},
        "config": {"env_id": "CartPole-v1", "actors": 2, "agent": {"lr": 5e-4, "gamma": 0.99}},
        "worker_overrides": {"1": {"exploration": {"end": 0.1}}},
    }
    document.update(fields)
    return document


@pytest.fixture
def new_document() -> Callable[..., dict[str, Any]]:
    return make_document
