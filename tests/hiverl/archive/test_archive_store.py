"""The archive against the real MongoDB wire-protocol server: lifecycle, crashes, outage, escaping."""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from hiverl.archive import ArchiveSettings, SessionArchive, SessionQuery, validate_document
from hiverl.archive.spool import Spool
from hiverl.services import MongoServer

Doc = Callable[..., dict[str, Any]]


def raw(archive: SessionArchive, session_id: str) -> dict[str, Any] | None:
    """The stored document as the server holds it (encoded), bypassing the archive's decoding."""
    return archive._collection.find_one({"_id": session_id})


def test_lifecycle_start_heartbeats_finish(archive: SessionArchive, new_document: Doc) -> None:
    archive.start(new_document("life-1"))
    stored = raw(archive, "life-1")
    assert stored is not None and stored["status"] == "running" and stored["update_seq"] == 0
    assert stored["session_id"] == "life-1" and stored["ended_at"] is None

    for step in (1, 2, 3):
        archive.heartbeat(
            "life-1",
            {
                "totals": {"env_steps": 1000 * step, "episodes": 10 * step},
                "results": {"best_return": 50.0 * step},
                "learning_curve": {
                    "env_steps": [1000 * i for i in range(1, step + 1)],
                    "mean_return": [20.0 * i for i in range(1, step + 1)],
                },
            },
        )
    running = archive.get("life-1")
    assert running is not None and running.status == "running" and running.update_seq == 3
    assert running.totals.env_steps == 3000 and running.results.best_return == 150.0
    assert running.learning_curve.mean_return == [20.0, 40.0, 60.0]
    assert running.heartbeat_at >= running.started_at

    archive.finish(
        "life-1", "finished", {"results": {"last100_mean_return": 140.0}, "memory_stats": {"size": 3000}}
    )
    done = archive.get("life-1")
    assert done is not None and done.status == "finished" and done.update_seq == 4
    assert done.ended_at is not None and done.ended_at >= done.started_at
    assert (
        done.results.best_return == 150.0 and done.results.last100_mean_return == 140.0
    )  # merged, not replaced
    assert done.results.wall_clock_s is not None and done.results.wall_clock_s >= 0
    assert done.memory_stats == {"size": 3000}
    assert archive._collection.count_documents({}) == 1
    assert len(archive.spool) == 0


def test_bad_updates_are_logged_and_dropped_but_liveness_advances(
    archive: SessionArchive, new_document: Doc, caplog: pytest.LogCaptureFixture
) -> None:
    archive.start(new_document("bad-upd", results={"best_return": 10.0}))
    with caplog.at_level(logging.ERROR, logger="hiverl.archive"):
        archive.heartbeat("bad-upd", {"results": {"best_return": "lots"}})
        archive.heartbeat("bad-upd", {"status": "finished"})
        archive.heartbeat("never-started", {"totals": {"env_steps": 1}})
    assert "field 'results.best_return'" in caplog.text and "'lots'" in caplog.text
    assert "may not set status" in caplog.text
    assert "never-started was never started" in caplog.text
    kept = archive.get("bad-upd")
    assert kept is not None and kept.results.best_return == 10.0 and kept.status == "running"
    assert kept.update_seq == 2
    with pytest.raises(ValueError, match="status='done' is not one of finished, stopped, crashed"):
        archive.finish("bad-upd", "done", {})


def test_start_rejects_invalid_documents_before_writing(archive: SessionArchive, new_document: Doc) -> None:
    from hiverl.archive import ArchiveValidationError

    with pytest.raises(ArchiveValidationError, match=r"field 'num_workers'.*\(got -2\)"):
        archive.start(new_document("invalid-1", num_workers=-2))
    with pytest.raises(ArchiveValidationError, match="a new session must be 'running'"):
        archive.start(new_document("invalid-2", status="finished", ended_at=dt.datetime.now(dt.UTC)))
    assert archive._collection.count_documents({}) == 0


def test_special_keys_and_nonfinite_floats_round_trip_through_the_server(
    archive: SessionArchive, new_document: Doc
) -> None:
    config = {
        "env.kwargs": {"max.steps": 500, "$weird": "yes"},
        "reward_clip": [-math.inf, math.inf],
        "init": math.nan,
        "100%": {"%float": "inf"},
        "": {"nul\x00key": -0.5},
    }
    archive.start(new_document("keys-1", config=config, results={"best_return": math.inf}))
    stored = raw(archive, "keys-1")
    assert stored is not None
    assert stored["config"]["env%2Ekwargs"] == {"max%2Esteps": 500, "%24weird": "yes"}
    back = archive.get("keys-1")
    assert back is not None
    assert back.config["env.kwargs"] == {"max.steps": 500, "$weird": "yes"}
    assert back.config["reward_clip"] == [-math.inf, math.inf]
    assert math.isnan(back.config["init"])
    assert back.config["100%"] == {"%float": "inf"}
    assert back.config[""] == {"nul\x00key": -0.5}
    assert back.results.best_return == math.inf


