"""Session settings: precedence, validation messages, per-actor overrides, the learner's rate settings."""

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
    assert config.actors == 1 and config.evaluator.enabled
    assert config.exploration.schedule == "ladder"
    assert config.learner.min_size >= 1 and config.learner.rate_slack >= 1


def test_precedence_defaults_file_env_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = write(
        tmp_path,
        "hive.toml",
        'actors = 3\nseed = 11\nenv_id = "Acrobot-v1"\n[agent]\nlr = 0.002\nbatch_size = 32\n'
        "[learner]\nsamples_per_insert = 4.0\nrate_slack = 3000\n[actor]\nenvs = 4\n",
    )
    from_file = load_config(toml)
    assert (from_file.actors, from_file.seed, from_file.env_id) == (3, 11, "Acrobot-v1")
    assert (from_file.agent.lr, from_file.agent.batch_size, from_file.agent.gamma) == (0.002, 32, 0.99)
    assert (from_file.learner.samples_per_insert, from_file.learner.rate_slack) == (4.0, 3000)
    assert from_file.actor.envs == 4

    monkeypatch.setenv("CONFIG_ACTORS", "5")
    monkeypatch.setenv("CONFIG_AGENT__LR", "0.003")
    monkeypatch.setenv("CONFIG_LEARNER__RATE_SLACK", "4000")
    monkeypatch.setenv("CONFIG_EVALUATOR__INTERVAL_S", "0.5")
    from_env = load_config(toml)
    assert (from_env.actors, from_env.seed, from_env.agent.lr) == (5, 11, 0.003)
    assert from_env.learner.rate_slack == 4000 and from_env.evaluator.interval_s == 0.5
    assert from_env.agent.batch_size == 32  # the file still applies to fields env does not set
    assert from_env.learner.samples_per_insert == 4.0

    from_cli = load_config(toml, {"actors": 7, "agent": {"lr": 0.004}, "learner": {"rate_slack": 5000}})
    assert (from_cli.actors, from_cli.agent.lr, from_cli.learner.rate_slack) == (7, 0.004, 5000)
    assert from_cli.agent.batch_size == 32 and from_cli.seed == 11
    assert from_cli.evaluator.interval_s == 0.5 and from_cli.actor.envs == 4


def test_actors_from_env_bound_the_overrides_from_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """actor_overrides are checked against the resolved number of actors, whoever set it."""
    toml = write(tmp_path, "hive.toml", "actors = 4\n[actor_overrides.3.actor]\nenvs = 2\n")
    assert load_config(toml).for_actor(3).actor.envs == 2
    monkeypatch.setenv("CONFIG_ACTORS", "2")
    with pytest.raises(ConfigError, match=r"actor_overrides has index 3.*0\.\.1"):
        load_config(toml)
    assert load_config(toml, {"actors": 4}).for_actor(3).actor.envs == 2  # the CLI wins again


def test_yaml_file(tmp_path: Path) -> None:
    yaml_file = write(tmp_path, "hive.yaml", "actors: 2\nexploration:\n  schedule: linear\n")
    config = load_config(yaml_file)
    assert config.actors == 2 and config.exploration.schedule == "linear"


