"""Does the hive help? CartPole-v1: a shared memory vs private memories vs one worker.

For each seed, with the same per-worker budget of env steps:

(a) ``hive``: 4 workers sharing one replay memory,
(b) ``private``: 4 workers, each with its own memory (same processes, no sharing),
(c) ``solo``: 1 worker.

Every mode runs with the session defaults, ``pace=worker`` included; ``--set pace=memory`` makes a
hive worker learn (and anneal ε) on every transition the hive writes, as one learner fed by 4
actors would, while private and solo workers, whose memories hold only their own steps, run exactly
as with ``pace=worker`` (docs/training.md has both measurements).

Per worker it reports the env steps until the mean return over its last 100 episodes reaches 475
(None if never), the final mean return (last 100 episodes), and the wall clock; it writes a PNG of
the running-mean curves. The last line printed is one JSON object::

    {"hive_steps_to_475": [...], "private_steps_to_475": [...], "solo_steps_to_475": [...],
     "hive_speedup": x, "wall_clock_s": {...}, ...}

``hive_speedup`` = mean steps-to-475 of private workers / that of hive workers, counting a worker
that never reached 475 as the full budget (so with censored private workers it is a lower bound).
Targets: every hive worker within 100,000 of its own steps; speedup >= 1.5.

Usage: ``python bench/hive_cartpole.py [--seeds 3] [--budget 100000] [--quick]``
(``--quick``: 1 seed, 5,000 steps, to check the script; the numbers then mean little).
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
from hiverl.config import deep_update, load_config

THRESHOLD = 475.0
WINDOW = 100
MODES = {"hive": (4, True), "private": (4, False), "solo": (1, True)}


def steps_to_threshold(episodes: list[tuple[int, float]]) -> int | None:
    """First env step at which the mean of the last 100 episode returns is >= 475."""
    returns = [r for _, r in episodes]
    for k in range(WINDOW, len(episodes) + 1):
        if np.mean(returns[k - WINDOW : k]) >= THRESHOLD:
            return episodes[k - 1][0]
    return None


def running_mean(episodes: list[tuple[int, float]]) -> tuple[list[int], list[float]]:
    steps, means = [], []
    for k in range(1, len(episodes) + 1):
        steps.append(episodes[k - 1][0])
        means.append(float(np.mean([r for _, r in episodes[max(0, k - WINDOW) : k]])))
    return steps, means


def run_mode(
    mode: str, seed: int, budget: int, redis_url: str, out: Path, extra: dict[str, Any]
) -> dict[str, Any]:
    workers, shared = MODES[mode]
    prefix = f"bench-{secrets.token_hex(4)}:"
    settings: dict[str, Any] = {
        "env_id": "CartPole-v1",
        "workers": workers,
        "total_steps": budget,
        "seed": seed,
        "run_dir": str(out / "runs"),
        "model_dir": str(out / "models"),
        "checkpoint_interval": budget,
        "stats_interval_s": 5.0,
        "memory": {"shared": shared, "key_prefix": prefix},
    }
    deep_update(settings, extra)
    config = load_config(overrides=settings)
    result = Trainer(config, redis_url=redis_url, live=False).run()
    _delete_keys(redis_url, prefix)
    per_worker: dict[int, list[tuple[int, float]]] = {i: [] for i in range(workers)}
    for line in (result.run_folder / "events.jsonl").read_text().splitlines():
        event = json.loads(line)
        if event["event_type"] == "episode":
            per_worker[event["worker_index"]].append((event["env_steps"], event["episode_return"]))
    return {
        "mode": mode,
        "seed": seed,
        "status": result.status,
        "wall_s": result.wall_s,
        "episodes": per_worker,
        "updates": [view.updates for view in result.workers],
        "steps_to_475": [steps_to_threshold(per_worker[i]) for i in range(workers)],
        "final_mean": [
            float(np.mean([r for _, r in per_worker[i][-WINDOW:]])) if per_worker[i] else None
            for i in range(workers)
        ],
    }


def _delete_keys(redis_url: str, prefix: str) -> None:
    import redis

    with redis.Redis.from_url(redis_url) as client:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])


def plot(runs: list[dict[str, Any]], path: Path, budget: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(MODES), figsize=(15, 4), sharey=True)
    for ax, mode in zip(axes, MODES, strict=True):
        for run in (r for r in runs if r["mode"] == mode):
            for worker, episodes in run["episodes"].items():
                steps, means = running_mean(episodes)
                ax.plot(steps, means, lw=1, alpha=0.8, label=f"seed {run['seed']} w{worker}")
        ax.axhline(THRESHOLD, color="k", ls="--", lw=0.8)
        ax.set_title(f"{mode}")
        ax.set_xlabel("env steps of the worker")
        ax.set_xlim(0, budget)
    axes[0].set_ylabel(f"mean return, last {WINDOW} episodes")
    for ax in axes:
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def mean_censored(values: list[int | None], budget: int) -> float:
    return float(np.mean([budget if v is None else v for v in values])) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", type=int, default=100_000, help="env steps per worker")
    parser.add_argument("--quick", action="store_true", help="1 seed, 5k steps: a smoke run")
    parser.add_argument("--modes", default="hive,private,solo")
    parser.add_argument("--out", type=Path, default=Path("var/bench/hive_cartpole"))
    parser.add_argument("--set", action="append", default=[], help="extra setting, e.g. agent.lr=0.001")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.budget = 1, 5_000
    from rich.console import Console
    from rich.table import Table

    from hiverl.config import parse_assignments

    extra = parse_assignments(args.set)
    args.out.mkdir(parents=True, exist_ok=True)
    redis_url = ensure_redis()
    started = time.monotonic()
    runs = []
    for seed in range(args.seeds):
        for mode in args.modes.split(","):
            runs.append(run_mode(mode, seed, args.budget, redis_url, args.out, extra))
            print(f"seed {seed} {mode}: steps to 475 {runs[-1]['steps_to_475']} ({runs[-1]['wall_s']:.0f} s)")

    table = Table(title=f"CartPole-v1 · {args.budget:,} env steps per worker · {args.seeds} seeds")
    for column in ("mode", "seed", "worker", "steps to 475", "final mean (100 ep)", "episodes", "wall s"):
        table.add_column(column, justify="right")
    for run in runs:
        for worker, steps in enumerate(run["steps_to_475"]):
            final = run["final_mean"][worker]
            table.add_row(
                run["mode"],
                str(run["seed"]),
                str(worker),
                "-" if steps is None else f"{steps:,}",
                "-" if final is None else f"{final:.1f}",
                str(len(run["episodes"][worker])),
                f"{run['wall_s']:.0f}",
            )
    Console().print(table)
    png = args.out / "hive_cartpole.png"
    plot(runs, png, args.budget)
    print(f"curves: {png}")

    def collect(mode: str, key: str) -> list[Any]:
        return [value for run in runs if run["mode"] == mode for value in run[key]]

    hive, private = collect("hive", "steps_to_475"), collect("private", "steps_to_475")
    speedup = (
        mean_censored(private, args.budget) / mean_censored(hive, args.budget) if hive and private else None
    )
    summary = {
        "hive_steps_to_475": hive,
        "private_steps_to_475": private,
        "solo_steps_to_475": collect("solo", "steps_to_475"),
        "hive_speedup": speedup,
        "hive_final_mean": collect("hive", "final_mean"),
        "private_final_mean": collect("private", "final_mean"),
        "solo_final_mean": collect("solo", "final_mean"),
        "updates_per_worker": {mode: collect(mode, "updates") for mode in args.modes.split(",")},
        "pace": load_config(overrides=extra).pace,
        "budget_per_worker": args.budget,
        "seeds": args.seeds,
        "wall_clock_s": {
            "total": time.monotonic() - started,
            **{mode: sum(r["wall_s"] for r in runs if r["mode"] == mode) for mode in args.modes.split(",")},
        },
        "plot": str(png),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
