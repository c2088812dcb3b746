"""Dashboard test helpers: an app wired to the test's services, signing in, seeding events and sessions."""

from __future__ import annotations

import datetime as dt
import re
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from dashboard.settings import DashboardSettings
from dashboard.training import TrainingLauncher
from hiverl.endpoints import Endpoints

ADMIN = ("ada", "ada-password-1")
VIEWER = ("vic", "vic-password-1")
DEAD_URL = "http://127.0.0.1:9"  # discard port: nothing listens, connections are refused at once

# Stands in for `hiverl train` in API tests (the browser test runs the real one): prints its
# arguments, then waits for SIGINT like the trainer and records that it stopped cleanly.
FAKE_TRAIN = """
import signal, sys, time, pathlib
out = pathlib.Path(sys.argv[1])
out.write_text("started " + " ".join(sys.argv[2:]))
def stop(signum, frame):
    out.write_text("stopped by SIGINT")
    sys.exit(0)
signal.signal(signal.SIGINT, stop)
while True:
    time.sleep(0.05)
"""


def make_settings(
    home: Path, es_prefix: str, mongo_db: str, outage_backoff_s: float = 5.0
) -> DashboardSettings:
    return DashboardSettings.model_validate(
        {
            "home": home,
            "es_index_prefix": es_prefix,
            "mongo_db": mongo_db,
            "runs_dir": home / "runs",
            "outage_backoff_s": outage_backoff_s,
        }
    )


def make_endpoints(
    es_url: str, mongo_uri: str, redis_url: str = "redis://127.0.0.1:9/0", kafka: str = "127.0.0.1:9"
) -> Endpoints:
    return Endpoints.model_validate(
        {
            "REDIS_URL": redis_url,
            "KAFKA_BOOTSTRAP_SERVERS": kafka,
            "ELASTICSEARCH_URL": es_url,
            "MONGODB_URI": mongo_uri,
        }
    )


def fake_launcher(tmp_path: Path) -> TrainingLauncher:
    script = tmp_path / "fake_train.py"
    script.write_text(FAKE_TRAIN)
    return TrainingLauncher(
        tmp_path / "runs", command=[sys.executable, str(script), str(tmp_path / "fake.out")]
    )


def real_launcher(
    tmp_path: Path,
    *,
    redis_url: str,
    redis_prefix: str,
    kafka: str,
    es_url: str,
    mongo_uri: str,
    mongo_db: str,
) -> TrainingLauncher:
    """Runs the real ``hiverl train`` (the launcher's default command) against the test's services:
    memory keys under ``redis_prefix``, the archive in ``mongo_db``, run and model folders, spools
    in ``tmp_path``; small settings so a hive is cheap on 2 cores (one CPU torch thread, stats
    every 0.5 s)."""
    return TrainingLauncher(
        tmp_path / "runs",
        env={
            "REDIS_URL": redis_url,
            "KAFKA_BOOTSTRAP_SERVERS": kafka,
            "ELASTICSEARCH_URL": es_url,
            "MONGODB_URI": mongo_uri,
            "HIVERL_ARCHIVE_DATABASE": mongo_db,
            "HIVERL_HOME": str(tmp_path / "hiverl-home"),  # telemetry and archive spools
            "CONFIG_MEMORY__KEY_PREFIX": redis_prefix,
            # the tests run their own monitor and indexer (into their own indices)
            "HIVERL_TRAIN_MONITOR": "0",
            "HIVERL_TRAIN_INDEX": "0",
            "CONFIG_RUN_DIR": str(tmp_path / "runs"),
            "CONFIG_MODEL_DIR": str(tmp_path / "models"),
            "CONFIG_STATS_INTERVAL_S": "0.5",
            "CONFIG_DEVICE": "cpu",
            "CONFIG_TORCH_THREADS": "1",
        },
    )