def test_silent_sessions_are_marked_crashed_by_the_next_reader(
    mongo_uri: str, settings: ArchiveSettings, archive: SessionArchive, new_document: Doc
) -> None:
    long_ago = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=1)
    archive.start(new_document("silent", started_at=long_ago, heartbeat_at=long_ago))
    archive.start(new_document("alive"))
    archive.start(new_document("done-long-ago", started_at=long_ago, heartbeat_at=long_ago))
    archive.finish("done-long-ago", "finished", {})

    with SessionArchive(mongo_uri, settings.model_copy(update={"heartbeat_timeout_s": 600})) as reader:
        statuses = {s.session_id: s for s in reader.list()}
    assert statuses["silent"].status == "crashed"
    assert statuses["silent"].ended_at == long_ago
    assert "no heartbeat for more than 600 s" in statuses["silent"].message
    assert statuses["alive"].status == "running"
    assert statuses["done-long-ago"].status == "finished"

    # A recorder that was only cut off comes back: its newer version overrides the verdict.
    archive.heartbeat("silent", {"totals": {"env_steps": 5}})
    back = archive.get("silent")
    assert back is not None and back.status == "running" and back.ended_at is None


def test_sweep_marks_crashed_and_reports_ids(archive: SessionArchive, new_document: Doc) -> None:
    past = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(seconds=30)
    archive.start(new_document("sweep-a", started_at=past, heartbeat_at=past))
    archive.start(new_document("sweep-b"))
    assert archive.sweep(timeout_s=10) == ["sweep-a"]
    assert archive.sweep(timeout_s=10) == []
    stored = raw(archive, "sweep-a")
    assert stored is not None and stored["status"] == "crashed" and stored["update_seq"] == 0


def test_older_versions_never_overwrite_newer(
    archive: SessionArchive, new_document: Doc, tmp_path: Path
) -> None:
    archive.start(new_document("ver-1"))
    for _ in range(5):
        archive.heartbeat("ver-1", {"totals": {"env_steps": 7}})
    newest = archive.get("ver-1")
    assert newest is not None and newest.update_seq == 5
    older = newest.model_copy(update={"update_seq": 3, "status": "crashed"})
    assert archive.put(older) == "skipped_older"
    assert archive.put(newest) == "unchanged"
    assert archive.put(older, force=True) == "updated"
    forced = archive.get("ver-1", sweep=False)
    assert forced is not None and forced.update_seq == 3
    # An old spooled version delivered after a newer stored one is dropped, not written.
    spool = Spool(tmp_path / "other-spool")
    spool.put(older.model_copy(update={"update_seq": 1}))
    other = SessionArchive(archive._uri, archive.settings.model_copy(update={"spool_dir": spool.directory}))
    report = other.sync()
    assert report.already_newer == ["ver-1"] and report.delivered == [] and report.remaining == 0
    kept = archive.get("ver-1", sweep=False)
    assert kept is not None and kept.update_seq == 3


def test_outage_at_session_end_delivers_once_after_restart(
    private_mongo: MongoServer, tmp_path: Path, new_document: Doc, caplog: pytest.LogCaptureFixture
) -> None:
    settings = ArchiveSettings(
        database="outage", spool_dir=tmp_path / "spool", retry_after_s=0.0, timeout_s=0.5
    )
    recorder = SessionArchive(private_mongo.url, settings)
    recorder.start(new_document("outage-1"))
    recorder.heartbeat("outage-1", {"totals": {"env_steps": 100}})

    private_mongo.stop()
    with caplog.at_level(logging.WARNING, logger="hiverl.archive"):
        recorder.heartbeat("outage-1", {"totals": {"env_steps": 200}})
        recorder.finish("outage-1", "finished", {"results": {"best_return": 321.0}})  # must not raise
    assert "spooling session outage-1 locally" in caplog.text
    spooled = recorder.spool.get("outage-1")
    assert spooled is not None and spooled.status == "finished" and spooled.update_seq == 3
    recorder.close()

    private_mongo.start()
    # The next session's start delivers the spool automatically.
    with SessionArchive(private_mongo.url, settings) as next_session:
        next_session.start(new_document("outage-2"))
        assert len(next_session.spool) == 0
        assert next_session.sync().delivered == []  # nothing left, nothing delivered twice
    client: MongoClient[dict[str, Any]] = MongoClient(private_mongo.url, tz_aware=True)
    try:
        sessions = client["outage"]["sessions"]
        assert sessions.count_documents({"session_id": "outage-1"}) == 1
        stored = sessions.find_one({"_id": "outage-1"})
        assert stored is not None and stored["status"] == "finished" and stored["update_seq"] == 3
        assert stored["results"]["best_return"] == 321.0 and stored["totals"]["env_steps"] == 200
        assert sessions.count_documents({}) == 2
    finally:
        client.close()


