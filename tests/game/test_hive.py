"""The hive end to end: one learner, actors and an evaluator as processes on the real ReplayMemory
on a real Redis; they learn, hold the learn/insert ratio, and survive kill -9 and a Redis restart.

Sizes are small (2 actors, CartPole, a few thousand to 40k steps) so each test stays within a couple
of minutes on 2 cores. Every test here runs whole hives: they share one xdist group, so under
``-n 2 --dist loadgroup`` they run one after the other instead of starving each other of CPU.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from game.actor import MAX_INSERTS_IN_FLIGHT
from game.board import Board
from game.checkpoints import ModelStore
from game.hive_memory import memory_config, retrying
from game.rate_limiter import hive_rate_limiter
from game.trainer import Trainer, TrainingResult
from hiverl.config import SessionConfig, deep_update, load_config
from hiverl.events import JsonlSink
from hiverl.services import RedisServer
from hiverl.status import SessionStatus
from replay_memory import ObservationSpec, ReplayMemory

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.xdist_group("hive")

# Settings that learn CartPole quickly on a loaded 2-core machine: a small network, an early start.
FAST: dict[str, Any] = {
    "agent": {"hidden_sizes": [64, 64], "lr": 0.002, "target_update_interval": 100},
    "learner": {"samples_per_insert": 8, "min_size": 500, "sample_chunk": 4},
}


def hive_config(tmp_path: Path, redis_prefix: str, **overrides: Any) -> SessionConfig:
    settings: dict[str, Any] = {
        "actors": 2,
        "seed": 1,
        "run_dir": str(tmp_path / "runs"),
        "model_dir": str(tmp_path / "models"),
        "memory": {"key_prefix": redis_prefix, "capacity": 100_000},
        "stats_interval_s": 0.5,
        "evaluator": {"interval_s": 1.0, "episodes": 5},
    }
    deep_update(settings, json.loads(json.dumps(FAST)))
    deep_update(settings, overrides)
    return load_config(overrides=settings)


def read_events(run_folder: Path) -> list[dict[str, Any]]:
    lines = [
        line for path in sorted(run_folder.glob("events*.jsonl")) for line in path.read_text().splitlines()
    ]
    return [json.loads(line) for line in lines]


def views(result: TrainingResult, role: str) -> list[Any]:
    return [view for view in result.views if view.role == role]


def final_board(config: SessionConfig, session_id: str, redis_url: str) -> Any:
    board = Board(redis_url, session_id, config.memory.key_prefix)
    try:
        return board.poll()
    finally:
        board.close()


def assert_ratio_held(config: SessionConfig, state: Any) -> None:
    """samples / (inserts - min_size) is samples_per_insert, up to the limiter's slack and the inserts
    each actor may have in flight when it checked (the check and the insert are not one step)."""
    limiter = hive_rate_limiter(config)
    consumed = state.inserts - limiter.min_size
    assert consumed > 0 and state.samples > 0
    in_flight = max(config.actors, 1) * config.actor.insert_batch * (MAX_INSERTS_IN_FLIGHT + 2)
    assert abs(limiter.lead(state.inserts, state.samples)) <= limiter.slack + in_flight, state
    ratio = state.samples / consumed
    tolerance = (limiter.slack + in_flight) / consumed + 0.02
    assert ratio == pytest.approx(limiter.samples_per_insert, rel=tolerance), (ratio, state)


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


def test_short_hive_improves_clearly_and_holds_the_ratio(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    """A seeded CartPole hive: the evaluator's greedy return goes from random play (~10-20) to >= 150."""
    # The benchmarked network and learning rate; the evaluator stops the hive once 100 greedy
    # episodes average 150, so a run that learns ends early and one that does not has 80k steps.
    config = hive_config(
        tmp_path,
        redis_prefix,
        total_steps=80_000,
        agent={"hidden_sizes": [128, 128], "lr": 1e-3, "target_update_interval": 64},
        evaluator={"solved_return": 150.0},
    )
    recorder = RecordingRecorder()
    extra_sink = tmp_path / "extra.jsonl"
    result = Trainer(
        config,
        redis_url=redis_url,
        live=False,
        recorder=recorder,
        sink_factory=lambda cfg, session: JsonlSink(extra_sink),
    ).run()
    assert result.status == SessionStatus.FINISHED, [(v.name, v.state, v.error) for v in result.views]
    events = read_events(result.run_folder)
    evals = [e["eval_return"] for e in events if e["event_type"] == "eval"]
    assert len(evals) >= 2
    # The first round plays (nearly) untrained weights: the evaluator starts while the learner is
    # only beginning, so a few hundred learning steps may already be in them.
    assert evals[0] < 100, evals
    assert max(evals) >= 150 and max(evals) - evals[0] >= 75, evals
    # Each role's telemetry: actors' episodes, the learner's statistics, the evaluator's rounds.
    assert {e.get("role") for e in events} == {"learner", "actor", "evaluator"}
    assert {e["worker_index"] for e in events if e["event_type"] == "episode"} == {0, 1}
    assert all(e["session_id"] == result.session_id for e in events)
    stats = [e for e in events if e["event_type"] == "train_stats" and e["role"] == "learner"]
    assert stats[-1]["updates"] > 100 and stats[-1]["weights_version"] > 1
    # The actors played published weights, newer as the run went on.
    versions = [e["weights_version"] for e in events if e["event_type"] == "episode"]
    assert versions[-1] > versions[0]
    # The rate limiter held samples / (inserts - min_size) at samples_per_insert.
    state = final_board(config, result.session_id, redis_url)
    if not result.solved:
        assert state.inserts >= config.total_steps
    assert_ratio_held(config, state)
    if not result.solved:  # over a whole budget the slack is small next to the inserts
        assert stats[-1]["samples_per_insert"] == pytest.approx(config.learner.samples_per_insert, rel=0.1)
    # The archive seam saw the session start and finish; the extra sink got every event.
    assert recorder.calls[0][0] == "start" and recorder.calls[0][1]["session_id"] == result.session_id
    assert recorder.calls[-1][0] == "finish" and recorder.calls[-1][1]["status"] == result.status
    assert len(extra_sink.read_text().splitlines()) == len(events)
    session = json.loads((result.run_folder / "session.json").read_text())
    assert session["status"] == result.status and session["config"]["actors"] == 2
    assert session["seeds"] == {"learner": 1, "actors": [1001, 2001], "evaluator": 777_778}
    assert "torch" in session["versions"]
    assert ModelStore(config.model_dir, result.session_id).load() is not None


