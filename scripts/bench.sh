#!/usr/bin/env bash
# Benchmarks tower-websockets beside axum, tokio-tungstenite, fastwebsockets, sockudo-ws and
# uWebSockets (docs/benchmarks.md has the method). Every run appends one JSON line to
# target/bench/results.jsonl; scripts/bench-table.py makes the table from them.
#
#     scripts/bench.sh                    # every scenario, ~25 minutes on a quiet machine
#     scripts/bench.sh --only echo,churn  # some of: echo fanout churn idle deflate http micro
#     scripts/bench.sh --quick            # one short run of each: proves that all of it works
#     scripts/bench.sh --docs             # and write the table into docs/benchmarks.md
#
# --repeat N: runs per server, every other pass in reverse order [2]; --windows N: 4-second
# windows of load_test and broadcast_test after a warm-up window [2]; --seconds S: the window of
# bench-client and wrk, after a warm-up [4]; --idle N: idle sockets [10000]; --servers LIST: the
# echo, churn and idle servers [ours-axum,ours-hyper,echo-example,axum,tungstenite,
# fastwebsockets,uws]; echo-example is `cargo build --release --example echo` as shipped (its
# multi-thread runtime and its logging), the others are bench-server's (current-thread).
# Servers run on core 0, load generators on core 1 (taskset), a fresh server for every run.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
BIN=$TARGET_DIR/release
OUT=$TARGET_DIR/bench
RESULTS=$OUT/results.jsonl
ONLY=echo,fanout,churn,idle,deflate,http,micro
SERVERS=ours-axum,ours-hyper,echo-example,axum,tungstenite,fastwebsockets,uws
REPEAT=2 WINDOWS=2 SECS=4 WARMUP=1.5 IDLE=10000 DEFLATE_SOCKETS=1000 QUICK= DOCS=

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'bench.sh: %s\n' "$*" >&2 && exit 1; }
while (($#)); do
    case $1 in
    --quick) QUICK=1 REPEAT=1 WINDOWS=1 SECS=1 WARMUP=0.5 IDLE=1000 DEFLATE_SOCKETS=200 ;;
    --only | --repeat | --windows | --seconds | --idle | --servers)
        (($# > 1)) || die "$1 needs a value"
        declare "$(tr a-z A-Z <<<"${1#--}" | sed 's/^SECONDS$/SECS/')=$2" && shift ;;
    --docs) DOCS=1 ;;
    -h | --help) sed -n '2,/^set/s/^# \{0,1\}//p' "$0" | sed '$d' && exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done
wants() { [[ ,$ONLY, == *,$1,* ]]; }
IFS=, read -r -a SERVER_LIST <<<"$SERVERS"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/bench.XXXXXX")
SERVER_PID= PORT= HELPER_PID=
stop() {
    local pid
    for pid in $HELPER_PID $SERVER_PID; do { kill "$pid" && wait "$pid"; } 2>/dev/null || true; done
    SERVER_PID= HELPER_PID=
    return 0
}
trap 'stop; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM
PIN0=() PIN1=()
if command -v taskset >/dev/null && (($(nproc) >= 2)); then PIN0=(taskset -c 0) PIN1=(taskset -c 1); fi
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# start NAME: a fresh server on core 0; sets SERVER_PID and PORT (its first line of output).
start() {
    local args=(--server "$1")
    case $1 in
    uws) args=() ;;
    ours-deflate) args=(--server ours-axum --compression) ;;
    ours-deflate-nct) args=(--server ours-axum --compression --server-no-context-takeover) ;;
    ours-plain) args=(--server ours-axum) ;;
    sockudo-deflate) args=(--server sockudo --compression) ;;
    sockudo-deflate-nct) args=(--server sockudo --compression --server-no-context-takeover) ;;
    esac
    local bin=$BIN/bench-server
    [[ $1 == uws ]] && bin=$UWS/uws-echo-server
    [[ $1 == uws-pubsub ]] && bin=$UWS/uws-pubsub-server args=()
    [[ $1 == echo-example ]] && bin=$BIN/examples/echo args=(--bind 127.0.0.1:0)
    : >"$WORK/port" # not the last server's port
    UWS_PORT=0 "${PIN0[@]}" "$bin" "${args[@]}" >"$WORK/port" 2>"$WORK/server.err" &
    SERVER_PID=$! PORT=
    for _ in $(seq 200); do
        if [[ $1 == echo-example ]]; then # its log line `listening on http://127.0.0.1:PORT`
            PORT=$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$WORK/port" | head -n 1)
        else
            PORT=$(head -n 1 "$WORK/port")
        fi
        [[ -n $PORT ]] && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || die "server $1 exited: $(cat "$WORK/server.err")"
        sleep 0.05
    done
    die "server $1 printed no port"
}
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$SERVER_PID/stat"; }
user_ticks() { awk '{ print $14 }' "/proc/$SERVER_PID/stat"; }
# The server's system calls over the windows, when perf can count them (tracepoints; root or
# perf_event_paranoid <= 1); an empty count otherwise.
perf_start() {
    rm -f "$WORK/perf"
    perf stat -x, -e raw_syscalls:sys_enter -p "$SERVER_PID" -o "$WORK/perf" >/dev/null 2>&1 &
    PERF_PID=$!
}
perf_stop() { # sets CALLS
    kill -INT "$PERF_PID" 2>/dev/null && wait "$PERF_PID" 2>/dev/null || true
    CALLS=$(awk -F, '/raw_syscalls/ && $1 ~ /^[0-9]+$/ { print $1 }' "$WORK/perf" 2>/dev/null || true)
}
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$SERVER_PID/status"; }
load1() { cut -d' ' -f1 /proc/loadavg; }
emit() { printf '{"scenario":"%s","server":"%s",%s,"load1":%s}\n' "$1" "$2" "$3" "$(load1)" | tee -a "$RESULTS" >&2; }

