#!/usr/bin/env bash
# Builds uWebSockets' EchoServer example, its load_test and broadcast_test, and our fan-out server
# on its App (benches/uws/PubSubServer.cpp) for scripts/bench.sh, from the C/C++ sources vendored
# in the crates.io package libuwebsockets-sys 0.0.10. Nothing of uWebSockets is committed: the
# package comes through cargo (a scratch crate in target/uws/fetch and `cargo fetch`).
#
#     scripts/uws-build.sh [--force]    # builds what is missing or stale; prints the bin directory
#
# Into target/uws/bin, with gcc/g++ -O3 -flto -DLIBUS_NO_SSL (no -march=native, like our release
# builds; UWS_EXTRA_FLAGS adds flags): uws-echo-server (a copy of examples/EchoServer.cpp patched
# to listen on 127.0.0.1 at $UWS_PORT, 0 for any free port, and print that port first, as
# bench-server does; -DUWS_NO_ZLIB), uws-pubsub-server (the same way), and uws-load-test and
# uws-broadcast-test (benchmarks/*.c, unchanged). uSockets is compiled once, as C, and linked
# into all four. The build is redone when the flags, the compiler or these sources change.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
UWS_DIR=${CARGO_TARGET_DIR:-$ROOT/target}/uws
PACKAGE=libuwebsockets-sys VERSION=0.0.10
die() { printf 'uws-build.sh: %s\n' "$*" >&2 && exit 1; }
say() { printf '==> %s\n' "$*" >&2; }
FORCE=
case ${1:-} in
--force) FORCE=1 ;;
"") ;;
*) sed -n '2,/^set/s/^# \{0,1\}//p' "$0" | sed '$d' >&2 && exit 2 ;;
esac
for tool in gcc g++ cargo; do command -v "$tool" >/dev/null || die "$tool is needed and was not found"; done

# The unpacked package in cargo's registry, fetched first if need be.
find_package() {
    local dir
    for dir in "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/"$PACKAGE-$VERSION/uWebSockets"; do
        [[ -f $dir/examples/EchoServer.cpp ]] && printf '%s\n' "$dir" && return 0
    done
    return 1
}
if ! SRC=$(find_package); then
    say "fetching $PACKAGE $VERSION from crates.io"
    mkdir -p "$UWS_DIR/fetch/src" && : >"$UWS_DIR/fetch/src/lib.rs"
    printf '[package]\nname = "uws-sources"\nversion = "0.0.0"\nedition = "2021"\n\n[dependencies]\n%s = "=%s"\n\n[workspace]\n' \
        "$PACKAGE" "$VERSION" >"$UWS_DIR/fetch/Cargo.toml"
    cargo fetch --manifest-path "$UWS_DIR/fetch/Cargo.toml" >&2 || die "cargo fetch of $PACKAGE $VERSION failed"
    SRC=$(find_package) || die "$PACKAGE $VERSION was fetched but its uWebSockets/ sources were not found"
fi

read -r -a EXTRA <<<"${UWS_EXTRA_FLAGS:-}"
COMMON=(-O3 -flto -DLIBUS_NO_SSL -I"$SRC/uSockets/src" "${EXTRA[@]}")
CFLAGS=("${COMMON[@]}" -std=c11)
CXXFLAGS=("${COMMON[@]}" -std=c++20 -DUWS_NO_ZLIB -I"$SRC/src")
BIN=$UWS_DIR/bin OBJ=$UWS_DIR/obj LOG=$UWS_DIR/build.log
PUBSUB=$ROOT/benches/uws/PubSubServer.cpp
stamp="$VERSION | $(gcc --version | head -n 1) | ${CXXFLAGS[*]} | $(cksum <"$0") | $(cksum <"$PUBSUB")"
if [[ -z $FORCE && -f $UWS_DIR/build.stamp && $(cat "$UWS_DIR/build.stamp") == "$stamp" ]]; then
    printf '%s\n' "$BIN" && exit 0
