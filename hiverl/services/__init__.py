"""Local Redis, Kafka, Elasticsearch and MongoDB-protocol servers, run by the project itself.

``hiverl services up|down|status|logs|fetch`` drives the shared ones; tests start private ones::

    from hiverl.services import RedisServer
    with RedisServer(port=free_ports()[0], home=tmp_path, persistent=False) as redis_server:
        client = redis.Redis.from_url(redis_server.url)

Versions, ports and settings: :mod:`hiverl.services.catalog`.
"""

from hiverl.services.base import LocalServer, ServerStatus, ServiceError, free_ports
from hiverl.services.catalog import CATALOG, cache_dir, home_dir
from hiverl.services.servers import (
    ElasticsearchServer,
    KafkaServer,
    MongoServer,
    RedisServer,
    shared_server,
)

__all__ = [
    "CATALOG",
    "ElasticsearchServer",
    "KafkaServer",
    "LocalServer",
    "MongoServer",
    "RedisServer",
    "ServerStatus",
    "ServiceError",
    "cache_dir",
    "free_ports",
    "home_dir",
    "shared_server",
]
