"""Pong on one GPU: one learner on CUDA, N actors and an evaluator sharing one Redis memory.

Runs ``ALE/Pong-v5`` (DQN preprocessing, 4x84x84 uint8 stacks) with the hive topology of
``game/trainer.py``: the learner trains one network on CUDA (batch 256, ``--samplers`` processes
prefetching prioritized batches from Redis, 8 samples per inserted transition), ``--actors`` actor
processes of ``--envs-per-actor`` envs each play the latest weights on ``--actor-device`` (Ape-X
ε ladder), and the evaluator plays greedy rounds; it stops once an evaluation round of 20 games
averages >= 18 (unless ``--full``) or after ``--minutes`` of wall clock. Defaults are sized for one
H200 and 16 CPU cores. Never in CI; ``--cpu-smoke`` runs the whole script on CPU with tiny budgets
(seconds, not minutes) to check it end to end.

Steps: 1. resolve the settings; 2. train, printing a progress line every minute; 3. measure how
many batches of 256 Pong transitions one process receives from the filled memory per second with
the learner's sampler processes (:mod:`game.sampling`), staged onto its device; 4. delete the
memory's keys; 5. report: a table, where one learner update's time goes, the threads every role
process ran with, a PNG of return against minutes (skipped when matplotlib is missing) and, as the
last line, one JSON object. ``--acting-only`` runs no learner: the actors play with nothing holding
them back (``bench/acting.py``), for their env steps/s. ``--sampling-only`` skips training: it fills
a memory with Pong transitions (real frames of random play) through
:class:`replay_memory.ReplayMemory` and measures step 3 only.

Minutes in the curves and ``minutes_to_18`` count from the hive's first env step (process
start-up excluded, as in ``bench/time_to_solve.py``); ``minutes_to_18`` is the evaluator's
confirmed "solved" (null when not reached). Progress lines show wall-clock minutes since launch.

Usage: ``python bench/pong_gpu.py [--actors 8] [--envs-per-actor 8] [--minutes 8] [--device cuda]
[--full] [--set KEY=VALUE ...]``; ``--cpu-smoke``; ``--acting-only``; ``--sampling-only [--fill 50000]``.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from acting import delete_keys
from learner_path import fill_memory, measure_sampling

from game.envs import env_spec, make_env
from game.hive_memory import memory_config
from game.learner_stats import PHASES
from game.trainer import RoleView, Trainer, TrainingResult, ensure_redis
from hiverl.config import SessionConfig, deep_update, load_config, parse_assignments
from replay_memory import MemoryConfig, ObservationSpec

TARGET = 18.0
WINDOW = 20  # actor games in the "mean score" of a progress line
THREAD_KEYS = ("torch_threads", "torch_interop_threads", "blas_threads", "cv2_threads", "os_threads")
SAMPLE_BATCH = 256  # transitions per batch in the sampling measurement
POLL_S = 1.0

# Pong settings of the hive (learner on CUDA, actors per --actor-device). The learner takes one
# batch of 256 per 32 inserted transitions (8 samples per insert, DQN's 32-per-4-steps ratio),
# fetched 2 batches per round trip by 4 threads; a hard target copy every 250 updates (64k samples,
# ~8k env steps); weights to the actors every 100 updates (the net is ~6.7 MB).
PONG: dict[str, Any] = {
    "env_id": "ALE/Pong-v5",
    "device": "cuda",
    "actor_device": "cpu",
    "torch_threads": 1,
    "total_steps": 100_000_000,  # bounded by --minutes instead
    "stats_interval_s": 10.0,
    "memory": {"capacity": 500_000, "alpha": 0.6},
    "agent": {
        "lr": 2e-4,
        "adam_eps": 1.5e-4,
        "gamma": 0.99,
        "n_step": 3,
        "batch_size": 256,
        "target_update_interval": 250,
        "max_grad_norm": 10.0,
    },
    "learner": {
        "samples_per_insert": 8.0,
        "sample_chunk": 2,
        "samplers": 4,
        "min_size": 20_000,
        "rate_slack": 8_000,
        "weights_interval": 100,
        "checkpoint_interval": 10_000,
    },
    "actor": {"envs": 8, "insert_batch": 64},
    "exploration": {"schedule": "ladder"},
    "evaluator": {
        "interval_s": 30.0,
        "episodes": 8,
        "solve_episodes": 20,
        "solved_return": TARGET,
        "stop_when_solved": True,
        "envs": 8,
    },
}

# --cpu-smoke: the same script end to end on CPU in well under a minute of training.
CPU_SMOKE: dict[str, Any] = {
    "device": "cpu",
    "actor_device": "cpu",
    "total_steps": 400,
    "stats_interval_s": 1.0,
    "memory": {"capacity": 2_000},
    "agent": {"batch_size": 32, "target_update_interval": 20},
    "learner": {
        "samples_per_insert": 2.0,
        "sample_chunk": 1,
        "samplers": 1,
        "min_size": 64,
        "rate_slack": 1_000,
        "weights_interval": 10,
        "checkpoint_interval": 1_000,
    },
    "actor": {"envs": 2, "insert_batch": 32},
    "evaluator": {"interval_s": 5.0, "episodes": 1, "solve_episodes": 1, "envs": 1},
}


# ---------------------------------------------------------------------------------------------
# What the hive reports: an in-memory event sink beside the trainer's events.jsonl
# ---------------------------------------------------------------------------------------------


@dataclass
class Observed:
    """Events of one run, as (Unix time, value) pairs; filled by :class:`EventCollector`."""

    games: list[tuple[float, float]] = field(default_factory=list)  # actor episodes: true scores
    evals: list[tuple[float, float]] = field(default_factory=list)  # evaluator rounds: mean return
    learner_stats: list[tuple[float, int]] = field(default_factory=list)  # (time, updates)
    actor_stats: list[tuple[float, int]] = field(default_factory=list)  # (time, env steps of the actor)
    learner_updates_per_s: float | None = None  # latest train_stats
    learner_memory_wait: float | None = None
    actor_rates: dict[int, float] = field(default_factory=dict)  # actor index -> latest env steps/s
    role_threads: dict[str, dict[str, int]] = field(default_factory=dict)  # "actor-0" -> its started event's
    update_ms: dict[str, float] = field(default_factory=dict)  # phase -> ms summed over updates
    timed_updates: int = 0  # updates in update_ms


class EventCollector:
    """An :class:`hiverl.events.EventSink` keeping what the bench needs (thread-safe reads)."""

    def __init__(self) -> None:
        self.observed = Observed()
        self.lock = threading.Lock()

    def publish(self, topic: str, event: Any) -> None:
        kind, role, when = event.get("event_type"), event.get("role"), float(event.get("event_time", 0.0))
        seen = self.observed
        with self.lock:
            if kind == "episode" and role == "actor":
                seen.games.append((when, float(event["episode_return"])))
            elif kind == "eval":
                seen.evals.append((when, float(event["eval_return"])))
            elif kind == "train_stats" and role == "learner":
                before = seen.learner_stats[-1][1] if seen.learner_stats else 0
                seen.learner_stats.append((when, int(event.get("updates", 0))))
                seen.learner_updates_per_s = event.get("updates_per_s")
                seen.learner_memory_wait = event.get("memory_time_share")
                self._time_updates(event, seen.learner_stats[-1][1] - before)
            elif kind == "started":
                slug = f"actor-{event.get('worker_index', 0)}" if role == "actor" else str(role)
                seen.role_threads[slug] = {k: int(event[k]) for k in THREAD_KEYS if k in event}
            elif kind == "train_stats" and role == "actor":
                seen.actor_stats.append((when, int(event.get("env_steps", 0))))
                seen.actor_rates[int(event.get("worker_index", 0))] = float(event.get("env_steps_per_s", 0.0))

    def _time_updates(self, event: Any, updates: int) -> None:
        """Add one interval's learner phases (ms per update) weighted by its updates."""
        if updates <= 0 or event.get("update_ms_step") is None:
            return
        for phase in PHASES:
            value = event.get(f"update_ms_{phase}") or 0.0
            self.observed.update_ms[phase] = self.observed.update_ms.get(phase, 0.0) + value * updates
        self.observed.timed_updates += updates

    def flush(self, timeout_s: float = 10.0) -> None:
        pass

    def close(self) -> None:
        pass

    def progress_line(self, elapsed_s: float, env_steps: int, updates: int) -> str:
        """Minutes, mean of the last 20 actor games, last eval, updates/s, env steps/s, memory wait."""
        with self.lock:
            seen = self.observed
            scores = [score for _, score in seen.games[-WINDOW:]]
            mean = f"{np.mean(scores):6.1f} ({len(seen.games)} games)" if scores else "     - (0 games)"
            last_eval = f"{seen.evals[-1][1]:6.1f}" if seen.evals else "     -"
            updates_per_s = seen.learner_updates_per_s or 0.0
            env_steps_per_s = sum(seen.actor_rates.values())
            wait = seen.learner_memory_wait
        wait_text = "-" if wait is None else f"{100 * wait:.0f}%"
        return (
            f"[{elapsed_s / 60:5.1f} min] mean last {WINDOW} games {mean} · eval {last_eval}"
            f" · learner {updates_per_s:6.1f} updates/s · actors {env_steps_per_s:7.0f} env steps/s"
            f" · learner memory wait {wait_text} · env steps {env_steps:,} · updates {updates:,}"
        )


