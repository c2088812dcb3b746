"""Session settings: precedence, validation messages, per-worker overrides."""

from __future__ import annotations

from pathlib import Path

import pytest

from hiverl.config import ConfigError, SessionConfig, config_from_dict, load_config, parse_assignments


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("CONFIG_"):
            monkeypatch.delenv(name)


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_defaults_are_cartpole_ready() -> None:
    config = load_config()
    assert config.env_id == "CartPole-v1"
    assert config.agent.n_step == 3
    assert config.agent.gamma == 0.99
    assert config.exploration.schedule == "linear"


def test_precedence_defaults_file_env_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = write(
        tmp_path,
        "hive.toml",
        'workers = 3\nseed = 11\nenv_id = "Acrobot-v1"\n[agent]\nlr = 0.002\nbatch_size = 32\n',
    )
    from_file = load_config(toml)
    assert (from_file.workers, from_file.seed, from_file.env_id) == (3, 11, "Acrobot-v1")
    assert (from_file.agent.lr, from_file.agent.batch_size, from_file.agent.gamma) == (0.002, 32, 0.99)

    monkeypatch.setenv("CONFIG_WORKERS", "5")
    monkeypatch.setenv("CONFIG_AGENT__LR", "0.003")
    from_env = load_config(toml)
    assert (from_env.workers, from_env.seed, from_env.agent.lr) == (5, 11, 0.003)
    assert from_env.agent.batch_size == 32  # the file still applies to fields env does not set

    from_cli = load_config(toml, {"workers": 7, "agent": {"lr": 0.004}})
    assert (from_cli.workers, from_cli.agent.lr) == (7, 0.004)
    assert from_cli.agent.batch_size == 32 and from_cli.seed == 11


def test_yaml_file(tmp_path: Path) -> None:
    yaml_file = write(tmp_path, "hive.yaml", "workers: 2\nexploration:\n  schedule: ladder\n")
    config = load_config(yaml_file)
    assert config.workers == 2 and config.exploration.schedule == "ladder"


@pytest.mark.parametrize(
    ("overrides", "field", "allowed"),
    [
        ({"workers": 0}, "workers", "greater than or equal to 1"),
        ({"envs_per_worker": 0}, "envs_per_worker", "greater than or equal to 1"),
        ({"total_steps": 0}, "total_steps", "greater than or equal to 1"),
        ({"seed": -1}, "seed", "greater than or equal to 0"),
        ({"device": "tpu"}, "device", "auto, cpu, cuda, cuda:N"),
        ({"random_action_rate": 1.5}, "random_action_rate", "less than or equal to 1"),
        ({"pace": "hive"}, "pace", "'worker' or 'memory'"),
        ({"session_id": "a b"}, "session_id", "should match pattern"),
        ({"agent": {"lr": 0}}, "agent.lr", "greater than 0"),
        ({"agent": {"gamma": 1.5}}, "agent.gamma", "less than or equal to 1"),
        ({"agent": {"n_step": 0}}, "agent.n_step", "greater than or equal to 1"),
        ({"agent": {"batch_size": 0}}, "agent.batch_size", "greater than or equal to 1"),
        ({"agent": {"tau": 0}}, "agent.tau", "greater than 0"),
        ({"agent": {"hidden_sizes": [64, 0]}}, "agent.hidden_sizes", "positive layer widths"),
        ({"agent": {"bogus": 1}}, "agent.bogus", "unknown setting"),
        ({"exploration": {"schedule": "cosine"}}, "exploration.schedule", "'linear', 'ladder' or 'constant'"),
        ({"exploration": {"ladder_epsilon": 1.0}}, "exploration.ladder_epsilon", "less than 1"),
        ({"memory": {"capacity": 0}}, "memory.capacity", "greater than or equal to 1"),
        ({"memory": {"alpha": 2}}, "memory.alpha", "less than or equal to 1"),
        ({"worker_overrides": {9: {}}}, "worker_overrides", "allowed worker indices are 0..3"),
        ({"worker_overrides": {1: {"workers": 2}}}, "worker_overrides.1", "hive-wide settings"),
        ({"worker_overrides": {1: {"agent": {"lr": -1}}}}, "worker_overrides.1.agent.lr", "greater than 0"),
    ],
)
def test_validation_errors_name_field_value_and_allowed(overrides: dict, field: str, allowed: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(overrides=overrides)
    message = str(info.value)
    assert field in message
    assert allowed in message
    leaf = overrides
    while isinstance(leaf, dict) and len(leaf) == 1 and isinstance(next(iter(leaf.values())), dict):
        leaf = next(iter(leaf.values()))
    if isinstance(leaf, dict) and leaf:
        value = next(iter(leaf.values()))
        if not isinstance(value, dict | list):
            assert repr(value) in message or str(value) in message


def test_env_var_errors_are_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFIG_AGENT__BATCH_SIZE", "-5")
    with pytest.raises(ConfigError, match=r"agent\.batch_size.*-5"):
        load_config()


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match=r"\.toml, \.yaml or \.yml"):
        load_config(write(tmp_path, "hive.ini", "workers=2"))
    with pytest.raises(ConfigError, match="cannot read settings"):
        load_config(write(tmp_path, "broken.toml", "workers = [\n"))
    with pytest.raises(ConfigError, match=r"workerz: unknown setting.*got 3"):
        load_config(write(tmp_path, "typo.toml", "workerz = 3\n"))


