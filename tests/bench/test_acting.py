"""bench/acting.py end to end on CartPole for two seconds: its table, its JSON line and its cleanup."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import redis

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
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), *options, "--key-prefix", redis_prefix],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-4000:]

    lines = completed.stdout.strip().splitlines()
    summary = json.loads(lines[-1])
    assert not EXPECTED_KEYS - summary.keys(), output[-4000:]
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
