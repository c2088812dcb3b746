#!/usr/bin/env bash
# Sets up everything hiverl needs on this machine, idempotently:
#   - Debian packages (redis-server, chromium for the browser tests),
#   - this checkout's own Python virtual environment ./.venv (a real directory, never shared: its
#     editable install points at this checkout), filled from requirements.lock with uv; uv's cache
#     (~/.cache/uv, or $UV_CACHE_DIR) makes it cheap: packages are hard-linked from the cache, so
#     torch's gigabytes are downloaded once per machine; a venv in step with the lock is left as is,
#   - the service distributions (Kafka jars, Elasticsearch zip, FerretDB build), cached likewise.
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
log "ready: $(.venv/bin/python --version), venv $ROOT/.venv"
