"""Claim a distinct worker index from Redis, so ``docker compose up --scale game=N`` needs no setup.

Each replica of the ``game`` service is the same container with the same settings; the only thing
that tells replicas apart is their host name. A replica claims the lowest free index of the hive
(``0 .. workers - 1``) as a lease in Redis and keeps it while it runs:

1. one Lua script (``lua/worker_index_claim.lua``), run atomically by Redis: if this holder
   already owns an index (a restarted container keeps its host name), refresh and return it; else
   take the lowest free slot with ``SET NX PX``; two replicas racing for the same slot cannot
   both win;
2. a background thread renews the lease every ``lease_s / 3`` seconds (compare-and-expire: only
   while the key still holds this holder's name);
3. on a clean stop the lease is released (compare-and-delete); a crashed replica's lease expires
   after ``lease_s`` seconds and a standby replica takes its index over.

The hive's size is not a second number to keep in step with ``--scale``: ``run`` claims among
:data:`MAX_ACTORS` indices (the most a hive's settings allow), so N replicas hold ``0 .. N-1``, and it
hands the child ``CONFIG_ACTORS`` = the number of live leases (at least ``index + 1``), so the ε
ladder spreads over the actors that really play. When that number changes for ``settle_s`` seconds
(replicas added or removed), the child is stopped and started again with the new size; actors are
stateless, so a restart costs only the episodes in flight.

In a container (``compose.yaml``)::

    python -m game.worker_index run -- hiverl actor   # claim, run the command with
                                                       # HIVERL_ACTOR_INDEX=<i>, keep the lease
    python -m game.worker_index check                  # health check: this host holds an index

The hive is ``CONFIG_SESSION_ID`` (the session settings, :mod:`hiverl.config`); its size is the live
leases; Redis is ``REDIS_URL`` (:mod:`hiverl.endpoints`).

Keys: ``{key_prefix}hiverl:{<hive>}:worker-index:<i>`` (one hash tag per hive, so the script also
runs on a Redis Cluster).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Annotated, Any

import typer

log = logging.getLogger(__name__)

_LUA = Path(__file__).with_name("lua")


@cache
def _script(name: str) -> str:
    """The source of ``lua/worker_index_<name>.lua`` (claim, renew, release)."""
    return (_LUA / f"worker_index_{name}.lua").read_text()


class WorkerIndexError(RuntimeError):
    """No index could be claimed (wait time over) or the arguments are invalid."""


def slot_key(hive: str, index: int, key_prefix: str = "") -> str:
    """Redis key of worker slot ``index`` of ``hive``."""
    return f"{key_prefix}hiverl:{{{hive}}}:worker-index:{index}"


def _validate(hive: str, workers: int, holder: str, lease_s: float) -> None:
    if not hive or any(c in hive for c in "{}"):
        raise WorkerIndexError(f"hive={hive!r}: must be a non-empty name without braces")
    if not 1 <= workers <= 4096:
        raise WorkerIndexError(f"workers={workers}: allowed 1..4096")
    if not holder:
        raise WorkerIndexError("holder must be a non-empty string (e.g. the container's host name)")
    if not lease_s >= 1.0:
        raise WorkerIndexError(f"lease_s={lease_s}: must be >= 1 second")


def try_claim(
    client: Any, *, hive: str, workers: int, holder: str, lease_s: float = 30.0, key_prefix: str = ""
) -> int | None:
    """One atomic attempt: this holder's index, or the lowest free one, or None when all are taken.

    Args:
        client: a ``redis.Redis`` client.
        hive: name shared by all replicas of one hive (e.g. the session id).
        workers: number of indices, ``0 .. workers - 1``.
        holder: unique name of this replica (its host name).
        lease_s: lease duration in seconds; renew well before it ends.
        key_prefix: prepended to the keys (isolates tests).
    """
    _validate(hive, workers, holder, lease_s)
    keys = [slot_key(hive, i, key_prefix) for i in range(workers)]
    index = int(client.eval(_script("claim"), len(keys), *keys, holder, int(lease_s * 1000)))
    return None if index < 0 else index


def claim_worker_index(
    client: Any,
    *,
    hive: str,
    workers: int,
    holder: str | None = None,
    lease_s: float = 30.0,
    wait_s: float | None = None,
    key_prefix: str = "",
) -> int:
    """Claim an index, waiting (as a standby) while all ``workers`` indices are taken.

    Args:
        holder: defaults to this machine's host name (a container's id under Docker).
        wait_s: give up after this many seconds (None: wait forever).

    Raises:
        WorkerIndexError: invalid arguments, or no index became free within ``wait_s``.
    """
    holder = holder or socket.gethostname()
    deadline = None if wait_s is None else time.monotonic() + wait_s
    announced = False
    while True:
        index = try_claim(
            client, hive=hive, workers=workers, holder=holder, lease_s=lease_s, key_prefix=key_prefix
        )
        if index is not None:
            return index
        if deadline is not None and time.monotonic() >= deadline:
            raise WorkerIndexError(
                f"all {workers} worker indices of hive {hive!r} are taken; run fewer replicas"
            )
        if not announced:
            log.warning("all %d worker indices of hive %r are taken: waiting as a standby", workers, hive)
            announced = True
        time.sleep(min(lease_s / 3, 5.0))


def renew(client: Any, *, hive: str, index: int, holder: str, lease_s: float, key_prefix: str = "") -> bool:
    """Extend the lease; False when this holder no longer owns ``index`` (it expired and was taken)."""
    key = slot_key(hive, index, key_prefix)
    return bool(client.eval(_script("renew"), 1, key, holder, int(lease_s * 1000)))


def release(client: Any, *, hive: str, index: int, holder: str, key_prefix: str = "") -> bool:
    """Give the index back (only if this holder still owns it); True when it was released."""
    return bool(client.eval(_script("release"), 1, slot_key(hive, index, key_prefix), holder))


def holder_of(client: Any, *, hive: str, index: int, key_prefix: str = "") -> str | None:
    """Who holds ``index`` now (None: free)."""
    value = client.get(slot_key(hive, index, key_prefix))
    return None if value is None else value.decode() if isinstance(value, bytes) else str(value)


@dataclass
class WorkerLease:
    """A claimed index kept alive by a background thread; use as a context manager.

    ``lost`` is set when a renewal finds the index owned by someone else (this replica was cut off
    from Redis longer than ``lease_s``): the worker should stop, so two replicas never share an index.
    """

    client: Any
    hive: str
    workers: int
    holder: str = field(default_factory=socket.gethostname)
    lease_s: float = 30.0
    wait_s: float | None = None
    key_prefix: str = ""
    index: int = -1
    lost: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> WorkerLease:
        self.index = claim_worker_index(
            self.client,
            hive=self.hive,
            workers=self.workers,
            holder=self.holder,
            lease_s=self.lease_s,
            wait_s=self.wait_s,
            key_prefix=self.key_prefix,
        )
        self._thread = threading.Thread(target=self._keep_alive, name="worker-index-lease", daemon=True)
        self._thread.start()
        return self

    def _keep_alive(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            try:
                owned = renew(
                    self.client,
                    hive=self.hive,
                    index=self.index,
                    holder=self.holder,
                    lease_s=self.lease_s,
                    key_prefix=self.key_prefix,
                )
            except Exception as error:  # Redis briefly away: keep trying until the lease would end
                log.warning("cannot renew worker index %d: %s", self.index, error)
                continue
            if not owned:
                log.error("worker index %d of hive %r was lost to another replica", self.index, self.hive)
                self.lost.set()
                return

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if not self.lost.is_set():
            try:
                release(
                    self.client,
                    hive=self.hive,
                    index=self.index,
                    holder=self.holder,
                    key_prefix=self.key_prefix,
                )
            except Exception as error:  # the lease expires by itself
                log.warning("cannot release worker index %d: %s", self.index, error)


def live_count(client: Any, *, hive: str, workers: int, key_prefix: str = "") -> int:
    """How many of ``hive``'s ``workers`` indices are held now (one MGET)."""
    keys = [slot_key(hive, i, key_prefix) for i in range(workers)]
    return sum(value is not None for value in client.mget(keys))


