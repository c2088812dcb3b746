"""Replay memory spread over several Redis servers: insert and sample throughput with 1, 2 and 4 shards.

    python bench/replay_shards.py [--shards 1,2,4] [--processes 4] [--seconds 3] [--kinds cartpole,pong]

For each shard count k the bench starts k private ``redis-server`` processes (127.0.0.1, free ports,
persistence off, stopped at the end) and opens one memory with ``shards=k`` over their
comma-separated URLs, so shard j lives on server j (``replay_memory.memory.connect``): the setting
the compose overlay ``compose.shards.yaml`` and the Helm chart's ``redis.hosts`` give a hive. Every
memory is filled to its capacity first, then ``--processes`` concurrent clients

* insert: batches of 500 transitions encoded beforehand (what reaches Redis from an actor's
  ``insert``, without the actor's own encoding CPU), each batch one script call per shard it spans;
* sample: batches of 256 (the learner's), drawn from every shard in proportion to its priority mass,
  decoded.

Transitions: CartPole-like (4 float32) and Pong-like (4x84x84 uint8 frame stacks of real Pong play,
3-step, frames shared as the actors store them). The shard counts are measured in turn, slice by
slice, so load drifting on a shared machine hits them alike. Alongside the throughput, the CPU
time of the busiest Redis server per wall second: near 100 % the one-core server is the bottleneck
and more servers help; well below it the clients (or the machine's cores) are.

Prints a table, then as the last line one JSON object with ``shards``, ``insert_per_s`` and
``sample_per_s`` (lists in the order of ``shards``, for the first kind) and the same per kind.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.replay import cartpole_batch, pong_batch
from replay_memory import MemoryConfig, ObservationSpec, ReplayMemory, TransitionBatch
from replay_memory.codec import encode_batch

SAMPLE_BATCH = 256
INSERT_BATCH = 500
SPECS = {"cartpole": ObservationSpec((4,), "float32"), "pong": ObservationSpec((4, 84, 84), "uint8")}


@dataclass
class Result:
    """Totals of one (kind, shard count, operation) over its slices."""

    transitions: int = 0
    wall_s: float = 0.0
    redis_cpu_s: list[float] = field(default_factory=list)  # per server

    @property
    def per_s(self) -> float:
        return self.transitions / self.wall_s if self.wall_s else 0.0

    @property
    def busiest_server_load(self) -> float:
        """CPU seconds of the busiest Redis server per wall second (1.0 = one core saturated)."""
        return max(self.redis_cpu_s) / self.wall_s if self.wall_s else 0.0

    @property
    def redis_ceiling_per_s(self) -> float:
        """Transitions/s at which the busiest server would use its whole core (from its CPU time):
        the memory's own limit once enough clients on enough cores feed it."""
        load = self.busiest_server_load
        return self.per_s / load if load else 0.0


# ---------------------------------------------------------------- servers
@contextmanager
def redis_servers(count: int, home: Path) -> Iterator[list[str]]:
    """``count`` private redis-servers (persistence off) on free loopback ports; their URLs."""
    from hiverl.services import RedisServer, free_ports

    servers = [
        RedisServer(port, home / f"redis-{i}", persistent=False) for i, port in enumerate(free_ports(count))
    ]
    try:
        for server in servers:
            server.start()
        yield [server.url for server in servers]
    finally:
        for server in servers:
            server.stop()


def _redis_cpu(urls: list[str]) -> list[float]:
    """CPU seconds (user + system) each server has used."""
    result = []
    for url in urls:
        with redis.Redis.from_url(url) as client:
            info = client.info("cpu")
        result.append(float(info["used_cpu_user"]) + float(info["used_cpu_sys"]))
    return result


# ---------------------------------------------------------------- workers
def _insert_worker(
    url: str, config: MemoryConfig, payloads: list[bytes], seconds: float, start: Any, out: Any
) -> None:
    with ReplayMemory.open(url, config) as memory:
        start.wait()
        t0, n = time.perf_counter(), 0
        while time.perf_counter() - t0 < seconds:
            n += memory._insert_payloads(payloads, None)
        out.put((n, time.perf_counter() - t0))


