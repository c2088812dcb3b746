"""Running a command the way a user does, and reading the JSON object a benchmark prints last."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def run_for_json(
    command: Sequence[str | Path],
    *,
    timeout: float,
    cwd: Path = ROOT,
    env: Mapping[str, str] | None = None,
) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """Run ``command`` (a ``.py`` first runs under this interpreter); assert it exits 0; return the
    finished process and the JSON object of its last stdout line."""
    argv = [str(part) for part in command]
    if argv[0].endswith(".py"):
        argv.insert(0, sys.executable)
    completed = subprocess.run(
        argv,
        cwd=cwd,
        env=dict(os.environ if env is None else env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-6000:]
    lines = completed.stdout.strip().splitlines()
    assert lines, output[-6000:]
    summary: dict[str, Any] = json.loads(lines[-1])
    return completed, summary
