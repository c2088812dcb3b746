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
MAX_KEY_CHARS = 128  # of a user name or address kept by the rate limiter (longer ones are cut)


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
    """Server-side sessions keyed by the cookie token.

    A session ends after ``idle_s`` without activity (a request with ``touch=True``; the pages'
    timer-driven polls do not count) or, active or not, ``max_age_s`` after it was created.
    """

    def __init__(
        self,
        idle_s: float,
        clock: Callable[[], float] = time.monotonic,
        max_age_s: float = float("inf"),
    ) -> None:
        self.idle_s = idle_s
        self.max_age_s = max_age_s
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

    def _expired(self, session: SignedInSession, now: float) -> bool:
        return now - session.last_seen > self.idle_s or now - session.created_at > self.max_age_s

    def get(self, token: str | None, touch: bool = True) -> SignedInSession | None:
        """The live session for ``token``, else None; ``touch`` counts this as activity."""
        if not token:
            return None
        now = self.clock()
        with self._lock:
            session = self._sessions.get(token)
            if session is None:
                return None
            if self._expired(session, now):
                del self._sessions[token]
                return None
            if touch:
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
        for token in [t for t, s in self._sessions.items() if self._expired(s, now)]:
            del self._sessions[token]


@dataclass
class _Failures:
    count: int = 0
    locked_until: float = 0.0
    last_failure: float = field(default=0.0)


class LoginRateLimiter:
    """Exponential lockouts after repeated failed sign-ins, on three keys at once.

    * per (user name, client address): the first ``free_failures`` - 1 failures cost nothing,
      each further one locks the pair for ``base_lockout_s * 2**(failures - free_failures)``
      seconds, capped at ``max_lockout_s``;
    * per client address across all names (password spraying): the same after
      ``address_failures`` failures;
    * per user name across all addresses (a botnet guessing one password): the same after
      ``user_failures`` failures.

    :meth:`attempt` checks the three lockouts and counts the attempt as a failure in one locked
    step, before the password is checked, so parallel guesses cannot all slip in before the
    first failure is recorded; :meth:`succeeded` then takes a right password's count back.
    A success clears the pair and the name; a key untouched for ``forget_after_s`` is forgotten.
    """

    def __init__(
        self,
        free_failures: int = 5,
        base_lockout_s: float = 1.0,
        max_lockout_s: float = 900.0,
        forget_after_s: float = 24 * 3600,
        clock: Callable[[], float] = time.monotonic,
        *,
        address_failures: int = 20,
        user_failures: int = 20,
    ) -> None:
        if free_failures < 1 or base_lockout_s <= 0 or max_lockout_s < base_lockout_s:
            raise ValueError(
                f"free_failures={free_failures} must be >= 1 and 0 < base_lockout_s={base_lockout_s}"
                f" <= max_lockout_s={max_lockout_s}"
            )
        if address_failures < free_failures or user_failures < free_failures:
            raise ValueError(
                f"address_failures={address_failures} and user_failures={user_failures} must be"
                f" >= free_failures={free_failures}"
            )
        self.free_failures = free_failures
        self.address_failures = address_failures
        self.user_failures = user_failures
        self.base_lockout_s = base_lockout_s
        self.max_lockout_s = max_lockout_s
        self.forget_after_s = forget_after_s
        self.clock = clock
        self._failures: dict[tuple[str, ...], _Failures] = {}
        self._lock = threading.Lock()

    def _keys(self, user_name: str, client: str) -> list[tuple[tuple[str, ...], int]]:
        name = user_name.lower()[:MAX_KEY_CHARS]
        client = client[:MAX_KEY_CHARS]
        return [
            (("pair", name, client), self.free_failures),
            (("address", client), self.address_failures),
            (("user", name), self.user_failures),
        ]

    def _wait(self, user_name: str, client: str, now: float) -> float:
        entries = [self._failures.get(key) for key, _ in self._keys(user_name, client)]
        return max([0.0, *(e.locked_until - now for e in entries if e is not None)])

    def _count(self, user_name: str, client: str, now: float) -> float:
        for key in [k for k, v in self._failures.items() if now - v.last_failure > self.forget_after_s]:
            del self._failures[key]
        lockouts = [0.0]
        for key, free in self._keys(user_name, client):
            entry = self._failures.setdefault(key, _Failures())
            entry.count += 1
            entry.last_failure = now
            excess = entry.count - free
            if excess >= 0:
                lockout = min(self.max_lockout_s, self.base_lockout_s * 2.0**excess)
                entry.locked_until = now + lockout
                lockouts.append(lockout)
        return max(lockouts)

    def retry_after(self, user_name: str, client: str) -> float:
        """Seconds until this name may try again from this address (0: now)."""
        with self._lock:
            return self._wait(user_name, client, self.clock())

    def attempt(self, user_name: str, client: str) -> float:
        """Before checking a password: the wait if locked out (nothing counted), else 0 with this
        attempt already counted as a failure (see :meth:`succeeded`). Atomic."""
        now = self.clock()
        with self._lock:
            wait_s = self._wait(user_name, client, now)
            if wait_s > 0:
                return wait_s
            self._count(user_name, client, now)
            return 0.0

    def failed(self, user_name: str, client: str) -> float:
        """Record a failure; returns the lockout it caused (seconds, 0 for none)."""
        now = self.clock()
        with self._lock:
            return self._count(user_name, client, now)

    def succeeded(self, user_name: str, client: str) -> None:
        """A right password: clear the pair and the name; the address keeps its other failures."""
        name, client = user_name.lower()[:MAX_KEY_CHARS], client[:MAX_KEY_CHARS]
        with self._lock:
            self._failures.pop(("pair", name, client), None)
            self._failures.pop(("user", name), None)
            entry = self._failures.get(("address", client))
            if entry is not None:  # take back what attempt() counted
                entry.count = max(0, entry.count - 1)
                if entry.count < self.address_failures:
                    entry.locked_until = 0.0
