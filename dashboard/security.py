"""Sign-in sessions, CSRF tokens and the sign-in rate limit.

Sessions live server-side: the cookie carries only a random 256-bit token, the table maps it to
the user, a CSRF token and the last activity time. Nothing in the cookie can be forged or
replayed after sign-out, deleting a user or changing their password ends their sessions at once,
and there is no signing key to leak. The price: restarting the dashboard signs everyone out.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

SESSION_COOKIE = "hiverl_session"
LOGIN_CSRF_COOKIE = "hiverl_login_csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FORM_FIELD = "csrf_token"


def new_token() -> str:
    """A random URL-safe token with 256 bits of entropy."""
    return secrets.token_urlsafe(32)


def tokens_match(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison; a missing token never matches."""
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))


@dataclass
class SignedInSession:
    """One signed-in browser."""

    user_name: str
    credential_stamp: float  # the user's password_changed_at at sign-in: a new password ends it
    csrf_token: str
    created_at: float
    last_seen: float


class SessionTable:
    """Server-side sessions keyed by the cookie token; expired after ``idle_s`` of inactivity."""

    def __init__(self, idle_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_s = idle_s
        self.clock = clock
        self._sessions: dict[str, SignedInSession] = {}
        self._lock = threading.Lock()

    def create(self, user_name: str, credential_stamp: float) -> tuple[str, SignedInSession]:
        """Start a session; returns (cookie token, session)."""
        now = self.clock()
        token = new_token()
        session = SignedInSession(user_name, credential_stamp, new_token(), now, now)
        with self._lock:
            self._drop_expired(now)
            self._sessions[token] = session
        return token, session

    def get(self, token: str | None) -> SignedInSession | None:
        """The live session for ``token`` (refreshing its idle timer), else None."""
        if not token:
            return None
        now = self.clock()
        with self._lock:
            session = self._sessions.get(token)
            if session is None:
                return None
            if now - session.last_seen > self.idle_s:
                del self._sessions[token]
                return None
            session.last_seen = now
            return session

    def end(self, token: str | None) -> None:
        with self._lock:
            self._sessions.pop(token or "", None)

    def end_user(self, user_name: str) -> None:
        """Sign a user out everywhere (after deletion or password change)."""
        with self._lock:
            for token in [t for t, s in self._sessions.items() if s.user_name == user_name]:
                del self._sessions[token]

    def _drop_expired(self, now: float) -> None:
        for token in [t for t, s in self._sessions.items() if now - s.last_seen > self.idle_s]:
            del self._sessions[token]


@dataclass
class _Failures:
    count: int = 0
    locked_until: float = 0.0
    last_failure: float = field(default=0.0)


class LoginRateLimiter:
    """Exponential lockout per (user name, client address) after repeated failed sign-ins.

    The first ``free_failures`` failures cost nothing; each further failure locks the pair for
    ``base_lockout_s * 2**(failures - free_failures)`` seconds, capped at ``max_lockout_s``.
    A success clears the pair; a pair untouched for ``forget_after_s`` is forgotten.
    """

    def __init__(
        self,
        free_failures: int = 5,
        base_lockout_s: float = 1.0,
        max_lockout_s: float = 900.0,
        forget_after_s: float = 24 * 3600,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if free_failures < 1 or base_lockout_s <= 0 or max_lockout_s < base_lockout_s:
            raise ValueError(
                f"free_failures={free_failures} must be >= 1 and 0 < base_lockout_s={base_lockout_s}"
                f" <= max_lockout_s={max_lockout_s}"
            )
        self.free_failures = free_failures
        self.base_lockout_s = base_lockout_s
        self.max_lockout_s = max_lockout_s
        self.forget_after_s = forget_after_s
        self.clock = clock
        self._failures: dict[tuple[str, str], _Failures] = {}
        self._lock = threading.Lock()

    def retry_after(self, user_name: str, client: str) -> float:
        """Seconds until this pair may try again (0: now)."""
        with self._lock:
            entry = self._failures.get((user_name.lower(), client))
            return max(0.0, entry.locked_until - self.clock()) if entry else 0.0

    def failed(self, user_name: str, client: str) -> float:
        """Record a failure; returns the lockout it caused (seconds, 0 for none)."""
        now = self.clock()
        with self._lock:
            for key in [k for k, v in self._failures.items() if now - v.last_failure > self.forget_after_s]:
                del self._failures[key]
            entry = self._failures.setdefault((user_name.lower(), client), _Failures())
            entry.count += 1
            entry.last_failure = now
            excess = entry.count - self.free_failures
            if excess < 0:
                return 0.0
            lockout = min(self.max_lockout_s, self.base_lockout_s * 2.0**excess)
            entry.locked_until = now + lockout
            return lockout

    def succeeded(self, user_name: str, client: str) -> None:
        with self._lock:
            self._failures.pop((user_name.lower(), client), None)
