"""Accounts, the sign-in rate limit and server-side sessions (no services needed)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dashboard.security import LoginRateLimiter, SessionTable
from dashboard.users import UserError, UserStore
from hiverl.cli import app as hiverl_app


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_store_keeps_only_salted_argon2id_hashes(tmp_path: Path) -> None:
    store = UserStore(tmp_path / "users.json")
    store.add("ada", "admin", "correct horse 1")
    store.add("bob", "viewer", "correct horse 1")
    text = (tmp_path / "users.json").read_text()
    assert "correct horse" not in text
    hashes = [u["password_hash"] for u in json.loads(text)["users"].values()]
    assert all(h.startswith("$argon2id$") for h in hashes)
    assert hashes[0] != hashes[1]  # same password, different salts
    assert stat.S_IMODE((tmp_path / "users.json").stat().st_mode) == 0o600
    assert store.authenticate("ada", "correct horse 1") is not None
    assert store.authenticate("ada", "wrong horse 1") is None
    assert store.authenticate("nobody", "correct horse 1") is None
    assert [u.name for u in store.list()] == ["ada", "bob"]


def test_production_hashing_is_argon2id_with_a_modern_cost() -> None:
    from argon2 import Type

    from dashboard.users import DEFAULT_HASHER

    assert DEFAULT_HASHER.type is Type.ID
    assert DEFAULT_HASHER.memory_cost >= 64 * 1024 and DEFAULT_HASHER.time_cost >= 2
    assert DEFAULT_HASHER.salt_len >= 16
    assert DEFAULT_HASHER.hash("some password").startswith("$argon2id$v=19$m=65536,t=3,p=4$")


def test_store_refuses_bad_input_naming_the_field(tmp_path: Path) -> None:
    store = UserStore(tmp_path / "users.json")
    with pytest.raises(UserError, match="role='root'"):
        store.add("ada", "root", "long enough 1")
    with pytest.raises(UserError, match="name='a b'"):
        store.add("a b", "viewer", "long enough 1")
    with pytest.raises(UserError, match="password is too short"):
        store.add("ada", "viewer", "short")
    store.add("ada", "viewer", "long enough 1")
    with pytest.raises(UserError, match="already exists"):
        store.add("ada", "admin", "long enough 2")
    with pytest.raises(UserError, match="does not exist"):
        store.delete("nobody")


def test_password_change_updates_the_credential_stamp(tmp_path: Path) -> None:
    store = UserStore(tmp_path / "users.json")
    before = store.add("ada", "admin", "first password")
    store.set_password("ada", "second password")
    after = store.get("ada")
    assert after is not None and after.password_changed_at > before.password_changed_at
    assert store.authenticate("ada", "first password") is None
    assert store.authenticate("ada", "second password") is not None


def test_users_cli_add_list_passwd_delete(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HIVERL_HOME", str(tmp_path))
    runner = CliRunner()
    added = runner.invoke(
        hiverl_app, ["users", "add", "ada", "--role", "admin", "--password-stdin"], input="pw-from-stdin\n"
    )
    assert added.exit_code == 0, added.output
    monkeypatch.setenv("HIVERL_USER_PASSWORD", "pw-from-env-1")
    assert runner.invoke(hiverl_app, ["users", "add", "vic"]).exit_code == 0
    listed = runner.invoke(hiverl_app, ["users", "list"])
    assert "ada\tadmin" in listed.output and "vic\tviewer" in listed.output
    assert "argon2" not in listed.output
    bad = runner.invoke(hiverl_app, ["users", "add", "eve", "--role", "boss"])
    assert bad.exit_code == 2 and "role='boss'" in bad.output
    store = UserStore(tmp_path / "dashboard" / "users.json")
    assert store.authenticate("ada", "pw-from-stdin") is not None
    assert (
        runner.invoke(
            hiverl_app, ["users", "passwd", "vic", "--password-stdin"], input="new-password-2\n"
        ).exit_code
        == 0
    )
    assert store.authenticate("vic", "new-password-2") is not None
    assert runner.invoke(hiverl_app, ["users", "delete", "vic"]).exit_code == 0
    assert store.get("vic") is None


def test_rate_limit_locks_out_exponentially_per_user_and_address() -> None:
    clock = Clock()
    limiter = LoginRateLimiter(free_failures=3, base_lockout_s=2.0, max_lockout_s=30.0, clock=clock)
    assert [limiter.failed("ada", "10.0.0.1") for _ in range(2)] == [0.0, 0.0]
    assert limiter.failed("ada", "10.0.0.1") == 2.0  # third failure: 2 s
    assert limiter.retry_after("ADA", "10.0.0.1") == pytest.approx(2.0)
    assert limiter.retry_after("ada", "10.0.0.2") == 0.0  # another address is not locked
    assert limiter.retry_after("bob", "10.0.0.1") == 0.0  # nor another user
    clock.now += 2.0
    assert limiter.retry_after("ada", "10.0.0.1") == 0.0
    assert limiter.failed("ada", "10.0.0.1") == 4.0
    assert limiter.failed("ada", "10.0.0.1") == 8.0
    assert limiter.failed("ada", "10.0.0.1") == 16.0
    assert limiter.failed("ada", "10.0.0.1") == 30.0  # capped
    limiter.succeeded("ada", "10.0.0.1")
    assert limiter.retry_after("ada", "10.0.0.1") == 0.0
    assert limiter.failed("ada", "10.0.0.1") == 0.0  # a success starts the count again


def test_sessions_expire_when_idle_and_end_per_user() -> None:
    clock = Clock()
    table = SessionTable(idle_s=60.0, clock=clock)
    token, session = table.create("ada", 1.0)
    other, _ = table.create("bob", 1.0)
    assert len(token) >= 40 and session.csrf_token != token
    clock.now += 59.0
    assert table.get(token) is session  # activity refreshes the idle timer
    clock.now += 59.0
    assert table.get(token) is session
    assert table.get(other) is None  # bob was idle for 118 s
    table.end_user("ada")
    assert table.get(token) is None
    assert table.get("forged-token") is None and table.get(None) is None


def test_dashboard_command_is_registered() -> None:
    result = CliRunner().invoke(hiverl_app, ["dashboard", "--help"])
    assert result.exit_code == 0 and "--port" in result.output and "--host" in result.output
