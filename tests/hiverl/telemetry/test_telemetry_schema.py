"""The event schema: validation errors name field and value; mappings and docs follow the one table."""

from __future__ import annotations

from pathlib import Path

import pytest

from hiverl.events import MEMORY_MONITORING_TOPIC, TRAINING_LOG_TOPIC, envelope
from hiverl.telemetry.config import TelemetryConfig
from hiverl.telemetry.elastic import index_templates
from hiverl.telemetry.records import event_key, serialize_event
from hiverl.telemetry.schema import (
    FIELDS,
    EventSchemaError,
    daily_index,
    document_id,
    mapping,
    markdown_table,
    validate_event,
)

DOCS = Path(__file__).parents[3] / "docs" / "telemetry.md"


def episode(**overrides: object) -> dict[str, object]:
    event = envelope(
        "episode",
        session_id="s1",
        worker_index=2,
        worker_id="h-1",
        env_id="CartPole-v1",
        episode=3,
        episode_return=21.0,
        episode_length=21,
        env_steps=100,
        updates=10,
        epsilon=0.5,
    )
    event.update(overrides)
    return event


def test_a_well_formed_episode_validates() -> None:
    assert validate_event(episode(), TRAINING_LOG_TOPIC)["episode_return"] == 21.0


@pytest.mark.parametrize(
    ("overrides", "words"),
    [
        ({"episode_return": "high"}, ["episode_return", "'high'", "finite number"]),
        ({"worker_index": 1.5}, ["worker_index", "1.5", "integer"]),
        ({"worker_index": True}, ["worker_index", "True", "integer"]),
        ({"session_id": 7}, ["session_id", "7", "string"]),
        ({"event_type": "memory_stats"}, ["event_type", "memory_stats", "episode"]),
        ({"schema_version": 99}, ["schema_version", "99"]),
        ({"loss": float("nan")}, ["loss", "nan", "finite"]),
    ],
)
def test_wrong_types_name_the_field_the_value_and_what_is_allowed(overrides: dict, words: list[str]) -> None:
    with pytest.raises(EventSchemaError) as info:
        validate_event(episode(**overrides), TRAINING_LOG_TOPIC)
    for word in words:
        assert word in str(info.value)


def test_missing_envelope_fields_and_non_objects_are_rejected() -> None:
    event = episode()
    del event["session_id"]
    with pytest.raises(EventSchemaError, match="session_id"):
        validate_event(event, TRAINING_LOG_TOPIC)
    with pytest.raises(EventSchemaError, match="JSON object"):
        validate_event([1, 2], TRAINING_LOG_TOPIC)


def test_unknown_fields_and_nulls_are_allowed() -> None:
    assert validate_event(episode(new_metric=1, loss=None), TRAINING_LOG_TOPIC)["new_metric"] == 1


def test_mappings_type_dates_ids_and_metrics() -> None:
    for family in (TRAINING_LOG_TOPIC, MEMORY_MONITORING_TOPIC):
        props = mapping(family)["properties"]
        assert props["@timestamp"]["type"] == "date"
        assert props["session_id"]["type"] == "keyword"
        assert props["worker_id"]["type"] == "keyword"
        assert mapping(family)["dynamic"] is False
    assert mapping(TRAINING_LOG_TOPIC)["properties"]["episode_return"]["type"] == "double"
    assert mapping(MEMORY_MONITORING_TOPIC)["properties"]["inserted_total"]["type"] == "long"
    assert "size" not in mapping(TRAINING_LOG_TOPIC)["properties"]
    assert "episode_return" not in mapping(MEMORY_MONITORING_TOPIC)["properties"]


def test_templates_put_daily_indices_behind_the_alias() -> None:
    bodies = index_templates("p-")
    body = bodies["p-training_log"]
    assert body["index_patterns"] == ["p-training_log-*"]
    assert body["template"]["aliases"] == {"p-training_log": {}}
    assert set(bodies) == {"p-training_log", "p-memory_monitoring", "p-dead_letter"}


def test_daily_index_is_the_utc_day_and_ids_come_from_the_record() -> None:
    assert daily_index("hiverl-", TRAINING_LOG_TOPIC, 0.0) == "hiverl-training_log-1970.01.01"
    assert daily_index("hiverl-", TRAINING_LOG_TOPIC, 86399.9) == "hiverl-training_log-1970.01.01"
    assert daily_index("hiverl-", TRAINING_LOG_TOPIC, 86400.0) == "hiverl-training_log-1970.01.02"
    assert document_id("training_log", 2, 17) == "training_log-2-17"


def test_docs_carry_the_schema_table() -> None:
    assert markdown_table() in DOCS.read_text(encoding="utf-8")
    assert len({f.name for f in FIELDS}) == len(FIELDS)


def test_serialization_turns_non_finite_floats_into_null_and_keys_by_worker() -> None:
    assert b'"loss":null' in serialize_event(episode(loss=float("inf")))
    assert event_key(episode()) == b"s1/2"
    assert (
        event_key(envelope("memory_stats", session_id="s1", worker_id="monitor-hive")) == b"s1/monitor-hive"
    )


def test_config_rejects_bad_values_with_the_field_name() -> None:
    with pytest.raises(ValueError, match="compression"):
        TelemetryConfig(compression="brotli")
    with pytest.raises(ValueError, match="index_prefix"):
        TelemetryConfig(index_prefix="Upper-")
    with pytest.raises(ValueError, match="spool_segment_bytes"):
        TelemetryConfig(spool_max_bytes=10_000, spool_segment_bytes=8_000)


def test_the_learners_update_phases_are_in_the_schema() -> None:
    """The learner reports ``update_ms_<phase>`` for exactly the phases the schema indexes."""
    from game.learner_stats import PHASES
    from hiverl.telemetry.schema import FIELDS

    assert {f.name for f in FIELDS if f.name.startswith("update_ms_")} == {f"update_ms_{p}" for p in PHASES}