# ---------------------------------------------------------------------------------------------
# Step 1: settings
# ---------------------------------------------------------------------------------------------


def resolve_settings(args: argparse.Namespace, prefix: str) -> SessionConfig:
    """The Pong settings (or the CPU smoke's), the command line on top, then ``--set``."""
    settings: dict[str, Any] = json.loads(json.dumps(PONG))
    if args.cpu_smoke:
        deep_update(settings, json.loads(json.dumps(CPU_SMOKE)))
    command_line: dict[str, Any] = {
        "actors": args.actors,
        "seed": args.seed,
        "run_dir": str(args.out / "runs"),
        "model_dir": str(args.out / "models"),
        "memory": {"key_prefix": prefix},
        "actor": {"envs": args.envs_per_actor},
        "learner": {"samplers": args.samplers},
        "evaluator": {"stop_when_solved": not args.full},
    }
    if args.device is not None:
        command_line["device"] = args.device
    if args.actor_device is not None:
        command_line["actor_device"] = args.actor_device
    deep_update(settings, {k: v for k, v in command_line.items() if v is not None})
    deep_update(settings, parse_assignments(args.set))
    return load_config(overrides=settings)


# ---------------------------------------------------------------------------------------------
# Step 2: training, with a progress line every minute and the wall-clock deadline
# ---------------------------------------------------------------------------------------------


