"""The documentation site: the generated configuration reference is current, the site builds with
`mkdocs build --strict` (no broken link, every page in the navigation), and the `hiverl` commands
and options the operations pages show exist."""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
#: Pages written by the platform docs (the component pages check their own examples).
OPERATIONS_PAGES = (
    "index.md",
    "architecture.md",
    "quickstart.md",
    "scaling.md",
    "persistence.md",
    "troubleshooting.md",
)


def _generator() -> Any:
    if "gen_config_docs" not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            "gen_config_docs", REPO / "scripts" / "gen_config_docs.py"
        )
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules["gen_config_docs"] = module
        spec.loader.exec_module(module)
    return sys.modules["gen_config_docs"]


def test_configuration_reference_is_current() -> None:
    expected = _generator().render()
    actual = (REPO / "docs" / "configuration.md").read_text()
    assert actual == expected, (
        "docs/configuration.md is stale: run .venv/bin/python scripts/gen_config_docs.py"
    )


def test_configuration_reference_covers_every_setting() -> None:
    """Every settings model field and every .env.example line has a row."""
    generator = _generator()
    text = (REPO / "docs" / "configuration.md").read_text()
    for model in generator.settings_classes():
        config = model.model_config
        for setting in generator.model_settings(
            model, str(config.get("env_prefix") or ""), config.get("env_nested_delimiter")
        ):
            assert f"| `{setting.env}` |" in text
    for name, _, _ in generator.env_example():
        assert f"| `{name}` |" in text
    assert "| `CONFIG_AGENT__LR` |" in text  # nested sections are expanded


def test_site_builds_strictly(tmp_path: Path) -> None:
    mkdocs = Path(sys.executable).parent / "mkdocs"
    assert mkdocs.exists(), "mkdocs comes with the dev extras: run scripts/setup.sh"
    result = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "configuration" / "index.html").exists()


def _hiverl_invocations(page: Path) -> list[tuple[int, list[str]]]:
    """(line, words after `hiverl`) of every `hiverl ...` command in the page's code blocks."""
    found = []
    in_code = False
    for number, line in enumerate(page.read_text().splitlines(), start=1):
        if line.startswith("```"):
            in_code = not in_code
            continue
        if not in_code:
            continue
        match = re.search(r"(?:^|\s|/)hiverl ([a-z].*?)(?:\s+#.*)?$", line)
        if match and "docker" not in line.split("hiverl")[0].split()[-1:]:
            words = [w for w in shlex.split(match[1].rstrip("\\").replace("'", ""), posix=True)]
            found.append((number, words))
    return found


@pytest.mark.parametrize("page", OPERATIONS_PAGES)
def test_documented_commands_and_options_exist(page: str) -> None:
    import typer

    from hiverl.cli import app

    root = typer.main.get_command(app)
    for line, words in _hiverl_invocations(REPO / "docs" / page):
        command: Any = root
        position = 0
        while hasattr(command, "commands") and position < len(words) and not words[position].startswith("-"):
            name = words[position]
            assert name in command.commands, f"{page}:{line}: `hiverl {' '.join(words)}`: no command {name!r}"
            command = command.commands[name]
            position += 1
        options = {opt for param in command.params for opt in getattr(param, "opts", [])}
        for word in words[position:]:
            if word.startswith("--"):
                option = word.split("=")[0]
                assert option in options, f"{page}:{line}: `hiverl {' '.join(words)}`: no option {option}"


def test_command_check_sees_the_pages() -> None:
    """The extraction above finds the commands (a check that finds nothing checks nothing)."""
    commands = {
        " ".join(words[:2])
        for page in OPERATIONS_PAGES
        for _, words in _hiverl_invocations(REPO / "docs" / page)
    }
    assert {"memory save", "memory load", "services up", "users add", "train --env"} <= commands
