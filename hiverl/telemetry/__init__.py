"""Telemetry: the Kafka producer sink, topic admin, the event schema, index templates and the indexer.

* :class:`KafkaSink` — the :class:`hiverl.events.EventSink` producing to Kafka (the monitor uses it);
* :class:`ProcessSink` — the same in a child process: what training workers use (≤ 2 % overhead);
* :mod:`hiverl.telemetry.schema` — the versioned event schema (one table of fields);
* :class:`Indexer` — ``hiverl index``: Kafka → Elasticsearch, exactly once per record.

See ``docs/telemetry.md``. Submodules import kafka-python and the Elasticsearch client lazily.
"""

from hiverl.telemetry.config import TelemetryConfig
from hiverl.telemetry.indexer import Indexer, IndexerStats
from hiverl.telemetry.kafka_sink import KafkaSink, SinkStats
from hiverl.telemetry.process_sink import ProcessSink
from hiverl.telemetry.spool import Spool

__all__ = ["Indexer", "IndexerStats", "KafkaSink", "ProcessSink", "SinkStats", "Spool", "TelemetryConfig"]
