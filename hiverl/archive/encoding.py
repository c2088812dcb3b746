"""The reversible encoding of archive documents for MongoDB-compatible servers, and secret scrubbing.

MongoDB-compatible servers reject some keys and values that a config may legitimately contain,
so :func:`encode` rewrites them reversibly before writing and :func:`decode` restores them:

* keys: ``%`` -> ``%25``, ``.`` -> ``%2E``, ``$`` -> ``%24``, NUL -> ``%00``
  (so ``{"env.kwargs": 1}`` is stored as ``{"env%2Ekwargs": 1}``);
* floats: NaN, +inf and -inf are stored as ``{"%float": "nan" | "inf" | "-inf"}`` (FerretDB
  rejects infinities and drops the connection on NaN). ``%float`` cannot collide with a user key
  because every user ``%`` is escaped to ``%25``.

Secrets never reach the archive: :func:`scrub_secrets` replaces ``user:password@`` in any URL
string by ``***@`` and the values of keys that name a secret (password, token, ...) by ``***``.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from hiverl.endpoints import redact

FLOAT_MARKER = "%float"
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_SECRET_KEY = re.compile(
    r"(^|[_.-])(password|passwd|pass|pwd|secret|token|api[_-]?key|credentials?)([_.-]|$)", re.IGNORECASE
)


class ArchiveValidationError(ValueError):
    """A session document (or an update to one) is invalid; the message lists every bad field."""

    def __init__(self, message: str, errors: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.errors = list(errors)


# -- secrets ---------------------------------------------------------------------------------------


def scrub_secrets(value: Any) -> Any:
    """Copy of ``value`` with URL credentials redacted and secret-named keys' values replaced."""
    if isinstance(value, Mapping):
        return {
            k: (
                "***"
                if isinstance(k, str) and _SECRET_KEY.search(k) and v not in (None, "")
                else scrub_secrets(v)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [scrub_secrets(v) for v in value]
    if isinstance(value, str) and "@" in value:
        return redact(value)
    return value


# -- reversible encoding for the server ------------------------------------------------------------

_KEY_ESCAPES = {"%": "%25", ".": "%2E", "$": "%24", "\x00": "%00"}
_KEY_UNESCAPES = {v: k for k, v in _KEY_ESCAPES.items()}
_ESCAPED = re.compile("|".join(re.escape(s) for s in _KEY_UNESCAPES))
_NONFINITE = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def escape_key(key: str) -> str:
    """A key any MongoDB-compatible server accepts; :func:`unescape_key` restores it."""
    return "".join(_KEY_ESCAPES.get(ch, ch) for ch in key)


def unescape_key(key: str) -> str:
    """Inverse of :func:`escape_key`."""
    return _ESCAPED.sub(lambda m: _KEY_UNESCAPES[m.group(0)], key)


def encode(value: Any, path: str = "") -> Any:
    """``value`` with keys escaped and non-finite floats wrapped, ready for BSON.

    Raises :class:`ArchiveValidationError` for values BSON cannot hold (non-string keys, integers
    outside int64, unknown types), naming the field path.
    """
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise ArchiveValidationError(f"field '{path}': key {key!r} must be text")
            out[escape_key(key)] = encode(item, f"{path}.{key}" if path else key)
        return out
    if isinstance(value, list | tuple):
        return [encode(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, str):
        return str(value)  # plain text, also for a StrEnum (a status)
    if isinstance(value, bool) or value is None or isinstance(value, dt.datetime):
        return value
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ArchiveValidationError(f"field '{path}': integer {value} does not fit in 64 bits")
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return {FLOAT_MARKER: "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")}
    raise ArchiveValidationError(
        f"field '{path}': value {value!r} of type {type(value).__name__} cannot be stored "
        "(allowed: mappings, lists, text, numbers, booleans, null, datetimes)"
    )


def decode(value: Any) -> Any:
    """Inverse of :func:`encode`."""
    if isinstance(value, Mapping):
        if len(value) == 1 and FLOAT_MARKER in value and value[FLOAT_MARKER] in _NONFINITE:
            return _NONFINITE[value[FLOAT_MARKER]]
        return {unescape_key(k): decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def iso_dates(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: iso_dates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [iso_dates(v) for v in value]
    return value
