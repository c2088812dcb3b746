#!/usr/bin/env bash
# Sets up everything hiverl needs on this machine, idempotently:
#   - Debian packages (redis-server, chromium for the browser tests),
#   - this checkout's own Python virtual environment ./.venv (a real directory, never shared: its
#     editable install points at this checkout), filled from requirements.lock with uv; uv's cache
#     (~/.cache/uv, or $UV_CACHE_DIR) makes it cheap: packages are hard-linked from the cache, so
#     torch's gigabytes are downloaded once per machine; a venv in step with the lock is left as is,
#   - the service distributions (Kafka jars, Elasticsearch zip, FerretDB build), cached likewise,
#   - helm, built from the Go module proxy into $HIVERL_CACHE/helm-<version> (the chart's test).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
export HIVERL_CACHE="${HIVERL_CACHE:-$HOME/.cache/hiverl}"
mkdir -p "$HIVERL_CACHE"

log() { printf '\033[1;34m[setup]\033[0m %s\n' "$*"; }

# --- Debian packages ---------------------------------------------------------------------------
need_apt=()
command -v redis-server >/dev/null || need_apt+=(redis-server redis-tools)
command -v chromium >/dev/null || need_apt+=(chromium)
command -v ffmpeg >/dev/null || need_apt+=(ffmpeg)
if ((${#need_apt[@]})); then
  log "installing Debian packages: ${need_apt[*]}"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# --- helm, for the chart's test (tests/deploy/): built from the Go module proxy -----------------
# Into $HIVERL_CACHE/helm-<version>/bin once per machine, in the background while the rest is set
# up (a few minutes cold); waited for at the end. The version is pinned here only.
HELM_VERSION=3.22.0
helm_dir="$HIVERL_CACHE/helm-$HELM_VERSION"
helm_pid=""
if [ ! -x "$helm_dir/bin/helm" ]; then
  go=$(command -v go || echo /usr/local/go/bin/go)
  if [ ! -x "$go" ]; then
    echo "[setup] Go (>= 1.26) is needed to build helm $HELM_VERSION: https://go.dev/dl" >&2
    exit 1
  fi
  mkdir -p "$helm_dir"
  log "building helm $HELM_VERSION in the background (log: $helm_dir/build.log)"
  (
    exec 9>"$helm_dir/.lock"
    flock 9  # one build at a time on this machine
    [ -x "$helm_dir/bin/helm" ] && exit 0
    rm -rf "$helm_dir/bin.partial"
    GOBIN="$helm_dir/bin.partial" CGO_ENABLED=0 nice "$go" install -trimpath \
      -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=v$HELM_VERSION" \
      "helm.sh/helm/v3/cmd/helm@v$HELM_VERSION"
    "$helm_dir/bin.partial/helm" version --short | grep -q "^v$HELM_VERSION"
    rm -rf "$helm_dir/bin"
    mv "$helm_dir/bin.partial" "$helm_dir/bin"
  ) >"$helm_dir/build.log" 2>&1 &
  helm_pid=$!
fi

# --- Python environment ------------------------------------------------------------------------
command -v uv >/dev/null || python3 -m pip install -q --disable-pip-version-check uv
python=$(command -v python3.11 || command -v python3)
if [ -L .venv ]; then  # the shared venv older setups linked here: this checkout gets its own
  log "replacing the shared, linked .venv by this checkout's own"
  rm .venv
fi
# In step when the lock, the project's metadata, this checkout's path and the interpreter are.
want=$( { sha256sum requirements.lock pyproject.toml; echo "$ROOT"; "$python" --version; } | sha256sum | cut -c1-16)
if [ "$(cat .venv/.hiverl-setup 2>/dev/null)" != "$want" ]; then
  if [ ! -x .venv/bin/python ] || [ "$(.venv/bin/python --version 2>&1)" != "$("$python" --version)" ]; then
    rm -rf .venv
    uv venv -q --python "$python" .venv
  fi
  log "syncing .venv with requirements.lock (uv's cache: only what it lacks is downloaded)"
  UV_HTTP_TIMEOUT=300 uv pip sync -q --python .venv/bin/python requirements.lock
  uv pip install -q --python .venv/bin/python --no-deps -e . >/dev/null
  echo "$want" >.venv/.hiverl-setup
fi

# --- service distributions (downloads cached in $HIVERL_CACHE) ----------------------------------
if [ "${HIVERL_SKIP_SERVICES_FETCH:-0}" != 1 ]; then
  .venv/bin/hiverl services fetch
fi
if [ -n "$helm_pid" ]; then
  if ! wait "$helm_pid"; then
    tail -n 20 "$helm_dir/build.log" >&2
    echo "[setup] building helm $HELM_VERSION failed; the log: $helm_dir/build.log" >&2
    exit 1
  fi
  log "helm $HELM_VERSION built: $helm_dir/bin/helm"
fi
log "ready: $(.venv/bin/python --version), venv $ROOT/.venv"
