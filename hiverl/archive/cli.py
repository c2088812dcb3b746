"""``hiverl sessions``: list, show, compare, export, import, delete, sync and sweep archived sessions.

The archive's address comes from ``MONGODB_URI`` (or ``MONGODB_URI_FILE``); the database from
``HIVERL_ARCHIVE_DATABASE`` or ``--db``. See ``docs/archive.md`` for examples.
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from hiverl.archive.compare import RESULT_FIELDS, config_table, fmt, plot_learning_curves, results_table
from hiverl.archive.document import ArchiveValidationError, from_stored, to_json_ready
from hiverl.archive.facts import hive_size
from hiverl.archive.query import Range, SessionQuery
from hiverl.archive.settings import ArchiveError, ArchiveSettings
from hiverl.status import SessionStatus

if TYPE_CHECKING:
    from hiverl.archive.store import SessionArchive

app = typer.Typer(
    help="The session archive: list, show, compare, export, import, delete, sync, sweep.",
    no_args_is_help=True,
)
console = Console()
errors = Console(stderr=True)


@app.callback()
def _options(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option("--db", help="Archive database (default: $HIVERL_ARCHIVE_DATABASE or hiverl)."),
    ] = None,
) -> None:
    ctx.obj = {"db": db}


def _archive(ctx: typer.Context) -> SessionArchive:
    from hiverl.archive.store import SessionArchive  # pymongo: only when a command runs

    settings = ArchiveSettings()
    db = (ctx.obj or {}).get("db")  # click passes the group's ctx.obj down to the command
    if db:
        settings = settings.model_copy(update={"database": db})
    return SessionArchive(settings=settings)


def _fail(message: str, code: int = 2) -> typer.Exit:
    errors.print(f"[red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def _date(text: str | None, option: str) -> dt.datetime | None:
    if text is None:
        return None
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise _fail(
            f"{option} {text!r} is not an ISO date or datetime (e.g. 2026-11-24 or 2026-11-24T05:00)"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


EnvOpt = Annotated[str | None, typer.Option("--env", help="gymnasium env id, e.g. CartPole-v1.")]
StatusOpt = Annotated[str | None, typer.Option("--status", help=f"One of {', '.join(SessionStatus)}.")]
TagOpt = Annotated[list[str] | None, typer.Option("--tag", help="Has this tag (repeatable: all must match).")]
SinceOpt = Annotated[str | None, typer.Option("--since", help="Started at or after (ISO date/time, UTC).")]
UntilOpt = Annotated[str | None, typer.Option("--until", help="Started at or before (ISO date/time, UTC).")]
ParamOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--param", help="Config range 'key:min:max', e.g. agent.lr:1e-4:1e-3 (either bound may be empty)."
    ),
]
ResultOpt = Annotated[
    list[str] | None, typer.Option("--result", help="Result range 'name:min:max', e.g. best_return:195:.")
]
SortOpt = Annotated[
    str,
    typer.Option(
        "--sort",
        help=f"Result ({', '.join(RESULT_FIELDS)}), field (started_at) or path (config.agent.lr).",
    ),
]


def _query(
    env: str | None,
    status: str | None,
    tag: list[str] | None,
    since: str | None,
    until: str | None,
    param: list[str] | None,
    result: list[str] | None,
    sort: str = "started_at",
    ascending: bool = False,
    limit: int = 0,
) -> SessionQuery:
    try:
        return SessionQuery(
            env_id=env,
            status=status,
            tags=tuple(tag or ()),
            since=_date(since, "--since"),
            until=_date(until, "--until"),
            params=tuple(Range.parse(p, "--param") for p in param or ()),
            results=tuple(Range.parse(r, "--result") for r in result or ()),
            sort=sort,
            descending=not ascending,
            limit=limit,
        )
    except ValueError as exc:
        raise _fail(str(exc)) from None


@app.command("list")
def list_sessions(
    ctx: typer.Context,
    env: EnvOpt = None,
    status: StatusOpt = None,
    tag: TagOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    param: ParamOpt = None,
    result: ResultOpt = None,
    sort: SortOpt = "started_at",
    ascending: Annotated[bool, typer.Option("--asc", help="Ascending order (default descending).")] = False,
    limit: Annotated[int, typer.Option("--limit", help="Most sessions shown (0 = all).")] = 50,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON document per line instead of a table.")
    ] = False,
) -> None:
    """List archived sessions, filtered and sorted."""
    from rich.table import Table

    query = _query(env, status, tag, since, until, param, result, sort, ascending, limit)
    try:
        with _archive(ctx) as archive:
            sessions = archive.list(query)
    except ArchiveError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        for s in sessions:
            sys.stdout.write(json.dumps(to_json_ready(s)) + "\n")
        return
    table = Table(title=f"{len(sessions)} sessions")
    for column in (
        "id",
        "name",
        "env",
        "status",
        "started (UTC)",
        "actors",
        "env steps",
        "best",
        "last100",
        "to solve",
        "wall s",
    ):
        table.add_column(column)
    for s in sessions:
        r = s.results
        table.add_row(
            s.session_id,
            s.name,
            s.env_id,
            s.status,
            s.started_at.strftime("%Y-%m-%d %H:%M"),
            str(hive_size(s.config, s.num_workers)),
            str(s.totals.env_steps),
            fmt(r.best_return),
            fmt(r.last100_mean_return),
            fmt(r.steps_to_threshold),
            fmt(r.wall_clock_s),
        )
    console.print(table)


@app.command()
def show(
    ctx: typer.Context,
    session_id: Annotated[str, typer.Argument(help="Session id.")],
) -> None:
    """Print one session's full document (JSON)."""
    try:
        with _archive(ctx) as archive:
            session = archive.get(session_id)
    except ArchiveError as exc:
        raise _fail(str(exc)) from None
    if session is None:
        raise _fail(f"session {session_id!r} is not in the archive", 1)
    console.print_json(session.model_dump_json())


