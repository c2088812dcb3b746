"""Replay-memory benchmark: insert and sample throughput, bytes per transition, and the seed pattern.

    python bench/replay.py [--quick] [--redis-url URL]

Runs everything against one Redis: by default a private ``redis-server`` with persistence off on
a free port (so the numbers measure the memory, not the disk); ``--redis-url`` uses another one.
Measures, for CartPole-size and Atari-size transitions, the aggregate transitions/s of 1, 2 and
4 concurrent processes inserting (validate + encode + one script call per batch) and sampling
(one script call per batch of 256 + decode) at capacities 100,000 and 1,000,000; bytes per
transition from Redis's ``used_memory``; Redis-side microseconds per sampled transition (from
``INFO commandstats``, less sensitive to other load on the machine); and, side by side, the
seed's pattern (LPUSH + LTRIM round trip per transition, random LINDEX sampling on a 500,000
entry list). Prints a table, then as the last line one JSON object.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from replay_memory import MemoryConfig, ObservationSpec, ReplayMemory, TransitionBatch
from replay_memory.codec import encode_batch

SAMPLE_BATCH = 256
INSERT_BATCH = 500
SEED_LIST = 500_000
PROCESSES = (1, 2, 4)
CARTPOLE = ObservationSpec((4,), "float32")
ATARI = ObservationSpec((4, 84, 84), "uint8")


@dataclass(frozen=True)
class Settings:
    """Sizes and durations of one benchmark run."""

    seconds: float  # per measurement
    capacities: tuple[int, ...]
    atari_capacity: int
    seed_list: int


# ---------------------------------------------------------------- transitions
def cartpole_batch(n: int, rng: np.random.Generator) -> TransitionBatch:
    obs = rng.normal(size=(n, 4)).astype(np.float32)
    return TransitionBatch(
        obs=obs,
        actions=rng.integers(2, size=n),
        rewards=np.ones(n, np.float32),
        next_obs=obs + 0.01,
        discounts=np.full(n, 0.99**3, np.float32),
        terminated=np.zeros(n, bool),
        truncated=np.zeros(n, bool),
        n_steps=np.full(n, 3, np.int32),
        episode_ids=np.zeros(n, np.int64),
        step_indices=np.arange(n),
        worker_id="bench",
    )


def pong_batch(n: int, n_step: int = 3) -> TransitionBatch:
    """n transitions of real Pong play (random actions), 3-step: obs and next_obs share a frame."""
    import ale_py
    import gymnasium
    from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

    gymnasium.register_envs(ale_py)
    env = gymnasium.make("ALE/Pong-v5", frameskip=1, repeat_action_probability=0.0)
    env = FrameStackObservation(AtariPreprocessing(env, frame_skip=4), 4)
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    stacks = [obs]
    while len(stacks) < n + n_step:
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(6)))
        stacks.append(obs)
        if terminated or truncated:
            obs, _ = env.reset()
            stacks.append(obs)
    env.close()
    s = np.stack(stacks)
    return TransitionBatch(
        obs=s[:n],
        actions=rng.integers(6, size=n),
        rewards=np.zeros(n, np.float32),
        next_obs=s[n_step : n + n_step],
        discounts=np.full(n, 0.99**n_step, np.float32),
        terminated=np.zeros(n, bool),
        truncated=np.zeros(n, bool),
        n_steps=np.full(n, n_step, np.int32),
        episode_ids=np.zeros(n, np.int64),
        step_indices=np.arange(n),
        worker_id="bench",
    )


# ---------------------------------------------------------------- measuring
def _run_workers(
    target: Callable[..., None], args: tuple[Any, ...], processes: int, seconds: float
) -> tuple[int, float, float]:
    """Runs ``processes`` workers of ``target`` for ``seconds``; returns the operations done, the
    longest worker's wall time and the workers' total CPU seconds (immune to other load)."""
    ctx = mp.get_context("fork")
    out: mp.Queue = ctx.Queue()
    start = ctx.Event()
    procs = [ctx.Process(target=target, args=(*args, seconds, start, out, i)) for i in range(processes)]
    for p in procs:
        p.start()
    time.sleep(0.3)  # connections opened, data prepared
    start.set()
    counts = [out.get(timeout=seconds + 120) for _ in procs]
    for p in procs:
        p.join()
    return sum(c[0] for c in counts), max(c[1] for c in counts), sum(c[2] for c in counts)


def _insert_worker(
    url: str, config: MemoryConfig, batch: TransitionBatch, seconds: float, start, out, i: int
) -> None:
    with ReplayMemory.open(url, config) as memory:
        start.wait()
        t0, cpu0 = time.perf_counter(), time.process_time()
        n = 0
        while time.perf_counter() - t0 < seconds:
            n += memory.insert(batch)
        out.put((n, time.perf_counter() - t0, time.process_time() - cpu0))


def _sample_worker(url: str, config: MemoryConfig, seconds: float, start, out, i: int) -> None:
    rng = np.random.default_rng(i)
    with ReplayMemory.open(url, config) as memory:
        start.wait()
        t0, cpu0 = time.perf_counter(), time.process_time()
        n = 0
        while time.perf_counter() - t0 < seconds:
            n += len(memory.sample(SAMPLE_BATCH, 0.4, rng=rng))
        out.put((n, time.perf_counter() - t0, time.process_time() - cpu0))


def _seed_insert_worker(url: str, payload: bytes, seconds: float, start, out, i: int) -> None:
    client = redis.Redis.from_url(url)
    start.wait()
    t0, cpu0 = time.perf_counter(), time.process_time()
    n = 0
    while time.perf_counter() - t0 < seconds:
        pipe = client.pipeline(transaction=False)
        pipe.lpush("seed:list", payload)
        pipe.ltrim("seed:list", 0, SEED_LIST - 1)
        pipe.execute()
        n += 1
    out.put((n, time.perf_counter() - t0, time.process_time() - cpu0))


def _seed_sample_worker(url: str, length: int, seconds: float, start, out, i: int) -> None:
    client = redis.Redis.from_url(url)
    rng = np.random.default_rng(i)
    start.wait()
    t0, cpu0 = time.perf_counter(), time.process_time()
    n = 0
    while time.perf_counter() - t0 < seconds:
        client.lindex("seed:list", int(rng.integers(length)))
        n += 1
    out.put((n, time.perf_counter() - t0, time.process_time() - cpu0))


def _fill(memory: ReplayMemory, payloads: list[bytes], count: int) -> None:
    """Writes ``count`` transitions cycling through pre-encoded payloads (fast fill)."""
    done = 0
    while done < count:
        chunk = payloads[: min(len(payloads), count - done)]
        memory._insert_payloads(chunk, None)
        done += len(chunk)


def _used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def _redis_cpu(client: redis.Redis) -> float:
    """CPU seconds the Redis server has used (user + system)."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def bench_memories(
    url: str,
    client: redis.Redis,
    kind: str,
    spec: ObservationSpec,
    batch: TransitionBatch,
    capacities: tuple[int, ...],
    s: Settings,
) -> list[dict[str, Any]]:
    """Bytes, insert and sample throughput of one memory per capacity.

    The capacities are measured in turn, one-second slice by slice, so load drifting on a shared
    machine hits them alike and their ratio stays meaningful.
    """
    configs = {
        c: MemoryConfig(name=f"bench-{kind}-{c}", capacity=c, alpha=0.6, observation=spec) for c in capacities
    }
    rows: dict[int, dict[str, Any]] = {c: {"kind": kind, "capacity": c} for c in capacities}
    payloads = encode_batch(batch, spec)
    for c, config in configs.items():
        before = _used_memory(client)
        with ReplayMemory.open(url, config) as memory:
            _fill(memory, payloads, c)
        rows[c]["bytes_per_transition"] = (_used_memory(client) - before) / c
    slices = max(1, round(s.seconds))
    jobs: list[tuple[str, Callable[..., None], tuple[Any, ...]]] = [
        ("sample", _sample_worker, ()),
        ("insert", _insert_worker, (batch,)),
    ]
    for op, worker, extra in jobs:
        for p in PROCESSES:
            totals = {c: np.zeros(4) for c in capacities}  # ops, wall s, client CPU s, Redis CPU s
            for _ in range(slices):
                for c in capacities:
                    cpu0 = _redis_cpu(client)
                    ops, wall, client_cpu = _run_workers(
                        worker, (url, configs[c], *extra), p, s.seconds / slices
                    )
                    totals[c] += (ops, wall, client_cpu, _redis_cpu(client) - cpu0)
            for c, (n_ops, seconds, cpu_client, cpu_redis) in totals.items():
                rows[c][f"{op}_{p}"] = n_ops / seconds
                if p == PROCESSES[-1]:
                    rows[c][f"redis_cpu_us_per_{op}"] = 1e6 * cpu_redis / n_ops
                    rows[c][f"client_cpu_us_per_{op}"] = 1e6 * cpu_client / n_ops
    for config in configs.values():
        client.delete(*(key for key in client.scan_iter(match=f"*{{{config.name}:*")))
    return [rows[c] for c in capacities]


