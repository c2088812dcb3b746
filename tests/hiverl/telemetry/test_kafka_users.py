"""The hive's Kafka users on a real broker configured as compose.yaml's kafka service.

One private KRaft broker (tests/helpers/kafka_broker.py: compose.yaml's own listeners, SCRAM,
authorizer and super user, on free ports) serves the module. ``hiverl index --setup-only`` creates the
users and ACLs through the internal listener, as the stack's telemetry-setup does; the roles' sinks
log in through the EXTERNAL (SASL) listener with the KAFKA_SASL_* settings of their environment.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hiverl.endpoints import Endpoints
from hiverl.events import MEMORY_MONITORING_TOPIC, TRAINING_LOG_TOPIC, envelope
from hiverl.services import ServiceError, free_ports
from hiverl.telemetry.config import TelemetryConfig
from hiverl.telemetry.kafka_login import check_login
from hiverl.telemetry.kafka_sink import KafkaSink
from hiverl.telemetry.kafka_users import USER_TOPICS, password_variable, wanted_acls
from hiverl.telemetry.records import decode_events
from tests.helpers.kafka_broker import ComposeKafka
from tests.helpers.telemetry import fast_config, wait_until

PASSWORDS = {user: f"test-{user}-{uuid.uuid4().hex[:8]}" for user in USER_TOPICS}
SINK_LOG = "hiverl.telemetry.kafka_sink"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ComposeKafka]:
    home = tmp_path_factory.mktemp("compose-kafka")
    for attempt in range(3):  # another process may take a free port before the broker binds it
        server = ComposeKafka(home, *free_ports(3))
        try:
            server.start()
            break
        except ServiceError as error:
            if "already in use" not in str(error) or attempt == 2:
                raise
    try:
        yield server
    finally:
        server.stop()


def setup_users(broker: ComposeKafka, es_url: str, es_prefix: str, passwords: dict[str, str]) -> str:
    """``hiverl index --setup-only`` against the broker's internal listener; returns its output."""
    from typer.testing import CliRunner

    from hiverl.cli import app

    env = {"KAFKA_BOOTSTRAP_SERVERS": broker.url, "ELASTICSEARCH_URL": es_url}
    env |= {password_variable(user): password for user, password in passwords.items()}
    result = CliRunner().invoke(app, ["index", "--setup-only", "--prefix", es_prefix], env=env)
    assert result.exit_code == 0, result.output
    return str(result.output)


@pytest.fixture(scope="module")
def users(broker: ComposeKafka, es_url: str) -> dict[str, str]:
    """The four users, made once for the module (their ES templates under a prefix removed after)."""
    import httpx

    prefix = f"test-{uuid.uuid4().hex[:12]}-"
    try:
        setup_users(broker, es_url, prefix, PASSWORDS)
    finally:
        httpx.delete(f"{es_url}/_index_template/{prefix}*", timeout=30)
    return dict(PASSWORDS)


def login(user: str, password: str) -> dict[str, str]:
    return {
        "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KAFKA_SASL_USERNAME": user,
        "KAFKA_SASL_PASSWORD": password,
    }


def security(user: str, password: str) -> dict[str, Any]:
    return {
        "security_protocol": "SASL_PLAINTEXT",
        "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": user,
        "sasl_plain_password": password,
    }


def events_of(broker: ComposeKafka, topic: str, marker: str) -> list[dict[str, Any]]:
    """Events carrying ``marker`` in ``topic``, read as the internal listener's super user."""
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic, bootstrap_servers=broker.url, auto_offset_reset="earliest", consumer_timeout_ms=3000
    )
    try:
        events = [event for message in consumer for event in decode_events(message.value)]
    finally:
        consumer.close()
    return [event for event in events if event.get("marker") == marker]


def refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == SINK_LOG and r.levelno == logging.ERROR]


@contextlib.contextmanager
def sink_as(
    monkeypatch: pytest.MonkeyPatch,
    broker: ComposeKafka,
    env: dict[str, str],
    config: TelemetryConfig,
    **kw: Any,
) -> Iterator[KafkaSink]:
    """A sink whose Kafka settings come from the environment (as a role's), on the EXTERNAL listener."""
    with monkeypatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        sink = KafkaSink(broker.external_url, config, **kw)
    try:
        yield sink
    finally:
        sink.close(timeout_s=10)


