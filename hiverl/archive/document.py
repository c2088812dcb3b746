"""The session document: its typed model, its validation, and its stored and JSON forms.

One document per training session lives in the ``sessions`` collection. FerretDB v1 (the local
MongoDB wire-protocol server) does not enforce ``$jsonSchema``, so every document is validated
here, in the application, before it is written or imported: :func:`validate_document` turns a
plain mapping into a :class:`SessionDocument` or raises :class:`ArchiveValidationError`, whose
message names every bad field, the value given and what is allowed. Secrets are scrubbed and
keys and values the servers reject are encoded reversibly by :mod:`hiverl.archive.encoding`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hiverl.archive.encoding import ArchiveValidationError, decode, encode, iso_dates, scrub_secrets
from hiverl.session import SESSION_ID_PATTERN
from hiverl.status import SessionStatus

#: Version of the document layout; bump on any incompatible change (and migrate on read).
SCHEMA_VERSION: Final = 1
#: Most learning-curve points kept per session; longer curves are downsampled evenly.
MAX_CURVE_POINTS = 500


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _aware(value: dt.datetime) -> dt.datetime:
    """Naive datetimes are taken as UTC (what MongoDB stores); all are returned in UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC)


class HostInfo(_Strict):
    """Where the session's main process ran."""

    hostname: str = Field(default="", description="socket.gethostname() of the main process.")
    platform: str = Field(default="", description="OS and kernel, e.g. 'Linux-6.1-x86_64'.")
    python: str = Field(default="", description="Python version, e.g. '3.11.9'.")
    cpu: str = Field(default="", description="CPU model name.")
    cpu_count: int | None = Field(default=None, ge=1, description="Logical CPUs.")
    memory_gib: float | None = Field(default=None, ge=0, description="Physical memory in GiB.")
    gpus: list[str] = Field(default_factory=list, description="CUDA device names (empty: no GPU).")


class Totals(_Strict):
    """Counters summed over the whole hive."""

    env_steps: int = Field(default=0, ge=0, description="Environment steps of all workers together.")
    episodes: int = Field(default=0, ge=0, description="Finished episodes of all workers together.")
    updates: int = Field(
        default=0,
        ge=0,
        description="Learning steps (gradient updates) of the learner (older runs: of all workers together).",
    )


class Results(_Strict):
    """What the session achieved. Returns are undiscounted episode returns."""

    best_return: float | None = Field(
        default=None,
        description="Best evaluation return (the evaluator's mean greedy return); without "
        "evaluations (older runs), the best single-episode return.",
    )
    final_return: float | None = Field(default=None, description="Return of the last finished episode.")
    last100_mean_return: float | None = Field(
        default=None, description="Mean return of the last 100 episodes."
    )
    solve_threshold: float | None = Field(default=None, description="Return the env counts as solved.")
    steps_to_threshold: int | None = Field(
        default=None,
        ge=0,
        description="Hive env steps until the evaluator confirmed solve_threshold (without "
        "evaluations: until last100_mean_return first reached it).",
    )
    solved: bool | None = Field(
        default=None,
        description="Whether the evaluator confirmed the solved return (None: no evaluations).",
    )
    wall_clock_s: float | None = Field(
        default=None, ge=0, description="Seconds from start to end (or last heartbeat)."
    )
    env_steps_per_s: float | None = Field(
        default=None, ge=0, description="Hive env steps per wall-clock second."
    )


class WorkerResult(_Strict):
    """One actor's share of the session (a worker of older runs)."""

    worker_index: int = Field(ge=0, description="0-based actor index in the hive.")
    worker_id: str = Field(default="", description="Stable worker identifier (host-pid or container name).")
    status: str = Field(
        default="", description="Worker state at the last update (running, finished, crashed...)."
    )
    restarts: int = Field(default=0, ge=0, description="Times the worker was restarted after a crash.")
    totals: Totals = Field(default_factory=Totals)
    results: Results = Field(default_factory=Results)


