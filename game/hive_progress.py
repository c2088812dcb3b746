"""What the trainer knows about its hive, from the role processes' messages, and how it shows it.

:class:`HiveProgress` keeps one :class:`RoleView` per role process (the learner, each actor, the
evaluator), updated from their telemetry events and lifecycle messages (``started``, ``outage``,
``recovered``, ``done``, ``error``); it gives the archive's progress dict, one progress line for logs
and CI, and the live table.

Outages: a role says ``outage`` (service, since when) for each failed call while it waits for a
service, and ``recovered`` when the wait is over. :meth:`HiveProgress.outage_text` sums them up per
service ("Redis unreachable since 12:01:03 (14 s), waiting; 3 roles paused: ..."), in every progress
line and under the live table while it lasts; :meth:`HiveProgress.outage_news` gives one line when a
service goes away and one when every role has it back, for the trainer to print at once.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.table import Table

from game.roles import Role
from hiverl.outages import SERVICE_NAMES
from hiverl.status import RoleState

#: ``train_stats`` fields a role's view mirrors.
_STATS = (
    "env_steps", "updates", "episodes", "env_steps_per_s", "updates_per_s", "last_return",
    "mean_return_100", "epsilon", "loss", "memory_time_share", "weights_version",
)  # fmt: skip


@dataclass
class RoleView:
    """What the trainer knows about one role process (from its messages)."""

    role: Role
    index: int
    state: RoleState = RoleState.STARTING
    pid: int | None = None
    restarts: int = 0
    env_steps: int = 0
    updates: int = 0
    episodes: int = 0
    env_steps_per_s: float = 0.0
    updates_per_s: float = 0.0
    last_return: float | None = None
    mean_return_100: float | None = None
    epsilon: float | None = None
    loss: float | None = None
    memory_time_share: float | None = None
    weights_version: int | None = None
    eval_return: float | None = None
    best_eval_return: float | None = None
    resumed_from: int | None = None
    error: str | None = None
    in_learner: bool = False  # a solo hive's actor: it runs inside the learner's process
    history: list[dict[str, Any]] = field(default_factory=list)  # lifecycle messages, in order
    waiting_for: dict[str, float] = field(default_factory=dict)  # service -> since (Unix time)

    @property
    def name(self) -> str:
        return f"actor {self.index}" if self.role == "actor" else self.role


class HiveProgress:
    """The views of a hive of one learner, ``actors`` actors (0: a solo hive) and maybe an evaluator."""

    def __init__(self, session_id: str, env_id: str, actors: int, evaluator: bool) -> None:
        self.session_id = session_id
        self.env_id = env_id
        self.solo = actors == 0
        keys: list[tuple[Role, int]] = [("learner", 0)]
        keys += [("actor", i) for i in range(actors)]
        if evaluator:
            keys.append(("evaluator", 0))
        self.views: dict[tuple[Role, int], RoleView] = {key: RoleView(*key) for key in keys}
        if self.solo:
            self.views[("actor", 0)] = RoleView("actor", 0, state=RoleState.IN_LEARNER, in_learner=True)
        self.first_step_time: float | None = None  # Unix time of the hive's first env step
        self.solved_time: float | None = None  # Unix time of the evaluator's "solved"
        self._down: dict[str, float] = {}  # services said to be away (outage_news) -> since
        self._back_at: dict[str, float] = {}  # service -> when a role last had it back

    @property
    def learner(self) -> RoleView:
        return self.views[("learner", 0)]

    @property
    def evaluator(self) -> RoleView | None:
        return self.views.get(("evaluator", 0))

    @property
    def actors(self) -> list[RoleView]:
        return [view for view in self.views.values() if view.role == "actor"]

    @property
    def ended(self) -> bool:
        return all(view.state.ended for view in self.views.values())

    @property
    def solved_s(self) -> float | None:
        """Seconds from the hive's first env step to the evaluator's "solved" (None: not solved)."""
        if self.solved_time is None or self.first_step_time is None:
            return None
        return self.solved_time - self.first_step_time

    def learner_stop_reason(self) -> str | None:
        """Why the learner said it was done (``completed``, ``solved``, ``stopped``...), if it did."""
        return next((h.get("status") for h in reversed(self.learner.history) if h["kind"] == "done"), None)

    # -- updates --------------------------------------------------------------------------------

    def on_event(self, event: dict[str, Any]) -> None:
        """A telemetry event of one of the roles."""
        role = event.get("role")
        index = int(event.get("worker_index", 0)) if role == "actor" else 0
        view = next((v for (r, i), v in self.views.items() if r == role and i == index), None)
        kind = event.get("event_type")
        if view is None:
            return
        if kind == "train_stats":
            for name in _STATS:
                if name in event:
                    setattr(view, name, event[name])
            if view.state == RoleState.WAITING_FOR_REDIS:
                view.state = RoleState.RUNNING
        elif kind == "episode":
            if self.first_step_time is None:  # the first episode's start is the hive's first env step
                self.first_step_time = float(event["event_time"]) - float(
                    event.get("episode_duration_s") or 0.0
                )
        elif kind == "eval":
            view.eval_return = event["eval_return"]
            view.weights_version = event.get("weights_version")
            best = view.best_eval_return
            view.best_eval_return = view.eval_return if best is None else max(best, view.eval_return)
            if event.get("solved") and self.solved_time is None:
                self.solved_time = float(event["event_time"])

    def on_lifecycle(self, kind: str, role: Role, index: int, payload: dict[str, Any]) -> None:
        """A lifecycle message of one role process: ``started``, ``outage``, ``done``, ``error``..."""
        view = self.views[(role, index)]
        view.history.append({"kind": kind, **payload})
        if kind in ("outage", "recovered"):
            self._on_outage(view, kind, payload)
        elif kind in ("started", "done", "error"):
            view.waiting_for.clear()  # a new process, or one that ended: it waits for nothing now
        if kind == "started":
            view.state = RoleState.RUNNING
            view.resumed_from = payload.get("resumed_from")
            plays = role == "actor" or (role == "learner" and self.solo)
            if plays and self.first_step_time is None:  # the hive's first env step comes next
                self.first_step_time = time.time()
        elif kind == "done":
            view.state = RoleState.DONE
            if role == "learner":
                view.updates = payload["updates"]
                view.updates_per_s = payload["updates_this_run"] / max(payload["wall_s"], 1e-9)
                view.memory_time_share = payload["memory_time_share"]
        elif kind == "error":
            view.error = payload["text"]

    def _on_outage(self, view: RoleView, kind: str, payload: dict[str, Any]) -> None:
        service = str(payload.get("service") or "redis")  # a plain text report is of Redis
        if kind == "outage":
            since = payload.get("since")
            view.waiting_for.setdefault(service, float(since) if since is not None else time.time())
            if service == "redis" and not view.state.ended:
                view.state = RoleState.WAITING_FOR_REDIS
            return
        view.waiting_for.pop(service, None)
        until = payload.get("until")
        self._back_at[service] = float(until) if until is not None else time.time()
        if service == "redis" and view.state == RoleState.WAITING_FOR_REDIS:
            view.state = RoleState.RUNNING

    def follow_learner(self) -> None:
        """A solo hive's actor ends as its learner does."""
        for view in self.views.values():
            if view.in_learner:
                view.state = self.learner.state

    # -- outages ---------------------------------------------------------------------------------

    def waiting(self) -> dict[str, list[RoleView]]:
        """Service -> the live roles waiting for it now (an ended or restarting one waits for nothing)."""
        out: dict[str, list[RoleView]] = {}
        for view in self.views.values():
            if view.state.ended or view.state == RoleState.RESTARTING:
                continue
            for service in view.waiting_for:
                out.setdefault(service, []).append(view)
        return out

    def outage_text(self, now: float | None = None) -> str | None:
        """Every outage going on, in words (None: none), e.g. "Redis unreachable since 12:01:03
        (14 s), waiting; 3 roles paused: learner, actor 0, actor 1"."""
        now = time.time() if now is None else now
        waiting = self.waiting()
        return " · ".join(_outage(service, waiting[service], now) for service in sorted(waiting)) or None

    def outage_news(self) -> list[str]:
        """A line for each service that went away or came back (for every role) since the last call."""
        waiting = self.waiting()
        lines = []
        for service in sorted(set(waiting) - set(self._down)):
            self._down[service] = min(view.waiting_for[service] for view in waiting[service])
            lines.append(_outage(service, waiting[service], time.time()))
        for service in sorted(set(self._down) - set(waiting)):
            since = self._down.pop(service)
            back = self._back_at.get(service, time.time())
            resumed = "every role resumed" if service == "redis" else "telemetry flows again"
            lines.append(
                f"{_name(service)} reachable again at {_clock(back)} after {max(0.0, back - since):.1f} s;"
                f" {resumed}"
            )
        return lines

    # -- reports --------------------------------------------------------------------------------

    def progress(self) -> dict[str, Any]:
        """What the archive records at each heartbeat (and ``session.json`` at the end)."""
        evaluator = self.evaluator
        return {
            "env_steps": sum(view.env_steps for view in self.actors),
            "updates": self.learner.updates,
            "best_eval_return": evaluator.best_eval_return if evaluator is not None else None,
            "solved": self.solved_time is not None,
            "roles_status": [
                {k: v for k, v in asdict(view).items() if k not in ("history", "waiting_for")}
                for view in self.views.values()
            ],
        }

    def progress_line(self, elapsed_s: float) -> str:
        """One line of progress for logs and CI (no terminal): time, steps, updates, returns."""
        evaluator = self.evaluator
        learner = self.learner
        env_steps = sum(view.env_steps for view in self.actors)
        eval_text = _fmt(evaluator.eval_return if evaluator else None, ".1f")
        outage = self.outage_text()
        return (
            f"[{elapsed_s:6.0f} s] env steps {env_steps:,} · updates {learner.updates:,}"
            f" ({_fmt(learner.updates_per_s, '.0f')}/s) · eval return {eval_text}"
            f" · loss {_fmt(learner.loss, '.4f')}" + (f" · {outage}" if outage else "")
        )

    def table(self, title: str | None = None) -> Table:
        """Per-process progress, readable at 80 columns (logs, CI): steps (the learner's are its
        updates) and their rate, mean return (the evaluator's: last and best), ε, loss, memory wait."""
        from rich import box

        table = Table(
            title=title or f"hive {self.session_id} · {self.env_id}",
            box=box.SIMPLE_HEAD,
            caption=self.outage_text(),
            caption_style="bold yellow",
        )
        table.pad_edge = False
        for column in ("role", "state", "steps", "per s", "return (best)", "ε", "loss", "mem"):
            table.add_column(column, justify="left" if column in ("role", "state") else "right", no_wrap=True)
        for view in self.views.values():
            table.add_row(*_row(view))
        return table