def test_setup_gives_each_user_exactly_its_grants_and_runs_again(
    broker: ComposeKafka, users: dict[str, str], es_url: str, es_prefix: str
) -> None:
    from kafka.admin import (
        ACL,
        ACLFilter,
        ACLOperation,
        ACLPermissionType,
        ACLResourcePatternType,
        KafkaAdminClient,
        ResourcePattern,
        ResourcePatternFilter,
        ResourceType,
    )

    config = TelemetryConfig()
    admin = KafkaAdminClient(bootstrap_servers=broker.url, request_timeout_ms=10_000)
    try:
        credentials = admin.describe_user_scram_credentials(list(USER_TOPICS))
        assert {
            user: info["credential_infos"][0]["mechanism"].name for user, info in credentials.items()
        } == {user: "SCRAM_SHA_512" for user in USER_TOPICS}
        everything = ResourcePatternFilter(ResourceType.ANY, None, ACLResourcePatternType.ANY)

        def acls_of(user: str) -> set[Any]:
            held, _ = admin.describe_acls(
                ACLFilter(f"User:{user}", None, ACLOperation.ANY, ACLPermissionType.ANY, everything)
            )
            return set(held)

        for user in USER_TOPICS:
            assert acls_of(user) == wanted_acls(user, config), user
        topic = {acl.resource_pattern.resource_name for acl in wanted_acls("actor", config)}
        assert topic == {config.kafka_topic(TRAINING_LOG_TOPIC)}
        # A grant nobody made (reading training_log) is stale: the next setup removes it.
        extra = ACL(
            "User:actor",
            "*",
            ACLOperation.READ,
            ACLPermissionType.ALLOW,
            ResourcePattern(ResourceType.TOPIC, config.kafka_topic(TRAINING_LOG_TOPIC)),
        )
        assert not admin.create_acls([extra])["failed"]
        rotated = {**users, "actor": f"rotated-{uuid.uuid4().hex[:8]}"}
        output = setup_users(broker, es_url, es_prefix, rotated)
        assert "ACLs: 0 added, 1 stale removed" in " ".join(output.split()), output
        assert "none (all present)" in output  # the topics, made by the first run
        assert acls_of("actor") == wanted_acls("actor", config)
        output = setup_users(broker, es_url, es_prefix, rotated)
        assert "ACLs: 0 added, 0 stale removed" in " ".join(output.split()), output
    finally:
        admin.close()
    # The re-run set the new password: the old one is refused now.
    assert check_login(broker.external_url, security("actor", rotated["actor"])) is None
    assert check_login(broker.external_url, security("actor", users["actor"])) is not None
    setup_users(broker, es_url, es_prefix, users)
    assert check_login(broker.external_url, security("actor", users["actor"])) is None


