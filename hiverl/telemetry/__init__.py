"""Telemetry: the Kafka producer sink, topic admin, the event schema, index templates and the indexer.

* :class:`KafkaSink` — the :class:`hiverl.events.EventSink` producing to Kafka: one per process
  (each role of a hive, the monitor), with a bounded disk spool for outages;
* :mod:`hiverl.telemetry.schema` — the versioned event schema (one table of fields);
* :class:`Indexer` — ``hiverl index``: Kafka → Elasticsearch, exactly once per record.

See ``docs/telemetry.md``. Submodules import kafka-python and the Elasticsearch client lazily.
"""

from hiverl.telemetry.config import TelemetryConfig
from hiverl.telemetry.indexer import Indexer, IndexerStats
from hiverl.telemetry.kafka_sink import KafkaSink, SinkStats
from hiverl.telemetry.spool import Spool

__all__ = ["Indexer", "IndexerStats", "KafkaSink", "SinkStats", "Spool", "TelemetryConfig"]
