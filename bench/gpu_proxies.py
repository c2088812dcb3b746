"""CPU proxies of the GPU path: what can be measured, and regression-checked, on a machine without one.

On one H200 with 16 cores the hive's Pong run is bound by three host-side costs, each measured here on
real Pong frames against the real Redis, on this machine's CPU:

1. ``learner_host_ms_per_update``: the learner's loop around a stand-in for the network step (fetch
   wait, staging a chunk onto the device, priorities), wall ms per update of 256
   (``bench/learner_path.py``), with the device work (upload, stacking frames) computing shapes
   only, as a GPU would take it off the host; the network's own compute is the GPU's and is left
   out. ``learner_cpu_ms_per_update`` is the same loop with the frames stacked on this CPU;
2. ``actor_env_steps_per_s_1_thread``: one actor of 8 Pong envs on 1 thread, the rate limiter out of
   the way (``bench/acting.py``);
3. ``sample_batches_per_s_per_shard``: batches of 256 per second one process receives from a
   one-shard memory through the learner's sampler processes.

Each is printed beside its value before issue #21 (main at 2af2a4d, measured on this 2-core machine
with the same memory and batch: ``BEFORE``). Prints a table and, as its last line, one JSON object.

Usage: ``python bench/gpu_proxies.py [--seconds 15] [--fill 20000] [--samplers 2] [--skip-acting]``
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from acting import delete_keys, measure_acting
from learner_path import fill_memory, measure_learner_host, measure_sampling

from game.trainer import ensure_redis
from replay_memory import MemoryConfig, ObservationSpec

#: At 2af2a4d on this 2-core machine (threads instead of sampler processes: the learner's
#: SampleFetcher with 2 threads, chunks of 2 x 256, decoding whole stacks; the old learner's host
#: work per update: tensors from the arrays, the priorities read back with a sync).
BEFORE: dict[str, float] = {
    "learner_host_ms_per_update": 22.19,
    "actor_env_steps_per_s_1_thread": 0.0,  # filled from bench/acting.py's own BEFORE
    "sample_batches_per_s_per_shard": 57.62,
}
KEYS = ("learner_host_ms_per_update", "actor_env_steps_per_s_1_thread", "sample_batches_per_s_per_shard")
BETTER_WHEN_LOWER = {"learner_host_ms_per_update"}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=15.0, help="length of each measurement")
    parser.add_argument("--fill", type=int, default=20_000, help="Pong transitions in the memory")
    parser.add_argument("--samplers", type=int, default=2, help="sampler processes of the learner")
    parser.add_argument("--chunk", type=int, default=2, help="batches of 256 per sampled chunk")
    parser.add_argument("--skip-acting", action="store_true", help="leave out the actor measurement")
    args = parser.parse_args(argv)

    redis_url = ensure_redis()
    prefix = f"bench-proxies-{secrets.token_hex(4)}:"
    config = MemoryConfig(
        name="proxies",
        capacity=max(args.fill, 2),
        alpha=0.6,
        observation=ObservationSpec((4, 84, 84), "uint8"),
        key_prefix=prefix,
    )
    result: dict[str, Any] = {"samplers": args.samplers, "chunk": args.chunk, "fill": args.fill}
    try:
        fill_s = fill_memory(redis_url, config, args.fill, seed=0)
        print(f"filled {args.fill:,} Pong transitions in {fill_s:.1f} s", flush=True)
        sampling = measure_sampling(
            redis_url, config, chunk=args.chunk, samplers=args.samplers, seconds=args.seconds, beta=0.4
        )
        result |= sampling
        result["sample_batches_per_s_per_shard"] = sampling["sample_batches_per_s"]
        # The GPU path's host share (stacking on the device: shapes only here), then a CPU learner's.
        result |= measure_learner_host(
            redis_url, config, chunk=args.chunk, samplers=args.samplers, seconds=args.seconds, device="meta"
        )
        on_cpu = measure_learner_host(
            redis_url, config, chunk=args.chunk, samplers=args.samplers, seconds=args.seconds, device="cpu"
        )
        result["learner_cpu_ms_per_update"] = on_cpu["learner_host_ms_per_update"]
        result["learner_cpu_phases_ms"] = on_cpu["learner_host_phases_ms"]
    finally:
        delete_keys(redis_url, prefix)
    before = dict(BEFORE)
    if not args.skip_acting:
        acting = measure_acting(
            redis_url,
            actors=1,
            envs=8,
            threads=1,
            seconds=args.seconds,
            env_id="ALE/Pong-v5",
            key_prefix=f"bench-acting-{secrets.token_hex(4)}:",
        )
        result["actor_env_steps_per_s_1_thread"] = acting["actor_env_steps_per_s_1_thread"]
        result["acting"] = acting
        from acting import BEFORE as ACTING_BEFORE

        before["actor_env_steps_per_s_1_thread"] = ACTING_BEFORE["actor_env_steps_per_s_1_thread"]
    else:
        result["actor_env_steps_per_s_1_thread"] = None

    # The table, then the JSON line.
    print(f"\n{'proxy':<34} {'before (2af2a4d)':>17} {'now':>10} {'change':>8}")
    print("-" * 72)
    for key in KEYS:
        now, was = result[key], before[key]
        if now is None:
            print(f"{key:<34} {was:>17.2f} {'-':>10} {'':>8}")
            continue
        factor = (was / now if key in BETTER_WHEN_LOWER else now / was) if was else float("nan")
        print(f"{key:<34} {was:>17.2f} {now:>10.2f} {factor:>7.2f}x")
    for key in ("learner_host_phases_ms", "learner_cpu_phases_ms"):
        phases = ", ".join(f"{k} {v:.2f}" for k, v in result[key].items() if v)
        print(f"{key.removesuffix('_phases_ms').replace('_', ' ')} ms per update by phase: {phases}")
    print(
        f"learner cpu ms per update (frames stacked on this CPU): {result['learner_cpu_ms_per_update']:.2f}"
    )
    result["before"] = before
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()
