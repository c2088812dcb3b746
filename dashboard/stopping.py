"""Stopping any running hive, wherever it was started, through its board in Redis.

Every role of a hive polls the stop flag of the session's board (``game/board.py``,
``{prefix}hiverl:{<session>}:board``, field ``stop``): once set, the learner checkpoints and ends
with that reason, the actors and the evaluator finish, and the trainer records the session as
``stopped``. The dashboard raises that flag, so a session started in a terminal, in a container or
by another dashboard stops exactly like one started here (which it also sends SIGINT).

The flag is set only on a board that exists and has no stop reason yet, in one script, so a
request can neither create a board for an unknown session nor overwrite ``solved``/``completed``.
The key is :func:`hiverl.session.board_key`, the one ``game/board.py`` uses.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from dashboard.outage import OutageGuard
from hiverl.session import board_key

#: The reason written to the board: the learner ends with it and the trainer records ``stopped``.
STOP_REASON = "stopped"

_STOP_IF_RUNNING = """
if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HSETNX', KEYS[1], 'stop', ARGV[1]) == 1 then return 1 end
return redis.call('HGET', KEYS[1], 'stop')
"""


@dataclass(frozen=True)
class StopOutcome:
    """What a stop request found on the boards it tried."""

    requested: tuple[str, ...]  # boards whose stop flag this request set
    already: dict[str, str]  # boards that already had a stop reason (stopping or finished)

    @property
    def found(self) -> bool:
        return bool(self.requested or self.already)


class StopRequester:
    """Sets the stop flag of hive boards in Redis (``redis_url``: the hive's Redis)."""

    def __init__(self, redis_url: str, timeout_s: float = 1.0, backoff_s: float = 5.0) -> None:
        self.redis_url = redis_url.split(",")[0].strip()
        self.timeout_s = timeout_s
        self.guard = OutageGuard("redis", backoff_s)
        self._client: Any = None
        self._script: Any = None
        self._lock = threading.Lock()

    def _connect(self) -> Any:
        with self._lock:
            if self._client is None:
                import redis

                self._client = redis.Redis.from_url(
                    self.redis_url, socket_timeout=self.timeout_s, socket_connect_timeout=self.timeout_s
                )
                self._script = self._client.register_script(_STOP_IF_RUNNING)
            return self._script

    def request(self, session_id: str, key_prefixes: Iterable[str]) -> StopOutcome:
        """Raise the stop flag of ``session_id``'s board under each candidate key prefix.

        Raises :class:`dashboard.outage.ServiceDown` when Redis does not answer.
        """
        keys = list(dict.fromkeys(board_key(session_id, prefix) for prefix in key_prefixes))

        def run() -> StopOutcome:
            script = self._connect()
            requested, already = [], {}
            for key in keys:
                answer = script(keys=[key], args=[STOP_REASON])
                if isinstance(answer, bytes):  # stopping or finished already: first reason wins
                    already[key] = answer.decode()
                elif answer == 1:
                    requested.append(key)
            return StopOutcome(tuple(requested), already)

        return self.guard.call(run)

    def close(self) -> None:
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None
