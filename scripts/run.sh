#!/usr/bin/env bash
# The main job, the whole system: sets everything up, starts the local services and trains a hive
# (one learner, one actor and the evaluator) on CartPole-v1 with the embedded defaults until the
# evaluator confirms it solved (usually well under a minute of training on a 2-core CPU), with the
# memory monitor and the indexer running beside it, so Elasticsearch and the dashboard fill live.
# At the end it waits until the session's events are indexed and prints where to look. Extra
# arguments go to `hiverl train`, e.g. scripts/run.sh --env Acrobot-v1 --actors 4 (--no-monitor,
# --no-index: without them).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/hiverl services up
exec .venv/bin/hiverl train --env CartPole-v1 "$@"
