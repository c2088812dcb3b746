"""bench/acting.py end to end on CartPole for two seconds: its table, its JSON line and its cleanup."""

from __future__ import annotations

from pathlib import Path

import redis

from tests.helpers.scripts import run_for_json

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "acting.py"

EXPECTED_KEYS = {
    "actor_env_steps_per_s_1_thread",
    "env_steps_per_s_total",
    "actors",
    "envs_per_actor",
    "threads",
    "stages_ms_per_vector_step",
    "before",
}
STAGES = {"env", "act", "fold", "priorities", "insert", "wait", "other"}


def test_acting_bench_runs_end_to_end(redis_url: str, redis_prefix: str) -> None:
    options = ["--seconds", "2", "--warmup", "1", "--env", "CartPole-v1", "--envs", "4"]
    completed, summary = run_for_json([SCRIPT, *options, "--key-prefix", redis_prefix], timeout=180)
    lines = completed.stdout.splitlines()
    assert not EXPECTED_KEYS - summary.keys(), summary
    assert (summary["actors"], summary["envs_per_actor"], summary["threads"]) == (1, 4, 1)
    assert summary["actor_env_steps_per_s_1_thread"] > 0
    assert summary["env_steps_per_s_total"] == summary["actor_env_steps_per_s_1_thread"]
    stages = summary["stages_ms_per_vector_step"]
    assert set(stages) == STAGES and all(stages[s] >= 0 for s in STAGES - {"other"})
    assert summary["before"]["commit"]
    assert any(line.strip().startswith("env steps/s per actor") for line in lines)  # the table
    # The memory and the board were deleted.
    with redis.Redis.from_url(redis_url) as client:
        assert list(client.scan_iter(match=f"{redis_prefix}*")) == []
