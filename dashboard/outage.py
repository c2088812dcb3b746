"""Fail fast while a service is down, so one dead service never makes every page wait."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class ServiceDown(RuntimeError):
    """A backing service (Elasticsearch, MongoDB) did not answer; ``service`` names it."""

    def __init__(self, service: str, reason: str) -> None:
        super().__init__(f"{service} is unavailable: {reason}")
        self.service = service
        self.reason = reason


class QueryRefused(RuntimeError):
    """A backing service answered but refused one query (a 4xx, e.g. a range it cannot bucket):
    that request's fault, not an outage, so it never makes the service look down to anyone."""

    def __init__(self, service: str, reason: str) -> None:
        super().__init__(f"{service} refused the query: {reason}")
        self.service = service
        self.reason = reason


class OutageGuard:
    """Runs calls to one service; after a failure, refuses calls for ``backoff_s`` seconds.

    A :class:`QueryRefused` raised by the call passes through without tripping the guard.
    """

    def __init__(self, service: str, backoff_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.service = service
        self.backoff_s = backoff_s
        self.clock = clock
        self._down_since: float | None = None
        self._reason = ""
        self._lock = threading.Lock()

    def call(self, fn: Callable[[], T]) -> T:
        """``fn()``, or :class:`ServiceDown` if it fails or the service failed recently."""
        with self._lock:
            if self._down_since is not None and self.clock() - self._down_since < self.backoff_s:
                raise ServiceDown(self.service, self._reason)
        try:
            result = fn()
        except (ServiceDown, QueryRefused):
            raise
        except Exception as error:
            reason = f"{type(error).__name__}: {str(error)[:200]}"
            with self._lock:
                self._down_since = self.clock()
                self._reason = reason
            raise ServiceDown(self.service, reason) from error
        with self._lock:
            self._down_since = None
        return result
