# shellcheck shell=bash
# Shared by the scripts that test the echo example against real clients. Source it:
#
#     . "$(dirname "$0")/lib.sh"
#
# - `ECHO_BIN`: the echo binary to test. Unset, `echo_bin` builds it with
#   `cargo build --release --example echo` and uses `target/release/examples/echo`.
# - `start_echo NAME [FLAGS...]` starts it on a free port (`--bind 127.0.0.1:0`), waits for its
#   `listening on http://127.0.0.1:PORT` line (`https://` with `--tls`), and sets `ECHO_PORT`,
#   `ECHO_SCHEME` (http or https), `ECHO_PID` and `ECHO_LOG` (the server's log,
#   `$WORK_DIR/NAME.log`). Every server started is stopped when the script exits.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
VENV=${VENV:-$TARGET_DIR/venv}

ECHO_PIDS=()

say() { printf '==> %s\n' "$*" >&2; }
die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# A scratch directory for this run, removed at exit unless KEEP_WORK_DIR is set.
WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/tower-websockets.XXXXXX")

stop_echo_servers() {
    local pid
    for pid in "${ECHO_PIDS[@]+"${ECHO_PIDS[@]}"}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    ECHO_PIDS=()
}

cleanup() {
    local status=$?
    stop_echo_servers
    if [[ -n ${KEEP_WORK_DIR:-} ]]; then
        say "kept $WORK_DIR"
    else
        rm -rf "$WORK_DIR"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Sets ECHO_BIN, building the example when it is not given.
echo_bin() {
    if [[ -n ${ECHO_BIN:-} ]]; then
        [[ -f $ECHO_BIN && -x $ECHO_BIN ]] || die "ECHO_BIN=$ECHO_BIN is not an executable file"
        ECHO_BIN=$(cd "$(dirname "$ECHO_BIN")" && pwd)/$(basename "$ECHO_BIN")
        return
    fi
    say "building the echo example (release)"
    (cd "$ROOT" && cargo build --release --example echo) >&2
    ECHO_BIN=$TARGET_DIR/release/examples/echo
}

start_echo() {
    local name=$1
    shift
    ECHO_LOG=$WORK_DIR/$name.log
    # Created here, not by the background job's redirection: the job may not have opened it yet
    # when the loop below first reads it (a flake under load: "sed: can't read ...log").
    : >"$ECHO_LOG"
    RUST_LOG=${ECHO_RUST_LOG:-info} "$ECHO_BIN" --bind 127.0.0.1:0 "$@" >>"$ECHO_LOG" 2>&1 &
    ECHO_PID=$!
    ECHO_PIDS+=("$ECHO_PID")
    ECHO_PORT=
    ECHO_SCHEME=
    local _ listening
    for _ in $(seq 200); do
        listening=$(sed -n 's|.*listening on \(https\{0,1\}\)://127\.0\.0\.1:\([0-9]*\).*|\1 \2|p' "$ECHO_LOG" | head -n 1)
        if [[ -n $listening ]]; then
            ECHO_SCHEME=${listening% *}
            ECHO_PORT=${listening#* }
            break
        fi
        if ! kill -0 "$ECHO_PID" 2>/dev/null; then
            cat "$ECHO_LOG" >&2
            die "the echo server ($name) exited before listening"
        fi
        sleep 0.05
    done
    [[ -n $ECHO_PORT ]] || die "the echo server ($name) did not print its address within 10 s"
    say "echo server ($name, pid $ECHO_PID) on $ECHO_SCHEME://127.0.0.1:$ECHO_PORT${*:+ with $*}"
}

# The Python venv under target/, with the given PyPI packages (pinned as `name==version`).
ensure_venv() {
    # A venv is not relocatable: one copied or moved with target/ keeps scripts that start with
    # the old path (`#!/old/target/venv/bin/python`), and they fail with "No such file". Make it
    # again.
    if [[ -x $VENV/bin/python && $(head -n 1 "$VENV/bin/pip" 2>/dev/null) != "#!$VENV/bin/python"* ]]; then
        say "the venv in $VENV was made elsewhere (copied or moved): making it again"
        rm -rf "$VENV"
    fi
    if [[ ! -x $VENV/bin/python ]]; then
        say "creating the Python venv in $VENV"
        python3 -m venv "$VENV" ||
            die "cannot create a venv: on Debian, install python3-venv (apt-get install python3-venv)"
    fi
    local missing=()
    local requirement
    for requirement in "$@"; do
        local name=${requirement%%==*}
        local wanted=${requirement#*==}
        local have
        have=$("$VENV/bin/python" -c "import importlib.metadata as m; print(m.version('$name'))" 2>/dev/null || true)
        [[ $have == "$wanted" ]] || missing+=("$requirement")
    done
    if ((${#missing[@]})); then
        say "installing ${missing[*]} into $VENV"
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "${missing[@]}"
    fi
}
