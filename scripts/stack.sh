#!/usr/bin/env bash
# Everything the compose stack needs on a machine without an image registry, installed when missing:
#   scripts/stack.sh engine   the Docker engine (Debian's docker.io; dockerd started when not running)
#                             and Compose v2 (built from the Go module proxy as the CLI plugin)
#   scripts/stack.sh images   the engine, then the locally built images of docker/local/ (a Debian
#                             base from debootstrap, Python, a JDK, Redis, Kafka, Elasticsearch,
#                             FerretDB) that compose.test.yaml swaps in for the official ones
# Idempotent and cached: the compose binary under $HIVERL_CACHE, images tagged by their inputs' hash.
# The stack test (tests/stack/) runs `scripts/stack.sh images` first; so can you, before
#   docker compose -f compose.yaml -f compose.test.yaml --env-file tests/stack/stack.env up --build
set -euo pipefail
cd "$(dirname "$0")/.."

COMPOSE_VERSION=v2.40.3
DEBIAN_SUITE=bookworm
CACHE="${HIVERL_CACHE:-$HOME/.cache/hiverl}"
LOG_DIR="$CACHE/stack"
mkdir -p "$LOG_DIR"

say() { printf '[stack] %s\n' "$*" >&2; }
die() { printf '[stack] ERROR: %s\n' "$*" >&2; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

apt_install() {
  say "installing $* (apt)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" > "$LOG_DIR/apt.log" 2>&1 || {
    as_root apt-get update -q > "$LOG_DIR/apt-update.log" 2>&1 || true
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" > "$LOG_DIR/apt.log" 2>&1 ||
      die "apt-get install $* failed; see $LOG_DIR/apt.log"
  }
}

# -- the engine -------------------------------------------------------------------------------------
start_engine() {
  command -v dockerd > /dev/null || apt_install docker.io
  command -v docker > /dev/null || die "docker.io is installed but the docker client is not on PATH"
  if docker info > /dev/null 2>&1; then
    return
  fi
  say "starting dockerd (log: $LOG_DIR/dockerd.log)"
  as_root sh -c "nohup dockerd > '$LOG_DIR/dockerd.log' 2>&1 &"
  for _ in $(seq 60); do
    docker info > /dev/null 2>&1 && return
    sleep 1
  done
  tail -n 20 "$LOG_DIR/dockerd.log" >&2 || true
  die "the Docker engine could not start on this machine (dockerd did not answer within 60 s)"
}

install_compose() {
  if docker compose version > /dev/null 2>&1; then
    return
  fi
  local binary="$CACHE/docker-compose-$COMPOSE_VERSION/docker-compose"
  if [ ! -x "$binary" ]; then
    command -v go > /dev/null || die "Compose v2 is missing and Go is not installed to build it"
    say "building Compose $COMPOSE_VERSION from the Go module proxy (about 2 minutes, once)"
    local work
    work="$(mktemp -d)"
    (
      cd "$work"
      # `go install` refuses the module (its go.mod has exclude directives): download, then build.
      dir="$(GOFLAGS=-mod=mod go mod download -json "github.com/docker/compose/v2@$COMPOSE_VERSION" |
        sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
      [ -n "$dir" ] || exit 1
      cp -r "$dir" src && chmod -R u+w src && cd src
      mkdir -p "$(dirname "$binary")"
      GOFLAGS=-mod=mod go build -trimpath \
        -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$COMPOSE_VERSION" \
        -o "$binary.tmp" ./cmd
      mv "$binary.tmp" "$binary"
    ) > "$LOG_DIR/compose-build.log" 2>&1 || die "building Compose failed; see $LOG_DIR/compose-build.log"
    rm -rf "$work"
  fi
  as_root install -D -m 755 "$binary" /usr/local/lib/docker/cli-plugins/docker-compose
  docker compose version > /dev/null || die "docker compose does not run after installing $binary"
}

# -- images -----------------------------------------------------------------------------------------
image_exists() { docker image inspect "$1" > /dev/null 2>&1; }

base_image() {
  local tag="hiverl-local/debian:$DEBIAN_SUITE"
  image_exists "$tag" && return
  command -v debootstrap > /dev/null || apt_install debootstrap
  local root
  root="$(mktemp -d)"
  say "debootstrap --variant=minbase $DEBIAN_SUITE (about 30 s)"
  as_root debootstrap --variant=minbase "$DEBIAN_SUITE" "$root" http://deb.debian.org/debian \
    > "$LOG_DIR/debootstrap.log" 2>&1 || die "debootstrap failed; see $LOG_DIR/debootstrap.log"
  as_root tar -C "$root" -c . | docker import - "$tag" > /dev/null
  as_root rm -rf "$root"
}

# build NAME TAG [DIST_SOURCE DIST_NAME]: docker/local/NAME (plus a copy of DIST_SOURCE as DIST_NAME)
# as TAG, unless an image with that tag was built from the same inputs (label hiverl.inputs).
build_local() {
  local name="$1" tag="$2" source="${3:-}" as="${4:-}"
  local inputs parent
  parent="$(sed -n 's/^ARG [A-Z_]*IMAGE=//p' "docker/local/$name/Dockerfile" | head -n 1)"
  inputs="$( (cd "docker/local/$name" && find . -type f -print0 | sort -z | xargs -0 sha256sum
    [ -z "$source" ] || ls -lR --time-style=+%s "$source"
    docker image inspect -f '{{ .Id }}' "$parent") | sha256sum | cut -c1-16)"
  if [ "$(docker image inspect -f '{{ index .Config.Labels "hiverl.inputs" }}' "$tag" 2>/dev/null)" = "$inputs" ]; then
    return
  fi
  say "building $tag"
  local context="$LOG_DIR/context-$name"
  rm -rf "$context"
  cp -r "docker/local/$name" "$context"
  if [ -n "$source" ]; then
    [ -e "$source" ] || die "$source is missing (run: .venv/bin/hiverl services fetch)"
    cp -al "$source" "$context/$as" 2> /dev/null || cp -a "$source" "$context/$as"
  fi
  DOCKER_BUILDKIT=0 docker build -q --label "hiverl.inputs=$inputs" -t "$tag" "$context" \
    > "$LOG_DIR/build-$name.log" 2>&1 || { tail -n 30 "$LOG_DIR/build-$name.log" >&2; die "building $tag failed"; }
  rm -rf "$context"
}

