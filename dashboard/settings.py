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
    """Everything the dashboard server needs besides service addresses.

    Behind a reverse proxy, every request comes from the proxy's address: set
    ``trusted_proxy_hops`` to the number of proxies in front of the dashboard (usually 1) so that
    the sign-in rate limit keys on the client address the proxy appends to ``X-Forwarded-For``
    (the ``trusted_proxy_hops``-th entry from the right; entries further left are written by the
    client and never trusted). Leave it 0 when clients connect directly: ``X-Forwarded-For`` is
    then ignored, since any client could send one.

    The launch limits (``max_*``) bound what the start form may ask for, on top of the settings'
    own validation: each refusal names its limit.
    """

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
    session_idle_s: float = Field(
        default=12 * 3600,
        gt=0,
        description="Sign-out after this much idle time (the pages' background polls are not activity).",
    )
    session_max_age_s: float = Field(
        default=24 * 3600, gt=0, description="Sign-out this long after signing in, however active."
    )
    trusted_proxy_hops: int = Field(
        default=0,
        ge=0,
        le=10,
        description="Reverse proxies in front of the dashboard whose X-Forwarded-For entry is trusted"
        " as the client address (0: ignore X-Forwarded-For, use the TCP peer).",
    )
    login_free_failures: int = Field(
        default=5, ge=1, description="Failed sign-ins per (user, address) before lockouts start."
    )
    login_address_failures: int = Field(
        default=20, ge=1, description="Failed sign-ins per address, over all user names, before lockouts."
    )
    login_user_failures: int = Field(
        default=20, ge=1, description="Failed sign-ins per user name, over all addresses, before lockouts."
    )
    max_total_steps: int = Field(
        default=100_000_000, ge=1, description="Largest total_steps a session started here may have."
    )
    max_actors: int = Field(default=16, ge=0, description="Most actors a session started here may have.")
    max_envs_per_actor: int = Field(
        default=64, ge=1, description="Most actor.envs a session started here may have."
    )
    max_concurrent_runs: int = Field(
        default=2, ge=1, description="Most sessions started here that may run at the same time."
    )
    secure_cookies: bool = Field(default=False, description="Mark cookies Secure (serve over HTTPS).")
    service_timeout_s: float = Field(default=1.0, gt=0, description="Timeout of each service request.")
    outage_backoff_s: float = Field(
        default=5.0, ge=0, description="After a failed request, skip the service for this long."
    )

    @property
    def users_file(self) -> Path:
        """JSON file of dashboard accounts (mode 0600)."""
        return self.home / "users.json"
