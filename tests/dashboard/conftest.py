"""Fixtures of the dashboard tests (helpers live in ``dashboard_helpers``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from dashboard_helpers import ADMIN, VIEWER, fake_launcher, make_endpoints, make_settings
from fastapi.testclient import TestClient

from dashboard.app import create_app
from dashboard.security import LoginRateLimiter
from dashboard.users import UserStore


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id at its smallest cost: the production cost (~0.5 s a hash here) would dominate the
    suite; the production parameters are checked by a test of their own."""
    from argon2 import PasswordHasher

    import dashboard.users

    monkeypatch.setattr(
        dashboard.users, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    )


@pytest.fixture
def dashboard_home(tmp_path: Path) -> Path:
    """State folder with an admin and a viewer account."""
    home = tmp_path / "dashboard-home"
    store = UserStore(home / "users.json")
    store.add(ADMIN[0], "admin", ADMIN[1])
    store.add(VIEWER[0], "viewer", VIEWER[1])
    return home


@pytest.fixture
def make_client(dashboard_home: Path, tmp_path: Path) -> Iterator[Any]:
    """``make_client(es_url, es_prefix, mongo_uri, mongo_db, **create_app_kwargs) -> TestClient``;
    ``redis_url`` and ``settings`` (overrides of the dashboard's settings) are optional."""
    clients: list[TestClient] = []

    def make(
        es_url: str,
        es_prefix: str,
        mongo_uri: str,
        mongo_db: str,
        outage_backoff_s: float = 5.0,
        redis_url: str = "redis://127.0.0.1:9/0",
        settings: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> TestClient:
        kwargs.setdefault("launcher", fake_launcher(tmp_path))
        kwargs.setdefault("limiter", LoginRateLimiter())
        base = make_settings(dashboard_home, es_prefix, mongo_db, outage_backoff_s)
        app = create_app(
            base.model_copy(update=settings or {}),
            make_endpoints(es_url, mongo_uri, redis_url=redis_url),
            **kwargs,
        )
        client = TestClient(app, base_url="http://127.0.0.1", follow_redirects=False)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def make_app(make_client: Any, es_url: str, es_prefix: str, mongo_uri: str, mongo_db: str) -> Any:
    """``make_app(redis_url=..., limiter=..., **settings) -> TestClient`` on the real services."""

    def make(redis_url: str = "redis://127.0.0.1:9/0", limiter: Any = None, **settings: Any) -> TestClient:
        return make_client(
            es_url,
            es_prefix,
            mongo_uri,
            mongo_db,
            redis_url=redis_url,
            settings=settings,
            limiter=limiter or LoginRateLimiter(),
        )

    return make
