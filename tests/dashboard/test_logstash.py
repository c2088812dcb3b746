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


def doc_id_templates(block: str) -> list[str]:
    """The ``[@metadata][doc_id]`` templates ``block`` adds, in order."""
    return re.findall(r'"\[@metadata\]\[doc_id\]"\s*=>\s*"([^"]*)"', block)


def test_index_names_and_document_ids_match_the_code() -> None:
    text = "\n".join(line.split("#")[0] for line in PIPELINE.read_text().splitlines())
    output = section(text, "output")
    index, doc_id = setting(output, "index"), setting(output, "document_id")
    assert doc_id == "%{[@metadata][doc_id]}"
    filters = section(text, "filter")
    events_branch = filters[filters.index("} else {") :]
    # an event's own event_id, else (another producer's event) its record's topic-partition-offset
    assert re.search(r"if \[event_id\] \{", events_branch)
    with_id, without_id = doc_id_templates(events_branch)
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
        assert sprintf(with_id, {**fields, "event_id": "3f2a-17"}, day, {}) == "3f2a-17"
        assert sprintf(without_id, fields, day, {}) == document_id(topic, 2, 17)
    # the family is the topic for events, dead_letter for unparsable messages
    assert '"[@metadata][family]" => "%{[@metadata][kafka][topic]}"' in filters
    assert f'"[@metadata][family]" => "{DEAD_LETTER_FAMILY}"' in filters
    # @timestamp (the daily index's day) comes from the event's own time, as in the indexer
    assert re.search(
        rf'date\s*{{\s*match\s*=>\s*\["event_time",\s*"UNIX"\]\s*target\s*=>\s*"{TIMESTAMP_FIELD}"', filters
    )


# -- the settings and plugin options of the Logstash version compose.yaml pins -----------------------
# Source: Logstash Reference 9.2, "logstash.yml" (https://www.elastic.co/docs/reference/logstash/
# logstash-settings-file), and the plugin references bundled with Logstash 9.2: "Kafka input plugin"
# (logstash-integration-kafka 11.x, .../logstash/plugins/plugins-inputs-kafka), "Elasticsearch output
# plugin" (12.x, .../plugins-outputs-elasticsearch), "Date filter" and "Mutate filter". Logstash 9.0
# removed http.host/http.port/http.environment (use api.http.*): an unknown setting is fatal.
LOGSTASH_VERSION = "9.2.0"
LOGSTASH_SETTINGS = frozenset(
    [
        "node.name",
        "path.data",
        "pipeline.id",
        "pipeline.workers",
        "pipeline.batch.size",
        "pipeline.batch.delay",
        "pipeline.unsafe_shutdown",
        "pipeline.plugin_classloaders",
        "pipeline.ordered",
        "pipeline.ecs_compatibility",
        "pipeline.separate_logs",
        "path.config",
        "config.string",
        "config.test_and_exit",
        "config.reload.automatic",
        "config.reload.interval",
        "config.debug",
        "config.support_escapes",
        "config.field_reference.escape_style",
        "queue.type",
        "path.queue",
        "queue.page_capacity",
        "queue.max_events",
        "queue.max_bytes",
        "queue.checkpoint.acks",
        "queue.checkpoint.writes",
        "queue.checkpoint.retry",
        "queue.drain",
        "queue.compression",
        "dead_letter_queue.enable",
        "dead_letter_queue.max_bytes",
        "dead_letter_queue.storage_policy",
        "dead_letter_queue.retain.age",
        "dead_letter_queue.flush_interval",
        "path.dead_letter_queue",
        "api.enabled",
        "api.environment",
        "api.http.host",
        "api.http.port",
        "api.ssl.enabled",
        "api.ssl.keystore.path",
        "api.ssl.keystore.password",
        "api.ssl.supported_protocols",
        "api.auth.type",
        "api.auth.basic.username",
        "api.auth.basic.password",
        "api.auth.basic.password_policy.mode",
        "log.level",
        "log.format",
        "log.format.json.fix_duplicate_message_fields",
        "path.logs",
        "path.plugins",
        "allow_superuser",
    ]
)
REMOVED_IN_9 = frozenset({"http.host", "http.port", "http.environment"})
COMMON_OPTIONS = frozenset({"add_field", "codec", "enable_metric", "id", "tags", "type"})
PLUGIN_OPTIONS = {
    "kafka": COMMON_OPTIONS
    | frozenset(
        [
            "auto_commit_interval_ms",
            "auto_create_topics",
            "auto_offset_reset",
            "bootstrap_servers",
            "check_crcs",
            "client_dns_lookup",
            "client_id",
            "client_rack",
            "connections_max_idle_ms",
            "consumer_threads",
            "decorate_events",
            "enable_auto_commit",
            "exclude_internal_topics",
            "fetch_max_bytes",
            "fetch_max_wait_ms",
            "fetch_min_bytes",
            "group_id",
            "group_instance_id",
            "heartbeat_interval_ms",
            "isolation_level",
            "jaas_path",
            "kerberos_config",
            "key_deserializer_class",
            "max_partition_fetch_bytes",
            "max_poll_interval_ms",
            "max_poll_records",
            "metadata_max_age_ms",
            "partition_assignment_strategy",
            "poll_timeout_ms",
            "receive_buffer_bytes",
            "reconnect_backoff_ms",
            "request_timeout_ms",
            "retry_backoff_ms",
            "sasl_jaas_config",
            "sasl_mechanism",
            "security_protocol",
            "send_buffer_bytes",
            "session_timeout_ms",
            "topics",
            "topics_pattern",
            "value_deserializer_class",
        ]
    ),
    "elasticsearch": frozenset(
        [
            "action",
            "api_key",
            "cloud_auth",
            "cloud_id",
            "data_stream",
            "document_id",
            "document_type",
            "hosts",
            "http_compression",
            "ilm_enabled",
            "index",
            "manage_template",
            "password",
            "pipeline",
            "retry_initial_interval",
            "retry_max_interval",
            "retry_on_conflict",
            "routing",
            "template",
            "template_name",
            "timeout",
            "user",
            "version",
            "version_type",
            "dlq_custom_codes",
            "dlq_on_failed_indexname_interpolation",
            "enable_metric",
            "id",
            "codec",
        ]
    ),
    "date": frozenset({"match", "target", "timezone", "locale", "tag_on_failure", "add_field", "id"}),
    "mutate": frozenset(
        [
            "add_field",
            "remove_field",
            "rename",
            "replace",
            "update",
            "convert",
            "copy",
            "gsub",
            "lowercase",
            "uppercase",
            "merge",
            "split",
            "strip",
            "join",
            "coerce",
            "add_tag",
            "remove_tag",
            "tag_on_failure",
            "id",
        ]
    ),
}


