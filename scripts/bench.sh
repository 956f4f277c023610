#!/usr/bin/env bash
# Benchmarks tower-websockets side by side with axum, tokio-tungstenite, fastwebsockets and
# uWebSockets (issues #7 and #12), and its permessage-deflate beside sockudo-ws's (issue 11), and
# writes the markdown table.
#
#     scripts/bench.sh            # full run (~12 minutes on a quiet machine): updates docs/benchmarks.md
#     scripts/bench.sh --quick    # short windows (~3 minutes): writes target/bench/table.md only
#
# Options:
#   --quick             0.5 s warm-up, 1.5 s windows, 2,000 idle sockets, 200 compressing
#                       sockets, one run of each
#   --warmup SECS       warm-up before each measuring window [default: 1.5]
#   --duration SECS     measuring window [default: 4]
#   --repeat N          runs of each echo scenario per server, every other pass in reverse
#                       server order; the table takes the median [default: 2]
#   --idle N            idle sockets to open [default: 10000]
#   --http-runs N       runs of each plain-HTTP app, in rotating order [default: 3]
#   --churn-conns N     concurrent connections of the handshake churn [default: 32]
#   --only LIST         comma-separated scenarios: echo,latency,churn,idle,http,micro,uwsload,
#                       deflate [default: all of these]; also fanout (not in the default run)
#   --deflate-sockets N deflate: sockets of the memory measurement [default: 1000]
#   --servers LIST      comma-separated WebSocket servers: ours-axum,ours-hyper,axum,
#                       tungstenite,fastwebsockets,uws [default: all six]
#   --no-uws            leave uWebSockets out (its server and the uwsload scenario)
#   --uws-windows N     uwsload: 4-second windows of uWebSockets' load_test to average, after
#                       the first one (a warm-up) [default: 2, or 1 with --quick]
#   --docs / --no-docs  update docs/benchmarks.md or not [default: yes, except with --quick]
#   --noise PCT         a run during which other processes used more than PCT % of a core is
#                       run again, up to --tries times in all, keeping the quietest [default: 10]
#   --tries N           [default: 3, or 1 with --quick]
#   --quiet-wait SECS   before each run, wait up to SECS for the machine to be idle [default: 20]
#
# Each server (benches/src/bin/bench-server.rs) runs on a current_thread tokio runtime pinned to
# core 0; the load generator (bench-load) is pinned to core 1. Both are built in release. The
# raw results are kept in target/bench/results.jsonl, the table in target/bench/table.md.
#
# uWebSockets (`uws`) is its EchoServer example, pinned to core 0 like ours; the `uwsload`
# scenario runs uWebSockets' own benchmarks/load_test.c on core 1, as a second load generator,
# against ours-hyper, ours-axum and uws (100 × 20 B and 200 × 16 KiB). scripts/uws-build.sh
# builds them with gcc/g++ into target/uws/ from the sources vendored in the crates.io package
# libuwebsockets-sys 0.0.10 (fetched through cargo); nothing of uWebSockets is committed.
#
# The `deflate` scenario echoes JSON text with permessage-deflate: ours on axum with compression
# (`ours-deflate`), sockudo-ws on axum with compression (`sockudo-deflate`, the peer) and ours
# without (`ours-plain`, the baseline), at 100 × 1 KiB and 10 × 64 KiB; bench-load offers
# permessage-deflate, compresses what it sends and inflates every echo. Then the memory of
# --deflate-sockets sockets that each echoed one 1 KiB message, for both libraries with and
# without server_no_context_takeover (`*-nct`) and ours without compression. The --servers list
# does not apply to it.
#
# The `fanout` scenario (issue 13; run it with --only fanout) runs uWebSockets'
# benchmarks/broadcast_test.c (every client sends one 20 B message per round and waits for all
# N of the round's) against three servers that publish every message to one room every socket
# is in: ours-hub (our broadcast::Hub, as its docs show), axum-chat (axum's chat example's
# shape, tokio::sync::broadcast) and uws-pubsub (benches/uws/PubSubServer.cpp, uWebSockets'
# App::publish), plus ours-hub-unbatched (the hub with one send_prepared, one write, per
# message: the shape before send_delivery), at 100 and 1,000 clients, --repeat times each; the server's RSS per connection at
# the end of the windows; and, for the hub, at 1,000 clients again with one extra client that
# never reads (the slow subscriber). The --servers list does not apply to it.

