"""What the trainer knows of its hive, from the roles' events and lifecycle messages, without processes."""

from __future__ import annotations

from game.hive_progress import HiveProgress, Periodic
from hiverl.events import envelope
from hiverl.status import RoleState


def test_views_follow_events_and_lifecycle_messages() -> None:
    hive = HiveProgress("s1", "CartPole-v1", actors=2, evaluator=True)
    assert [view.name for view in hive.views.values()] == ["learner", "actor 0", "actor 1", "evaluator"]
    assert not hive.ended and hive.solved_s is None
    hive.on_lifecycle("started", "actor", 1, {"env_steps": 0})
    hive.on_lifecycle("outage", "actor", 1, {"text": "Redis away"})
    assert hive.views[("actor", 1)].state == RoleState.WAITING_FOR_REDIS
    stats = envelope("train_stats", session_id="s1", worker_index=1, role="actor", env_steps=500, epsilon=0.4)
    hive.on_event(stats)
    assert hive.views[("actor", 1)].state == RoleState.RUNNING and hive.views[("actor", 1)].env_steps == 500
    first = envelope("episode", session_id="s1", worker_index=0, role="actor", episode_duration_s=2.0)
    hive.on_event(first)
    for value, solved in ((120.0, False), (480.0, True)):
        hive.on_event(envelope("eval", session_id="s1", role="evaluator", eval_return=value, solved=solved))
    assert hive.first_step_time is not None and hive.solved_s is not None and hive.solved_s >= 0.0
    assert hive.evaluator is not None and hive.evaluator.best_eval_return == 480.0
    progress = hive.progress()
    assert (
        progress["env_steps"] == 500 and progress["solved"] is True and progress["best_eval_return"] == 480.0
    )
    assert [row["state"] for row in progress["roles_status"]] == [
        "starting",
        "starting",
        "running",
        "starting",
    ]
    done = {
        "status": "solved",
        "updates": 900,
        "updates_this_run": 900,
        "wall_s": 3.0,
        "memory_time_share": 0.1,
    }
    hive.on_lifecycle("done", "learner", 0, done)
    assert hive.learner_stop_reason() == "solved" and hive.learner.updates_per_s == 300.0
    assert "env steps 500" in hive.progress_line(12.0)
    assert hive.table().row_count == 4


def test_a_solo_hive_actor_plays_in_the_learner_and_ends_with_it() -> None:
    hive = HiveProgress("s1", "CartPole-v1", actors=0, evaluator=False)
    actor = hive.views[("actor", 0)]
    assert actor.in_learner and actor.state == RoleState.IN_LEARNER
    hive.learner.state = RoleState.FAILED
    hive.follow_learner()
    assert actor.state == RoleState.FAILED and hive.ended


def test_periodic_chores_run_once_per_period() -> None:
    ticks = Periodic(started=100.0)
    assert not ticks.due("line", 104.0, 5.0)
    assert ticks.due("line", 105.0, 5.0) and not ticks.due("line", 109.0, 5.0)
    assert ticks.due("heartbeat", 110.0, 10.0) and ticks.due("line", 110.0, 5.0)
