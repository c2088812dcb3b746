"""Fetching and building the service distributions into the cache (``$HIVERL_CACHE``).

Each distribution lives in its own versioned folder with a ``.complete`` marker written last, so
an interrupted fetch is redone and a complete one is never downloaded again. A file lock per
distribution lets parallel callers (CI jobs, two shells) fetch safely.

- Kafka: ``mvn dependency:copy-dependencies`` of ``kafka_2.13`` (+ the log4j slf4j binding) into
  ``kafka-<version>/libs``.
- Elasticsearch: ``mvn dependency:copy`` of the integ-test-zip, unpacked to ``elasticsearch-<version>/``.
- FerretDB: the module source from the Go proxy, built with ``go build`` into ``ferretdb-<version>/bin``.
- Redis and ``mongod`` are system packages: only found and version-checked here.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import stat
import subprocess
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

from hiverl.services.base import ServiceError, run_checked
from hiverl.services.catalog import (
    CATALOG,
    ElasticsearchSpec,
    KafkaSpec,
    MongoSpec,
    RedisSpec,
    cache_dir,
)

COMPLETE = ".complete"


# --- locations -----------------------------------------------------------------------------------


def kafka_dist(spec: KafkaSpec = CATALOG.kafka) -> Path:
    """``<cache>/kafka-<version>`` (holds ``libs/``)."""
    return cache_dir() / f"kafka-{spec.version}"


def elasticsearch_dist(spec: ElasticsearchSpec = CATALOG.elasticsearch) -> Path:
    """``<cache>/elasticsearch-<version>`` (the unpacked distribution: ``bin/``, ``lib/``, ...)."""
    return cache_dir() / f"elasticsearch-{spec.version}"


def ferretdb_dist(spec: MongoSpec = CATALOG.mongodb) -> Path:
    """``<cache>/ferretdb-<version>`` (``bin/ferretdb`` and the build folders)."""
    return cache_dir() / f"ferretdb-{spec.ferretdb_version}"


def ferretdb_binary(spec: MongoSpec = CATALOG.mongodb) -> Path:
    return ferretdb_dist(spec) / "bin" / "ferretdb"


def is_complete(dist: Path) -> bool:
    return (dist / COMPLETE).exists()


def _missing(name: str, dist: Path) -> ServiceError:
    return ServiceError(f"{name} is not fetched ({dist} is incomplete); run `hiverl services fetch {name}`")


@contextlib.contextmanager
def _locked(dist: Path) -> Iterator[None]:
    dist.parent.mkdir(parents=True, exist_ok=True)
    with open(dist.parent / f".{dist.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _tool(name: str, *fallbacks: str, hint: str) -> str:
    found = shutil.which(name) or next((f for f in fallbacks if Path(f).exists()), None)
    if found is None:
        raise ServiceError(f"`{name}` is not installed; {hint}")
    return found


# --- Java ----------------------------------------------------------------------------------------


def java_major(java_home: Path) -> int | None:
    """The major version of the JDK at ``java_home`` (from its ``release`` file), or None."""
    with contextlib.suppress(OSError):
        m = re.search(r'^JAVA_VERSION="(\d+)', (java_home / "release").read_text(), re.MULTILINE)
        if m:
            return int(m.group(1))
    return None


def find_java_home(min_version: int, candidates: tuple[str, ...] = (), env_var: str = "") -> Path:
    """A JDK of at least ``min_version``: ``$env_var``, then ``candidates``, then ``java`` on PATH."""
    homes: list[Path] = []
    if env_var and os.environ.get(env_var):
        homes.append(Path(os.environ[env_var]))
    homes += [Path(c) for c in candidates]
    if os.environ.get("JAVA_HOME"):
        homes.append(Path(os.environ["JAVA_HOME"]))
    if java := shutil.which("java"):
        homes.append(Path(os.path.realpath(java)).parents[1])
    seen = []
    for home in homes:
        major = java_major(home)
        seen.append(f"{home} ({major or 'no JDK'})")
        if major is not None and major >= min_version and (home / "bin" / "java").exists():
            return home
    raise ServiceError(
        f"no JDK >= {min_version} found (tried {', '.join(seen) or 'nothing'}); install one "
        f"(e.g. apt-get install openjdk-{min_version}-jdk-headless) or set {env_var or 'JAVA_HOME'}"
    )


# --- Redis ---------------------------------------------------------------------------------------


def redis_version(spec: RedisSpec = CATALOG.redis) -> str:
    """The installed ``redis-server`` version; raises unless it is >= ``spec.min_version``."""
    exe = _tool(spec.executable, hint="run scripts/setup.sh or `apt-get install redis-server`")
    out = subprocess.run([exe, "--version"], capture_output=True, text=True, check=False).stdout
    m = re.search(r"v=(\d+)\.(\d+)\.(\d+)", out)
    if not m:
        raise ServiceError(f"cannot read the version of {exe}: {out!r}")
    found = tuple(int(x) for x in m.groups())
    wanted = tuple(int(x) for x in spec.min_version.split("."))
    if found[: len(wanted)] < wanted:
        raise ServiceError(f"{exe} is Redis {'.'.join(m.groups())}; hiverl needs Redis >= {spec.min_version}")
    return ".".join(m.groups())


# --- Kafka ---------------------------------------------------------------------------------------

_KAFKA_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.hiverl</groupId>
  <artifactId>kafka-distribution</artifactId>
  <version>{version}</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId>
      <artifactId>kafka_{scala}</artifactId>
      <version>{version}</version>
    </dependency>
    <dependency>
      <groupId>org.apache.logging.log4j</groupId>
      <artifactId>log4j-slf4j-impl</artifactId>
      <version>{log4j}</version>
    </dependency>
  </dependencies>
</project>
"""