def bench_seed(url: str, client: redis.Redis, payload: bytes, s: Settings) -> dict[str, Any]:
    """The seed's list pattern on a list of ``s.seed_list`` entries."""
    client.delete("seed:list")
    for lo in range(0, s.seed_list, 10_000):
        pipe = client.pipeline(transaction=False)
        pipe.lpush("seed:list", *([payload] * min(10_000, s.seed_list - lo)))
        pipe.execute()
    row: dict[str, Any] = {"kind": "seed list", "capacity": s.seed_list}
    row["bytes_per_transition"] = (client.memory_usage("seed:list") or 0) / s.seed_list
    for p in PROCESSES:
        ops, wall, _ = _run_workers(_seed_sample_worker, (url, s.seed_list), p, s.seconds)
        row[f"sample_{p}"] = ops / wall
    for p in PROCESSES:
        ops, wall, _ = _run_workers(_seed_insert_worker, (url, payload), p, s.seconds)
        row[f"insert_{p}"] = ops / wall
    client.delete("seed:list")
    return row


# ---------------------------------------------------------------- report
def print_table(rows: list[dict[str, Any]]) -> None:
    head = (
        ["kind", "capacity", "bytes/tr"] + [f"ins x{p}" for p in PROCESSES] + [f"smp x{p}" for p in PROCESSES]
    )
    head += ["cpu us/smp", "cpu us/ins"]
    print(" | ".join(f"{h:>12}" for h in head))
    print("-" * (15 * len(head)))
    for r in rows:
        cells = [r["kind"], f"{r['capacity']:,}", f"{r['bytes_per_transition']:.0f}"]
        cells += [f"{r[f'insert_{p}']:,.0f}" for p in PROCESSES] + [
            f"{r[f'sample_{p}']:,.0f}" for p in PROCESSES
        ]
        for op in ("sample", "insert"):
            key = f"redis_cpu_us_per_{op}"
            cells.append(f"{r[key]:.1f}+{r[f'client_cpu_us_per_{op}']:.1f}" if key in r else "-")
        print(" | ".join(f"{c:>12}" for c in cells))
    print("(transitions/s, aggregate over processes; ins = insert incl. validate + encode,")
    print(
        " smp = sample incl. decode; cpu us = Redis + client CPU microseconds per transition at 4 processes)"
    )