find_jdk() {
  local candidate
  for candidate in "${HIVERL_STACK_JDK:-}" /usr/lib/jvm/temurin-25-jdk-amd64 /usr/lib/jvm/temurin-21-jdk-amd64 \
    /usr/lib/jvm/java-25-openjdk-amd64 /usr/lib/jvm/java-21-openjdk-amd64; do
    [ -n "$candidate" ] && [ -x "$candidate/bin/javac" ] && { printf '%s\n' "$candidate"; return; }
  done
  die "no JDK >= 21 found for the Kafka and Elasticsearch images (set HIVERL_STACK_JDK)"
}

local_images() {
  local python=.venv/bin/python
  [ -x "$python" ] || scripts/setup.sh
  # The server distributions of the local services (Kafka jars, Elasticsearch zip, FerretDB).
  .venv/bin/hiverl services fetch > "$LOG_DIR/fetch.log" 2>&1 || die "hiverl services fetch failed; see $LOG_DIR/fetch.log"
  local kafka es ferretdb
  read -r kafka es ferretdb < <("$python" -c '
from hiverl.services import distributions as d
print(d.kafka_dist(), d.elasticsearch_dist(), d.ferretdb_binary())')
  base_image
  # The machine's own certificate authorities (an egress proxy's), trusted inside the builds too.
  local certs=/usr/local/share/ca-certificates
  [ -d "$certs" ] || certs="$(mktemp -d)"
  build_local python hiverl-local/python:3.11 "$certs" certs
  build_local jdk hiverl-local/jdk:25 "$(find_jdk)" jdk
  build_local redis hiverl-local/redis:7
  build_local kafka hiverl-local/kafka:4.1.1 "$kafka/libs" libs
  build_local elasticsearch hiverl-local/elasticsearch:9.2.0 "$es" elasticsearch
  build_local mongo hiverl-local/ferretdb:1.24.2 "$ferretdb" ferretdb
}

# Every fresh clone's `compose build` leaves a few GB of build cache behind; on a CI machine that
# runs the stack test again and again that fills the disk (and a full disk stops Elasticsearch).
# Below 20 GB free, trim the cache to its newest 10 GB.
trim_build_cache() {
  local free_kb
  free_kb="$(df -Pk "$(docker info -f '{{.DockerRootDir}}')" | awk 'NR == 2 {print $4}')"
  [ "${free_kb:-0}" -lt $((20 * 1024 * 1024)) ] || return 0
  say "less than 20 GB free: trimming Docker's build cache to 10 GB"
  docker builder prune -f --keep-storage 10gb > "$LOG_DIR/prune.log" 2>&1 || say "trimming failed; see $LOG_DIR/prune.log"
}

case "${1:-}" in
  engine) start_engine; install_compose ;;
  images) start_engine; install_compose; trim_build_cache; local_images ;;
  *) echo "usage: scripts/stack.sh engine|images" >&2; exit 2 ;;
esac
say "ready"
