"""The one typed settings model of a training session.

Resolution order, lowest to highest priority:

1. the defaults below (tuned for CartPole-v1),
2. a config file (TOML or YAML, chosen by extension),
3. environment variables with the ``CONFIG_`` prefix; nested fields use ``__``
   (``CONFIG_ACTORS=8``, ``CONFIG_AGENT__LR=0.001``, ``CONFIG_EXPLORATION__SCHEDULE=linear``),
4. CLI flags (``hiverl train --actors 8 --set agent.lr=0.001``).

How an actor plays can differ per actor through ``actor_overrides``, a table keyed by actor index
whose values are partial ``actor``/``exploration``/``seed`` settings, e.g. in TOML::

    [actor_overrides.2.actor]
    random_action_rate = 0.1

:meth:`SessionConfig.for_actor` returns the validated settings a given actor runs with. The
sections (``agent``, ``learner``, ``actor``, ``exploration``, ``evaluator``, ``memory``) are
defined in :mod:`hiverl.config_sections`.
Invalid input raises :class:`ConfigError`, whose message names each bad field, the value given and
what is allowed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)

from hiverl.config_sections import (
    MAX_INTERVAL_S,
    MAX_SEED,
    MAX_STEPS,
    ActorSettings,
    AgentSettings,
    EvaluatorSettings,
    ExplorationSettings,
    LearnerSettings,
    MemorySettings,
    refuse_booleans,
)
from hiverl.env_ids import ENV_ID_MAX_CHARS, check_env_id
from hiverl.session import SESSION_ID_PATTERN, is_session_id

ENV_PREFIX = "CONFIG_"
#: Most characters of a given value an error message quotes.
QUOTE_CHARS = 200


def quoted(value: Any, limit: int = QUOTE_CHARS) -> str:
    """``repr(value)``, cut to about ``limit`` characters (an error message never echoes a huge input)."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value)} characters)"
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


class ConfigError(ValueError):
    """Invalid session settings; the message lists every bad field, its value and what is allowed."""


#: Sections an actor override may set (the rest are the learner's or hive-wide).
ACTOR_OVERRIDABLE = frozenset({"actor", "exploration", "seed"})


