"""Every process obeys its thread budget: each role of a real hive says, from inside its own process,
the torch, BLAS/OpenMP and OpenCV threads it runs with, and they are the session's ``torch_threads``.

The budget tried is one more than this machine's cores, so it differs from every library's default
(one thread per core): a role that ignored the setting would report the default and fail here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from game.trainer import Trainer
from hiverl.config import load_config
from hiverl.status import SessionStatus
from hiverl.threads import THREAD_ENV_VARS

pytestmark = pytest.mark.xdist_group("hive")


def test_every_role_process_runs_with_the_sessions_thread_budget(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    budget = (os.cpu_count() or 1) + 1
    config = load_config(
        overrides={
            "actors": 2,
            "torch_threads": budget,
            "total_steps": 1_500,
            "run_dir": str(tmp_path / "runs"),
            "model_dir": str(tmp_path / "models"),
            "memory": {"key_prefix": redis_prefix},
            "learner": {"min_size": 200},
            "evaluator": {"interval_s": 0.5, "episodes": 1},
        }
    )
    result = Trainer(config, redis_url=redis_url, live=False).run()
    assert result.status == SessionStatus.FINISHED, [(v.name, v.state, v.error) for v in result.views]

    events = [json.loads(line) for line in (result.run_folder / "events.jsonl").read_text().splitlines()]
    started = {
        f"{e['role']}-{e['worker_index']}" if e["role"] == "actor" else e["role"]: e
        for e in events
        if e["event_type"] == "started"
    }
    assert set(started) == {"learner", "actor-0", "actor-1", "evaluator"}
    pids = {e["pid"] for e in started.values()}
    assert len(pids) == 4  # four processes, each measured from inside itself
    for role, event in started.items():
        assert event["torch_threads"] == budget, (role, event)
        assert event["torch_interop_threads"] == budget, (role, event)
        assert event["blas_threads"] == budget, (role, event)
        assert event["cv2_threads"] in (budget, -1), (role, event)  # -1: OpenCV not installed
        assert event["os_threads"] >= 1


def test_actors_default_to_one_thread_each() -> None:
    assert load_config().torch_threads == 1


def test_limit_threads_caps_every_pool_and_what_the_process_starts() -> None:
    """In a fresh interpreter (torch, numpy and OpenCV loaded with their defaults): every pool is
    capped, and a child process inherits the budget through the environment (OpenCV's too)."""
    code = """
import json, os, subprocess, sys
import cv2, numpy, torch
from hiverl.threads import limit_threads
counts = limit_threads(1)
child = subprocess.run([sys.executable, "-c", "import os, json; print(json.dumps(dict(os.environ)))"],
                       capture_output=True, text=True, check=True)
print(json.dumps({"counts": counts, "child_env": json.loads(child.stdout)}))
"""
    env = {k: v for k, v in os.environ.items() if k not in THREAD_ENV_VARS}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    report = json.loads(out.stdout.strip().splitlines()[-1])
    counts = report["counts"]
    assert counts["torch_threads"] == 1 and counts["torch_interop_threads"] == 1
    assert counts["blas_threads"] == 1
    assert counts["cv2_threads"] == 1
    for name in THREAD_ENV_VARS:
        assert report["child_env"][name] == "1"


def test_limit_threads_refuses_a_budget_below_one() -> None:
    from hiverl.threads import limit_threads

    with pytest.raises(ValueError, match="torch_threads"):
        limit_threads(0)