def train(
    config: SessionConfig, redis_url: str, minutes: float, report_s: float
) -> tuple[TrainingResult, Observed, float]:
    """Run the hive until solved (with stop_when_solved), the deadline or the step budget."""
    collector = EventCollector()
    trainer = Trainer(
        config, redis_url=redis_url, sink_factory=lambda _config, _session: collector, live=False
    )
    trainer.console.quiet = True  # our own progress lines instead of the trainer's
    launched = time.time()
    finished = threading.Event()

    def watch() -> None:
        deadline = launched + minutes * 60
        next_report = launched + report_s
        while not finished.wait(POLL_S):
            now = time.time()
            if now >= next_report:
                next_report += report_s
                actors = [view for view in trainer.views.values() if view.role == "actor"]
                line = collector.progress_line(
                    now - launched, sum(view.env_steps for view in actors), trainer.learner.updates
                )
                print(line, flush=True)
            if now >= deadline:
                print(f"[{minutes:5.1f} min] deadline: stopping the hive", flush=True)
                trainer.stop()
                return

    watcher = threading.Thread(target=watch, name="bench-watch", daemon=True)
    watcher.start()
    try:
        result = trainer.run()
    finally:
        finished.set()
        watcher.join(timeout=5)
    with collector.lock:
        return result, collector.observed, launched


# ---------------------------------------------------------------------------------------------
# Step 3: sampling throughput of one process (the learner's fetcher) against a filled memory
# ---------------------------------------------------------------------------------------------


# The sampling measurement lives in bench/learner_path.py (shared with bench/gpu_proxies.py), and
# step 4's cleanup in bench/acting.py (delete_keys, every server of a sharded memory).


def rate(points: list[tuple[float, int]]) -> float | None:
    """Per-second rate of a cumulative counter over its learning span (from its first non-zero value)."""
    live = [(t, v) for t, v in points if v > 0]
    if len(live) < 2 or live[-1][0] <= live[0][0]:
        return None
    return (live[-1][1] - live[0][1]) / (live[-1][0] - live[0][0])


