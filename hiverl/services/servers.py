"""The four local servers: Redis, Kafka (KRaft), Elasticsearch and a MongoDB wire-protocol server.

Each is a :class:`~hiverl.services.base.LocalServer` on 127.0.0.1 with its own home directory;
versions, ports and settings come from :mod:`hiverl.services.catalog`. The shared services use
the catalog's ports and ``$HIVERL_HOME/services/<name>``; tests start private ones on free ports
in temporary directories (see ``tests/conftest.py``).
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hiverl.services import distributions as dist
from hiverl.services.base import LocalServer, ServiceError, run_checked
from hiverl.services.catalog import (
    CATALOG,
    HOST,
    ElasticsearchSpec,
    KafkaSpec,
    MongoSpec,
    RedisSpec,
    home_dir,
)


def _shared_home(name: str) -> Path:
    return home_dir() / "services" / name


def _connectable(port: int, timeout: float = 0.5) -> None:
    """Raise ``OSError`` unless something accepts TCP connections on ``HOST:port``."""
    with socket.create_connection((HOST, port), timeout=timeout):
        pass


class RedisServer(LocalServer):
    """Debian's ``redis-server`` loading ``replay_memory/redis.conf``.

    Args:
        persistent: keep data across restarts (append-only file + the config's RDB save lines);
            False turns both off (a throwaway test server).
        config_file: Redis config loaded first; None for Redis's defaults.
    """

    name = CATALOG.redis.name
    default_startup_timeout = 30.0

    def __init__(
        self,
        port: int = CATALOG.redis.port,
        home: Path | str | None = None,
        *,
        persistent: bool = CATALOG.redis.persistent,
        config_file: Path | None = CATALOG.redis.config_file,
        spec: RedisSpec = CATALOG.redis,
        **kwargs: Any,
    ) -> None:
        super().__init__(port, home or _shared_home(spec.name), **kwargs)
        self.spec = spec
        self.persistent = persistent
        self.config_file = config_file

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def ensure_fetched(self) -> None:
        dist.redis_version(self.spec)

    def command(self) -> list[str]:
        exe = shutil.which(self.spec.executable) or self.spec.executable
        config = [str(self.config_file)] if self.config_file is not None else []
        persistence = ["--appendonly", "yes"] if self.persistent else ["--appendonly", "no", "--save", ""]
        return [
            exe, *config,
            "--port", str(self.port), "--bind", HOST, "--protected-mode", "yes",
            "--dir", str(self.data_dir), "--daemonize", "no", "--logfile", "",
            *persistence,
        ]  # fmt: skip

    def probe(self) -> str:
        import redis

        client = redis.Redis(host=HOST, port=self.port, socket_timeout=2, socket_connect_timeout=1)
        try:
            return str(client.info("server")["redis_version"])
        finally:
            client.close()


class KafkaServer(LocalServer):
    """One Kafka node in KRaft mode (broker and controller), storage formatted on first start.

    Args:
        controller_port: port of the KRaft controller listener.
        heap: JVM heap (``-Xms``/``-Xmx``), e.g. ``"512m"``.
    """

    name = CATALOG.kafka.name
    default_startup_timeout = 90.0

    def __init__(
        self,
        port: int = CATALOG.kafka.port,
        home: Path | str | None = None,
        *,
        controller_port: int = CATALOG.kafka.controller_port,
        heap: str = CATALOG.kafka.heap,
        spec: KafkaSpec = CATALOG.kafka,
        **kwargs: Any,
    ) -> None:
        super().__init__(port, home or _shared_home(spec.name), **kwargs)
        if controller_port == port:
            raise ValueError(f"controller_port must differ from port, both are {port}")
        self.spec = spec
        self.controller_port = controller_port
        self.heap = heap

    @property
    def url(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.port, self.controller_port)

    def ensure_fetched(self) -> None:
        dist.require_kafka(self.spec)

    def _java(self) -> str:
        home = dist.find_java_home(self.spec.min_java, (self.spec.java_home,) if self.spec.java_home else ())
        return str(home / "bin" / "java")

    def _jvm(self) -> list[str]:
        libs = dist.require_kafka(self.spec) / "libs"
        return [
            self._java(), f"-Xms{self.heap}", f"-Xmx{self.heap}", "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.config_dir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.logs_dir}", "-cp", f"{libs}/*",
        ]  # fmt: skip

    def prepare(self) -> None:
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{HOST}:{self.controller_port}",
            "listeners": f"PLAINTEXT://{HOST}:{self.port},CONTROLLER://{HOST}:{self.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{self.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(self.data_dir),
            **dict(self.spec.broker_settings),
        }
        (self.config_dir / "server.properties").write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        (self.config_dir / "log4j2.properties").write_text(
            "status = warn\n"
            "appender.out.type = Console\n"
            "appender.out.name = STDOUT\n"
            "appender.out.layout.type = PatternLayout\n"
            "appender.out.layout.pattern = [%d] %p %m (%c)%n\n"
            "rootLogger.level = info\n"
            "rootLogger.appenderRef.out.ref = STDOUT\n"
            "logger.state.name = state.change.logger\n"
            "logger.state.level = warn\n"
            "logger.request.name = kafka.request.logger\n"
            "logger.request.level = warn\n"
        )
        if not (self.data_dir / "meta.properties").exists():
            # A random id may begin with "-": passed as --cluster-id=ID it is never read as a flag.
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
            run_checked(
                [*self._jvm(), self.spec.storage_tool_class, "format", "--ignore-formatted",
                 f"--cluster-id={cluster_id}", "-c", str(self.config_dir / "server.properties")],
                "formatting Kafka's KRaft storage",
            )  # fmt: skip

    def command(self) -> list[str]:
        return [*self._jvm(), self.spec.main_class, str(self.config_dir / "server.properties")]

    def probe(self) -> str:
        _connectable(self.port)  # fail fast (and quietly) before kafka-python tries
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(
            bootstrap_servers=self.url, request_timeout_ms=3000, bootstrap_timeout_ms=3000
        )
        try:
            cluster = admin.describe_cluster()
            if not cluster.get("brokers") or cluster.get("controller_id") in (None, -1):
                raise ServiceError(f"kafka on port {self.port} has no registered broker/controller yet")
        finally:
            admin.close()
        return self.spec.version


class ElasticsearchServer(LocalServer):
    """Elasticsearch from the integ-test-zip: single node, security off, small heap.

    Elasticsearch refuses to run as root; as root the server runs in a user namespace
    (``unshare --user``) as an ordinary uid, which still maps to root outside, so it can read the
    cache and write its home directory.

    Args:
        transport_port: node-to-node transport port.
        heap: JVM heap (``-Xms``/``-Xmx``), e.g. ``"512m"``.
    """

    name = CATALOG.elasticsearch.name
    default_startup_timeout = 180.0
    default_stop_timeout = 30.0

    def __init__(
        self,
        port: int = CATALOG.elasticsearch.port,
        home: Path | str | None = None,
        *,
        transport_port: int = CATALOG.elasticsearch.transport_port,
        heap: str = CATALOG.elasticsearch.heap,
        spec: ElasticsearchSpec = CATALOG.elasticsearch,
        **kwargs: Any,
    ) -> None:
        super().__init__(port, home or _shared_home(spec.name), **kwargs)
        if transport_port == port:
            raise ValueError(f"transport_port must differ from port, both are {port}")
        self.spec = spec
        self.transport_port = transport_port
        self.heap = heap

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def ports(self) -> tuple[int, ...]:
        return (self.port, self.transport_port)

    def ensure_fetched(self) -> None:
        dist.require_elasticsearch(self.spec)
        dist.find_java_home(self.spec.min_java, self.spec.java_home_candidates, "ES_JAVA_HOME")

    def prepare(self) -> None:
        if not (self.config_dir / "jvm.options").exists():
            shutil.copytree(
                dist.require_elasticsearch(self.spec) / "config", self.config_dir, dirs_exist_ok=True
            )
        (self.home / "tmp").mkdir(exist_ok=True)
        settings = {
            "cluster.name": f"hiverl-{self.port}",
            "node.name": self.name,
            "path.data": str(self.data_dir),
            "path.logs": str(self.logs_dir),
            "network.host": HOST,
            "http.port": str(self.port),
            "transport.port": str(self.transport_port),
            **dict(self.spec.settings),
        }
        (self.config_dir / "elasticsearch.yml").write_text(
            "".join(f'{k}: "{v}"\n' for k, v in settings.items())
        )

    def environment(self) -> Mapping[str, str]:
        java_home = dist.find_java_home(self.spec.min_java, self.spec.java_home_candidates, "ES_JAVA_HOME")
        return {
            **os.environ,
            "ES_JAVA_HOME": str(java_home),
            "ES_PATH_CONF": str(self.config_dir),
            "ES_JAVA_OPTS": f"-Xms{self.heap} -Xmx{self.heap}",
            "ES_TMPDIR": str(self.home / "tmp"),
        }

    def command(self) -> list[str]:
        launcher = [str(dist.require_elasticsearch(self.spec) / "bin" / "elasticsearch")]
        if os.geteuid() != 0:
            return launcher
        unshare = shutil.which("unshare")
        if unshare is None:
            raise ServiceError("Elasticsearch cannot run as root and `unshare` (util-linux) is missing")
        uid = self.spec.unprivileged_uid
        return [unshare, "--user", f"--map-user={uid}", f"--map-group={uid}", "--", *launcher]

    def probe(self) -> str:
        import httpx

        with httpx.Client(base_url=self.url, timeout=3, trust_env=False) as http:  # no proxy for loopback
            health = http.get("/_cluster/health", params={"wait_for_status": "yellow", "timeout": "1s"})
            health.raise_for_status()
            if health.json().get("timed_out"):
                raise ServiceError(f"elasticsearch on port {self.port} is not yellow yet: {health.json()}")
            # ``GET /`` lives in the rest-root module, which the integ-test-zip lacks: ask the node.
            nodes = http.get("/_nodes/_local", params={"filter_path": "nodes.*.version"})
        nodes.raise_for_status()
        (node,) = nodes.json()["nodes"].values()
        return str(node["version"])


class MongoServer(LocalServer):
    """A MongoDB wire-protocol server: ``mongod`` when on PATH, otherwise FerretDB on SQLite.

    Args:
        backend: ``"mongod"``, ``"ferretdb"`` or None to prefer ``mongod`` when installed.
    """

    name = CATALOG.mongodb.name
    default_startup_timeout = 60.0

    def __init__(
        self,
        port: int = CATALOG.mongodb.port,
        home: Path | str | None = None,
        *,
        backend: str | None = None,
        spec: MongoSpec = CATALOG.mongodb,
        **kwargs: Any,
    ) -> None:
        super().__init__(port, home or _shared_home(spec.name), **kwargs)
        self.spec = spec
        if backend is None:
            backend = "mongod" if dist.mongod_path(spec) else "ferretdb"
        if backend not in ("mongod", "ferretdb"):
            raise ValueError(f"backend must be 'mongod' or 'ferretdb', got {backend!r}")
        self.backend = backend

    @property
    def url(self) -> str:
        return f"mongodb://{HOST}:{self.port}/"

    def ensure_fetched(self) -> None:
        if self.backend == "ferretdb":
            dist.require_ferretdb(self.spec)
        elif dist.mongod_path(self.spec) is None:
            raise ServiceError("backend 'mongod' was chosen but no `mongod` is on PATH")

    def command(self) -> list[str]:
        if self.backend == "mongod":
            mongod = dist.mongod_path(self.spec) or self.spec.mongod_executable
            return [mongod, "--port", str(self.port), "--bind_ip", HOST, "--dbpath", str(self.data_dir),
                    *self.spec.mongod_args]  # fmt: skip
        return [
            str(dist.require_ferretdb(self.spec)), *self.spec.ferretdb_args,
            f"--listen-addr={HOST}:{self.port}", f"--sqlite-url=file:{self.data_dir}/",
            f"--state-dir={self.data_dir}",
        ]  # fmt: skip

    def probe(self) -> str:
        from pymongo import MongoClient

        client: MongoClient[dict[str, Any]] = MongoClient(
            self.url, serverSelectionTimeoutMS=1000, connectTimeoutMS=1000, directConnection=True
        )
        try:
            info = client.admin.command("buildInfo")
        finally:
            client.close()
        if "ferretdbVersion" in info:
            return f"FerretDB {info['ferretdbVersion'].lstrip('v')} (MongoDB {info['version']} API)"
        return f"mongod {info['version']}"


SERVER_TYPES: dict[str, type[LocalServer]] = {
    CATALOG.redis.name: RedisServer,
    CATALOG.kafka.name: KafkaServer,
    CATALOG.elasticsearch.name: ElasticsearchServer,
    CATALOG.mongodb.name: MongoServer,
}


def shared_server(name: str) -> LocalServer:
    """The project's shared server ``name`` on its catalog port, homed in ``$HIVERL_HOME/services/<name>``."""
    try:
        server_type = SERVER_TYPES[name]
    except KeyError:
        raise ValueError(f"unknown service {name!r}; choose from {', '.join(SERVER_TYPES)}") from None
    return server_type()  # type: ignore[call-arg]
