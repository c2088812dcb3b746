"""Settings of the web dashboard, read from the environment (``HIVERL_DASHBOARD_*``) or ``.env``.

Where the dashboard keeps its own state: ``$HIVERL_HOME/dashboard/`` (users file). Service
addresses come from :class:`hiverl.endpoints.Endpoints`, never from here.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def hiverl_home() -> Path:
    """``$HIVERL_HOME`` or ``~/.hiverl``: per-user state of hiverl (not the repository)."""
    return Path(os.environ.get("HIVERL_HOME") or Path.home() / ".hiverl").expanduser()


class DashboardSettings(BaseSettings):
    """Everything the dashboard server needs besides service addresses."""

    model_config = SettingsConfigDict(env_prefix="HIVERL_DASHBOARD_", env_file=".env", extra="ignore")

    home: Path = Field(default_factory=lambda: hiverl_home() / "dashboard", description="State folder.")
    runs_dir: Path | None = Field(
        default=None,
        description="Extra folder of <session>/ folders searched for videos (besides run_dir and model_dir).",
    )
    es_index_prefix: str | None = Field(
        default=None, description="Prefix of the telemetry aliases (None: the telemetry's own setting)."
    )
    mongo_db: str | None = Field(default=None, description="Archive database (None: the archive's default).")
    session_idle_s: float = Field(default=12 * 3600, gt=0, description="Sign-out after this much idle time.")
    secure_cookies: bool = Field(default=False, description="Mark cookies Secure (serve over HTTPS).")
    service_timeout_s: float = Field(default=1.0, gt=0, description="Timeout of each service request.")
    outage_backoff_s: float = Field(
        default=5.0, ge=0, description="After a failed request, skip the service for this long."
    )

    @property
    def users_file(self) -> Path:
        """JSON file of dashboard accounts (mode 0600)."""
        return self.home / "users.json"
