#!/usr/bin/env bash
# Side-by-side CPU benchmark: llama.cpp vs textnlp on the same GGUF, same machine, same threads.
#
#   bench/run.sh [--model PATH] [--threads N] [--skip-llama] [--skip-textnlp] [--wait-quiet]
#                [--llama-args "ARGS"] [--build-only]
#
# llama.cpp is built (once, cached in bench/.work/) from the llama.cpp tree vendored in the PyPI
# sdist llama-cpp-python==0.3.36 (llama.cpp commit 0c1e57098). Only llama-bench and
# llama-batched-bench are built: Release, CPU only, GGML_NATIVE=ON, no HTTPS/CURL, static.
# --wait-quiet waits, before each benchmark program, until the machine is idle (up to 30 min).
# --llama-args adds options to both llama.cpp tools, e.g. --llama-args "-fa off".
# See bench/README.md for what is measured and the caveats.
set -euo pipefail
cd "$(dirname "$0")/.."

TEXTNLP_HOME="${TEXTNLP_HOME:-${XDG_DATA_HOME:-$HOME/.local/share}/textnlp}"
MODEL="$TEXTNLP_HOME/models/SmolLM2-135M-Instruct.Q4_1.gguf"
THREADS=2
SKIP_LLAMA=0
SKIP_TEXTNLP=0
BUILD_ONLY=0
WAIT_QUIET=0
LLAMA_ARGS=""

LLAMA_CPP_PY="llama-cpp-python==0.3.36"
LLAMA_CPP_COMMIT="0c1e57098"
WORK="$PWD/bench/.work"
SRC="$WORK/llama.cpp"
BUILD="$WORK/llama-build"
BIN="$BUILD/bin"
TEXTNLP="$PWD/target/release/textnlp"

# What llama-batched-bench runs: -npp 128 -ntg 128 -npl 1,4,16,64 (prompt not shared).
NPP=128
NTG=128
NPL=1,4,16,64

log() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --model) [ $# -ge 2 ] || die "--model needs a path"; MODEL="$2"; shift 2 ;;
    --model=*) MODEL="${1#*=}"; shift ;;
    --threads) [ $# -ge 2 ] || die "--threads needs a number"; THREADS="$2"; shift 2 ;;
    --threads=*) THREADS="${1#*=}"; shift ;;
    --skip-llama) SKIP_LLAMA=1; shift ;;
    --skip-textnlp) SKIP_TEXTNLP=1; shift ;;
    --build-only) BUILD_ONLY=1; shift ;;   # just build llama.cpp's two tools
    --wait-quiet) WAIT_QUIET=1; shift ;;
    --llama-args) [ $# -ge 2 ] || die "--llama-args needs a string"; LLAMA_ARGS="$2"; shift 2 ;;
    --llama-args=*) LLAMA_ARGS="${1#*=}"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

mkdir -p "$WORK"

# --- a cmake >= 3.14: the system's if it has one, else the PyPI `cmake` wheel in a scratch venv ---
find_cmake() {
  if command -v cmake >/dev/null 2>&1 \
     && cmake --version | head -1 | awk '{split($3,v,"."); exit !(v[1]>3 || (v[1]==3 && v[2]>=14))}'; then
    command -v cmake
    return
  fi
  if [ ! -x "$WORK/venv/bin/cmake" ]; then
    log "no cmake >= 3.14 on PATH; installing the PyPI cmake wheel into $WORK/venv"
    python3 -m venv "$WORK/venv"
    "$WORK/venv/bin/python" -m pip install --quiet --disable-pip-version-check cmake
  fi
  echo "$WORK/venv/bin/cmake"
}

