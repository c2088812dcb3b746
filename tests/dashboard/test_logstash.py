"""The Logstash pipeline indexes like `hiverl index`: same topics, index names and document ids."""

from __future__ import annotations

import re
from pathlib import Path

from hiverl.events import MEMORY_MONITORING_TOPIC, TRAINING_LOG_TOPIC
from hiverl.telemetry.schema import (
    DEAD_LETTER_FAMILY,
    DEFAULT_INDEX_PREFIX,
    FAMILIES,
    TIMESTAMP_FIELD,
    daily_index,
    document_id,
)

PIPELINE = Path(__file__).parents[2] / "dashboard" / "logstash" / "pipeline" / "hiverl.conf"


def setting(text: str, name: str) -> str:
    """The value of ``name => value`` (a quoted string, a [list] or a bare word), comments stripped."""
    match = re.search(rf"^\s*{re.escape(name)}\s*=>\s*(\"[^\"]*\"|\[[^\]]*\]|\w+)", text, re.MULTILINE)
    assert match, f"{name} not set in {PIPELINE}"
    return match.group(1).strip('"')


def section(text: str, name: str) -> str:
    """The body of the top-level ``name { ... }`` block (brace matching)."""
    start = re.search(rf"^{name}\s*{{", text, re.MULTILINE)
    assert start, f"no {name} section"
    depth, i = 1, start.end()
    while depth:
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
    return text[start.end() : i - 1]


def sprintf(template: str, fields: dict[str, str], timestamp_day: str, env: dict[str, str]) -> str:
    """Logstash's ``${VAR:default}`` (environment), ``%{[a][b]}`` and ``%{+YYYY.MM.dd}`` substitution."""
    out = re.sub(r"\$\{(\w+):([^}]*)\}", lambda m: env.get(m.group(1), m.group(2)), template)
    out = out.replace("%{+YYYY.MM.dd}", timestamp_day)
    return re.sub(r"%\{([^}]+)\}", lambda m: fields[m.group(1)], out)


def test_the_kafka_input_reads_both_topics_as_decorated_json() -> None:
    text = "\n".join(line.split("#")[0] for line in PIPELINE.read_text().splitlines())
    kafka = section(section(text, "input"), "  kafka")
    topics = re.findall(r'"([^"]+)"', setting(kafka, "topics"))
    assert sorted(topics) == sorted([TRAINING_LOG_TOPIC, MEMORY_MONITORING_TOPIC]) == sorted(FAMILIES)
    assert setting(kafka, "codec") == "json"
    assert setting(kafka, "decorate_events") in ("basic", "extended", "true")


def test_index_names_and_document_ids_match_the_code() -> None:
    text = "\n".join(line.split("#")[0] for line in PIPELINE.read_text().splitlines())
    output = section(text, "output")
    index, doc_id = setting(output, "index"), setting(output, "document_id")
    assert setting(output, "manage_template") == "false"  # the project's templates, not Logstash's
    event_time = 1_764_000_000.5
    day = daily_index("", "", event_time).lstrip("-")  # Logstash's +YYYY.MM.dd of @timestamp (UTC)
    for topic in FAMILIES:
        fields = {
            "[@metadata][family]": topic,
            "[@metadata][kafka][topic]": topic,
            "[@metadata][kafka][partition]": "2",
            "[@metadata][kafka][offset]": "17",
        }
        assert sprintf(index, fields, day, {}) == daily_index(DEFAULT_INDEX_PREFIX, topic, event_time)
        # a stack with its own prefix: the variable `hiverl index` reads (TelemetryConfig's env prefix)
        lab = {"HIVERL_TELEMETRY_INDEX_PREFIX": "lab-"}
        assert sprintf(index, fields, day, lab) == daily_index("lab-", topic, event_time)
        assert sprintf(doc_id, fields, day, {}) == document_id(topic, 2, 17)
    # the family is the topic for events, dead_letter for unparsable messages
    filters = section(text, "filter")
    assert '"[@metadata][family]" => "%{[@metadata][kafka][topic]}"' in filters
    assert f'"[@metadata][family]" => "{DEAD_LETTER_FAMILY}"' in filters
    # @timestamp (the daily index's day) comes from the event's own time, as in the indexer
    assert re.search(
        rf'date\s*{{\s*match\s*=>\s*\["event_time",\s*"UNIX"\]\s*target\s*=>\s*"{TIMESTAMP_FIELD}"', filters
    )