MAX_ACTORS = 256
"""Indices ``run`` claims among: the most actors a hive's settings allow (``SessionConfig.actors``)."""
ACTORS_ENV = "CONFIG_ACTORS"
"""The hive size handed to the child: the live leases, so the ε ladder spans the actors that play."""
SETTLE_ENV = "HIVERL_ACTORS_SETTLE_S"
"""Seconds a changed live count must hold before the child restarts with it (default 30)."""
WORKER_INDEX_ENV = "HIVERL_ACTOR_INDEX"
"""Environment variable that tells the worker command its claimed index."""
HOLDER_ENV = "HIVERL_WORKER_HOLDER"
"""Name of this replica (default: the host name, a container's id); set it to run several on one host."""


def _holder() -> str:
    return os.environ.get(HOLDER_ENV) or socket.gethostname()


def _hive_settings() -> tuple[Any, str, int, str]:
    """(Redis client, hive name, workers, key prefix) from the session settings and endpoints."""
    import redis

    from hiverl.config import load_config
    from hiverl.endpoints import Endpoints

    config = load_config()
    if not config.session_id:
        raise WorkerIndexError("CONFIG_SESSION_ID must be set: every replica of one hive uses the same id")
    # The leases live beside the board, on the first server of a sharded memory's URL list.
    client = redis.Redis.from_url(Endpoints().redis_url.split(",")[0].strip(), socket_timeout=10)
    return client, config.session_id, MAX_ACTORS, config.memory.key_prefix


