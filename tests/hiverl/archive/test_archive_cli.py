"""``hiverl sessions`` on a fixture archive: filters, sorting, compare (table + PNG), export/import."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hiverl.archive import ArchiveSettings, SessionArchive, SessionQuery, validate_document
from hiverl.archive.query import Range
from hiverl.cli import app

Doc = Callable[..., dict[str, Any]]
T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)

# id, env, status, tags, lr, best_return, days after T0
FIXTURE = [
    ("cp-a", "CartPole-v1", "finished", ["baseline"], 1e-3, 500.0, 0),
    ("cp-b", "CartPole-v1", "finished", ["sweep"], 3e-4, 210.0, 1),
    ("cp-c", "CartPole-v1", "crashed", ["sweep"], 1e-4, 35.0, 2),
    ("ll-a", "LunarLander-v3", "finished", ["sweep", "baseline"], 5e-4, 120.0, 3),
    ("ll-b", "LunarLander-v3", "stopped", [], 2e-3, None, 4),
]


@pytest.fixture
def filled(archive: SessionArchive, new_document: Doc) -> SessionArchive:
    """Five finished/stopped/crashed sessions with different envs, tags, learning rates and returns."""
    for sid, env, status, tags, lr, best, day in FIXTURE:
        started = T0 + dt.timedelta(days=day)
        steps = [1000 * i for i in range(1, 21)]
        top = best or 0.0
        doc = validate_document(
            new_document(
                sid,
                env_id=env,
                status=status,
                tags=tags,
                started_at=started,
                heartbeat_at=started + dt.timedelta(minutes=10),
                updated_at=started + dt.timedelta(minutes=10),
                ended_at=started + dt.timedelta(minutes=10),
                config={"env_id": env, "agent": {"lr": lr, "gamma": 0.99}, "actors": 2},
                results={"best_return": best, "last100_mean_return": None if best is None else best * 0.8},
                totals={"env_steps": 20_000},
                learning_curve={"env_steps": steps, "mean_return": [top * i / 20 for i in range(1, 21)]},
            )
        )
        assert archive.put(doc) == "inserted"
    return archive


def ids(archive: SessionArchive, **query: Any) -> list[str]:
    return [s.session_id for s in archive.list(SessionQuery(**query), sweep=False)]


def test_filters_and_sorting(filled: SessionArchive) -> None:
    assert ids(filled, env_id="CartPole-v1", sort="started_at", descending=False) == ["cp-a", "cp-b", "cp-c"]
    assert ids(filled, status="finished", sort="best_return") == ["cp-a", "cp-b", "ll-a"]
    assert ids(filled, tags=("sweep",), sort="best_return", descending=False) == ["cp-c", "ll-a", "cp-b"]
    assert ids(filled, tags=("sweep", "baseline")) == ["ll-a"]
    assert ids(
        filled, since=T0 + dt.timedelta(days=1), until=T0 + dt.timedelta(days=3), descending=False
    ) == [
        "cp-b",
        "cp-c",
        "ll-a",
    ]
    assert ids(filled, params=(Range("agent.lr", 2e-4, 1e-3),), sort="config.agent.lr") == [
        "cp-a",
        "ll-a",
        "cp-b",
    ]
    assert ids(filled, results=(Range("best_return", 200, None),), sort="best_return") == ["cp-a", "cp-b"]
    assert ids(filled, sort="last100_mean_return", limit=2) == ["cp-a", "cp-b"]
    assert ids(filled, env_id="Pong-v5") == []


@pytest.fixture
def cli(mongo_uri: str, settings: ArchiveSettings, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    monkeypatch.setenv("MONGODB_URI", mongo_uri)
    monkeypatch.setenv("HIVERL_ARCHIVE_DATABASE", settings.database)
    monkeypatch.setenv("HIVERL_ARCHIVE_SPOOL_DIR", str(settings.spool_dir))
    runner = CliRunner()

    def invoke(*args: str, code: int = 0) -> Any:
        result = runner.invoke(app, ["sessions", *args], env={"COLUMNS": "200"})
        assert result.exit_code == code, result.output
        return result

    return invoke


def test_list_command_filters_and_sorts(filled: SessionArchive, cli: Callable[..., Any]) -> None:
    out = cli(
        "list", "--env", "CartPole-v1", "--param", "agent.lr:2e-4:", "--sort", "best_return", "--asc"
    ).output
    assert "2 sessions" in out
    assert out.index("cp-b") < out.index("cp-a") and "cp-c" not in out and "ll-a" not in out
    lines = cli("list", "--tag", "baseline", "--json").output.splitlines()
    assert sorted(json.loads(line)["session_id"] for line in lines) == ["cp-a", "ll-a"]
    assert "min 3.0 is above max 1.0" in cli("list", "--result", "best_return:3:1", code=2).output
    assert "is not an ISO date" in cli("list", "--since", "last tuesday", code=2).output


def test_compare_prints_side_by_side_and_writes_a_png(
    filled: SessionArchive, cli: Callable[..., Any], tmp_path: Path
) -> None:
    import matplotlib.image

    png = tmp_path / "curves.png"
    out = cli("compare", "cp-a", "cp-b", "ll-a", "--png", str(png)).output
    lines = out.splitlines()
    lr_row = next(line for line in lines if "agent.lr" in line)
    assert lr_row.lstrip("│ ").startswith("* agent.lr")  # differs: marked
    assert "0.001" in lr_row and "0.0003" in lr_row and "0.0005" in lr_row
    gamma_row = next(line for line in lines if "agent.gamma" in line)
    assert "* " not in gamma_row  # equal everywhere: not marked
    best_row = next(line for line in lines if "best_return" in line)
    assert "500" in best_row and "210" in best_row and "120" in best_row
    assert str(png) in out.replace("\n", "")
    assert png.stat().st_size > 10_000
    pixels = matplotlib.image.imread(png)
    assert pixels.shape[0] >= 300 and pixels.shape[1] >= 600
    assert pixels[..., :3].std() > 0.05  # lines drawn, not a blank canvas

    only = cli("compare", "cp-a", "cp-b", "--png", str(tmp_path / "two.png"), "--diff").output
    assert "agent.lr" in only and "agent.gamma" not in only
    assert "not in the archive: nope" in cli("compare", "cp-a", "nope", code=1).output


def test_export_import_round_trip_and_newer_document_protection(
    filled: SessionArchive, cli: Callable[..., Any], tmp_path: Path
) -> None:
    dump = tmp_path / "sessions.jsonl"
    cli("export", "--out", str(dump))
    lines = dump.read_text().splitlines()
    assert len(lines) == len(FIXTURE)
    before = {s.session_id: s for s in filled.list(SessionQuery(limit=0), sweep=False)}

    cli("delete", "--yes", *before)
    assert filled.list(sweep=False) == []
    assert "5 inserted" in cli("import", str(dump)).output
    after = {s.session_id: s for s in filled.list(SessionQuery(limit=0), sweep=False)}
    assert after == before

    # A stored newer version is never overwritten silently ...
    newer = after["cp-a"].model_copy(update={"update_seq": 7, "name": "renamed later"})
    filled.put(newer)
    result = cli("import", str(dump))
    assert "kept the stored session cp-a" in result.output and "--force" in result.output
    assert "1 skipped_older" in result.output and "4 unchanged" in result.output
    kept = filled.get("cp-a", sweep=False)
    assert kept is not None and kept.name == "renamed later"
    # ... but --force does.
    cli("import", "--force", str(dump))
    forced = filled.get("cp-a", sweep=False)
    assert forced is not None and forced.name == before["cp-a"].name


def test_import_validates_every_line(filled: SessionArchive, cli: Callable[..., Any], tmp_path: Path) -> None:
    good = json.loads(cli("list", "--json", "--limit", "1").output.splitlines()[0])
    bad = dict(good, session_id="bad one", status="paused")
    path = tmp_path / "mixed.jsonl"
    path.write_text(
        "\n".join([json.dumps(dict(good, session_id="new-1")), json.dumps(bad), "{not json", "[1]"])
    )
    out = cli("import", str(path), code=1).output.replace("\n", " ")
    assert "mixed.jsonl:2" in out and "field 'session_id'" in out and "'bad one'" in out
    assert "field 'status'" in out and "'paused'" in out
    assert "mixed.jsonl:3" in out and "mixed.jsonl:4" in out
    assert "1 inserted; invalid lines: 3" in out
    assert filled.get("new-1", sweep=False) is not None


def test_show_sync_sweep_and_delete(filled: SessionArchive, cli: Callable[..., Any]) -> None:
    shown = json.loads(cli("show", "ll-a").output)
    assert shown["session_id"] == "ll-a" and shown["config"]["agent"]["lr"] == 5e-4
    assert "not in the archive" in cli("show", "nope", code=1).output
    assert "delivered 0" in cli("sync").output
    assert "marked crashed: none" in cli("sweep").output
    assert "deleted 1 of 2" in cli("delete", "-y", "ll-b", "nope").output
    assert filled.get("ll-b", sweep=False) is None