@pytest.mark.parametrize(
    ("overrides", "field", "allowed"),
    [
        ({"actors": -1}, "actors", "greater than or equal to 0"),
        ({"actors": 257}, "actors", "less than or equal to 256"),
        ({"actor": {"envs": 0}}, "actor.envs", "greater than or equal to 1"),
        ({"actor": {"insert_batch": 0}}, "actor.insert_batch", "greater than or equal to 1"),
        ({"actor": {"random_action_rate": 1.5}}, "actor.random_action_rate", "less than or equal to 1"),
        ({"total_steps": 0}, "total_steps", "greater than or equal to 1"),
        ({"seed": -1}, "seed", "greater than or equal to 0"),
        ({"device": "tpu"}, "device", "auto, cpu, cuda, cuda:N"),
        ({"actor_device": "gpu"}, "actor_device", "auto, cpu, cuda, cuda:N"),
        ({"session_id": "a b"}, "session_id", "should match pattern"),
        ({"learner": {"samples_per_insert": 0}}, "learner.samples_per_insert", "greater than 0"),
        ({"learner": {"rate_slack": 0}}, "learner.rate_slack", "greater than or equal to 1"),
        ({"learner": {"min_size": 0}}, "learner.min_size", "greater than or equal to 1"),
        ({"learner": {"sample_chunk": 65}}, "learner.sample_chunk", "less than or equal to 64"),
        ({"learner": {"samplers": 0}}, "learner.samplers", "greater than or equal to 1"),
        ({"learner": {"weights_interval": 0}}, "learner.weights_interval", "greater than or equal to 1"),
        ({"learner": {"train_interval": 2}}, "learner.train_interval", "unknown setting"),
        ({"evaluator": {"interval_s": 0}}, "evaluator.interval_s", "greater than 0"),
        ({"evaluator": {"episodes": 0}}, "evaluator.episodes", "greater than or equal to 1"),
        ({"agent": {"lr": 0}}, "agent.lr", "greater than 0"),
        ({"agent": {"gamma": 1.5}}, "agent.gamma", "less than or equal to 1"),
        ({"agent": {"n_step": 0}}, "agent.n_step", "greater than or equal to 1"),
        ({"agent": {"batch_size": 0}}, "agent.batch_size", "greater than or equal to 1"),
        ({"agent": {"tau": 0}}, "agent.tau", "greater than 0"),
        ({"agent": {"hidden_sizes": [64, 0]}}, "agent.hidden_sizes", "positive layer widths"),
        ({"agent": {"bogus": 1}}, "agent.bogus", "unknown setting"),
        ({"exploration": {"schedule": "cosine"}}, "exploration.schedule", "'linear', 'ladder' or 'constant'"),
        ({"exploration": {"ladder_epsilon": 1.0}}, "exploration.ladder_epsilon", "less than 1"),
        ({"memory": {"capacity": 0}}, "memory.capacity", "greater than or equal to 2"),
        ({"memory": {"alpha": 2}}, "memory.alpha", "less than or equal to 1"),
        # Settings of the old topology are gone and rejected by name.
        ({"memory": {"shared": False}}, "memory.shared", "unknown setting"),
        ({"workers": 2}, "workers", "unknown setting"),
        ({"pace": "memory"}, "pace", "unknown setting"),
        ({"worker_overrides": {}}, "worker_overrides", "unknown setting"),
        ({"actor_overrides": {9: {}}, "actors": 2}, "actor_overrides", "allowed actor indices are 0..1"),
        ({"actors": 0, "actor_overrides": {1: {}}}, "actor_overrides", "allowed actor indices are 0..0"),
        (
            {"actor_overrides": {1: {"actors": 2}}, "actors": 2},
            "actor_overrides.1 may not set actors=2",
            "allowed: actor",
        ),
        (
            {"actor_overrides": {1: {"agent": {"lr": 0.1}}}, "actors": 2},
            "actor_overrides.1 may not set agent",
            "seed",
        ),
        ({"actor_overrides": {0: {"learner": {}}}}, "actor_overrides.0 may not set learner", "exploration"),
        ({"actor_overrides": {0: {"total_steps": 5}}}, "may not set total_steps=5", "allowed"),
        (
            {"actor_overrides": {1: {"actor": {"envs": 0}}}, "actors": 2},
            "actor_overrides.1.actor.envs",
            "greater than or equal to 1",
        ),
        (
            {"actor_overrides": {1: {"exploration": {"bogus": 1}}}, "actors": 2},
            "actor_overrides.1.exploration.bogus",
            "unknown setting",
        ),
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
        load_config(write(tmp_path, "hive.ini", "actors=2"))
    with pytest.raises(ConfigError, match="cannot read settings"):
        load_config(write(tmp_path, "broken.toml", "actors = [\n"))
    with pytest.raises(ConfigError, match=r"actorz: unknown setting.*got 3"):
        load_config(write(tmp_path, "typo.toml", "actorz = 3\n"))


def test_per_actor_overrides(tmp_path: Path) -> None:
    toml = write(
        tmp_path,
        "hive.toml",
        "actors = 3\nseed = 4\n[actor_overrides.1.actor]\nenvs = 2\n"
        "[actor_overrides.2]\nseed = 50\n[actor_overrides.2.actor]\nrandom_action_rate = 0.2\n",
    )
    config = load_config(toml)
    assert config.for_actor(0).actor == config.actor
    assert config.for_actor(1).actor.envs == 2
    assert config.for_actor(1).actor.insert_batch == config.actor.insert_batch  # the rest is inherited
    assert config.for_actor(2).actor.random_action_rate == 0.2
    assert config.for_actor(0).actor.random_action_rate == 0.0
    assert config.for_actor(2).actor_overrides == {}  # the resolved view carries no overrides itself
    # Seeds: actor i plays seed + 1000 * (i + 1), its own seed override applied.
    assert [config.role_seed("actor", i) for i in range(3)] == [1004, 2004, 3050]
    with pytest.raises(ConfigError, match="out of range"):
        config.for_actor(3)
    solo = load_config(overrides={"actors": 0, "actor_overrides": {0: {"actor": {"envs": 3}}}})
    assert solo.for_actor(0).actor.envs == 3  # a solo hive's learner plays as actor 0


def test_exploration_ladder_and_linear() -> None:
    ladder = load_config(overrides={"actors": 4, "exploration": {"schedule": "ladder"}})
    expected = [0.4 ** (1 + 7 * i / 3) for i in range(4)]
    assert [ladder.exploration.epsilon(i, 4, 0) for i in range(4)] == pytest.approx(expected)
    assert ladder.exploration.epsilon(3, 4, 10**6) == pytest.approx(0.4**8)  # no decay on the ladder
    assert ladder.exploration.epsilon(0, 1, 0) == pytest.approx(0.4)  # one actor: the base ε
    linear = load_config(
        overrides={"exploration": {"schedule": "linear", "start": 1.0, "end": 0.1, "decay_steps": 100}}
    )
    assert linear.exploration.epsilon(0, 2, 0) == 1.0
    assert linear.exploration.epsilon(1, 2, 50) == pytest.approx(0.55)
    assert linear.exploration.epsilon(0, 2, 1000) == pytest.approx(0.1)
    per_actor = load_config(
        overrides={
            "actors": 2,
            "exploration": {"schedule": "linear"},
            "actor_overrides": {1: {"exploration": {"end": 0.5}}},
        }
    )
    assert per_actor.for_actor(1).exploration.epsilon(1, 2, 10**6) == pytest.approx(0.5)
    assert per_actor.for_actor(0).exploration.epsilon(0, 2, 10**6) == pytest.approx(0.02)  # default end
    constant = load_config(overrides={"exploration": {"schedule": "constant", "start": 0.3}})
    assert constant.exploration.epsilon(1, 2, 10**6) == 0.3


def test_rate_limiter_settings_resolve_to_one_limiter() -> None:
    from game.rate_limiter import hive_rate_limiter

    config = load_config(
        overrides={
            "agent": {"batch_size": 32},
            "learner": {"samples_per_insert": 4, "min_size": 100, "sample_chunk": 8, "rate_slack": 600},
        }
    )
    limiter = hive_rate_limiter(config)
    # Sampling waits for one whole request (32 * 8 = 256 transitions), never less than min_size.
    assert (limiter.samples_per_insert, limiter.min_size, limiter.slack) == (4.0, 256, 600)
    big_min = load_config(overrides={"learner": {"min_size": 5000}})
    assert hive_rate_limiter(big_min).min_size == 5000


def test_parse_assignments() -> None:
    assert parse_assignments(
        ["agent.lr=0.001", "actors=2", "agent.hidden_sizes=[64, 64]", "actor_overrides.1.actor.envs=3"]
    ) == {
        "agent": {"lr": 0.001, "hidden_sizes": [64, 64]},
        "actors": 2,
        "actor_overrides": {"1": {"actor": {"envs": 3}}},
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
    config = load_config(overrides={"actor_overrides": {1: {"actor": {"envs": 3}, "seed": 9}}, "actors": 2})
    monkeypatch.setenv("CONFIG_ACTORS", "9")
    monkeypatch.setenv("CONFIG_LEARNER__SAMPLES_PER_INSERT", "2")
    data = config.to_json_dict()
    assert data["actor_overrides"] == {"1": {"actor": {"envs": 3}, "seed": 9}}  # JSON keys are strings
    restored = config_from_dict(data)
    assert restored == config
    assert (
        restored.for_actor(1).actor.envs == 3
        and restored.learner.samples_per_insert == config.learner.samples_per_insert
    )
    assert "actors: 2" in config.to_yaml()
    assert isinstance(restored, SessionConfig)


# -- the input rules: bounded integers, no booleans for numbers, playable env ids --------------------


@pytest.mark.parametrize(
    ("overrides", "field", "allowed"),
    [
        ({"seed": 10**30}, "seed", "less than or equal to 2146435071"),
        ({"seed": 2**32}, "seed", "less than or equal to 2146435071"),
        ({"seed": 2**63}, "seed", "less than or equal to"),
        ({"seed": 10**400}, "seed", "less than or equal to"),
        ({"memory": {"capacity": 10**30}}, "memory.capacity", "less than or equal to 2147483648"),
        ({"memory": {"capacity": 2**31 + 1}}, "memory.capacity", "less than or equal to 2147483648"),
        ({"memory": {"shards": 2000}}, "memory.shards", "less than or equal to 1024"),
        ({"memory": {"capacity": 1001, "shards": 2}}, "memory.capacity", "multiple of memory.shards=2"),
        ({"memory": {"capacity": 6, "shards": 4}}, "memory.capacity", "at least 8"),
        ({"exploration": {"decay_steps": 2**62}}, "exploration.decay_steps", "less than or equal to"),
        ({"learner": {"min_size": 2**62}}, "learner.min_size", "less than or equal to 2147483648"),
        ({"learner": {"min_size": 6000}, "memory": {"capacity": 5000}}, "learner.min_size", "capacity=5000"),
        ({"total_steps": 10**13}, "total_steps", "less than or equal to 1000000000000"),
        ({"learner": {"rate_slack": 2**63}}, "learner.rate_slack", "less than or equal to"),
        ({"agent": {"target_update_interval": 2**62}}, "agent.target_update_interval", "less than"),
        ({"actor": {"insert_batch": 10**6}}, "actor.insert_batch", "less than or equal to 4096"),
        ({"max_restarts": 10**9}, "max_restarts", "less than or equal to 1000"),
        ({"agent": {"hidden_sizes": [10**30]}}, "agent.hidden_sizes", "at most 16 layers"),
        ({"stats_interval_s": float("inf")}, "stats_interval_s", "finite number"),
        ({"agent": {"lr": float("nan")}}, "agent.lr", "finite number"),
        ({"evaluator": {"solved_return": float("inf")}}, "evaluator.solved_return", "finite number"),
        ({"evaluator": {"interval_s": 1e300}}, "evaluator.interval_s", "less than or equal to 86400"),
        ({"session_id": ".."}, "session_id", "only dots"),
        ({"session_id": "abc\n"}, "session_id", "should match pattern"),
    ],
)
def test_numbers_are_bounded_by_what_the_hive_can_hold(overrides: dict, field: str, allowed: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(overrides=overrides)
    assert field in str(info.value) and allowed in str(info.value)
    assert len(str(info.value)) < 400  # the value is quoted, never echoed in full


NUMERIC_FIELDS = [
    {"seed": True},
    {"actors": True},
    {"total_steps": True},
    {"torch_threads": False},
    {"stats_interval_s": True},
    {"max_restarts": False},
    {"agent": {"lr": True}},
    {"agent": {"batch_size": True}},
    {"agent": {"hidden_sizes": [64, True]}},
    {"learner": {"min_size": True}},
    {"learner": {"samples_per_insert": True}},
    {"actor": {"envs": True}},
    {"exploration": {"decay_steps": True}},
    {"exploration": {"start": True}},
    {"evaluator": {"solved_return": True}},
    {"memory": {"capacity": True}},
    {"memory": {"alpha": False}},
]


@pytest.mark.parametrize("overrides", NUMERIC_FIELDS, ids=lambda o: str(o))
def test_booleans_are_not_numbers(overrides: dict) -> None:
    with pytest.raises(ConfigError, match="not true or false"):
        load_config(overrides=overrides)


def test_booleans_are_not_numbers_in_files_env_and_actor_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(ConfigError, match=r"seed: must be a number, not true or false"):
        load_config(write(tmp_path, "hive.toml", "seed = true\n"))
    with pytest.raises(ConfigError, match=r"actor_overrides\.1\.seed: must be a number"):
        load_config(overrides={"actors": 2, "actor_overrides": {1: {"seed": True}}})
    monkeypatch.setenv("CONFIG_SEED", "7")  # text from the environment is still read as a number
    assert load_config().seed == 7
    assert load_config(overrides=parse_assignments(["agent.lr=0.01", "seed=3"])).agent.lr == 0.01


def test_the_largest_values_allowed_still_resolve() -> None:
    from hiverl.config_sections import MAX_CAPACITY, MAX_SEED, MAX_STEPS

    config = load_config(
        overrides={
            "seed": MAX_SEED,
            "total_steps": MAX_STEPS,
            "memory": {"capacity": MAX_CAPACITY, "shards": 1024},
            "learner": {"min_size": MAX_CAPACITY},
            "exploration": {"decay_steps": MAX_STEPS},
        }
    )
    # every role's derived seed, plus an env index, is a 32-bit signed int (ale-py's vector env)
    assert config.role_seed("evaluator") + 256 < 2**31
    assert config_from_dict(config.to_json_dict()) == config


@pytest.mark.parametrize(
    ("env_id", "reason"),
    [
        ("Pendulum-v1", "discrete actions"),
        ("MountainCarContinuous-v0", "discrete actions"),
        ("CarRacing-v3", "CarRacing-v3"),  # continuous actions, or Box2D missing: never playable here
        ("phys2d/CartPole-v1", "JAX environment"),
        ("tabular/Blackjack-v0", "JAX environment"),
        ("Taxi-v4", "observations Discrete(500)"),
        ("Blackjack-v1", "observations Tuple"),
    ],
)
def test_env_ids_the_hive_cannot_play_are_refused(env_id: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(overrides={"env_id": env_id})
    message = str(info.value)
    assert "env_id:" in message and reason in message, message


def test_playable_env_ids_are_accepted_and_inspected_once() -> None:
    from hiverl.env_ids import unplayable

    unplayable.cache_clear()
    for env_id in ("CartPole-v1", "Acrobot-v1", "MountainCar-v0", "ALE/Pong-v5"):
        assert load_config(overrides={"env_id": env_id}).env_id == env_id
    load_config(overrides={"env_id": "Acrobot-v1"})
    info = unplayable.cache_info()
    assert info.misses == 3 and info.hits >= 1  # made once per id; Atari ids are never made


def test_the_cli_refuses_an_unplayable_env_id_before_starting_anything(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from hiverl.cli import app

    result = CliRunner().invoke(
        app, ["train", "--set", "env_id=Pendulum-v1", "--set", f"run_dir={tmp_path / 'runs'}"]
    )
    assert result.exit_code != 0
    assert "env_id" in result.output and "discrete actions" in result.output, result.output
    assert not (tmp_path / "runs").exists()