@pytest.mark.parametrize("samples_per_insert", [2.0, 32.0])
def test_rate_limiter_holds_the_ratio_in_a_real_hive(
    tmp_path: Path, redis_url: str, redis_prefix: str, samples_per_insert: float
) -> None:
    """Fast actors and a slow learner (32) or a fast learner and slow actors (2): either way the
    measured ratio is the configured one, within the slack."""
    config = hive_config(
        tmp_path,
        redis_prefix,
        total_steps=6_000,
        agent={"batch_size": 32},
        learner={"samples_per_insert": samples_per_insert, "rate_slack": 400, "sample_chunk": 2},
        evaluator={"enabled": False},
    )
    result = Trainer(config, redis_url=redis_url, live=False).run()
    assert result.status == SessionStatus.FINISHED
    state = final_board(config, result.session_id, redis_url)
    assert state.inserts >= config.total_steps
    assert_ratio_held(config, state)
    # Throughout the run, not only at the end (the learner reports the board it last saw).
    limiter = hive_rate_limiter(config)
    for event in read_events(result.run_folder):
        if event["event_type"] == "train_stats" and event["role"] == "learner" and event["learner_samples"]:
            lead = limiter.lead(event["memory_writes"], event["learner_samples"])
            assert abs(lead) <= 2 * limiter.slack, event


def test_solo_hive_one_process_acts_and_learns(tmp_path: Path, redis_url: str, redis_prefix: str) -> None:
    """actors = 0: the learner's process plays too, with the online network itself."""
    config = hive_config(
        tmp_path,
        redis_prefix,
        actors=0,
        total_steps=4_000,
        agent={"batch_size": 32},
        evaluator={"enabled": False},
    )
    result = Trainer(config, redis_url=redis_url, live=False).run()
    assert result.status == SessionStatus.FINISHED
    learner, actor = result.views  # the actor's row is the learner process's own play
    assert (learner.name, actor.name, actor.in_learner) == ("learner", "actor 0", True)
    assert learner.restarts == 0 and learner.updates > 0 and learner.pid is not None
    assert actor.pid is None and actor.env_steps > 0
    events = read_events(result.run_folder)
    episodes = [e for e in events if e["event_type"] == "episode"]
    assert episodes and all(e["role"] == "actor" and e["worker_index"] == 0 for e in episodes)
    assert result.first_step_time is not None
    state = final_board(config, result.session_id, redis_url)
    assert state.inserts >= config.total_steps
    assert_ratio_held(config, state)


