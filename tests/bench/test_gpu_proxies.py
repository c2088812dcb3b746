"""bench/gpu_proxies.py end to end at tiny sizes: the three CPU proxies of the GPU path, each beside
its value before, in the table and the JSON line; the memory's keys are gone afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from tests.helpers.scripts import run_for_json

pytestmark = pytest.mark.xdist_group("hive")  # sampler and actor processes: not beside a hive

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "gpu_proxies.py"
PROXIES = ("learner_host_ms_per_update", "actor_env_steps_per_s_1_thread", "sample_batches_per_s_per_shard")


def test_gpu_proxies_print_each_beside_its_value_before(redis_url: str) -> None:
    completed, summary = run_for_json(
        [SCRIPT, "--seconds", "1", "--fill", "600", "--samplers", "1"], timeout=300
    )
    for key in PROXIES:
        assert summary[key] > 0, summary
        assert summary["before"][key] > 0, summary["before"]
        row = next(line for line in completed.stdout.splitlines() if line.startswith(key))
        assert len(row.split()) == 4, row  # name, before, now, change
    assert summary["learner_cpu_ms_per_update"] > 0
    phases = summary["learner_host_phases_ms"]
    assert set(phases) == {"fetch_wait", "stage", "step", "priorities", "publish", "other"}
    with redis.Redis.from_url(redis_url) as client:
        assert not list(client.scan_iter(match="bench-proxies-*", count=1000))
        assert not list(client.scan_iter(match="bench-acting-*", count=1000))
