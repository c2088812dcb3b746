"""``hiverl train`` settings handling (no roles started) and ``hiverl evaluate`` input checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hiverl.cli import app

runner = CliRunner()


def text(result: Any) -> str:
    """The command's output with rich's line wrapping undone."""
    return " ".join(result.output.split())


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("CONFIG_"):
            monkeypatch.delenv(name)


def test_print_config_applies_file_env_and_flags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "hive.yaml"
    config.write_text("actors: 3\nagent:\n  lr: 0.002\n  batch_size: 32\n")
    monkeypatch.setenv("CONFIG_AGENT__BATCH_SIZE", "48")
    result = runner.invoke(
        app,
        [
            "train",
            "--print-config",
            "--config",
            str(config),
            "--env",
            "Acrobot-v1",
            "--set",
            "agent.gamma=0.98",
        ],
    )
    assert result.exit_code == 0, result.output
    out = result.output  # YAML lines are short: no wrapping
    assert "env_id: Acrobot-v1" in out and "actors: 3" in out
    assert "lr: 0.002" in out and "batch_size: 48" in out and "gamma: 0.98" in out


def test_invalid_settings_exit_with_the_field_named(tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--print-config", "--actors", "-1", "--set", "agent.lr=-1"])
    assert result.exit_code == 2
    assert "actors" in text(result) and "agent.lr" in text(result) and "-1" in text(result)
    result = runner.invoke(app, ["train", "--print-config", "--set", "agent.lr"])
    assert result.exit_code == 2 and "KEY=VALUE" in text(result)
    result = runner.invoke(app, ["train", "--resume", "nope", "--set", f"run_dir={tmp_path}"])
    assert result.exit_code == 2 and "no session.json" in text(result)


def test_evaluate_missing_checkpoint(tmp_path: Path) -> None:
    result = runner.invoke(app, ["evaluate", "--checkpoint", str(tmp_path / "none.pt")])
    assert result.exit_code == 2 and "does not exist" in text(result)


def test_actor_flags_and_overrides_reach_the_resolved_settings() -> None:
    result = runner.invoke(
        app,
        [
            "train",
            "--print-config",
            "--actors",
            "4",
            "--envs-per-actor",
            "3",
            "--set",
            "actor_overrides.2.actor.random_action_rate=0.25",
            "--set",
            "learner.samples_per_insert=4",
        ],
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "actors: 4" in out and "envs: 3" in out and "samples_per_insert: 4.0" in out
    assert "random_action_rate: 0.25" in out


def test_actor_overrides_may_not_set_learner_settings() -> None:
    result = runner.invoke(app, ["train", "--print-config", "--set", "actor_overrides.0.learner.min_size=5"])
    assert result.exit_code == 2
    assert "actor_overrides.0 may not set learner" in text(result)


def test_single_role_commands_check_their_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for command in (["learner"], ["evaluator"], ["actor", "--index", "0"]):
        result = runner.invoke(app, command)
        assert result.exit_code == 2, result.output
        assert "session_id: required" in text(result)
    monkeypatch.setenv("CONFIG_SESSION_ID", "hive")
    monkeypatch.setenv("CONFIG_ACTORS", "2")
    result = runner.invoke(app, ["actor", "--index", "2"])
    assert result.exit_code == 2 and "actor index 2 out of range 0..1" in text(result)
    monkeypatch.setenv("HIVERL_ACTOR_INDEX", "5")  # what game.worker_index hands the actor
    result = runner.invoke(app, ["actor"])
    assert result.exit_code == 2 and "actor index 5 out of range" in text(result)