def test_killed_learner_resumes_from_its_checkpoint_while_actors_play_on(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    config = hive_config(
        tmp_path,
        redis_prefix,
        total_steps=10_000,
        agent={"batch_size": 32},
        learner={"checkpoint_interval": 150},
        evaluator={"enabled": False},
    )
    killed: dict[str, Any] = {}
    trainer: Trainer

    def on_message(kind: str, role: str, index: int, payload: dict[str, Any]) -> None:
        if kind == "checkpoint" and role == "learner" and payload["updates"] >= 300 and not killed:
            pid = trainer.pid("learner")
            assert pid is not None
            actors = [trainer.views[("actor", i)].env_steps for i in range(2)]
            killed.update(pid=pid, updates=payload["updates"], actor_steps=actors)
            os.kill(pid, signal.SIGKILL)

    trainer = Trainer(config, redis_url=redis_url, live=False, on_message=on_message)
    result = trainer.run()
    assert killed, "the learner was never killed"
    assert result.status == SessionStatus.FINISHED, [(v.name, v.state, v.error) for v in result.views]
    (learner,) = views(result, "learner")
    assert learner.restarts == 1 and learner.state == "done"
    starts = [h for h in learner.history if h["kind"] == "started"]
    assert len(starts) == 2 and starts[0]["resumed_from"] is None
    assert starts[1]["pid"] != killed["pid"]
    assert starts[1]["resumed_from"] is not None and starts[1]["resumed_from"] >= killed["updates"]
    assert learner.resumed_from == starts[1]["resumed_from"]
    # The restarted learner published above the versions the actors already had.
    assert starts[1]["weights_version"] > starts[0]["weights_version"]
    # The actors were never restarted and went on playing.
    for index, actor in enumerate(views(result, "actor")):
        assert actor.restarts == 0 and actor.state == "done"
        assert actor.env_steps > killed["actor_steps"][index]
        assert [h["kind"] for h in actor.history].count("started") == 1
    state = final_board(config, result.session_id, redis_url)
    assert state.inserts >= config.total_steps and state.stop == "completed"
    assert_ratio_held(config, state)  # the board's sample count outlived the learner
    checkpoint = ModelStore(config.model_dir, result.session_id).load()
    assert checkpoint is not None and checkpoint["counters"]["updates"] == learner.updates


def test_killed_actor_the_rest_carry_on(tmp_path: Path, redis_url: str, redis_prefix: str) -> None:
    config = hive_config(
        tmp_path,
        redis_prefix,
        actors=3,
        total_steps=9_000,
        agent={"batch_size": 32},
        learner={"checkpoint_interval": 100},
        evaluator={"enabled": False},
    )
    killed: dict[str, Any] = {}
    trainer: Trainer

    def on_message(kind: str, role: str, index: int, payload: dict[str, Any]) -> None:
        if kind == "checkpoint" and role == "learner" and payload["updates"] >= 200 and not killed:
            pid = trainer.pid("actor", 1)
            assert pid is not None
            actors = [trainer.views[("actor", i)].env_steps for i in range(3)]
            killed.update(pid=pid, actor_steps=actors, updates=payload["updates"])
            os.kill(pid, signal.SIGKILL)

    trainer = Trainer(config, redis_url=redis_url, live=False, on_message=on_message)
    result = trainer.run()
    assert killed, "actor 1 was never killed"
    assert result.status == SessionStatus.FINISHED, [(v.name, v.state, v.error) for v in result.views]
    (learner,) = views(result, "learner")
    assert learner.restarts == 0 and learner.state == "done" and learner.updates > killed["updates"]
    actors = views(result, "actor")
    assert [actor.restarts for actor in actors] == [0, 1, 0]
    assert all(actor.state == "done" for actor in actors)
    for index in (0, 2):  # the others played on
        assert actors[index].env_steps > killed["actor_steps"][index]
    # Restarted: a stateless actor just reconnects (its second process reports at least its end,
    # and "started" too unless the budget ran out while it was still starting).
    after_kill = [h["kind"] for h in actors[1].history][1:]
    assert after_kill.count("done") == 1 and set(after_kill) <= {"started", "done", "outage", "recovered"}
    state = final_board(config, result.session_id, redis_url)
    assert state.inserts >= config.total_steps and state.stop == "completed"


def test_redis_restart_mid_run_every_role_waits_and_reconnects(
    tmp_path: Path, private_redis: RedisServer
) -> None:
    """A private Redis (AOF, as replay_memory/redis.conf) is stopped mid-run and started again on the
    same port and folder: every role reports the outage and goes on, no restart is used, the memory
    keeps its content; the trainer says when Redis went away and came back, and each role that
    waited records one ``outage`` event (tests/dashboard/test_live_outages.py follows one from
    ``hiverl train`` to the dashboard)."""
    config = hive_config(
        tmp_path,
        "",
        total_steps=9_000,
        agent={"batch_size": 32},
        learner={"checkpoint_interval": 100},
        evaluator={"interval_s": 0.3, "episodes": 2},
        max_restarts=0,  # an outage must never be survived by a restart
    )
    spec = ObservationSpec(shape=(4,), dtype="float32")
    outage: dict[str, Any] = {}
    outages: set[tuple[str, int]] = set()
    errors: list[str] = []

    def bounce() -> None:
        session_config = config.model_copy(update={"session_id": trainer.session_id})
        with ReplayMemory.open(private_redis.url, memory_config(session_config, spec)) as memory:
            outage["size_before"] = len(memory)
        outage["stopped_at"] = time.time()
        private_redis.stop()  # SIGTERM: Redis writes its append-only file and exits
        time.sleep(4.0)
        private_redis.start()
        outage["restarted_at"] = time.time()
        # Redis may still be loading its append-only file: wait as the roles do.
        memory = retrying(
            lambda: ReplayMemory.open(private_redis.url, memory_config(session_config, spec)), lambda: False
        )
        with memory:
            outage["size_after"] = retrying(lambda: len(memory), lambda: False)

    bouncer = threading.Thread(target=bounce)

    def on_message(kind: str, role: str, index: int, payload: dict[str, Any]) -> None:
        if kind == "checkpoint" and role == "learner" and payload["updates"] >= 200 and not outage:
            outage["updates"] = payload["updates"]
            bouncer.start()
        if kind == "outage":
            outages.add((role, index))
        if kind == "error":
            errors.append(payload["text"])

    output = io.StringIO()
    console = Console(file=output, force_terminal=False, width=200, soft_wrap=True)
    trainer = Trainer(config, redis_url=private_redis.url, live=False, console=console, on_message=on_message)
    result = trainer.run()
    bouncer.join(timeout=60)
    assert outage.get("size_after") is not None, "Redis was never bounced"
    assert not errors, errors
    assert result.status == SessionStatus.FINISHED, [(v.name, v.state, v.error) for v in result.views]
    assert all(view.restarts == 0 and view.state == "done" for view in result.views)
    # The learner and the actors talk to Redis all the time: each waited through the outage. The
    # evaluator may have been playing a round for the whole of it; then it evaluated again after.
    assert {("learner", 0), ("actor", 0), ("actor", 1)} <= outages
    evals_after = [
        e for e in read_events(result.run_folder)
        if e["event_type"] == "eval" and e["event_time"] > outage["restarted_at"]
    ]  # fmt: skip
    assert ("evaluator", 0) in outages or evals_after
    # Said, and recorded: one outage event for each role that waited, over the time Redis was away.
    said = output.getvalue()
    assert "Redis unreachable since" in said and "Redis reachable again" in said, said
    recorded = [e for e in read_events(result.run_folder) if e["event_type"] == "outage"]
    roles = sorted((e["role"], e.get("worker_index", 0)) for e in recorded)
    assert roles == sorted(outages), recorded
    for event in recorded:
        assert event["service"] == "redis" and event["outage_recovered"], event
        assert outage["stopped_at"] - 1 < event["outage_start"] < outage["restarted_at"] + 2, event
        assert outage["restarted_at"] - 1 < event["outage_end"] < outage["restarted_at"] + 15, event
    assert outage["size_after"] >= outage["size_before"] > 0  # the memory came back intact
    state = final_board(config, result.session_id, private_redis.url)
    assert state.inserts >= config.total_steps  # counting went on after the restart
    (learner,) = views(result, "learner")
    assert learner.updates > outage["updates"]


def _train_cli(
    tmp_path: Path, redis_url: str, redis_prefix: str, *args: str, sigint_ignored: bool = False
) -> subprocess.Popen[str]:
    """``hiverl train`` in a subprocess; ``sigint_ignored``: started as a script's background job is."""
    env = {**os.environ, "REDIS_URL": redis_url, "PYTHONPATH": str(REPO)}
    command = [
        sys.executable, "-m", "hiverl.cli", "train", "--no-live", "--no-telemetry", "--no-archive",
        "--set", f"memory.key_prefix={redis_prefix}",
        "--set", f"run_dir={tmp_path / 'runs'}",
        "--set", f"model_dir={tmp_path / 'models'}",
        "--set", "stats_interval_s=0.5",
        "--set", "evaluator.enabled=false",
        *args,
    ]  # fmt: skip
    return subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if sigint_ignored else None,
    )  # fmt: skip


