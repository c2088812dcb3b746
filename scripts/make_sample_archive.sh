#!/usr/bin/env bash
# Rebuild hiverl/archive/samples/cartpole.jsonl: a few short, real CartPole sessions of hiverl
# with different hyperparameters, for new users to import and compare without training for hours:
#
#   hiverl sessions import hiverl/archive/samples/cartpole.jsonl
#   hiverl sessions compare sample-cartpole-lr1e-3 sample-cartpole-lr3e-4 sample-cartpole-lr1e-4
#
# Needs the replay memory's Redis (`hiverl services up redis`); not the archive server: the
# sessions are rebuilt from their run folders (`hiverl sessions from-run --out`).
# Usage: scripts/make_sample_archive.sh [STEPS]   (default 3000; ~3 min per run on 2 cores)
set -euo pipefail

cd "$(dirname "$0")/.."
HIVERL=${HIVERL:-.venv/bin/hiverl}
STEPS=${1:-3000}
WORK=$(mktemp -d)
OUT=hiverl/archive/samples/cartpole.jsonl
trap 'rm -rf "$WORK"' EXIT

# name  extra settings (same seed, workers and budget; only the named hyperparameters differ)
RUNS=(
  "lr1e-3 --set agent.lr=0.001"
  "lr3e-4 --set agent.lr=0.0003"
  "lr1e-4 --set agent.lr=0.0001"
  "lr1e-3-uniform --set agent.lr=0.001 --set memory.alpha=0.0"
)

mkdir -p "$(dirname "$OUT")"
: > "$WORK/cartpole.jsonl"
for run in "${RUNS[@]}"; do
  read -r name settings <<< "$run"
  session="sample-cartpole-$name"
  echo "== $session ($settings)"
  # shellcheck disable=SC2086  # settings are several flags
  "$HIVERL" train --env CartPole-v1 --actors 2 --steps "$STEPS" --seed 1 --no-live \
    --session "$session" --set run_dir="$WORK/runs" --set model_dir="$WORK/models" \
    --set evaluator.stop_when_solved=false $settings > "$WORK/$name.log"
  "$HIVERL" sessions from-run "$WORK/runs/$session" --tag sample --tag cartpole --out "$WORK/cartpole.jsonl"
done
mv "$WORK/cartpole.jsonl" "$OUT"
echo "wrote $OUT ($(wc -l < "$OUT") sessions)"
