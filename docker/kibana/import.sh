#!/usr/bin/env bash
# One-shot of the compose stack, run after Kibana is healthy: imports every saved-objects file
# (*.ndjson) of dashboard/kibana/ with overwrite, so re-running it updates the dashboards in place.
set -euo pipefail
shopt -s nullglob
files=(/setup/objects/*.ndjson)
if ((${#files[@]} == 0)); then
  echo "no saved objects (*.ndjson) in dashboard/kibana/" >&2
  exit 1
fi
for file in "${files[@]}"; do
  echo "importing ${file##*/}"
  response=$(curl -fsS -u "elastic:${ELASTIC_PASSWORD}" -H 'kbn-xsrf: hiverl' \
    -X POST "${KIBANA_URL}/api/saved_objects/_import?overwrite=true" --form "file=@${file}")
  echo "$response"
  if [[ "$response" != *'"success":true'* ]]; then
    echo "import of ${file##*/} failed" >&2
    exit 1
  fi
done
