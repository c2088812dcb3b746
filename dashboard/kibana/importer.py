"""One-shot Kibana setup (the compose stack runs it once Kibana is up; safe to run again).

1. optionally put the telemetry index templates into Elasticsearch (so the data views find their
   fields even before the first event);
2. wait until Kibana answers ``/api/status`` as available;
3. import the saved objects (``hiverl.ndjson``, rendered for the index prefix: the data views read
   ``<prefix>training_log`` and ``<prefix>memory_monitoring``) through the saved objects ``_import``
   API with ``overwrite=true`` (fixed ids: a second import replaces, never duplicates) and make the
   training data view the default.

The prefix is ``--index-prefix``, else ``HIVERL_TELEMETRY_INDEX_PREFIX`` (as ``hiverl index`` and
Logstash read it), else ``hiverl-``.

``python -m dashboard.kibana.importer --kibana-url http://kibana:5601 [--elasticsearch-url URL]``;
credentials may be embedded in the URLs (``http://user:pass@host``) and are never printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx

from dashboard.kibana.saved_objects import NDJSON_PATH, TRAINING_DATA_VIEW_ID, render
from hiverl.endpoints import redact

_HEADERS = {"kbn-xsrf": "true"}


def _client(url: str, timeout_s: float) -> httpx.Client:
    """An httpx client for ``url``, with ``user:pass@`` moved into basic auth."""
    parts = urlsplit(url)
    auth = None
    if parts.username is not None:
        auth = httpx.BasicAuth(parts.username, parts.password or "")
        parts = parts._replace(netloc=(parts.hostname or "") + (f":{parts.port}" if parts.port else ""))
    return httpx.Client(base_url=urlunsplit(parts), auth=auth, headers=_HEADERS, timeout=timeout_s)


def wait_for_kibana(client: httpx.Client, timeout_s: float) -> None:
    """Poll ``/api/status`` until Kibana reports itself available; raises TimeoutError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            response = client.get("/api/status")
            if response.status_code == 200:
                level = response.json().get("status", {}).get("overall", {}).get("level", "available")
                if level == "available":
                    return
                last = f"overall status {level}"
            else:
                last = f"HTTP {response.status_code}"
        except httpx.HTTPError as exc:
            last = exc.__class__.__name__
        time.sleep(2.0)
    raise TimeoutError(f"Kibana not available after {timeout_s:.0f}s ({last})")


def import_saved_objects(client: httpx.Client, ndjson: Path = NDJSON_PATH, prefix: str | None = None) -> int:
    """Import the saved objects with overwrite: rendered for ``prefix`` when given, else the file
    ``ndjson``; returns the number of objects imported. Raises RuntimeError listing the objects
    Kibana refused."""
    body = render(prefix).encode("utf-8") if prefix is not None else ndjson.read_bytes()
    files = {"file": (ndjson.name, body, "application/ndjson")}
    response = client.post("/api/saved_objects/_import", params={"overwrite": "true"}, files=files)
    response.raise_for_status()
    result = response.json()
    if not result.get("success", False):
        errors = [f"{e.get('type')}/{e.get('id')}: {e.get('error')}" for e in result.get("errors", [])]
        raise RuntimeError("Kibana refused saved objects: " + "; ".join(errors))
    client.post("/api/kibana/settings", json={"changes": {"defaultIndex": TRAINING_DATA_VIEW_ID}})
    return int(result.get("successCount", 0))


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; exit status 0 on success."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kibana-url", default="http://127.0.0.1:5601")
    parser.add_argument("--elasticsearch-url", default=None, help="also put the index templates here")
    parser.add_argument(
        "--index-prefix",
        default=os.environ.get("HIVERL_TELEMETRY_INDEX_PREFIX") or None,
        help="telemetry index prefix of the data views and templates "
        "(default: $HIVERL_TELEMETRY_INDEX_PREFIX, else hiverl-)",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for Kibana")
    args = parser.parse_args(argv)

    from hiverl.telemetry.schema import DEFAULT_INDEX_PREFIX

    if args.elasticsearch_url:
        from elasticsearch import Elasticsearch

        from hiverl.telemetry.elastic import ensure_templates

        es = Elasticsearch(args.elasticsearch_url, request_timeout=30, retry_on_timeout=True, max_retries=10)
        names = ensure_templates(es, args.index_prefix or DEFAULT_INDEX_PREFIX)
        print(f"index templates put in {redact(args.elasticsearch_url)}: {', '.join(names)}")
    with _client(args.kibana_url, timeout_s=30.0) as client:
        print(f"waiting for Kibana at {redact(args.kibana_url)} ...")
        wait_for_kibana(client, args.timeout)
        count = import_saved_objects(client, prefix=args.index_prefix or DEFAULT_INDEX_PREFIX)
    print(f"imported {count} saved objects (overwrite) into {redact(args.kibana_url)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