def test_per_worker_overrides(tmp_path: Path) -> None:
    toml = write(
        tmp_path,
        "hive.toml",
        "workers = 3\n[worker_overrides.1.agent]\nlr = 0.01\n"
        "[worker_overrides.2]\nrandom_action_rate = 0.2\n",
    )
    config = load_config(toml)
    assert config.for_worker(0).agent.lr == config.agent.lr
    assert config.for_worker(1).agent.lr == 0.01
    assert config.for_worker(1).agent.batch_size == config.agent.batch_size
    assert config.for_worker(2).random_action_rate == 0.2
    assert config.for_worker(0).random_action_rate == 0.0
    with pytest.raises(ConfigError, match="out of range"):
        config.for_worker(3)


def test_exploration_ladder_and_linear() -> None:
    ladder = load_config(overrides={"workers": 4, "exploration": {"schedule": "ladder"}})
    expected = [0.4 ** (1 + 7 * i / 3) for i in range(4)]
    assert [ladder.epsilon(i, 0) for i in range(4)] == pytest.approx(expected)
    assert ladder.epsilon(3, 10**6) == pytest.approx(0.4**8)
    linear = load_config(overrides={"exploration": {"start": 1.0, "end": 0.1, "decay_steps": 100}})
    assert linear.epsilon(0, 0) == 1.0
    assert linear.epsilon(0, 50) == pytest.approx(0.55)
    assert linear.epsilon(0, 1000) == pytest.approx(0.1)
    per_worker = load_config(overrides={"workers": 2, "worker_overrides": {1: {"exploration": {"end": 0.5}}}})
    assert per_worker.epsilon(1, 10**6) == pytest.approx(0.5)
    assert per_worker.epsilon(0, 10**6) == pytest.approx(0.02)  # the default end


def test_parse_assignments() -> None:
    assert parse_assignments(
        ["agent.lr=0.001", "workers=2", "agent.hidden_sizes=[64, 64]", "memory.shared=false"]
    ) == {
        "agent": {"lr": 0.001, "hidden_sizes": [64, 64]},
        "workers": 2,
        "memory": {"shared": False},
    }
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_assignments(["agent.lr"])
    # Strings that YAML would read as mappings stay strings (Redis key prefixes end with ':').
    assert parse_assignments(["memory.key_prefix=test-1a2b:", "session_id=a:b"]) == {
        "memory": {"key_prefix": "test-1a2b:"},
        "session_id": "a:b",
    }
    assert load_config(overrides=parse_assignments(["memory.key_prefix=123"])).memory.key_prefix == "123"


def test_round_trip_through_json_ignores_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_config(overrides={"workers": 2, "worker_overrides": {1: {"agent": {"lr": 0.01}}}})
    monkeypatch.setenv("CONFIG_WORKERS", "9")
    restored = config_from_dict(config.to_json_dict())
    assert restored == config
    assert "workers: 2" in config.to_yaml()
    assert isinstance(restored, SessionConfig)