def fetch_kafka(spec: KafkaSpec = CATALOG.kafka) -> Path:
    """Download the broker's jars with Maven into ``kafka-<version>/libs`` (no-op when present)."""
    dist = kafka_dist(spec)
    with _locked(dist):
        if is_complete(dist):
            return dist
        mvn = _tool("mvn", hint="install Maven (apt-get install maven)")
        shutil.rmtree(dist, ignore_errors=True)
        dist.mkdir(parents=True)
        (dist / "pom.xml").write_text(
            _KAFKA_POM.format(version=spec.version, scala=spec.scala, log4j=spec.log4j_version)
        )
        run_checked(
            [mvn, "-q", "-B", "dependency:copy-dependencies", "-DincludeScope=runtime",
             f"-DoutputDirectory={dist / 'libs'}"],
            f"fetching {spec.maven_artifact} with Maven",
            cwd=dist,
        )  # fmt: skip
        if not (dist / "libs" / f"kafka_{spec.scala}-{spec.version}.jar").exists():
            raise ServiceError(
                f"Maven finished but {dist / 'libs'} has no kafka_{spec.scala}-{spec.version}.jar"
            )
        (dist / COMPLETE).touch()
        return dist


def require_kafka(spec: KafkaSpec = CATALOG.kafka) -> Path:
    dist = kafka_dist(spec)
    if not is_complete(dist):
        raise _missing("kafka", dist)
    return dist


# --- Elasticsearch -------------------------------------------------------------------------------


def _unzip(archive: Path, target: Path) -> None:
    """Unpack keeping the executable bits (``zipfile`` alone drops them)."""
    with zipfile.ZipFile(archive) as z:
        for info in z.infolist():
            path = Path(z.extract(info, target))
            mode = (info.external_attr >> 16) & 0o777
            if mode and not info.is_dir():
                path.chmod(mode)


def fetch_elasticsearch(spec: ElasticsearchSpec = CATALOG.elasticsearch) -> Path:
    """Download the integ-test-zip with Maven and unpack it (no-op when present)."""
    dist = elasticsearch_dist(spec)
    with _locked(dist):
        if is_complete(dist):
            return dist
        mvn = _tool("mvn", hint="install Maven (apt-get install maven)")
        shutil.rmtree(dist, ignore_errors=True)
        with tempfile.TemporaryDirectory(dir=dist.parent, prefix=".es-fetch-") as tmp:
            run_checked(
                [
                    mvn,
                    "-q",
                    "-B",
                    "dependency:copy",
                    f"-Dartifact={spec.maven_artifact}",
                    f"-DoutputDirectory={tmp}",
                ],
                f"fetching {spec.maven_artifact} with Maven",
                cwd=Path(tmp),
            )
            zips = list(Path(tmp).glob("*.zip"))
            if len(zips) != 1:
                raise ServiceError(f"Maven finished but {tmp} holds {zips} instead of one zip")
            _unzip(zips[0], Path(tmp) / "unpacked")
            (top,) = (Path(tmp) / "unpacked").iterdir()
            top.rename(dist)
        (dist / COMPLETE).touch()
        return dist