set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
OUT_DIR=$TARGET_DIR/bench
BIN=$TARGET_DIR/release

WARMUP=1.5
DURATION=4
REPEAT=2
IDLE=10000
HTTP_RUNS=3
CHURN_CONNS=32
ONLY=echo,latency,churn,idle,http,micro,uwsload,deflate
SERVERS=ours-axum,ours-hyper,axum,tungstenite,fastwebsockets,uws
NO_UWS=
UWS_WINDOWS=2
DEFLATE_SOCKETS=1000
QUICK=
DOCS=
NOISE=10
TRIES=3
QUIET_WAIT=20

say() { printf '==> %s\n' "$*" >&2; }
die() {
    printf 'bench.sh: %s\n' "$*" >&2
    exit 1
}

while (($#)); do
    case $1 in
    --quick) QUICK=1 WARMUP=0.5 DURATION=1.5 IDLE=2000 HTTP_RUNS=1 TRIES=1 QUIET_WAIT=2 REPEAT=1 UWS_WINDOWS=1 DEFLATE_SOCKETS=200 ;;
    --repeat) REPEAT=$2 && shift ;;
    --noise) NOISE=$2 && shift ;;
    --tries) TRIES=$2 && shift ;;
    --quiet-wait) QUIET_WAIT=$2 && shift ;;
    --warmup) WARMUP=$2 && shift ;;
    --duration) DURATION=$2 && shift ;;
    --idle) IDLE=$2 && shift ;;
    --http-runs) HTTP_RUNS=$2 && shift ;;
    --churn-conns) CHURN_CONNS=$2 && shift ;;
    --only) ONLY=$2 && shift ;;
    --servers) SERVERS=$2 && shift ;;
    --no-uws) NO_UWS=1 ;;
    --uws-windows) UWS_WINDOWS=$2 && shift ;;
    --deflate-sockets) DEFLATE_SOCKETS=$2 && shift ;;
    --docs) DOCS=1 ;;
    --no-docs) DOCS=0 ;;
    -h | --help)
        sed -n '2,/^$/s/^# \{0,1\}//p' "$0"
        exit 0
        ;;
    *) die "unknown option $1 (see --help)" ;;
    esac
    shift
done
[[ -z $DOCS ]] && DOCS=$([[ -n $QUICK ]] && echo 0 || echo 1)
wants() { [[ ,$ONLY, == *,$1,* ]]; }
IFS=, read -r -a SERVER_LIST <<<"$SERVERS"
if [[ -n $NO_UWS ]]; then
    KEPT=()
    for server in "${SERVER_LIST[@]}"; do [[ $server == uws ]] || KEPT+=("$server"); done
    SERVER_LIST=("${KEPT[@]}")
    ONLY=$(sed 's/\(^\|,\)uwsload\(,\|$\)/\1/; s/,$//' <<<"$ONLY")
fi
for server in "${SERVER_LIST[@]}"; do
    case $server in
    ours-axum | ours-hyper | axum | tungstenite | fastwebsockets | uws) ;;
    *) die "unknown server $server (see --help)" ;;
    esac
done
[[ $UWS_WINDOWS =~ ^[1-9][0-9]*$ ]] || die "--uws-windows needs a whole number of windows, at least 1"
[[ $DEFLATE_SOCKETS =~ ^[1-9][0-9]*$ ]] || die "--deflate-sockets needs a whole number of sockets, at least 1"
# uWebSockets is built when a scenario needs it (deflate does not use the --servers list).
needs_uws() {
    { [[ " ${SERVER_LIST[*]} " == *" uws "* ]] && { wants echo || wants latency || wants churn || wants idle; }; } ||
        wants uwsload || wants fanout
}

# --- processes: every server started is killed at exit --------------------------------------

SERVER_PID=
SERVER_PORT=
WORK_DIR=$(mktemp -d "${TMPDIR:-/tmp}/tower-websockets-bench.XXXXXX")

