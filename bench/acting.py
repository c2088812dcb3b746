"""Acting alone: env steps/s of actor processes that play with nothing holding them back.

``--actors`` processes each run the hive's :class:`game.actor.Actor` (``--envs`` envs of ``--env``,
``--threads`` torch/OpenMP/OpenCV threads) against the real Redis memory (``game.trainer.
ensure_redis``), under a unique key prefix that is deleted afterwards. The rate limiter is out of
the way: ``learner.rate_slack`` is larger than anything a run can insert, so ``can_insert`` always
holds, and no learner runs (the actors play their initial weights). The actors start together,
warm up for ``--warmup`` seconds, then count for ``--seconds``.

Reported per actor: env steps/s, the CPU cores its process used, and where one vector step of its
loop goes (``Actor.stage_s``, ms per vector step): ``act`` (forward pass and ε-greedy), ``env``
(the vector env's step), ``priorities`` (bootstrap values of truncated episodes and the Ape-X
priorities), ``fold`` (n-step windows, episode events), ``insert`` (building a batch and handing it
to the insert thread), ``wait`` (inserts in flight, limiter), ``other`` (the rest of the loop), and
``insert_thread`` (``ReplayMemory.insert``, validate + encode + the Redis round trip, on the
actor's background thread: off the loop but in the same process).

The numbers before the acting work of issue #21 (initial priorities from an extra forward pass over
every inserted obs and next_obs, the per-env n-step fold) are kept in ``BEFORE`` and printed beside
the current ones: measured with this script on that commit's game/ (stage times with wrappers
around the same calls), Pong, 8 envs, 1 thread, on the 2-core CPU this was written on. Where other
work shares the cores, env steps per CPU second of the actor's process is the steadier figure.

The last line printed is one JSON object: ``actor_env_steps_per_s_1_thread`` (mean per actor
process), ``env_steps_per_s_total``, ``actors``, ``envs_per_actor``, ``threads``,
``stages_ms_per_vector_step`` (actor 0), ``before``.

Usage: ``python bench/acting.py [--actors 1] [--envs 8] [--threads 1] [--seconds 20] [--warmup 5]
[--env ALE/Pong-v5]``; :func:`measure_acting` is the same measurement as a function.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

STAGES = ("act", "env", "priorities", "fold", "insert", "wait")
THREAD_ENV_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "BLIS_NUM_THREADS")

#: Before the change (commit 2af2a4d: priorities from a second forward pass over the obs and next_obs
#: of every inserted transition, a per-env n-step fold): this script on that commit's game/ (stage
#: times from wrappers), ALE/Pong-v5, 1 actor x 8 envs, 1 thread, insert_batch 64, n_step 3, on a
#: 2-core Xeon VM shared with other work. The least disturbed of six runs alternated with runs of
#: the change under the same load (all six: 298-595 env steps/s, 583-708 per CPU second; the change:
#: 616-1,064 env steps/s, 1,018-1,098 per CPU second, best 1,064 at 0.98 cores).
BEFORE: dict[str, Any] = {
    "commit": "2af2a4d",
    "machine": "2-core Xeon VM, shared",
    "env_id": "ALE/Pong-v5",
    "envs_per_actor": 8,
    "threads": 1,
    "actor_env_steps_per_s_1_thread": 595.0,
    "actor_env_steps_per_cpu_s": 661.0,
    "actor_cpu_cores": 0.90,
    "ms_per_vector_step": 13.44,
    "cpu_ms_per_vector_step": 12.11,
    "stages_ms_per_vector_step": {
        "act": 4.15,
        "env": 3.36,
        "priorities": 5.23,
        "fold": 0.05,  # NStepAccumulator.push only; its per-env loop is in "other"
        "insert": 0.10,
        "wait": 0.10,
        "other": 0.44,
        "insert_thread": 1.60,
    },
}


class _NullSink:
    """Events go nowhere (the bench reads the actor's counters)."""

    def publish(self, topic: str, event: Any) -> None:
        pass

    def flush(self, timeout_s: float = 10.0) -> None:
        pass

    def close(self) -> None:
        pass


def _limit_threads(threads: int) -> None:
    for name in THREAD_ENV_VARS:
        os.environ[name] = str(threads)
    import torch

    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # already sized in this process
        torch.set_num_interop_threads(threads)
    try:
        import cv2

        cv2.setNumThreads(threads)
    except ImportError:
        pass


def _timed(stages: dict[str, float], stage: str, call: Any) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        tick = time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            stages[stage] += time.perf_counter() - tick

    return wrapper


def _instrument_before(actor: Any) -> None:
    """Stage times for an actor without ``stage_s`` (the code before this bench): wrappers around
    the calls of each stage (the fold's per-env Python around ``push`` counts as ``other``)."""
    import game.actor as module

    stages = actor.stage_s = dict.fromkeys(STAGES, 0.0)
    module.epsilon_greedy = _timed(stages, "act", module.epsilon_greedy)  # type: ignore[attr-defined]
    module.initial_priorities = _timed(stages, "priorities", module.initial_priorities)  # type: ignore[attr-defined]
    module.stack_transitions = _timed(stages, "insert", module.stack_transitions)  # type: ignore[attr-defined]
    actor.envs.step = _timed(stages, "env", actor.envs.step)
    actor.accumulator.push = _timed(stages, "fold", actor.accumulator.push)
    actor._collect_inserts = _timed(stages, "wait", actor._collect_inserts)
    actor._wait_for_learner = _timed(stages, "wait", actor._wait_for_learner)


def _snapshot(actor: Any, insert_s: float) -> dict[str, Any]:
    return {
        "t": time.perf_counter(),
        "cpu": time.process_time(),
        "env_steps": actor.env_steps,
        "stages": dict(getattr(actor, "stage_s", {})),
        "insert_thread": insert_s,
    }


def _play(
    redis_url: str,
    config: dict[str, Any],
    index: int,
    threads: int,
    warmup_s: float,
    seconds: float,
    start: Any,
    results: Any,
) -> None:
    """One actor process: build the actor, wait for the others, warm up, measure, stop, report."""
    _limit_threads(threads)
    from game.actor import Actor
    from game.roles import RoleContext

    stop = False
    actor = Actor(
        RoleContext("actor", index, config["session_id"], config, redis_url),
        _NullSink(),
        should_stop=lambda: stop,
    )
    _limit_threads(threads)  # the role may have applied the session's budget: keep the bench's
    if not hasattr(actor, "stage_s"):
        _instrument_before(actor)
    insert_s = [0.0]
    memory_insert = actor.memory.insert

    def timed_insert(batch: Any) -> int:
        tick = time.perf_counter()
        try:
            return memory_insert(batch)
        finally:
            insert_s[0] += time.perf_counter() - tick

    actor.memory.insert = timed_insert  # type: ignore[method-assign]
    try:
        loop = actor.steps()
        start.wait(timeout=600)
        began = time.perf_counter()
        while time.perf_counter() - began < warmup_s:
            next(loop)
        first = _snapshot(actor, insert_s[0])
        while time.perf_counter() - first["t"] < seconds:
            next(loop)
        last = _snapshot(actor, insert_s[0])
        stop = True
        for _ in loop:
            pass
    finally:
        actor.close()
    results.put({"index": index, "first": first, "last": last, "vector": config["actor"]["envs"]})


def _summary(report: dict[str, Any]) -> dict[str, Any]:
    """One actor's env steps/s, cores and ms per vector step per stage."""
    first, last = report["first"], report["last"]
    wall = last["t"] - first["t"]
    steps = last["env_steps"] - first["env_steps"]
    vector_steps = max(steps / report["vector"], 1)
    stages: dict[str, float] | None = None
    if last["stages"]:
        stages = {s: 1e3 * (last["stages"][s] - first["stages"].get(s, 0.0)) / vector_steps for s in STAGES}
        stages["other"] = 1e3 * wall / vector_steps - sum(stages.values())
    insert_thread = 1e3 * (last["insert_thread"] - first["insert_thread"]) / vector_steps
    cpu = last["cpu"] - first["cpu"]
    return {
        "env_steps_per_s": steps / wall,
        "env_steps_per_cpu_s": steps / max(cpu, 1e-9),
        "cpu_cores": cpu / wall,
        "ms_per_vector_step": 1e3 * wall / vector_steps,
        "cpu_ms_per_vector_step": 1e3 * cpu / vector_steps,
        "stages": stages,
        "insert_thread": insert_thread,
    }


def acting_config(
    env_id: str, *, actors: int, envs: int, threads: int, key_prefix: str, insert_batch: int = 64
) -> dict[str, Any]:
    """The resolved session settings of a bench run (JSON types): nothing limits the actors."""
    from hiverl.config import load_config

    config = load_config(
        None,
        {
            "env_id": env_id,
            "actors": actors,
            "session_id": f"acting-{secrets.token_hex(4)}",
            "total_steps": 10**12,
            "torch_threads": threads,
            "stats_interval_s": 3600.0,
            "agent": {"n_step": 3, "gamma": 0.99},
            "learner": {"rate_slack": 10**11},
            "actor": {"envs": envs, "insert_batch": insert_batch},
            "exploration": {"schedule": "ladder"},
            "memory": {"capacity": 50_000, "key_prefix": key_prefix},
        },
    )
    return config.to_json_dict()


def delete_keys(redis_url: str, key_prefix: str) -> int:
    """Delete every key under ``key_prefix`` on every server of ``redis_url`` (one URL or a
    comma-separated list, as a sharded memory has); the number deleted. Shared by the benches."""
    import redis

    deleted = 0
    for url in (u.strip() for u in redis_url.split(",") if u.strip()):
        with redis.Redis.from_url(url) as client:
            keys = list(client.scan_iter(match=f"{key_prefix}*", count=1000))
            for lo in range(0, len(keys), 500):
                deleted += int(client.delete(*keys[lo : lo + 500]))
    return deleted


def measure_acting(
    redis_url: str,
    *,
    actors: int = 1,
    envs: int = 8,
    threads: int = 1,
    seconds: float = 20.0,
    env_id: str = "ALE/Pong-v5",
    key_prefix: str | None = None,
    warmup_s: float = 5.0,
    insert_batch: int = 64,
) -> dict[str, Any]:
    """Run ``actors`` actor processes for ``warmup_s + seconds``; their rates (the JSON of the CLI).

    The memory and board keys under ``key_prefix`` (default: a new unique one) are deleted after.
    """
    prefix = key_prefix or f"bench-acting-{secrets.token_hex(6)}:"
    config = acting_config(
        env_id, actors=actors, envs=envs, threads=threads, key_prefix=prefix, insert_batch=insert_batch
    )
    saved = {name: os.environ.get(name) for name in THREAD_ENV_VARS}
    for name in THREAD_ENV_VARS:  # children start with the budget before they load any library
        os.environ[name] = str(threads)
    ctx = mp.get_context("spawn")
    start, results = ctx.Barrier(actors), ctx.Queue()  # the actors start once all are built
    procs = [
        ctx.Process(
            target=_play,
            args=(redis_url, config, i, threads, warmup_s, seconds, start, results),
            name=f"bench-actor-{i}",
        )
        for i in range(actors)
    ]
    try:
        for p in procs:
            p.start()
            reports: list[dict[str, Any]] = []
        deadline = time.monotonic() + warmup_s + seconds + 300.0
        while len(reports) < actors:
            if time.monotonic() > deadline or (not any(p.is_alive() for p in procs) and results.empty()):
                raise RuntimeError(f"{actors - len(reports)} actor process(es) did not report")
            try:
                reports.append(results.get(timeout=1.0))
            except Exception:  # queue.Empty
                continue
        for p in procs:
            p.join(timeout=60)
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        delete_keys(redis_url, prefix)
    per_actor = [_summary(r) for r in sorted(reports, key=lambda r: r["index"])]
    total = sum(a["env_steps_per_s"] for a in per_actor)
    return {
        "env_id": env_id,
        "actors": actors,
        "envs_per_actor": envs,
        "threads": threads,
        "seconds": seconds,
        "actor_env_steps_per_s_1_thread": total / actors,
        "env_steps_per_s_total": total,
        "actor_cpu_cores": sum(a["cpu_cores"] for a in per_actor) / actors,
        "actor_env_steps_per_cpu_s": sum(a["env_steps_per_cpu_s"] for a in per_actor) / actors,
        "ms_per_vector_step": per_actor[0]["ms_per_vector_step"],
        "cpu_ms_per_vector_step": per_actor[0]["cpu_ms_per_vector_step"],
        "stages_ms_per_vector_step": per_actor[0]["stages"],
        "insert_thread_ms_per_vector_step": per_actor[0]["insert_thread"],
        "per_actor_env_steps_per_s": [a["env_steps_per_s"] for a in per_actor],
    }


def print_table(result: dict[str, Any]) -> None:
    before = BEFORE
    comparable = (result["env_id"], result["envs_per_actor"], result["threads"]) == (
        before["env_id"],
        before["envs_per_actor"],
        before["threads"],
    )
    print(
        f"{result['actors']} actor(s) x {result['envs_per_actor']} envs of {result['env_id']},"
        f" {result['threads']} thread(s), {result['seconds']:.0f} s"
    )
    head = f"  {'':34s} {'now':>10s}"
    if comparable:
        head += f" {'before':>10s}   (commit {before['commit']}, {before['machine']})"
    print(head)

    def row(label: str, now: float | None, then: float | None, fmt: str = "10.0f") -> None:
        line = f"  {label:34s} {'-' if now is None else format(now, fmt):>10s}"
        if comparable:
            line += f" {'-' if then is None else format(then, fmt):>10s}"
        print(line)

    row(
        "env steps/s per actor",
        result["actor_env_steps_per_s_1_thread"],
        before["actor_env_steps_per_s_1_thread"],
    )
    row("env steps/s total", result["env_steps_per_s_total"], None)
    row("CPU cores per actor", result["actor_cpu_cores"], before.get("actor_cpu_cores"), "10.2f")
    row(
        "env steps per CPU second",
        result["actor_env_steps_per_cpu_s"],
        before.get("actor_env_steps_per_cpu_s"),
    )
    print("  ms per vector step:")
    row("  whole loop", result["ms_per_vector_step"], before.get("ms_per_vector_step"), "10.2f")
    row(
        "  CPU time of the process",
        result["cpu_ms_per_vector_step"],
        before.get("cpu_ms_per_vector_step"),
        "10.2f",
    )
    stages = result["stages_ms_per_vector_step"] or {}
    then_stages = before["stages_ms_per_vector_step"]
    for stage in (*STAGES, "other"):
        row(f"  {stage}", stages.get(stage), then_stages.get(stage), "10.2f")
    row(
        "  insert thread (off the loop)",
        result["insert_thread_ms_per_vector_step"],
        then_stages.get("insert_thread"),
        "10.2f",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--actors", type=int, default=1, help="actor processes")
    parser.add_argument("--envs", type=int, default=8, help="envs per actor")
    parser.add_argument("--threads", type=int, default=1, help="torch/OpenMP/OpenCV threads per actor")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring")
    parser.add_argument("--env", default="ALE/Pong-v5", help="gymnasium id")
    parser.add_argument("--insert-batch", type=int, default=64, help="transitions per insert")
    parser.add_argument("--key-prefix", default=None, help="Redis key prefix (default: a unique one)")
    args = parser.parse_args(argv)
    from game.trainer import ensure_redis

    result = measure_acting(
        ensure_redis(),
        actors=args.actors,
        envs=args.envs,
        threads=args.threads,
        seconds=args.seconds,
        env_id=args.env,
        key_prefix=args.key_prefix,
        warmup_s=args.warmup,
        insert_batch=args.insert_batch,
    )
    result["before"] = BEFORE
    print_table(result)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
