#!/usr/bin/env bash
# bench/pong_gpu.py from a bundle of scripts/gpu_bundle.sh (copied there as run_pong.sh), on a
# machine whose python3 has torch and numpy but no network, no Redis and no other package:
#   DIR/run_pong.sh [bench/pong_gpu.py options]     e.g. --minutes 7, or --cpu-smoke --minutes 1
# It installs the bundle's wheels into a private folder (once), starts the bundled Redis on a free
# port (127.0.0.1 only, nothing persisted), runs the benchmark against it and stops Redis on the
# way out. HIVERL_REDIS_SHARDS=N starts N Redis servers and spreads the memory over them (one shard
# each: a Redis server runs on one core, so shards on separate servers sample in parallel). The whole command is bounded (HIVERL_BUNDLE_TIMEOUT_S, 540 s by default: a device run
# may take 10 minutes at most). The benchmark's output comes last; its last line is its JSON.
# Outputs (runs, models, the PNG) go to DIR/work/var/ (under /tmp when DIR is read-only).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)

# One bound for everything: run this script again under timeout, which on expiry signals its whole
# process group (the benchmark's role processes and Redis included), then kills what is left.
if [ -z "${HIVERL_BUNDLE_BOUNDED:-}" ]; then
  export HIVERL_BUNDLE_BOUNDED=1
  exec timeout --kill-after=20 "${HIVERL_BUNDLE_TIMEOUT_S:-540}" "$BASH" "$0" "$@"
fi

say() { printf '[run_pong] %s\n' "$*"; }
die() { printf '[run_pong] ERROR: %s\n' "$*" >&2; exit 1; }

# --- the interpreter: the wheels are for one CPython version -------------------------------------
command -v python3 >/dev/null || die "no python3 on PATH"
want=$(cat "$HERE/PYTHON_VERSION")
have=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$have" = "$want" ] ||
  die "the wheels are for CPython $want but python3 is $have: build with HIVERL_BUNDLE_PYTHON=$have"
torch_facts=$(python3 -c 'import numpy, torch; print(torch.__version__, "CUDA", torch.cuda.is_available())') ||
  die "python3 ($(command -v python3)) cannot import torch and numpy"

# A folder of ours, writable: under DIR, else under /tmp (a read-only copy of the bundle).
private_dir() {
  if mkdir -p "$HERE/$1" 2>/dev/null && [ -w "$HERE/$1" ]; then
    echo "$HERE/$1"
  else
    mkdir -p "/tmp/hiverl-bundle-$(id -u)/$1" && echo "/tmp/hiverl-bundle-$(id -u)/$1"
  fi
}

# --- 1. the wheels, installed once per set of wheels ---------------------------------------------
site=$(private_dir "site-cp${want/./}")
wheels=("$HERE"/wheels/*.whl)
stamp=$(printf '%s\n' "${wheels[@]##*/}" | cksum | cut -d' ' -f1)  # which wheels were installed
if [ "$(cat "$site/.installed" 2>/dev/null)" != "$stamp" ]; then
  say "installing ${#wheels[@]} wheels into $site"
  find "$site" -mindepth 1 -delete
  if python3 -m pip --version >/dev/null 2>&1; then
    pip=(python3 -m pip)
  else  # pip runs from its own wheel file
    pip=(python3 "$(ls "$HERE"/tools/pip-*.whl)/pip")
  fi
  PIP_ROOT_USER_ACTION=ignore "${pip[@]}" install -q --disable-pip-version-check --no-index --no-deps \
    --target "$site" "${wheels[@]}"
  echo "$stamp" >"$site/.installed"
fi

# --- 2. Redis on a free port, stopped on the way out ---------------------------------------------
shards=${HIVERL_REDIS_SHARDS:-1}
[[ "$shards" =~ ^[1-9][0-9]*$ ]] || die "HIVERL_REDIS_SHARDS=$shards: expected a whole number >= 1"
redis_dir=$(mktemp -d "${TMPDIR:-/tmp}/hiverl-bundle-redis.XXXXXX")
redis_pids=()
stop_redis() {
  for pid in "${redis_pids[@]}"; do
    kill "$pid" 2>/dev/null || true  # SIGTERM: without persistence Redis exits at once
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$redis_dir"
}
trap stop_redis EXIT
# A signal (timeout's, Ctrl-C) must still run the EXIT trap: bash skips it when killed outright.
trap 'exit 143' TERM
trap 'exit 130' INT
trap 'exit 129' HUP

redis_ping() {  # bash's /dev/tcp: no redis-cli on the machine; a subshell keeps a refusal local
  (
    exec 3<>"/dev/tcp/127.0.0.1/$1"
    printf 'PING\r\n' >&3
    IFS= read -r -t 2 reply <&3
    [ "${reply%$'\r'}" = "+PONG" ]
  ) 2>/dev/null
}

start_redis() {  # one server in "$redis_dir/$1"; sets port and redis_pid
  local dir="$redis_dir/$1" pid
  mkdir -p "$dir"
  for _attempt in 1 2 3 4 5; do  # a port found free can be taken before Redis binds it: try another
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    # The bundled loader and libc, not the machine's: the server was linked against those.
    "$HERE/redis/lib/ld-linux-x86-64.so.2" --library-path "$HERE/redis/lib" "$HERE/redis/bin/redis-server" \
      --bind 127.0.0.1 --port "$port" --save '' --appendonly no --dir "$dir" \
      --logfile "$dir/redis.log" --daemonize no </dev/null &
    pid=$!
    for _ in $(seq 100); do
      if redis_ping "$port"; then
        redis_pids+=("$pid")
        return 0
      fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  die "the bundled Redis did not start: $(tail -n 5 "$dir/redis.log" 2>/dev/null)"
}

urls=()
for k in $(seq "$shards"); do
  start_redis "shard-$k"
  urls+=("redis://127.0.0.1:$port/0")
done

# --- 3. the benchmark ----------------------------------------------------------------------------
work=$(private_dir work)
export PYTHONPATH="$site:$HERE/project${PYTHONPATH:+:$PYTHONPATH}"
REDIS_URL=$(IFS=,; echo "${urls[*]}")
export REDIS_URL
unset HIVERL_REDIS_URL REDIS_URL_FILE
say "bundle:  $HERE (CPython $want wheels; $(head -n 2 "$HERE/MANIFEST.txt" | tail -n 1))"
say "python:  $(command -v python3) $have, torch $torch_facts"
say "wheels:  installed in $site"
say "redis:   $REDIS_URL (pids ${redis_pids[*]}, no persistence), stopped when this script ends"
say "outputs: $work/var/ (runs, models, bench/pong_gpu/)"
say "running: python3 bench/pong_gpu.py $*"
cd "$work"
# Not exec: the EXIT trap stops Redis once the benchmark is done; nothing is printed after it.
shard_setting=()
[ "$shards" = 1 ] || shard_setting=(--set "memory.shards=$shards")
python3 "$HERE/project/bench/pong_gpu.py" "${shard_setting[@]}" "$@"
