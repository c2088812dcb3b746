"""The roles' typed seam to the shared memory: opening it and riding out Redis outages.

* :func:`open_memory` opens (creating if missing) the session's memory from the settings.
* :func:`retrying` runs one Redis call and, while Redis is unreachable or loading its data after a
  restart, waits with exponential backoff (0.1 s doubling to 5 s) and tries again: an outage is a
  pause, never a crash, and never uses up a restart. Only a stop request ends the wait. It says
  what it sees: ``on_outage(text)`` for each failure during the wait, ``on_recovered(start, end)``
  once a wait ends because Redis answered again. Refused credentials are no outage: a wrong
  password (an ``AuthenticationError``, which redis-py makes a ``ConnectionError``) is raised at
  once, like a command the user may not run (:mod:`hiverl.redis_access`).

A role keeps one :class:`~hiverl.outages.OutageWatch` for Redis (``game.roles.RoleProcess``):
every wait of every thread and helper process of the role reports its failures to it, and the
role's calls that succeed end the outage, which the role then records as an ``outage`` event.

The learner is fed by sampler processes (:mod:`game.sampling`) and writes its priorities back on a
thread (:class:`game.staging.PriorityWriter`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import redis

from hiverl.config import SessionConfig
from hiverl.redis_access import ACCESS_ERRORS
from replay_memory import MemoryConfig, ObservationSpec, ReplayMemory

T = TypeVar("T")

#: Errors that mean "Redis is not reachable right now" (BusyLoadingError is a ConnectionError).
OUTAGE_ERRORS: tuple[type[Exception], ...] = (redis.ConnectionError, redis.TimeoutError, OSError)
BACKOFF_START_S = 0.1
BACKOFF_MAX_S = 5.0


class Stopped(Exception):
    """A stop was requested while waiting for Redis to come back."""


def retrying(
    call: Callable[[], T],
    should_stop: Callable[[], bool],
    on_outage: Callable[[str], None] | None = None,
    on_recovered: Callable[[float, float], None] | None = None,
) -> T:
    """``call()``; on an outage error wait with backoff and retry until it succeeds or a stop comes.

    ``on_outage`` gets a one-line description of each failure (for a log or a status line);
    ``on_recovered`` gets (first failure, success) in Unix epoch seconds when the call succeeds after
    failing. Raises :class:`Stopped` when ``should_stop()`` turns true during an outage.
    """
    delay = BACKOFF_START_S
    failed_at: float | None = None
    while True:
        try:
            result = call()
        except ACCESS_ERRORS:
            raise
        except OUTAGE_ERRORS as error:
            if failed_at is None:
                failed_at = time.time()
            if on_outage is not None:
                on_outage(f"Redis unavailable ({type(error).__name__}: {error}); retrying in {delay:.1f} s")
            deadline = time.monotonic() + delay
            while time.monotonic() < deadline:
                if should_stop():
                    raise Stopped from error
                time.sleep(min(0.05, delay))
            delay = min(delay * 2, BACKOFF_MAX_S)
            continue
        if failed_at is not None and on_recovered is not None:
            on_recovered(failed_at, time.time())
        return result


def memory_config(config: SessionConfig, spec: ObservationSpec) -> MemoryConfig:
    """The session's memory: one per session, named after it."""
    settings = config.memory
    return MemoryConfig(
        name=f"hive-{config.session_id}",
        capacity=settings.capacity,
        alpha=settings.alpha,
        shards=settings.shards,
        observation=spec,
        key_prefix=settings.key_prefix,
    )


def open_memory(
    redis_url: str, config: MemoryConfig, should_stop: Callable[[], bool], on_outage: Callable[[str], None]
) -> ReplayMemory:
    """Open the memory, waiting for Redis if it is not up yet."""
    return retrying(lambda: ReplayMemory.open(redis_url, config), should_stop, on_outage)
