"""The status bar: which services answer, which device computes, quick and never blocking long.

Each ping has a short timeout and they run in parallel, so a dead service costs one timeout, not
one per service; results are cached for ``cache_s`` so every open browser polling does not
multiply the probes.
"""

from __future__ import annotations

import json
import platform
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import httpx

from hiverl.endpoints import Endpoints


def _ping_redis(url: str, timeout_s: float) -> None:
    import redis

    first = url.split(",")[0].strip()
    client = redis.Redis.from_url(first, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        client.ping()
    finally:
        client.close()


def _ping_kafka(bootstrap: str, timeout_s: float) -> None:
    # A TCP handshake with the first reachable broker: enough to say "up" without the cost of a
    # full Kafka client (metadata requests take seconds when the broker is half-started).
    errors = []
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition(":")
        try:
            with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout_s):
                return
        except OSError as error:
            errors.append(error)
    raise ConnectionError(f"no broker of {len(errors)} answered")


def _ping_elasticsearch(url: str, timeout_s: float) -> None:
    response = httpx.get(url.rstrip("/") + "/_cluster/health", timeout=timeout_s)
    response.raise_for_status()
    if response.json().get("status") == "red":
        raise ConnectionError("cluster health is red")


def _ping_mongodb(uri: str, timeout_s: float) -> None:
    from pymongo import MongoClient

    client: MongoClient[Any] = MongoClient(
        uri, serverSelectionTimeoutMS=int(timeout_s * 1000), connectTimeoutMS=int(timeout_s * 1000)
    )
    try:
        client.admin.command("ping")
    finally:
        client.close()


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (platform's answer elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


_DEVICE_PROBE = """
import json, torch
if torch.cuda.is_available():
    name = torch.cuda.get_device_name(torch.cuda.current_device())
    print(json.dumps({"kind": "cuda", "name": name, "count": torch.cuda.device_count()}))
else:
    print(json.dumps({"kind": "cpu"}))
"""


def _detect_device(timeout_s: float = 300.0) -> dict[str, Any]:
    """What ``device=auto`` training would use: the CUDA GPU's name, else the CPU model.

    Asked in a child process: importing torch takes seconds and would hold this server's GIL.
    """
    try:
        probe = subprocess.run(
            [sys.executable, "-c", _DEVICE_PROBE],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=True,
        )
        found: dict[str, Any] = json.loads(probe.stdout.strip().splitlines()[-1])
    except (OSError, subprocess.SubprocessError, ValueError, IndexError) as error:  # no usable torch
        return {"kind": "cpu", "name": cpu_model(), "note": f"torch: {type(error).__name__}"}
    if found.get("kind") != "cuda":
        found = {"kind": "cpu", "name": cpu_model()}
    return found


_detected_device: dict[str, Any] | None = None
_detection_lock = threading.Lock()
_detection_started = False


def _start_device_detection() -> None:
    """Detect the device once per process, in the background (the device does not change)."""
    global _detection_started
    with _detection_lock:
        if _detection_started:
            return
        _detection_started = True

    def detect() -> None:
        global _detected_device
        _detected_device = _detect_device()

    threading.Thread(target=detect, name="device-detect", daemon=True).start()


class StatusProbe:
    """Pings the four services in parallel and reports the compute device (detected once)."""

    def __init__(self, endpoints: Endpoints, timeout_s: float = 1.0, cache_s: float = 3.0) -> None:
        self.endpoints = endpoints
        self.timeout_s = timeout_s
        self.cache_s = cache_s
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="status-ping")
        self._lock = threading.Lock()
        self._cached: tuple[float, dict[str, dict[str, Any]]] | None = None
        _start_device_detection()

    @property
    def device(self) -> dict[str, Any]:
        """``{"kind": "cuda"|"cpu", "name": ...}``; the CPU model until detection finishes."""
        return _detected_device or {"kind": "cpu", "name": cpu_model(), "note": "detecting"}

    def services(self) -> dict[str, dict[str, Any]]:
        """``{name: {"up": bool, "address": redacted, "error": str | None}}`` for each service."""
        with self._lock:
            if self._cached and time.monotonic() - self._cached[0] < self.cache_s:
                return self._cached[1]
        e = self.endpoints
        checks = {
            "redis": (_ping_redis, e.redis_url),
            "kafka": (_ping_kafka, e.kafka_bootstrap_servers),
            "elasticsearch": (_ping_elasticsearch, e.elasticsearch_url),
            "mongodb": (_ping_mongodb, e.mongodb_uri),
        }
        futures = {
            name: self._pool.submit(fn, address, self.timeout_s) for name, (fn, address) in checks.items()
        }
        result: dict[str, dict[str, Any]] = {}
        for name, future in futures.items():
            address = _host_port(checks[name][1])
            try:
                future.result(timeout=self.timeout_s * 3)
                result[name] = {"up": True, "address": address, "error": None}
            except Exception as error:
                result[name] = {"up": False, "address": address, "error": type(error).__name__}
        with self._lock:
            self._cached = (time.monotonic(), result)
        return result

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _host_port(address: str) -> str:
    """host:port only (never credentials or paths) of a URL or bootstrap list's first entry."""
    first = address.split(",")[0].strip()
    if "://" not in first:
        return first
    parts = urlsplit(first)
    return f"{parts.hostname}:{parts.port}" if parts.port else str(parts.hostname)
