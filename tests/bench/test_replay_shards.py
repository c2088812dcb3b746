"""bench/replay_shards.py end to end with tiny sizes: its table, its JSON line, its servers stopped."""

from __future__ import annotations

from pathlib import Path

import psutil

from tests.helpers.scripts import run_for_json

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "replay_shards.py"


def _processes_under(folder: Path) -> list[str]:
    """Command lines of live processes that name ``folder`` (the bench's redis-servers do)."""
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if str(folder) in cmdline:
            found.append(cmdline)
    return found


def test_replay_shards_bench_runs_end_to_end(tmp_path: Path) -> None:
    options = ["--shards", "1,2,4", "--seconds", "0.4", "--processes", "1"]
    options += ["--kinds", "cartpole", "--capacity", "2000", "--home", str(tmp_path)]
    completed, summary = run_for_json([SCRIPT, *options], timeout=240)
    lines = completed.stdout.splitlines()
    assert list(summary)[:3] == ["shards", "insert_per_s", "sample_per_s"], summary
    assert summary["shards"] == [1, 2, 4]
    for key in ("insert_per_s", "sample_per_s"):
        assert len(summary[key]) == 3 and all(value > 0 for value in summary[key]), summary
    cartpole = summary["by_kind"]["cartpole"]
    assert cartpole["insert_per_s"] == summary["insert_per_s"]
    assert all(len(values) == 3 for values in cartpole.values() if isinstance(values, list))
    assert summary["kind"] == "cartpole" and summary["processes"] == 1
    # the table: one row per shard count
    rows = [line.split("|") for line in lines if line.strip().startswith("cartpole")]
    assert [int(row[1]) for row in rows] == [1, 2, 4], completed.stdout
    # every redis-server the bench started (7: 1 + 2 + 4) is gone, and so is its folder
    assert _processes_under(tmp_path) == []
    assert list(tmp_path.iterdir()) == []
