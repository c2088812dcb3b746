"""scripts/gpu_bundle.sh end to end: the offline bundle for a bare CUDA machine, rehearsed here.

The bundle is built for this interpreter's CPython version and run by an interpreter that has only
torch and numpy (a fresh venv filled from uv's cache at requirements.lock's versions), with no
Redis address in the environment: its run_pong.sh installs the wheels, starts the bundled Redis
and runs ``bench/pong_gpu.py --cpu-smoke`` to its JSON line, then stops that Redis.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.helpers.scripts import run_for_json

ROOT = Path(__file__).resolve().parents[2]
MAX_BYTES = 60 * 1000 * 1000

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("hive"), pytest.mark.timeout(1200)]


def locked_version(name: str) -> str:
    found = re.search(rf"^{re.escape(name)}==(\S+)$", (ROOT / "requirements.lock").read_text(), re.MULTILINE)
    assert found, f"{name} is not pinned in requirements.lock"
    return found.group(1)


def bare_venv(path: Path) -> Path:
    """A venv holding only torch and numpy (and what torch itself requires), from uv's cache."""
    uv = shutil.which("uv")
    assert uv, "uv is needed to build the bare venv (scripts/setup.sh installs it)"
    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    subprocess.run([uv, "venv", "-q", "--python", str(base), str(path)], check=True, timeout=120)
    pins = [f"torch=={locked_version('torch')}", f"numpy=={locked_version('numpy')}"]
    subprocess.run(
        [uv, "pip", "install", "-q", "--python", str(path / "bin" / "python"), *pins], check=True, timeout=900
    )
    return path


def test_bundle_runs_the_pong_smoke_with_only_torch_and_numpy(tmp_path: Path) -> None:
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    bundle = tmp_path / "bundle"
    built = subprocess.run(
        [str(ROOT / "scripts" / "gpu_bundle.sh"), str(bundle)],
        cwd=ROOT,
        env={**os.environ, "HIVERL_BUNDLE_PYTHON": version},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr

    # What is inside: small, no OpenCV or matplotlib, Redis with its own loader and libc.
    size = sum(f.stat().st_size for f in bundle.rglob("*") if f.is_file())
    assert size <= MAX_BYTES, f"{size:,} bytes"
    wheels = sorted(p.name.lower() for p in (bundle / "wheels").glob("*.whl"))
    assert not [w for w in wheels if w.startswith(("opencv", "matplotlib"))], wheels
    assert any(w.startswith("ale_py-") and f"cp{version.replace('.', '')}" in w for w in wheels), wheels
    for name in ("ld-linux-x86-64.so.2", "libc.so.6"):
        assert (bundle / "redis" / "lib" / name).is_file()
    assert (bundle / "project" / "bench" / "pong_gpu.py").is_file()
    assert not (bundle / "project" / "tests").exists()
    assert (bundle / "PYTHON_VERSION").read_text().strip() == version

    # The run: the bare interpreter first on PATH, no Redis address, no project on sys.path.
    venv = bare_venv(tmp_path / "venv")
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("REDIS_URL", "HIVERL_REDIS", "HIVERL_BUNDLE", "PYTHON", "VIRTUAL_ENV"))
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["HIVERL_REDIS_SHARDS"] = "2"  # the memory spread over two bundled Redis servers
    prefix = f"bundle-test-{uuid.uuid4().hex[:12]}:"
    completed, summary = run_for_json(
        [bundle / "run_pong.sh", "--cpu-smoke", "--minutes", "1", "--key-prefix", prefix],
        timeout=600,
        cwd=tmp_path,
        env=env,
    )
    output = completed.stdout + completed.stderr
    assert summary["env_steps_total"] > 0, output[-6000:]
    assert summary["updates_total"] > 0, output[-6000:]
    assert summary["settings"]["config"]["memory"]["key_prefix"] == prefix
    assert summary["settings"]["config"]["memory"]["shards"] == 2
    assert f"python:  {venv / 'bin' / 'python3'} {version}" in completed.stdout

    # The bundled Redis servers served the run and are gone: their processes ended, their ports closed.
    started = re.search(r"redis:\s+(\S+) \(pids ([\d ]+),", completed.stdout)
    assert started, completed.stdout[:2000]
    ports = [int(port) for port in re.findall(r"redis://127\.0\.0\.1:(\d+)/0", started.group(1))]
    pids = [int(pid) for pid in started.group(2).split()]
    assert len(ports) == len(pids) == 2
    for pid, port in zip(pids, ports, strict=True):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
