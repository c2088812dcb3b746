"""Refused Redis credentials are no outage: telling them apart, and saying so in one line.

redis-py raises a wrong password or a disabled user (``WRONGPASS``, ``NOAUTH``) as an
``AuthenticationError``, a subclass of ``ConnectionError``, so a role's wait for Redis
(:func:`game.hive_memory.retrying`) would wait for it forever; a command the user's ACL does not
allow raises ``NoPermissionError`` (``NOPERM``). Neither heals by waiting or restarting: a role ends
at once with exit status :data:`EXIT_CODE` and :func:`denial_line`, which names the Redis user and
the variable its URL came from, never the password. Each role's user and what it may do:
``docker/redis/start.sh`` and docs/scaling.md ("Redis users").
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn
from urllib.parse import unquote, urlsplit

from redis.exceptions import (
    AuthenticationError,
    AuthenticationWrongNumberOfArgsError,
    NoPermissionError,
    RedisError,
)

#: Errors that mean "these credentials may not do this", whatever the server's state.
ACCESS_ERRORS: tuple[type[RedisError], ...] = (
    AuthenticationError,
    AuthenticationWrongNumberOfArgsError,
    NoPermissionError,
)
#: EX_NOPERM of sysexits.h: a restart with the same credentials would fail the same way.
EXIT_CODE = 77


def url_variable() -> str:
    """The variable the Redis URL came from, in the order :class:`hiverl.endpoints.Endpoints` reads them."""
    if "REDIS_URL" in os.environ:
        return "REDIS_URL"
    if os.environ.get("REDIS_URL_FILE"):
        return "REDIS_URL_FILE"
    if "HIVERL_REDIS_URL" in os.environ:
        return "HIVERL_REDIS_URL"
    return "REDIS_URL"


def redis_user(url: str) -> str:
    """The ACL user the (first) URL signs in as: ``default`` when it names none."""
    username = urlsplit(url.split(",")[0].strip()).username
    return unquote(username) if username else "default"


def denial_line(error: BaseException, url: str) -> str:
    """One line for the role's stderr: who was refused what, and where to fix it (no password)."""
    user, variable = redis_user(url), url_variable()
    reason = " ".join(str(error).split())
    for part in url.split(","):
        password = urlsplit(part.strip()).password
        if password:  # the server's text never holds it; a future one must not leak it either
            reason = reason.replace(unquote(password), "***").replace(password, "***")
    if isinstance(error, NoPermissionError):
        return (
            f"error: Redis user {user!r} may not do what this role needs ({reason}); "
            f"give {variable} the URL of this role's own user (docs/scaling.md, Redis users)"
        )
    return (
        f"error: Redis refused to sign in user {user!r} ({reason}); check the user and password in {variable}"
    )


def exit_denied(error: BaseException, url: str) -> NoReturn:
    """Print :func:`denial_line` on stderr and end the process with :data:`EXIT_CODE`."""
    print(denial_line(error, url), file=sys.stderr, flush=True)
    raise SystemExit(EXIT_CODE)


def check_access(url: str, timeout_s: float = 5.0) -> None:
    """Sign in to every server of ``url`` and PING: raises an access error before a role starts.

    A server that does not answer is left to the role's own wait for Redis (an outage, not this).
    """
    import redis

    for part in (u.strip() for u in url.split(",") if u.strip()):
        client = redis.Redis.from_url(part, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
        try:
            client.ping()
        except ACCESS_ERRORS:
            raise
        except (RedisError, OSError):
            pass
        finally:
            client.close()
