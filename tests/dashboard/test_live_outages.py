"""A Redis outage during ``hiverl train``, end to end: the hive's Redis is stopped for a few seconds
and started again. The hive finishes; its progress output (no terminal) says Redis is unreachable
while it is, with progress lines that keep coming; every role that waited records one ``outage``
event; the events reach Elasticsearch through Kafka and the indexer; the live view's API returns
them for the session (the live page shades the charts over their span)."""

from __future__ import annotations

import itertools
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from dashboard_helpers import VIEWER, sign_in

from hiverl.events import TRAINING_LOG_TOPIC
from hiverl.services import RedisServer
from hiverl.telemetry.schema import alias_name

REPO = Path(__file__).resolve().parents[2]
DOWN_S = 7.0  # longer than the trainer's no-terminal progress period (5 s)

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("hive")]


def _train(tmp_path: Path, redis_url: str, prefix: str, session: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,  # the test session's scoped archive database, spools and key prefix
        "PYTHONPATH": str(REPO),
        "REDIS_URL": redis_url,
        "HIVERL_TELEMETRY_TOPIC_PREFIX": prefix,
        "HIVERL_TELEMETRY_INDEX_PREFIX": prefix,
        "HIVERL_TELEMETRY_INDEXER_GROUP_ID": f"{prefix}indexer",
    }
    env.pop("COLUMNS", None)
    command = [
        sys.executable, "-m", "hiverl.cli", "train", "--no-live", "--no-archive",
        "--env", "CartPole-v1", "--actors", "2", "--steps", "6000", "--session", session,
        "--monitor-interval", "1",
        "--set", f"run_dir={tmp_path / 'runs'}",
        "--set", f"model_dir={tmp_path / 'models'}",
        "--set", "stats_interval_s=0.5",
        "--set", "learner.min_size=500",
        "--set", "learner.sample_chunk=4",
        "--set", "agent.hidden_sizes=[32]",
        "--set", "agent.batch_size=32",
        "--set", "evaluator.interval_s=0.5",
        "--set", "evaluator.episodes=2",
        "--set", "max_restarts=0",
        "--set", "device=cpu",
        "--set", "torch_threads=1",
    ]  # fmt: skip
    return subprocess.Popen(
        command, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _learner_updates(events: Path) -> int:
    lines = events.read_text().splitlines() if events.exists() else []
    stats = [json.loads(line) for line in lines[:-1] if '"train_stats"' in line]
    return max((e["updates"] for e in stats if e["role"] == "learner"), default=0)


def test_a_redis_outage_is_said_recorded_indexed_and_served(
    tmp_path: Path,
    private_redis: RedisServer,
    kafka_bootstrap: str,
    es_url: str,
    es_prefix: str,
    make_client: Any,
    mongo_uri: str,
    mongo_db: str,
) -> None:
    from elasticsearch import Elasticsearch

    from tests.helpers.telemetry import delete_topics

    session = f"outage-{uuid.uuid4().hex[:8]}"
    process = _train(tmp_path, private_redis.url, es_prefix, session)
    lines: list[tuple[float, str]] = []  # (when it was printed, the line)

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append((time.time(), line.rstrip("\n")))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    events_path = tmp_path / "runs" / session / "events.jsonl"
    try:
        deadline = time.monotonic() + 300
        while process.poll() is None and _learner_updates(events_path) < 100:  # the hive learns
            assert time.monotonic() < deadline, "\n".join(line for _, line in lines)
            time.sleep(0.3)
        assert process.poll() is None, "the hive ended before Redis was stopped"
        stopped = time.time()
        private_redis.stop()  # SIGTERM: Redis writes its append-only file and exits
        time.sleep(DOWN_S)
        private_redis.start()
        started = time.time()
        assert process.wait(timeout=420) == 0, "\n".join(line for _, line in lines)
        reader.join(30)
        output = "\n".join(line for _, line in lines)

        # Said: at once when Redis went away and when it was back, and in every progress line
        # meanwhile, which kept coming (no terminal: one every 5 s).
        went = [t for t, line in lines if line.startswith("Redis unreachable since")]
        back = [t for t, line in lines if line.startswith("Redis reachable again")]
        assert len(went) == 1 and stopped <= went[0] < stopped + 3, output
        assert len(back) == 1 and started <= back[0] < started + 15, output
        progress = [(t, line) for t, line in lines if re.match(r"\[\s*\d+ s\] env steps", line)]
        during = [(t, line) for t, line in progress if went[0] <= t <= back[0]]
        assert during and all("Redis unreachable since" in line and "paused" in line for _, line in during)
        times = [t for t, _ in progress if stopped - 5 <= t <= back[0] + 5]
        assert max(b - a for a, b in itertools.pairwise(times)) < 7.5, output  # never froze

        # Recorded: one outage event per role that waited, spanning the time Redis was away.
        events = [json.loads(line) for line in events_path.read_text().splitlines() if line.strip()]
        outages = [e for e in events if e["event_type"] == "outage"]
        by_role = {(e["role"], e.get("worker_index")): e for e in outages}
        assert len(by_role) == len(outages), outages  # one per role and outage
        assert {("learner", None), ("actor", 0), ("actor", 1)} <= set(by_role), outages
        for event in outages:  # the evaluator may have been playing a round when Redis went away
            assert event["service"] == "redis" and event["outage_recovered"] is True, event
            assert stopped - 1 <= event["outage_start"] <= started + 2, (stopped, event)  # loading AOF
            assert started - 1 <= event["outage_end"] <= started + 15, (started, event)
            assert 0 < event["outage_duration_s"] <= DOWN_S + 20, event
            span = event["outage_end"] - event["outage_start"]
            assert event["outage_duration_s"] == pytest.approx(span, abs=0.01)
        # The learner talks to Redis all the time (its samplers, the board); an actor at least every
        # few steps (held back by the rate limiter it may play a while without).
        assert by_role[("learner", None)]["outage_start"] <= stopped + 1, by_role[("learner", None)]
        assert by_role[("learner", None)]["outage_duration_s"] >= DOWN_S - 1, by_role[("learner", None)]
        for key in (("actor", 0), ("actor", 1)):
            assert by_role[key]["outage_start"] <= stopped + DOWN_S - 1, (stopped, by_role[key])

        # Indexed: `hiverl train` waited until Elasticsearch held every event of the session.
        assert f"training_log {len(events)} of {len(events)}" in output, output
        with Elasticsearch(es_url, request_timeout=30) as es:
            hits = es.search(
                index=alias_name(es_prefix, TRAINING_LOG_TOPIC),
                size=100,
                query={
                    "bool": {
                        "filter": [{"term": {"session_id": session}}, {"term": {"event_type": "outage"}}]
                    }
                },
            )["hits"]["hits"]
        indexed = {(h["_source"]["role"], h["_source"].get("worker_index")): h["_source"] for h in hits}
        assert len(hits) == len(outages) and set(indexed) == set(by_role)
        assert all(indexed[key]["outage_start"] == by_role[key]["outage_start"] for key in by_role)

        # Served: the live view's API returns them for the session.
        client = make_client(es_url, es_prefix, mongo_uri, mongo_db)
        sign_in(client, VIEWER)
        response = client.get("/api/live/series", params={"session_id": session})
        assert response.status_code == 200, response.text
        served = {(o["role"], o["worker_index"]): o for o in response.json()["outages"]}
        assert set(served) == set(by_role)
        for key, event in by_role.items():
            assert served[key]["service"] == "redis"
            assert served[key]["start_ms"] == pytest.approx(event["outage_start"] * 1000)
            assert served[key]["end_ms"] == pytest.approx(event["outage_end"] * 1000)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(30)
        delete_topics(kafka_bootstrap, es_prefix)
