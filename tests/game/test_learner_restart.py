"""A learner killed with SIGKILL at a random moment loses (almost) no learning: it comes back from the
freshest of its checkpoint and the board's weights, its update count resumes at or above the
board's, and the evaluator plays as well after the restart as before it.

Checkpoints are made rare here (none before the kill), so everything the restarted learner knows it
must take from the board: the learner of 2af2a4d came back from its last checkpoint and the
evaluator fell from 187 to 21.
"""

from __future__ import annotations

import os
import random
import signal
import threading
from pathlib import Path
from typing import Any

import pytest

from game.board import Board
from game.trainer import Trainer
from hiverl.status import SessionStatus
from tests.game.test_hive import hive_config, views

pytestmark = pytest.mark.xdist_group("hive")

KILL_AT_RETURN = 100.0  # the first eval round at or above this arms the kill


class KillWhenPlayingWell:
    """An event sink of the trainer: once the evaluator returns KILL_AT_RETURN, kill -9 the learner
    after a random delay (0-2 s, seeded), noting the board's step count just before."""

    def __init__(self, redis_url: str, seed: int) -> None:
        self.redis_url = redis_url
        self.rng = random.Random(seed)
        self.trainer: Trainer | None = None
        self.evals: list[dict[str, Any]] = []
        self.killed: dict[str, Any] = {}
        self.armed = False

    def publish(self, topic: str, event: Any) -> None:
        if event.get("event_type") != "eval":
            return
        self.evals.append(dict(event))
        if not self.armed and event["eval_return"] >= KILL_AT_RETURN:
            self.armed = True
            threading.Timer(self.rng.uniform(0.0, 2.0), self.kill, args=(event,)).start()

    def kill(self, last_eval: dict[str, Any]) -> None:
        assert self.trainer is not None
        config = self.trainer.config
        board = Board(self.redis_url, self.trainer.session_id, config.memory.key_prefix)
        try:
            pid = self.trainer.pid("learner")
            assert pid is not None
            before = board.poll()
            os.kill(pid, signal.SIGKILL)
        finally:
            board.close()
        self.killed = {
            "pid": pid,
            "board_updates": before.updates,
            "board_version": before.version,
            "eval_return": last_eval["eval_return"],
            "evals_before": len(self.evals),
        }

    def flush(self, timeout_s: float = 10.0) -> None:
        pass

    def close(self) -> None:
        pass


def test_killed_learner_resumes_from_the_boards_weights_without_lost_learning(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    config = hive_config(
        tmp_path,
        redis_prefix,
        total_steps=100_000,
        agent={"hidden_sizes": [128, 128], "lr": 1e-3, "target_update_interval": 64},
        learner={"checkpoint_interval": 10**9, "checkpoint_interval_s": 3600.0},
        evaluator={"stop_when_solved": False, "interval_s": 1.0, "episodes": 5},
    )
    watcher = KillWhenPlayingWell(redis_url, seed=21)
    trainer = Trainer(config, redis_url=redis_url, live=False, sink_factory=lambda _c, _s: watcher)
    watcher.trainer = trainer
    result = trainer.run()
    killed = watcher.killed
    assert killed, f"the learner was never killed (evals {[e['eval_return'] for e in watcher.evals]})"
    assert result.status == SessionStatus.FINISHED, [(v.name, v.state, v.error) for v in result.views]

    (learner,) = views(result, "learner")
    assert learner.restarts == 1
    starts = [h for h in learner.history if h["kind"] == "started"]
    assert len(starts) == 2 and starts[1]["pid"] != killed["pid"]
    # No checkpoint was written before the kill, yet the step count went on from the board's.
    assert not [h for h in learner.history[: learner.history.index(starts[1])] if h["kind"] == "checkpoint"]
    assert starts[1]["resumed_from"] is not None and starts[1]["resumed_from"] >= killed["board_updates"] > 0
    # The weights' version never went back: the restarted learner published above the board's.
    assert starts[1]["weights_version"] > killed["board_version"]

    # The evaluator plays as well after the restart: its first two rounds with the restarted
    # learner's weights are within noise of the round that armed the kill (a learner starting over
    # would play a random policy's ~20).
    after = [
        e
        for e in watcher.evals[killed["evals_before"] :]
        if e["weights_version"] >= starts[1]["weights_version"]
    ]
    assert len(after) >= 2, [e["eval_return"] for e in watcher.evals]
    resumed_play = sum(e["eval_return"] for e in after[:2]) / 2
    assert resumed_play >= 0.5 * killed["eval_return"], (killed, [e["eval_return"] for e in after])
    # Its update count never went back either.
    assert all(e["updates"] >= killed["board_updates"] for e in after)