def test_ctrl_c_checkpoints_and_resume_continues_counters(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    session = "resume-test"
    first = _train_cli(
        tmp_path, redis_url, redis_prefix,
        "--env", "CartPole-v1", "--actors", "2", "--steps", "1000000", "--session", session,
        "--set", "learner.min_size=500", "--set", "learner.sample_chunk=4",
        "--set", "agent.hidden_sizes=[32]", sigint_ignored=True,  # Ctrl-C must reach it all the same
    )  # fmt: skip
    events = tmp_path / "runs" / session / "events.jsonl"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and first.poll() is None:  # wait until the learner learns
        lines = events.read_text().splitlines() if events.exists() else []
        stats = [json.loads(line) for line in lines[:-1] if '"train_stats"' in line]
        if any(e["role"] == "learner" and e["updates"] > 100 for e in stats):
            break
        time.sleep(0.5)
    first.send_signal(signal.SIGINT)  # what Ctrl-C does
    output, _ = first.communicate(timeout=240)
    assert first.returncode == 0, output
    assert "stopping" in output and "summary" in output
    document = json.loads((tmp_path / "runs" / session / "session.json").read_text())
    assert document["status"] == "stopped"
    store = ModelStore(tmp_path / "models", session)
    state = store.load()
    assert state is not None and state["counters"]["updates"] > 100
    stopped_updates = state["counters"]["updates"]
    config = load_config(overrides={"memory": {"key_prefix": redis_prefix}})
    inserts = Board(redis_url, session, config.memory.key_prefix).poll().inserts
    assert inserts > 0

    target = inserts + 2_000
    second = _train_cli(tmp_path, redis_url, redis_prefix, "--resume", session, "--steps", str(target))
    output, _ = second.communicate(timeout=240)
    assert second.returncode == 0, output
    document = json.loads((tmp_path / "runs" / session / "session.json").read_text())
    assert document["status"] == "finished" and document["resumed"] is True
    assert document["config"]["total_steps"] == target
    assert document["config"]["agent"]["hidden_sizes"] == [32]  # the stored settings were kept
    resumed = store.load()
    assert resumed is not None and resumed["counters"]["updates"] > stopped_updates
    # The learner resumed from its checkpoint: its statistics continue from the stopped count.
    learner_stats = [
        e["updates"]
        for e in read_events(tmp_path / "runs" / session)
        if e["event_type"] == "train_stats" and e["role"] == "learner"
    ]
    later = [u for u in learner_stats if u > stopped_updates]
    assert later and learner_stats == sorted(learner_stats)
    board = Board(redis_url, session, config.memory.key_prefix).poll()
    assert board.inserts >= target and board.stop == "completed"

    # Greedy evaluation of the session's latest checkpoint, with a video.
    video = tmp_path / "episode.mp4"
    evaluation = subprocess.run(
        [sys.executable, "-m", "hiverl.cli", "evaluate", "--checkpoint", str(store.latest_path),
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
