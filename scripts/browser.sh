#!/usr/bin/env bash
# The echo page in a real browser: headless Chromium, driven with playwright-core, through the
# page's own controls (connect, send text, non-ASCII and 10 KB messages, close with 1000), a
# server that refuses the page's origin (the page shows the failure; the server answered 403), and
# the same page over HTTPS (`echo --tls`: self-signed certificate, ALPN h2) in a Chromium with
# --ignore-certificate-errors, whose WebSocket must go over HTTP/2 (RFC 8441 extended CONNECT, as
# the server's log line for the socket shows). These servers have compression off: the page must
# show `Extensions: none`. Then the page against `echo --compression`, over HTTP/1.1 and over
# HTTP/2 (`--tls`): Chromium negotiates permessage-deflate (the page shows it, the server logs
# compression=true), and 1 MiB of JSON echoes with a fraction of that on the wire each way.
# The page's live panel (opened on the plain server before Connect) must show the page's
# messages and its Close with 1000 in the server's counts, and its chart must rise.
#
#     scripts/browser.sh [--update-screenshot]
#
# Installs Chromium (Debian packages chromium, chromium-driver) when missing and playwright-core
# (npm ci in scripts/browser), builds the echo example (or takes ECHO_BIN), starts five echo
# servers on free ports, runs scripts/browser/echo-page.test.mjs, and stops them. A screenshot of
# the finished page goes to target/browser/echo-page.png, or with --update-screenshot to
# docs/echo-page.png.
#
# Then the chat page across two instances (issue 13): installs redis-server (Debian package) when
# missing, starts it on a free port, builds the chat example with the `axum`, `json` and
# `redis` features (or takes CHAT_BIN), starts two instances with --redis, and runs scripts/browser/chat-page.test.mjs: two
# pages, one per instance, see each other present and each other's messages once. Its screenshot
# goes to target/browser/chat-page.png (docs/chat-page.png with --update-screenshot). Ends with `N passed, M failed` for each page's tests;
# exits non-zero on failure.
# shellcheck source=scripts/lib.sh
. "$(dirname "$0")/lib.sh"

SCREENSHOT=$TARGET_DIR/browser/echo-page.png
CHAT_SCREENSHOT=$TARGET_DIR/browser/chat-page.png
case ${1:-} in
    "") ;;
    --update-screenshot)
        SCREENSHOT=$ROOT/docs/echo-page.png
        CHAT_SCREENSHOT=$ROOT/docs/chat-page.png
        ;;
    -h | --help)
        sed -n '2,27s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    *) die "unknown option \`$1\` (see --help)" ;;
esac

apt_install() {
    say "installing $* (apt-get)"
    local sudo=()
    ((EUID == 0)) || sudo=(sudo)
    # Wait for another apt-get (one may be running in the background) rather than fail.
    "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=900 update -qq >&2
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=900 install -y -qq \
        --no-install-recommends "$@" >&2
}

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [[ ! -x $CHROMIUM ]]; then
    apt_install chromium chromium-driver
    [[ -x $CHROMIUM ]] || die "no Chromium at $CHROMIUM after installing"
fi
# The screenshot in docs/ shows the 👋 of the non-ASCII test message.
if [[ $SCREENSHOT == "$ROOT/docs/echo-page.png" ]] && ! fc-list 2>/dev/null | grep -qi 'Noto Color Emoji'; then
    apt_install fonts-noto-color-emoji
fi

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
    die "node and npm are needed (Node.js 20 or later)"
fi
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' ||
    die "playwright-core needs Node.js 20 or later; this is $(node --version)"

BROWSER_DIR=$ROOT/scripts/browser
if [[ ! -d $BROWSER_DIR/node_modules/playwright-core ]] ||
    [[ $BROWSER_DIR/package-lock.json -nt $BROWSER_DIR/node_modules/.package-lock.json ]]; then
    say "installing playwright-core (npm ci)"
    (cd "$BROWSER_DIR" && npm ci --no-audit --no-fund --loglevel=error) >&2
fi

