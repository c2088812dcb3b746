#!/usr/bin/env python3
"""Write docs/configuration.md from the settings models, the code's other environment variables and
.env.example, so the reference can never drift from the code (tests/test_docs.py fails when stale).

    .venv/bin/python scripts/gen_config_docs.py           # rewrite docs/configuration.md
    .venv/bin/python scripts/gen_config_docs.py --check   # exit 1 when it is stale

Settings models are found, not listed: every ``class X(BaseSettings)`` in the packages below.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("hiverl", "replay_memory", "game", "monitor", "dashboard")
OUTPUT = REPO / "docs" / "configuration.md"
ENV_EXAMPLE = REPO / ".env.example"

_SETTINGS_CLASS = re.compile(r"^class (\w+)\(BaseSettings\):", re.MULTILINE)
_ENV_READ = re.compile(
    r"""os\.(?:environ\.get|getenv|environ\.pop)\(\s*["']([A-Z][A-Z0-9_]+)["']|os\.environ\[\s*["']([A-Z][A-Z0-9_]+)["']\s*\]"""
)
_ENV_CONSTANT = re.compile(r"""^\s*[A-Z_]*ENV\s*(?::\s*\w+\s*)?=\s*["']([A-Z][A-Z0-9_]+)["']""", re.MULTILINE)
_SECRET_FILE_NAMES = re.compile(
    r"""for name in \(([^)]*)\):\s*\n\s*path = os\.environ\.get\(f["']\{name\}_FILE["']\)"""
)

#: What the environment variables read outside a settings model mean (the generator fails on a
#: new one without a line here, so every variable the code reads is documented).
OTHER_VARIABLES: dict[str, str] = {
    "HIVERL_HOME": "Runtime state: spools, dashboard accounts, service data (`~/.hiverl` or `<repo>/var`).",
    "HIVERL_CACHE": "Downloads and builds of the local services (default `~/.cache/hiverl`).",
    "HIVERL_USER_PASSWORD": "Password for `hiverl users add/passwd` when `--password-stdin` is not given.",
    "HIVERL_ACTOR_INDEX": "Set by `python -m game.worker_index run` for the actor command: its index.",
    "HIVERL_ACTORS_SETTLE_S": "Seconds the number of live actor leases must stay changed before an actor"
    " restarts with the new ladder size (`game.worker_index`; default 30).",
    "HIVERL_WORKER_HOLDER": "Name of a replica claiming a worker index (default: the host name).",
    "JAVA_HOME": "JDK for the local Kafka and Elasticsearch (`hiverl services`), when not found otherwise.",
    "ES_JAVA_HOME": "JDK for the local Elasticsearch (tried before `JAVA_HOME`).",
    "KAFKA_JAVA_HOME": "JDK for the local Kafka (tried before `JAVA_HOME`).",
    "CI": "`true` in CI: the test fixtures fail (not skip) when a service is unreachable.",
    "HIVERL_TRAIN_MONITOR": "`0`: `hiverl train` runs no memory monitor beside the hive (`--no-monitor`).",
    "HIVERL_TRAIN_INDEX": "`0`: `hiverl train` runs no indexer beside the hive (`--no-index`).",
}


@dataclass(frozen=True)
class Setting:
    """One environment variable of a settings model."""

    env: str
    type: str
    default: str
    description: str


def settings_classes() -> Iterator[type[Any]]:
    """Every ``BaseSettings`` subclass defined in the project's packages, in path order."""
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            for name in _SETTINGS_CLASS.findall(path.read_text(encoding="utf-8")):
                module = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
                yield getattr(importlib.import_module(module), name)


def _type_name(annotation: Any) -> str:
    text = getattr(annotation, "__name__", None) if not getattr(annotation, "__args__", None) else None
    text = text or str(annotation)
    text = re.sub(r"\b(typing|pathlib|collections\.abc)\.", "", text)
    return text.replace("NoneType", "None").replace("PosixPath", "Path")


def _default(field: Any) -> str:
    from pydantic_core import PydanticUndefined

    if field.default_factory is not None:
        try:
            value = field.default_factory()
        except TypeError:
            return "(computed)"
        if isinstance(value, (dict, list)) and not value:
            return f"`{value!r}`"
        if isinstance(value, Path) or hasattr(value, "model_fields"):
            return "(computed)"
        return f"`{value!r}`"
    if field.default is PydanticUndefined:
        return "(required)"
    value = field.default
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, tuple):
        value = list(value)
    return f"`{value!r}`" if not isinstance(value, str) else f'`"{value}"`'


def _env_names(name: str, field: Any, prefix: str) -> list[str]:
    from pydantic import AliasChoices

    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return [str(choice) for choice in alias.choices]
    if isinstance(alias, str):
        return [alias]
    return [f"{prefix}{name}".upper()]


