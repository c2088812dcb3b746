"""Kibana dashboards as code: saved objects (``hiverl.ndjson``) and their one-shot importer."""
