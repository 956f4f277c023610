#!/usr/bin/env bash
# Interop with the Python `websockets` client: text and binary round trips up to 1 MiB,
# ping/pong, subprotocol negotiation, a clean close seen on both sides, and a refused origin.
#
#     scripts/python-interop.sh
#
# Installs `websockets` into target/venv, builds the echo example (or takes ECHO_BIN), starts it
# on a free port, runs scripts/python_interop.py against it, and stops it. Ends with
# `N passed, M failed`; exits non-zero on failure.
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

WEBSOCKETS_VERSION=17.4

ensure_venv "websockets==$WEBSOCKETS_VERSION"
echo_bin
start_echo python-interop --protocol chat --allowed-origin https://somewhere.else

status=0
"$VENV/bin/python" "$ROOT/scripts/python_interop.py" \
    --url "ws://127.0.0.1:$ECHO_PORT/ws" --server-log "$ECHO_LOG" || status=$?
if ((status != 0)); then
    say "echo server log:"
    cat "$ECHO_LOG" >&2
fi
exit "$status"
