"""Elasticsearch index templates for the telemetry, built from :mod:`hiverl.telemetry.schema`.

One composable index template per family (``training_log``, ``memory_monitoring``, ``dead_letter``)
matching its daily indices, with the mapping and the stable read alias; putting a template is
idempotent, so every indexer (and the one-shot Kibana setup) applies them at start-up. A template
only shapes indices created after it: fields new to the schema are also added to the mappings of the
existing daily indices (adding a field is compatible), so today's index takes them at once.
"""

from __future__ import annotations

import logging
from typing import Any

from hiverl.events import EVENT_SCHEMA_VERSION
from hiverl.telemetry.schema import (
    DEAD_LETTER_FAMILY,
    DEAD_LETTER_PROPERTIES,
    FAMILIES,
    alias_name,
    index_pattern,
    mapping,
)

log = logging.getLogger(__name__)

#: Template priority: above Elasticsearch's built-in templates (``logs-*`` etc. use 100).
TEMPLATE_PRIORITY = 200


def template_name(prefix: str, family: str) -> str:
    """Name of ``family``'s index template, e.g. ``hiverl-training_log``."""
    return f"{prefix}{family}"


def index_templates(prefix: str, replicas: int = 0) -> dict[str, dict[str, Any]]:
    """Template name → body (``index_patterns``, ``priority``, ``template``, ``_meta``).

    ``replicas`` is ``number_of_replicas`` (0 suits the single-node local service)."""
    settings = {"number_of_shards": 1, "number_of_replicas": replicas, "refresh_interval": "1s"}
    bodies: dict[str, dict[str, Any]] = {}
    families: dict[str, dict[str, Any]] = {f: mapping(f) for f in FAMILIES}
    families[DEAD_LETTER_FAMILY] = {"dynamic": False, "properties": DEAD_LETTER_PROPERTIES}
    for family, family_mapping in families.items():
        bodies[template_name(prefix, family)] = {
            "index_patterns": [index_pattern(prefix, family)],
            "priority": TEMPLATE_PRIORITY,
            "template": {
                "settings": settings,
                "mappings": family_mapping,
                "aliases": {alias_name(prefix, family): {}},
            },
            "_meta": {"managed_by": "hiverl", "schema_version": EVENT_SCHEMA_VERSION},
        }
    return bodies


def ensure_templates(es: Any, prefix: str, replicas: int = 0) -> list[str]:
    """Put every telemetry index template (idempotent); returns their names.

    ``es`` is an ``elasticsearch.Elasticsearch`` client; its errors propagate."""
    names = []
    for name, body in index_templates(prefix, replicas).items():
        es.indices.put_index_template(
            name=name,
            index_patterns=body["index_patterns"],
            priority=body["priority"],
            template=body["template"],
            meta=body["_meta"],
        )
        names.append(name)
    add_new_fields(es, prefix)
    return names


def add_new_fields(es: Any, prefix: str) -> None:
    """Put each family's mapping on its existing daily indices: fields they lack are added (a field
    whose type changed is refused by Elasticsearch; that is logged, the rest goes on)."""
    from elasticsearch import BadRequestError

    for family in FAMILIES:
        try:
            es.indices.put_mapping(
                index=index_pattern(prefix, family),
                properties=mapping(family)["properties"],
                allow_no_indices=True,
                ignore_unavailable=True,
            )
        except BadRequestError as error:
            log.warning("existing %s indices keep their mapping: %s", family, str(error)[:300])


def delete_templates(es: Any, prefix: str) -> None:
    """Remove the templates of ``prefix`` (tests clean up with this)."""
    for name in index_templates(prefix):
        es.options(ignore_status=404).indices.delete_index_template(name=name)
