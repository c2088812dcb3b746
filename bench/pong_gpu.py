"""Pong on one GPU: a hive of >= 4 workers sharing one memory, each learning on CUDA.

Runs ``ALE/Pong-v5`` (DQN preprocessing, 4x84x84 uint8 stacks) with ``--workers`` worker processes
of ``--envs-per-worker`` envs each, Ape-X exploration ladder, every worker's network on the GPU,
for at most ``--minutes`` of wall clock. Reports the return curve (true game scores, mean of the
last 20 games over all workers), the minutes until it first reaches 18, and a PNG. Target: mean
return >= 18 within 25 minutes. Never in CI; needs an NVIDIA GPU (``--device cpu`` only to check
the script quickly).

Usage: ``python bench/pong_gpu.py [--workers 4] [--minutes 25]``; last line: one JSON object.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from game.trainer import Trainer, ensure_redis
from hiverl.config import deep_update, load_config, parse_assignments

TARGET = 18.0
WINDOW = 20

# Settings for Pong (Rainbow/Ape-X-like): n = 3, Adam 2e-4, target copy every 2,000 updates, one
# batch of 64 per 4 env steps per worker, ε decaying from 1 to 0.01 over each worker's first 200k
# env steps (every worker ends near-greedy, so the hive's mean score is an honest one).
PONG: dict[str, Any] = {
    "env_id": "ALE/Pong-v5",
    "device": "cuda",
    "torch_threads": 2,
    "checkpoint_interval": 1_000_000,
    "stats_interval_s": 10.0,
    "memory": {"capacity": 500_000, "alpha": 0.6},
    "agent": {
        "lr": 2e-4,
        "adam_eps": 1.5e-4,
        "gamma": 0.99,
        "n_step": 3,
        "batch_size": 64,
        "learning_starts": 20_000,
        "train_interval": 4,
        "updates_per_train": 1,
        "target_update_interval": 2_000,
        "max_grad_norm": 10.0,
        "insert_batch": 64,
        "sample_chunk": 4,
    },
    "exploration": {"schedule": "linear", "start": 1.0, "end": 0.01, "decay_steps": 200_000},
}


def score_curve(events_file: Path, started: float) -> tuple[list[tuple[float, float]], float | None, int]:
    """The curve of (seconds since start, mean of the last 20 games), seconds to 18, games."""
    games = []  # (seconds since start, score)
    if events_file.exists():
        for line in events_file.read_text().splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line being written right now
            if event["event_type"] == "episode":
                games.append((event["event_time"] - started, event["episode_return"]))
    games.sort()
    curve: list[tuple[float, float]] = []
    reached_s = None
    for k in range(1, len(games) + 1):
        mean = float(np.mean([g[1] for g in games[max(0, k - WINDOW) : k]]))
        curve.append((games[k - 1][0], mean))
        if reached_s is None and k >= WINDOW and mean >= TARGET:
            reached_s = games[k - 1][0]
    return curve, reached_s, len(games)


def _delete_keys(redis_url: str, prefix: str) -> None:
    import redis

    with redis.Redis.from_url(redis_url) as client:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--envs-per-worker", type=int, default=4)
    parser.add_argument("--minutes", type=float, default=25.0)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("var/bench/pong_gpu"))
    parser.add_argument("--set", action="append", default=[], help="extra setting, e.g. agent.lr=0.0002")
    parser.add_argument("--full", action="store_true", help="keep playing after reaching 18")
    args = parser.parse_args()
    if args.workers < 4:
        parser.error("--workers must be >= 4 (a hive)")
    import torch

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("no CUDA device: this benchmark needs an NVIDIA GPU (use --device cpu to smoke-test)")

    prefix = f"bench-{secrets.token_hex(4)}:"
    settings: dict[str, Any] = json.loads(json.dumps(PONG))
    deep_update(
        settings,
        {
            "workers": args.workers,
            "envs_per_worker": args.envs_per_worker,
            "total_steps": 50_000_000,  # bounded by --minutes instead
            "seed": args.seed,
            "device": args.device,
            "run_dir": str(args.out / "runs"),
            "model_dir": str(args.out / "models"),
            "memory": {"key_prefix": prefix},
        },
    )
    deep_update(settings, parse_assignments(args.set))
    config = load_config(overrides=settings)
    redis_url = ensure_redis()
    trainer = Trainer(config, redis_url=redis_url, live=sys.stdout.isatty())
    events_file = trainer.run_folder / "events.jsonl"
    started = time.time()
    finished = threading.Event()

    def watch() -> None:
        """Progress once a minute (for logs); stop the hive at the deadline or, unless --full, at 18."""
        deadline = started + args.minutes * 60
        next_report = started + 60
        while not finished.wait(5.0):
            now = time.time()
            curve, reached_s, games = score_curve(events_file, started)
            if now >= next_report:
                next_report += 60
                steps = sum(view.env_steps for view in trainer.views)
                updates = [view.updates for view in trainer.views]
                rates = [f"{v.env_steps_per_s:.0f}/{v.updates_per_s:.0f}" for v in trainer.views]
                waits = [f"{100 * (v.memory_time_share or 0):.0f}%" for v in trainer.views]
                mean = f"{curve[-1][1]:.1f}" if curve else "-"
                print(
                    f"[{(now - started) / 60:5.1f} min] games {games}, mean last {WINDOW} {mean}, "
                    f"env steps {steps:,}, updates {updates}, steps/s/updates/s {rates}, "
                    f"memory wait {waits}",
                    flush=True,
                )
            if now >= deadline or (reached_s is not None and not args.full):
                trainer.stop()
                return

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    result = trainer.run()
    finished.set()
    _delete_keys(redis_url, prefix)  # the memory holds GBs of frames; this run is over
    curve, reached_s, games = score_curve(events_file, started)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    if curve:
        ax.plot([t / 60 for t, _ in curve], [m for _, m in curve])
    ax.axhline(TARGET, color="k", ls="--", lw=0.8)
    ax.set_xlabel("minutes")
    ax.set_ylabel(f"mean score, last {WINDOW} games (all workers)")
    ax.set_title(f"Pong · {args.workers} workers x {args.envs_per_worker} envs · {args.device}")
    png = args.out / "pong_gpu.png"
    png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(png, dpi=120)

    for view in result.workers:
        print(
            f"worker {view.index}: {view.env_steps:,} env steps, {view.updates:,} updates, "
            f"{view.episodes} games, mean {view.mean_return_100}"
        )
    summary = {
        "workers": args.workers,
        "envs_per_worker": args.envs_per_worker,
        "device": torch.cuda.get_device_name() if args.device.startswith("cuda") else args.device,
        "games": games,
        "final_mean_return": curve[-1][1] if curve else None,
        "best_mean_return": max((m for _, m in curve[WINDOW - 1 :]), default=None),
        "minutes_to_18": None if reached_s is None else reached_s / 60,
        "env_steps_total": sum(view.env_steps for view in result.workers),
        "updates_total": sum(view.updates for view in result.workers),
        "return_curve": [(round(t / 60, 2), round(m, 2)) for t, m in curve[:: max(1, len(curve) // 100)]],
        "wall_clock_s": result.wall_s,
        "plot": str(png),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
