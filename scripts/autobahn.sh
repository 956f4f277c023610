#!/usr/bin/env bash
# The Autobahn TestSuite's 517 cases, run by kosoku (PyPI), against the echo example.
#
#     scripts/autobahn.sh [KOSOKU_ARGS...]     # e.g. scripts/autobahn.sh -i '5.*'
#
# Installs kosoku into target/venv, builds the echo example in release (or takes ECHO_BIN),
# starts it on a free port, runs `kosoku -p 2 -o target/autobahn ws://127.0.0.1:PORT/ws`, and
# summarises target/autobahn/index.json (the HTML report is target/autobahn/index.html).
#
# The echo server runs with --compression, so that sections 12 and 13 (permessage-deflate)
# are played too. Pass bar: all 517 cases have behavior OK, NON-STRICT or INFORMATIONAL and
# behaviorClose OK or INFORMATIONAL, and with no KOSOKU_ARGS (the whole suite) all 517 cases must
# have run. kosoku exits 0 (all OK) or 1 (some case not strictly OK: index.json is judged); any
# other status (124: the timeout stopped it) means it did not finish, and fails the run. Ends with
# `N passed, M failed`; exits non-zero on failure.
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

KOSOKU_VERSION=0.1.0
# The cases of the whole suite, sections 1-7, 9, 10, 12 and 13.
ALL_CASES=517
OUT=${AUTOBAHN_OUT:-$TARGET_DIR/autobahn}
PARALLELISM=${AUTOBAHN_PARALLELISM:-2}
# How long kosoku may take (seconds); the whole suite takes about 5 minutes on two cores.
TIMEOUT=${AUTOBAHN_TIMEOUT:-1800}

ensure_venv "kosoku==$KOSOKU_VERSION"
echo_bin
# The defaults (64 MiB messages, 16 MiB frames) fit Autobahn's largest cases (9.x, 16 MiB).
start_echo autobahn --compression

rm -rf "$OUT"
mkdir -p "$OUT"
say "running kosoku $KOSOKU_VERSION (-p $PARALLELISM) into $OUT"
started=$(date +%s)
# kosoku exits 1 when any case is not OK (NON-STRICT and INFORMATIONAL included): judge index.json.
kosoku_status=0
timeout "$TIMEOUT" "$VENV/bin/kosoku" -p "$PARALLELISM" -o "$OUT" "$@" "ws://127.0.0.1:$ECHO_PORT/ws" \
    >"$OUT/kosoku.log" 2>&1 || kosoku_status=$?
say "kosoku finished in $(($(date +%s) - started)) s (exit status $kosoku_status)"
cp "$ECHO_LOG" "$OUT/echo-server.log"
if ((kosoku_status > 1)); then
    tail -n 40 "$OUT/kosoku.log" >&2
    echo "0 passed, 1 failed (kosoku did not finish: exit status $kosoku_status)"
    exit 1
fi

if [[ ! -s $OUT/index.json ]]; then
    tail -n 40 "$OUT/kosoku.log" >&2
    echo "0 passed, 1 failed (kosoku wrote no index.json)"
    exit 1
fi
if ! kill -0 "$ECHO_PID" 2>/dev/null; then
    tail -n 40 "$ECHO_LOG" >&2
    die "the echo server died during the run"
fi
expect=()
(($# > 0)) || expect=(--expect "$ALL_CASES")
"$VENV/bin/python" "$ROOT/scripts/autobahn_summary.py" "${expect[@]}" "$OUT/index.json"
