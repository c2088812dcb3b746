"""A session document from a run folder: archive a session trained without the archive.

``hiverl train`` always writes ``<run_dir>/<session>/session.json`` (id, status, resolved config,
git commit, package versions, per-role status) and ``events.jsonl`` (the actors' ``episode`` and
``train_stats`` events, the learner's ``train_stats`` and the evaluator's ``eval`` events).
:func:`document_from_run` rebuilds the full archive document from them: totals (the actors' env
steps and episodes, the learner's updates), results, the learning curve (mean return of the hive's
last 20 episodes against hive env steps) and each actor's results.

The best return and "solved" are the evaluator's: the best ``eval_return`` and the first ``eval``
with ``solved`` (its hive env steps are ``steps_to_threshold``). Runs without ``eval`` events
(older runs, or the evaluator disabled) fall back to the episode returns: the best episode and the
first time the last 100 episodes averaged the env's ``reward_threshold``. Older runs' workers
(``workers``, ``workers_status``, ``worker_overrides``) are read as actors.
``hiverl sessions from-run`` uses it, and so does ``scripts/make_sample_archive.sh``.
"""

from __future__ import annotations

import datetime as dt
import json
import socket
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hiverl.archive.document import (
    MAX_CURVE_POINTS,
    SessionDocument,
    downsample_indices,
    validate_document,
)
from hiverl.archive.facts import hive_size, host_info, overrides_of
from hiverl.status import SessionStatus

WINDOW = 100
"""Episodes in the last-100 mean and in the solve test (the gymnasium convention)."""
CURVE_WINDOW = 20
"""Episodes averaged per learning-curve point: short enough to show learning in short sessions."""


def solve_threshold(env_id: str) -> float | None:
    """The env's ``reward_threshold`` from its gymnasium registration (None if unknown)."""
    try:
        import gymnasium

        threshold = gymnasium.spec(env_id).reward_threshold
    except Exception:  # not installed, not registered (a namespace's ROMs missing, ...)
        return None
    return None if threshold is None else float(threshold)


def _time(value: Any) -> dt.datetime | None:
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, dt.UTC)
    if isinstance(value, str):
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    return None


