#!/usr/bin/env bash
# Builds an offline bundle that runs bench/pong_gpu.py on a bare CUDA machine: one with a python3
# that has torch and numpy, but no network, no Redis and none of the project's other packages.
#   scripts/gpu_bundle.sh DIR                           wheels for CPython 3.12 (the GPU machines)
#   HIVERL_BUNDLE_PYTHON=3.11 scripts/gpu_bundle.sh DIR wheels for another CPython (a rehearsal here)
#   HIVERL_BUNDLE_REF=HEAD scripts/gpu_bundle.sh DIR    the sources of a commit, not the working tree
# DIR (emptied first; it must be empty, new or an earlier bundle) then holds, in at most 60 MB:
#   project/    the tracked and untracked-not-ignored sources of the packages the benchmark imports
#   wheels/     the cp3XX manylinux x86_64 wheels of every package it needs beyond torch and numpy,
#               at requirements.lock's versions (no OpenCV, no matplotlib: the run needs neither)
#   tools/      a pip wheel, for an interpreter without pip (pip runs from the wheel file itself)
#   redis/      redis-server with every shared library ldd lists, the dynamic loader and libc included
#   run_pong.sh the one command to run there: DIR/run_pong.sh [bench/pong_gpu.py options]
#   MANIFEST.txt what is inside, with sizes and versions
# Downloads go to a cache ($HIVERL_CACHE/gpu-bundle), so a second build needs no network.
set -euo pipefail
[ $# = 1 ] || { echo "usage: scripts/gpu_bundle.sh DIR" >&2; exit 2; }
OUT=$(realpath -m "$1")  # before the cd below: DIR is relative to where the script was called
cd "$(dirname "$0")/.."
PYVER=${HIVERL_BUNDLE_PYTHON:-3.12}
MAX_BYTES=$((60 * 1000 * 1000))
CACHE="${HIVERL_CACHE:-$HOME/.cache/hiverl}/gpu-bundle"
PIP_VERSION=26.3  # any pip that runs on 3.11-3.13 would do; pinned so that every bundle is the same

# What the benchmark imports beyond torch and numpy, found by running it in a venv holding only
# those two (see docs/training.md). Each line: the distribution, then why it is needed.
PACKAGES=(
  ale-py                # the Atari emulator; its wheel ships the ROMs (Pong)
  gymnasium             # env registry and spaces (hiverl.config checks every env_id)
  cloudpickle           # gymnasium
  farama-notifications  # gymnasium
  typing-extensions     # gymnasium, pydantic (torch brings one too; ours is the lock's)
  redis                 # the replay memory's client
  hiredis               # redis's C parser
  async-timeout         # redis on CPython < 3.11.3 (Debian 12's 3.11.2); unused, 6 kB, on 3.12
  zstandard             # replay_memory's frame compression
  protobuf              # proto/ (the memory's record format)
  pydantic              # hiverl.config
  pydantic-core         # pydantic
  annotated-types       # pydantic
  typing-inspection     # pydantic
  pydantic-settings     # hiverl.endpoints
  python-dotenv         # pydantic-settings
  pyyaml                # hiverl.config
  rich                  # game.trainer's console
  markdown-it-py        # rich
  mdurl                 # markdown-it-py
  pygments              # rich
  psutil                # hiverl (process facts)
  threadpoolctl         # hiverl.threads (every role caps its thread pools)
)
# The project's packages the benchmark imports (monitor/, dashboard/ and tests/ are not needed).
SOURCES=(hiverl game replay_memory proto bench)

say() { printf '[gpu-bundle] %s\n' "$*" >&2; }
die() { printf '[gpu-bundle] ERROR: %s\n' "$*" >&2; exit 1; }

[[ $PYVER =~ ^3\.[0-9]+$ ]] || die "HIVERL_BUNDLE_PYTHON must look like 3.12 (got '$PYVER')"
# Emptied first: only a folder that is empty or an earlier bundle, never anything else by mistake.
if [ -e "$OUT" ] && [ -n "$(ls -A "$OUT")" ] && [ ! -f "$OUT/MANIFEST.txt" ]; then
  die "$OUT is neither empty nor a bundle: choose another folder"
fi

# --- 1. wheels, at the lock's versions ----------------------------------------------------------
pins=()
for name in "${PACKAGES[@]}"; do
  pin=$(grep -iE "^${name}==" requirements.lock || true)
  [ -n "$pin" ] || die "$name is not pinned in requirements.lock"
  pins+=("$pin")
done
wheel_cache="$CACHE/cp${PYVER/./}"
mkdir -p "$wheel_cache" "$CACHE/tools"
cached_wheel() {  # the cached wheel of NAME==VERSION; its file name has "-" and "." as "_", any case
  local stem version
  stem=$(printf '%s' "${1%%==*}" | tr '.-' '__')
  version=${1#*==}
  find "$2" -maxdepth 1 -iname "${stem}-${version}-*.whl" | sort | tail -n 1
}
missing=()
for pin in "${pins[@]}"; do
  [ -n "$(cached_wheel "$pin" "$wheel_cache")" ] || missing+=("$pin")
done
[ -n "$(cached_wheel "pip==$PIP_VERSION" "$CACHE/tools")" ] || missing+=("pip==$PIP_VERSION")
if ((${#missing[@]})); then  # only what the cache lacks: a rebuild needs no network
  say "downloading ${#missing[@]} wheels for CPython $PYVER into $CACHE"
  python3 -m pip --version >/dev/null 2>&1 || die "python3 -m pip is needed to download the wheels"
  # --no-deps: the list above is the closure; each platform tag the GPU machines' glibc accepts.
  python3 -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
    --python-version "$PYVER" --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --dest "$wheel_cache" "${missing[@]}" >&2
  if [ -n "$(find "$wheel_cache" -maxdepth 1 -name "pip-$PIP_VERSION-*.whl")" ]; then
    mv "$wheel_cache/pip-$PIP_VERSION-"*.whl "$CACHE/tools/"
  fi
fi

rm -rf "$OUT"
mkdir -p "$OUT/wheels" "$OUT/tools" "$OUT/redis/bin" "$OUT/redis/lib" "$OUT/project"
for pin in "${pins[@]}"; do
  wheel=$(cached_wheel "$pin" "$wheel_cache")
  [ -n "$wheel" ] || die "no wheel of $pin for CPython $PYVER in $wheel_cache"
  cp "$wheel" "$OUT/wheels/"
done
cp "$(cached_wheel "pip==$PIP_VERSION" "$CACHE/tools")" "$OUT/tools/"
unwanted=$(find "$OUT/wheels" -iname 'opencv*' -o -iname 'matplotlib*')
[ -z "$unwanted" ] || die "OpenCV or matplotlib wheels got into the bundle: $unwanted"

# --- 2. the project's sources -------------------------------------------------------------------
if [ -n "${HIVERL_BUNDLE_REF:-}" ]; then  # a commit as it was (while the working tree is mid-edit)
  say "copying ${SOURCES[*]} of $HIVERL_BUNDLE_REF into $OUT/project"
  git archive --format=tar "$HIVERL_BUNDLE_REF" -- "${SOURCES[@]}" | tar -x -C "$OUT/project"
  commit=$(git rev-parse --short "$HIVERL_BUNDLE_REF^{commit}")
else  # git's view of the working tree: tracked files (as edited), new files not ignored; no caches
  say "copying ${SOURCES[*]} into $OUT/project"
  git ls-files -z --cached --others --exclude-standard -- "${SOURCES[@]}" |
    while IFS= read -r -d '' path; do [ -f "$path" ] && printf '%s\0' "$path"; done |
    tar -c --null -T - | tar -x -C "$OUT/project"
  commit=$(git rev-parse --short HEAD)
  [ -z "$(git status --porcelain -- "${SOURCES[@]}")" ] || commit="$commit+edits"
fi

# --- 3. redis-server and its libraries ----------------------------------------------------------
server=$(command -v redis-server || true)
[ -n "$server" ] || die "redis-server is not installed here (scripts/setup.sh installs it)"
# Debian links redis-server to redis-check-rdb, which picks its mode from argv[0]: copy the real
# file under the server's name.
cp "$(readlink -f "$server")" "$OUT/redis/bin/redis-server"
# Every library ldd resolves, under its soname; the loader under its canonical name, so that the
# target's own (maybe older) glibc is never mixed with ours.
ldd "$server" | awk '$2 == "=>" && $3 ~ /^\// { print $1, $3 } $1 ~ /^\// { print "ld-linux-x86-64.so.2", $1 }' |
  while read -r soname path; do cp -L "$path" "$OUT/redis/lib/$soname"; done
for needed in ld-linux-x86-64.so.2 libc.so.6; do
  [ -f "$OUT/redis/lib/$needed" ] || die "ldd did not list $needed for $server"
done
chmod 755 "$OUT/redis/bin/redis-server" "$OUT/redis/lib/ld-linux-x86-64.so.2"
# The exact invocation run_pong.sh uses, checked here.
redis_version=$("$OUT/redis/lib/ld-linux-x86-64.so.2" --library-path "$OUT/redis/lib" \
  "$OUT/redis/bin/redis-server" --version) || die "the bundled redis-server does not start"

# --- 4. the run script and the manifest ----------------------------------------------------------
cp scripts/gpu_bundle_run_pong.sh "$OUT/run_pong.sh"
chmod 755 "$OUT/run_pong.sh"
printf '%s\n' "$PYVER" >"$OUT/PYTHON_VERSION"
{
  echo "hiverl GPU bundle: bench/pong_gpu.py for CPython $PYVER with torch and numpy, offline"
  echo "project: ${SOURCES[*]} at $commit"
  echo "redis: $redis_version"
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -m), glibc $(ldd --version | head -n 1 | awk '{print $NF}')"
  echo
  echo "bytes  path"
  (cd "$OUT" && find wheels tools redis -type f -printf '%s  %p\n' | sort -k2)
  echo "$(du -sb "$OUT/project" | cut -f1)  project/"
} >"$OUT/MANIFEST.txt"

size=$(du -sb "$OUT" | cut -f1)
((size <= MAX_BYTES)) || die "the bundle is $size bytes, over the $MAX_BYTES limit"
say "bundle ready: $OUT ($((size / 1000 / 1000)) MB); run it with $OUT/run_pong.sh [options]"
