#!/usr/bin/env bash
# Serving benchmark: starts `textnlp serve`, waits for GET /readyz, runs the load generator
# (tests/examples/load_test.rs, like `vllm bench serve`) against it, then stops the server with
# SIGTERM and reports whether it exited within 10 s and with which code.
#
#   bench/serve.sh [--port N] [--server-model PATH] [--server-args "ARGS"] [--no-build]
#                  [--] [load_test options: --concurrency N --requests M --max-tokens T ...]
#
# Every argument serve.sh does not know is passed to load_test (its --url is set from --port;
# --model there is the request's "model" field, --server-model the GGUF the server loads).
# Builds first (cargo build --release for textnlp and the load_test example) unless --no-build.
# The server's output goes to bench/.work/serve-<UTC time>.log. TEXTNLP_BIN and LOAD_TEST_BIN
# override the two programs. Exit status: load_test's when it failed, else 3 when the server did
# not exit with status 0 within 10 s of SIGTERM, else 0.
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=8080
SERVER_MODEL=""
SERVER_ARGS=""
BUILD=1
PASS=()
TEXTNLP="${TEXTNLP_BIN:-$PWD/target/release/textnlp}"
LOAD_TEST="${LOAD_TEST_BIN:-$PWD/target/release/examples/load_test}"
READY_TIMEOUT=120
STOP_TIMEOUT=10

log() { printf 'serve.sh: %s\n' "$*" >&2; }
die() { printf 'serve.sh: error: %s\n' "$*" >&2; exit 1; }
usage() { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
  case "$1" in
    --port) [ $# -ge 2 ] || die "--port needs a number"; PORT="$2"; shift 2 ;;
    --port=*) PORT="${1#*=}"; shift ;;
    --server-model) [ $# -ge 2 ] || die "--server-model needs a path"; SERVER_MODEL="$2"; shift 2 ;;
    --server-model=*) SERVER_MODEL="${1#*=}"; shift ;;
    --server-args) [ $# -ge 2 ] || die "--server-args needs a string"; SERVER_ARGS="$2"; shift 2 ;;
    --server-args=*) SERVER_ARGS="${1#*=}"; shift ;;
    --no-build) BUILD=0; shift ;;
    --url|--url=*) die "--url is set by serve.sh (http://127.0.0.1:PORT); use --port" ;;
    -h|--help) usage; exit 0 ;;
    --) shift; PASS+=("$@"); break ;;
    *) PASS+=("$1"); shift ;;
  esac
done
[[ "$PORT" =~ ^[0-9]+$ ]] || die "--port must be a number, got '$PORT'"

if [ "$BUILD" = 1 ]; then
  # Two invocations: with --example, cargo would build only the example of the listed packages,
  # not the textnlp binary.
  log "building textnlp and load_test (release)"
  cargo build --release -p textnlp-host --bin textnlp
  cargo build --release -p textnlp-tests --example load_test
fi
[ -x "$TEXTNLP" ] || die "$TEXTNLP is missing (build it, or set TEXTNLP_BIN)"
[ -x "$LOAD_TEST" ] || die "$LOAD_TEST is missing (build it, or set LOAD_TEST_BIN)"

BASE="http://127.0.0.1:$PORT"
if curl -s -o /dev/null --max-time 2 "$BASE/readyz"; then
  die "something already answers on port $PORT; stop it or pick another --port"
fi

mkdir -p bench/.work
LOG="$PWD/bench/.work/serve-$(date -u +%Y%m%dT%H%M%SZ).log"
# The server's own state (tenants, keys) for this run, and its admin key (the operator
# tenant has no rate limits): the benchmark measures serving, not quotas.
STATE="$PWD/bench/.work/state-$$"
rm -rf "$STATE"
TEXTNLP_ADMIN_KEY=$("$TEXTNLP" key generate)
export TEXTNLP_ADMIN_KEY
SERVER_CMD=("$TEXTNLP" serve --addr "127.0.0.1:$PORT" --state-dir "$STATE")
[ -n "$SERVER_MODEL" ] && SERVER_CMD+=(--model "$SERVER_MODEL")
# shellcheck disable=SC2206  # --server-args is split on whitespace on purpose
[ -n "$SERVER_ARGS" ] && SERVER_CMD+=($SERVER_ARGS)
log "starting: ${SERVER_CMD[*]} (log: $LOG)"
"${SERVER_CMD[@]}" >"$LOG" 2>&1 &
SERVER_PID=$!

# 0 while the server process exists and is not a zombie (exited but not yet reaped).
server_alive() {
  local state
  state=$(sed 's/.*) //' "/proc/$SERVER_PID/stat" 2>/dev/null | cut -c1) || return 1
  [ -n "$state" ] && [ "$state" != Z ]
}

cleanup() {
  if [ -n "${LOAD_PID:-}" ] && kill -0 "$LOAD_PID" 2>/dev/null; then
    kill -TERM "$LOAD_PID" 2>/dev/null || true
  fi
  if [ -n "${SERVER_PID:-}" ] && server_alive; then
    log "stopping the server (pid $SERVER_PID)"
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    for _ in $(seq $((STOP_TIMEOUT * 10))); do server_alive || break; sleep 0.1; done
    server_alive && kill -KILL "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
  rm -rf "$STATE"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

t0=$EPOCHREALTIME
while :; do
  if ! server_alive; then
    rc=0; wait "$SERVER_PID" || rc=$?
    SERVER_PID=""
    log "the server exited with status $rc before it was ready; last lines of $LOG:"
    tail -n 20 "$LOG" >&2
    exit 1
  fi
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$BASE/readyz" || true)
  [ "$code" = 200 ] && break
  if awk -v a="$t0" -v b="$EPOCHREALTIME" -v t="$READY_TIMEOUT" 'BEGIN { exit !(b - a > t) }'; then
    log "the server was not ready within $READY_TIMEOUT s (last /readyz status: ${code:-none}); last lines of $LOG:"
    tail -n 20 "$LOG" >&2
    exit 1
  fi
  sleep 0.5
done
log "ready after $(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }') s"

LOAD_RC=0
# In the background so that a signal to this script is handled (see cleanup) while it runs.
"$LOAD_TEST" --url "$BASE" --api-key "$TEXTNLP_ADMIN_KEY" "${PASS[@]}" &
LOAD_PID=$!
wait "$LOAD_PID" || LOAD_RC=$?
LOAD_PID=""

log "sending SIGTERM to the server (pid $SERVER_PID)"
t0=$EPOCHREALTIME
kill -TERM "$SERVER_PID" 2>/dev/null || true
for _ in $(seq $((STOP_TIMEOUT * 10))); do server_alive || break; sleep 0.1; done
STOP_RC=0
if server_alive; then
  log "server: did NOT exit within $STOP_TIMEOUT s of SIGTERM; sending SIGKILL"
  kill -KILL "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
  STOP_RC=3
else
  SERVER_RC=0; wait "$SERVER_PID" || SERVER_RC=$?
  secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.2f", b - a }')
  if [ "$SERVER_RC" -gt 128 ]; then
    log "server: exited ${secs} s after SIGTERM, killed by signal $((SERVER_RC - 128)) (status $SERVER_RC)"
  else
    log "server: exited ${secs} s after SIGTERM with exit code $SERVER_RC"
  fi
  [ "$SERVER_RC" = 0 ] || STOP_RC=3
fi
SERVER_PID=""
log "server log: $LOG"
[ "$LOAD_RC" = 0 ] || exit "$LOAD_RC"
exit "$STOP_RC"