def test_spool_keeps_only_the_newest_version_and_is_bounded(tmp_path: Path, new_document: Doc) -> None:
    from hiverl.archive.spool import SpoolFullError

    now = dt.datetime.now(dt.UTC)
    base = new_document("sp-1", heartbeat_at=now, updated_at=now)
    spool = Spool(tmp_path / "spool", max_sessions=2)
    spool.put(validate_document({**base, "update_seq": 2}))
    spool.put(validate_document({**base, "update_seq": 1}))  # older: ignored
    held = spool.get("sp-1")
    assert held is not None and held.update_seq == 2
    spool.put(validate_document({**base, "session_id": "sp-2"}))
    with pytest.raises(SpoolFullError, match="is full \\(2 sessions\\)"):
        spool.put(validate_document({**base, "session_id": "sp-3"}))
    spool.put(validate_document({**base, "update_seq": 9}))  # an already spooled session still updates
    assert sorted(spool.session_ids()) == ["sp-1", "sp-2"]
    held = spool.get("sp-1")
    assert held is not None and held.update_seq == 9
    spool.remove("sp-1", delivered_seq=8)  # a newer version is spooled: kept
    assert len(spool) == 2
    spool.remove("sp-1", delivered_seq=9)
    assert spool.session_ids() == ["sp-2"]


def test_unreachable_archive_reads_fail_with_a_clear_message(tmp_path: Path) -> None:
    from hiverl.archive import ArchiveError
    from hiverl.services import free_ports

    settings = ArchiveSettings(spool_dir=tmp_path, timeout_s=0.3)
    with (
        SessionArchive(f"mongodb://127.0.0.1:{free_ports(1)[0]}/", settings) as archive,
        pytest.raises(ArchiveError, match=r"is unreachable \(list sessions\)"),
    ):
        archive.list(SessionQuery(), sweep=False)


def test_a_resumed_session_continues_its_version_sequence(archive: SessionArchive, new_document: Doc) -> None:
    archive.start(new_document("resume-1"))
    archive.heartbeat("resume-1", {"totals": {"env_steps": 100}})
    archive.finish("resume-1", "stopped", {})
    # The same session id started again (hiverl train --resume): the new start is not "older".
    archive.start(new_document("resume-1", totals={"env_steps": 100}))
    archive.heartbeat("resume-1", {"totals": {"env_steps": 250}})
    resumed = archive.get("resume-1")
    assert resumed is not None and resumed.status == "running" and resumed.ended_at is None
    assert resumed.update_seq == 4 and resumed.totals.env_steps == 250


WRITER = """
import json, os, random, sys
from hiverl.archive import ArchiveSettings, SessionArchive, validate_document
base = json.loads(sys.argv[1])
seqs = list(range(int(sys.argv[2])))
random.Random(int(sys.argv[3])).shuffle(seqs)
settings = ArchiveSettings(database=os.environ["ARCHIVE_DB"], spool_dir=os.environ["SPOOL"], timeout_s=5.0)
outcomes = []
with SessionArchive(os.environ["ARCHIVE_URI"], settings) as archive:
    for seq in seqs:
        doc = validate_document({**base, "update_seq": seq, "totals": {"env_steps": seq}})
        outcomes.append(archive.put(doc))
print(json.dumps(outcomes))
"""


def test_concurrent_writers_keep_one_document_with_the_newest_version(
    mongo_uri: str, settings: ArchiveSettings, archive: SessionArchive, tmp_path: Path, new_document: Doc
) -> None:
    """Three processes deliver versions 0..29 of one session in different orders at once."""
    import json
    import os
    import subprocess
    import sys

    from hiverl.archive.document import to_json_ready

    now = dt.datetime.now(dt.UTC)
    base = json.dumps(
        to_json_ready(validate_document(new_document("race-1", heartbeat_at=now, updated_at=now)))
    )
    versions = 30
    env = {**os.environ, "ARCHIVE_URI": mongo_uri, "ARCHIVE_DB": settings.database, "SPOOL": str(tmp_path)}
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, base, str(versions), str(seed)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        for seed in range(3)
    ]
    outcomes = [json.loads(w.communicate(timeout=120)[0].splitlines()[-1]) for w in writers]
    assert all(w.returncode == 0 for w in writers)
    assert archive._collection.count_documents({"_id": "race-1"}) == 1
    stored = archive.get("race-1", sweep=False)
    assert (
        stored is not None and stored.update_seq == versions - 1 and stored.totals.env_steps == versions - 1
    )
    every = [o for run in outcomes for o in run]
    assert len(every) == 3 * versions
    assert every.count("inserted") == 1  # one upsert created it; every other write was conditional
    assert every.count("updated") >= 1 and every.count("skipped_older") + every.count("unchanged") >= versions