stop_server() {
    if [[ -n $SERVER_PID ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}
cleanup() {
    local status=$?
    stop_server
    rm -rf "$WORK_DIR"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Pinning: the server on core 0, the load generator on core 1.
if command -v taskset >/dev/null && (($(nproc --all) >= 2)); then
    PIN_SERVER=(taskset -c 0)
    PIN_LOAD=(taskset -c 1)
else
    say "warning: no taskset or fewer than 2 cores: running unpinned"
    PIN_SERVER=()
    PIN_LOAD=()
fi

# bench-server's arguments for a server name: the deflate scenario's names are bench-server
# servers with permessage-deflate options.
server_args() {
    case $1 in
    ours-deflate) echo --server ours-axum --compression ;;
    ours-deflate-nct) echo --server ours-axum --compression --server-no-context-takeover ;;
    ours-plain) echo --server ours-axum ;;
    sockudo-deflate) echo --server sockudo --compression ;;
    sockudo-deflate-nct) echo --server sockudo --compression --server-no-context-takeover ;;
    *) echo --server "$1" ;;
    esac
}

start_server() {
    local name=$1
    local out=$WORK_DIR/server-$name.out
    local args
    read -r -a args <<<"$(server_args "$name")"
    if [[ $name == uws ]]; then
        # uWebSockets' EchoServer example, patched to listen on 127.0.0.1 at $UWS_PORT (0: any
        # free port) and to print that port first, as bench-server does (scripts/uws-build.sh).
        UWS_PORT=0 "${PIN_SERVER[@]}" "$UWS_BIN/uws-echo-server" >"$out" 2>"$WORK_DIR/server-$name.err" &
    elif [[ $name == uws-pubsub ]]; then
        # The fan-out server on uWebSockets' App (benches/uws/PubSubServer.cpp), started the same way.
        UWS_PORT=0 "${PIN_SERVER[@]}" "$UWS_BIN/uws-pubsub-server" >"$out" 2>"$WORK_DIR/server-$name.err" &
    else
        "${PIN_SERVER[@]}" "$BIN/bench-server" "${args[@]}" >"$out" 2>"$WORK_DIR/server-$name.err" &
    fi
    SERVER_PID=$!
    SERVER_PORT=
    local _
    for _ in $(seq 200); do
        SERVER_PORT=$(head -n 1 "$out" 2>/dev/null || true)
        [[ -n $SERVER_PORT ]] && break
        kill -0 "$SERVER_PID" 2>/dev/null || die "server $name exited: $(cat "$WORK_DIR/server-$name.err")"
        sleep 0.05
    done
    [[ -n $SERVER_PORT ]] || die "server $name printed no port within 10 s"
}

# Busy share of all cores, in %, over half a second (from /proc/stat).
machine_busy() {
    local a b
    read -r -a a </proc/stat
    sleep 0.5
    read -r -a b </proc/stat
    local busy=$(((b[1] + b[2] + b[3] + b[6] + b[7] + b[8]) - (a[1] + a[2] + a[3] + a[6] + a[7] + a[8])))
    local idle=$(((b[4] + b[5]) - (a[4] + a[5])))
    echo $((100 * busy / (busy + idle + 1)))
}

# Waits up to QUIET_WAIT seconds for the machine to be idle (other engineers' builds...).
wait_quiet() {
    local deadline=$((SECONDS + ${QUIET_WAIT%.*}))
    while ((SECONDS < deadline)); do
        (($(machine_busy) < 5)) && return 0
    done
    say "  the machine is still busy ($(machine_busy) % of all cores): going on"
}

# A numeric field of a result line (empty when absent or null).
field() { sed -n "s/.*\"$2\":\([-0-9.e+]*\).*/\1/p" <<<"$1"; }