def _size(client: Any, hive: str, workers: int, prefix: str, index: int) -> int:
    """The hive size for the child: the live leases, at least ``index + 1``."""
    return max(live_count(client, hive=hive, workers=workers, key_prefix=prefix), index + 1)


def _run(command: Sequence[str]) -> int:
    if not command:
        raise WorkerIndexError("run: give the worker command after --, e.g. run -- hiverl actor")
    client, hive, workers, prefix = _hive_settings()
    settle_s = float(os.environ.get(SETTLE_ENV) or 30.0)
    with WorkerLease(client, hive=hive, workers=workers, holder=_holder(), key_prefix=prefix) as lease:
        stopping = threading.Event()
        child: subprocess.Popen[bytes] | None = None

        def forward(signum: int, _frame: object) -> None:
            stopping.set()
            if child is not None:
                child.send_signal(signum)

        signal.signal(signal.SIGTERM, forward)
        signal.signal(signal.SIGINT, forward)
        stopping.wait(min(settle_s, 3.0))  # replicas started together: let their claims land first
        while not stopping.is_set():
            size = _size(client, hive, workers, prefix, lease.index)
            log.info("actor index %d of %d live (hive %r, holder %s)", lease.index, size, hive, lease.holder)
            env = {**os.environ, WORKER_INDEX_ENV: str(lease.index), ACTORS_ENV: str(size)}
            child = subprocess.Popen(list(command), env=env)
            changed_since: float | None = None
            next_count = time.monotonic() + 5.0
            while True:
                try:
                    return child.wait(timeout=1.0)
                except subprocess.TimeoutExpired:
                    pass
                if lease.lost.is_set():  # another replica owns the index now: never share it
                    child.terminate()
                    child.wait()
                    return 75  # EX_TEMPFAIL: the restart policy starts a fresh claim
                if stopping.is_set() or time.monotonic() < next_count:
                    continue
                next_count = time.monotonic() + 5.0
                try:
                    live = _size(client, hive, workers, prefix, lease.index)
                except Exception as error:  # Redis briefly away: the lease thread judges that
                    log.warning("cannot count the hive's actors: %s", error)
                    continue
                if live == size:
                    changed_since = None
                elif changed_since is None:
                    changed_since = time.monotonic()
                elif time.monotonic() - changed_since >= settle_s:
                    log.info("the hive has %d actors now (was %d): restarting the actor", live, size)
                    child.terminate()
                    child.wait()
                    break
        return 0


def _check() -> int:
    client, hive, workers, prefix = _hive_settings()
    holder = _holder()
    values = client.mget([slot_key(hive, i, prefix) for i in range(workers)])
    held = any(v is not None and (v.decode() if isinstance(v, bytes) else str(v)) == holder for v in values)
    return 0 if held else 1


app = typer.Typer(
    name="python -m game.worker_index",
    help="Claim a distinct actor index from Redis (see the module docstring).",
    add_completion=False,
    no_args_is_help=True,
)


def _exit_with(action: Callable[[], int]) -> None:
    from hiverl.config import ConfigError
    from hiverl.endpoints import Endpoints
    from hiverl.redis_access import ACCESS_ERRORS, exit_denied

    try:
        code = action()
    except (WorkerIndexError, ConfigError) as error:
        typer.echo(f"error: {error}", err=True)
        code = 2
    except ACCESS_ERRORS as error:  # refused credentials or commands: waiting cannot help
        exit_denied(error, Endpoints().redis_url)
    raise typer.Exit(code)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def run(
    command: Annotated[
        list[str] | None, typer.Argument(help="-- then the actor command, e.g. -- hiverl actor")
    ] = None,
) -> None:
    """Claim an index, run COMMAND with HIVERL_ACTOR_INDEX set, keep the lease while it runs."""
    _exit_with(lambda: _run(command or []))


@app.command()
def check() -> None:
    """Health check: exit 0 when this host holds an actor index."""
    _exit_with(_check)


def main(argv: Sequence[str] | None = None) -> int:
    """``run -- COMMAND...`` or ``check``; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        app(args=None if argv is None else list(argv), prog_name=app.info.name)
    except SystemExit as done:
        return done.code if isinstance(done.code, int) else 0 if done.code is None else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
