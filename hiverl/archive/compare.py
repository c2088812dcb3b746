"""Side by side: the config and result tables and the learning-curve plot of several sessions."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rich.table import Table

from hiverl.archive.document import Results, SessionDocument
from hiverl.archive.facts import hive_size

#: Result fields shown by ``list`` and ``compare``, in this order.
RESULT_FIELDS = tuple(Results.model_fields)


def flatten(value: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"agent": {"lr": 1e-3}}`` -> ``{"agent.lr": 1e-3}`` (lists and scalars are leaves)."""
    flat: dict[str, Any] = {}
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, Mapping) and item:
            flat.update(flatten(item, name + "."))
        else:
            flat[name] = item
    return flat


def fmt(value: Any) -> str:
    """Compact text of a table cell."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(fmt(v) for v in value) + "]"
    return str(value)


def _same(a: Any, b: Any) -> bool:
    """Equality where NaN equals NaN (a NaN in both configs is no difference)."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return bool(a == b)


def config_rows(sessions: Sequence[SessionDocument]) -> list[tuple[str, list[Any], bool]]:
    """``(key, values per session, differs)`` for every flattened config key of any session.

    ``session_id`` is left out: it always differs and heads the columns already.
    """
    flats = [{k: v for k, v in flatten(s.config).items() if k != "session_id"} for s in sessions]
    keys = sorted(set().union(*flats)) if flats else []
    missing = object()
    rows = []
    for key in keys:
        values = [f.get(key, missing) for f in flats]
        differs = any(not _same(v, values[0]) for v in values[1:])
        rows.append((key, [None if v is missing else v for v in values], differs))
    return rows


def config_table(sessions: Sequence[SessionDocument], *, only_differences: bool = False) -> Table:
    """Config keys as rows, sessions as columns; differing rows in bold yellow, marked ``*``."""
    table = Table(title="config (* = differs)", show_lines=False)
    table.add_column("key")
    for s in sessions:
        table.add_column(s.session_id, overflow="fold")
    for key, values, differs in config_rows(sessions):
        if only_differences and not differs:
            continue
        style = "bold yellow" if differs else None
        table.add_row(("* " if differs else "  ") + key, *(fmt(v) for v in values), style=style)
    return table


def results_table(sessions: Sequence[SessionDocument]) -> Table:
    """Results, totals and status as rows, sessions as columns; the best return in bold green."""
    table = Table(title="results")
    table.add_column("result")
    for s in sessions:
        table.add_column(s.session_id)
    rows: list[tuple[str, list[Any]]] = [
        ("status", [s.status for s in sessions]),
        ("env_id", [s.env_id for s in sessions]),
        ("started_at", [s.started_at.strftime("%Y-%m-%d %H:%M") for s in sessions]),
        ("actors", [hive_size(s.config, s.num_workers) for s in sessions]),
    ]
    rows += [
        (f"totals.{k}", [getattr(s.totals, k) for s in sessions])
        for k in ("env_steps", "episodes", "updates")
    ]
    rows += [(k, [getattr(s.results, k) for s in sessions]) for k in RESULT_FIELDS]
    for name, values in rows:
        cells = [fmt(v) for v in values]
        numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
        if name.endswith("return") and len(numbers) > 1:
            best = max(numbers)
            cells = [f"[bold green]{c}[/]" if v == best else c for c, v in zip(cells, values, strict=True)]
        table.add_row(name, *cells)
    return table


def plot_learning_curves(sessions: Sequence[SessionDocument], path: str | Path) -> Path:
    """Write a PNG of mean return against hive env steps, one line per session; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    try:
        for s in sessions:
            curve = s.learning_curve
            label = f"{s.session_id} ({s.name})" if s.name and s.name != s.session_id else s.session_id
            if curve.env_steps:
                ax.plot(curve.env_steps, curve.mean_return, label=label, linewidth=1.5)
            else:
                ax.plot([], [], label=f"{label}: no curve")
        threshold = next((s.results.solve_threshold for s in sessions if s.results.solve_threshold), None)
        if threshold is not None:
            ax.axhline(threshold, color="grey", linestyle="--", linewidth=1, label="solve threshold")
        ax.set_xlabel("hive env steps")
        ax.set_ylabel("mean episode return")
        ax.set_title(", ".join(sorted({s.env_id for s in sessions})))
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path
