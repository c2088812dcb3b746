"""The server-side Lua scripts of the memory (``replay_memory/lua/``), loaded with EVALSHA.

Every script runs atomically on the Redis node that owns its shard's hash tag; each starts with
``common.lua`` (key layout, float64 packing, the K-ary sum tree). redis-py's ``Script`` sends
EVALSHA and reloads the source on NOSCRIPT (after a restart or on a fresh cluster node).

The scripts that only read (:data:`READ_ONLY`) run with EVALSHA_RO instead: Redis's ACL checks
EVALSHA's keys as written (it cannot know what a script does), EVALSHA_RO's as read, so a user
with read-only keys (``%R~``, the memory monitor's) may run them.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from redis.exceptions import NoScriptError

_LUA = Path(__file__).with_name("lua")
NAMES = ("create", "insert", "sample", "update", "drop", "stats", "mass", "snapshot", "restore")
READ_ONLY = frozenset({"stats", "mass"})


@cache
def source(name: str) -> str:
    """Full source of one script: the common prelude followed by the script body."""
    return (_LUA / "common.lua").read_text() + "\n" + (_LUA / f"{name}.lua").read_text()


class Scripts:
    """The memory's scripts registered on one redis-py client (plain or cluster)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._scripts = {name: client.register_script(source(name)) for name in NAMES}

    def __call__(self, name: str, keys: list[str], args: list[Any]) -> Any:
        script = self._scripts[name]
        if name not in READ_ONLY:
            return script(keys=keys, args=args)
        try:
            return self._client.evalsha_ro(script.sha, len(keys), *keys, *args)
        except NoScriptError:  # as redis-py's Script does for EVALSHA
            script.sha = self._client.script_load(script.script)
            return self._client.evalsha_ro(script.sha, len(keys), *keys, *args)
