"""Shared fixtures: isolated namespaces on the real local services, and private servers.

Shared services (started by ``hiverl services up``; addresses from :class:`hiverl.endpoints.Endpoints`,
so ``REDIS_URL`` and friends can point elsewhere):

- ``redis_url`` / ``redis_prefix``: a unique key prefix per test; keys under it are deleted after.
- ``kafka_bootstrap`` / ``make_topic(partitions=1)``: unique topics, created now, deleted after.
- ``es_url`` / ``es_prefix``: a unique index-name prefix; indices and templates under it are deleted after.
- ``mongo_uri`` / ``mongo_db``: a unique database name; the database is dropped after.

An unreachable service FAILS the test (never skips) with a message saying ``hiverl services up``.

The user's data is never touched: for the whole test session (each xdist worker its own),
``_test_scoped_defaults`` points every default name at a test-scoped one through the environment
(inherited by the CLI commands tests run): the archive database and spool
(``HIVERL_ARCHIVE_*``), the telemetry topics, indices, consumer group and spool
(``HIVERL_TELEMETRY_*``) and the memory's Redis key prefix (``CONFIG_MEMORY__KEY_PREFIX``). At
the end what was written under those names is deleted.

Private servers, for restart and outage tests (``.stop()``, ``.start()``, ``.restart()``, ``.url``):
``private_redis`` (persistent, fresh per test), ``private_mongo`` (fresh per test), and
``private_kafka`` / ``private_elasticsearch`` (slow to boot: one per test session and xdist worker,
restarted for the next test if a test stopped it, so use unique names inside them too).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pytest

from hiverl.endpoints import Endpoints, redact
from hiverl.services import (
    ElasticsearchServer,
    KafkaServer,
    LocalServer,
    MongoServer,
    RedisServer,
    ServiceError,
    free_ports,
)

pytest_plugins = ["pytester"]  # tests/hiverl/services checks that these fixtures fail, never skip

Server = TypeVar("Server", bound=LocalServer)

# A background job of a shell script starts with SIGINT ignored, and every process a test starts
# would inherit that (a Stop sent before a child installs its own handler would be lost): the tests
# run with a terminal's Ctrl-C whatever started them.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def _unreachable(service: str, url: str, env_var: str, error: BaseException) -> NoReturn:
    pytest.fail(
        f"{service} is not reachable at {redact(url)} ({type(error).__name__}: {error}). "
        f"Start the local services with `hiverl services up` (or set {env_var} to a running server).",
        pytrace=False,
    )


def _unique(separator: str = "-") -> str:
    return f"test{separator}{uuid.uuid4().hex[:12]}"


#: What the test session uses instead of the user's defaults (see ``_test_scoped_defaults``).
SCOPE = _unique()
TEST_DEFAULTS = {
    "HIVERL_ARCHIVE_DATABASE": SCOPE.replace("-", "_"),
    "HIVERL_TELEMETRY_TOPIC_PREFIX": f"{SCOPE}-",
    "HIVERL_TELEMETRY_INDEX_PREFIX": f"{SCOPE}-",
    "HIVERL_TELEMETRY_INDEXER_GROUP_ID": f"{SCOPE}-indexer",
    "CONFIG_MEMORY__KEY_PREFIX": f"{SCOPE}:",
}


@pytest.fixture(scope="session", autouse=True)
def _test_scoped_defaults() -> Iterator[dict[str, str]]:
    """Tests never write into the user's archive, topics, indices, Redis keys or spools.

    Set before any test runs (so a ``hiverl`` command a test starts inherits them); afterwards the
    archive database, the topics, the indices and templates, and the Redis keys under these names
    are deleted (best effort: a service that is down is not an error here).
    """
    import os

    state = Path(tempfile.mkdtemp(prefix=f"hiverl-{SCOPE}-"))
    scoped = {
        **TEST_DEFAULTS,
        "HIVERL_ARCHIVE_SPOOL_DIR": str(state / "spool" / "archive"),
        "HIVERL_TELEMETRY_SPOOL_DIR": str(state / "spool" / "telemetry"),
    }
    saved = {name: os.environ.get(name) for name in scoped}
    os.environ.update(scoped)
    try:
        yield scoped
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        _delete_test_scoped(Endpoints())
        shutil.rmtree(state, ignore_errors=True)


def _delete_test_scoped(endpoints: Endpoints) -> None:
    """Delete what the session wrote under ``TEST_DEFAULTS`` (each service best effort)."""
    with contextlib.suppress(Exception):
        import redis

        with redis.Redis.from_url(endpoints.redis_url.split(",")[0], socket_timeout=5) as client:
            keys = list(client.scan_iter(match=f"{TEST_DEFAULTS['CONFIG_MEMORY__KEY_PREFIX']}*", count=1000))
            for start in range(0, len(keys), 500):
                client.delete(*keys[start : start + 500])
    with contextlib.suppress(Exception):
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(
            bootstrap_servers=endpoints.kafka_bootstrap_servers,
            request_timeout_ms=5000,
            bootstrap_timeout_ms=3000,
        )
        try:
            prefix = TEST_DEFAULTS["HIVERL_TELEMETRY_TOPIC_PREFIX"]
            topics = [t for t in admin.list_topics() if t.startswith(prefix)]
            if topics:
                admin.delete_topics(topics)
            with contextlib.suppress(Exception):
                admin.delete_consumer_groups([TEST_DEFAULTS["HIVERL_TELEMETRY_INDEXER_GROUP_ID"]])
        finally:
            admin.close()
    with contextlib.suppress(Exception):
        import httpx

        prefix = TEST_DEFAULTS["HIVERL_TELEMETRY_INDEX_PREFIX"]
        with httpx.Client(base_url=endpoints.elasticsearch_url, timeout=10, trust_env=False) as http:
            http.delete(f"/{prefix}*", params={"expand_wildcards": "all", "ignore_unavailable": "true"})
            for kind, key in (
                ("_index_template", "index_templates"),
                ("_component_template", "component_templates"),
            ):
                names = http.get(f"/{kind}/{prefix}*")
                if names.status_code == 200:
                    for template in names.json().get(key, []):
                        http.delete(f"/{kind}/{template['name']}")
    with contextlib.suppress(Exception):
        from pymongo import MongoClient

        mongo: MongoClient[dict[str, Any]] = MongoClient(endpoints.mongodb_uri, serverSelectionTimeoutMS=3000)
        with mongo:
            mongo.drop_database(TEST_DEFAULTS["HIVERL_ARCHIVE_DATABASE"])


@pytest.fixture(scope="session")
def endpoints() -> Endpoints:
    """The service addresses tests use (environment, ``.env``, or the local defaults)."""
    return Endpoints()


# --- Redis ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_url(endpoints: Endpoints) -> str:
    """URL of the shared Redis (checked reachable)."""
    import redis

    url = endpoints.redis_url.split(",")[0]
    try:
        with redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=5) as client:
            client.ping()
    except redis.RedisError as e:
        _unreachable("Redis", url, "REDIS_URL", e)
    return url


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A unique key prefix like ``test-1a2b3c4d5e6f:``; every key starting with it is deleted afterwards."""
    import redis

    prefix = f"{_unique()}:"
    yield prefix
    with redis.Redis.from_url(redis_url, socket_timeout=10) as client:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])