def model_settings(model: type[Any], prefix: str, delimiter: str | None) -> Iterator[Setting]:
    """The environment variables of ``model`` (nested sections expanded with ``delimiter``)."""
    from pydantic import BaseModel

    for name, field in model.model_fields.items():
        annotation = field.annotation
        if delimiter and isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from model_settings(annotation, f"{prefix}{name}{delimiter}".upper(), delimiter)
            continue
        envs = _env_names(name, field, prefix)
        description = (field.description or "").replace("|", "\\|")
        yield Setting(" / ".join(envs), _type_name(annotation), _default(field), description)


def secret_file_variables() -> list[str]:
    """``NAME_FILE`` variables (the value is read from that file, e.g. a Docker secret)."""
    names: list[str] = []
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            for group in _SECRET_FILE_NAMES.findall(path.read_text(encoding="utf-8")):
                names += [f"{n}_FILE" for n in re.findall(r"[\"']([A-Z][A-Z0-9_]+)[\"']", group)]
    return names


def other_variables() -> list[str]:
    """Environment variables the code reads directly (``os.environ``/``getenv`` or ``*_ENV`` constants)."""
    found: set[str] = set()
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            for a, b in _ENV_READ.findall(text):
                found.add(a or b)
            found.update(_ENV_CONSTANT.findall(text))
    return sorted(found)


def env_example() -> list[tuple[str, str, str]]:
    """(variable, value, description) of .env.example; the comment lines above a variable describe it."""
    rows: list[tuple[str, str, str]] = []
    comment: list[str] = []
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        match = re.fullmatch(r"#?\s*([A-Z][A-Z0-9_]*)=(.*)", stripped)
        if match and not stripped.startswith("# --"):
            rows.append((match[1], match[2], " ".join(comment)))
            comment = []
        elif stripped.startswith("# --") or not stripped:
            comment = []
        elif stripped.startswith("#"):
            comment.append(stripped.lstrip("# ").replace("|", "\\|"))
    return rows


def render() -> str:
    """The whole of docs/configuration.md."""
    out = [
        "# Configuration reference",
        "",
        "<!-- Generated by scripts/gen_config_docs.py from the settings models; do not edit by hand. -->",
        "",
        "Every setting is an environment variable (or a line of a `.env` file in the working directory).",
        "Session settings (`CONFIG_*`) can also come from a TOML/YAML file (`hiverl train --config`) and",
        "CLI flags; see [training](training.md). Nested session settings use `__`, e.g.",
        "`CONFIG_AGENT__LR=0.001`. Passwords and URLs with credentials belong in `.env` or secret files,",
        "never in code.",
        "",
    ]
    documented: set[str] = set()
    for model in settings_classes():
        config = model.model_config
        prefix = str(config.get("env_prefix") or "")
        delimiter = config.get("env_nested_delimiter")
        doc = (model.__doc__ or "").strip().splitlines()[0]
        out += [f"## {model.__name__} (`{model.__module__}`)", "", doc, ""]
        if prefix:
            out += [f"Prefix `{prefix}`.", ""]
        out += ["| variable | type | default | meaning |", "| --- | --- | --- | --- |"]
        for setting in model_settings(model, prefix, delimiter):
            documented.update(setting.env.split(" / "))
            out.append(f"| `{setting.env}` | `{setting.type}` | {setting.default} | {setting.description} |")
        out.append("")
    secrets = secret_file_variables()
    documented.update(secrets)  # code that reads one directly (to name it in a message) is covered
    if secrets:
        out += [
            "## Secret files",
            "",
            "Instead of a URL with credentials in the environment, give the path of a file holding it",
            "(e.g. a Docker secret under `/run/secrets/`); the variable itself wins when both are set.",
            "",
            "| variable | meaning |",
            "| --- | --- |",
        ]
        out += [f"| `{name}` | File holding `{name.removesuffix('_FILE')}`. |" for name in secrets]
        out.append("")
    out += ["## Other environment variables", "", "| variable | meaning |", "| --- | --- |"]
    missing = []
    for name in other_variables():
        if name in documented:
            continue
        if name not in OTHER_VARIABLES:
            missing.append(name)
            continue
        out.append(f"| `{name}` | {OTHER_VARIABLES[name]} |")
    if missing:
        raise SystemExit(f"describe {missing} in OTHER_VARIABLES of scripts/gen_config_docs.py")
    out += [
        "",
        "## The compose stack (`.env`)",
        "",
        "Read by `docker compose` from `.env` (copy `.env.example`); see [quick start](quickstart.md).",
        "",
        "| variable | example | meaning |",
        "| --- | --- | --- |",
    ]
    for name, value, description in env_example():
        shown = "(set your own)" if "change-me" in value else f"`{value}`" if value else ""
        out.append(f"| `{name}` | {shown} | {description} |")
    return "\n".join(out) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when docs/configuration.md is stale")
    args = parser.parse_args()
    text = render()
    if args.check:
        if OUTPUT.read_text(encoding="utf-8") != text:
            print(f"{OUTPUT.relative_to(REPO)} is stale: run scripts/gen_config_docs.py", file=sys.stderr)
            return 1
        return 0
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
