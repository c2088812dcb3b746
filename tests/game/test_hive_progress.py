"""What the trainer knows of its hive, from the roles' events and lifecycle messages, without processes."""

from __future__ import annotations

import time

from game.hive_progress import HiveProgress, Periodic
from game.roles import Role
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


def test_outages_are_said_while_they_last_and_when_they_end() -> None:
    hive = HiveProgress("s1", "CartPole-v1", actors=2, evaluator=True)
    roles: list[tuple[Role, int]] = [("learner", 0), ("actor", 0), ("actor", 1), ("evaluator", 0)]
    for role, index in roles:
        hive.on_lifecycle("started", role, index, {})
    assert hive.outage_text() is None and hive.outage_news() == []
    since = time.time() - 12.0
    hive.on_lifecycle("outage", "learner", 0, {"text": "refused", "service": "redis", "since": since})
    hive.on_lifecycle("outage", "actor", 1, {"text": "refused", "service": "redis", "since": since + 0.5})
    clock = time.strftime("%H:%M:%S", time.localtime(since))
    (news,) = hive.outage_news()
    assert news.startswith(
        f"Redis unreachable since {clock} (12 s), waiting; 2 roles paused: learner, actor 1"
    )
    assert hive.outage_news() == []  # said once
    hive.on_lifecycle("outage", "actor", 0, {"text": "refused", "service": "redis", "since": since + 1})
    line = hive.progress_line(30.0)
    assert "env steps" in line and "Redis unreachable since" in line and "3 roles paused" in line
    assert hive.views[("actor", 0)].state == RoleState.WAITING_FOR_REDIS
    assert "Redis unreachable" in str(hive.table().caption)
    # The producers' Kafka outage: telemetry is spooled, nobody is paused.
    hive.on_lifecycle("outage", "evaluator", 0, {"text": "no broker", "service": "kafka", "since": since})
    assert hive.views[("evaluator", 0)].state == RoleState.RUNNING
    assert "Kafka unreachable since" in hive.outage_news()[0]
    assert "1 role spooling telemetry: evaluator" in (hive.outage_text() or "")
    # Every role has Redis back: one line says so; a role that ended waits for nothing.
    for role, index in (roles[0], roles[2]):
        hive.on_lifecycle("recovered", role, index, {"service": "redis", "since": since, "until": since + 14})
    assert hive.views[("learner", 0)].state == RoleState.RUNNING and hive.outage_news() == []
    hive.on_lifecycle("done", "actor", 0, {})
    assert hive.outage_news() == [
        f"Redis reachable again at {time.strftime('%H:%M:%S', time.localtime(since + 14))} after 14.0 s;"
        " every role resumed"
    ]
    hive.on_lifecycle("recovered", "evaluator", 0, {"service": "kafka", "since": since, "until": since + 3})
    assert hive.outage_news()[0].startswith("Kafka reachable again") and hive.outage_text() is None
    assert "unreachable" not in hive.progress_line(40.0)
    assert all("waiting_for" not in row for row in hive.progress()["roles_status"])


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