# --- Kafka ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kafka_bootstrap(endpoints: Endpoints) -> str:
    """``host:port[,host:port]`` of the shared Kafka (checked reachable)."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    bootstrap = endpoints.kafka_bootstrap_servers
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap, request_timeout_ms=5000, bootstrap_timeout_ms=5000
        )
        admin.close()
    except KafkaError as e:
        _unreachable("Kafka", bootstrap, "KAFKA_BOOTSTRAP_SERVERS", e)
    return bootstrap


@pytest.fixture
def make_topic(kafka_bootstrap: str) -> Iterator[Callable[..., str]]:
    """``make_topic(partitions=1) -> name``: creates a unique topic now; all are deleted afterwards.

    The broker does not auto-create topics, so produce only to topics made here (or by the code under test).
    """
    from kafka import KafkaAdminClient
    from kafka.admin import NewTopic

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=15000)
    created: list[str] = []

    def make(partitions: int = 1) -> str:
        if partitions < 1:
            raise ValueError(f"partitions must be >= 1, got {partitions!r}")
        name = _unique()
        admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
        created.append(name)
        return name

    yield make
    try:
        if created:
            admin.delete_topics(created)
    finally:
        admin.close()


# --- Elasticsearch -------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def es_url(endpoints: Endpoints) -> str:
    """URL of the shared Elasticsearch (checked reachable)."""
    import httpx

    url = endpoints.elasticsearch_url
    try:
        httpx.get(f"{url}/_cluster/health", timeout=5, trust_env=False).raise_for_status()
    except httpx.HTTPError as e:
        _unreachable("Elasticsearch", url, "ELASTICSEARCH_URL", e)
    return url


@pytest.fixture
def es_prefix(es_url: str) -> Iterator[str]:
    """A unique lower-case index-name prefix like ``test-1a2b3c4d5e6f-``.

    Afterwards every index, index template and component template whose name starts with it is deleted.
    """
    import httpx

    prefix = f"{_unique()}-"
    yield prefix
    with httpx.Client(base_url=es_url, timeout=30, trust_env=False) as http:
        http.delete(f"/{prefix}*", params={"expand_wildcards": "all", "ignore_unavailable": "true"})
        for kind in ("_index_template", "_component_template"):
            names = http.get(f"/{kind}/{prefix}*")
            if names.status_code == 200:
                key = "index_templates" if kind == "_index_template" else "component_templates"
                for template in names.json().get(key, []):
                    http.delete(f"/{kind}/{template['name']}")


# --- MongoDB -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def mongo_uri(endpoints: Endpoints) -> str:
    """URI of the shared MongoDB-protocol server (checked reachable)."""
    from pymongo import MongoClient
    from pymongo.errors import PyMongoError

    uri = endpoints.mongodb_uri
    try:
        client: MongoClient[dict[str, Any]] = MongoClient(uri, serverSelectionTimeoutMS=3000)
        with client:
            client.admin.command("ping")
    except PyMongoError as e:
        _unreachable("MongoDB", uri, "MONGODB_URI", e)
    return uri


@pytest.fixture
def mongo_db(mongo_uri: str) -> Iterator[str]:
    """A unique database name like ``test_1a2b3c4d5e6f``; the database is dropped afterwards."""
    from pymongo import MongoClient

    name = _unique("_")
    yield name
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri, serverSelectionTimeoutMS=5000)
    with client:
        client.drop_database(name)


# --- private servers -----------------------------------------------------------------------------


def _start_private(make: Callable[[Path], Server], home: Path) -> Server:
    """Start a private server; retry with new free ports if another process grabbed one meanwhile."""
    for attempt in range(3):
        server = make(home)
        try:
            return server.start()
        except ServiceError as e:
            if "already in use" not in str(e) or attempt == 2:
                pytest.fail(f"could not start private {server.name}: {e}", pytrace=False)
    raise AssertionError("unreachable")


@contextlib.contextmanager
def _private_home(name: str) -> Iterator[Path]:
    home = Path(tempfile.mkdtemp(prefix=f"hiverl-private-{name}-"))
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A private, started Redis (AOF persistence on, so ``restart()`` keeps the data) on a free port."""
    with _private_home("redis") as home:
        server = _start_private(lambda h: RedisServer(free_ports()[0], h, persistent=True), home)
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def private_mongo() -> Iterator[MongoServer]:
    """A private, started MongoDB-protocol server (FerretDB or mongod) on a free port."""
    with _private_home("mongodb") as home:
        server = _start_private(lambda h: MongoServer(free_ports()[0], h), home)
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="session")
def _private_kafka_session() -> Iterator[KafkaServer]:
    with _private_home("kafka") as home:

        def make(h: Path) -> KafkaServer:
            port, controller_port = free_ports(2)
            return KafkaServer(port, h, controller_port=controller_port, heap="384m")

        server = _start_private(make, home)
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def private_kafka(_private_kafka_session: KafkaServer) -> KafkaServer:
    """A private, started Kafka node (one per session and worker; started again if a test stopped it)."""
    return _private_kafka_session.start()


@pytest.fixture(scope="session")
def _private_elasticsearch_session() -> Iterator[ElasticsearchServer]:
    with _private_home("elasticsearch") as home:

        def make(h: Path) -> ElasticsearchServer:
            port, transport_port = free_ports(2)
            return ElasticsearchServer(port, h, transport_port=transport_port)

        server = _start_private(make, home)
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def private_elasticsearch(_private_elasticsearch_session: ElasticsearchServer) -> ElasticsearchServer:
    """A private, started Elasticsearch (one per session and worker; started again if a test stopped it)."""
    return _private_elasticsearch_session.start()