@app.command()
def compare(
    ctx: typer.Context,
    session_ids: Annotated[list[str], typer.Argument(help="Two or more session ids.")],
    png: Annotated[Path, typer.Option("--png", help="Where to write the learning-curve plot.")] = Path(
        "sessions-compare.png"
    ),
    only_differences: Annotated[
        bool, typer.Option("--diff", help="Show only config keys that differ.")
    ] = False,
) -> None:
    """Configs and results side by side (differences highlighted) and a PNG of the learning curves."""
    try:
        with _archive(ctx) as archive:
            sessions = archive.compare(session_ids)
    except KeyError as exc:
        raise _fail(str(exc.args[0]), 1) from None
    except ArchiveError as exc:
        raise _fail(str(exc)) from None
    console.print(config_table(sessions, only_differences=only_differences))
    console.print(results_table(sessions))
    written = plot_learning_curves(sessions, png)
    console.print(f"learning curves: {written}")


@app.command("export")
def export_sessions(
    ctx: typer.Context,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="JSON-lines file (default: stdout).")
    ] = None,
    env: EnvOpt = None,
    status: StatusOpt = None,
    tag: TagOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    param: ParamOpt = None,
    result: ResultOpt = None,
) -> None:
    """Write matching sessions as JSON lines (the stored form; `hiverl sessions import` reads it)."""
    query = _query(env, status, tag, since, until, param, result, sort="started_at", ascending=True)
    try:
        with _archive(ctx) as archive:
            lines = [
                json.dumps(to_json_ready(s), separators=(",", ":")) + "\n" for s in archive.iter_all(query)
            ]
    except ArchiveError as exc:
        raise _fail(str(exc)) from None
    if out is None:
        sys.stdout.writelines(lines)
        return
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(lines), encoding="utf-8")
    errors.print(f"exported {len(lines)} sessions to {out}")


