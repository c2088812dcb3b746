"""How a role process tells of its outages, without processes: each failed Redis call and the end of
the wait go to the trainer as lifecycle messages, and the role records one ``outage`` event per
outage (its producer likewise for Kafka). The real thing: tests/game/test_hive.py (Redis restarted
under a hive) and tests/dashboard/test_live_outages.py (from ``hiverl train`` to the dashboard)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
import redis

from game.roles import OutageReporter, RoleContext, RoleProcess, kafka_outages
from hiverl.events import TRAINING_LOG_TOPIC
from hiverl.telemetry.schema import validate_event


class Collect:
    """An EventSink that keeps what it gets."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def publish(self, topic: str, event: Mapping[str, Any]) -> None:
        assert topic == TRAINING_LOG_TOPIC
        self.events.append(dict(event))

    def flush(self, timeout_s: float = 10.0) -> None:
        pass

    def close(self) -> None:
        pass


class Probe(RoleProcess):
    role = "actor"


@pytest.fixture(autouse=True)
def no_thread_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """A role caps the threads of its process: not of the test's."""
    monkeypatch.setattr("game.roles.limit_threads", lambda _threads: {})


def test_a_roles_wait_for_redis_is_said_and_recorded_once() -> None:
    context = RoleContext("actor", 2, "s1", {}, "redis://127.0.0.1:1")
    messages: list[tuple[str, dict[str, Any]]] = []
    sink = Collect()
    role = Probe(
        context, sink, on_outage=OutageReporter(lambda kind, payload: messages.append((kind, payload)))
    )
    failures = iter([redis.ConnectionError("refused"), redis.ConnectionError("refused")])

    def call() -> str:
        error = next(failures, None)
        if error is not None:
            raise error
        return "ok"

    assert role._retry(call) == "ok"
    kinds = [kind for kind, _ in messages]
    assert kinds == ["outage", "outage", "recovered"], messages
    assert all(payload["service"] == "redis" for _, payload in messages)
    assert "Redis unavailable (ConnectionError: refused)" in messages[0][1]["text"]
    since = messages[0][1]["since"]
    assert messages[2][1]["since"] == since and messages[2][1]["until"] >= since
    role.on_outage("a helper's wait failed")  # a sampler's report: the same outage goes on
    assert role._retry(lambda: 1) == 1
    assert not sink.events  # recorded once it settled, or at the role's end
    role.end_outages()
    (event,) = sink.events
    validate_event(event, TRAINING_LOG_TOPIC)
    assert (event["event_type"], event["role"], event["worker_index"], event["session_id"]) == (
        "outage",
        "actor",
        2,
        "s1",
    )
    assert event["service"] == "redis" and event["outage_start"] == since and event["outage_failures"] == 3
    assert event["outage_duration_s"] == pytest.approx(event["outage_end"] - since, abs=0.01)
    assert event["outage_recovered"] is True and event["worker_id"] == role.writer_id
    role.end_outages()
    assert len(sink.events) == 1


def test_a_plain_on_outage_still_hears_every_failure() -> None:
    context = RoleContext("actor", 0, "s1", {}, "redis://127.0.0.1:1")
    texts: list[str] = []
    role = Probe(context, Collect(), on_outage=texts.append)
    role.on_outage("refused")
    role.outages.succeeded()
    assert texts == ["refused"]


def test_the_producers_kafka_outage_is_said_and_recorded_as_the_roles() -> None:
    context = RoleContext("evaluator", 0, "s1", {}, "redis://127.0.0.1:1", telemetry=True)
    messages: list[tuple[str, dict[str, Any]]] = []
    events: list[dict[str, Any]] = []
    watch = kafka_outages(context, events.append, lambda kind, payload: messages.append((kind, payload)))
    watch.failed("Kafka unreachable (NoBrokersAvailable)")
    watch.succeeded()
    watch.close()
    assert [(kind, payload["service"]) for kind, payload in messages] == [
        ("outage", "kafka"),
        ("recovered", "kafka"),
    ]
    (event,) = events
    validate_event(event, TRAINING_LOG_TOPIC)
    assert (event["role"], event["service"], event["outage_recovered"]) == ("evaluator", "kafka", True)
    assert "worker_index" not in event
