"""Telemetry settings: one typed model, overridable from the environment (``HIVERL_TELEMETRY_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from hiverl.telemetry.schema import DEFAULT_INDEX_PREFIX, FAMILIES

#: Compression codecs kafka-python can use here (lz4 needs a package we do not ship).
COMPRESSIONS = ("zstd", "gzip", "none")


def hiverl_home() -> Path:
    """``$HIVERL_HOME`` (default ``<repo>/var``): where the project keeps local state (spools, logs)."""
    from hiverl.services.catalog import home_dir

    return home_dir()


class TelemetryConfig(BaseSettings):
    """Producer, topic and indexer settings (env: ``HIVERL_TELEMETRY_<FIELD>``)."""

    model_config = SettingsConfigDict(env_prefix="HIVERL_TELEMETRY_", extra="ignore", frozen=True)

    # -- topics (created at start-up when missing) -----------------------------------------------
    topic_prefix: str = Field(
        default="", description="prepended to the topic names training_log and memory_monitoring"
    )
    topic_partitions: int = Field(default=3, ge=1, description="partitions of each topic when created")
    topic_replication_factor: int = Field(default=1, ge=1, description="replication factor when created")
    topic_retention_ms: int = Field(default=7 * 24 * 3600 * 1000, ge=60_000, description="retention.ms (ms)")

    # -- producer ---------------------------------------------------------------------------------
    linger_ms: int = Field(
        default=1000,
        ge=0,
        le=10_000,
        description="how often the producer's thread sends what queued up (ms); each round costs ~1 ms of "
        "CPU, so longer rounds cost the process less, shorter ones reach Kafka sooner",
    )
    events_per_record: int = Field(
        default=100, ge=1, le=1000, description="events of one key packed into one Kafka record, at most"
    )
    batch_size_bytes: int = Field(default=256 * 1024, ge=1024, description="max bytes of one partition batch")
    compression: str = Field(default="zstd", description="zstd, gzip or none")
    queue_max_events: int = Field(default=100_000, ge=10, description="in-memory queue bound (events)")
    delivery_timeout_ms: int = Field(default=8_000, ge=1_000, description="give up on a send after this (ms)")
    spool_dir: Path | None = Field(default=None, description="spool; default $HIVERL_HOME/spool/telemetry")
    spool_max_bytes: int = Field(default=256 * 1024 * 1024, ge=4096, description="spool bound (bytes)")
    spool_segment_bytes: int = Field(default=4 * 1024 * 1024, ge=1024, description="segment size (bytes)")
    reconnect_backoff_max_s: float = Field(default=10.0, gt=0, description="max wait between probes (s)")

    # -- indexing -----------------------------------------------------------------------------------
    index_prefix: str = Field(default=DEFAULT_INDEX_PREFIX, description="index/alias/template prefix")
    indexer_group_id: str = Field(default="hiverl-indexer", min_length=1, description="Kafka consumer group")
    bulk_max_records: int = Field(
        default=2000, ge=1, le=100_000, description="records polled per round, documents per bulk request"
    )
    stats_interval_s: float = Field(default=30.0, gt=0, description="period of status lines and stats (s)")

    @model_validator(mode="after")
    def _segments_fit_the_spool(self) -> TelemetryConfig:
        if self.spool_segment_bytes * 2 > self.spool_max_bytes:
            raise ValueError(
                f"spool_segment_bytes={self.spool_segment_bytes} must be at most spool_max_bytes/2 = "
                f"{self.spool_max_bytes // 2}"
            )
        return self

    @field_validator("compression")
    @classmethod
    def _known_compression(cls, value: str) -> str:
        if value not in COMPRESSIONS:
            raise ValueError(f"compression={value!r}; allowed: {COMPRESSIONS}")
        return value

    @field_validator("index_prefix")
    @classmethod
    def _lowercase_prefix(cls, value: str) -> str:
        if value != value.lower() or any(c in value for c in ' "*\\<|,>/?#:'):
            raise ValueError(
                f'index_prefix={value!r} must be lowercase without spaces or " * \\ < | , > / ? # :'
            )
        return value

    @field_validator("topic_prefix")
    @classmethod
    def _valid_topic_prefix(cls, value: str) -> str:
        if value and not all(c.isascii() and (c.isalnum() or c in "._-") for c in value):
            raise ValueError(f"topic_prefix={value!r} may only hold ASCII letters, digits, '.', '_' and '-'")
        return value

    def kafka_topic(self, name: str) -> str:
        """The Kafka topic of ``name``: a telemetry family gets ``topic_prefix``; other names stay."""
        return f"{self.topic_prefix}{name}" if name in FAMILIES else name

    def resolved_spool_dir(self) -> Path:
        """The spool directory (``spool_dir`` or ``$HIVERL_HOME/spool/telemetry``)."""
        return self.spool_dir or hiverl_home() / "spool" / "telemetry"

    def kafka_compression(self) -> str | None:
        """The ``compression_type`` for kafka-python (``zstd`` falls back to ``gzip`` without zstandard)."""
        if self.compression == "none":
            return None
        if self.compression == "zstd":
            from kafka.codec import has_zstd

            return "zstd" if has_zstd() else "gzip"
        return self.compression