def test_the_actor_delivers_training_log_through_the_sasl_listener(
    broker: ComposeKafka, users: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    password_file = tmp_path / "kafka_actor_password"
    password_file.write_text(users["actor"] + "\n")
    env = login("actor", "")
    del env["KAFKA_SASL_PASSWORD"]
    env["KAFKA_SASL_PASSWORD_FILE"] = str(password_file)  # a Docker secret, as on a swarm
    marker = uuid.uuid4().hex
    config = fast_config(tmp_path / "spool")
    with sink_as(monkeypatch, broker, env, config, topics=[TRAINING_LOG_TOPIC], spool_name="actor") as sink:
        assert sink.security["sasl_plain_username"] == "actor"
        sink.publish(TRAINING_LOG_TOPIC, envelope("episode", session_id="s", worker_index=0, marker=marker))
        sink.flush(30)
        stats = sink.stats()
        assert (stats.delivered, stats.spooled, stats.refused) == (1, 0, "")
    [event] = events_of(broker, config.kafka_topic(TRAINING_LOG_TOPIC), marker)
    assert event["event_type"] == "episode"


def test_a_topic_outside_the_users_acls_is_refused_once_and_its_events_wait(
    broker: ComposeKafka,
    users: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=SINK_LOG)
    marker = uuid.uuid4().hex
    config = fast_config(tmp_path / "spool", reconnect_backoff_max_s=1.0)
    env = login("actor", users["actor"])
    with sink_as(monkeypatch, broker, env, config, topics=[TRAINING_LOG_TOPIC], spool_name="actor") as sink:
        sink.publish(TRAINING_LOG_TOPIC, envelope("episode", session_id="s", worker_index=0, marker=marker))
        sink.publish(MEMORY_MONITORING_TOPIC, envelope("memory_stats", session_id="s", marker=marker))
        wait_until(lambda: sink.stats().refused != "", 30, "the refusal of memory_monitoring")
        time.sleep(2.5)  # two more tries at the longest backoff: refused again, said no more
        stats = sink.stats()
        assert (stats.delivered, stats.spooled) == (1, 1)  # the other topic's event went through
    [line] = refusals(caplog)
    assert "user 'actor'" in line and "memory_monitoring" in line and "KAFKA_SASL_USERNAME" in line, line
    assert "may write training_log only" in line, line
    assert len(events_of(broker, config.kafka_topic(TRAINING_LOG_TOPIC), marker)) == 1
    assert events_of(broker, config.kafka_topic(MEMORY_MONITORING_TOPIC), marker) == []

    # A sink that must create the topic the actor may not see refuses to start, in the same words.
    caplog.clear()
    with sink_as(monkeypatch, broker, env, config, topics=[MEMORY_MONITORING_TOPIC], spool_name="mm") as sink:
        sink.publish(MEMORY_MONITORING_TOPIC, envelope("memory_stats", session_id="s", marker=marker))
        wait_until(lambda: sink.stats().refused != "", 30, "the refusal of memory_monitoring")
        assert (sink.stats().delivered, sink.stats().spooled) == (0, 1)
    [line] = refusals(caplog)
    assert "user 'actor'" in line and "access to topic" in line and "memory_monitoring" in line, line


def test_a_wrong_password_is_refused_once_by_name_and_the_events_stay_in_the_spool(
    broker: ComposeKafka,
    users: dict[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # kafka-python's own debug lines too: none may hold a password
    marker = uuid.uuid4().hex
    wrong = f"wrong-{uuid.uuid4().hex[:8]}"
    config = fast_config(tmp_path / "spool", reconnect_backoff_max_s=1.0)
    with sink_as(
        monkeypatch, broker, login("actor", wrong), config, topics=[TRAINING_LOG_TOPIC], spool_name="actor"
    ) as sink:
        for seq in range(3):
            sink.publish(TRAINING_LOG_TOPIC, envelope("episode", session_id="s", seq=seq, marker=marker))
        wait_until(lambda: sink.stats().refused != "", 30, "the refused login")
        time.sleep(2.5)  # more tries at the longest backoff: refused again, said no more
        stats = sink.stats()
        assert (stats.delivered, stats.spooled, stats.online) == (0, 3, False)
        assert sink.outages.current is None  # a refusal is no outage
    [line] = refusals(caplog)
    assert "refused the login of user 'actor'" in line, line
    assert "KAFKA_SASL_PASSWORD" in line and "KAFKA_ACTOR_PASSWORD" in line, line
    assert wrong not in caplog.text and users["actor"] not in caplog.text
    assert events_of(broker, config.kafka_topic(TRAINING_LOG_TOPIC), marker) == []

    # The right password later: the spooled events are delivered.
    caplog.clear()
    env = login("actor", users["actor"])
    with sink_as(monkeypatch, broker, env, config, topics=[TRAINING_LOG_TOPIC], spool_name="actor") as sink:
        sink.flush(30)
        assert (sink.stats().delivered, sink.stats().spooled) == (3, 0)
    assert sorted(e["seq"] for e in events_of(broker, config.kafka_topic(TRAINING_LOG_TOPIC), marker)) == [
        0,
        1,
        2,
    ]
    assert refusals(caplog) == []


def test_a_login_on_the_internal_listener_or_without_a_password_is_named(broker: ComposeKafka) -> None:
    answer = check_login(broker.url, security("actor", "x"))
    assert answer is not None and "no SASL login" in answer
    with pytest.raises(ValueError, match="KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD"):
        Endpoints(KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT", KAFKA_SASL_USERNAME="actor")  # type: ignore[call-arg]
    assert Endpoints().kafka_client_settings() == {"security_protocol": "PLAINTEXT"}
