"""The connection to the session archive's server: URI, collection, indexes, errors, redaction.

Credentials: the URI comes from :class:`hiverl.endpoints.Endpoints` (``MONGODB_URI`` or
``MONGODB_URI_FILE``); it is only ever shown through :func:`safe_uri`, and every server message
passes :meth:`ArchiveConnection._scrub` before it reaches an error or a log.
"""

from __future__ import annotations

from typing import Any, Self

from pymongo import ASCENDING, DESCENDING, MongoClient
from pymongo.collection import Collection
from pymongo.errors import ConfigurationError, OperationFailure, PyMongoError

from hiverl.archive.settings import ArchiveAuthError, ArchiveError, ArchiveSettings, ArchiveUnreachableError
from hiverl.endpoints import Endpoints, redact

#: Codes MongoDB-compatible servers use for bad or missing credentials.
_AUTH_CODES = frozenset({13, 18, 11})


def _userinfo(uri: str) -> str:
    """The ``user:password`` part of ``uri`` ('' if none), up to the authority's last ``@``."""
    _, sep, rest = uri.partition("://")
    authority = rest.split("/", 1)[0] if sep else ""
    return authority.rsplit("@", 1)[0] if "@" in authority else ""


def safe_uri(uri: str) -> str:
    """``uri`` with its whole user-info replaced by ``***`` (also when the password has an ``@``)."""
    userinfo = _userinfo(uri)
    return redact(uri.replace(userinfo + "@", "***@", 1)) if userinfo else redact(uri)


class ArchiveConnection:
    """The archive's collection on its server, and the server's errors as :class:`ArchiveError`.

    Args:
        uri: MongoDB URI (default: ``Endpoints().mongodb_uri``, i.e. ``MONGODB_URI`` or its file).
        settings: database, timeouts, spool location (default: from ``HIVERL_ARCHIVE_*``).
    """

    def __init__(self, uri: str | None = None, settings: ArchiveSettings | None = None) -> None:
        self.settings = settings or ArchiveSettings()
        self._uri = uri or Endpoints().mongodb_uri
        timeout_ms = int(self.settings.timeout_s * 1000)
        try:
            self._client: MongoClient[dict[str, Any]] = MongoClient(
                self._uri,
                tz_aware=True,
                serverSelectionTimeoutMS=timeout_ms,
                connectTimeoutMS=timeout_ms,
                socketTimeoutMS=timeout_ms * 5,
                appname="hiverl-archive",
            )
        except ConfigurationError as exc:
            raise ArchiveError(f"archive URI {self.where} is invalid: {self._scrub(str(exc))}") from None
        self._collection: Collection[dict[str, Any]] = self._client[self.settings.database][
            self.settings.collection
        ]
        self._indexed = False

    @property
    def where(self) -> str:
        """The archive's address, safe to print: redacted URI, database and collection."""
        return f"{safe_uri(self._uri)} db={self.settings.database} collection={self.settings.collection}"

    def _scrub(self, text: str) -> str:
        """``text`` with the URI's user name and password removed (server messages may echo them)."""
        from urllib.parse import unquote, urlsplit

        text = redact(text.replace(self._uri, safe_uri(self._uri)))
        userinfo = _userinfo(self._uri)
        secrets = [userinfo, *userinfo.split(":", 1)] if userinfo else []
        try:
            parts = urlsplit(self._uri.split(",")[0])
            secrets += [unquote(s) for s in (parts.password, parts.username) if s]
        except ValueError:
            pass
        for secret in secrets:
            if len(secret) >= 3:
                text = text.replace(secret, "***")
        return text

    # -- connection ------------------------------------------------------------------------------

    def _server_call(self, what: str, call: Any) -> Any:
        """Run ``call()``; translate driver errors into :class:`ArchiveError` with a clear message."""
        try:
            if not self._indexed:
                self._ensure_indexes()
            return call()
        except OperationFailure as exc:
            if exc.code in _AUTH_CODES or "authentication" in str(exc).lower():
                said = self._scrub(str((exc.details or {}).get("errmsg", exc))).strip().rstrip(".")
                has_user = "@" in self._uri.split("?")[0]
                fix = (
                    "Check the user name and password in MONGODB_URI (or the file MONGODB_URI_FILE names) "
                    "and the authSource/authMechanism options"
                    if has_user
                    else "The server requires a user: put user:password@ into MONGODB_URI "
                    "(or MONGODB_URI_FILE)"
                )
                raise ArchiveAuthError(
                    f"the archive server at {self.where} rejected the credentials while trying to {what} "
                    f"(server said: {said}). {fix}."
                ) from None
            raise ArchiveError(f"archive {self.where}: {what} failed: {self._scrub(str(exc))}") from None
        except PyMongoError as exc:
            reason = self._scrub(str(exc)).splitlines()[0]
            for cut in (" (configured timeouts", ", Timeout:"):
                reason = reason.split(cut)[0]
            raise ArchiveUnreachableError(f"archive {self.where} is unreachable ({what}): {reason}") from None

    def _ensure_indexes(self) -> None:
        """The indexes of the usual queries (idempotent; created on first use)."""
        c = self._collection
        c.create_index([("session_id", ASCENDING)], name="session_id", unique=True)
        c.create_index([("env_id", ASCENDING), ("started_at", DESCENDING)], name="env_started")
        c.create_index([("status", ASCENDING), ("heartbeat_at", ASCENDING)], name="status_heartbeat")
        c.create_index([("results.best_return", DESCENDING)], name="best_return")
        c.create_index([("started_at", DESCENDING)], name="started")
        c.create_index([("tags", ASCENDING)], name="tags")
        self._indexed = True

    def ping(self) -> None:
        """Raise :class:`ArchiveError` (or :class:`ArchiveAuthError`) unless the archive answers."""
        self._server_call("ping", lambda: self._collection.find_one({}, {"_id": 1}))

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
