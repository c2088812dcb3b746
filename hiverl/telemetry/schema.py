"""The telemetry event schema: one table of fields, from which everything else is derived.

Every event is a flat JSON object. :data:`FIELDS` lists each field once with its Elasticsearch type,
unit and meaning; from it come the index mappings (:func:`mapping`), the indexer's validation
(:func:`validate_event`), the Kibana objects' field check (tests) and the table in
``docs/telemetry.md`` (:func:`markdown_table`, checked by a test to match).

Index naming (``prefix`` is ``"hiverl-"`` by default; tests pass their own):

* events of topic family ``training_log`` go to the daily index ``{prefix}training_log-YYYY.MM.DD``
  (UTC day of the event's ``event_time``), read through the alias ``{prefix}training_log``;
* likewise ``memory_monitoring``; malformed messages go to ``{prefix}dead_letter-YYYY.MM.DD``
  (UTC day of the Kafka record's timestamp, so a redelivery overwrites), alias ``{prefix}dead_letter``;
* a document's ``_id`` is the event's ``event_id`` (given by the producer, unique per event), so a
  re-delivered record, or an event the producer sent twice across an outage, overwrites its document
  instead of duplicating it; an event without one (another producer's) is keyed by its Kafka record,
  :func:`document_id` ``f"{topic}-{partition}-{offset}"``. A record may hold several events (a JSON
  array, :mod:`hiverl.telemetry.records`): each of them needs its ``event_id``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from hiverl.events import EVENT_SCHEMA_VERSION, MEMORY_MONITORING_TOPIC, TRAINING_LOG_TOPIC

#: Index families: one per topic, plus the dead letter family for malformed messages.
FAMILIES: Final = (TRAINING_LOG_TOPIC, MEMORY_MONITORING_TOPIC)
DEAD_LETTER_FAMILY: Final = "dead_letter"
DEFAULT_INDEX_PREFIX: Final = "hiverl-"
#: Date field every indexed event carries (from ``event_time``); the data views' time field.
TIMESTAMP_FIELD: Final = "@timestamp"

#: Event types and the topic each belongs to.
EVENT_TYPES: Final[dict[str, str]] = {
    "episode": TRAINING_LOG_TOPIC,
    "train_stats": TRAINING_LOG_TOPIC,
    "eval": TRAINING_LOG_TOPIC,
    "started": TRAINING_LOG_TOPIC,
    "outage": TRAINING_LOG_TOPIC,
    "memory_stats": MEMORY_MONITORING_TOPIC,
}

_ALL = ("episode", "train_stats", "eval", "started", "outage", "memory_stats")
_STARTED = ("started",)
_OUTAGE = ("outage",)
_TRAINING = ("episode", "train_stats")
_EVAL = ("eval",)
_MEMORY = ("memory_stats",)
_STATS = ("train_stats", "memory_stats")


@dataclass(frozen=True)
class Field:
    """One event field: ``es_type`` is its Elasticsearch mapping type (keyword, long, integer,
    double, boolean, date); ``unit`` is ``"-"`` for dimensionless values and identifiers."""

    name: str
    es_type: str
    unit: str
    description: str
    event_types: tuple[str, ...]
    required: bool = False


#: The schema, version :data:`hiverl.events.EVENT_SCHEMA_VERSION`. Add fields at the end of their
#: group; renaming or retyping a field is an incompatible change (bump the version).
FIELDS: Final[tuple[Field, ...]] = (
    # -- envelope (every event) -----------------------------------------------------------------
    Field("schema_version", "integer", "-", "event schema version", _ALL, required=True),
    Field(
        "event_type",
        "keyword",
        "-",
        "episode, train_stats, eval, started, outage, memory_stats",
        _ALL,
        required=True,
    ),
    Field("event_time", "double", "s", "when the event happened, Unix epoch seconds", _ALL, required=True),
    Field(TIMESTAMP_FIELD, "date", "ms", "event_time as a date, added at indexing time", _ALL),
    Field("session_id", "keyword", "-", "session the event belongs to (Kafka key part)", _ALL, required=True),
    Field(
        "worker_index", "integer", "-", "0-based actor index in the hive (Kafka key part; actors only)", _ALL
    ),
    Field("worker_id", "keyword", "-", "stable process identifier (host-pid-role)", _ALL),
    Field("host", "keyword", "-", "host name of the producer", _ALL),
    Field("env_id", "keyword", "-", "gymnasium environment id", _ALL),
    Field("event_id", "keyword", "-", "unique id the producer gives the event; its document id", _ALL),
    # -- training_log: step counters (episode and train_stats) -----------------------------------
    Field("env_steps", "long", "steps", "environment steps taken by this actor so far", _TRAINING),
    Field("updates", "long", "updates", "learning steps the learner has made so far", _TRAINING + _EVAL),
    Field("epsilon", "double", "-", "exploration rate of the ε-greedy policy", _TRAINING),
    # -- training_log: episode ------------------------------------------------------------------
    Field("episode", "long", "episodes", "episode number within this actor (0-based)", ("episode",)),
    Field("episode_return", "double", "reward", "undiscounted sum of rewards of the episode", ("episode",)),
    Field("episode_length", "long", "steps", "environment steps in the episode", ("episode",)),
    Field("episode_duration_s", "double", "s", "wall-clock duration of the episode", ("episode",)),
    Field("terminated", "boolean", "-", "episode ended in a terminal state (not truncated)", ("episode",)),
    # -- training_log: train_stats --------------------------------------------------------------
    Field("loss", "double", "-", "mean training loss since the previous train_stats", ("train_stats",)),
    Field("mean_q", "double", "reward", "mean Q value of the sampled actions", ("train_stats",)),
    Field("td_error", "double", "reward", "mean absolute TD error of sampled transitions", ("train_stats",)),
    Field("learning_rate", "double", "-", "optimizer learning rate", ("train_stats",)),
    Field("env_steps_per_s", "double", "steps/s", "environment steps per second (actor)", ("train_stats",)),
    Field("updates_per_s", "double", "updates/s", "learning steps per second (learner)", ("train_stats",)),
    Field("episodes", "long", "episodes", "episodes finished by this actor so far", ("train_stats",)),
    Field("last_return", "double", "reward", "return of the actor's last finished episode", ("train_stats",)),
    Field("mean_return_100", "double", "reward", "mean return of the last 100 episodes", _TRAINING),
    Field(
        "memory_time_share",
        "double",
        "-",
        "share of wall time spent waiting on the memory or the rate limiter",
        ("train_stats",),
    ),
    Field(
        "memory_writes",
        "long",
        "transitions",
        "transitions the whole hive has inserted into the memory (the rate limiter's count)",
        ("train_stats",),
    ),
    # -- memory_monitoring: memory_stats (one event per shard per poll, plus a total) -------------
    Field("memory_name", "keyword", "-", "replay memory name", _MEMORY),
    Field("shard", "integer", "-", "shard index, -1 for the whole memory", _MEMORY),
    Field("shards", "integer", "-", "number of shards of the memory", _MEMORY),
    Field("size", "long", "transitions", "transitions stored", _MEMORY),
    Field("capacity", "long", "transitions", "transitions the memory holds at most", _MEMORY),
    Field("fill_ratio", "double", "-", "size / capacity, 0..1", _MEMORY),
    Field("bytes_used", "long", "bytes", "bytes of stored transitions", _MEMORY),
    Field("bytes_per_transition", "double", "bytes", "bytes_used / size", _MEMORY),
    Field("inserted_total", "long", "transitions", "transitions inserted since creation", _MEMORY),
    Field("sampled_total", "long", "transitions", "transitions sampled since creation", _MEMORY),
    Field("evicted_total", "long", "transitions", "transitions overwritten (FIFO eviction)", _MEMORY),
    Field("corrupt_dropped", "long", "transitions", "undecodable transitions dropped", _MEMORY),
    Field("insert_rate", "double", "transitions/s", "inserts per second since the last poll", _MEMORY),
    Field("sample_rate", "double", "transitions/s", "samples per second since the last poll", _MEMORY),
    Field("eviction_rate", "double", "transitions/s", "evictions per second since the last poll", _MEMORY),
    Field("priority_sum", "double", "-", "sum of priorities p^α (sum tree root)", _MEMORY),
    Field("priority_min", "double", "-", "smallest priority p^α", _MEMORY),
    Field("priority_max", "double", "-", "largest priority p^α", _MEMORY),
    Field("priority_mean", "double", "-", "priority_sum / size", _MEMORY),
    Field("redis_used_memory", "long", "bytes", "Redis INFO used_memory of the shard's server", _MEMORY),
    Field("redis_connected_clients", "integer", "-", "Redis INFO connected_clients", _MEMORY),
    # -- producer health (added by the Kafka sink to periodic stats events) ----------------------
    # -- the learner/actor hive: role, weights, rate limiter, evaluator ---------------------------
    Field(
        "role",
        "keyword",
        "-",
        "learner, actor or evaluator (indexer: the indexer's own outages)",
        _TRAINING + _EVAL + _STARTED + _OUTAGE,
    ),
    Field(
        "weights_version",
        "long",
        "-",
        "version of the published weights the process plays or has just published",
        _TRAINING + _EVAL,
    ),
    Field("learner_samples", "long", "transitions", "transitions the learner has sampled", ("train_stats",)),
    Field(
        "samples_per_insert",
        "double",
        "-",
        "measured learn/insert ratio: learner_samples / (memory_writes - min_size)",
        ("train_stats",),
    ),
    Field("eval_return", "double", "reward", "mean return of the evaluator's greedy episodes", _EVAL),
    Field("eval_return_min", "double", "reward", "lowest return of the round", _EVAL),
    Field("eval_return_max", "double", "reward", "highest return of the round", _EVAL),
    Field("eval_episodes", "integer", "episodes", "greedy episodes in the round", _EVAL),
    Field("solved", "boolean", "-", "the round confirmed the solved return", _EVAL),
    Field("solved_return", "double", "reward", "mean return that counts as solved", _EVAL),
    Field("telemetry_dropped_total", "long", "events", "events the producer dropped (spool full)", _STATS),
    Field("telemetry_spooled", "long", "events", "events waiting in the producer's disk spool", _STATS),
    # -- training_log: where the learner's update time goes (host ms per update, by phase) --------
    *(
        Field(
            f"update_ms_{phase}", "double", "ms", f"learner host time per update: {meaning}", ("train_stats",)
        )
        for phase, meaning in (
            ("fetch_wait", "waiting for the samplers' next chunk"),
            ("stage", "staging a chunk onto the device (upload, stacking frames)"),
            ("step", "queuing (on a GPU) or computing (on a CPU) the Double-DQN step"),
            ("priorities", "queuing the new priorities for the writer thread"),
            ("publish", "publishing the weights to the board"),
            ("other", "the rest of the loop (rate limiter, board, statistics)"),
        )
    ),
    # -- training_log: started (one per role process, its thread budget as measured) -------------
    Field("pid", "long", "-", "operating-system id of the role's process", _STARTED),
    Field("torch_threads", "integer", "threads", "torch intra-op threads the process runs with", _STARTED),
    Field("torch_interop_threads", "integer", "threads", "torch inter-op threads", _STARTED),
    Field("blas_threads", "integer", "threads", "largest BLAS/OpenMP pool (threadpoolctl)", _STARTED),
    Field("cv2_threads", "integer", "threads", "OpenCV threads (-1: OpenCV not installed)", _STARTED),
    Field("os_threads", "integer", "threads", "every thread of the process when it started", _STARTED),
    # -- training_log: outage (one per component per outage of a service, once it is over) -------
    Field("service", "keyword", "-", "the unreachable service: redis, kafka or elasticsearch", _OUTAGE),
    Field("outage_start", "double", "s", "the component's first failed call, Unix epoch seconds", _OUTAGE),
    Field(
        "outage_end",
        "double",
        "s",
        "its first call that succeeded again (or when it stopped waiting), Unix epoch seconds",
        _OUTAGE,
    ),
    Field("outage_duration_s", "double", "s", "outage_end - outage_start", _OUTAGE),
    Field("outage_failures", "long", "calls", "failed calls or probes during the outage", _OUTAGE),
    Field(
        "outage_recovered",
        "boolean",
        "-",
        "the service answered again (false: the component stopped while still waiting)",
        _OUTAGE,
    ),
)

FIELDS_BY_NAME: Final[dict[str, Field]] = {f.name: f for f in FIELDS}

#: Mapping of the dead letter indices (malformed messages, kept for inspection).
DEAD_LETTER_PROPERTIES: Final[dict[str, Any]] = {
    TIMESTAMP_FIELD: {"type": "date"},
    "topic": {"type": "keyword"},
    "partition": {"type": "integer"},
    "offset": {"type": "long"},
    "element": {"type": "integer"},  # the event's place in an array record (None: the whole record)
    "error": {"type": "text", "fields": {"keyword": {"type": "keyword", "ignore_above": 512}}},
    "raw": {"type": "text", "index": False},
}


class EventSchemaError(ValueError):
    """An event does not follow the schema (the message names the field, value and what is allowed)."""


def family_fields(family: str) -> tuple[Field, ...]:
    """Fields that events of topic family ``family`` may carry."""
    if family not in FAMILIES:
        raise ValueError(f"family={family!r} is not a telemetry topic family; allowed: {FAMILIES}")
    return tuple(f for f in FIELDS if any(EVENT_TYPES[t] == family for t in f.event_types))


def mapping(family: str) -> dict[str, Any]:
    """Elasticsearch mapping of ``family``'s indices. Unknown fields are kept in ``_source`` but not
    indexed (``dynamic: false``), so one odd producer can never break the mapping."""
    properties: dict[str, Any] = {}
    for f in family_fields(family):
        properties[f.name] = {"type": f.es_type}
    return {"dynamic": False, "properties": properties}


def alias_name(prefix: str, family: str) -> str:
    """Stable alias every reader uses, e.g. ``hiverl-training_log``."""
    return f"{prefix}{family}"


def index_pattern(prefix: str, family: str) -> str:
    """Pattern matching ``family``'s daily indices (the index template's pattern)."""
    return f"{prefix}{family}-*"


def daily_index(prefix: str, family: str, epoch_s: float) -> str:
    """Index for an event at ``epoch_s`` (UTC day), e.g. ``hiverl-training_log-2026.11.24``.

    Same name as Logstash's ``%{+YYYY.MM.dd}`` on ``@timestamp``."""
    day = dt.datetime.fromtimestamp(epoch_s, tz=dt.UTC).strftime("%Y.%m.%d")
    return f"{prefix}{family}-{day}"