echo_bin
start_echo browser
ECHO_URL=http://127.0.0.1:$ECHO_PORT
PLAIN_LOG=$ECHO_LOG
# Debug logs from the layer show each refused origin.
ECHO_RUST_LOG=info,tower_websockets=debug start_echo browser-refusing --allowed-origin https://somewhere.else
REFUSING_URL=http://127.0.0.1:$ECHO_PORT
REFUSING_LOG=$ECHO_LOG
# A server that wants a token (--token): debug logs from the layer and the example, which the
# test reads for the refusals and checks for the token, which must never be logged.
TOKEN=browser-$RANDOM$RANDOM-secret
ECHO_RUST_LOG=debug,hyper=info,h2=info start_echo browser-token --token "$TOKEN"
TOKEN_URL=http://127.0.0.1:$ECHO_PORT
TOKEN_LOG=$ECHO_LOG
# Debug logs from the example show each TLS handshake's ALPN protocol.
ECHO_RUST_LOG=info,echo=debug start_echo browser-tls --tls
[[ $ECHO_SCHEME == https ]] || die "the echo server with --tls did not listen on https://"
TLS_URL=https://127.0.0.1:$ECHO_PORT
TLS_LOG=$ECHO_LOG
start_echo browser-deflate --compression
DEFLATE_URL=http://127.0.0.1:$ECHO_PORT
DEFLATE_LOG=$ECHO_LOG
start_echo browser-deflate-tls --compression --tls
[[ $ECHO_SCHEME == https ]] || die "the echo server with --tls did not listen on https://"
DEFLATE_TLS_URL=https://127.0.0.1:$ECHO_PORT
DEFLATE_TLS_LOG=$ECHO_LOG

# The chat: two instances on one Redis.
if ! command -v redis-server >/dev/null; then
    apt_install redis-server
fi
if [[ -n ${CHAT_BIN:-} ]]; then
    [[ -x $CHAT_BIN ]] || die "CHAT_BIN=$CHAT_BIN is not an executable file"
else
    say "building the chat example with the axum, json and redis features (release)"
    (cd "$ROOT" && cargo build --release --features axum,json,redis --example chat) >&2
    CHAT_BIN=$TARGET_DIR/release/examples/chat
fi
REDIS_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --bind 127.0.0.1 --port "$REDIS_PORT" --save "" --appendonly no >"$WORK_DIR/browser-redis.log" 2>&1 &
ECHO_PIDS+=("$!")
for _ in $(seq 200); do
    (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null && break
    sleep 0.05
done
(exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null || die "redis-server did not listen on port $REDIS_PORT"
say "redis-server on 127.0.0.1:$REDIS_PORT"
ECHO_BIN=$CHAT_BIN start_echo browser-chat-east --redis "redis://127.0.0.1:$REDIS_PORT"
CHAT_EAST_URL=http://127.0.0.1:$ECHO_PORT
ECHO_BIN=$CHAT_BIN start_echo browser-chat-west --redis "redis://127.0.0.1:$REDIS_PORT"
CHAT_WEST_URL=http://127.0.0.1:$ECHO_PORT

status=0
ECHO_URL=$ECHO_URL ECHO_LOG=$PLAIN_LOG REFUSING_URL=$REFUSING_URL REFUSING_LOG=$REFUSING_LOG \
    TLS_URL=$TLS_URL TLS_LOG=$TLS_LOG DEFLATE_URL=$DEFLATE_URL DEFLATE_LOG=$DEFLATE_LOG \
    DEFLATE_TLS_URL=$DEFLATE_TLS_URL DEFLATE_TLS_LOG=$DEFLATE_TLS_LOG \
    TOKEN=$TOKEN TOKEN_URL=$TOKEN_URL TOKEN_LOG=$TOKEN_LOG \
    SCREENSHOT=$SCREENSHOT CHROMIUM=$CHROMIUM node "$BROWSER_DIR/echo-page.test.mjs" || status=$?
CHAT_EAST_URL=$CHAT_EAST_URL CHAT_WEST_URL=$CHAT_WEST_URL CHAT_SCREENSHOT=$CHAT_SCREENSHOT \
    CHROMIUM=$CHROMIUM node "$BROWSER_DIR/chat-page.test.mjs" || status=$?
if ((status != 0)); then
    for log in "$WORK_DIR"/browser*.log; do
        say "$(basename "$log"):"
        cat "$log" >&2
    done
else
    say "screenshot: $SCREENSHOT"
fi
exit "$status"
