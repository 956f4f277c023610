#!/usr/bin/env bash
# Memory after load (issue 19): starts the echo example with --compression and runs
# scripts/soak.py against it: 150 clients churn for 4 minutes (half of them compressed, echoes of
# 1 B to 64 KiB), then leave, and the server's RSS and open descriptors are sampled for 30 s more.
#
#     scripts/soak.sh [soak.py options...]      # e.g. --clients 50 --seconds 60 --trim
#
# --trim (needs gdb) ends with the server's allocator asked to give its free memory back.
# SOAK_ECHO_FLAGS adds flags for the echo example, e.g. "--server-no-context-takeover" (every
# compressed message then borrows a compressor from the crate's pool).
# ECHO_BIN as for the other suites (scripts/lib.sh). SOAK_ENV adds environment variables for
# the server, e.g. SOAK_ENV="MALLOC_ARENA_MAX=1" to see what glibc's per-thread arenas keep.
# Prints one JSON line per sample and a summary line; docs/benchmarks.md has the findings.
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

ensure_venv "websockets==17.4"
echo_bin
if [[ -n ${SOAK_ENV:-} ]]; then
    # shellcheck disable=SC2086 # SOAK_ENV is a list of NAME=VALUE words
    export ${SOAK_ENV?}
fi
# shellcheck disable=SC2086 # SOAK_ECHO_FLAGS is a list of flags
ECHO_RUST_LOG=warn,echo=info start_echo soak --compression ${SOAK_ECHO_FLAGS:-}
"$VENV/bin/python" "$ROOT/scripts/soak.py" --url "ws://127.0.0.1:$ECHO_PORT/ws" --pid "$ECHO_PID" "$@"
