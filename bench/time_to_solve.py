"""Wall clock to solve CartPole-v1: the hive (one learner, N actors) against solo (one process).

For each seed, one after the other on this machine, with real services (the local Redis):

* ``hive``: the default topology (``hiverl train`` defaults: one learner, ``actors`` actors, the
  evaluator);
* ``solo``: ``actors = 0``, the learner's process plays too (one process that acts and learns),
  with everything else at the defaults, so both are the project's best settings of their kind;
* ``--actors 1,2,4`` adds the scaling runs: the hive with each number of actors.

Solved is the evaluator's verdict: 100 greedy episodes with one set of the hive's weights average
>= 475 (gymnasium's reward threshold). Time counts from the hive's first env step to the eval
event that confirmed it. Per run it also reports the learner's updates/s, the actors' env steps/s
and their share of time waiting (on Redis or the rate limiter), and the learner's wait for samples.

The last line printed is one JSON object::

    {"seeds": [...], "hive_solve_s": [...], "solo_solve_s": [...], "hive_env_steps": [...],
     "hive_median_s": x, "solo_median_s": y, "ratio_hive_over_solo": x / y, "scaling": {...}}

Targets (issue "One mind for the hive"): every seed solves, ratio <= 0.6, hive median <= 45 s.

Usage: ``python bench/time_to_solve.py [--seeds 0,1,2] [--actors 1,2,4] [--budget 300000]
[--set KEY=VALUE ...]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from game.trainer import Trainer, TrainingResult, ensure_redis
from hiverl.config import deep_update, load_config, parse_assignments


def run_once(
    name: str, seed: int, overrides: dict[str, Any], budget: int, redis_url: str, root: Path
) -> dict[str, Any]:
    """One training run until solved or the budget; its measurements."""
    settings: dict[str, Any] = {
        "seed": seed,
        "total_steps": budget,
        "session_id": f"bench-{name.replace('=', '')}-s{seed}-{int(time.time())}",
        "run_dir": str(root / "runs"),
        "model_dir": str(root / "models"),
        "memory": {"key_prefix": f"bench:{name}:{seed}:{time.time_ns()}:"},
    }
    deep_update(settings, overrides)
    config = load_config(None, settings)
    trainer = Trainer(config, redis_url=redis_url, live=False)
    trainer.console.quiet = True
    result: TrainingResult = trainer.run()
    learner = trainer.learner
    actors = [view for view in result.views if view.role == "actor"]
    evaluator = next((view for view in result.views if view.role == "evaluator"), None)
    env_steps = sum(view.env_steps for view in actors) if actors else None
    row = {
        "mode": name,
        "seed": seed,
        "actors": config.actors,
        "solve_s": result.solved_s,
        "wall_s": result.wall_s,
        "env_steps": env_steps,
        "updates": learner.updates,
        "learner_updates_per_s": learner.updates_per_s,
        "learner_wait_share": learner.memory_time_share,
        "actor_env_steps_per_s": sum(view.env_steps_per_s or 0.0 for view in actors) if actors else None,
        "actor_wait_share": statistics.fmean(view.memory_time_share or 0.0 for view in actors)
        if actors
        else None,
        "best_eval_return": evaluator.best_eval_return if evaluator else None,
        "status": result.status,
    }
    print(
        f"  {name:<8} seed {seed}  solved {_fmt(result.solved_s, '.1f')} s  wall {result.wall_s:.1f} s"
        f"  updates {learner.updates:,}  best eval {_fmt(row['best_eval_return'], '.1f')}",
        flush=True,
    )
    return row


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else f"{value:{spec}}"


def _median(values: list[float | None]) -> float | None:
    """Median counting an unsolved run as infinitely slow (None when half or more never solved)."""
    ordered = sorted(float("inf") if v is None else v for v in values)
    middle = statistics.median(ordered) if ordered else float("inf")
    return None if middle == float("inf") else middle


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    parser.add_argument("--actors", default="", help="scaling: comma-separated actor counts (e.g. 1,2,4)")
    parser.add_argument("--budget", type=int, default=300_000, help="env steps per run before giving up")
    parser.add_argument(
        "--set", dest="assignments", action="append", default=[], help="KEY=VALUE for every run"
    )
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    common = parse_assignments(args.assignments)
    redis_url = ensure_redis()
    defaults = load_config(None, common)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hiverl-bench-") as folder:
        root = Path(folder)
        for seed in seeds:
            rows.append(run_once("hive", seed, common, args.budget, redis_url, root))
            solo = json.loads(json.dumps(common))
            deep_update(solo, {"actors": 0})
            rows.append(run_once("solo", seed, solo, args.budget, redis_url, root))
            for count in [int(a) for a in args.actors.split(",") if a.strip()]:
                scaled = json.loads(json.dumps(common))
                deep_update(scaled, {"actors": count})
                rows.append(run_once(f"actors={count}", seed, scaled, args.budget, redis_url, root))

    print()
    header = [
        "mode",
        "seed",
        "solve s",
        "wall s",
        "env steps",
        "updates",
        "upd/s",
        "learner wait",
        "actor steps/s",
        "actor wait",
    ]
    print(" | ".join(header))
    print(" | ".join("---" for _ in header))
    for r in rows:
        print(
            " | ".join(
                [
                    r["mode"],
                    str(r["seed"]),
                    _fmt(r["solve_s"], ".1f"),
                    f"{r['wall_s']:.1f}",
                    _fmt(r["env_steps"], ",d"),
                    f"{r['updates']:,}",
                    _fmt(r["learner_updates_per_s"], ".0f"),
                    _fmt(None if r["learner_wait_share"] is None else 100 * r["learner_wait_share"], ".0f")
                    + " %",
                    _fmt(r["actor_env_steps_per_s"], ".0f"),
                    _fmt(None if r["actor_wait_share"] is None else 100 * r["actor_wait_share"], ".0f")
                    + " %",
                ]
            )
        )
    hive = [r for r in rows if r["mode"] == "hive"]
    solo = [r for r in rows if r["mode"] == "solo"]
    hive_median = _median([r["solve_s"] for r in hive])
    solo_median = _median([r["solve_s"] for r in solo])
    scaling: dict[str, Any] = {}
    for r in rows:
        if r["mode"].startswith("actors="):
            entry = scaling.setdefault(
                r["mode"].removeprefix("actors="),
                {"solve_s": [], "updates_per_s": [], "actor_env_steps_per_s": [], "actor_wait_share": []},
            )
            entry["solve_s"].append(r["solve_s"])
            entry["updates_per_s"].append(r["learner_updates_per_s"])
            entry["actor_env_steps_per_s"].append(r["actor_env_steps_per_s"])
            entry["actor_wait_share"].append(r["actor_wait_share"])
    summary = {
        "seeds": seeds,
        "hive_actors": defaults.actors,
        "hive_solve_s": [r["solve_s"] for r in hive],
        "solo_solve_s": [r["solve_s"] for r in solo],
        "hive_env_steps": [r["env_steps"] for r in hive],
        "solo_env_steps": [r["env_steps"] for r in solo],
        "hive_median_s": hive_median,
        "solo_median_s": solo_median,
        "ratio_hive_over_solo": hive_median / solo_median if hive_median and solo_median else None,
        "all_solved": all(r["solve_s"] is not None for r in hive + solo),
        "scaling": scaling,
        "runs": rows,
    }
    print()
    print(
        f"hive median {_fmt(hive_median, '.1f')} s · solo median {_fmt(solo_median, '.1f')} s · ratio "
        f"{_fmt(summary['ratio_hive_over_solo'], '.2f')}"
        " (targets: every seed solves, ratio <= 0.6, hive <= 45 s)"
    )
    print(json.dumps(summary, default=float))


if __name__ == "__main__":
    main()
