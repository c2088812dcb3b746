"""A new session's id: one format for every way a session starts (``hiverl train``, the dashboard)."""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

#: Session ids: letters, digits, ``_ . -`` (safe as a file name, a Redis key part and an archive _id).
#: For pydantic's ``pattern`` (Rust regex: ``$`` is the end of the text, never before a final
#: newline); Python code checks ids with :func:`is_session_id`, which matches the whole text.
SESSION_ID_PATTERN = r"^[A-Za-z0-9_.-]{1,64}$"
_SESSION_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_ENV_CHARS = 40


def is_session_id(text: str) -> bool:
    """``text`` is a session id, matched whole (no trailing newline), and not ``.`` or ``..``
    (which a run folder would resolve to its parent)."""
    return _SESSION_ID.fullmatch(text) is not None and text not in (".", "..")


def new_session_id(env_id: str = "") -> str:
    """``<env>-<YYYYmmdd-HHMMSS>-<6 hex>`` in UTC, e.g. ``cartpole-v1-20260101-120000-3fa2b1``.

    Readable in listings, sortable by start within one environment, unique enough for many
    machines; without ``env_id`` the prefix is ``session``.
    """
    env = "".join(c if c.isalnum() else "-" for c in env_id).strip("-").lower()[:_ENV_CHARS].strip("-")
    return f"{env or 'session'}-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def board_key(session_id: str, key_prefix: str = "") -> str:
    """Redis key of the hive's board (weights, counters, stop flag; ``game/board.py``), which the
    dashboard also raises the stop flag on. The hash tag keeps it on one node of a Redis Cluster."""
    return f"{key_prefix}hiverl:{{{session_id}}}:board"