def skip_to_end(kafka: str, group_id: str, topics: Sequence[str]) -> None:
    """Commit the current end offsets of ``topics`` for the new consumer group ``group_id``: an
    indexer of that group then reads only what is published from now on (the topics are shared)."""
    from kafka import KafkaConsumer, TopicPartition
    from kafka.structs import OffsetAndMetadata

    from hiverl.telemetry.admin import ensure_topics
    from hiverl.telemetry.config import TelemetryConfig

    ensure_topics(kafka, topics, TelemetryConfig())
    consumer = KafkaConsumer(bootstrap_servers=kafka, group_id=group_id, enable_auto_commit=False)
    try:
        partitions = [
            TopicPartition(topic, p) for topic in topics for p in consumer.partitions_for_topic(topic) or ()
        ]
        assert partitions, f"no partitions found for {topics}"
        ends = consumer.end_offsets(partitions)
        consumer.commit({tp: OffsetAndMetadata(offset, "", -1) for tp, offset in ends.items()})
    finally:
        consumer.close(autocommit=False)


_CSRF_INPUT = re.compile(r'name="csrf_token" value="([^"]+)"')


def sign_in(client: TestClient, user: tuple[str, str] = ADMIN) -> str:
    """Sign in through the login form; returns the session's CSRF token."""
    page = client.get("/login")
    token = _CSRF_INPUT.search(page.text)
    assert token, page.text
    response = client.post(
        "/login",
        data={"username": user[0], "password": user[1], "csrf_token": token.group(1), "next": "/live"},
    )
    assert response.status_code == 303, response.text
    me = client.get("/api/me")
    assert me.status_code == 200
    return str(me.json()["csrf_token"])


# -- seeding the real services ----------------------------------------------------------------------


def seed_events(es_url: str, prefix: str, events: Sequence[Mapping[str, Any]]) -> None:
    """Index telemetry events the way the indexer does (templates, daily indices, @timestamp)."""
    from elasticsearch import Elasticsearch, helpers

    from hiverl.events import MEMORY_MONITORING_TOPIC, TRAINING_LOG_TOPIC
    from hiverl.telemetry.elastic import ensure_templates
    from hiverl.telemetry.schema import daily_index

    es = Elasticsearch(es_url)
    try:
        ensure_templates(es, prefix)
        actions = []
        for event in events:
            family = MEMORY_MONITORING_TOPIC if event["event_type"] == "memory_stats" else TRAINING_LOG_TOPIC
            actions.append(
                {
                    "_index": daily_index(prefix, family, event["event_time"]),
                    "_source": {**event, "@timestamp": int(event["event_time"] * 1000)},
                }
            )
        helpers.bulk(es, actions, refresh=True)
    finally:
        es.close()


def training_events(
    session_id: str,
    start_s: float,
    seconds: int,
    actors: int = 2,
    env_id: str = "CartPole-v1",
    first_step: int = 0,
) -> list[dict[str, Any]]:
    """A hive's telemetry, one second at a time (steps ``first_step`` on, one a second from
    ``start_s``): one episode and one train_stats event per actor, one
    train_stats event of the learner (no worker_index), every 10th second an ``eval`` event of the
    evaluator, and the memory's totals (shard -1) and its one shard (memory_monitoring).

    Training-log events per session: ``seconds * (2 * actors + 1)`` plus one per 10 seconds."""
    from hiverl.events import envelope

    events = []
    for t in range(first_step, first_step + seconds):
        now = start_s + t - first_step
        learner = envelope(
            "train_stats",
            session_id=session_id,
            env_id=env_id,
            role="learner",
            loss=1.0 / (1 + t),
            updates_per_s=50.0,
            updates=10 * t,
            weights_version=t,
        )
        learner["event_time"] = now + 0.05
        events.append(learner)
        if t % 10 == 0:
            evaluation = envelope(
                "eval",
                session_id=session_id,
                env_id=env_id,
                role="evaluator",
                eval_return=float(20 + t),
                eval_return_min=float(10 + t),
                eval_return_max=float(30 + t),
                eval_episodes=10,
                weights_version=t,
                updates=10 * t,
                solved=False,
                solved_return=475.0,
            )
            evaluation["event_time"] = now + 0.08
            events.append(evaluation)
        for w in range(actors):
            common: dict[str, Any] = {
                "session_id": session_id,
                "worker_index": w,
                "env_id": env_id,
                "role": "actor",
            }
            episode = envelope(
                "episode",
                **common,
                episode=t,
                episode_return=float(10 + t + 100 * w),
                episode_length=20,
                env_steps=t * 20,
                epsilon=max(0.05, 1 - t / 50),
            )
            stats = envelope(
                "train_stats",
                **common,
                epsilon=max(0.05, 1 - t / 50),
                env_steps_per_s=500.0 + w,
                env_steps=t * 20,
                episodes=t,
            )
            for event in (episode, stats):
                event["event_time"] = now + 0.1 * w
                events.append(event)
        for shard in (-1, 0):
            memory = envelope(
                "memory_stats",
                session_id=session_id,
                memory_name="hive",
                shard=shard,
                shards=1,
                size=100 * t,
                capacity=10_000,
                bytes_used=4000 * t,
                insert_rate=1000.0,
                sample_rate=640.0,
            )
            memory["event_time"] = now
            events.append(memory)
    return events


