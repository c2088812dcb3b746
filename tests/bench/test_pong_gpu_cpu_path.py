"""bench/pong_gpu.py end to end on CPU (``--cpu-smoke``): a hive of one learner, one actor and the
evaluator on real Pong for a few hundred env steps, the sampling phase, the report and the cleanup."""

from __future__ import annotations

from pathlib import Path

import redis

from tests.helpers.scripts import run_for_json

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "pong_gpu.py"

EXPECTED_KEYS = {
    "minutes_to_18",
    "eval_returns",
    "learner_updates_per_s",
    "actor_env_steps_per_s",
    "learner_memory_wait_share",
    "env_steps_total",
    "updates_total",
    "wall_clock_s",
    "sample_batches_per_s",
    "learner_update_ms",
    "role_threads",
    "settings",
}


def test_cpu_smoke_runs_end_to_end(tmp_path: Path, redis_url: str, redis_prefix: str) -> None:
    options = ["--cpu-smoke", "--out", str(tmp_path), "--key-prefix", redis_prefix, "--minutes", "2"]
    completed, summary = run_for_json([SCRIPT, *options], timeout=240)
    output = completed.stdout + completed.stderr
    lines = completed.stdout.strip().splitlines()
    assert not EXPECTED_KEYS - summary.keys(), output[-4000:]
    assert summary["env_steps_total"] >= 400  # the smoke's step budget was played
    assert summary["updates_total"] > 0  # the learner learned from the memory
    assert summary["sample_batches_per_s"] > 0  # the sampling phase ran against the filled memory
    assert summary["wall_clock_s"] > 0
    assert summary["settings"]["cpu_smoke"] is True
    # Every role process said, from inside itself, that it ran on one torch thread (the default).
    assert summary["role_threads"] == {"learner": 1, "actor-0": 1, "evaluator": 1}, summary["role_threads"]
    # Where a learner update's time went, by phase (host ms per update).
    breakdown = summary["learner_update_ms"]
    assert set(breakdown) == {"fetch_wait", "stage", "step", "priorities", "publish", "other"}, breakdown
    assert all(ms >= 0 for ms in breakdown.values()) and breakdown["step"] > 0
    assert summary["settings"]["config"]["memory"]["key_prefix"] == redis_prefix
    for minutes, eval_return in summary["eval_returns"]:
        assert minutes >= 0 and -21 <= eval_return <= 21
    assert any(line.startswith("[") and "min]" in line for line in lines)  # progress lines
    assert any(line.startswith("learner ") for line in lines)  # the final table
    if summary["plot"] is not None:
        assert Path(summary["plot"]).is_file()

    # The run's memory, board and counters were deleted from Redis.
    with redis.Redis.from_url(redis_url) as client:
        assert not list(client.scan_iter(match=f"{redis_prefix}*", count=1000))


def test_acting_only_measures_the_actors_alone(tmp_path: Path, redis_url: str, redis_prefix: str) -> None:
    """``--acting-only``: no learner, the actors play with nothing holding them back, and say how fast."""
    options = ["--cpu-smoke", "--acting-only", "--actors", "2", "--envs-per-actor", "2"]
    options += ["--out", str(tmp_path), "--key-prefix", redis_prefix]
    _, summary = run_for_json([SCRIPT, *options], timeout=240)
    acting = summary["acting"]
    assert acting["actors"] == 2 and acting["envs_per_actor"] == 2 and acting["threads"] == 1
    assert summary["actor_env_steps_per_s"] == acting["env_steps_per_s_total"] > 0
    assert summary["updates_total"] == 0  # nothing learned: acting alone
    with redis.Redis.from_url(redis_url) as client:
        assert not list(client.scan_iter(match=f"{redis_prefix}*", count=1000))
