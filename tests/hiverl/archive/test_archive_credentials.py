"""Credentials: never logged, printed or stored; a rejected password gives a clear message.

The shared local FerretDB runs without authentication, so this test starts a private FerretDB with
its SCRAM-SHA-256 authentication enabled and one user created at startup.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient
from typer.testing import CliRunner

from hiverl.archive import ArchiveAuthError, ArchiveSettings, SessionArchive
from hiverl.cli import app
from hiverl.services import MongoServer, free_ports

USER = "hiveuser"
PASSWORD = "Pw-8f3kq1Zx"  # test-only secret of a throwaway server


class AuthFerretDB(MongoServer):
    """FerretDB with authentication on, and the user ``USER`` created at start."""

    def command(self) -> list[str]:
        return [
            *super().command(),
            "--test-enable-new-auth",
            f"--setup-username={USER}",
            f"--setup-password={PASSWORD}",
            "--setup-database=admin",
        ]


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthFerretDB]:
    with AuthFerretDB(free_ports(1)[0], tmp_path_factory.mktemp("auth_mongo"), backend="ferretdb") as server:
        yield server


def uri(server: MongoServer, password: str = PASSWORD) -> str:
    return (
        f"mongodb://{USER}:{password}@127.0.0.1:{server.port}/?authSource=admin&authMechanism=SCRAM-SHA-256"
    )


def test_credentials_never_appear_in_logs_output_or_documents(
    auth_server: AuthFerretDB,
    tmp_path: Path,
    new_document: Callable[..., dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    good = uri(auth_server)
    settings = ArchiveSettings(
        database="creds", spool_dir=tmp_path / "spool", retry_after_s=0.0, timeout_s=1.0
    )
    with caplog.at_level(logging.DEBUG):
        with SessionArchive(good, settings) as archive:
            print(archive.where)
            # A config that carries the URI and a password (a careless user) is scrubbed before storing.
            archive.start(
                new_document("cred-1", config={"archive_uri": good, "mongo": {"password": PASSWORD}})
            )
            archive.heartbeat("cred-1", {"totals": {"env_steps": 10}})
            archive.finish("cred-1", "finished", {})
            stored = archive._collection.find_one({"_id": "cred-1"})
        # A wrong password: a clear message that names the fix, without the secret.
        with SessionArchive(uri(auth_server, "wrong-" + PASSWORD), settings) as rejected:
            with pytest.raises(ArchiveAuthError) as caught:
                rejected.start(new_document("cred-2"))
            print(caught.value)
    message = str(caught.value)
    assert "rejected the credentials" in message and "MONGODB_URI" in message
    assert "Authentication failed" in message
    assert stored is not None and stored["status"] == "finished"
    assert stored["config"]["archive_uri"].startswith("mongodb://***@127.0.0.1")
    assert stored["config"]["mongo"]["password"] == "***"
    captured = capsys.readouterr()
    everything = caplog.text + captured.out + captured.err + repr(stored)
    assert "***@127.0.0.1" in captured.out  # the address was printed, redacted
    assert PASSWORD not in everything
    assert USER not in everything

    client: MongoClient[dict[str, Any]] = MongoClient(good)
    try:
        dumped = repr(list(client["creds"]["sessions"].find()))
    finally:
        client.close()
    assert PASSWORD not in dumped and "cred-2" not in dumped  # the rejected session was not stored


def test_cli_reports_rejected_credentials_without_the_secret(
    auth_server: AuthFerretDB, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret_file = tmp_path / "mongo_uri"
    secret_file.write_text(uri(auth_server, "not-" + PASSWORD) + "\n")
    monkeypatch.delenv("MONGODB_URI", raising=False)
    monkeypatch.setenv("MONGODB_URI_FILE", str(secret_file))
    monkeypatch.setenv("HIVERL_ARCHIVE_SPOOL_DIR", str(tmp_path / "spool"))
    result = CliRunner().invoke(app, ["sessions", "list"], env={"COLUMNS": "300"})
    assert result.exit_code == 2
    out = result.output.replace("\n", "")
    assert "rejected the credentials" in out and "mongodb://***@127.0.0.1" in out
    assert PASSWORD not in out and f"{USER}:" not in out


def test_an_invalid_uri_is_reported_without_its_credentials(tmp_path: Path) -> None:
    from hiverl.archive import ArchiveError

    with pytest.raises(ArchiveError) as caught:  # the '@' in the password is not escaped
        SessionArchive("mongodb://hiveuser:pa@ss-Word9@127.0.0.1:1/", ArchiveSettings(spool_dir=tmp_path))
    message = str(caught.value)
    assert "is invalid" in message and "mongodb://***@127.0.0.1:1/" in message
    assert "ss-Word9" not in message and "hiveuser" not in message