# uws SCENARIO SERVER WINDOWS TOOL ARGS...: one of uWebSockets' tools on core 1, until it has
# printed WINDOWS rates after its first (the connection phase and a warm-up); the mean rate and
# the server's CPU over those windows.
uws() {
    local scenario=$1 server=$2 windows=$3 rates=() line t0 t1 c0 c1 u0 u1 rss0 rss1 dropped
    shift 3
    rss0=$(rss_kib)
    exec 3< <(exec "${PIN1[@]}" stdbuf -oL "$@" 2>&1)
    local tool=$!
    while ((${#rates[@]} < windows)); do
        IFS= read -r -t 60 -u 3 line || die "$scenario $server: no output for 60 s from $1"
        case $line in
        Msg/sec:* | Iterations/second*)
            if [[ -z ${c0:-} ]]; then c0=$(cpu_ticks) u0=$(user_ticks) t0=$EPOCHREALTIME && perf_start; else rates+=("${line##*: }"); fi ;;
        Closed!* | Client\ was* | ERROR* | Error*) die "$scenario $server: $1 said: $line" ;;
        esac
    done
    c1=$(cpu_ticks) u1=$(user_ticks) t1=$EPOCHREALTIME rss1=$(rss_kib) dropped=
    perf_stop
    [[ $server == ours-hub* ]] && dropped=$(curl -sf "http://127.0.0.1:$PORT/stats" | sed -n 's/.*"dropped":\([0-9]*\).*/\1/p')
    kill "$tool" 2>/dev/null || true
    exec 3<&-
    local fields
    fields=$(awk -v r="$(IFS=, && echo "${rates[*]}")" -v c=$((c1 - c0)) -v u=$((u1 - u0)) -v calls="$CALLS" \
        -v t0="$t0" -v t1="$t1" 'BEGIN {
        n = split(r, a, ","); for (i = 1; i <= n; i++) m += a[i] / n; t = t1 - t0; ops = m * t
        us = ops > 0 ? sprintf("%.3f", c * 1e4 / ops) : "null"; user = ops > 0 ? sprintf("%.3f", u * 1e4 / ops) : "null"
        sys = calls != "" && ops > 0 ? sprintf("%.3f", calls / ops) : "null"
        printf "\"per_second\":%.2f,\"windows\":[%s],\"server_cpu\":%.1f,\"server_us_per_op\":%s,", m, r, c / t, us
        printf "\"server_user_us_per_op\":%s,\"syscalls_per_op\":%s", user, sys }')
    emit "$scenario" "$server" "$fields"
    if [[ $scenario == fanout* ]]; then
        local n=${scenario#fanout-}
        n=${n%-slow}
        emit "$scenario-memory" "$server" "\"rss_per_socket_bytes\":$((((rss1 - rss0) * 1024) / n)),\"dropped\":${dropped:-null}"
    fi
}

# client SCENARIO SERVER MODE ARGS...: bench-client on core 1 against a fresh server.
client() {
    local scenario=$1 server=$2 mode=$3 line
    shift 3
    start "$server"
    local path=/ && [[ $server == echo-example ]] && path=/ws
    line=$("${PIN1[@]}" "$BIN/bench-client" "$mode" --port "$PORT" --server-pid "$SERVER_PID" \
        --warmup "$WARMUP" --seconds "$SECS" --path "$path" "$@") ||
        die "bench-client $mode failed against $server: $(tail -n 3 "$WORK/server.err")"
    stop
    line=${line#\{}
    emit "$scenario" "$server" "${line%\}}"
}

# passes NAME...: the names REPEAT times, every other pass reversed.
passes() {
    local pass i
    for ((pass = 0; pass < REPEAT; pass++)); do
        if ((pass % 2)); then for ((i = $#; i >= 1; i--)); do echo "${!i}"; done; else printf '%s\n' "$@"; fi
    done
}

cd "$ROOT"
say "building the harness (release)"
cargo build --release -p tower-websockets-benches --bins >&2
[[ ,$SERVERS, == *,echo-example,* ]] && cargo build --release --example echo >&2
if wants echo || wants fanout || { [[ ,$SERVERS, == *,uws,* ]] && { wants churn || wants idle; }; }; then
    UWS=$(scripts/uws-build.sh) || die "uWebSockets did not build"
fi
mkdir -p "$OUT"
: >"$RESULTS"

if wants echo; then
    for spec in 100:20 10:1024 200:16384 10:1048576; do
        IFS=: read -r n size <<<"$spec"
        scenario=echo-${n}x$size
        say "$scenario: uWebSockets' load_test"
        for server in $(passes "${SERVER_LIST[@]}"); do
            start "$server"
            tool=$UWS/uws-load-test && [[ $server == echo-example ]] && tool=$UWS/uws-load-test-ws # /ws, not /
            uws "$scenario" "$server" "$WINDOWS" "$tool" "$n" 127.0.0.1 "$PORT" 0 0 "$size"
            stop
        done
    done
fi

if wants fanout; then
    for n in 100 1000; do
        say "fanout-$n: uWebSockets' broadcast_test"
        for server in $(passes ours-hub ours-hub-unbatched axum-chat uws-pubsub); do
            start "$server"
            uws "fanout-$n" "$server" $((n >= 1000 ? 3 * WINDOWS : WINDOWS)) "$UWS/uws-broadcast-test" "$n" 127.0.0.1 "$PORT" 0
            stop
        done
    done
    say "fanout-1000-slow: one more client that never reads"
    for server in $(passes ours-hub); do
        start "$server"
        "${PIN1[@]}" "$BIN/bench-client" slow --port "$PORT" 2>"$WORK/slow" &
        HELPER_PID=$!
        until grep -q ready "$WORK/slow"; do kill -0 "$HELPER_PID" || die "bench-client slow failed"; sleep 0.05; done
        uws fanout-1000-slow "$server" $((3 * WINDOWS)) "$UWS/uws-broadcast-test" 1000 127.0.0.1 "$PORT" 0
        stop
    done
fi

if wants churn; then
    say "churn: handshakes"
    for server in $(passes "${SERVER_LIST[@]}"); do client churn "$server" churn --connections 32; done
fi

if wants idle; then
    say "idle: $IDLE idle WebSockets"
    for server in "${SERVER_LIST[@]}"; do client idle "$server" idle --connections "$IDLE"; done
fi

if wants deflate; then
    for spec in 100:1024 10:65536; do
        IFS=: read -r n size <<<"$spec"
        say "deflate-${n}x$size: JSON text, permessage-deflate"
        for server in $(passes ours-deflate sockudo-deflate ours-plain); do
            mode=require && [[ $server == ours-plain ]] && mode=refused
            client "deflate-${n}x$size" "$server" deflate --connections "$n" --size "$size" --deflate $mode
        done
    done
    say "deflate-memory: $DEFLATE_SOCKETS sockets after one 1 KiB echo each"
    for server in ours-deflate ours-deflate-nct sockudo-deflate sockudo-deflate-nct ours-plain; do
        mode=require && [[ $server == ours-plain ]] && mode=refused
        client deflate-memory "$server" idle --connections "$DEFLATE_SOCKETS" --size 1024 --deflate $mode
    done
fi

if wants http; then
    if ! command -v wrk >/dev/null; then
        say "installing wrk (Debian)"
        sudo=() && ((EUID == 0)) || sudo=(sudo)
        "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
        DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=600 install -y -qq wrk >&2
    fi
    say "http: wrk, GET /"
    for server in $(passes http-axum http-axum-layer http-axum-outer); do
        start "$server"
        "${PIN1[@]}" wrk -t1 -c100 -d1s "http://127.0.0.1:$PORT/" >/dev/null
        c0=$(cpu_ticks)
        rate=$("${PIN1[@]}" wrk -t1 -c100 -d"$SECS"s "http://127.0.0.1:$PORT/" | awk '/^Requests\/sec:/ { print $2 }')
        c1=$(cpu_ticks)
        stop
        [[ -n $rate ]] || die "wrk gave no rate against $server"
        emit http "$server" "\"per_second\":$rate,\"server_us_per_op\":$(awk "BEGIN { printf \"%.3f\", ($c1 - $c0) * 1e4 / ($rate * $SECS) }")"
    done
fi

if wants micro; then
    say "micro: criterion"
    args=(--noplot) && [[ -n $QUICK ]] && args+=(--warm-up-time 0.5 --measurement-time 1)
    "${PIN0[@]}" cargo bench -p tower-websockets-benches --bench classify -- "${args[@]}" >&2
    python3 scripts/bench-table.py --criterion "$TARGET_DIR/criterion" | tee -a "$RESULTS" >&2
fi

say "results: $RESULTS"
python3 scripts/bench-table.py "$RESULTS" ${DOCS:+--docs docs/benchmarks.md}