def _bound(row: dict[str, Any], op: str) -> float:
    redis_us, client_us = row[f"redis_cpu_us_per_{op}"], row[f"client_cpu_us_per_{op}"]
    return min(1e6 / redis_us, 2e6 / (redis_us + client_us))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="shorter measurements, Atari at 100k (about 2 min)"
    )
    parser.add_argument("--redis-url", default=None, help="use this Redis instead of a private server")
    args = parser.parse_args()
    s = (
        Settings(seconds=2.0, capacities=(100_000, 1_000_000), atari_capacity=100_000, seed_list=SEED_LIST)
        if args.quick
        else Settings(
            seconds=5.0, capacities=(100_000, 1_000_000), atari_capacity=1_000_000, seed_list=SEED_LIST
        )
    )
    with tempfile.TemporaryDirectory(prefix="hiverl-bench-") as home:
        server = None
        url = args.redis_url
        if url is None:
            from hiverl.services import RedisServer, free_ports

            server = RedisServer(free_ports(1)[0], Path(home), persistent=False)
            server.start()
            url = server.url
        try:
            client = redis.Redis.from_url(url)
            client.config_resetstat()
            rng = np.random.default_rng(0)
            cartpole = cartpole_batch(INSERT_BATCH, rng)
            atari = pong_batch(INSERT_BATCH)
            rows = bench_memories(url, client, "cartpole", CARTPOLE, cartpole, s.capacities, s)
            rows += bench_memories(url, client, "atari", ATARI, atari, (s.atari_capacity,), s)
            rows.append(bench_seed(url, client, encode_batch(cartpole, CARTPOLE)[0], s))
        finally:
            if server is not None:
                server.stop()
    print_table(rows)
    big = next(r for r in rows if r["kind"] == "cartpole" and r["capacity"] == max(s.capacities))
    small = next(r for r in rows if r["kind"] == "cartpole" and r["capacity"] == min(s.capacities))
    seed = rows[-1]
    atari_row = next(r for r in rows if r["kind"] == "atari")
    p = PROCESSES[-1]
    summary = {
        "capacity": big["capacity"],
        "processes": p,
        "cartpole_insert_per_s": round(big[f"insert_{p}"]),
        "cartpole_sample_per_s": round(big[f"sample_{p}"]),
        "seed_pattern_sample_per_s": round(seed[f"sample_{p}"]),
        "seed_pattern_insert_per_s": round(seed[f"insert_{p}"]),
        "sample_ratio_vs_seed": round(big[f"sample_{p}"] / seed[f"sample_{p}"], 1),
        "sample_per_s_100k": round(small[f"sample_{p}"]),
        "sample_1m_vs_100k": round(big[f"sample_{p}"] / small[f"sample_{p}"], 3),
        "redis_cpu_us_per_sample_1m": round(big["redis_cpu_us_per_sample"], 2),
        "redis_cpu_us_per_sample_100k": round(small["redis_cpu_us_per_sample"], 2),
        "client_cpu_us_per_sample_1m": round(big["client_cpu_us_per_sample"], 2),
        "redis_cpu_us_per_insert_1m": round(big["redis_cpu_us_per_insert"], 2),
        "client_cpu_us_per_insert_1m": round(big["client_cpu_us_per_insert"], 2),
        # what the CPU costs allow on 2 idle cores (Redis itself is single-threaded)
        "cpu_bound_2core_sample_per_s": round(_bound(big, "sample")),
        "cpu_bound_2core_insert_per_s": round(_bound(big, "insert")),
        "atari_cpu_bound_2core_sample_per_s": round(_bound(atari_row, "sample")),
        "cartpole_bytes_per_transition": round(big["bytes_per_transition"]),
        "atari_capacity": atari_row["capacity"],
        "atari_bytes_per_transition": round(atari_row["bytes_per_transition"]),
        "atari_sample_per_s": round(atari_row[f"sample_{p}"]),
        "atari_insert_per_s": round(atari_row[f"insert_{p}"]),
        "quick": args.quick,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
