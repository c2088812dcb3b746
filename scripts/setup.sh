#!/usr/bin/env bash
# Sets up everything hiverl needs on this machine, idempotently:
#   - Debian packages (redis-server, chromium for the browser tests),
#   - a Python virtual environment cached under $HIVERL_CACHE keyed by requirements.lock's hash
#     (torch is several GB: a warm machine reinstalls nothing), linked as ./.venv,
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
lock_hash=$(sha256sum requirements.lock | cut -c1-16)
venv="$HIVERL_CACHE/venvs/$lock_hash"
if [ ! -f "$venv/.complete" ]; then
  log "building the virtual environment $venv (first time for this lock file)"
  rm -rf "$venv"
  uv venv -q --python "$(command -v python3.11 || command -v python3)" "$venv"
  UV_HTTP_TIMEOUT=300 uv pip sync -q --python "$venv/bin/python" requirements.lock
  touch "$venv/.complete"
fi
ln -sfn "$venv" .venv
uv pip install -q --python .venv/bin/python --no-deps -e . >/dev/null

# --- service distributions (downloads cached in $HIVERL_CACHE) ----------------------------------
if [ "${HIVERL_SKIP_SERVICES_FETCH:-0}" != 1 ]; then
  .venv/bin/hiverl services fetch
fi
log "ready: $(.venv/bin/python --version), venv $venv"