# --- llama.cpp source from the llama-cpp-python sdist ---
fetch_llama_src() {
  if [ -f "$SRC/CMakeLists.txt" ] && [ -f "$SRC/.commit" ]; then return; fi
  local dl="$WORK/dl"
  mkdir -p "$dl"
  if ! ls "$dl"/llama_cpp_python-*.tar.gz >/dev/null 2>&1; then
    log "downloading the $LLAMA_CPP_PY sdist"
    # --no-binary names only this package: with ':all:' pip would also build the sdist's build
    # requirements (cmake itself, from source) just to read its metadata.
    python3 -m pip download --quiet --disable-pip-version-check --no-deps \
      --no-binary llama-cpp-python "$LLAMA_CPP_PY" -d "$dl"
  fi
  local sdist
  sdist="$(ls "$dl"/llama_cpp_python-*.tar.gz 2>/dev/null | head -1 || true)"
  [ -n "$sdist" ] || die "pip did not produce an sdist tar.gz in $dl (got: $(ls "$dl"))"
  local top="${sdist##*/}"; top="${top%.tar.gz}"
  local tmp="$WORK/extract.tmp"
  rm -rf "$tmp" && mkdir -p "$tmp"
  tar xzf "$sdist" -C "$tmp" "$top/vendor/llama.cpp" "$top/.git/modules/vendor/llama.cpp/HEAD" \
    || die "$sdist has no vendor/llama.cpp"
  local commit
  commit="$(cat "$tmp/$top/.git/modules/vendor/llama.cpp/HEAD")"
  case "$commit" in
    "$LLAMA_CPP_COMMIT"*) ;;
    *) die "vendored llama.cpp is at $commit, expected $LLAMA_CPP_COMMIT" ;;
  esac
  rm -rf "$SRC"
  mv "$tmp/$top/vendor/llama.cpp" "$SRC"
  echo "$commit" >"$SRC/.commit"
  rm -rf "$tmp"
}

build_llama() {
  if [ -x "$BIN/llama-bench" ] && [ -x "$BIN/llama-batched-bench" ]; then
    log "llama.cpp already built ($BIN)"
    return
  fi
  fetch_llama_src
  local cmake
  cmake="$(find_cmake)"
  log "configuring llama.cpp $(cat "$SRC/.commit") with $cmake"
  nice -n 10 "$cmake" -S "$SRC" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=ON -DGGML_CPU=ON -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF \
    -DGGML_BACKEND_DL=OFF -DBUILD_SHARED_LIBS=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF \
    -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_TOOLS=ON >"$WORK/cmake-configure.log" 2>&1 \
    || { tail -30 "$WORK/cmake-configure.log" >&2; die "cmake configure failed (log: $WORK/cmake-configure.log)"; }
  log "building llama-bench and llama-batched-bench (-j2, niced; several minutes on 2 cores)"
  nice -n 10 "$cmake" --build "$BUILD" --config Release -j 2 \
    --target llama-bench llama-batched-bench >"$WORK/cmake-build.log" 2>&1 \
    || { tail -30 "$WORK/cmake-build.log" >&2; die "llama.cpp build failed (log: $WORK/cmake-build.log)"; }
}

# measured OUT_PREFIX COMMAND...: run COMMAND (after a quiet window with --wait-quiet) with its
# stdout in OUT_PREFIX, stderr in OUT_PREFIX.log, and CPU interference stats in OUT_PREFIX.stats.
measured() {
  local out="$1"; shift
  if [ "$WAIT_QUIET" = 1 ]; then python3 bench/quiet.py wait || true; fi
  python3 bench/quiet.py run --stdout "$out" --stderr "$out.log" --stats "$out.stats" -- "$@"
}

