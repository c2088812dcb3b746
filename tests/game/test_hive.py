"""The hive end to end: worker processes on the real ReplayMemory on the real Redis.

Sizes are kept small (2 workers, a few thousand CartPole steps) so the suite stays fast on 2 cores.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from game.checkpoints import ModelStore
from game.trainer import Trainer
from hiverl.config import SessionConfig, deep_update, load_config
from hiverl.events import JsonlSink

REPO = Path(__file__).resolve().parents[2]

# Settings that learn CartPole quickly (small network, early learning, short ε decay).
STEPS = 5000

FAST_AGENT = {
    "hidden_sizes": [64, 64],
    "lr": 0.002,
    "batch_size": 64,
    "train_interval": 2,
    "updates_per_train": 1,
    "target_update_interval": 100,
    "learning_starts": 300,
    "sample_chunk": 4,  # learning waits for batch_size * sample_chunk transitions: start early
}


def hive_config(tmp_path: Path, redis_prefix: str, **overrides: Any) -> SessionConfig:
    settings: dict[str, Any] = {
        "workers": 2,
        "seed": 1,
        "run_dir": str(tmp_path / "runs"),
        "model_dir": str(tmp_path / "models"),
        "memory": {"key_prefix": redis_prefix, "capacity": 50_000},
        "agent": dict(FAST_AGENT),
        "exploration": {"decay_steps": 2000, "end": 0.02},
        "stats_interval_s": 0.5,
    }
    deep_update(settings, overrides)
    return load_config(overrides=settings)


def read_events(run_folder: Path) -> list[dict[str, Any]]:
    lines = [
        line for path in sorted(run_folder.glob("events*.jsonl")) for line in path.read_text().splitlines()
    ]
    return [json.loads(line) for line in lines]


def episode_returns(events: list[dict[str, Any]], worker: int) -> list[float]:
    return [
        e["episode_return"] for e in events if e["event_type"] == "episode" and e["worker_index"] == worker
    ]


class RecordingRecorder:
    """A SessionRecorder (hiverl.events) that keeps the calls it gets, to check the trainer's seam."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def start(self, document: Mapping[str, Any]) -> None:
        self.calls.append(("start", dict(document)))

    def heartbeat(self, session_id: str, update: Mapping[str, Any]) -> None:
        self.calls.append(("heartbeat", {"session_id": session_id, **update}))

    def finish(self, session_id: str, status: str, update: Mapping[str, Any]) -> None:
        self.calls.append(("finish", {"session_id": session_id, "status": status, **update}))


def test_short_hive_run_improves_clearly(tmp_path: Path, redis_url: str, redis_prefix: str) -> None:
    config = hive_config(tmp_path, redis_prefix, total_steps=STEPS)
    recorder = RecordingRecorder()
    extra_sink = tmp_path / "extra.jsonl"
    result = Trainer(
        config,
        redis_url=redis_url,
        live=False,
        recorder=recorder,
        sink_factory=lambda cfg, session: JsonlSink(extra_sink),
    ).run()
    assert result.status == "completed"
    events = read_events(result.run_folder)
    # The archive seam saw the session start and finish; the extra sink got every event.
    assert recorder.calls[0][0] == "start" and recorder.calls[0][1]["session_id"] == result.session_id
    assert recorder.calls[-1][0] == "finish" and recorder.calls[-1][1]["status"] == "completed"
    assert len(extra_sink.read_text().splitlines()) == len(events)
    firsts, lasts = [], []
    for worker in range(2):
        returns = episode_returns(events, worker)
        assert len(returns) >= 20
        firsts.append(np.mean(returns[:10]))
        lasts.append(np.mean(returns[-10:]))
    assert max(firsts) < 50  # random play at the start (CartPole: ~20)
    assert np.mean(lasts) >= 150, f"first {firsts}, last {lasts}"
    # Telemetry and the session record are there.
    stats = [e for e in events if e["event_type"] == "train_stats"]
    assert stats and all(e["session_id"] == result.session_id for e in events)
    assert max(e["updates"] for e in stats) > 1000  # every 2nd step after the first 300
    session = json.loads((result.run_folder / "session.json").read_text())
    assert session["status"] == "completed" and session["config"]["workers"] == 2
    assert session["seeds"] == [1, 1001] and "torch" in session["versions"]


