"""Dashboard accounts: names, roles and argon2id password hashes in a local JSON file.

Why a local file (``$HIVERL_HOME/dashboard/users.json``, mode 0600) and not the MongoDB archive:
the dashboard must keep working -- including signing in -- while MongoDB is down, which is
exactly when a user most needs to see what is wrong. Only salted argon2id hashes are stored
(argon2-cffi's defaults, RFC 9106 low-memory profile); the encoded hash carries its own salt and
parameters, so raising the cost later re-hashes on the next sign-in.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import re
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

Role = Literal["admin", "viewer"]
ROLES: tuple[Role, ...] = ("admin", "viewer")
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
MIN_PASSWORD_LENGTH = 8

#: argon2id with argon2-cffi's defaults (RFC 9106 low-memory profile: 64 MiB, 3 passes, 4 lanes).
DEFAULT_HASHER = PasswordHasher()
_hasher = DEFAULT_HASHER


@functools.cache
def _dummy_hash() -> str:
    """Verified when the user does not exist, so a wrong name costs as long as a wrong password."""
    return _hasher.hash("not-a-real-password-only-for-constant-time")


class UserError(ValueError):
    """Invalid account operation (bad name, role, password, unknown or duplicate user)."""


@dataclass(frozen=True)
class User:
    """One account. ``password_hash`` is an encoded argon2id hash (salt and parameters inside)."""

    name: str
    role: Role
    password_hash: str
    created_at: float
    password_changed_at: float

    @property
    def can_control_training(self) -> bool:
        """Admins start and stop training; viewers only watch."""
        return self.role == "admin"


def validate_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise UserError(
            f"name={name!r} is not allowed: use 1-64 characters from letters, digits, '_', '.', '@', '-'"
            " starting with a letter or digit"
        )
    return name


def validate_role(role: str) -> Role:
    if role not in ROLES:
        raise UserError(f"role={role!r} is not allowed: use one of {', '.join(ROLES)}")
    return role


def validate_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise UserError(f"password is too short: use at least {MIN_PASSWORD_LENGTH} characters")
    return password


class UserStore:
    """Accounts in one JSON file; every write is atomic (temp file + rename) under a file lock."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._cache: tuple[float, dict[str, User]] | None = None

    # -- reading ---------------------------------------------------------------------------
    def _read(self) -> dict[str, User]:
        try:
            mtime = self.path.stat().st_mtime_ns
        except FileNotFoundError:
            return {}
        if self._cache is not None and self._cache[0] == mtime:
            return self._cache[1]
        raw = json.loads(self.path.read_text(encoding="utf-8") or "{}")
        users = {name: User(**fields) for name, fields in raw.get("users", {}).items()}
        self._cache = (mtime, users)
        return users

    def list(self) -> list[User]:
        """All accounts, sorted by name."""
        return sorted(self._read().values(), key=lambda user: user.name)

    def get(self, name: str) -> User | None:
        return self._read().get(name)

    def authenticate(self, name: str, password: str) -> User | None:
        """The user if ``password`` is right, else None (same cost for unknown names)."""
        user = self.get(name)
        try:
            _hasher.verify(user.password_hash if user else _dummy_hash(), password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return None
        if user is None:
            return None
        if _hasher.check_needs_rehash(user.password_hash):
            self._update(name, password_hash=_hasher.hash(password))
        return user

    # -- writing ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, User]]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock_path = self.path.with_suffix(".lock")
        with lock_path.open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._cache = None
            users = dict(self._read())
            yield users
            payload = {"users": {name: asdict(user) for name, user in sorted(users.items())}}
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".users.", suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                json.dump(payload, out, indent=2)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
            self._cache = None

    def add(self, name: str, role: str, password: str) -> User:
        """Create an account; raises :class:`UserError` if it exists or an argument is invalid."""
        validate_name(name)
        checked_role = validate_role(role)
        validate_password(password)
        now = time.time()
        with self._locked() as users:
            if name in users:
                raise UserError(f"user {name!r} already exists (use `hiverl users passwd`)")
            user = User(name, checked_role, _hasher.hash(password), now, now)
            users[name] = user
        return user

    def delete(self, name: str) -> None:
        with self._locked() as users:
            if users.pop(name, None) is None:
                raise UserError(f"user {name!r} does not exist")

    def set_password(self, name: str, password: str) -> None:
        validate_password(password)
        self._update(name, password_hash=_hasher.hash(password), password_changed_at=time.time())

    def _update(self, name: str, **fields: object) -> None:
        with self._locked() as users:
            user = users.get(name)
            if user is None:
                raise UserError(f"user {name!r} does not exist")
            users[name] = User(**{**asdict(user), **fields})