class CheckpointRef(_Strict):
    """Where a saved model is (a path or URL), not the model itself."""

    path: str = Field(min_length=1, description="File path or URL of the checkpoint.")
    kind: str = Field(default="periodic", description="periodic, best or final.")
    worker_index: int | None = Field(
        default=None, ge=0, description="Worker that wrote it (None: hive-wide)."
    )
    env_steps: int | None = Field(default=None, ge=0, description="Hive env steps when it was written.")
    created_at: dt.datetime | None = Field(default=None, description="UTC time it was written.")

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: dt.datetime | None) -> dt.datetime | None:
        return None if value is None else _aware(value)


class LearningCurve(_Strict):
    """Mean return against hive env steps, at most :data:`MAX_CURVE_POINTS` points (parallel lists)."""

    window_episodes: int = Field(default=100, ge=1, description="Episodes averaged in each mean_return.")

    env_steps: list[int] = Field(default_factory=list, description="Hive env steps at each point.")
    mean_return: list[float] = Field(default_factory=list, description="Mean recent return at each point.")
    wall_clock_s: list[float] = Field(
        default_factory=list, description="Seconds since start at each point (empty or same length)."
    )

    @model_validator(mode="after")
    def _aligned_and_bounded(self) -> LearningCurve:
        n = len(self.env_steps)
        if len(self.mean_return) != n or len(self.wall_clock_s) not in (0, n):
            raise ValueError(
                f"env_steps, mean_return (and wall_clock_s if given) must have equal lengths, got "
                f"{n}, {len(self.mean_return)}, {len(self.wall_clock_s)}"
            )
        if any(b < a for a, b in zip(self.env_steps, self.env_steps[1:], strict=False)):
            raise ValueError("env_steps must be non-decreasing")
        if n > MAX_CURVE_POINTS:
            keep = downsample_indices(n, MAX_CURVE_POINTS)
            self.env_steps = [self.env_steps[i] for i in keep]
            self.mean_return = [self.mean_return[i] for i in keep]
            if self.wall_clock_s:
                self.wall_clock_s = [self.wall_clock_s[i] for i in keep]
        return self


