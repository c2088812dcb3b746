"""Rebuilding archive documents from ``hiverl train`` run folders (session.json + events.jsonl)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hiverl.archive import ArchiveSettings, SessionArchive
from hiverl.archive.runs import document_from_run
from hiverl.cli import app

T0 = 1_795_000_000.0  # epoch seconds


def write_run(folder: Path, returns: dict[int, list[float]], status: str = "completed") -> None:
    """A run folder as the trainer writes it: worker i plays episodes of length = return."""
    from hiverl.config import SessionConfig

    config = SessionConfig.model_validate({"workers": len(returns), "session_id": folder.name}).to_json_dict()
    folder.mkdir(parents=True)
    events: list[dict[str, Any]] = []
    steps = dict.fromkeys(returns, 0)
    # Interleave the workers' episodes in time: worker i's k-th episode at T0 + k + i/10.
    for index, worker_returns in returns.items():
        for k, value in enumerate(worker_returns):
            steps[index] += int(value)
            events.append(
                {
                    "topic": "training_log",
                    "event_type": "episode",
                    "event_time": T0 + k + index / 10,
                    "session_id": folder.name,
                    "host": "trainhost",
                    "worker_index": index,
                    "episode": k + 1,
                    "episode_return": value,
                    "env_steps": steps[index],
                }
            )
        events.append(
            {
                "topic": "training_log",
                "event_type": "train_stats",
                "event_time": T0 + len(worker_returns),
                "worker_index": index,
                "env_steps": steps[index],
                "updates": steps[index] // 2,
            }
        )
    lines = [json.dumps(e) for e in sorted(events, key=lambda e: -e["event_time"])]  # any order on disk
    (folder / "events.jsonl").write_text("\n".join([*lines, '{"cut off']) + "\n")
    session = {
        "session_id": folder.name,
        "status": status,
        "env_id": "CartPole-v1",
        "workers": len(returns),
        "started_at": "2026-11-24T04:00:00+00:00",
        "updated_at": "2026-11-24T04:10:00+00:00",
        "config": config,
        "git_commit": "c2ebdd86940ca89712d3eb9db31723d1aa2dfea6",
        "versions": {"python": "3.11.7", "torch": "2.15.0", "gymnasium": None},
        "redis_url": "redis://127.0.0.1:16379/0",
        "wall_s": 600.0,
        "env_steps": sum(steps.values()),
        "workers_status": [
            {
                "index": i,
                "state": "done",
                "restarts": i,
                "env_steps": steps[i],
                "episodes": len(r),
                "updates": 7,
            }
            for i, r in returns.items()
        ],
    }
    (folder / "session.json").write_text(json.dumps(session))


def test_results_curve_and_workers_from_a_run_folder(tmp_path: Path) -> None:
    # Worker 0 improves to CartPole's threshold (475); worker 1 stays poor.
    returns = {0: [10.0] * 20 + [500.0] * 130, 1: [20.0] * 30}
    write_run(tmp_path / "run-1", returns)
    doc = document_from_run(tmp_path / "run-1", tags=["t"])
    assert doc.session_id == "run-1" and doc.status == "finished" and doc.tags == ["t"]
    assert doc.num_workers == 2 and doc.env_id == "CartPole-v1"
    assert doc.packages == {"torch": "2.15.0"}
    assert doc.host.hostname == "trainhost"
    assert doc.totals.env_steps == 200 + 65_000 + 600
    assert doc.totals.episodes == 180 and doc.totals.updates == 14
    r = doc.results
    assert r.best_return == 500.0 and r.solve_threshold == 475.0
    assert r.last100_mean_return == pytest.approx(500.0)  # the last 100 hive episodes are all worker 0's
    assert r.wall_clock_s == 600.0 and r.env_steps_per_s == pytest.approx(65_800 / 600)
    # Threshold: the first time the last 100 hive episodes average >= 475.
    chronological = sorted(
        [(k + i / 10, v) for i, rs in returns.items() for k, v in enumerate(rs)], key=lambda p: p[0]
    )
    values = [v for _, v in chronological]
    first = next(n for n in range(100, len(values) + 1) if sum(values[n - 100 : n]) / 100 >= 475)
    assert r.steps_to_threshold is not None
    curve = doc.learning_curve
    assert curve.env_steps.index(r.steps_to_threshold) == first - 1
    assert len(curve.env_steps) == 180 and curve.env_steps == sorted(curve.env_steps)
    assert curve.mean_return[0] == 10.0 and curve.mean_return[-1] == pytest.approx(500.0)
    assert curve.window_episodes == 20  # each point: mean of the hive's last 20 episodes
    assert curve.mean_return[59] == pytest.approx(sum(values[40:60]) / 20)
    w0, w1 = doc.worker_results
    assert (w0.worker_index, w0.restarts, w0.totals.episodes) == (0, 0, 150)
    assert (w1.worker_index, w1.restarts, w1.results.best_return) == (1, 1, 20.0)
    assert w1.results.steps_to_threshold is None


def test_failed_run_is_archived_as_crashed(tmp_path: Path) -> None:
    write_run(tmp_path / "run-2", {0: [9.0, 11.0]}, status="failed")
    doc = document_from_run(tmp_path / "run-2")
    assert doc.status == "crashed" and "failed" in doc.message
    assert doc.results.final_return == 11.0 and doc.results.steps_to_threshold is None


def test_from_run_command_imports_or_writes_json_lines(
    tmp_path: Path, mongo_uri: str, settings: ArchiveSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_run(tmp_path / "run-3", {0: [15.0] * 5, 1: [25.0] * 5})
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("HIVERL_ARCHIVE_DATABASE", settings.database)
    monkeypatch.setenv("HIVERL_ARCHIVE_SPOOL_DIR", str(settings.spool_dir))
    invoke: Callable[..., Any] = CliRunner().invoke
    out = tmp_path / "runs.jsonl"
    written = invoke(app, ["sessions", "from-run", str(tmp_path / "run-3"), "--tag", "x", "--out", str(out)])
    assert written.exit_code == 0, written.output
    assert json.loads(out.read_text())["session_id"] == "run-3"
    imported = invoke(app, ["sessions", "from-run", str(tmp_path / "run-3")])
    assert imported.exit_code == 0 and "1 inserted" in imported.output
    again = invoke(app, ["sessions", "import", str(out)])
    assert "1 unchanged" in again.output
    with SessionArchive(mongo_uri, settings) as archive:
        stored = archive.get("run-3")
    assert stored is not None and stored.results.best_return == 25.0 and stored.totals.episodes == 10
    missing = invoke(app, ["sessions", "from-run", str(tmp_path / "nope")])
    assert missing.exit_code == 1 and "session.json" in missing.output


def test_trainer_recorder_translates_the_trainers_calls(
    tmp_path: Path, mongo_uri: str, settings: ArchiveSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The calls ``game.trainer.Trainer`` makes, in its vocabulary, end as a valid archive document."""
    from hiverl.archive import facts
    from hiverl.archive.trainer import TrainerRecorder

    monkeypatch.setattr(facts, "gpu_names", lambda: ["Test GPU"])  # importing torch here is only slow

    folder = tmp_path / "runs" / "tr-1"
    returns = {0: [10.0, 30.0, 50.0], 1: [20.0, 40.0]}
    write_run(folder, returns)
    session = json.loads((folder / "session.json").read_text())
    trainer_start = {**session, "status": "running", "run_folder": str(folder), "seeds": [0, 1000]}

    def progress(steps: int, last: float, mean: float) -> dict[str, Any]:
        views = [
            {
                "index": i,
                "state": "running",
                "restarts": 0,
                "env_steps": steps,
                "updates": steps // 2,
                "episodes": 2,
                "last_return": last + i,
                "mean_return_100": mean + i,
                "epsilon": 0.5,
            }
            for i in (0, 1)
        ]
        return {"env_steps": 2 * steps, "workers_status": views}

    with SessionArchive(mongo_uri, settings) as archive:
        recorder = TrainerRecorder(archive, tags=["hive"])
        recorder.start(trainer_start)
        recorder.heartbeat("tr-1", progress(40, 30.0, 20.0))
        recorder.heartbeat("tr-1", progress(80, 25.0, 30.0))
        running = archive.get("tr-1")
        assert running is not None and running.status == "running" and running.tags == ["hive"]
        assert running.totals.env_steps == 160 and running.totals.updates == 80
        assert running.results.best_return == 31.0  # best seen by any heartbeat
        assert running.learning_curve.env_steps == [80, 160]
        assert running.learning_curve.mean_return == [20.5, 30.5]
        assert [w.results.last100_mean_return for w in running.worker_results] == [30.0, 31.0]

        recorder.finish("tr-1", "completed", progress(90, 50.0, 30.0) | {"wall_s": 600.0})
        done = archive.get("tr-1")
    assert done is not None and done.status == "finished"
    # At the end the exact results come from the run folder's events.
    assert done.results.best_return == 50.0 and done.results.final_return == 50.0
    assert done.totals.episodes == 5 and len(done.learning_curve.env_steps) == 5
    assert done.config["workers"] == 2 and done.host.hostname and done.host.gpus == ["Test GPU"]


def test_the_shipped_sample_archive_is_valid_and_comparable() -> None:
    from hiverl.archive.document import from_stored

    sample = Path(__file__).resolve().parents[3] / "hiverl" / "archive" / "samples" / "cartpole.jsonl"
    sessions = [from_stored(json.loads(line)) for line in sample.read_text().splitlines()]
    assert len(sessions) >= 3
    assert all(s.env_id == "CartPole-v1" and s.status == "finished" and "sample" in s.tags for s in sessions)
    assert len({(s.config["agent"]["lr"], s.config["memory"]["alpha"]) for s in sessions}) == len(sessions)
    for s in sessions:  # real runs: episodes, returns and a curve to plot
        assert s.totals.episodes > 0 and s.results.best_return is not None
        assert len(s.learning_curve.env_steps) > 10