class Periodic:
    """When each periodic chore (a progress line, a heartbeat) last ran, and whether it is due."""

    def __init__(self, started: float) -> None:
        self.started = started
        self._last: dict[str, float] = {}

    def due(self, chore: str, now: float, every_s: float) -> bool:
        if now - self._last.get(chore, self.started) < every_s:
            return False
        self._last[chore] = now
        return True


def _row(view: RoleView) -> tuple[str, ...]:
    if view.role == "evaluator":
        returns = f"{_fmt(view.eval_return, '.1f')} ({_fmt(view.best_eval_return, '.1f')})"
    else:
        returns = _fmt(view.mean_return_100, ".1f")
    rate = {"learner": view.updates_per_s, "actor": view.env_steps_per_s}.get(view.role)
    return (
        "eval" if view.role == "evaluator" else view.name,
        view.state + (f" ↻{view.restarts}" if view.restarts else ""),
        f"{view.updates:,}" if view.role != "actor" else f"{view.env_steps:,}",
        _fmt(rate, ".0f"),
        returns,
        _fmt(view.epsilon, ".2f"),
        _fmt(view.loss, ".3g"),
        _fmt(None if view.memory_time_share is None else 100 * view.memory_time_share, ".0f", "%"),
    )


def _outage(service: str, views: list[RoleView], now: float) -> str:
    since = min(view.waiting_for[service] for view in views)
    count = f"{len(views)} role{'s' if len(views) > 1 else ''}"
    what = f"waiting; {count} paused" if service == "redis" else f"{count} spooling telemetry"
    names = ", ".join(view.name for view in views)
    return f"{_name(service)} unreachable since {_clock(since)} ({now - since:.0f} s), {what}: {names}"


def _name(service: str) -> str:
    return SERVICE_NAMES.get(service, service)


def _clock(epoch_s: float) -> str:
    """Local wall-clock time, ``HH:MM:SS``."""
    return time.strftime("%H:%M:%S", time.localtime(epoch_s))


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    if value is None or value != value:  # None or NaN
        return "-"
    return f"{value:{spec}}{suffix}"
