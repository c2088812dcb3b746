"""Settings and errors of the archive (no server library imported: the CLI loads fast)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ArchiveError(RuntimeError):
    """The archive could not be used (unreachable, misconfigured)."""


class ArchiveUnreachableError(ArchiveError):
    """The server did not answer in time (down, wrong address, network)."""


class ArchiveAuthError(ArchiveError):
    """The server rejected the credentials of the archive URI."""


class ArchiveSettings(BaseSettings):
    """Where and how the archive is kept; ``HIVERL_ARCHIVE_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="HIVERL_ARCHIVE_", env_file=".env", extra="ignore")

    database: str = Field(
        default="hiverl", min_length=1, description="Database holding the sessions collection."
    )
    collection: str = Field(default="sessions", min_length=1, description="Collection name.")
    heartbeat_timeout_s: float = Field(
        default=300.0,
        gt=0,
        description="A running session silent for longer is marked crashed by readers/sweep.",
    )
    timeout_s: float = Field(default=2.0, gt=0, description="Server selection and connect timeout (seconds).")
    retry_after_s: float = Field(
        default=30.0, ge=0, description="After a failed write, spool without trying for this long."
    )
    spool_dir: Path | None = Field(
        default=None, description="Default: $HIVERL_HOME/spool/archive (var/spool/archive)."
    )
    spool_max_sessions: int = Field(default=1000, ge=1, description="Most sessions the spool holds.")