def _sample_worker(url: str, config: MemoryConfig, seed: int, seconds: float, start: Any, out: Any) -> None:
    rng = np.random.default_rng(seed)
    with ReplayMemory.open(url, config) as memory:
        start.wait()
        t0, n = time.perf_counter(), 0
        while time.perf_counter() - t0 < seconds:
            n += len(memory.sample(SAMPLE_BATCH, 0.4, rng=rng).rewards)
        out.put((n, time.perf_counter() - t0))


def run_clients(
    target: Callable[..., None], args: Callable[[int], tuple[Any, ...]], processes: int, seconds: float
) -> tuple[int, float]:
    """``processes`` clients of ``target`` for ``seconds``: (transitions, the longest client's wall s)."""
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    start = ctx.Event()
    procs = [ctx.Process(target=target, args=(*args(i), seconds, start, out)) for i in range(processes)]
    for p in procs:
        p.start()
    time.sleep(0.3)  # connections opened, memories checked
    start.set()
    counts = [out.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join()
        if p.exitcode:
            raise RuntimeError(f"a client exited with {p.exitcode}")
    return sum(c[0] for c in counts), max(c[1] for c in counts)


# ---------------------------------------------------------------- measuring
def transitions(kind: str) -> TransitionBatch:
    if kind == "cartpole":
        return cartpole_batch(INSERT_BATCH, np.random.default_rng(0))
    return pong_batch(INSERT_BATCH)


def fill(url: str, config: MemoryConfig, payloads: list[bytes]) -> None:
    """The memory filled to its capacity (pre-encoded payloads, in cycles)."""
    with ReplayMemory.open(url, config) as memory:
        done = 0
        while done < config.capacity:
            done += memory._insert_payloads(payloads[: config.capacity - done], None)


def bench_kind(
    kind: str, capacity: int, groups: dict[int, list[str]], processes: int, seconds: float
) -> dict[int, dict[str, Result]]:
    """Insert and sample throughput of one memory per shard count (``groups``: k -> its servers)."""
    spec = SPECS[kind]
    payloads = encode_batch(transitions(kind), spec)
    configs = {}
    for k, urls in groups.items():
        configs[k] = MemoryConfig(
            name=f"bench-shards-{kind}-{k}", capacity=capacity, shards=k, alpha=0.6, observation=spec
        )
        fill(",".join(urls), configs[k], payloads)
    results = {k: {"insert": Result(), "sample": Result()} for k in groups}
    slices = max(1, round(seconds))
    for op in ("sample", "insert"):
        for _ in range(slices):
            for k, urls in groups.items():
                url = ",".join(urls)
                worker: Callable[..., None]
                if op == "insert":
                    worker, args = _insert_worker, (lambda i, u=url, c=configs[k]: (u, c, payloads))
                else:
                    worker, args = _sample_worker, (lambda i, u=url, c=configs[k]: (u, c, i))
                cpu0 = _redis_cpu(urls)
                n, wall = run_clients(worker, args, processes, seconds / slices)
                cpu = [b - a for a, b in zip(cpu0, _redis_cpu(urls), strict=True)]
                result = results[k][op]
                result.transitions += n
                result.wall_s += wall
                result.redis_cpu_s = [
                    a + b for a, b in zip(result.redis_cpu_s or [0.0] * k, cpu, strict=True)
                ]
    for k, urls in groups.items():
        for url in urls:
            with redis.Redis.from_url(url) as client:
                keys = list(client.scan_iter(match=f"*{{{configs[k].name}:*"))
                if keys:
                    client.delete(*keys)
    return results


# ---------------------------------------------------------------- report
def print_table(results: dict[str, dict[int, dict[str, Result]]], processes: int, cores: int) -> None:
    head = [
        "kind",
        "shards",
        "insert/s",
        "x",
        "sample/s",
        "x",
        "redis ins",
        "redis smp",
        "ceil ins/s",
        "ceil smp/s",
    ]
    widths = [9, 6, 10, 5, 9, 5, 9, 9, 11, 10]
    print(" | ".join(f"{h:>{w}}" for h, w in zip(head, widths, strict=True)))
    print("-" * (sum(widths) + 3 * (len(widths) - 1)))
    for kind, by_k in results.items():
        base = by_k[min(by_k)]
        for k, r in by_k.items():
            cells = [
                kind,
                str(k),
                f"{r['insert'].per_s:,.0f}",
                f"{r['insert'].per_s / base['insert'].per_s:.2f}",
                f"{r['sample'].per_s:,.0f}",
                f"{r['sample'].per_s / base['sample'].per_s:.2f}",
                f"{100 * r['insert'].busiest_server_load:.0f}%",
                f"{100 * r['sample'].busiest_server_load:.0f}%",
                f"{r['insert'].redis_ceiling_per_s:,.0f}",
                f"{r['sample'].redis_ceiling_per_s:,.0f}",
            ]
            print(" | ".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True)))
    print(
        f"(transitions/s of {processes} concurrent clients, one Redis server per shard; x = against "
        f"{min(next(iter(results.values())))} shard(s);"
    )
    print(
        f" redis ins/smp = CPU of the busiest server per wall second (100% = its core); {cores} cores here;"
    )
    print(" ceil = the rate at which that server would use its whole core: the memory's own limit)")