fi
rm -rf "$OBJ" "$BIN" "$UWS_DIR/build.stamp"
mkdir -p "$OBJ" "$BIN" "$UWS_DIR/src"
: >"$LOG"
step() {
    printf '$ %s\n' "${*:2}" >>"$LOG"
    "${@:2}" >>"$LOG" 2>&1 || { tail -n 30 "$LOG" >&2 && die "building $1 failed (log: $LOG)"; }
}

say "building uSockets, the EchoServer, the pub/sub server, load_test and broadcast_test"
OBJECTS=()
for c in "$SRC"/uSockets/src/*.c "$SRC"/uSockets/src/eventing/*.c "$SRC"/uSockets/src/crypto/*.c; do
    OBJECTS+=("$OBJ/$(basename "$(dirname "$c")")-$(basename "${c%.c}").o")
    step "uSockets ($c)" gcc "${CFLAGS[@]}" -c "$c" -o "${OBJECTS[-1]}"
done

# The example listens on port 9001 on every interface: listen where we say and print the port.
ECHO=$UWS_DIR/src/EchoServer.cpp
{
    printf '// Patched copy of uWebSockets examples/EchoServer.cpp (scripts/uws-build.sh).\n#include <cstdio>\n#include <cstdlib>\n'
    printf 'static int uws_bench_port() { const char *p = std::getenv("UWS_PORT"); return p ? std::atoi(p) : 0; }\n'
    sed -e 's|\.listen(9001, \[\](auto \*listen_socket) {|.listen("127.0.0.1", uws_bench_port(), [](auto *listen_socket) {|' \
        -e 's|std::cout << "Listening on port " << 9001 << std::endl;|std::cout << us_socket_local_port(0, (struct us_socket_t *) listen_socket) << std::endl; } else { std::fprintf(stderr, "uws-echo-server: cannot listen on 127.0.0.1:%d\\n", uws_bench_port()); std::exit(1);|' \
        "$SRC/examples/EchoServer.cpp"
} >"$ECHO"
grep -q 'uws_bench_port(), \[\]' "$ECHO" && grep -q 'us_socket_local_port(0' "$ECHO" && ! grep -q 9001 "$ECHO" ||
    die "patching EchoServer.cpp failed: its listen call is not the one expected (see $ECHO)"

step uws-echo-server g++ "${CXXFLAGS[@]}" "$ECHO" "${OBJECTS[@]}" -o "$BIN/uws-echo-server"
step uws-pubsub-server g++ "${CXXFLAGS[@]}" "$PUBSUB" "${OBJECTS[@]}" -o "$BIN/uws-pubsub-server"
step uws-load-test gcc "${CFLAGS[@]}" "$SRC/benchmarks/load_test.c" "${OBJECTS[@]}" -o "$BIN/uws-load-test"
# load_test asks for `GET /`; the echo example serves its page there and WebSockets at /ws.
LOAD_WS=$UWS_DIR/src/load_test_ws.c
sed -e 's|"GET / HTTP/1.1\\r\\n"|"GET /ws HTTP/1.1\\r\\n"|' "$SRC/benchmarks/load_test.c" >"$LOAD_WS"
[[ $(grep -c 'GET /ws HTTP' "$LOAD_WS") == 2 ]] || die "patching load_test.c failed: its two requests are not the ones expected"
step uws-load-test-ws gcc "${CFLAGS[@]}" "$LOAD_WS" "${OBJECTS[@]}" -o "$BIN/uws-load-test-ws"
step uws-broadcast-test gcc "${CFLAGS[@]}" "$SRC/benchmarks/broadcast_test.c" "${OBJECTS[@]}" -o "$BIN/uws-broadcast-test"
printf '%s\n' "$stamp" >"$UWS_DIR/build.stamp"
printf '%s\n' "$BIN"
