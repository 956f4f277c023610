#!/usr/bin/env bash
# Interop with the Python `websockets` client: text and binary round trips up to 1 MiB,
# ping/pong, subprotocol negotiation, a clean close seen on both sides, and a refused origin;
# then permessage-deflate (RFC 7692), which websockets offers by default: negotiation (declined
# with compression off), compressed round trips up to 3 MiB, fragments with a Ping between
# them, context takeover on and off, `server_max_window_bits=8` inflated by C zlib with an 8-bit
# window, a client that offers nothing, and corrupt data, RSV1 misuse and a deflate bomb
# (1007, 1002, 1009).
#
#     scripts/python-interop.sh
#
# Installs `websockets` into target/venv, builds the echo example (or takes ECHO_BIN), starts it
# three times on free ports (compression off; --compression; --compression
# --server-no-context-takeover with a 1 MiB message limit), runs scripts/python_interop.py
# against them, and stops them. Ends with `N passed, M failed`; exits non-zero on failure.
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

WEBSOCKETS_VERSION=17.4

ensure_venv "websockets==$WEBSOCKETS_VERSION"
echo_bin
start_echo python-interop --protocol chat --allowed-origin https://somewhere.else
PLAIN_URL=ws://127.0.0.1:$ECHO_PORT/ws
PLAIN_LOG=$ECHO_LOG
start_echo python-interop-deflate --compression
DEFLATE_URL=ws://127.0.0.1:$ECHO_PORT/ws
DEFLATE_LOG=$ECHO_LOG
# The 1 MiB limit is for the deflate bomb (64 MiB of zeros).
start_echo python-interop-no-takeover --compression --server-no-context-takeover --max-message-size 1048576
NO_TAKEOVER_URL=ws://127.0.0.1:$ECHO_PORT/ws
NO_TAKEOVER_LOG=$ECHO_LOG

status=0
"$VENV/bin/python" "$ROOT/scripts/python_interop.py" \
    --url "$PLAIN_URL" --server-log "$PLAIN_LOG" \
    --deflate-url "$DEFLATE_URL" --deflate-log "$DEFLATE_LOG" \
    --no-takeover-url "$NO_TAKEOVER_URL" --no-takeover-log "$NO_TAKEOVER_LOG" || status=$?
if ((status != 0)); then
    for log in "$PLAIN_LOG" "$DEFLATE_LOG" "$NO_TAKEOVER_LOG"; do
        say "$(basename "$log"):"
        cat "$log" >&2
    done
fi
exit "$status"