def test_logstash_yml_has_only_settings_of_the_pinned_version() -> None:
    import yaml

    compose = yaml.safe_load((PIPELINE.parents[3] / "compose.yaml").read_text())
    assert compose["services"]["logstash"]["image"].endswith(f":{LOGSTASH_VERSION}")
    settings = yaml.safe_load((PIPELINE.parents[1] / "logstash.yml").read_text())
    assert set(settings) <= LOGSTASH_SETTINGS, set(settings) - LOGSTASH_SETTINGS
    assert not set(settings) & REMOVED_IN_9
    # offsets are committed only for what is safely queued: the persisted queue, a checkpoint a write
    assert settings["queue.type"] == "persisted" and settings["queue.checkpoint.writes"] == 1
    assert settings["api.http.host"] == "0.0.0.0"  # the health check's API, reachable in the container


def test_pipeline_uses_only_options_of_the_pinned_plugins() -> None:
    text = "\n".join(line.split("#")[0] for line in PIPELINE.read_text().splitlines())
    used = 0
    for plugin, options in PLUGIN_OPTIONS.items():
        for match in re.finditer(rf"\b{plugin}\s*{{", text):
            depth, i = 1, match.end()
            while depth:
                depth += {"{": 1, "}": -1}.get(text[i], 0)
                i += 1
            body = text[match.end() : i - 1]
            top = re.sub(r"\{[^{}]*\}", "{}", body)  # option values that are hashes
            names = set(re.findall(r"^\s*(\w+)\s*=>", top, re.MULTILINE))
            assert names <= options, f"{plugin}: unknown options {names - options}"
            used += len(names)
    assert used >= 15
    kafka = section(section(text, "input"), "  kafka")
    assert setting(kafka, "enable_auto_commit") == "false"  # commitSync after the batch is queued


def test_dead_letters_are_keyed_by_the_record_not_the_receiving_day() -> None:
    text = "\n".join(line.split("#")[0] for line in PIPELINE.read_text().splitlines())
    filters = section(text, "filter")
    dead = filters[: filters.index("} else {")]
    assert re.search(r'date\s*{\s*match\s*=>\s*\["\[@metadata\]\[kafka\]\[timestamp\]",\s*"UNIX_MS"\]', dead)
    output = section(text, "output")
    assert "%{+YYYY.MM.dd}" in setting(output, "index")  # the day of @timestamp: the record's own
    assert setting(output, "document_id") == "%{[@metadata][doc_id]}"
    assert doc_id_templates(dead) == [
        "%{[@metadata][kafka][topic]}-%{[@metadata][kafka][partition]}-%{[@metadata][kafka][offset]}"
    ]
