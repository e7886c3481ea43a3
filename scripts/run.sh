#!/usr/bin/env bash
# Set up everything and run the main job: generate text with the embedded default model
# (SmolLM2-135M-Instruct Q4_1) on CPU.
#
#   scripts/run.sh [GENERATE-OPTIONS...]
#
# Extra arguments are passed to `textnlp generate` before the prompt, e.g.
#   scripts/run.sh --json --seed 7 --temperature 0.7
# Set TEXTNLP_PROMPT to use a different prompt.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf 'run: %s\n' "$*" >&2; }
die() { printf 'run: error: %s\n' "$*" >&2; exit 1; }

PROMPT="${TEXTNLP_PROMPT:-Write three short, realistic customer-support questions that a customer of an online bookshop might send. Number them 1 to 3.}"

log "setting up (scripts/setup.sh)"
scripts/setup.sh || die "scripts/setup.sh failed"

log "building textnlp (cargo build --release)"
cargo build --release || die "cargo build --release failed"

# Our --max-tokens default, unless the caller gave one (clap rejects a repeated option).
ARGS=()
case " $* " in
  *" --max-tokens "*|*" --max-tokens="*) ;;
  *) ARGS+=(--max-tokens 128) ;;
esac

ARGS+=("$@")
log "textnlp generate ${ARGS[*]} \"$PROMPT\""
exec target/release/textnlp generate "${ARGS[@]}" "$PROMPT"
