#!/usr/bin/env bash
# Run all tests and checks, failing at the first one that fails:
#   set-up (plugins + default model + NVRTC), formatting, host tests, CUDA kernel compilation,
#   host clippy, CUDA clippy, plugin clippy.
# This is what CI runs (.ci/run), on a clean clone with 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."

CURRENT=""
step() { CURRENT="$1"; printf '\n==> test: %s\n' "$1" >&2; }
trap 'rc=$?; if [ $rc -ne 0 ]; then printf "\ntest: FAILED (exit %s) at step: %s\n" "$rc" "$CURRENT" >&2; fi' EXIT

command -v cargo >/dev/null 2>&1 || { [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"; }
command -v cargo >/dev/null 2>&1 || { echo "test: cargo not found on PATH" >&2; exit 1; }

step "set-up (scripts/setup.sh)"
scripts/setup.sh

# Cheap checks first, so a formatting slip fails in seconds, not after the test build.
step "formatting (cargo fmt --all -- --check)"
cargo fmt --all -- --check
step "formatting of the plugin workspace (cd plugins && cargo fmt --all -- --check)"
(cd plugins && cargo fmt --all -- --check)

step "tests (cargo test --release --workspace)"
cargo test --release --workspace

# No GPU needed: NVRTC from the PyPI wheel that setup.sh installed compiles every CUDA kernel
# for compute_80 and compute_90 and ptxas assembles each to sm_80/sm_90 machine code (a missing
# library fails the step instead of skipping it).
TEXTNLP_HOME="${TEXTNLP_HOME:-${XDG_DATA_HOME:-$HOME/.local/share}/textnlp}"
step "CUDA kernels compile (cargo test --release -p textnlp-kernels --features cuda --test nvrtc)"
LD_LIBRARY_PATH="$TEXTNLP_HOME/nvrtc/nvidia/cu13/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
  TEXTNLP_REQUIRE_NVRTC=1 TEXTNLP_PTXAS="$TEXTNLP_HOME/nvrtc/nvidia/cu13/bin/ptxas" \
  cargo test --release -p textnlp-kernels --features cuda --test nvrtc

step "lints (cargo clippy --release --workspace --all-targets -- -D warnings)"
cargo clippy --release --workspace --all-targets -- -D warnings

step "CUDA lints (cargo clippy --release -p textnlp-kernels -p textnlp-host --features textnlp-host/cuda --all-targets -- -D warnings)"
cargo clippy --release -p textnlp-kernels -p textnlp-host --features textnlp-host/cuda --all-targets -- -D warnings

# The CUDA build of the host without a GPU: the backend's unit tests, `--backend cuda` refused
# with the reason, the CUDA model's host-side logic (pages, step inputs, shape checks), and the
# GPU end-to-end tests skipping with their reason.
step "CUDA backend without a GPU (cargo test --release -p textnlp-host --features cuda --lib --test gpu --test cli -- backend gpu_ model::)"
cargo test --release -p textnlp-host --features cuda --lib --test gpu --test cli -- backend gpu_ model::

step "plugin lints (cd plugins && cargo clippy --release --target wasm32-wasip2 -- -D warnings)"
(cd plugins && cargo clippy --release --target wasm32-wasip2 -- -D warnings)

# The SDK's and the first-party plugins' pure logic also runs natively (the tokenizer
# plugin's is covered end to end by host/tests/tokenizer_plugin.rs).
step "plugin unit tests (cd plugins && cargo test --release, the SDK, the metrics crate and each plugin)"
(cd plugins && cargo test --release --features textnlp-plugin-sdk/http \
  -p textnlp-plugin-sdk -p textnlp-metrics -p validator-length -p validator-bleu \
  -p validator-rouge -p validator-diversity -p validator-dedup -p validator-pii \
  -p validator-quality -p validator-perplexity -p validator-label -p strategy-template \
  -p strategy-few-shot -p strategy-label-conditioned -p strategy-self-instruct \
  -p strategy-evol-instruct -p strategy-magpie -p provider-openai)

CURRENT=""
printf '\ntest: all steps passed\n' >&2
