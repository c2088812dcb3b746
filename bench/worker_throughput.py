"""Worker throughput on this CPU: env steps/s, learner updates/s, and time spent on the memory.

Runs a hive of ``--workers`` CartPole workers (default 1) that learn from the first batch on, for
``--steps`` env steps each, and reports per worker: env steps/s, updates/s, and the share of wall
time its main thread waited for the memory (inserts, samples and priority updates run on a
background thread, so only waiting counts; target <= 15 %). It also times the memory calls one by
one (round trips, no overlap) for reference. Last line: one JSON object.

Usage: ``python bench/worker_throughput.py [--workers 1] [--steps 5000] [--set agent.sample_chunk=16]``
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from game.trainer import Trainer, ensure_redis
from hiverl.config import deep_update, load_config, parse_assignments


def memory_round_trips(redis_url: str, prefix: str, batch_size: int, repeats: int = 200) -> dict[str, float]:
    """Milliseconds per insert (32 transitions), sample (batch_size) and priority update, sequentially."""
    from replay_memory import MemoryConfig, ObservationSpec, ReplayMemory, TransitionBatch

    rng = np.random.default_rng(0)
    config = MemoryConfig(
        name="throughput", capacity=50_000, observation=ObservationSpec((4,), "float32"), key_prefix=prefix
    )

    def batch(n: int = 32) -> TransitionBatch:
        return TransitionBatch(
            obs=rng.normal(size=(n, 4)).astype(np.float32),
            actions=rng.integers(0, 2, n),
            rewards=np.ones(n, np.float32),
            next_obs=rng.normal(size=(n, 4)).astype(np.float32),
            discounts=np.full(n, 0.99**3, np.float32),
            terminated=np.zeros(n, bool),
            truncated=np.zeros(n, bool),
            n_steps=np.full(n, 3, np.int32),
            episode_ids=np.zeros(n, np.int64),
            step_indices=np.arange(n),
            worker_id="bench",
            priorities=rng.random(n).astype(np.float32) + 0.01,
        )

    with ReplayMemory.open(redis_url, config) as memory:
        for _ in range(100):
            memory.insert(batch())
        timings = {}
        tick = time.perf_counter()
        for _ in range(repeats):
            memory.insert(batch())
        timings["insert_32_ms"] = (time.perf_counter() - tick) / repeats * 1e3
        tick = time.perf_counter()
        samples = [memory.sample(batch_size, 0.4, rng) for _ in range(repeats)]
        timings[f"sample_{batch_size}_ms"] = (time.perf_counter() - tick) / repeats * 1e3
        tick = time.perf_counter()
        for s in samples:
            memory.update_priorities(
                s.indices, s.generations, rng.random(batch_size).astype(np.float32) + 0.01
            )
        timings[f"update_priorities_{batch_size}_ms"] = (time.perf_counter() - tick) / repeats * 1e3
    return timings


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--steps", type=int, default=5000, help="env steps per worker")
    parser.add_argument("--envs-per-worker", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("var/bench/worker_throughput"))
    parser.add_argument("--set", action="append", default=[], help="a setting, e.g. agent.sample_chunk=16")
    args = parser.parse_args()
    from rich.console import Console
    from rich.table import Table

    redis_url = ensure_redis()
    prefix = f"bench-{secrets.token_hex(4)}:"
    settings: dict[str, Any] = {
        "workers": args.workers,
        "envs_per_worker": args.envs_per_worker,
        "total_steps": args.steps,
        "run_dir": str(args.out / "runs"),
        "model_dir": str(args.out / "models"),
        "checkpoint_interval": args.steps,
        "memory": {"key_prefix": prefix},
        "agent": {"learning_starts": 64},
    }
    deep_update(settings, parse_assignments(args.set))
    config = load_config(overrides=settings)
    result = Trainer(config, redis_url=redis_url, live=False).run()
    rows: list[dict[str, Any]] = []
    for view in result.workers:
        done = next((h for h in view.history if h["kind"] == "done"), None)
        if done is None:
            continue
        rows.append(
            {
                "worker": view.index,
                "env_steps_per_s": done["env_steps"] / done["wall_s"],
                "updates_per_s": done["updates"] / done["wall_s"],
                "memory_time_share": done["memory_time_share"],
            }
        )
    round_trips = memory_round_trips(redis_url, prefix, config.agent.batch_size)
    import redis

    with redis.Redis.from_url(redis_url) as client:
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)

    table = Table(
        title=f"worker throughput · CartPole-v1 · {args.workers} worker(s) · {args.steps:,} steps each · "
        f"sample_chunk {config.agent.sample_chunk}"
    )
    for column in ("worker", "env steps/s", "updates/s", "memory wait"):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            str(row["worker"]),
            f"{row['env_steps_per_s']:.0f}",
            f"{row['updates_per_s']:.0f}",
            f"{100 * row['memory_time_share']:.1f} %",
        )
    Console().print(table)
    for name, value in round_trips.items():
        print(f"{name}: {value:.2f}")
    summary = {
        "workers": args.workers,
        "sample_chunk": config.agent.sample_chunk,
        "env_steps_per_s": [row["env_steps_per_s"] for row in rows],
        "updates_per_s": [row["updates_per_s"] for row in rows],
        "memory_time_share": [row["memory_time_share"] for row in rows],
        "memory_time_share_max": max((row["memory_time_share"] for row in rows), default=None),
        **round_trips,
        "wall_clock_s": result.wall_s,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
