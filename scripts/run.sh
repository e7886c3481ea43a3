#!/usr/bin/env bash
# Set up everything and run the main job on the embedded default model (SmolLM2-135M-Instruct
# Q4_1, CPU): the balanced sentiment-classification dataset of
# examples/sentiment-classification.yaml, exported with its dataset card.
#
#   scripts/run.sh [JOB-RUN-OPTIONS...]
#
# Extra arguments go to `textnlp job run`, e.g. `scripts/run.sh --records 30`. The dataset
# and its card are written to $TEXTNLP_OUT (default out/sentiment-reviews). Run again, the
# same job is found: resumed if it was interrupted, re-exported if it is complete.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'run: %s\n' "$*" >&2; }
die() { printf 'run: error: %s\n' "$*" >&2; exit 1; }

SPEC=examples/sentiment-classification.yaml
OUT="${TEXTNLP_OUT:-out/sentiment-reviews}"

log "setting up (scripts/setup.sh)"
scripts/setup.sh || die "scripts/setup.sh failed"

log "building textnlp (cargo build --release)"
cargo build --release || die "cargo build --release failed"

log "textnlp job run $SPEC --out $OUT $*"
target/release/textnlp job run "$SPEC" --out "$OUT" "$@"
log "dataset card: $OUT/dataset-card.md"