# run_load SCENARIO SERVER MODE [options...]: one measurement against a fresh server, run again
# (up to TRIES times) while other processes disturbed it; the quietest run is kept. MODE is one
# of bench-load's (echo, churn, idle, http), or uws-load / uws-broadcast for uWebSockets'
# load_test / broadcast_test through bench-uws-load.
run_load() {
    local scenario=$1 server=$2 mode=$3
    shift 3
    local try best= best_noise= line noise load
    case $mode in
    uws-load) load=("$BIN/bench-uws-load" --tool load_test --bin "$UWS_BIN/uws-load-test" --windows "$UWS_WINDOWS") ;;
    uws-broadcast) load=("$BIN/bench-uws-load" --tool broadcast_test --bin "$UWS_BIN/uws-broadcast-test" --windows "$UWS_WINDOWS") ;;
    *) load=("$BIN/bench-load" "$mode" --warmup "$WARMUP" --duration "$DURATION") ;;
    esac
    for ((try = 1; try <= TRIES; try++)); do
        wait_quiet
        start_server "$server"
        if ! line=$("${PIN_LOAD[@]}" "${load[@]}" --port "$SERVER_PORT" --server-pid "$SERVER_PID" \
            --scenario "$scenario" --server-name "$server" "$@"); then
            stop_server
            die "$(basename "${load[0]}") $mode failed against $server (server log: $(tail -n 5 "$WORK_DIR/server-$server.err"))"
        fi
        stop_server
        noise=$(field "$line" other_cpu)
        noise=${noise:-0}
        if [[ -z $best ]] || (($(printf '%.0f' "$noise") < $(printf '%.0f' "$best_noise"))); then
            best=$line best_noise=$noise
        fi
        (($(printf '%.0f' "$best_noise") <= NOISE)) && break
        ((try < TRIES)) && say "  $scenario $server: other processes used $(printf '%.0f' "$noise") % of a core: again"
    done
    printf '%s\n' "$best" >>"$RESULTS"
    python_free_summary "$best"
}

# A one-line summary of a result, without a JSON tool: pick a few fields.
python_free_summary() {
    local line=$1 value out=
    local name
    for name in per_second mb_per_second p50_us p99_us server_cpu server_us_per_op client_cpu other_cpu \
        rss_per_socket_bytes rss_after_kib dropped wire_up_bytes wire_down_bytes; do
        value=$(field "$line" "$name")
        # uWebSockets' load_test measures no latency: its records carry 0 there.
        [[ $name == p*_us && $value =~ ^0(\.0*)?$ ]] && continue
        [[ -n $value ]] && out+=" $name=$(printf '%.1f' "$value")"
    done
    say "  $(sed -n 's/.*"scenario":"\([^"]*\)".*"server":"\([^"]*\)".*/\1 \2/p' <<<"$line"):$out"
}

# --- setup ----------------------------------------------------------------------------------

# 10,000 sockets on each side, and some room.
NEED_FILES=$(((IDLE > DEFLATE_SOCKETS ? IDLE : DEFLATE_SOCKETS) + 1000))
if (($(ulimit -n) < NEED_FILES)); then
    HARD=$(ulimit -Hn)
    if [[ $HARD != unlimited ]] && ((HARD < NEED_FILES)); then
        say "warning: the hard limit on open files is $HARD: idle sockets lowered to $((HARD - 1000))"
        IDLE=$((HARD - 1000))
        NEED_FILES=$HARD
    fi
    ulimit -n "$NEED_FILES"
fi

cd "$ROOT"
say "building the harness (release)"
cargo build --release -p tower-websockets-benches --bins >&2
UWS_BIN=
UWS_META=
if needs_uws; then
    say "building uWebSockets (scripts/uws-build.sh)"
    UWS_BIN=$("$ROOT/scripts/uws-build.sh") ||
        die "uWebSockets could not be built (see above); to run without it: --no-uws"
    UWS_META="uWebSockets from libuwebsockets-sys 0.0.10 ($(gcc --version | head -n 1), -O3 -flto${UWS_EXTRA_FLAGS:+ $UWS_EXTRA_FLAGS})"
fi

mkdir -p "$OUT_DIR"
RESULTS=$OUT_DIR/results.jsonl
: >"$RESULTS"
LOAD_BEFORE=$(sed 's/^.*load average: //' <<<"$(uptime)")
START_TIME=$(date -u '+%Y-%m-%d %H:%M UTC')
say "load average before: $LOAD_BEFORE"

# --- scenarios ------------------------------------------------------------------------------

if wants micro; then
    say "criterion: classifying a request"
    rm -rf "$TARGET_DIR/criterion/classify" "$TARGET_DIR/criterion/axum app"*
    CRITERION_ARGS=(--noplot)
    [[ -n $QUICK ]] && CRITERION_ARGS+=(--warm-up-time 0.5 --measurement-time 1)
    cargo bench -p tower-websockets-benches --bench classify --no-run >&2
    "${PIN_SERVER[@]}" cargo bench -p tower-websockets-benches --bench classify -- "${CRITERION_ARGS[@]}" >&2
fi