def print_table(views: list[RoleView]) -> None:
    header = (
        f"{'role':<10} {'state':<10} {'env steps':>12} {'updates':>10} {'steps/s':>9}"
        f" {'updates/s':>10} {'mem wait':>9} {'eval (best)':>14}"
    )
    print(header)
    print("-" * len(header))
    for view in views:
        wait = "-" if view.memory_time_share is None else f"{100 * view.memory_time_share:.0f}%"
        evaluated = (
            f"{view.eval_return:.1f} ({view.best_eval_return:.1f})"
            if view.eval_return is not None and view.best_eval_return is not None
            else "-"
        )
        print(
            f"{view.name:<10} {view.state:<10} {view.env_steps:>12,} {view.updates:>10,}"
            f" {view.env_steps_per_s if view.role == 'actor' else 0:>9.0f}"
            f" {view.updates_per_s if view.role == 'learner' else 0:>10.1f} {wait:>9} {evaluated:>14}"
        )
        if view.error:
            print(f"  error: {view.error.strip().splitlines()[-1]}")


def plot(
    path: Path, games: list[tuple[float, float]], evals: list[tuple[float, float]], title: str
) -> str | None:
    """Return against minutes (mean of the last 20 actor games, and eval rounds); None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no PNG", file=sys.stderr)
        return None
    fig, ax = plt.subplots(figsize=(8, 4))
    if games:
        scores = [score for _, score in games]
        means = [float(np.mean(scores[max(0, k - WINDOW + 1) : k + 1])) for k in range(len(scores))]
        ax.plot([m for m, _ in games], means, label=f"actors: mean of the last {WINDOW} games")
    if evals:
        ax.plot([m for m, _ in evals], [r for _, r in evals], "o-", label="evaluator (greedy)")
    ax.axhline(TARGET, color="k", ls="--", lw=0.8)
    ax.set_xlabel("minutes since the first env step")
    ax.set_ylabel("Pong score")
    ax.set_title(title)
    ax.legend(loc="lower right")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return str(path)


def device_name(device: str) -> str:
    import torch

    if device.startswith("cuda") and torch.cuda.is_available():
        return f"{device} ({torch.cuda.get_device_name()})"
    return device


def curve(points: list[tuple[float, float]], origin: float, most: int = 200) -> list[list[float]]:
    """[[minutes since origin, value], ...], at most ``most`` points (evenly thinned)."""
    step = max(1, len(points) // most)
    return [[round((t - origin) / 60, 3), round(v, 2)] for t, v in points[::step]]


def empty_summary(settings: dict[str, Any]) -> dict[str, Any]:
    """Every key of the last line, before anything was measured."""
    return {
        "minutes_to_18": None,
        "eval_returns": [],
        "learner_updates_per_s": None,
        "actor_env_steps_per_s": None,
        "learner_memory_wait_share": None,
        "env_steps_total": 0,
        "updates_total": 0,
        "wall_clock_s": 0.0,
        "sample_batches_per_s": None,
        "learner_update_ms": {},
        "role_threads": {},
        "settings": settings,
    }


def update_breakdown(seen: Observed) -> dict[str, float]:
    """Where one learner update's time went over the run: host ms per update by phase (on a GPU the
    host waits for the device in the phase that needs it: the step, or the stage when it is full)."""
    n = seen.timed_updates
    return {phase: round(total / n, 3) for phase, total in seen.update_ms.items()} if n else {}


def print_threads_and_breakdown(seen: Observed) -> None:
    print(f"{'role process':<14} " + " ".join(f"{key.removesuffix('_threads'):>8}" for key in THREAD_KEYS))
    for slug, counts in sorted(seen.role_threads.items()):
        print(f"{slug:<14} " + " ".join(f"{counts.get(key, -1):>8}" for key in THREAD_KEYS))
    breakdown = update_breakdown(seen)
    if breakdown:
        total = sum(breakdown.values())
        parts = " · ".join(f"{phase} {ms:.2f}" for phase, ms in breakdown.items())
        print(f"learner update: {total:.2f} ms on the host = {parts} (fetch/decode: in the samplers)")


# ---------------------------------------------------------------------------------------------
# The command
# ---------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--actors", type=int, default=None, help="actor processes (default 8; smoke 1)")
    parser.add_argument("--envs-per-actor", type=int, default=None, help="envs per actor (default 8)")
    parser.add_argument("--minutes", type=float, default=8.0, help="wall-clock limit of the training")
    parser.add_argument("--device", default=None, help="the learner's device (default cuda)")
    parser.add_argument("--actor-device", default=None, help="actors' and evaluator's device (default cpu)")
    parser.add_argument("--samplers", type=int, default=None, help="learner sampler processes (4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--full", action="store_true", help="keep training after the evaluator's 18")
    parser.add_argument("--set", action="append", default=[], help="extra setting, e.g. agent.lr=0.0001")
    parser.add_argument("--out", type=Path, default=Path("var/bench/pong_gpu"), help="runs, models, PNG")
    parser.add_argument("--key-prefix", default=None, help="Redis key prefix (default bench-<random>:)")
    parser.add_argument("--sample-seconds", type=float, default=10.0, help="length of the sampling phase")
    parser.add_argument("--sampling-only", action="store_true", help="no training: fill, then sample")
    parser.add_argument("--fill", type=int, default=50_000, help="transitions for --sampling-only")
    parser.add_argument(
        "--acting-only", action="store_true", help="no learner: the actors' env steps/s, nothing holding them"
    )
    parser.add_argument("--report-s", type=float, default=60.0, help="seconds between progress lines")
    parser.add_argument("--cpu-smoke", action="store_true", help="tiny budgets on CPU (checks the script)")
    args = parser.parse_args(argv)
    if args.cpu_smoke:
        args.minutes = min(args.minutes, 3.0)
        args.report_s = min(args.report_s, 5.0)
        args.sample_seconds = min(args.sample_seconds, 2.0)
        args.actors = 1 if args.actors is None else args.actors
        args.envs_per_actor = args.envs_per_actor or 2
        args.samplers = args.samplers or 1
    args.actors = 8 if args.actors is None else args.actors
    args.envs_per_actor = args.envs_per_actor or 8
    args.samplers = args.samplers or 4
    if args.actors < 1:
        parser.error("--actors must be >= 1 (one learner and its actors)")
    return args


def acting_only(redis_url: str, config: SessionConfig, args: argparse.Namespace) -> dict[str, Any]:
    """``--acting-only``: the actors alone (``bench/acting.py``), the rate limiter out of their way."""
    from acting import measure_acting

    seconds = 20.0 if args.cpu_smoke else 60.0
    print(
        f"acting alone: {config.actors} actors x {config.actor.envs} envs of {config.env_id},"
        f" {config.torch_threads} thread(s) each, {seconds:g} s",
        flush=True,
    )
    acting = measure_acting(
        redis_url,
        actors=config.actors,
        envs=config.actor.envs,
        threads=config.torch_threads,
        seconds=seconds,
        env_id=config.env_id,
        key_prefix=f"{config.memory.key_prefix}acting:",
        warmup_s=5.0,
        insert_batch=config.actor.insert_batch,
    )
    total = acting["env_steps_per_s_total"]
    per_actor = acting["actor_env_steps_per_s_1_thread"]
    print(f"actors: {total:,.0f} env steps/s in total ({per_actor:,.0f} per actor)")
    return {"actor_env_steps_per_s": total, "acting": acting}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    prefix = args.key_prefix or f"bench-{secrets.token_hex(4)}:"

    # Step 1: settings (and the GPU check).
    config = resolve_settings(args, prefix)
    import torch

    for name in set() if args.sampling_only else {config.device, config.actor_device}:
        if name.startswith("cuda") and not torch.cuda.is_available():
            sys.exit(f"no CUDA device for {name!r}: this benchmark needs an NVIDIA GPU (or --cpu-smoke)")
    settings = {
        "actors": config.actors,
        "envs_per_actor": config.actor.envs,
        "minutes": args.minutes,
        "full": args.full,
        "device": device_name(config.device),
        "actor_device": config.actor_device,
        "samplers": config.learner.samplers,
        "cpu_smoke": args.cpu_smoke,
        "sampling_only": args.sampling_only,
        "config": config.to_json_dict(),
    }
    summary = empty_summary(settings)
    redis_url = ensure_redis()
    if args.acting_only:
        summary |= acting_only(redis_url, config, args)
        print(json.dumps(summary, default=str))
        return
    spec = env_spec(make_env(config.env_id, seed=0))
    observation = ObservationSpec(shape=spec.obs_shape, dtype=spec.obs_dtype)

    try:
        if args.sampling_only:
            # Steps 2-3 without training: a memory of real Pong frames, then the sampling phase.
            memory = MemoryConfig(
                name=f"pong-sampling-{secrets.token_hex(3)}",
                capacity=max(args.fill, 2),
                alpha=config.memory.alpha,
                observation=observation,
                key_prefix=prefix,
            )
            fill_s = fill_memory(redis_url, memory, args.fill, args.seed)
            print(f"filled {args.fill:,} Pong transitions in {fill_s:.1f} s", flush=True)
            summary |= {"fill_transitions": args.fill, "fill_s": fill_s}
        else:
            # Step 2: train.
            print(
                f"Pong hive: 1 learner ({settings['device']}, batch {config.agent.batch_size},"
                f" {config.learner.samplers} samplers), {config.actors} actors x"
                f" {config.actor.envs} envs ({config.actor_device}), evaluator; at most"
                f" {args.minutes:g} min{'' if args.full else ', stops at 18'}",
                flush=True,
            )
            result, seen, launched = train(config, redis_url, args.minutes, args.report_s)
            origin = result.first_step_time or launched
            learner = next(view for view in result.views if view.role == "learner")
            actors = [view for view in result.views if view.role == "actor"]
            env_steps = sum(view.env_steps for view in actors)
            last_actor_report = max((t for t, _ in seen.actor_stats), default=origin)
            print()
            print_table(result.views)
            print()
            print_threads_and_breakdown(seen)
            print()
            png = plot(
                args.out / "pong_gpu.png",
                [((t - origin) / 60, v) for t, v in seen.games],
                [((t - origin) / 60, v) for t, v in seen.evals],
                f"Pong · {config.actors} actors x {config.actor.envs} envs · learner {config.device}",
            )
            summary |= {
                "status": result.status,
                "session_id": result.session_id,
                "minutes_to_18": None if result.solved_s is None else round(result.solved_s / 60, 3),
                "eval_returns": curve(seen.evals, origin),
                "best_eval_return": max((v for _, v in seen.evals), default=None),
                "actor_games": len(seen.games),
                "actor_mean_last_20": (
                    float(np.mean([v for _, v in seen.games[-WINDOW:]])) if seen.games else None
                ),
                "actor_return_curve": curve(seen.games, origin),
                "learner_updates_per_s": rate(seen.learner_stats) or learner.updates_per_s,
                "actor_env_steps_per_s": (
                    env_steps / (last_actor_report - origin) if last_actor_report > origin else None
                ),
                "learner_memory_wait_share": learner.memory_time_share,
                "learner_update_ms": update_breakdown(seen),
                "role_threads": {slug: counts["torch_threads"] for slug, counts in seen.role_threads.items()},
                "role_thread_details": seen.role_threads,
                "env_steps_total": env_steps,
                "updates_total": learner.updates,
                "wall_clock_s": round(result.wall_s, 1),
                "startup_s": round(origin - launched, 1),
                "plot": png,
            }
            memory = memory_config(config.model_copy(update={"session_id": result.session_id}), observation)

        # Step 3: how fast one process receives batches of 256 from this memory.
        sampled = measure_sampling(
            redis_url,
            memory,
            chunk=config.learner.sample_chunk,
            samplers=config.learner.samplers,
            seconds=args.sample_seconds,
            beta=config.agent.beta_end,
            device=config.device if config.device.startswith("cuda") else None,
        )
        summary |= sampled
        if sampled["sample_batches_per_s"] is not None:
            print(
                f"sampling: {sampled['sample_batches_per_s']:.1f} batches of {sampled['sample_batch_size']}/s"
                f" ({sampled['sample_transitions_per_s']:,.0f} transitions/s) with"
                f" {config.learner.samplers} samplers, chunk {config.learner.sample_chunk},"
                f" memory of {sampled['sample_memory_size']:,}",
                flush=True,
            )
    finally:
        # Step 4: the memory, board and counters of this run are gone from Redis.
        delete_keys(redis_url, prefix)

    # Step 5: the last line.
    print(json.dumps(summary, default=str))


if __name__ == "__main__":
    main()
