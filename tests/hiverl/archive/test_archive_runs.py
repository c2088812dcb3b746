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


def write_run(
    folder: Path,
    returns: dict[int, list[float]],
    status: str = "completed",
    evals: list[tuple[float, float, bool]] = (),  # type: ignore[assignment]
    old: bool = False,
) -> None:
    """A run folder as the trainer writes it: actor i plays episodes of length = return.

    ``evals``: the evaluator's rounds as (event time offset from T0, eval_return, solved).
    ``old``: the layout of the earlier worker hives (``workers``, ``workers_status``, each worker
    learning) instead of one learner, its actors and the evaluator.
    """
    from hiverl.config import SessionConfig

    if old:  # SessionConfig no longer knows `workers`: the older run's own resolved config
        config: dict[str, Any] = {
            "env_id": "CartPole-v1",
            "workers": len(returns),
            "session_id": folder.name,
            "agent": {"lr": 5e-4},
            "worker_overrides": {"1": {"agent": {"lr": 1e-3}}},
        }
    else:
        config = SessionConfig.model_validate(
            {
                "actors": len(returns),
                "session_id": folder.name,
                "actor_overrides": {len(returns) - 1: {"exploration": {"end": 0.1}}},
            }
        ).to_json_dict()
    folder.mkdir(parents=True)
    events: list[dict[str, Any]] = []
    steps = dict.fromkeys(returns, 0)
    actor = {} if old else {"role": "actor"}
    # Interleave the actors' episodes in time: actor i's k-th episode at T0 + k + i/10.
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
                    **actor,
                    "episode": k + 1,
                    "episode_return": value,
                    "env_steps": steps[index],
                }
            )
        stats = {"updates": steps[index] // 2} if old else {"episodes": len(worker_returns)}
        events.append(
            {
                "topic": "training_log",
                "event_type": "train_stats",
                "event_time": T0 + len(worker_returns),
                "worker_index": index,
                **actor,
                "env_steps": steps[index],
                **stats,
            }
        )
    if not old:  # the learner's stats (no worker_index) and the evaluator's rounds
        last = max(map(len, returns.values()))
        for t in range(1, last + 1, 10):
            events.append(
                {
                    "topic": "training_log",
                    "event_type": "train_stats",
                    "event_time": T0 + t,
                    "session_id": folder.name,
                    "host": "trainhost",
                    "role": "learner",
                    "updates": t,
                    "loss": 1.0 / t,
                }
            )
        for offset, value, solved in evals:
            events.append(
                {
                    "topic": "training_log",
                    "event_type": "eval",
                    "event_time": T0 + offset,
                    "session_id": folder.name,
                    "host": "trainhost",
                    "role": "evaluator",
                    "eval_return": value,
                    "eval_return_min": value - 1,
                    "eval_return_max": value + 1,
                    "eval_episodes": 10,
                    "weights_version": int(offset),
                    "updates": int(10 * offset),
                    "solved": solved,
                    "solved_return": 475.0,
                }
            )
    lines = [json.dumps(e) for e in sorted(events, key=lambda e: -e["event_time"])]  # any order on disk
    (folder / "events.jsonl").write_text("\n".join([*lines, '{"cut off']) + "\n")
    rows = [
        {
            "role": "actor",
            "index": i,
            "state": "done",
            "restarts": i,
            "env_steps": steps[i],
            "episodes": len(r),
            "updates": 0,
        }
        for i, r in returns.items()
    ]
    session: dict[str, Any] = {
        "session_id": folder.name,
        "status": status,
        "env_id": "CartPole-v1",
        "started_at": "2026-11-24T04:00:00+00:00",
        "updated_at": "2026-11-24T04:10:00+00:00",
        "config": config,
        "git_commit": "c2ebdd86940ca89712d3eb9db31723d1aa2dfea6",
        "versions": {"python": "3.11.7", "torch": "2.15.0", "gymnasium": None},
        "redis_url": "redis://127.0.0.1:16379/0",
        "wall_s": 600.0,
        "env_steps": sum(steps.values()),
    }
    if old:
        for row in rows:
            del row["role"]
            row["updates"] = 7
        session.update(workers=len(returns), workers_status=rows)
    else:
        learner = {"role": "learner", "index": 0, "state": "done", "restarts": 0, "updates": 1234}
        evaluator = {
            "role": "evaluator",
            "index": 0,
            "state": "done",
            "restarts": 0,
            "best_eval_return": max((v for _, v, _ in evals), default=None),
        }
        session.update(
            actors=len(returns),
            seeds={"learner": 0, "actors": [1000 * (i + 1) for i in returns]},
            updates=1234,
            best_eval_return=evaluator["best_eval_return"],
            solved=any(solved for _, _, solved in evals),
            roles_status=[learner, *rows, evaluator],
        )
    (folder / "session.json").write_text(json.dumps(session))


def test_results_curve_and_actors_from_a_run_folder(tmp_path: Path) -> None:
    # Actor 0 improves to CartPole's threshold (475); actor 1 stays poor. No evaluator rounds:
    # the best return and the solve step come from the episodes.
    returns = {0: [10.0] * 20 + [500.0] * 130, 1: [20.0] * 30}
    write_run(tmp_path / "run-1", returns)
    doc = document_from_run(tmp_path / "run-1", tags=["t"])
    assert doc.session_id == "run-1" and doc.status == "finished" and doc.tags == ["t"]
    assert doc.num_workers == 2 and doc.env_id == "CartPole-v1"
    assert doc.worker_overrides == {"1": {"exploration": {"end": 0.1}}}
    assert doc.packages == {"torch": "2.15.0"}
    assert doc.host.hostname == "trainhost"
    assert doc.totals.env_steps == 200 + 65_000 + 600
    assert doc.totals.episodes == 180 and doc.totals.updates == 1234  # the learner's
    r = doc.results
    assert r.best_return == 500.0 and r.solve_threshold == 475.0 and r.solved is None
    assert r.last100_mean_return == pytest.approx(500.0)  # the last 100 hive episodes are all actor 0's
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
    # One result per actor: the learner's and the evaluator's events are no actor 0.
    w0, w1 = doc.worker_results
    assert (w0.worker_index, w0.restarts, w0.totals.episodes, w0.totals.updates) == (0, 0, 150, 0)
    assert (w1.worker_index, w1.restarts, w1.results.best_return) == (1, 1, 20.0)
    assert w1.results.steps_to_threshold is None


def test_eval_events_give_the_best_return_and_solved(tmp_path: Path) -> None:
    """With evaluator rounds, the best return is the best eval_return (not the best episode) and
    the run is solved, at the hive env steps of the first round that confirmed it."""
    returns = {0: [10.0] * 10 + [500.0] * 20, 1: [30.0] * 30}
    evals = [(5.0, 40.0, False), (12.5, 480.0, True), (20.5, 490.0, True), (25.5, 470.0, False)]
    write_run(tmp_path / "run-eval", returns, status="solved", evals=evals)
    doc = document_from_run(tmp_path / "run-eval")
    assert doc.status == "finished" and doc.message == ""
    r = doc.results
    assert r.best_return == 490.0  # the evaluator's best, though an actor's episode returned 500
    assert r.solved is True and r.solve_threshold == 475.0
    # Hive env steps when the first solved round came (T0 + 12.5): actor 0 had played 13
    # episodes (10 of 10 steps, 3 of 500), actor 1 thirteen (at k + 0.1 <= 12.5) of 30 steps.
    assert r.steps_to_threshold == 10 * 10 + 3 * 500 + 13 * 30
    assert r.final_return == 30.0 and doc.totals.updates == 1234 and doc.totals.episodes == 60
    assert [w.worker_index for w in doc.worker_results] == [0, 1]

    write_run(tmp_path / "run-unsolved", returns, evals=[(5.0, 40.0, False), (15.0, 120.0, False)])
    unsolved = document_from_run(tmp_path / "run-unsolved").results
    assert unsolved.best_return == 120.0 and unsolved.solved is False
    assert unsolved.steps_to_threshold is None  # the episodes' window never counts once evaluated


def test_older_worker_runs_are_still_understood(tmp_path: Path) -> None:
    write_run(tmp_path / "run-old", {0: [15.0] * 5, 1: [25.0] * 5}, old=True)
    doc = document_from_run(tmp_path / "run-old")
    assert doc.num_workers == 2 and doc.worker_overrides == {"1": {"agent": {"lr": 1e-3}}}
    assert doc.totals.updates == 14 and doc.totals.episodes == 10  # each worker learned: 7 + 7
    assert doc.results.best_return == 25.0 and doc.results.solved is None
    assert [(w.worker_index, w.restarts) for w in doc.worker_results] == [(0, 0), (1, 1)]


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
    from hiverl.archive.recorder import ArchiveRecorder

    monkeypatch.setattr(facts, "gpu_names", lambda: ["Test GPU"])  # importing torch here is only slow

    folder = tmp_path / "runs" / "tr-1"
    returns = {0: [10.0, 30.0, 50.0], 1: [20.0, 40.0]}
    write_run(folder, returns, status="solved", evals=[(1.0, 15.0, False), (2.5, 480.0, True)])
    session = json.loads((folder / "session.json").read_text())
    trainer_start = {**session, "status": "running", "run_folder": str(folder)}
    for key in ("roles_status", "updates", "best_eval_return", "solved", "env_steps", "wall_s"):
        del trainer_start[key]

    def progress(steps: int, last: float, mean: float, best_eval: float | None) -> dict[str, Any]:
        views: list[dict[str, Any]] = [
            {"role": "learner", "index": 0, "state": "running", "restarts": 0, "updates": steps // 2}
        ]
        views += [
            {
                "role": "actor",
                "index": i,
                "state": "running",
                "restarts": 0,
                "env_steps": steps,
                "updates": 0,
                "episodes": 2,
                "last_return": last + i,
                "mean_return_100": mean + i,
                "epsilon": 0.5,
            }
            for i in (0, 1)
        ]
        views.append({"role": "evaluator", "index": 0, "state": "running", "best_eval_return": best_eval})
        return {
            "env_steps": 2 * steps,
            "updates": steps // 2,
            "best_eval_return": best_eval,
            "solved": False,
            "roles_status": views,
        }

    with SessionArchive(mongo_uri, settings) as archive:
        recorder = ArchiveRecorder(archive, tags=["hive"])
        recorder.start(trainer_start)
        recorder.heartbeat("tr-1", progress(40, 30.0, 20.0, None))
        first = archive.get("tr-1")
        assert first is not None and first.results.best_return is None  # no evaluation yet
        assert first.num_workers == 2 and first.config["actors"] == 2
        recorder.heartbeat("tr-1", progress(80, 25.0, 30.0, 15.0))
        running = archive.get("tr-1")
        assert running is not None and running.status == "running" and running.tags == ["hive"]
        assert running.totals.env_steps == 160 and running.totals.updates == 40  # the learner's
        assert running.results.best_return == 15.0  # the evaluator's, not an actor's last return
        assert running.results.solved is False
        assert running.learning_curve.env_steps == [80, 160]
        assert running.learning_curve.mean_return == [20.5, 30.5]
        assert [w.results.last100_mean_return for w in running.worker_results] == [30.0, 31.0]
        assert [w.worker_index for w in running.worker_results] == [0, 1]

        recorder.finish("tr-1", "solved", progress(90, 50.0, 30.0, 480.0) | {"wall_s": 600.0})
        done = archive.get("tr-1")
    assert done is not None and done.status == "finished"
    # At the end the exact results come from the run folder's events.
    assert done.results.best_return == 480.0 and done.results.solved is True
    assert done.results.final_return == 50.0 and done.totals.updates == 1234
    assert done.totals.episodes == 5 and len(done.learning_curve.env_steps) == 5
    assert done.config["actors"] == 2 and done.host.hostname and done.host.gpus == ["Test GPU"]


def test_progress_of_older_trainers_is_still_understood() -> None:
    from hiverl.archive.recorder import progress_update

    views = [
        {
            "index": i,
            "state": "running",
            "env_steps": 100,
            "updates": 40,
            "episodes": 4,
            "last_return": 9.0 + i,
        }
        for i in (0, 1)
    ]
    update = progress_update({"env_steps": 200, "workers_status": views}, best_so_far=5.0)
    assert update["totals"] == {"env_steps": 200, "episodes": 8, "updates": 80}
    assert update["results"]["best_return"] == 10.0 and "solved" not in update["results"]


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