@app.command("import")
def import_sessions(
    ctx: typer.Context,
    path: Annotated[
        Path, typer.Argument(help="JSON-lines file written by `hiverl sessions export`.", exists=True)
    ],
    force: Annotated[bool, typer.Option("--force", help="Overwrite stored sessions even if newer.")] = False,
) -> None:
    """Validate and import sessions; a stored newer version is kept and reported unless --force."""
    outcomes: Counter[str] = Counter()
    invalid: list[str] = []
    try:
        with _archive(ctx) as archive:
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    raw: Any = json.loads(line)
                    if not isinstance(raw, dict):
                        raise ArchiveValidationError(f"expected a JSON object, got {type(raw).__name__}")
                    document = from_stored(raw)
                except (json.JSONDecodeError, ArchiveValidationError) as exc:
                    invalid.append(f"{path}:{number}: {exc}")
                    continue
                outcome = archive.put(document, force=force)
                outcomes[outcome] += 1
                if outcome == "skipped_older":
                    errors.print(
                        f"{path}:{number}: kept the stored session {document.session_id} "
                        f"(it is newer than update_seq {document.update_seq}); use --force to overwrite",
                        highlight=False,
                    )
    except ArchiveError as exc:
        raise _fail(str(exc)) from None
    for message in invalid:
        errors.print(f"[red]invalid:[/] {message}", highlight=False, soft_wrap=True)
    summary = ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items())) or "nothing"
    console.print(f"imported: {summary}; invalid lines: {len(invalid)}")
    if invalid:
        raise typer.Exit(1)


@app.command()
def delete(
    ctx: typer.Context,
    session_ids: Annotated[list[str], typer.Argument(help="Session ids to delete.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
) -> None:
    """Delete sessions from the archive (and the local spool)."""
    if not yes:
        typer.confirm(f"delete {len(session_ids)} session(s): {', '.join(session_ids)}?", abort=True)
    try:
        with _archive(ctx) as archive:
            deleted = archive.delete(session_ids)
    except ArchiveError as exc:
        raise _fail(str(exc)) from None
    console.print(f"deleted {deleted} of {len(session_ids)}")


@app.command()
def sync(ctx: typer.Context) -> None:
    """Deliver the locally spooled session documents to the archive."""
    try:
        with _archive(ctx) as archive:
            report = archive.sync()
    except ArchiveError as exc:
        raise _fail(f"{exc} (spooled documents kept)") from None
    console.print(
        f"delivered {len(report.delivered)}, already newer in the archive {len(report.already_newer)}, "
        f"unreadable {len(report.failed)}, still spooled {report.remaining}"
    )
    for session_id, reason in report.failed.items():
        errors.print(f"[red]unreadable spool file for {session_id}:[/] {reason}", highlight=False)
    if report.failed:
        raise typer.Exit(1)


@app.command()
def sweep(
    ctx: typer.Context,
    timeout_s: Annotated[
        float | None, typer.Option("--timeout-s", help="Silence that counts as a crash (default: settings).")
    ] = None,
) -> None:
    """Mark running sessions whose heartbeat stopped as crashed."""
    try:
        with _archive(ctx) as archive:
            crashed = archive.sweep(timeout_s)
    except ArchiveError as exc:
        raise _fail(str(exc)) from None
    console.print(f"marked crashed: {', '.join(crashed) if crashed else 'none'}")


@app.command("from-run")
def from_run(
    ctx: typer.Context,
    folders: Annotated[list[Path], typer.Argument(help="Run folders <run_dir>/<session> of `hiverl train`.")],
    tag: TagOpt = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Append JSON lines to this file instead of importing.")
    ] = None,
) -> None:
    """Archive sessions trained without the archive, rebuilt from their run folders."""
    from hiverl.archive.runs import document_from_run

    documents = []
    for folder in folders:
        try:
            documents.append(document_from_run(folder, tags=tag or ()))
        except (OSError, ValueError, KeyError) as exc:
            raise _fail(f"{folder}: {exc}", 1) from None
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("a", encoding="utf-8") as handle:
            for document in documents:
                handle.write(json.dumps(to_json_ready(document), separators=(",", ":")) + "\n")
        console.print(f"wrote {len(documents)} sessions to {out}")
        return
    try:
        with _archive(ctx) as archive:
            outcomes = Counter(archive.put(document) for document in documents)
    except ArchiveError as exc:
        raise _fail(str(exc)) from None
    console.print("archived: " + ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items())))