if wants echo; then
    for spec in echo-100x20:100:20 echo-10x1k:10:1024 echo-200x16k:200:16384 echo-10x1m:10:1048576; do
        IFS=: read -r scenario connections size <<<"$spec"
        say "echo: $connections connections × $size B"
        for ((pass = 0; pass < REPEAT; pass++)); do
            order=("${SERVER_LIST[@]}")
            if ((pass % 2)); then
                order=()
                for ((i = ${#SERVER_LIST[@]} - 1; i >= 0; i--)); do order+=("${SERVER_LIST[i]}"); done
            fi
            for server in "${order[@]}"; do
                run_load "$scenario" "$server" echo --connections "$connections" --size "$size"
            done
        done
    done
fi

if wants latency; then
    say "latency: 1 connection × 20 B (100 connections: from the echo-100x20 run)"
    for server in "${SERVER_LIST[@]}"; do
        run_load latency-1x20 "$server" echo --connections 1 --size 20
    done
fi

if wants churn; then
    say "handshake churn: $CHURN_CONNS concurrent connect/upgrade/close loops"
    for server in "${SERVER_LIST[@]}"; do
        run_load churn "$server" churn --connections "$CHURN_CONNS"
    done
fi

if wants idle; then
    say "idle memory: $IDLE idle WebSockets"
    for server in "${SERVER_LIST[@]}"; do
        run_load idle "$server" idle --connections "$IDLE" --settle 1
    done
fi

if wants uwsload; then
    # uWebSockets' own load generator against ours and its own EchoServer. It always asks for
    # `GET /`, so bench-server's axum servers route `/` too.
    UWSLOAD_SERVERS=()
    for server in ours-axum ours-hyper uws; do
        [[ " ${SERVER_LIST[*]} " == *" $server "* || $server == uws ]] && UWSLOAD_SERVERS+=("$server")
    done
    for spec in uwsload-100x20:100:20 uwsload-200x16k:200:16384; do
        IFS=: read -r scenario connections size <<<"$spec"
        say "uWebSockets' load_test: $connections connections × $size B ($UWS_WINDOWS × 4 s after a warm-up window)"
        for ((pass = 0; pass < REPEAT; pass++)); do
            order=("${UWSLOAD_SERVERS[@]}")
            if ((pass % 2)); then
                order=()
                for ((i = ${#UWSLOAD_SERVERS[@]} - 1; i >= 0; i--)); do order+=("${UWSLOAD_SERVERS[i]}"); done
            fi
            for server in "${order[@]}"; do
                run_load "$scenario" "$server" uws-load --connections "$connections" --size "$size"
            done
        done
    done
fi

# Fan-out (not run by default: --only fanout): uWebSockets' benchmarks/broadcast_test.c, built by
# scripts/uws-build.sh, against servers that publish every message they receive to one room every
# socket is in. ours-hub-unbatched is the "before" beside ours-hub (the same hub, its handler
# writing each message with send_prepared). The hub's dropped count comes from its GET /stats.
FANOUT_SERVERS=(ours-hub ours-hub-unbatched axum-chat uws-pubsub)
fanout_stats() { [[ $1 == ours-hub* ]] && echo --stats /stats || true; }
# broadcast_test prints whole rounds per 4 s window (a resolution of 0.25 rounds/s), and at 1,000
# clients a round is a million deliveries: a fraction of a second to several seconds. So 1,000
# clients get 3× the windows (6 by default, 24 s; 3 with --quick).
fanout_windows() { (($1 >= 1000)) && echo $((UWS_WINDOWS * 3)) || echo "$UWS_WINDOWS"; }
run_fanout() {
    local connections pass i server order
    for connections in 100 1000; do
        say "fan-out: uWebSockets' broadcast_test, $connections connections × 20 B to all ($UWS_WINDOWS × 4 s after a warm-up window)"
        for ((pass = 0; pass < REPEAT; pass++)); do
            order=("${FANOUT_SERVERS[@]}")
            if ((pass % 2)); then
                order=()
                for ((i = ${#FANOUT_SERVERS[@]} - 1; i >= 0; i--)); do order+=("${FANOUT_SERVERS[i]}"); done
            fi
            for server in "${order[@]}"; do
                # shellcheck disable=SC2046 # fanout_stats prints words or nothing
                run_load "fanout-$connections" "$server" uws-broadcast --connections "$connections" \
                    --windows "$(fanout_windows "$connections")" $(fanout_stats "$server")
            done
        done
    done
    # The slow subscriber, for the hub (both handler shapes).
    say "fan-out: 1000 connections and one more that never reads (the slow subscriber)"
    for ((pass = 0; pass < REPEAT; pass++)); do
        for server in ours-hub ours-hub-unbatched; do
            # shellcheck disable=SC2046
            run_load fanout-1000-slow "$server" uws-broadcast --connections 1000 --slow-clients 1 \
                --windows "$(fanout_windows 1000)" $(fanout_stats "$server")
        done
    done
}
wants fanout && run_fanout

if wants deflate; then
    # The peer and the baseline (scripts/bench.sh's header; docs/benchmarks.md). bench-load offers
    # permessage-deflate to all; ours-plain must decline it.
    DEFLATE_SERVERS=(ours-deflate sockudo-deflate ours-plain)
    deflate_mode() { [[ $1 == ours-plain ]] && echo refused || echo require; }
    for spec in deflate-100x1k:100:1024 deflate-10x64k:10:65536; do
        IFS=: read -r scenario connections size <<<"$spec"
        say "permessage-deflate: $connections connections × $size B of JSON text"
        for ((pass = 0; pass < REPEAT; pass++)); do
            order=("${DEFLATE_SERVERS[@]}")
            if ((pass % 2)); then
                order=()
                for ((i = ${#DEFLATE_SERVERS[@]} - 1; i >= 0; i--)); do order+=("${DEFLATE_SERVERS[i]}"); done
            fi
            for server in "${order[@]}"; do
                run_load "$scenario" "$server" echo --connections "$connections" --size "$size" \
                    --payload json --deflate "$(deflate_mode "$server")"
            done
        done
    done
    say "permessage-deflate: memory of $DEFLATE_SOCKETS sockets that each echoed one 1 KiB JSON message"
    for server in ours-deflate ours-deflate-nct sockudo-deflate sockudo-deflate-nct ours-plain; do
        run_load deflate-memory "$server" idle --connections "$DEFLATE_SOCKETS" --settle 1 --size 1024 \
            --payload json --deflate "$(deflate_mode "$server")" --exchange
    done
fi

if wants http; then
    say "plain HTTP through axum: without WebSocketLayer, on the Router, around it ($HTTP_RUNS runs each)"
    # Runs drift (the first of a series tends to be the fastest): rotate the order every round,
    # so that over 3 rounds each app runs once first, once second and once last.
    HTTP_APPS=(http-axum http-axum-layer http-axum-outer)
    for ((round = 0; round < HTTP_RUNS; round++)); do
        for ((i = 0; i < 3; i++)); do
            run_load http "${HTTP_APPS[(i + round) % 3]}" http --connections 100 --path /
        done
    done
fi

# --- the table ------------------------------------------------------------------------------

LOAD_AFTER=$(sed 's/^.*load average: //' <<<"$(uptime)")
say "load average after: $LOAD_AFTER"
REPORT_ARGS=(
    --results "$RESULTS" --lock "$ROOT/Cargo.lock" --criterion "$TARGET_DIR/criterion"
    --out "$OUT_DIR/table.md"
    --meta "date=$START_TIME"
    --meta "mode=$([[ -n $QUICK ]] && echo 'quick mode' || echo 'full run'): scripts/bench.sh"
    --meta "timing=${WARMUP} s warm-up, then a ${DURATION} s window per run; a fresh server process per run; echo scenarios run ${REPEAT}× per server, the table giving the median (the mean of the middle two for an even count)"
    --meta "load_before=$LOAD_BEFORE" --meta "load_after=$LOAD_AFTER"
    --meta "kernel=Linux $(uname -r)"
    --meta "rustc=$(rustc --version)"
    --meta "uws=${UWS_META:-not run}"
    --meta "git=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$ROOT" diff --quiet HEAD -- src 2>/dev/null || echo ', src/ modified')"
)
((DOCS)) && REPORT_ARGS+=(--docs "$ROOT/docs/benchmarks.md")
"$BIN/bench-report" "${REPORT_ARGS[@]}"
say "table: $OUT_DIR/table.md$( ((DOCS)) && echo ' and docs/benchmarks.md')"
cat "$OUT_DIR/table.md"
