"""The one source of truth for the local services: versions, ports, heap sizes, start settings.

Everything here is plain data (frozen dataclasses of strings and numbers) so that other tools
(a later ``compose.yaml`` generator, the docs, the CLI's tables) read the same values the
Python runners in :mod:`hiverl.services` use. Change a version or a port here and nowhere else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from hiverl.endpoints import (
    ELASTICSEARCH_PORT,
    KAFKA_CONTROLLER_PORT,
    KAFKA_PORT,
    MONGODB_PORT,
    REDIS_PORT,
)

HOST = "127.0.0.1"
"""Every local service binds to loopback only."""

REPO_ROOT = Path(__file__).resolve().parents[2]


def cache_dir() -> Path:
    """Downloads and builds (jars, zip, Go build): ``$HIVERL_CACHE``, default ``~/.cache/hiverl``."""
    return Path(os.environ.get("HIVERL_CACHE") or Path.home() / ".cache" / "hiverl").expanduser()


def home_dir() -> Path:
    """Runtime data and logs of the shared services: ``$HIVERL_HOME``, default ``<repo>/var``."""
    return Path(os.environ.get("HIVERL_HOME") or REPO_ROOT / "var").expanduser()


@dataclass(frozen=True)
class RedisSpec:
    """Debian's ``redis-server`` (installed by ``scripts/setup.sh`` through apt)."""

    name: str = "redis"
    min_version: str = "7.0"
    port: int = REDIS_PORT
    executable: str = "redis-server"
    config_file: Path = REPO_ROOT / "replay_memory" / "redis.conf"
    """Loaded first; port, bind, dir and persistence are then overridden on the command line."""
    persistent: bool = True
    """The shared service keeps its data across restarts (AOF + the config's RDB save lines)."""


@dataclass(frozen=True)
class KafkaSpec:
    """Apache Kafka, one KRaft node (broker + controller), from the jars on Maven Central."""

    name: str = "kafka"
    version: str = "4.1.1"
    scala: str = "2.13"
    log4j_version: str = "2.24.3"
    """log4j-core ships with kafka_2.13; the slf4j binding does not, so it is added at this version."""
    port: int = KAFKA_PORT
    controller_port: int = KAFKA_CONTROLLER_PORT
    heap: str = "512m"
    java_home: str = ""
    """Empty: the ``java`` on PATH (Kafka 4 brokers need Java >= 17)."""
    min_java: int = 17
    main_class: str = "kafka.Kafka"
    storage_tool_class: str = "kafka.tools.StorageTool"
    broker_settings: tuple[tuple[str, str], ...] = (
        ("num.partitions", "1"),
        ("default.replication.factor", "1"),
        ("offsets.topic.replication.factor", "1"),
        ("offsets.topic.num.partitions", "4"),
        ("transaction.state.log.replication.factor", "1"),
        ("transaction.state.log.min.isr", "1"),
        ("transaction.state.log.num.partitions", "4"),
        ("share.coordinator.state.topic.replication.factor", "1"),
        ("share.coordinator.state.topic.min.isr", "1"),
        ("group.initial.rebalance.delay.ms", "0"),
        ("auto.create.topics.enable", "false"),
        ("delete.topic.enable", "true"),
        ("log.retention.hours", "168"),
        ("log.segment.bytes", "67108864"),
    )

    @property
    def maven_artifact(self) -> str:
        """``groupId:artifactId:version`` of the broker jar."""
        return f"org.apache.kafka:kafka_{self.scala}:{self.version}"


@dataclass(frozen=True)
class ElasticsearchSpec:
    """Elasticsearch's ``integ-test-zip`` distribution from Maven Central (no bundled JDK)."""

    name: str = "elasticsearch"
    version: str = "9.2.0"
    maven_artifact: str = "org.elasticsearch.distribution.integ-test-zip:elasticsearch:9.2.0:zip"
    port: int = ELASTICSEARCH_PORT
    transport_port: int = ELASTICSEARCH_PORT + 100
    heap: str = "512m"
    min_java: int = 21
    java_home_candidates: tuple[str, ...] = (
        "/usr/lib/jvm/temurin-25-jdk-amd64",
        "/usr/lib/jvm/temurin-21-jdk-amd64",
        "/usr/lib/jvm/java-25-openjdk-amd64",
        "/usr/lib/jvm/java-21-openjdk-amd64",
    )
    """Tried in order after ``$ES_JAVA_HOME``; the first JDK >= ``min_java`` wins."""
    unprivileged_uid: int = 1000
    """Elasticsearch refuses to run as root: as root it runs in a user namespace as this uid."""
    settings: tuple[tuple[str, str], ...] = (
        ("discovery.type", "single-node"),
        ("xpack.security.enabled", "false"),
        ("action.destructive_requires_name", "false"),
        # Free space in bytes, not a share: on a large disk 2 % free is still gigabytes, and a
        # percentage would stop a dev node from allocating shards there.
        ("cluster.routing.allocation.disk.watermark.low", "2gb"),
        ("cluster.routing.allocation.disk.watermark.high", "1gb"),
        ("cluster.routing.allocation.disk.watermark.flood_stage", "512mb"),
    )


@dataclass(frozen=True)
class MongoSpec:
    """A MongoDB wire-protocol server: ``mongod`` when on PATH, else FerretDB v1 on SQLite."""

    name: str = "mongodb"
    port: int = MONGODB_PORT
    mongod_executable: str = "mongod"
    ferretdb_version: str = "1.24.2"
    ferretdb_module: str = "github.com/FerretDB/FerretDB"
    ferretdb_package: str = "github.com/FerretDB/FerretDB/cmd/ferretdb"
    ferretdb_args: tuple[str, ...] = ("--handler=sqlite", "--telemetry=disable", "--debug-addr=-")
    mongod_args: tuple[str, ...] = ("--nounixsocket", "--quiet")


@dataclass(frozen=True)
class Catalog:
    """All four services, in start order."""

    redis: RedisSpec = field(default_factory=RedisSpec)
    kafka: KafkaSpec = field(default_factory=KafkaSpec)
    elasticsearch: ElasticsearchSpec = field(default_factory=ElasticsearchSpec)
    mongodb: MongoSpec = field(default_factory=MongoSpec)

    @property
    def names(self) -> tuple[str, ...]:
        """Service names as the CLI accepts them."""
        return (self.redis.name, self.kafka.name, self.elasticsearch.name, self.mongodb.name)


CATALOG = Catalog()
