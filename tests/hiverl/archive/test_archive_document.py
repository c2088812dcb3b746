"""The session document without a server: validation errors, escaping, secrets, curves, queries."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hiverl.archive import ArchiveValidationError, Range, SessionQuery, validate_document
from hiverl.archive.document import (
    MAX_CURVE_POINTS,
    deep_merge,
    downsample_indices,
    from_stored,
    to_json_ready,
    to_stored,
)
from hiverl.archive.encoding import FLOAT_MARKER, decode, encode, escape_key, scrub_secrets, unescape_key
from hiverl.archive.facts import start_document

NOW = dt.datetime(2026, 11, 24, 4, 0, tzinfo=dt.UTC)


@pytest.fixture
def valid(new_document: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
    """A valid document with fixed times; keyword arguments replace top-level fields."""
    times = {"started_at": NOW, "heartbeat_at": NOW, "updated_at": NOW}
    return lambda **fields: new_document(**{"session_id": "doc-1", **times, **fields})


# Each case: the fields that break the document, the field path the message must name, and a
# fragment of the offending value the message must show.
INVALID = [
    ({"session_id": "has space"}, "session_id", "'has space'"),
    ({"session_id": "x" * 65}, "session_id", "xxxx"),
    ({"status": "paused"}, "status", "'paused'"),
    ({"env_id": ""}, "env_id", "''"),
    ({"num_workers": 0}, "num_workers", "0"),
    ({"started_at": "yesterday"}, "started_at", "'yesterday'"),
    ({"update_seq": -1}, "update_seq", "-1"),
    ({"schema_version": 2}, "schema_version", "2"),
    ({"tags": ["ok", ""]}, "tags", "''"),
    ({"git_commit": "not-a-sha"}, "git_commit", "'not-a-sha'"),
    ({"totals": {"env_steps": -5}}, "totals.env_steps", "-5"),
    ({"totals": {"episodes": "many"}}, "totals.episodes", "'many'"),
    ({"results": {"best_return": "high"}}, "results.best_return", "'high'"),
    ({"results": {"steps_to_threshold": -1}}, "results.steps_to_threshold", "-1"),
    ({"results": {"wall_clock_s": -3.0}}, "results.wall_clock_s", "-3.0"),
    ({"results": {"bogus": 1}}, "results.bogus", "1"),
    ({"unknown_field": 1}, "unknown_field", "1"),
    ({"worker_overrides": {"first": {"agent": {}}}}, "worker_overrides", "'first'"),
    ({"worker_results": [{"worker_index": -1}]}, "worker_results.0.worker_index", "-1"),
    ({"checkpoints": [{"path": ""}]}, "checkpoints.0.path", "''"),
    ({"learning_curve": {"env_steps": [1, 2], "mean_return": [1.0]}}, "learning_curve", "env_steps"),
    (
        {"learning_curve": {"env_steps": [5, 2], "mean_return": [1.0, 2.0]}},
        "learning_curve",
        "non-decreasing",
    ),
    ({"status": "running", "ended_at": NOW}, "<document>", "ended_at"),
    ({"status": "finished", "ended_at": NOW - dt.timedelta(hours=1)}, "<document>", "before started_at"),
    ({"host": {"cpu_count": 0}}, "host.cpu_count", "0"),
]


@pytest.mark.parametrize(("fields", "where", "shown"), INVALID, ids=[c[1] + ":" + c[2][:12] for c in INVALID])
def test_every_validation_error_names_the_field_and_the_value(
    valid: Callable[..., dict[str, Any]], fields: dict[str, Any], where: str, shown: str
) -> None:
    with pytest.raises(ArchiveValidationError) as caught:
        validate_document(valid(**fields))
    message = str(caught.value)
    assert f"field '{where}'" in message
    assert shown in message
    assert "doc-1" in message or "session_id" in fields


def test_missing_required_fields_are_all_listed() -> None:
    with pytest.raises(ArchiveValidationError) as caught:
        validate_document({"name": "no id"})
    for name in ("session_id", "started_at", "heartbeat_at", "updated_at", "env_id"):
        assert f"field '{name}': Field required" in str(caught.value)
    assert len(caught.value.errors) == 5


def test_not_a_mapping_is_rejected() -> None:
    with pytest.raises(ArchiveValidationError, match="must be a mapping, got list"):
        validate_document([1, 2])  # type: ignore[arg-type]


def test_a_valid_document_normalizes_times_and_tags(valid: Callable[..., dict[str, Any]]) -> None:
    naive = dt.datetime(2026, 1, 1, 12, 0)
    doc = validate_document(valid(started_at=naive, tags=["b", "a", "b"], worker_overrides={3: {"x": 1}}))
    assert doc.started_at == naive.replace(tzinfo=dt.UTC)
    assert doc.tags == ["a", "b"]
    assert doc.worker_overrides == {"3": {"x": 1}}


# -- escaping ----------------------------------------------------------------------------------------

SPECIAL_KEYS = ["a.b", "$set", "x$y", "100%", "%2E", "%float", "..", "$", "", "nul\x00char", "ünï.cödé"]


@pytest.mark.parametrize("key", SPECIAL_KEYS)
def test_escaped_keys_are_storable_and_round_trip(key: str) -> None:
    escaped = escape_key(key)
    assert "." not in escaped and "\x00" not in escaped and not escaped.startswith("$")
    assert unescape_key(escaped) == key


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=30))
def test_any_key_round_trips(key: str) -> None:
    escaped = escape_key(key)
    assert "." not in escaped and "$" not in escaped
    assert unescape_key(escaped) == key


def test_nested_values_with_nonfinite_floats_round_trip() -> None:
    value = {
        "a.b": {"$c": [math.inf, -math.inf, 1.5, {"d.e": math.nan}]},
        FLOAT_MARKER: "nan",  # a user key that looks like the marker
        "x": {FLOAT_MARKER: "inf"},  # a user mapping that looks like an encoded float
    }
    encoded = encode(value)
    text = json.dumps(encoded, allow_nan=False)  # strict JSON: no NaN/Infinity tokens
    assert "a.b" not in text and '"$c"' not in text
    back = decode(json.loads(text))
    assert back["a.b"]["$c"][:3] == [math.inf, -math.inf, 1.5]
    assert math.isnan(back["a.b"]["$c"][3]["d.e"])
    assert back[FLOAT_MARKER] == "nan"
    assert back["x"] == {FLOAT_MARKER: "inf"}


@settings(max_examples=50, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats() | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
        max_leaves=20,
    )
)
def test_encode_decode_round_trips_anything_storable(value: Any) -> None:
    back = decode(json.loads(json.dumps(encode(value), allow_nan=False)))
    assert json.dumps(back, sort_keys=True) == json.dumps(value, sort_keys=True)  # NaN == NaN as text


def test_unstorable_values_name_their_path() -> None:
    with pytest.raises(
        ArchiveValidationError, match=r"field 'config\.seeds\[1\]': integer 18446744073709551616"
    ):
        encode({"config": {"seeds": [1, 2**64]}})
    with pytest.raises(ArchiveValidationError, match=r"field 'config\.blob'.*type bytes"):
        encode({"config": {"blob": b"\x00"}})
    with pytest.raises(ArchiveValidationError, match=r"key 3 must be text"):
        encode({"config": {3: "x"}})


def test_document_round_trips_through_stored_and_json_forms(valid: Callable[..., dict[str, Any]]) -> None:
    doc = validate_document(
        valid(config={"env.kwargs": {"$max": math.inf}, "lr": 1e-3}, results={"best_return": math.nan})
    )
    stored = to_stored(doc)
    assert stored["_id"] == "doc-1"
    assert stored["config"] == {"env%2Ekwargs": {"%24max": {FLOAT_MARKER: "inf"}}, "lr": 1e-3}
    for form in (stored, json.loads(json.dumps(to_json_ready(doc), allow_nan=False))):
        back = from_stored(form)
        assert back.config == doc.config
        assert back.started_at == doc.started_at
        assert back.results.best_return is not None and math.isnan(back.results.best_return)


# -- secrets -----------------------------------------------------------------------------------------


def test_secrets_are_scrubbed_before_validation(valid: Callable[..., dict[str, Any]]) -> None:
    doc = validate_document(
        valid(
            config={
                "mongo": "mongodb://hive:hunter2@db:27017/",
                "nested": {"api_key": "k-123", "db_password": "hunter2", "token": None, "tokens_per_step": 4},
            }
        )
    )
    text = json.dumps(doc.model_dump(mode="json"))
    assert "hunter2" not in text and "k-123" not in text
    assert doc.config["mongo"] == "mongodb://***@db:27017/"
    assert doc.config["nested"] == {
        "api_key": "***",
        "db_password": "***",
        "token": None,
        "tokens_per_step": 4,
    }
    assert scrub_secrets(["redis://:pw@h:1/0", "plain@text"]) == ["redis://***@h:1/0", "plain@text"]


# -- learning curves, merging ---------------------------------------------------------------------------


@pytest.mark.parametrize(("length", "most"), [(0, 5), (3, 5), (5, 5), (6, 5), (1000, 500), (10_001, 7)])
def test_downsampling_keeps_first_last_and_bound(length: int, most: int) -> None:
    keep = downsample_indices(length, most)
    assert len(keep) == min(length, most)
    assert keep == sorted(set(keep))
    if length:
        assert keep[0] == 0 and keep[-1] == length - 1
    if length > most:  # evenly spaced: gaps differ by at most one index
        gaps = [b - a for a, b in itertools.pairwise(keep)]
        assert max(gaps) - min(gaps) <= 1


def test_long_learning_curves_are_bounded(valid: Callable[..., dict[str, Any]]) -> None:
    n = 3 * MAX_CURVE_POINTS + 7
    doc = validate_document(
        valid(learning_curve={"env_steps": list(range(n)), "mean_return": [float(i) for i in range(n)]})
    )
    curve = doc.learning_curve
    assert len(curve.env_steps) == len(curve.mean_return) == MAX_CURVE_POINTS
    assert curve.env_steps[0] == 0 and curve.env_steps[-1] == n - 1
    assert curve.mean_return == [float(s) for s in curve.env_steps]


def test_deep_merge_merges_mappings_and_replaces_the_rest() -> None:
    base = {"results": {"best_return": 1.0, "final_return": 2.0}, "tags": ["a"], "totals": {"env_steps": 1}}
    merged = deep_merge(base, {"results": {"best_return": 5.0}, "tags": ["b"]})
    assert merged == {
        "results": {"best_return": 5.0, "final_return": 2.0},
        "tags": ["b"],
        "totals": {"env_steps": 1},
    }
    assert base["results"] == {"best_return": 1.0, "final_return": 2.0}


# -- queries -------------------------------------------------------------------------------------------


def test_range_parsing() -> None:
    assert Range.parse("agent.lr:1e-4:1e-3") == Range("agent.lr", 1e-4, 1e-3)
    assert Range.parse("best_return:195:") == Range("best_return", 195.0, None)
    for bad, why in [
        ("agent.lr", "is not 'name:min:max'"),
        ("agent.lr:x:1", "must be numbers"),
        ("agent.lr:1:0", "min 1.0 is above max 0.0"),
        ("agent.lr::", "at least one of min and max"),
        (":1:2", "is not 'name:min:max'"),
    ]:
        with pytest.raises(ValueError, match=why):
            Range.parse(bad)


def test_query_filter_and_sort_paths() -> None:
    q = SessionQuery(
        env_id="CartPole-v1",
        status="finished",
        tags=("a",),
        since=NOW,
        params=(Range("agent.lr", 1e-4, None), Range("env.kwargs", None, 2)),
        results=(Range("best_return", 100, 500),),
        sort="best_return",
    )
    assert q.filter() == {
        "env_id": "CartPole-v1",
        "status": "finished",
        "tags": {"$all": ["a"]},
        "started_at": {"$gte": NOW},
        "config.agent.lr": {"$gte": 1e-4},
        "config.env.kwargs": {"$lte": 2},
        "results.best_return": {"$gte": 100, "$lte": 500},
    }
    assert q.sort_path() == "results.best_return"
    assert SessionQuery(sort="started_at").sort_path() == "started_at"
    assert SessionQuery(sort="config.agent.lr").sort_path() == "config.agent.lr"
    with pytest.raises(ValueError, match="status='paused' is not one of running"):
        SessionQuery(status="paused")


def test_start_document_describes_this_machine_and_validates(monkeypatch: pytest.MonkeyPatch) -> None:
    from hiverl.archive import facts
    from hiverl.config import SessionConfig

    monkeypatch.setattr(facts, "gpu_names", lambda: [])  # importing torch only to learn there is no GPU: slow

    config = SessionConfig.model_validate(
        {"actors": 3, "actor_overrides": {2: {"exploration": {"end": 0.1}}}}
    )
    raw = start_document(config, session_id="facts-1", tags=["probe"])
    doc = validate_document(raw)
    assert doc.num_workers == 3 and doc.env_id == "CartPole-v1"
    assert doc.worker_overrides == {"2": {"exploration": {"end": 0.1}}}
    assert doc.config["agent"]["lr"] == config.agent.lr
    assert doc.host.hostname and doc.host.cpu_count and doc.host.python.startswith("3.")
    assert "numpy" in doc.packages and "pydantic" in doc.packages
    assert doc.git_commit is None or len(doc.git_commit.split("-")[0]) == 40


def test_start_document_of_a_solo_hive_and_of_an_older_config(monkeypatch: pytest.MonkeyPatch) -> None:
    from hiverl.archive import facts

    monkeypatch.setattr(facts, "gpu_names", lambda: [])
    monkeypatch.setattr(facts, "package_versions", lambda: {})
    solo = validate_document(start_document({"env_id": "CartPole-v1", "actors": 0}, session_id="solo"))
    assert solo.num_workers == 1  # one process acts and learns
    older = {"env_id": "CartPole-v1", "workers": 4, "worker_overrides": {"3": {"agent": {"lr": 1e-3}}}}
    old = validate_document(start_document(older, session_id="older"))
    assert old.num_workers == 4 and old.worker_overrides == {"3": {"agent": {"lr": 1e-3}}}
