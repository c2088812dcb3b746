#!/usr/bin/env bash
# The main job: sets everything up, starts the local services and trains a hive of 4 DQN workers
# on CartPole-v1 with the embedded defaults (about 15 minutes on a 2-core CPU). Extra arguments go
# to `hiverl train`, e.g. scripts/run.sh --env Acrobot-v1 --workers 2
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/hiverl services up
exec .venv/bin/hiverl train --env CartPole-v1 --workers 4 "$@"