#: The longest ``event_id`` accepted (Elasticsearch allows 512 bytes in an ``_id``).
MAX_EVENT_ID_CHARS: Final = 128


def document_id(topic: str, partition: int, offset: int) -> str:
    """Document id of a Kafka record (an event without ``event_id``, or a dead letter): re-delivery
    overwrites instead of duplicating."""
    return f"{topic}-{partition}-{offset}"


def _type_ok(es_type: str, value: Any) -> bool:
    if value is None:
        return True  # a missing measurement (e.g. NaN loss, sent as null)
    if es_type == "keyword":
        return isinstance(value, str)
    if es_type in ("long", "integer"):
        return isinstance(value, int) and not isinstance(value, bool)
    if es_type == "double":
        return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if es_type == "boolean":
        return isinstance(value, bool)
    if es_type == "date":
        return isinstance(value, str | int | float) and not isinstance(value, bool)
    raise AssertionError(f"unknown es_type {es_type!r}")


_PYTHON_TYPES = {
    "keyword": "string",
    "long": "integer",
    "integer": "integer",
    "double": "finite number",
    "boolean": "boolean",
    "date": "date string or epoch ms",
}


def validate_event(event: Any, family: str) -> dict[str, Any]:
    """Check a decoded message against the schema; returns it as a dict or raises
    :class:`EventSchemaError` naming the field, the value and what is allowed.

    Unknown fields are allowed (forward compatibility: kept, not indexed)."""
    if not isinstance(event, Mapping):
        raise EventSchemaError(f"event must be a JSON object, got {type(event).__name__}")
    for f in FIELDS:
        if f.required and f.name not in event:
            raise EventSchemaError(f"field {f.name!r} is required ({f.description})")
    event_type = event["event_type"]
    if event_type not in EVENT_TYPES or EVENT_TYPES[event_type] != family:
        allowed = sorted(t for t, fam in EVENT_TYPES.items() if fam == family)
        raise EventSchemaError(
            f"field 'event_type' = {event_type!r} not allowed on {family}; allowed: {allowed}"
        )
    version = event["schema_version"]
    if version != EVENT_SCHEMA_VERSION:
        raise EventSchemaError(
            f"field 'schema_version' = {version!r}; this indexer reads {EVENT_SCHEMA_VERSION}"
        )
    for name, value in event.items():
        known = FIELDS_BY_NAME.get(name)
        if known is not None and not _type_ok(known.es_type, value):
            raise EventSchemaError(
                f"field {name!r} = {value!r:.80} has type {type(value).__name__}; "
                f"expected {_PYTHON_TYPES[known.es_type]} ({known.es_type})"
            )
    if event["event_time"] is None:
        raise EventSchemaError("field 'event_time' = None; expected epoch seconds")
    event_id = event.get("event_id")
    if event_id is not None and not 0 < len(event_id) <= MAX_EVENT_ID_CHARS:
        raise EventSchemaError(
            f"field 'event_id' = {event_id!r:.80} has {len(event_id)} characters; expected 1 to "
            f"{MAX_EVENT_ID_CHARS}"
        )
    return dict(event)


def markdown_table() -> str:
    """The schema as the Markdown table in ``docs/telemetry.md`` (a test keeps them equal)."""
    lines = ["| field | type | unit | events | meaning |", "|---|---|---|---|---|"]
    for f in FIELDS:
        events = "all" if f.event_types == _ALL else ", ".join(f.event_types)
        req = " (required)" if f.required else ""
        lines.append(f"| `{f.name}` | {f.es_type} | {f.unit} | {events} | {f.description}{req} |")
    return "\n".join(lines)