class SessionConfig(BaseSettings):
    """Everything a training session needs; see the module docstring for precedence."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_assignment=True,
        validate_default=True,
        coerce_numbers_to_str=True,
        allow_inf_nan=False,
    )

    env_id: str = Field(
        default="CartPole-v1",
        min_length=1,
        description=(
            "Registered gymnasium id the hive can play: discrete actions and flat float observations"
            f" (ALE/... for Atari); at most {ENV_ID_MAX_CHARS} characters."
        ),
    )
    actors: int = Field(
        default=1,
        ge=0,
        le=256,
        description="Actor processes feeding the one learner; 0 = solo: one process acts and learns.",
    )
    total_steps: int = Field(
        default=100_000, ge=1, le=MAX_STEPS, description="Env steps of the whole hive (all actors together)."
    )
    seed: int = Field(
        default=0, ge=0, le=MAX_SEED, description="Base seed; each role derives its own from it."
    )
    device: str = Field(default="auto", description="auto (CUDA when present), cpu, cuda, cuda:N.")
    actor_device: str = Field(
        default="cpu", description="Device the actors play on (auto, cpu, cuda, cuda:N)."
    )
    torch_threads: int = Field(
        default=1,
        ge=1,
        le=256,
        description="Threads of each hive process (torch intra- and inter-op, OpenMP, BLAS, OpenCV).",
    )
    stats_interval_s: float = Field(
        default=1.0, gt=0.0, le=MAX_INTERVAL_S, description="Seconds between train_stats events."
    )
    max_restarts: int = Field(
        default=3, ge=0, le=1000, description="Restarts of a crashed process before giving up."
    )
    session_id: str | None = Field(default=None, pattern=SESSION_ID_PATTERN, description="Default: new id.")
    model_dir: Path = Field(default=Path("var/models"), description="Model store: <model_dir>/<session>/.")
    run_dir: Path = Field(default=Path("var/runs"), description="Run folder: <run_dir>/<session>/.")
    agent: AgentSettings = Field(default_factory=AgentSettings)
    learner: LearnerSettings = Field(default_factory=LearnerSettings)
    actor: ActorSettings = Field(default_factory=ActorSettings)
    exploration: ExplorationSettings = Field(default_factory=ExplorationSettings)
    evaluator: EvaluatorSettings = Field(default_factory=EvaluatorSettings)
    memory: MemorySettings = Field(default_factory=MemorySettings)
    actor_overrides: dict[int, dict[str, Any]] = Field(
        default_factory=dict,
        description="Actor index -> partial settings (actor, exploration, seed) for that actor only.",
    )

    @field_validator("*", mode="before")
    @classmethod
    def _no_booleans(cls, value: Any, info: ValidationInfo) -> Any:
        return refuse_booleans(cls, value, info)

    @field_validator("env_id")
    @classmethod
    def _registered_env_id(cls, value: str) -> str:
        return check_env_id(value)

    @field_validator("session_id")
    @classmethod
    def _not_a_parent_folder(cls, value: str | None) -> str | None:
        if value is not None and not is_session_id(value):
            raise ValueError("must not be only dots (it names the run folder)")
        return value

    @field_validator("device", "actor_device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if value in ("auto", "cpu", "cuda", "mps") or (value.startswith("cuda:") and value[5:].isdigit()):
            return value
        raise ValueError("must be one of auto, cpu, cuda, cuda:N, mps")

    @model_validator(mode="after")
    def _check_memory(self) -> SessionConfig:
        capacity, shards = self.memory.capacity, self.memory.shards
        if capacity < 2 * shards or capacity % shards:
            raise ValueError(
                f"memory.capacity: {capacity} must be a multiple of memory.shards={shards} and at least"
                f" {2 * shards} (two transitions per shard)"
            )
        if self.learner.min_size > self.memory.capacity:
            raise ValueError(
                f"learner.min_size: {self.learner.min_size} is above memory.capacity={self.memory.capacity}"
                " (the memory would never hold enough transitions to start learning)"
            )
        return self

    @model_validator(mode="after")
    def _check_actors(self) -> SessionConfig:
        for index, override in self.actor_overrides.items():
            if not 0 <= index < max(self.actors, 1):
                last = max(self.actors, 1) - 1
                raise ValueError(f"actor_overrides has index {index}, allowed actor indices are 0..{last}")
            bad = set(override) - ACTOR_OVERRIDABLE
            if bad:
                given = ", ".join(f"{name}={quoted(override[name], 80)}" for name in sorted(bad))
                allowed = ", ".join(sorted(ACTOR_OVERRIDABLE))
                raise ValueError(f"actor_overrides.{index} may not set {given} (allowed: {allowed})")
            self._merged(override, label=f"actor_overrides.{index}.")  # fail at start-up, not later
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        if not _READ_SOURCES.get():
            return (init_settings,)
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        path = _CONFIG_FILE.get()
        if path is not None:
            if path.suffix.lower() == ".toml":
                sources.append(TomlConfigSettingsSource(settings_cls, toml_file=path))
            else:
                sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
        return tuple(sources)

    # -- per-actor view --------------------------------------------------------------------------

    def _merged(self, override: Mapping[str, Any], label: str = "") -> SessionConfig:
        data = self.model_dump(mode="python")
        deep_update(data, dict(override))
        data["actor_overrides"] = {}
        try:
            return _validate_resolved(data)
        except ValidationError as error:
            raise ValueError("; ".join(_error_lines(error, prefix=label))) from None

    def for_actor(self, index: int) -> SessionConfig:
        """The settings actor ``index`` runs with: these settings with its overrides applied."""
        if not 0 <= index < max(self.actors, 1):
            raise ConfigError(f"actor index {index} out of range 0..{max(self.actors, 1) - 1}")
        return self._merged(self.actor_overrides.get(index, {}), label=f"actor_overrides.{index}.")

    def role_seed(self, role: str, index: int = 0) -> int:
        """The seed of a role process, the one place it is derived: the learner plays ``seed``,
        actor ``index`` its own ``seed`` (override applied) + 1000·(index + 1), the evaluator
        ``seed`` + 777,777 (far from any actor's)."""
        if role == "actor":
            return self.for_actor(index).seed + 1000 * (index + 1)
        if role == "evaluator":
            return self.seed + 777_777
        return self.seed

    def role_seeds(self) -> dict[str, Any]:
        """Every role's seed (recorded in ``session.json``)."""
        return {
            "learner": self.role_seed("learner"),
            "actors": [self.role_seed("actor", i) for i in range(self.actors)],
            "evaluator": self.role_seed("evaluator"),
        }

    # -- output ----------------------------------------------------------------------------------

    def to_json_dict(self) -> dict[str, Any]:
        """The resolved settings as plain JSON types (stored in session.json and checkpoints)."""
        data: dict[str, Any] = json.loads(self.model_dump_json())
        data["actor_overrides"] = {str(k): v for k, v in self.actor_overrides.items()}
        return data

    def to_yaml(self) -> str:
        """The resolved settings as YAML, for printing."""
        return yaml.safe_dump(self.to_json_dict(), sort_keys=False)


_CONFIG_FILE: ContextVar[Path | None] = ContextVar("hiverl_config_file", default=None)
_READ_SOURCES: ContextVar[bool] = ContextVar("hiverl_read_sources", default=True)


def _validate_resolved(data: Mapping[str, Any]) -> SessionConfig:
    """Validate already-resolved settings without reading env vars or files again."""
    token = _READ_SOURCES.set(False)
    try:
        return SessionConfig.model_validate(dict(data))
    finally:
        _READ_SOURCES.reset(token)


def deep_update(target: dict[str, Any], update: Mapping[str, Any]) -> None:
    """Merge ``update`` into ``target`` in place, recursing into nested sections."""
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(target.get(key), dict):
            deep_update(target[key], value)
        else:
            target[key] = value


def _error_lines(error: ValidationError, prefix: str = "") -> list[str]:
    lines = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"])
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown setting (see `hiverl train --help` or docs/training.md for allowed fields)"
        value = item.get("input")
        shown = "" if isinstance(value, dict) else f" (got {quoted(value)})"
        lines.append(f"{prefix}{field}: {message}{shown}" if field else f"{message}{shown}")
    return lines


def _format_errors(error: ValidationError) -> str:
    return "invalid settings:\n  " + "\n  ".join(_error_lines(error))


def _parse_value(raw: str) -> Any:
    """A YAML scalar or flow list/mapping; anything else (``a:b``, ``x:``) stays the raw string."""
    text = raw.strip()
    if not text:
        return ""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return raw
    if isinstance(value, dict) and not text.startswith("{"):
        return raw
    return value


def parse_assignments(assignments: list[str]) -> dict[str, Any]:
    """Turn ``["agent.lr=0.001", "workers=2"]`` into a nested dict of CLI overrides.

    Values are parsed as YAML scalars/lists (``3`` -> int, ``true`` -> bool, ``[64, 64]`` -> list).
    """
    result: dict[str, Any] = {}
    for assignment in assignments:
        key, sep, raw = assignment.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {assignment!r}: expected KEY=VALUE, e.g. agent.lr=0.001")
        node = result
        parts = key.strip().split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {assignment!r}: {part} is both a value and a section")
        node[parts[-1]] = _parse_value(raw)
    return result


def load_config(
    config_file: str | Path | None = None, overrides: Mapping[str, Any] | None = None
) -> SessionConfig:
    """Resolve the session settings: defaults < ``config_file`` < ``CONFIG_*`` env vars < ``overrides``.

    Args:
        config_file: a ``.toml``, ``.yaml`` or ``.yml`` file, or None.
        overrides: CLI-level settings (nested dict; None values are ignored).

    Raises:
        ConfigError: a missing/unreadable file or any invalid field.
    """
    path = Path(config_file) if config_file is not None else None
    if path is not None:
        if path.suffix.lower() not in (".toml", ".yaml", ".yml"):
            raise ConfigError(f"config file {str(path)!r}: extension must be .toml, .yaml or .yml")
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} does not exist")
    init = {k: v for k, v in (overrides or {}).items() if v is not None}
    token = _CONFIG_FILE.set(path)
    try:
        return SessionConfig(**init)
    except ValidationError as error:
        raise ConfigError(_format_errors(error)) from None
    except (ValueError, OSError) as error:  # malformed TOML/YAML, undecodable env values
        raise ConfigError(f"cannot read settings: {error}") from None
    finally:
        _CONFIG_FILE.reset(token)


def config_from_dict(data: Mapping[str, Any]) -> SessionConfig:
    """Rebuild stored (already resolved) settings, ignoring env vars and files (used by resume)."""
    try:
        return _validate_resolved(data)
    except ValidationError as error:
        raise ConfigError(_format_errors(error)) from None
