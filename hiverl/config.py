"""The one typed settings model of a training session.

Resolution order, lowest to highest priority:

1. the defaults below (tuned for CartPole-v1),
2. a config file (TOML or YAML, chosen by extension),
3. environment variables with the ``CONFIG_`` prefix; nested fields use ``__``
   (``CONFIG_WORKERS=8``, ``CONFIG_AGENT__LR=0.001``, ``CONFIG_EXPLORATION__SCHEDULE=ladder``),
4. CLI flags (``hiverl train --workers 8 --set agent.lr=0.001``).

Any hyperparameter can differ per worker through ``worker_overrides``, a table keyed by worker index
whose values are partial settings, e.g. in TOML::

    [worker_overrides.2.agent]
    lr = 0.0005

:meth:`SessionConfig.for_worker` returns the validated settings a given worker runs with.
Invalid input raises :class:`ConfigError`, whose message names each bad field, the value given and
what is allowed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
    YamlConfigSettingsSource,
)

ENV_PREFIX = "CONFIG_"


class ConfigError(ValueError):
    """Invalid session settings; the message lists every bad field, its value and what is allowed."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, coerce_numbers_to_str=True)


class AgentSettings(_Section):
    """Double DQN hyperparameters (one set per worker; see ``worker_overrides``)."""

    gamma: float = Field(default=0.99, gt=0.0, le=1.0, description="Discount factor per env step.")
    n_step: int = Field(default=3, ge=1, le=20, description="Steps aggregated into one stored transition.")
    lr: float = Field(default=5e-4, gt=0.0, le=1.0, description="Adam learning rate.")
    adam_eps: float = Field(default=1e-5, gt=0.0, description="Adam epsilon.")
    batch_size: int = Field(default=64, ge=1, le=4096, description="Transitions per learning step.")
    learning_starts: int = Field(
        default=1_000, ge=0, description="Transitions in the memory before this worker starts learning."
    )
    train_interval: int = Field(
        default=128,
        ge=1,
        description="Steps between learning phases, on the session's `pace` clock (each env counts).",
    )
    updates_per_train: int = Field(default=64, ge=1, le=256, description="Learning steps per learning phase.")
    target_update_interval: int = Field(
        default=64, ge=1, description="Learning steps between hard target-network copies (when tau == 1)."
    )
    tau: float = Field(
        default=1.0, gt=0.0, le=1.0, description="1 = hard copy every interval; <1 = Polyak each step."
    )
    max_grad_norm: float = Field(default=10.0, gt=0.0, description="Global gradient-norm clip.")
    huber_delta: float = Field(default=1.0, gt=0.0, description="Huber loss threshold.")
    hidden_sizes: tuple[int, ...] = Field(
        default=(256, 256), description="MLP layer widths (vector observations)."
    )
    dueling: bool = Field(default=True, description="Dueling value/advantage head.")
    double: bool = Field(default=True, description="Double DQN target (online argmax, target value).")
    priority_eps: float = Field(default=1e-3, gt=0.0, description="Added to |TD| when writing priorities.")
    beta_start: float = Field(
        default=0.4, ge=0.0, le=1.0, description="Importance-sampling exponent at start."
    )
    beta_end: float = Field(
        default=1.0, ge=0.0, le=1.0, description="Importance-sampling exponent at the end."
    )
    insert_batch: int = Field(
        default=32, ge=1, description="Transitions buffered before one insert to the memory."
    )
    sample_chunk: int = Field(
        default=16, ge=1, le=64, description="Batches fetched per sampling round trip to the memory."
    )

    @field_validator("hidden_sizes")
    @classmethod
    def _positive_widths(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(width < 1 for width in value):
            raise ValueError("must be a non-empty list of positive layer widths")
        return value


class ExplorationSettings(_Section):
    """ε-greedy exploration: a linear decay, or the Ape-X ladder over worker indices."""

    schedule: Literal["linear", "ladder", "constant"] = Field(
        default="linear",
        description="linear: decay start->end; ladder: eps^(1+alpha*i/(N-1)); constant: start.",
    )
    start: float = Field(
        default=1.0, ge=0.0, le=1.0, description="Initial ε (linear) or the value (constant)."
    )
    end: float = Field(default=0.02, ge=0.0, le=1.0, description="Final ε of the linear decay.")
    decay_steps: int = Field(
        default=8_000, ge=1, description="Steps over which ε decays linearly, on the session's `pace` clock."
    )
    ladder_epsilon: float = Field(default=0.4, gt=0.0, lt=1.0, description="Base ε of the Ape-X ladder.")
    ladder_alpha: float = Field(default=7.0, ge=0.0, description="Exponent spread of the Ape-X ladder.")

    def epsilon(self, index: int, workers: int, env_steps: int) -> float:
        """ε of worker ``index`` of ``workers`` after ``env_steps`` steps of its pace clock."""
        if self.schedule == "constant":
            return self.start
        if self.schedule == "ladder":
            spread = index / (workers - 1) if workers > 1 else 0.0
            return float(self.ladder_epsilon ** (1.0 + self.ladder_alpha * spread))
        fraction = min(1.0, env_steps / self.decay_steps)
        return self.start + fraction * (self.end - self.start)


class MemorySettings(_Section):
    """The shared replay memory every worker writes to and samples from."""

    capacity: int = Field(default=500_000, ge=1, description="Transitions kept (FIFO).")
    alpha: float = Field(default=0.6, ge=0.0, le=1.0, description="Priority exponent (0 = uniform).")
    shards: int = Field(default=1, ge=1, description="Redis hash-tag shards.")
    shared: bool = Field(
        default=True, description="False gives each worker a private memory (baseline runs)."
    )
    key_prefix: str = Field(
        default="", description="Prepended to every Redis key (isolates tests and benchmarks)."
    )


class SessionConfig(BaseSettings):
    """Everything a training session needs; see the module docstring for precedence."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        extra="forbid",
        validate_assignment=True,
        validate_default=True,
        coerce_numbers_to_str=True,
    )

    env_id: str = Field(default="CartPole-v1", min_length=1, description="gymnasium id (discrete actions).")
    workers: int = Field(default=4, ge=1, le=256, description="Worker processes in the hive.")
    envs_per_worker: int = Field(default=1, ge=1, le=256, description="Vectorized environments per worker.")
    total_steps: int = Field(
        default=100_000, ge=1, description="Env steps per worker (all its envs together)."
    )
    seed: int = Field(default=0, ge=0, description="Base seed; worker i uses seed + 1000*i.")
    device: str = Field(default="auto", description="auto (CUDA when present), cpu, cuda, cuda:N.")
    torch_threads: int = Field(default=1, ge=1, description="Torch intra-op threads per worker.")
    pace: Literal["worker", "memory"] = Field(
        default="worker",
        description=(
            "Clock of learning (agent.train_interval) and of ε decay: `worker` counts the worker's own"
            " env steps; `memory` counts every transition written to the memory it learns from, so each"
            " worker of a hive of N learns N times as much per own step, as one learner fed by N actors"
            " would (the same as `worker` for a private memory)."
        ),
    )
    random_action_rate: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description="Probability the env replaces the agent's action by a random one.",
    )
    checkpoint_interval: int = Field(
        default=10_000, ge=1, description="Worker env steps between checkpoints."
    )
    stats_interval_s: float = Field(default=1.0, gt=0.0, description="Seconds between train_stats events.")
    max_restarts: int = Field(default=3, ge=0, description="Restarts of a crashed worker before giving up.")
    session_id: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9_.-]{1,64}$", description="Default: new id."
    )
    model_dir: Path = Field(default=Path("var/models"), description="Model store: <model_dir>/<session>/.")
    run_dir: Path = Field(default=Path("var/runs"), description="Run folder: <run_dir>/<session>/.")
    agent: AgentSettings = Field(default_factory=AgentSettings)
    exploration: ExplorationSettings = Field(default_factory=ExplorationSettings)
    memory: MemorySettings = Field(default_factory=MemorySettings)
    worker_overrides: dict[int, dict[str, Any]] = Field(
        default_factory=dict, description="Worker index -> partial settings applied to that worker only."
    )

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if value in ("auto", "cpu", "cuda", "mps") or (value.startswith("cuda:") and value[5:].isdigit()):
            return value
        raise ValueError("must be one of auto, cpu, cuda, cuda:N, mps")

    @model_validator(mode="after")
    def _check_workers(self) -> SessionConfig:
        for index, override in self.worker_overrides.items():
            if not 0 <= index < self.workers:
                raise ValueError(
                    f"worker_overrides has index {index}, allowed worker indices are 0..{self.workers - 1}"
                )
            forbidden = {"workers", "worker_overrides", "session_id", "model_dir", "run_dir", "memory"}
            bad = forbidden & set(override)
            if bad:
                given = ", ".join(f"{name}={override[name]!r}" for name in sorted(bad))
                raise ValueError(f"worker_overrides.{index} may not set {given} (hive-wide settings)")
            self._merged(override, label=f"worker_overrides.{index}.")  # fail at start-up, not later
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

    # -- per-worker view -------------------------------------------------------------------------

    def _merged(self, override: Mapping[str, Any], label: str = "") -> SessionConfig:
        data = self.model_dump(mode="python")
        deep_update(data, dict(override))
        data["worker_overrides"] = {}
        try:
            return _validate_resolved(data)
        except ValidationError as error:
            raise ValueError("; ".join(_error_lines(error, prefix=label))) from None

    def for_worker(self, index: int) -> SessionConfig:
        """The settings worker ``index`` runs with: these settings with its overrides applied."""
        if not 0 <= index < self.workers:
            raise ConfigError(f"worker index {index} out of range 0..{self.workers - 1}")
        return self._merged(self.worker_overrides.get(index, {}), label=f"worker_overrides.{index}.")

    def epsilon(self, index: int, env_steps: int) -> float:
        """ε of worker ``index`` after ``env_steps`` of its own env steps (its overrides applied)."""
        return self.for_worker(index).exploration.epsilon(index, self.workers, env_steps)

    # -- output ----------------------------------------------------------------------------------

    def to_json_dict(self) -> dict[str, Any]:
        """The resolved settings as plain JSON types (stored in session.json and checkpoints)."""
        data: dict[str, Any] = json.loads(self.model_dump_json())
        data["worker_overrides"] = {str(k): v for k, v in self.worker_overrides.items()}
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
        shown = "" if isinstance(value, dict) else f" (got {value!r})"
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