def test_memory_pace_learns_and_anneals_with_the_hives_steps(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    """pace=memory: a worker learns a phase per train_interval transitions the whole hive writes and
    its ε decays with them; pace=worker counts the worker's own env steps only."""
    steps, decay = 2000, 4000  # ε decays over what the two workers write together
    for pace in ("worker", "memory"):
        config = hive_config(
            tmp_path / pace,
            f"{redis_prefix}{pace}:",
            total_steps=steps,
            pace=pace,
            checkpoint_interval=10_000,
            exploration={"decay_steps": decay},
        )
        result = Trainer(config, redis_url=redis_url, live=False).run()
        assert result.status == "completed"
        events = read_events(result.run_folder)
        clock = "env_steps" if pace == "worker" else "memory_writes"
        finals = []
        for worker in range(2):
            stats = [e for e in events if e["event_type"] == "train_stats" and e["worker_index"] == worker]
            learning = [e for e in stats if e["updates"] > 0]
            assert len(learning) >= 3, stats
            first, last = learning[0], learning[-1]
            # One update (updates_per_train) per train_interval = 2 steps of the pace clock.
            expected = (last[clock] - first[clock]) / 2
            assert last["updates"] - first["updates"] == pytest.approx(expected, rel=0.1, abs=40)

            # ε = 1 - 0.98 * min(1, clock / decay_steps) on that clock. An event reports the ε of the last
            # action, taken after the previous event and before this one's clock reading.
            def schedule(value: float) -> float:
                return 1 - 0.98 * min(1.0, value / decay)

            for before, e in zip([{clock: 0}, *stats], stats, strict=False):
                assert schedule(e[clock]) - 1e-6 <= e["epsilon"] <= schedule(before[clock]) + 1e-6, (
                    before,
                    e,
                )
            finals.append(last)
        # The worker that finished last saw every transition of the hive: about twice its own steps.
        # Its ε tells the clocks apart whatever the order the two workers ran in.
        final = max(finals, key=lambda e: e["memory_writes"])
        assert final["env_steps"] == steps and final["memory_writes"] >= 1.9 * steps, finals
        assert final["epsilon"] == pytest.approx(0.51 if pace == "worker" else 0.02, abs=0.05), finals


def test_killed_worker_restarts_from_its_checkpoint(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    config = hive_config(
        tmp_path,
        redis_prefix,
        total_steps=4000,
        checkpoint_interval=500,
        agent={"learning_starts": 1_000_000},  # acting and inserting only: this test is about processes
        # The survivor runs longer, so it is still mid-run when worker 1 is killed however the two
        # processes happen to be scheduled on a loaded machine.
        worker_overrides={0: {"total_steps": 10_000}},
    )
    killed: dict[str, Any] = {}
    trainer: Trainer

    def on_message(kind: str, index: int, payload: dict[str, Any]) -> None:
        if kind == "checkpoint" and index == 1 and payload["env_steps"] >= 1000 and not killed:
            pid = trainer.worker_pid(1)
            assert pid is not None
            killed.update(pid=pid, at_steps=payload["env_steps"], other_steps=trainer.views[0].env_steps)
            os.kill(pid, signal.SIGKILL)

    trainer = Trainer(config, redis_url=redis_url, live=False, on_message=on_message)
    result = trainer.run()
    assert killed, "worker 1 was never killed"
    assert result.status == "completed"
    survivor, restarted = result.workers
    assert survivor.restarts == 0 and survivor.state == "done" and survivor.env_steps == 10_000
    assert killed["other_steps"] < 10_000  # the survivor was mid-run and went on to the end
    assert restarted.restarts == 1 and restarted.state == "done" and restarted.env_steps == 4000
    starts = [h for h in restarted.history if h["kind"] == "started"]
    assert len(starts) == 2 and starts[0]["resumed_from"] is None
    assert starts[1]["pid"] != killed["pid"]
    # It resumed from its last checkpoint (written at or after the one that triggered the kill).
    assert starts[1]["resumed_from"] >= killed["at_steps"]
    state = ModelStore(config.model_dir, result.session_id).load_worker(1)
    assert state is not None and state["counters"]["env_steps"] == 4000


def _train_cli(tmp_path: Path, redis_url: str, redis_prefix: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "REDIS_URL": redis_url, "PYTHONPATH": str(REPO)}
    command = [
        sys.executable, "-m", "hiverl.cli", "train", "--no-live",
        "--set", f"memory.key_prefix={redis_prefix}",
        "--set", f"run_dir={tmp_path / 'runs'}",
        "--set", f"model_dir={tmp_path / 'models'}",
        "--set", "stats_interval_s=0.5",
        "--set", "checkpoint_interval=100000",
        *args,
    ]  # fmt: skip
    return subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def test_ctrl_c_checkpoints_and_resume_continues_counters(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    session = "resume-test"
    first = _train_cli(
        tmp_path, redis_url, redis_prefix,
        "--env", "CartPole-v1", "--workers", "2", "--steps", "1000000", "--session", session,
        "--set", "agent.learning_starts=300", "--set", "agent.hidden_sizes=[32]",
    )  # fmt: skip
    events = tmp_path / "runs" / session / "events.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # wait until both workers are learning
        lines = events.read_text().splitlines() if events.exists() else []
        stats = [json.loads(line) for line in lines if '"train_stats"' in line]
        if {e["worker_index"] for e in stats if e["updates"] > 0} == {0, 1}:
            break
        time.sleep(0.5)
    first.send_signal(signal.SIGINT)  # what Ctrl-C does
    output, _ = first.communicate(timeout=300)
    assert first.returncode == 0, output
    assert "stopping" in output and "summary" in output
    document = json.loads((tmp_path / "runs" / session / "session.json").read_text())
    assert document["status"] == "stopped"
    store = ModelStore(tmp_path / "models", session)
    stopped_at = []
    for worker in range(2):
        state = store.load_worker(worker)
        assert state is not None and state["counters"]["updates"] > 0
        stopped_at.append(state["counters"]["env_steps"])
    assert min(stopped_at) > 0

    target = max(stopped_at) + 300
    second = _train_cli(tmp_path, redis_url, redis_prefix, "--resume", session, "--steps", str(target))
    output, _ = second.communicate(timeout=300)
    assert second.returncode == 0, output
    document = json.loads((tmp_path / "runs" / session / "session.json").read_text())
    assert document["status"] == "completed" and document["resumed"] is True
    assert document["config"]["total_steps"] == target
    assert document["config"]["agent"]["hidden_sizes"] == [32]  # the stored settings were kept
    for worker in range(2):
        state = store.load_worker(worker)
        assert state is not None and state["counters"]["env_steps"] == target
    # Counters continued: the resumed run's first statistics start where the first run stopped.
    all_events = read_events(tmp_path / "runs" / session)
    for worker in range(2):
        steps = [
            e["env_steps"]
            for e in all_events
            if e["event_type"] == "train_stats" and e["worker_index"] == worker
        ]
        resumed = [s for s in steps if s > stopped_at[worker]]
        assert resumed and min(resumed) <= target and steps == sorted(steps)

    # Greedy evaluation of the resumed checkpoint, with a video.
    video = tmp_path / "episode.mp4"
    evaluation = subprocess.run(
        [sys.executable, "-m", "hiverl.cli", "evaluate", "--checkpoint", str(store.worker_path(0)),
         "--episodes", "2", "--video", str(video), "--device", "cpu"],
        env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert evaluation.returncode == 0, evaluation.stdout + evaluation.stderr
    assert "mean return" in evaluation.stdout
    assert video.stat().st_size > 1000


def test_new_session_id_refuses_to_overwrite_and_resume_needs_a_session(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    from hiverl.config import ConfigError

    config = hive_config(tmp_path, redis_prefix, session_id="taken")
    (tmp_path / "runs" / "taken").mkdir(parents=True)
    (tmp_path / "runs" / "taken" / "session.json").write_text("{}")
    with pytest.raises(ConfigError, match="already exists"):
        Trainer(config, redis_url=redis_url, live=False)
    with pytest.raises(ConfigError, match=r"no session\.json"):
        Trainer(
            config.model_copy(update={"session_id": "missing"}), redis_url=redis_url, live=False, resume=True
        )


def test_single_worker_command_stops_on_sigterm_with_a_checkpoint(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "REDIS_URL": redis_url,
        "HIVERL_WORKER_INDEX": "1",
        "CONFIG_SESSION_ID": "container-hive",
        "CONFIG_WORKERS": "2",
        "CONFIG_TOTAL_STEPS": "1000000",
        "CONFIG_RUN_DIR": str(tmp_path / "runs"),
        "CONFIG_MODEL_DIR": str(tmp_path / "models"),
        "CONFIG_STATS_INTERVAL_S": "0.5",
        "CONFIG_MEMORY__KEY_PREFIX": redis_prefix,
        "CONFIG_AGENT__LEARNING_STARTS": "200",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "hiverl.cli", "worker"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    events = tmp_path / "runs" / "container-hive" / "events-worker-1.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and worker.poll() is None:
        time.sleep(0.5)
        try:
            if any(e["event_type"] == "train_stats" and e["updates"] > 0 for e in read_events(events.parent)):
                break  # it has learned: stop it mid-run
        except ValueError:
            pass  # a line the worker is still writing
    worker.send_signal(signal.SIGTERM)  # what `docker stop` sends
    output, _ = worker.communicate(timeout=300)
    assert worker.returncode == 0, output
    assert "worker 1 done" in output
    state = ModelStore(tmp_path / "models", "container-hive").load_worker(1)
    assert state is not None and state["counters"]["env_steps"] > 0 and state["counters"]["updates"] > 0
    stats = [e for e in read_events(tmp_path / "runs" / "container-hive") if e["event_type"] == "train_stats"]
    assert stats and all(e["worker_index"] == 1 for e in stats)
