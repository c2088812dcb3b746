"""The test command never writes into the user's data: every default name is test-scoped here.

(That a real ``hiverl train`` run in tests leaves the user's archive, topics, indices and Redis keys
alone is tested end to end in ``tests/hiverl/telemetry/test_train_pipeline.py``.)"""

from __future__ import annotations

from pathlib import Path

import pytest

from hiverl.archive.settings import ArchiveSettings
from hiverl.config import load_config
from hiverl.events import MEMORY_MONITORING_TOPIC, TRAINING_LOG_TOPIC
from hiverl.services.catalog import home_dir
from hiverl.telemetry.config import TelemetryConfig
from hiverl.telemetry.schema import DEFAULT_INDEX_PREFIX


def test_every_default_name_is_test_scoped_in_tests(_test_scoped_defaults: dict[str, str]) -> None:
    scoped = _test_scoped_defaults
    scope = scoped["HIVERL_TELEMETRY_TOPIC_PREFIX"].rstrip("-")
    telemetry = TelemetryConfig()
    assert ArchiveSettings().database.startswith("test_") and ArchiveSettings().database != "hiverl"
    assert telemetry.index_prefix.startswith(scope) and telemetry.index_prefix != DEFAULT_INDEX_PREFIX
    for family in (TRAINING_LOG_TOPIC, MEMORY_MONITORING_TOPIC):
        assert telemetry.kafka_topic(family) == f"{scope}-{family}"
    assert telemetry.indexer_group_id != "hiverl-indexer"
    assert load_config().memory.key_prefix == f"{scope}:"
    # spools too: a spooled document would be delivered into the user's archive by their next run
    spools = [ArchiveSettings().spool_dir, telemetry.spool_dir]
    assert spools == [Path(scoped["HIVERL_ARCHIVE_SPOOL_DIR"]), Path(scoped["HIVERL_TELEMETRY_SPOOL_DIR"])]
    assert not any(home_dir() in spool.parents for spool in spools if spool is not None)


def test_topic_prefix_applies_to_the_telemetry_families_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HIVERL_TELEMETRY_TOPIC_PREFIX")
    assert TelemetryConfig().kafka_topic(TRAINING_LOG_TOPIC) == TRAINING_LOG_TOPIC  # the user's default
    config = TelemetryConfig(topic_prefix="lab-")
    assert config.kafka_topic(TRAINING_LOG_TOPIC) == "lab-training_log"
    assert config.kafka_topic(MEMORY_MONITORING_TOPIC) == "lab-memory_monitoring"
    assert config.kafka_topic("test-1a2b") == "test-1a2b"  # an explicit topic stays as it is
    with pytest.raises(ValueError, match="topic_prefix"):
        TelemetryConfig(topic_prefix="a b")


def test_no_module_in_game_dashboard_or_hiverl_is_over_400_lines() -> None:
    """A module a newcomer can read in one sitting: split by role (as dashboard/routes/ is) instead."""
    root = Path(__file__).parents[1]
    lengths = {
        str(path.relative_to(root)): len(path.read_text().splitlines())
        for folder in ("game", "dashboard", "hiverl")
        for path in (root / folder).rglob("*.py")
    }
    assert len(lengths) > 50  # the folders were found
    assert {name: n for name, n in lengths.items() if n > 400} == {}