def require_elasticsearch(spec: ElasticsearchSpec = CATALOG.elasticsearch) -> Path:
    dist = elasticsearch_dist(spec)
    if not is_complete(dist):
        raise _missing("elasticsearch", dist)
    return dist


# --- MongoDB protocol: mongod or FerretDB --------------------------------------------------------


def mongod_path(spec: MongoSpec = CATALOG.mongodb) -> str | None:
    """A real ``mongod`` on PATH (preferred over FerretDB), or None."""
    return shutil.which(spec.mongod_executable)


def fetch_ferretdb(spec: MongoSpec = CATALOG.mongodb) -> Path:
    """Build FerretDB from the Go module proxy into ``ferretdb-<version>/bin/ferretdb`` (no-op when present).

    ``go install module@version`` is refused by this machine's proxy (it lists no versions) and a
    binary built from the read-only module cache panics without ``build/version/version.txt``;
    so the module is resolved through a small tool module, copied, stamped and built with ``go build``.
    """
    dist = ferretdb_dist(spec)
    with _locked(dist):
        if is_complete(dist):
            return dist
        go = _tool("go", "/usr/local/go/bin/go", hint="install Go >= 1.24 (https://go.dev/dl)")
        env = {**os.environ, "GOTOOLCHAIN": "local", "GOFLAGS": "-mod=mod"}
        version = f"v{spec.ferretdb_version}"
        resolver = dist / "resolve"
        shutil.rmtree(resolver, ignore_errors=True)
        resolver.mkdir(parents=True)
        run_checked([go, "mod", "init", "hiverl.local/ferretdb-build"], "go mod init", cwd=resolver, env=env)
        run_checked(
            [go, "get", "-tool", f"{spec.ferretdb_package}@{version}"],
            "resolving FerretDB",
            cwd=resolver,
            env=env,
        )
        module_dir = run_checked(
            [go, "list", "-m", "-f", "{{.Dir}}", spec.ferretdb_module],
            "locating FerretDB",
            cwd=resolver,
            env=env,
        ).strip()
        source = dist / "FerretDB"
        shutil.rmtree(source, ignore_errors=True)
        shutil.copytree(module_dir, source, symlinks=True)
        for root, _dirs, files in os.walk(source):
            for entry in (root, *(os.path.join(root, f) for f in files)):
                os.chmod(entry, os.stat(entry).st_mode | stat.S_IWUSR)
        (source / "build" / "version" / "version.txt").write_text(f"{version}\n")
        binary = ferretdb_binary(spec)
        binary.parent.mkdir(parents=True, exist_ok=True)
        run_checked(
            [go, "build", "-trimpath", "-o", str(binary), "./cmd/ferretdb"],
            "building FerretDB",
            cwd=source,
            env=env,
        )
        out = run_checked([str(binary), "--version"], "running the FerretDB build")
        if version not in out:
            raise ServiceError(f"built {binary} reports {out!r}, expected {version}")
        (dist / COMPLETE).touch()
        return dist


def require_ferretdb(spec: MongoSpec = CATALOG.mongodb) -> Path:
    dist = ferretdb_dist(spec)
    if not is_complete(dist):
        raise _missing("mongodb", dist)
    return ferretdb_binary(spec)


def fetch(name: str) -> str:
    """Fetch or check one service's distribution; returns a one-line description of what is there."""
    if name == CATALOG.redis.name:
        return f"redis-server {redis_version()} ({shutil.which(CATALOG.redis.executable)})"
    if name == CATALOG.kafka.name:
        return f"Kafka {CATALOG.kafka.version} jars in {fetch_kafka() / 'libs'}"
    if name == CATALOG.elasticsearch.name:
        return f"Elasticsearch {CATALOG.elasticsearch.version} in {fetch_elasticsearch()}"
    if name == CATALOG.mongodb.name:
        if mongod := mongod_path():
            return f"mongod on PATH ({mongod}); FerretDB not needed"
        return f"FerretDB {CATALOG.mongodb.ferretdb_version} at {fetch_ferretdb() / 'bin' / 'ferretdb'}"
    raise ValueError(f"unknown service {name!r}; choose from {', '.join(CATALOG.names)}")