run_llama() {
  local out="$1"
  local extra=()
  read -r -a extra <<<"$LLAMA_ARGS"
  log "llama-bench -p 512 -n 128 -t $THREADS ${extra[*]}"
  measured "$out.llama-bench.json" "$BIN/llama-bench" -m "$MODEL" -p 512 -n 128 -t "$THREADS" "${extra[@]}" -o json \
    || { tail -20 "$out.llama-bench.json.log" >&2; die "llama-bench failed"; }
  local maxpl ctx
  maxpl="$(tr ',' '\n' <<<"$NPL" | sort -n | tail -1)"
  ctx=$((maxpl * (NPP + NTG)))
  log "llama-batched-bench -c $ctx -b 2048 -ub 512 -npp $NPP -ntg $NTG -npl $NPL -t $THREADS ${extra[*]}"
  measured "$out.batched-bench.jsonl" "$BIN/llama-batched-bench" -m "$MODEL" -c "$ctx" -b 2048 -ub 512 \
    -npp "$NPP" -ntg "$NTG" -npl "$NPL" -t "$THREADS" "${extra[@]}" --output-format jsonl \
    || { tail -20 "$out.batched-bench.jsonl.log" >&2; die "llama-batched-bench failed"; }
}

if [ "$BUILD_ONLY" = 1 ]; then build_llama; echo "$BIN"; exit 0; fi

[ -f "$MODEL" ] || die "model not found: $MODEL (run scripts/setup.sh, or pass --model PATH)"
MODEL="$(cd "$(dirname "$MODEL")" && pwd)/$(basename "$MODEL")"

STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
LAST="$WORK/llama-last"          # prefix of the last llama.cpp raw outputs (for --skip-llama)
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"

if [ "$SKIP_LLAMA" = 1 ]; then
  [ -f "$LAST.llama-bench.json" ] && [ -f "$LAST.batched-bench.jsonl" ] \
    || die "--skip-llama: no earlier llama.cpp results in $WORK"
  log "reusing llama.cpp results from $(cat "$LAST.meta" 2>/dev/null || echo 'an earlier run')"
else
  build_llama
  run_llama "$WORK/llama-run-$STAMP"
  for f in llama-bench.json llama-bench.json.log llama-bench.json.stats \
           batched-bench.jsonl batched-bench.jsonl.log batched-bench.jsonl.stats; do
    cp "$WORK/llama-run-$STAMP.$f" "$LAST.$f"
  done
  echo "$STAMP (model $MODEL, threads $THREADS, extra args '$LLAMA_ARGS', load $LOAD_BEFORE)" >"$LAST.meta"
fi

TEXTNLP_OUT="$WORK/textnlp-$STAMP.jsonl"
TEXTNLP_STATUS="ok"
if [ "$SKIP_TEXTNLP" = 1 ]; then
  TEXTNLP_STATUS="skipped (--skip-textnlp)"
elif [ ! -x "$TEXTNLP" ]; then
  TEXTNLP_STATUS="not built: $TEXTNLP is missing (cargo build --release)"
else
  log "textnlp bench --model $MODEL (RAYON_NUM_THREADS=$THREADS)"
  if ! RAYON_NUM_THREADS="$THREADS" measured "$TEXTNLP_OUT" "$TEXTNLP" bench --model "$MODEL"; then
    tail -20 "$TEXTNLP_OUT.log" >&2
    TEXTNLP_STATUS="failed: textnlp bench exited non-zero (log: $TEXTNLP_OUT.log)"
  fi
fi
[ -f "$TEXTNLP_OUT" ] || : >"$TEXTNLP_OUT"

python3 bench/compare.py \
  --llama-bench "$LAST.llama-bench.json" \
  --batched-bench "$LAST.batched-bench.jsonl" \
  --textnlp "$TEXTNLP_OUT" \
  --textnlp-status "$TEXTNLP_STATUS" \
  --stats "$LAST.llama-bench.json.stats" "$LAST.batched-bench.jsonl.stats" "$TEXTNLP_OUT.stats" \
  --model "$MODEL" --threads "$THREADS" \
  --llama-commit "$(cat "$SRC/.commit" 2>/dev/null || echo "$LLAMA_CPP_COMMIT")" \
  --llama-meta "$(cat "$LAST.meta" 2>/dev/null || true)" \
  --load "$LOAD_BEFORE" \
  --out "$WORK/results-$STAMP.json"