class SessionDocument(_Strict):
    """One training session in the archive (see ``docs/archive.md`` for every field)."""

    schema_version: Literal[1] = Field(default=SCHEMA_VERSION, description="Layout version of this document.")
    session_id: str = Field(pattern=SESSION_ID_PATTERN, description="Unique id (also the _id).")
    name: str = Field(default="", max_length=200, description="Human-readable name.")
    tags: list[str] = Field(default_factory=list, max_length=32, description="Free labels for filtering.")
    status: SessionStatus = Field(
        default=SessionStatus.RUNNING, description="running, finished, stopped or crashed."
    )
    started_at: dt.datetime = Field(description="UTC start time.")
    ended_at: dt.datetime | None = Field(default=None, description="UTC end time (None while running).")
    heartbeat_at: dt.datetime = Field(description="UTC time of the last sign of life.")
    updated_at: dt.datetime = Field(description="UTC time this version was written by the recorder.")
    update_seq: int = Field(default=0, ge=0, description="Version counter; a higher one always wins.")
    env_id: str = Field(min_length=1, description="gymnasium environment id.")
    num_workers: int = Field(
        default=1,
        ge=1,
        description="Actor processes in the hive (1 for a solo hive: one process acts and learns).",
    )
    host: HostInfo = Field(default_factory=HostInfo)
    packages: dict[str, str] = Field(default_factory=dict, description="Distribution name -> version.")
    git_commit: str | None = Field(
        default=None, pattern=r"^[0-9a-f]{7,40}(-dirty)?$", description="HEAD of hiverl."
    )
    config: dict[str, Any] = Field(default_factory=dict, description="Full resolved session config.")
    worker_overrides: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="Actor index (as text) -> settings that differ for that actor."
    )
    totals: Totals = Field(default_factory=Totals)
    results: Results = Field(default_factory=Results)
    learning_curve: LearningCurve = Field(default_factory=LearningCurve)
    checkpoints: list[CheckpointRef] = Field(default_factory=list, max_length=1000)
    memory_stats: dict[str, Any] = Field(
        default_factory=dict, description="Final replay memory statistics (size, priorities, ...)."
    )
    worker_results: list[WorkerResult] = Field(default_factory=list, description="One entry per worker.")
    message: str = Field(
        default="", max_length=10_000, description="Why it stopped or crashed (empty otherwise)."
    )

    @field_validator("status", mode="before")
    @classmethod
    def _status_of_any_age(cls, value: Any) -> Any:
        """Older documents' and run folders' words (``completed``, ``failed``...) read as today's."""
        return SessionStatus.parse(value) if isinstance(value, str) else value

    @field_validator("started_at", "heartbeat_at", "updated_at")
    @classmethod
    def _utc(cls, value: dt.datetime) -> dt.datetime:
        return _aware(value)

    @field_validator("ended_at")
    @classmethod
    def _utc_or_none(cls, value: dt.datetime | None) -> dt.datetime | None:
        return None if value is None else _aware(value)

    @field_validator("tags")
    @classmethod
    def _tag_text(cls, value: list[str]) -> list[str]:
        for tag in value:
            if not 1 <= len(tag) <= 64:
                raise ValueError(f"tag {tag!r} must have 1 to 64 characters")
        return sorted(set(value))

    @field_validator("worker_overrides", mode="before")
    @classmethod
    def _index_keys_as_text(cls, value: Any) -> Any:
        if isinstance(value, Mapping):
            return {str(k): v for k, v in value.items()}
        return value

    @field_validator("worker_overrides")
    @classmethod
    def _index_keys(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for key in value:
            if not key.isdigit():
                raise ValueError(f"key {key!r} must be a worker index (0, 1, ...)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SessionDocument:
        if self.status == "running" and self.ended_at is not None:
            raise ValueError(f"status 'running' cannot have ended_at={self.ended_at.isoformat()}")
        if self.ended_at is not None and self.ended_at < self.started_at:
            raise ValueError(
                f"ended_at={self.ended_at.isoformat()} is before started_at={self.started_at.isoformat()}"
            )
        return self


# -- validation ----------------------------------------------------------------------------------


def _describe(error: Mapping[str, Any]) -> str:
    where = ".".join(str(part) for part in error.get("loc", ())) or "<document>"
    text = f"field '{where}': {error['msg']}"
    if error.get("type") != "missing":
        shown = repr(error.get("input"))
        text += f" (got {shown[:120] + '...' if len(shown) > 120 else shown})"
    return text


def validate_document(raw: Mapping[str, Any]) -> SessionDocument:
    """Check ``raw`` (decoded, not the stored encoding) and return the typed document.

    Secrets are scrubbed first (:func:`scrub_secrets`). Raises :class:`ArchiveValidationError`
    naming every bad field with its value and what is allowed.
    """
    if not isinstance(raw, Mapping):
        raise ArchiveValidationError(f"a session document must be a mapping, got {type(raw).__name__}")
    data = scrub_secrets({k: v for k, v in raw.items() if k != "_id"})
    try:
        return SessionDocument.model_validate(data)
    except ValidationError as exc:
        errors = [_describe(e) for e in exc.errors()]
        session = data.get("session_id", "?")
        raise ArchiveValidationError(
            f"invalid session document {session!r}: " + "; ".join(errors), errors
        ) from None


def to_stored(document: SessionDocument) -> dict[str, Any]:
    """The BSON-ready form: encoded, with ``_id`` = ``session_id``."""
    stored = encode(document.model_dump(mode="python"))
    return {"_id": document.session_id, **stored}


def from_stored(stored: Mapping[str, Any]) -> SessionDocument:
    """A document read from the server (or a JSON line) back to the typed model (validated)."""
    return validate_document(decode({k: v for k, v in stored.items() if k != "_id"}))


def to_json_ready(document: SessionDocument) -> dict[str, Any]:
    """Encoded form with datetimes as ISO-8601 text: strict JSON (used by export and the spool)."""
    return iso_dates(encode(document.model_dump(mode="python")))


# -- learning curves --------------------------------------------------------------------------------


def downsample_indices(length: int, max_points: int) -> list[int]:
    """At most ``max_points`` evenly spaced indices into ``range(length)``, first and last kept."""
    if max_points < 2:
        raise ValueError(f"max_points={max_points} must be at least 2")
    if length <= max_points:
        return list(range(length))
    step = (length - 1) / (max_points - 1)
    return sorted({round(i * step) for i in range(max_points)})


def deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``update`` applied: mappings merge recursively, anything else replaces."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged
