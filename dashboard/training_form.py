"""The start-training form: which settings it offers, validated by the CLI's own settings model.

The form is a short view of :class:`hiverl.config.SessionConfig` (the one model behind
``hiverl train``); its answers are validated by :func:`hiverl.config.load_config` exactly as CLI
flags are, so the messages are the CLI's, and then passed to ``hiverl train`` as ``--set``
assignments.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

#: Dotted setting names offered by the form, in display order.
FORM_FIELDS = (
    "env_id",
    "actors",
    "actor.envs",
    "total_steps",
    "seed",
    "agent.lr",
    "agent.gamma",
    "agent.batch_size",
    "agent.n_step",
    "learner.min_size",
    "learner.samples_per_insert",
    "exploration.schedule",
    "exploration.start",
    "exploration.end",
    "exploration.decay_steps",
    "memory.capacity",
    "memory.alpha",
)


class FormError(ValueError):
    """Refused form input; ``errors`` is ``[{"field", "message"}]`` with dotted setting names."""

    def __init__(self, message: str, errors: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.errors = errors


@dataclass(frozen=True)
class FormField:
    """One input of the form, described by the settings model."""

    name: str
    kind: str  # "int", "float", "str", "choice"
    default: Any
    description: str
    choices: tuple[str, ...] = ()

    @property
    def input_type(self) -> str:
        return "number" if self.kind in ("int", "float") else "text"

    @property
    def step(self) -> str:
        return "1" if self.kind == "int" else "any"


def _model_field(model: type[BaseModel], dotted: str) -> tuple[Any, Any]:
    """(FieldInfo, default) of a dotted name inside the nested settings model."""
    *sections, leaf = dotted.split(".")
    for section in sections:
        info = model.model_fields[section]
        model = info.annotation  # type: ignore[assignment]
    info = model.model_fields[leaf]
    return info, info.get_default(call_default_factory=True)


def form_fields() -> list[FormField]:
    """The form's inputs with defaults, descriptions and choices from ``SessionConfig``."""
    from typing import get_args

    from hiverl.config import SessionConfig

    fields = []
    for name in FORM_FIELDS:
        info, default = _model_field(SessionConfig, name)
        choices = tuple(str(c) for c in get_args(info.annotation))
        if choices:
            kind = "choice"
        elif info.annotation is int:
            kind = "int"
        elif info.annotation is float:
            kind = "float"
        else:
            kind = "str"
        fields.append(FormField(name, kind, default, info.description or "", choices))
    return fields


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"agent.lr": 1}`` -> ``{"agent": {"lr": 1}}``."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        node = nested
        *sections, leaf = key.split(".")
        for section in sections:
            node = node.setdefault(section, {})
        node[leaf] = value
    return nested


_ERROR_LINE = re.compile(r"^\s*(?P<field>[A-Za-z0-9_.()]+): (?P<message>.*)$")


def validate(answers: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Validate form answers with the CLI's model; returns (resolved settings, ``--set`` args).

    Only the form's fields are accepted; blank answers take the default. Raises
    :class:`FormError` naming every refused field (the CLI's message for each).
    """
    from hiverl.config import ConfigError, load_config, quoted

    unknown = sorted(set(answers) - set(FORM_FIELDS))
    if unknown:
        names = [n if len(n) <= 100 else f"{n[:100]}... ({len(n)} characters)" for n in unknown]
        raise FormError(
            f"unknown form fields {quoted(names[:10])}",
            [{"field": name, "message": "not a field of this form"} for name in names[:10]],
        )
    given = {k: v for k, v in answers.items() if k in FORM_FIELDS and v not in (None, "")}
    try:
        config = load_config(None, overrides=nest(given))
    except ConfigError as error:
        errors = []
        for line in str(error).splitlines()[1:] or [str(error)]:
            match = _ERROR_LINE.match(line)
            if match:
                errors.append({"field": match["field"], "message": line.strip()})
            else:
                errors.append({"field": "(settings)", "message": line.strip()})
        raise FormError(str(error), errors) from None
    resolved = config.to_json_dict()
    args = []
    for key in sorted(given):  # the validated, typed value: "0.001" from a text box becomes 0.001
        value: Any = resolved
        for part in key.split("."):
            value = value[part]
        args += ["--set", f"{key}={json.dumps(value)}"]
    return resolved, args
