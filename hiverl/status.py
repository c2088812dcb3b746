"""One vocabulary for where a session and its role processes stand.

A session is :class:`SessionStatus` everywhere: in the trainer's result and ``session.json``, in the
archive's documents and queries, and in what the dashboard reads. Older run folders and archived
documents used other words for the same ends (the trainer's ``completed``/``solved``/``failed``);
:meth:`SessionStatus.parse` reads them.

A role process (the learner, an actor, the evaluator) is in a :class:`RoleState` (the trainer's
live table, ``roles_status`` in ``session.json``, ``worker_results[].status`` in the archive).
"""

from __future__ import annotations

from enum import StrEnum


class SessionStatus(StrEnum):
    """Where a session stands; ``running`` is the only status that is not final."""

    RUNNING = "running"
    FINISHED = "finished"  # the learner ended on its own: the step budget, or the evaluator's "solved"
    STOPPED = "stopped"  # asked to stop (Ctrl-C, SIGTERM, the dashboard)
    CRASHED = "crashed"  # a role failed past its restarts, or the session went silent

    @property
    def terminal(self) -> bool:
        return self is not SessionStatus.RUNNING

    @classmethod
    def words(cls) -> frozenset[str]:
        """Every word :meth:`parse` reads."""
        return frozenset(cls) | frozenset(_LEGACY)

    @classmethod
    def parse(cls, value: str) -> SessionStatus:
        """``value`` as a status, including the words of older trainers (``completed``, ``failed``...)."""
        try:
            return cls(_LEGACY.get(value, value))
        except ValueError:
            allowed = ", ".join(status.value for status in cls)
            raise ValueError(f"status={value!r} is not one of {allowed}") from None


#: Older trainers' session.json statuses -> today's.
_LEGACY = {"completed": "finished", "solved": "finished", "failed": "crashed"}

TERMINAL_STATUSES = tuple(status for status in SessionStatus if status.terminal)


class RoleState(StrEnum):
    """Where one role process of a hive stands (as its trainer sees it)."""

    STARTING = "starting"
    RUNNING = "running"
    WAITING_FOR_REDIS = "waiting for Redis"
    RESTARTING = "restarting"
    DONE = "done"
    FAILED = "failed"
    IN_LEARNER = "in learner"  # a solo hive's actor: it plays inside the learner's process

    @property
    def ended(self) -> bool:
        return self in (RoleState.DONE, RoleState.FAILED)
