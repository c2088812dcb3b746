#!/usr/bin/env bash
# As the official image's entrypoint: every environment variable whose name has a dot and is in lower
# case is a setting (-Ekey=value); ELASTIC_PASSWORD becomes the bootstrap password in the keystore.
set -euo pipefail
settings=()
while IFS='=' read -r -d '' name value; do
  if [[ "$name" =~ ^[a-z0-9_]+\.[a-z0-9_.]+$ ]]; then
    settings+=("-E$name=$value")
  fi
done < <(env -0)
if [[ -n "${ELASTIC_PASSWORD:-}" ]]; then
  [[ -f config/elasticsearch.keystore ]] || elasticsearch-keystore create
  printf '%s' "$ELASTIC_PASSWORD" | elasticsearch-keystore add -x -f bootstrap.password
fi
exec elasticsearch -Enetwork.host=0.0.0.0 "${settings[@]}"