def session_document(
    session_id: str,
    *,
    env_id: str = "CartPole-v1",
    status: str = "finished",
    lr: float = 5e-4,
    actors: int = 2,
    best_return: float = 200.0,
    tags: Sequence[str] = (),
    started_at: dt.datetime | None = None,
    curve: Sequence[tuple[int, float]] = ((0, 10.0), (1000, 50.0), (2000, 120.0)),
) -> dict[str, Any]:
    from hiverl.config import SessionConfig

    started = started_at or dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    config = SessionConfig.model_construct().to_json_dict()
    config.update(env_id=env_id, actors=actors, session_id=session_id)
    config["agent"]["lr"] = lr
    return {
        "session_id": session_id,
        "status": status,
        "tags": list(tags),
        "started_at": started,
        "ended_at": None if status == "running" else started + dt.timedelta(minutes=10),
        # a running session beats now (else readers rightly mark it crashed)
        "heartbeat_at": dt.datetime.now(dt.UTC)
        if status == "running"
        else started + dt.timedelta(minutes=10),
        "updated_at": dt.datetime.now(dt.UTC),
        "env_id": env_id,
        "num_workers": max(actors, 1),
        "config": config,
        "results": {"best_return": best_return, "last100_mean_return": best_return / 2},
        "totals": {"env_steps": 2000, "episodes": 40, "updates": 500},
        "learning_curve": {"env_steps": [c[0] for c in curve], "mean_return": [c[1] for c in curve]},
    }


def seed_sessions(mongo_uri: str, mongo_db: str, documents: Sequence[Mapping[str, Any]]) -> None:
    """Store validated, encoded session documents the way the archive does."""
    from pymongo import MongoClient

    from hiverl.archive.document import to_stored, validate_document

    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri)
    try:
        for document in documents:
            stored = to_stored(validate_document(document))
            client[mongo_db]["sessions"].replace_one({"_id": stored["_id"]}, stored, upsert=True)
    finally:
        client.close()


SECURITY_HEADERS = ("content-security-policy", "x-frame-options", "x-content-type-options")


def assert_refused(response: Any, field: str, status: int = 422) -> str:
    """A 4xx whose body names ``field``, with the app's security headers; returns the body."""
    assert response.status_code == status, response.text
    for header in SECURITY_HEADERS:
        assert header in response.headers, (header, response.headers)
    assert field in response.text, response.text
    return str(response.text)


def nothing_started(client: TestClient, tmp_path: Path) -> bool:
    """No training process was started by ``client``'s app (the fake launcher writes ``fake.out``)."""
    return client.get("/api/train/launched").json()["sessions"] == [] and not (tmp_path / "fake.out").exists()


def wait_for(predicate: Any, timeout_s: float = 20.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until truthy (returns its value) or fail after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.1)