def _shard_list(text: str) -> list[int]:
    values = [int(part) for part in text.split(",") if part.strip()]
    if not values or any(v < 1 for v in values) or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"{text!r}: distinct shard counts >= 1, e.g. 1,2,4")
    return values


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shards", type=_shard_list, default=[1, 2, 4], help="shard counts (default 1,2,4)")
    parser.add_argument("--processes", type=int, default=4, help="concurrent clients (default 4)")
    parser.add_argument("--seconds", type=float, default=3.0, help="per measurement (default 3)")
    parser.add_argument("--kinds", default="cartpole,pong", help="cartpole and/or pong (default both)")
    parser.add_argument("--capacity", type=int, default=100_000, help="CartPole memory (default 100,000)")
    parser.add_argument("--pong-capacity", type=int, default=20_000, help="Pong memory (default 20,000)")
    parser.add_argument("--home", type=Path, default=None, help="folder of the servers (default: a temp dir)")
    args = parser.parse_args(argv)
    kinds = [kind.strip() for kind in args.kinds.split(",") if kind.strip()]
    if not kinds or set(kinds) - set(SPECS):
        parser.error(f"--kinds: one or more of {', '.join(SPECS)}")
    shard_counts = args.shards
    lcm = int(np.lcm.reduce(shard_counts))
    capacities = {"cartpole": args.capacity, "pong": args.pong_capacity}
    for kind in kinds:  # every memory's capacity is a multiple of its shard count
        capacities[kind] = max(lcm * 2, capacities[kind] // lcm * lcm)
    cores = len(os.sched_getaffinity(0))

    results: dict[str, dict[int, dict[str, Result]]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="hiverl-bench-shards-", dir=args.home) as home,
        redis_servers(sum(shard_counts), Path(home)) as urls,
    ):
        groups, used = {}, 0
        for k in shard_counts:  # each shard count its own servers, all running at once
            groups[k], used = urls[used : used + k], used + k
        for kind in kinds:
            results[kind] = bench_kind(kind, capacities[kind], groups, args.processes, args.seconds)
    print_table(results, args.processes, cores)
    first = results[kinds[0]]
    summary: dict[str, Any] = {
        "shards": shard_counts,
        "insert_per_s": [round(first[k]["insert"].per_s) for k in shard_counts],
        "sample_per_s": [round(first[k]["sample"].per_s) for k in shard_counts],
        "kind": kinds[0],
        "processes": args.processes,
        "cores": cores,
        "seconds": args.seconds,
        "by_kind": {
            kind: {
                "capacity": capacities[kind],
                "insert_per_s": [round(by_k[k]["insert"].per_s) for k in shard_counts],
                "sample_per_s": [round(by_k[k]["sample"].per_s) for k in shard_counts],
                "busiest_redis_load_insert": [
                    round(by_k[k]["insert"].busiest_server_load, 2) for k in shard_counts
                ],
                "busiest_redis_load_sample": [
                    round(by_k[k]["sample"].busiest_server_load, 2) for k in shard_counts
                ],
                "redis_ceiling_insert_per_s": [
                    round(by_k[k]["insert"].redis_ceiling_per_s) for k in shard_counts
                ],
                "redis_ceiling_sample_per_s": [
                    round(by_k[k]["sample"].redis_ceiling_per_s) for k in shard_counts
                ],
            }
            for kind, by_k in results.items()
        },
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