def _read_events(folder: Path) -> list[dict[str, Any]]:
    """The run's events in time order: ``events.jsonl`` (``hiverl train``) and each role's
    ``events-<role>.jsonl`` (one role per process, as in compose); unreadable lines are skipped (a
    crash may cut the last one)."""
    events = []
    for path in sorted(folder.glob("events*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(event, dict) and "event_type" in event:
                events.append(event)
    events.sort(key=lambda e: float(e.get("event_time", 0.0)))
    return events


def _results(returns: list[float], threshold: float | None) -> dict[str, Any]:
    if not returns:
        return {"solve_threshold": threshold}
    tail = returns[-WINDOW:]
    return {
        "best_return": max(returns),
        "final_return": returns[-1],
        "last100_mean_return": sum(tail) / len(tail),
        "solve_threshold": threshold,
    }


def _eval_results(
    evals: list[Mapping[str, Any]], solved_steps: int | None, threshold: float | None
) -> dict[str, Any]:
    """The evaluator's say on the results (nothing without ``eval`` events): best and solved."""
    if not evals:
        return {}
    solved = [e for e in evals if e.get("solved") is True]
    configured = next(
        (e["solved_return"] for e in reversed(evals) if isinstance(e.get("solved_return"), int | float)), None
    )
    return {
        "best_return": max(float(e["eval_return"]) for e in evals),
        "solved": bool(solved),
        "steps_to_threshold": solved_steps if solved else None,
        "solve_threshold": float(configured) if configured is not None else threshold,
    }


def _run_status(session: Mapping[str, Any]) -> SessionStatus:
    """The run's status in today's words (an older trainer's too); unknown words read as running."""
    try:
        return SessionStatus.parse(str(session.get("status", "running")))
    except ValueError:
        return SessionStatus.RUNNING


@dataclass
class _Replay:
    """What replaying a run's events in time order gives (the hive's env steps and rolling means)."""

    worker_steps: dict[int, int] = field(default_factory=dict)
    worker_returns: dict[int, list[float]] = field(default_factory=dict)
    returns: list[float] = field(default_factory=list)
    curve_steps: list[int] = field(default_factory=list)
    curve_means: list[float] = field(default_factory=list)
    curve_wall: list[float] = field(default_factory=list)
    steps_to_threshold: int | None = None
    latest_stats: dict[int, Mapping[str, Any]] = field(default_factory=dict)
    learner_updates: int | None = None
    evals: list[Mapping[str, Any]] = field(default_factory=list)
    eval_solved_steps: int | None = None
    hosts: set[str] = field(default_factory=set)

    @property
    def hive_steps(self) -> int:
        return sum(self.worker_steps.values())


def _replay(events: list[dict[str, Any]], started: dt.datetime, threshold: float | None) -> _Replay:
    replay = _Replay()
    window: deque[float] = deque(maxlen=WINDOW)
    recent: deque[float] = deque(maxlen=CURVE_WINDOW)
    for event in events:
        if event.get("host"):
            replay.hosts.add(str(event["host"]))
        role = event.get("role")
        if role == "learner":
            if event["event_type"] == "train_stats" and isinstance(event.get("updates"), int):
                replay.learner_updates = max(replay.learner_updates or 0, int(event["updates"]))
            continue
        if role == "evaluator" or event["event_type"] == "eval":
            if event["event_type"] == "eval" and isinstance(event.get("eval_return"), int | float):
                replay.evals.append(event)
                if event.get("solved") is True and replay.eval_solved_steps is None:
                    replay.eval_solved_steps = replay.hive_steps
            continue
        index = int(event.get("worker_index", 0))  # an actor (a worker of older runs)
        replay.worker_steps[index] = max(replay.worker_steps.get(index, 0), int(event.get("env_steps") or 0))
        if event["event_type"] == "train_stats":
            replay.latest_stats[index] = event
        if event["event_type"] != "episode" or event.get("episode_return") is None:
            continue
        value = float(event["episode_return"])
        replay.returns.append(value)
        replay.worker_returns.setdefault(index, []).append(value)
        window.append(value)
        recent.append(value)
        replay.curve_steps.append(replay.hive_steps)
        replay.curve_means.append(sum(recent) / len(recent))
        replay.curve_wall.append(max(0.0, float(event["event_time"]) - started.timestamp()))
        solved = threshold is not None and len(window) == WINDOW and sum(window) / len(window) >= threshold
        if replay.steps_to_threshold is None and solved:
            replay.steps_to_threshold = replay.hive_steps
    return replay


def _worker_results(
    session: Mapping[str, Any], replay: _Replay, threshold: float | None
) -> tuple[list[dict[str, Any]], int | None]:
    """Each actor's results (the trainer's final per-role status wins) and the learner's updates."""
    learner_updates = replay.learner_updates
    roles = session.get("roles_status")
    if roles is None:  # an older run: every row is a worker
        rows = list(session.get("workers_status") or [])
    else:
        rows = [r for r in roles if r.get("role") == "actor"]
        for r in roles:
            if r.get("role") == "learner" and isinstance(r.get("updates"), int):
                learner_updates = max(learner_updates or 0, int(r["updates"]))
    if isinstance(session.get("updates"), int) and (roles is not None or learner_updates is not None):
        learner_updates = max(learner_updates or 0, int(session["updates"]))
    statuses = {int(w.get("index", i)): w for i, w in enumerate(rows)}
    indices = sorted(set(replay.worker_steps) | set(statuses) | set(replay.latest_stats))
    results: list[dict[str, Any]] = []
    for index in indices:
        status = statuses.get(index, {})
        stats = replay.latest_stats.get(index, {})
        results.append(
            {
                "worker_index": index,
                "status": str(status.get("state", "")),
                "restarts": int(status.get("restarts") or 0),
                "totals": {
                    "env_steps": int(status.get("env_steps") or replay.worker_steps.get(index, 0)),
                    "episodes": int(status.get("episodes") or len(replay.worker_returns.get(index, []))),
                    "updates": int(status.get("updates") or stats.get("updates") or 0),
                },
                "results": _results(replay.worker_returns.get(index, []), threshold),
            }
        )
    return results, learner_updates


def _checkpoints(session: Mapping[str, Any], env_steps: int) -> list[dict[str, Any]]:
    model_folder = session.get("model_folder")
    if not model_folder or not Path(model_folder).exists():
        return []
    learner = Path(model_folder) / "learner.pt"  # the hive's one network (older runs: the folder)
    path = learner if learner.is_file() else Path(model_folder)
    return [{"path": str(path), "kind": "final", "env_steps": env_steps}]


def document_from_run(folder: str | Path, *, tags: Iterable[str] = (), name: str = "") -> SessionDocument:
    """The archive document of the run in ``folder`` (validated).

    Args:
        folder: ``<run_dir>/<session_id>`` with ``session.json`` and ``events.jsonl``.
        tags: labels to attach.
        name: human-readable name (default: the session id).
    Raises:
        FileNotFoundError: no ``session.json`` in ``folder``.
        ArchiveValidationError: the rebuilt document is invalid.
    """
    folder = Path(folder)
    session: Mapping[str, Any] = json.loads((folder / "session.json").read_text(encoding="utf-8"))
    config: dict[str, Any] = dict(session.get("config") or {})
    env_id = str(session.get("env_id") or config.get("env_id") or "")
    threshold = solve_threshold(env_id)
    events = _read_events(folder)

    # Step 1: replay the events in time order, tracking the hive's env steps and rolling mean.
    first_time = float(events[0]["event_time"]) if events else 0.0
    started = _time(session.get("started_at")) or _time(first_time) or dt.datetime.now(dt.UTC)
    replay = _replay(events, started, threshold)
    keep = downsample_indices(len(replay.curve_steps), MAX_CURVE_POINTS)

    # Step 2: totals and per-actor results.
    worker_results, learner_updates = _worker_results(session, replay, threshold)
    totals = {
        "env_steps": sum(w["totals"]["env_steps"] for w in worker_results),
        "episodes": sum(w["totals"]["episodes"] for w in worker_results) or len(replay.returns),
        "updates": sum(w["totals"]["updates"] for w in worker_results) + (learner_updates or 0),
    }

    # Step 3: status and times.
    status = _run_status(session)
    updated = _time(session.get("updated_at")) or started
    last_event = _time(float(events[-1]["event_time"])) if events else None
    ended = max(t for t in (updated, last_event, started) if t is not None) if status.terminal else None
    wall = session.get("wall_s")
    wall_s = float(wall) if isinstance(wall, int | float) else ((ended or updated) - started).total_seconds()
    results = {
        **_results(replay.returns, threshold),
        "steps_to_threshold": replay.steps_to_threshold,
        **_eval_results(replay.evals, replay.eval_solved_steps, threshold),
        "wall_clock_s": wall_s,
        "env_steps_per_s": totals["env_steps"] / wall_s if wall_s > 0 else None,
    }

    # Step 4: where it ran and with what.
    hostname = next(iter(sorted(replay.hosts)), "")
    host = host_info() if hostname in ("", socket.gethostname()) else {"hostname": hostname}
    commit = session.get("git_commit")
    versions = {k: str(v) for k, v in (session.get("versions") or {}).items() if v and k != "python"}
    message = ""
    if status in (SessionStatus.STOPPED, SessionStatus.CRASHED):
        message = f"run ended with status {session.get('status')!r}"
    return validate_document(
        {
            "session_id": session["session_id"],
            "name": name or str(session["session_id"]),
            "tags": list(tags),
            "status": status,
            "started_at": started,
            "ended_at": ended,
            "heartbeat_at": ended or updated,
            "updated_at": updated,
            "update_seq": 1,  # above a bare start, below any live recorder's later versions
            "env_id": env_id,
            "num_workers": max(hive_size(session, hive_size(config, len(worker_results))), 1),
            "host": host,
            "packages": versions,
            "git_commit": commit if isinstance(commit, str) and commit else None,
            "config": config,
            "worker_overrides": overrides_of(config),
            "totals": totals,
            "results": results,
            "learning_curve": {
                "env_steps": [replay.curve_steps[i] for i in keep],
                "mean_return": [replay.curve_means[i] for i in keep],
                "wall_clock_s": [replay.curve_wall[i] for i in keep],
                "window_episodes": CURVE_WINDOW,
            },
            "checkpoints": _checkpoints(session, totals["env_steps"]),
            "worker_results": worker_results,
            "message": message,
        }
    )
