//! Turns `bench-load`'s JSON lines (and criterion's estimates) into the markdown table of
//! `docs/benchmarks.md`.
//!
//! ```text
//! bench-report --results FILE --lock Cargo.lock [--criterion DIR] [--meta KEY=VALUE]...
//!              [--out FILE] [--docs FILE]
//! ```
//!
//! `--out` writes the table alone; `--docs` replaces what lies between the
//! `<!-- bench-table:start -->` and `<!-- bench-table:end -->` markers of that file. Every figure
//! is given with its ratio to axum's, fastwebsockets' and uWebSockets' from the same run, and
//! every ratio column's header says which way is better.

use std::{collections::BTreeMap, fmt::Write as _, fs, path::PathBuf, process::ExitCode};

use bench_common::Record;

const USAGE: &str = "usage: bench-report --results FILE --lock Cargo.lock [--criterion DIR] \
                     [--meta KEY=VALUE]... [--out FILE] [--docs FILE]";
const START: &str = "<!-- bench-table:start -->";
const END: &str = "<!-- bench-table:end -->";

/// The servers in table order, with how the table names them.
const SERVERS: [(&str, &str); 6] = [
    ("ours-axum", "**tower-websockets** (axum)"),
    ("ours-hyper", "**tower-websockets** (hyper `service_fn`)"),
    ("axum", "axum 0.8 `extract::ws`"),
    ("tungstenite", "tokio-tungstenite (raw hyper upgrade)"),
    ("fastwebsockets", "fastwebsockets"),
    ("uws", "uWebSockets (`EchoServer` example)"),
];

/// Ratio column headers, with the direction that is better.
const UP: &str = "higher is better";
const DOWN: &str = "lower is better";
const OURS: [&str; 2] = ["ours-axum", "ours-hyper"];

struct Args {
    results: PathBuf,
    lock: PathBuf,
    criterion: Option<PathBuf>,
    meta: Vec<(String, String)>,
    out: Option<PathBuf>,
    docs: Option<PathBuf>,
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(problem) => {
            eprintln!("bench-report: {problem}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench-report: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_args() -> Result<Args, String> {
    let mut args = std::env::args().skip(1);
    let (mut results, mut lock, mut criterion, mut out, mut docs) = (None, None, None, None, None);
    let mut meta = Vec::new();
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--results" => results = Some(PathBuf::from(value()?)),
            "--lock" => lock = Some(PathBuf::from(value()?)),
            "--criterion" => criterion = Some(PathBuf::from(value()?)),
            "--out" => out = Some(PathBuf::from(value()?)),
            "--docs" => docs = Some(PathBuf::from(value()?)),
            "--meta" => {
                let v = value()?;
                let (key, value) = v.split_once('=').ok_or("--meta needs KEY=VALUE")?;
                meta.push((key.to_owned(), value.to_owned()));
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Args {
        results: results.ok_or("--results is required")?,
        lock: lock.ok_or("--lock is required")?,
        criterion,
        meta,
        out,
        docs,
    })
}

fn run(args: &Args) -> Result<(), String> {
    let text = fs::read_to_string(&args.results).map_err(|e| format!("{}: {e}", args.results.display()))?;
    let records: Vec<Record> = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| serde_json::from_str(line).map_err(|e| format!("bad result line {line:?}: {e}")))
        .collect::<Result<_, _>>()?;
    let lock = fs::read_to_string(&args.lock).map_err(|e| format!("{}: {e}", args.lock.display()))?;
    let table = render(&Results::new(records), &lock, args);
    if let Some(out) = &args.out {
        fs::write(out, &table).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    if let Some(docs) = &args.docs {
        let current = fs::read_to_string(docs).unwrap_or_default();
        let updated = match (current.find(START), current.find(END)) {
            (Some(start), Some(end)) if start < end => {
                format!("{}{START}\n{table}{END}{}", &current[..start], &current[end + END.len()..])
            }
            _ => format!("{current}\n{START}\n{table}{END}\n"),
        };
        fs::write(docs, updated).map_err(|e| format!("{}: {e}", docs.display()))?;
    }
    if args.out.is_none() && args.docs.is_none() {
        print!("{table}");
    }
    Ok(())
}

/// The records by scenario and server; repeated runs collapse to their median.
struct Results {
    by_key: BTreeMap<(String, String), Vec<Record>>,
}

impl Results {
    fn new(records: Vec<Record>) -> Self {
        let mut by_key: BTreeMap<(String, String), Vec<Record>> = BTreeMap::new();
        for record in records {
            by_key.entry((record.scenario.clone(), record.server.clone())).or_default().push(record);
        }
        for runs in by_key.values_mut() {
            runs.sort_by(|a, b| a.per_second.total_cmp(&b.per_second));
        }
        Self { by_key }
    }

    /// The median run (by operations per second); for an even number of runs, the mean of the
    /// two middle ones.
    fn get(&self, scenario: &str, server: &str) -> Option<Record> {
        let runs = self.by_key.get(&(scenario.to_owned(), server.to_owned()))?;
        let upper = runs.get(runs.len() / 2)?;
        if runs.len() % 2 == 1 {
            return Some(upper.clone());
        }
        let lower = &runs[runs.len() / 2 - 1];
        let mean = |a: f64, b: f64| (a + b) / 2.0;
        let mean_opt = |a: Option<f64>, b: Option<f64>| Some(mean(a?, b?));
        let mut record = lower.clone();
        record.per_second = mean(lower.per_second, upper.per_second);
        record.mb_per_second = mean(lower.mb_per_second, upper.mb_per_second);
        record.p50_us = mean(lower.p50_us, upper.p50_us);
        record.p99_us = mean(lower.p99_us, upper.p99_us);
        record.p999_us = mean(lower.p999_us, upper.p999_us);
        record.server_cpu = mean_opt(lower.server_cpu, upper.server_cpu);
        record.server_us_per_op = mean_opt(lower.server_us_per_op, upper.server_us_per_op);
        record.client_cpu = mean(lower.client_cpu, upper.client_cpu);
        record.other_cpu = mean_opt(lower.other_cpu, upper.other_cpu);
        record.rss_per_socket_bytes = mean_opt(lower.rss_per_socket_bytes, upper.rss_per_socket_bytes);
        record.wire_up_bytes = mean_opt(lower.wire_up_bytes, upper.wire_up_bytes);
        record.wire_down_bytes = mean_opt(lower.wire_down_bytes, upper.wire_down_bytes);
        Some(record)
    }

    fn runs(&self, scenario: &str, server: &str) -> &[Record] {
        self.by_key.get(&(scenario.to_owned(), server.to_owned())).map_or(&[], Vec::as_slice)
    }
}

fn ratio(value: Option<f64>, base: Option<f64>) -> String {
    match (value, base) {
        // Small ratios (uWebSockets' idle memory against axum's) keep a significant digit.
        (Some(v), Some(b)) if b > 0.0 && v / b < 0.095 => format!("{:.3}×", v / b),
        (Some(v), Some(b)) if b > 0.0 => format!("{:.2}×", v / b),
        _ => "–".to_owned(),
    }
}

fn cpu(value: Option<f64>) -> String {
    value.map_or("–".to_owned(), |v| format!("{v:.0} %"))
}

fn us(value: Option<f64>) -> String {
    value.map_or("–".to_owned(), |v| format!("{v:.2}"))
}

fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn lock_version(lock: &str, name: &str) -> String {
    let mut versions = Vec::new();
    let mut lines = lock.lines();
    while let Some(line) = lines.next() {
        if line == format!("name = \"{name}\"") {
            if let Some(version) = lines.next().and_then(|l| l.strip_prefix("version = \"")) {
                versions.push(version.trim_end_matches('"').to_owned());
            }
        }
    }
    if versions.is_empty() { "?".to_owned() } else { versions.join(", ") }
}

fn machine() -> (usize, String, String) {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cores = cpuinfo.lines().filter(|l| l.starts_with("processor")).count();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name").and_then(|r| r.split_once(':')).map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    let memory = fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or("?".to_owned(), |kib| format!("{:.0} GiB", kib / 1024.0 / 1024.0));
    (cores, model, memory)
}

const ECHO: [(&str, &str); 4] = [
    ("echo-100x20", "100 conn × 20 B"),
    ("echo-10x1k", "10 conn × 1 KiB"),
    ("echo-200x16k", "200 conn × 16 KiB"),
    ("echo-10x1m", "10 conn × 1 MiB"),
];
const LATENCY: [(&str, &str); 2] = [("latency-1x20", "1 conn × 20 B"), ("echo-100x20", "100 conn × 20 B")];

/// uWebSockets' `load_test` runs (`bench-uws-load`, mode `uws-load`).
const UWS_LOAD: [(&str, &str); 2] =
    [("uwsload-100x20", "100 conn × 20 B"), ("uwsload-200x16k", "200 conn × 16 KiB")];

/// Issue #12's goals against uWebSockets: (bench-load scenario, load_test scenario), label, goal.
const UWS_GOALS: [((&str, &str), &str, f64); 2] = [
    (("echo-100x20", "uwsload-100x20"), "100 conn × 20 B", 0.9),
    (("echo-200x16k", "uwsload-200x16k"), "200 conn × 16 KiB", 0.8),
];

/// The tables of uWebSockets' own load generators: `load_test` against ours and uWebSockets'
/// EchoServer, and `broadcast_test` (fan-out) when a run has any.
fn uws_load_tables(t: &mut String, results: &Results) {
    let has = |mode: &str| results.by_key.values().flatten().any(|r| r.mode == mode);
    if has("uws-load") {
        let _ = writeln!(t, "\n### Echo throughput, measured by uWebSockets' `load_test`\n");
        let _ = writeln!(
            t,
            "The second load generator: uWebSockets' `benchmarks/load_test.c`, unchanged, on core 1 \
             (`GET /`, one message in flight per connection, echoes counted by their byte count). \
             Its own figure: the mean of its 4-second windows after a first one (warm-up); CPU from \
             `/proc` over the same windows.\n"
        );
        let _ = writeln!(
            t,
            "| scenario | server | echoes/s | windows (echoes/s) | MB/s | × uWS ({UP}) | server CPU | server µs/echo | client CPU | others' CPU |"
        );
        let _ = writeln!(t, "|---|---|---:|---|---:|---:|---:|---:|---:|---:|");
        for (scenario, label) in UWS_LOAD {
            let uws = results.get(scenario, "uws").map(|r| r.per_second);
            for (server, name) in SERVERS {
                let Some(r) = results.get(scenario, server) else { continue };
                let windows: Vec<String> = r.slices.iter().map(|w| thousands(*w)).collect();
                let _ = writeln!(
                    t,
                    "| {label} | {name} | {} | {} | {:.1} | {} | {} | {} | {} | {} |",
                    thousands(r.per_second),
                    windows.join(", "),
                    r.mb_per_second,
                    ratio(Some(r.per_second), uws),
                    cpu(r.server_cpu),
                    us(r.server_us_per_op),
                    cpu(Some(r.client_cpu)),
                    cpu(r.other_cpu),
                );
            }
        }
    }
    if has("uws-broadcast") {
        fan_out_tables(t, results);
    }
}

/// The fan-out servers (`scripts/bench.sh --only fanout`) in table order, with their names.
const FANOUT_SERVERS: [(&str, &str); 4] = [
    ("ours-hub", "**tower-websockets** `broadcast::Hub`, `forward_to` (one flush per burst)"),
    ("ours-hub-unbatched", "**tower-websockets** `broadcast::Hub`, `send_prepared` per message (before)"),
    ("axum-chat", "axum 0.8 chat: `tokio::sync::broadcast`, split socket"),
    ("uws-pubsub", "uWebSockets `App::publish` to one topic"),
];

/// The fan-out scenarios: every client in the room, and at 1,000 clients one more that never
/// reads.
const FANOUT: [&str; 2] = ["fanout-100", "fanout-1000"];
const FANOUT_SLOW: (&str, &str) = ("fanout-1000-slow", "fanout-1000");

/// Issue 13's goals for the hub: × the axum chat, × uWebSockets.
const FANOUT_GOALS: [(&str, &str, f64); 2] =
    [("axum-chat", "the axum chat", 2.0), ("uws-pubsub", "uWebSockets", 0.8)];

/// Rounds per second with a slow subscriber at least this share of those without: "does not
/// slow the others", with room for this machine's noise.
const SLOW_GOAL: f64 = 0.9;

/// The fan-out servers of a scenario, in table order, then any other by name.
fn fan_out_servers(results: &Results, scenario: &str) -> Vec<(String, String)> {
    let mut servers: Vec<(String, String)> =
        FANOUT_SERVERS.iter().map(|(s, n)| ((*s).to_owned(), (*n).to_owned())).collect();
    for (_, server) in results.by_key.keys().filter(|(s, _)| s == scenario) {
        if !servers.iter().any(|(known, _)| known == server) {
            servers.push((server.clone(), format!("`{server}`")));
        }
    }
    servers
}

fn kib(value: Option<f64>) -> String {
    value.map_or("–".to_owned(), |v| format!("{:.1} KiB", v / 1024.0))
}

fn mib(value: Option<u64>) -> String {
    value.map_or("–".to_owned(), |v| format!("{:.1} MiB", v as f64 / 1024.0))
}

fn fan_out_tables(t: &mut String, results: &Results) {
    let _ = writeln!(t, "\n### Fan-out, measured by uWebSockets' `broadcast_test`\n");
    let _ = writeln!(
        t,
        "Each round, every client sends one 20 B Binary message and receives all of the round's \
         (clients² deliveries); the servers publish every message to one room that every socket is \
         in. `broadcast_test`'s own figure is whole rounds per 4-second window, so at 1,000 clients \
         (a million deliveries a round) the rate is coarse: the windows column shows it. Memory: \
         the server's `VmRSS` at the end of the last window less that of the fresh server, per \
         connection. The hub's dropped count is over the whole run (`GET /stats`).\n"
    );
    let _ = writeln!(
        t,
        "| scenario | server | rounds/s | windows (rounds/s) | deliveries/s | × axum chat ({UP}) | × uWS ({UP}) | server CPU | server µs/round | RSS at the end | RSS per connection | hub: dropped | client CPU | others' CPU |"
    );
    let _ = writeln!(t, "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for scenario in FANOUT.iter().copied().chain([FANOUT_SLOW.0]) {
        let chat = results.get(scenario, "axum-chat").map(|r| r.per_second);
        let uws = results.get(scenario, "uws-pubsub").map(|r| r.per_second);
        for (server, name) in fan_out_servers(results, scenario) {
            let Some(r) = results.get(scenario, &server) else { continue };
            let deliveries = r.per_second * (r.connections * r.connections) as f64;
            let windows: Vec<String> = r.slices.iter().map(|w| format!("{w:.2}")).collect();
            let slow = match r.slow_clients {
                Some(n) if n > 0 => format!(" + {n} that never reads"),
                _ => String::new(),
            };
            let _ = writeln!(
                t,
                "| {} clients{slow} | {name} | {:.2} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                thousands(r.connections as f64),
                r.per_second,
                windows.join(", "),
                thousands(deliveries),
                ratio(Some(r.per_second), chat),
                ratio(Some(r.per_second), uws),
                cpu(r.server_cpu),
                us(r.server_us_per_op),
                mib(r.rss_after_kib),
                kib(r.rss_per_socket_bytes),
                r.dropped.map_or("–".to_owned(), |d| thousands(d as f64)),
                cpu(Some(r.client_cpu)),
                cpu(r.other_cpu),
            );
        }
    }
    // The slow subscriber, side by side.
    let (slow, base) = FANOUT_SLOW;
    if results.by_key.keys().any(|(s, _)| s == slow) {
        let _ = writeln!(t, "\n#### A slow subscriber (1,000 clients and one more that never reads)\n");
        let _ = writeln!(
            t,
            "The extra client upgrades with a 4 KiB receive buffer, joins the room and never reads: \
             the server has to hold, drop or refuse what it cannot send it. The hub keeps at most \
             1 MiB queued per subscriber (its default) and drops the oldest beyond that; the axum \
             chat's receiver lags past the channel's capacity and the example's loop ends, closing \
             that socket; uWebSockets drops messages for a socket past `maxBackpressure` (1 MiB \
             here).\n"
        );
        let _ = writeln!(
            t,
            "| server | rounds/s without | rounds/s with | with ÷ without ({UP}) | RSS at the end without | with | hub: dropped with |"
        );
        let _ = writeln!(t, "|---|---:|---:|---:|---:|---:|---:|");
        for (server, name) in fan_out_servers(results, slow) {
            let Some(with) = results.get(slow, &server) else { continue };
            let without = results.get(base, &server);
            let _ = writeln!(
                t,
                "| {name} | {} | {:.2} | {} | {} | {} | {} |",
                without.as_ref().map_or("–".to_owned(), |r| format!("{:.2}", r.per_second)),
                with.per_second,
                ratio(Some(with.per_second), without.as_ref().map(|r| r.per_second)),
                mib(without.as_ref().and_then(|r| r.rss_after_kib)),
                mib(with.rss_after_kib),
                with.dropped.map_or("–".to_owned(), |d| thousands(d as f64)),
            );
        }
    }
}

/// The servers whose fan-out goals are reported: the hub in its documented shape.
const FANOUT_GOAL_SERVERS: &[&str] = &["ours-hub"];

/// The goal rows of the `fanout` scenario.
fn fan_out_goals(results: &Results) -> Vec<String> {
    let mut lines = Vec::new();
    for &ours in FANOUT_GOAL_SERVERS {
        for scenario in FANOUT {
            let Some(r) = results.get(scenario, ours) else { continue };
            for (peer, label, goal) in FANOUT_GOALS {
                let Some(p) = results.get(scenario, peer) else { continue };
                lines.push(format!(
                    "| fan-out ≥ {goal:.1}× {label}: {} clients, {ours} | {} | {} |",
                    thousands(r.connections as f64),
                    ratio(Some(r.per_second), Some(p.per_second)),
                    met((p.per_second > 0.0).then(|| r.per_second / p.per_second >= goal))
                ));
            }
        }
        if let Some(r) = results.get("fanout-1000", ours) {
            lines.push(format!(
                "| fan-out: memory per subscriber reported (1,000 clients), {ours} | {} | {} |",
                kib(r.rss_per_socket_bytes),
                met(r.rss_per_socket_bytes.map(|_| true))
            ));
        }
        let (slow, base) = FANOUT_SLOW;
        if let (Some(with), Some(without)) = (results.get(slow, ours), results.get(base, ours)) {
            lines.push(format!(
                "| fan-out: a slow subscriber does not slow the others (rounds/s with ≥ {SLOW_GOAL}× without), {ours} | {} | {} |",
                ratio(Some(with.per_second), Some(without.per_second)),
                met((without.per_second > 0.0).then(|| with.per_second / without.per_second >= SLOW_GOAL))
            ));
        }
    }
    lines
}

fn render(results: &Results, lock: &str, args: &Args) -> String {
    let mut t = String::new();
    let meta = |key: &str| args.meta.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    let (cores, model, memory) = machine();

    let _ = writeln!(t, "Run of {} ({}).\n", meta("date").unwrap_or("?"), meta("mode").unwrap_or("full run"));
    let _ = writeln!(t, "| | |\n|---|---|");
    let _ = writeln!(
        t,
        "| machine | {cores} cores (`nproc`), {model}, {memory} RAM, {} |",
        meta("kernel").unwrap_or("Linux")
    );
    let _ = writeln!(
        t,
        "| load average | {} before, {} after (`uptime`, 1/5/15 min) |",
        meta("load_before").unwrap_or("?"),
        meta("load_after").unwrap_or("?")
    );
    let _ = writeln!(
        t,
        "| pinning | each server on core 0, the load generator on core 1 (`taskset`); every server on a `current_thread` tokio runtime |"
    );
    let _ = writeln!(t, "| timing | {} |", meta("timing").unwrap_or("?"));
    let _ = writeln!(t, "| rustc | {} |", meta("rustc").unwrap_or("?"));
    if let Some(uws) = meta("uws") {
        let _ = writeln!(t, "| uWebSockets | {uws} |");
    }
    let _ = writeln!(
        t,
        "| versions | tower-websockets {} ({}), axum {}, tokio-tungstenite {}, tungstenite {}, fastwebsockets {}, sockudo-ws {}, hyper {}, hyper-util {}, tokio {}, flate2 {}, zlib-rs {} |",
        lock_version(lock, "tower-websockets"),
        meta("git").unwrap_or("?"),
        lock_version(lock, "axum"),
        lock_version(lock, "tokio-tungstenite"),
        lock_version(lock, "tungstenite"),
        lock_version(lock, "fastwebsockets"),
        lock_version(lock, "sockudo-ws"),
        lock_version(lock, "hyper"),
        lock_version(lock, "hyper-util"),
        lock_version(lock, "tokio"),
        lock_version(lock, "flate2"),
        lock_version(lock, "zlib-rs"),
    );
    let _ = writeln!(t);
    let _ = writeln!(
        t,
        "Ratios divide a server's figure by axum's, fastwebsockets' or uWebSockets' in the same \
         scenario of the same run; each ratio column's header says which way is better (higher \
         for rates, lower for latency, time and memory). \
         \"Server CPU\" is the server's utime+stime over the window (`/proc/PID/stat`) in % of \
         its one core; \"client CPU\" is the load generator's; \"others' CPU\" is what the rest of \
         the machine used meanwhile (`/proc/stat`), in % of a core: the noise (a run above 10 % is \
         run again, up to 3 times, keeping the quietest).\n"
    );

    // Echo throughput.
    let _ = writeln!(t, "### Echo throughput\n");
    let _ = writeln!(
        t,
        "| scenario | server | echoes/s | MB/s | × axum ({UP}) | × fastwebsockets ({UP}) | × uWS ({UP}) | server CPU | server µs/echo | client CPU | others' CPU |"
    );
    let _ = writeln!(t, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (scenario, label) in ECHO {
        let axum = results.get(scenario, "axum").map(|r| r.per_second);
        let fast = results.get(scenario, "fastwebsockets").map(|r| r.per_second);
        let uws = results.get(scenario, "uws").map(|r| r.per_second);
        for (server, name) in SERVERS {
            let Some(r) = results.get(scenario, server) else { continue };
            let _ = writeln!(
                t,
                "| {label} | {name} | {} | {:.1} | {} | {} | {} | {} | {} | {} | {} |",
                thousands(r.per_second),
                r.mb_per_second,
                ratio(Some(r.per_second), axum),
                ratio(Some(r.per_second), fast),
                ratio(Some(r.per_second), uws),
                cpu(r.server_cpu),
                us(r.server_us_per_op),
                cpu(Some(r.client_cpu)),
                cpu(r.other_cpu),
            );
        }
    }
    let _ = writeln!(t, "\nMB/s counts payload bytes echoed back (10^6 bytes per MB), one way.\n");

    // Latency.
    let _ = writeln!(t, "### Round-trip latency (20 B messages)\n");
    let _ = writeln!(
        t,
        "| connections | server | p50 µs | p99 µs | p50 × axum ({DOWN}) | p99 × axum ({DOWN}) | p50 × fastwebsockets ({DOWN}) | p99 × fastwebsockets ({DOWN}) | p50 × uWS ({DOWN}) | p99 × uWS ({DOWN}) |"
    );
    let _ = writeln!(t, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (scenario, label) in LATENCY {
        let axum = results.get(scenario, "axum");
        let fast = results.get(scenario, "fastwebsockets");
        let uws = results.get(scenario, "uws");
        for (server, name) in SERVERS {
            let Some(r) = results.get(scenario, server) else { continue };
            let _ = writeln!(
                t,
                "| {label} | {name} | {:.1} | {:.1} | {} | {} | {} | {} | {} | {} |",
                r.p50_us,
                r.p99_us,
                ratio(Some(r.p50_us), axum.as_ref().map(|a| a.p50_us)),
                ratio(Some(r.p99_us), axum.as_ref().map(|a| a.p99_us)),
                ratio(Some(r.p50_us), fast.as_ref().map(|a| a.p50_us)),
                ratio(Some(r.p99_us), fast.as_ref().map(|a| a.p99_us)),
                ratio(Some(r.p50_us), uws.as_ref().map(|a| a.p50_us)),
                ratio(Some(r.p99_us), uws.as_ref().map(|a| a.p99_us)),
            );
        }
    }
    let _ = writeln!(
        t,
        "\nClosed loop: at 100 connections the latency is mostly queueing behind the other 99 \
         (≈ connections ÷ throughput). The 100-connection figures come from the 100 × 20 B echo run.\n"
    );

    // Handshakes.
    let _ = writeln!(t, "### Handshake churn\n");
    let churn_label = results
        .by_key
        .keys()
        .find(|(s, _)| s == "churn")
        .and_then(|k| results.get(&k.0, &k.1))
        .map_or(String::new(), |r| format!(" ({} concurrent)", r.connections));
    let _ = writeln!(
        t,
        "Connect, upgrade, Close frame, the server's Close, end of the TCP stream{churn_label}.\n"
    );
    let _ = writeln!(
        t,
        "| server | handshakes/s | × axum ({UP}) | × fastwebsockets ({UP}) | × uWS ({UP}) | server CPU | server µs/handshake | client CPU | others' CPU |"
    );
    let _ = writeln!(t, "|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    let axum = results.get("churn", "axum").map(|r| r.per_second);
    let fast = results.get("churn", "fastwebsockets").map(|r| r.per_second);
    let uws = results.get("churn", "uws").map(|r| r.per_second);
    for (server, name) in SERVERS {
        let Some(r) = results.get("churn", server) else { continue };
        let _ = writeln!(
            t,
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {} |",
            thousands(r.per_second),
            ratio(Some(r.per_second), axum),
            ratio(Some(r.per_second), fast),
            ratio(Some(r.per_second), uws),
            cpu(r.server_cpu),
            us(r.server_us_per_op),
            cpu(Some(r.client_cpu)),
            cpu(r.other_cpu),
        );
    }

    // Idle memory.
    let idle_count = results
        .by_key
        .iter()
        .find(|((scenario, _), _)| scenario == "idle")
        .and_then(|(_, runs)| runs.first())
        .map_or(10_000, |r| r.count);
    let _ = writeln!(
        t,
        "\n### Idle memory ({} idle WebSockets, default options)\n",
        thousands(idle_count as f64)
    );
    let _ = writeln!(
        t,
        "| server | RSS before | RSS after | growth per socket | × axum ({DOWN}) | × fastwebsockets ({DOWN}) | × uWS ({DOWN}) |"
    );
    let _ = writeln!(t, "|---|---:|---:|---:|---:|---:|---:|");
    let axum = results.get("idle", "axum").and_then(|r| r.rss_per_socket_bytes);
    let fast = results.get("idle", "fastwebsockets").and_then(|r| r.rss_per_socket_bytes);
    let uws = results.get("idle", "uws").and_then(|r| r.rss_per_socket_bytes);
    for (server, name) in SERVERS {
        let Some(r) = results.get("idle", server) else { continue };
        let per = r.rss_per_socket_bytes.unwrap_or(0.0);
        let _ = writeln!(
            t,
            "| {name} | {:.1} MiB | {:.1} MiB | {:.1} KiB | {} | {} | {} |",
            r.rss_before_kib.unwrap_or(0) as f64 / 1024.0,
            r.rss_after_kib.unwrap_or(0) as f64 / 1024.0,
            per / 1024.0,
            ratio(Some(per), axum),
            ratio(Some(per), fast),
            ratio(Some(per), uws),
        );
    }

    uws_load_tables(&mut t, results);
    deflate_tables(&mut t, results);

    // Plain HTTP.
    let _ = writeln!(t, "\n### The layer on plain HTTP (axum app, `GET /`, no upgrade)\n");
    let base = results.get("http", "http-axum").map(|r| r.per_second);
    let _ = writeln!(
        t,
        "| app | requests/s (median) | runs | × axum ({UP}) | p50 µs | p99 µs | server CPU | server µs/request | others' CPU |"
    );
    let _ = writeln!(t, "|---|---:|---|---:|---:|---:|---:|---:|---:|");
    for (server, name) in [
        ("http-axum", "axum `Router`, no layer"),
        ("http-axum-layer", "`Router::layer(WebSocketLayer::new())`"),
        ("http-axum-outer", "`WebSocketLayer::new().layer(router)`"),
    ] {
        let Some(r) = results.get("http", server) else { continue };
        let runs: Vec<String> =
            results.runs("http", server).iter().map(|r| thousands(r.per_second)).collect();
        let _ = writeln!(
            t,
            "| {name} | {} | {} | {} | {:.1} | {:.1} | {} | {} | {} |",
            thousands(r.per_second),
            runs.join(", "),
            ratio(Some(r.per_second), base),
            r.p50_us,
            r.p99_us,
            cpu(r.server_cpu),
            us(r.server_us_per_op),
            cpu(r.other_cpu),
        );
    }
    // The change in requests per second against the app without the layer (negative: slower).
    let change_of = |server: &str| match (base, results.get("http", server).map(|r| r.per_second)) {
        (Some(b), Some(l)) if b > 0.0 => Some((l / b - 1.0) * 100.0),
        _ => None,
    };
    let http_change = change_of("http-axum-layer");
    if let (Some(change), Some(r)) = (http_change, results.get("http", "http-axum")) {
        let outer =
            change_of("http-axum-outer").map_or(String::new(), |c| format!("; around the Router {c:+.1} %"));
        let _ = writeln!(
            t,
            "\nRequests per second with the layer, median against median: on the Router {change:+.1} %{outer} \
             ({} runs each in rotating order, {} connections; fastwebsockets has no part here). Runs of \
             the same app differ by up to 15–20 % on this machine (see the runs column), more than the \
             effect sought: the in-process criterion figures below (`axum app (GET /)`) are the \
             measurement.",
            results.runs("http", "http-axum").len(),
            r.connections
        );
    }

    // Criterion.
    let micro = args.criterion.as_ref().map(|dir| criterion_rows(dir)).unwrap_or_default();
    if !micro.is_empty() {
        let _ = writeln!(t, "\n### Classifying a request (criterion, `cargo bench --bench classify`)\n");
        let _ = writeln!(t, "| benchmark | ns per request |");
        let _ = writeln!(t, "|---|---:|");
        for (name, ns) in &micro {
            let _ = writeln!(t, "| {name} | {ns:.1} |");
        }
    }

    // Goals.
    let _ = writeln!(t, "\n### Goals\n");
    let _ = writeln!(t, "| goal | figure | met |");
    let _ = writeln!(t, "|---|---|---|");
    let mut headline = Vec::new();
    for (scenario, label) in ECHO {
        let axum = results.get(scenario, "axum").map(|r| r.per_second);
        for ours in OURS {
            let Some(r) = results.get(scenario, ours) else { continue };
            let x = axum.map(|a| r.per_second / a);
            let _ = writeln!(
                t,
                "| throughput ≥ 1.0× axum: {label}, {ours} | {} | {} |",
                ratio(Some(r.per_second), axum),
                met(x.map(|x| x >= 1.0))
            );
        }
    }
    // Issue #12: against uWebSockets, with both load generators.
    for (scenario, label, goal) in UWS_GOALS {
        for (generator, scenario) in [("bench-load", scenario.0), ("load_test", scenario.1)] {
            let uws = results.get(scenario, "uws").map(|r| r.per_second);
            for ours in OURS {
                let Some(r) = results.get(scenario, ours) else { continue };
                let x = uws.map(|u| r.per_second / u);
                let _ = writeln!(
                    t,
                    "| throughput ≥ {goal:.1}× uWS: {label}, {ours}, {generator} | {} | {} |",
                    ratio(Some(r.per_second), uws),
                    met(x.map(|x| x >= goal))
                );
            }
        }
    }
    for line in deflate_goals(results).into_iter().chain(fan_out_goals(results)) {
        let _ = writeln!(t, "{line}");
    }
    let churn_axum = results.get("churn", "axum").map(|r| r.per_second);
    for ours in OURS {
        if let Some(r) = results.get("churn", ours) {
            let x = churn_axum.map(|a| r.per_second / a);
            let _ = writeln!(
                t,
                "| handshakes ≥ 1.0× axum, {ours} | {} | {} |",
                ratio(Some(r.per_second), churn_axum),
                met(x.map(|x| x >= 1.0))
            );
        }
    }
    let idle_ours = results.get("idle", "ours-axum").or_else(|| results.get("idle", "ours-hyper"));
    if let Some(per) = idle_ours.and_then(|r| r.rss_per_socket_bytes) {
        let _ = writeln!(
            t,
            "| idle memory ≤ 8 KiB per socket | {:.1} KiB | {} |",
            per / 1024.0,
            met(Some(per <= 8192.0))
        );
    }
    // The same goal from the in-process figures: the extra time per request against the
    // server's whole CPU time per request in the wire runs.
    let micro_ns = |name: &str| micro.iter().find(|(n, _)| n == name).map(|(_, ns)| *ns);
    let server_ns = results.get("http", "http-axum").and_then(|r| r.server_us_per_op).map(|us| us * 1000.0);
    if let (Some(none), Some(total)) = (micro_ns("axum app (GET /)/without the layer"), server_ns) {
        for (bench, label) in [
            ("axum app (GET /)/Router::layer(WebSocketLayer)", "on the Router"),
            ("axum app (GET /)/WebSocketLayer around the Router", "around the Router"),
        ] {
            if let Some(with) = micro_ns(bench) {
                let share = (with - none) / total * 100.0;
                let _ = writeln!(
                    t,
                    "| plain HTTP: the layer costs ≤ 1 %, in process, {label} | {:+.0} ns of {:.1} µs per request: {share:.1} % | {} |",
                    with - none,
                    total / 1000.0,
                    met(Some(share <= 1.0))
                );
            }
        }
    }
    if let Some(change) = http_change {
        let _ = writeln!(
            t,
            "| plain HTTP: the layer costs ≤ 1 % of requests/s (wire, noisy; see criterion) | {change:+.1} % | {} |",
            met(Some(change >= -1.0))
        );
    }

    // Headline lines for the README.
    let line = |scenario: &str, label: &str| -> Option<String> {
        let r = results.get(scenario, "ours-axum")?;
        let axum = results.get(scenario, "axum")?.per_second;
        let fast = results.get(scenario, "fastwebsockets")?.per_second;
        let uws = results.get(scenario, "uws").map(|u| u.per_second);
        Some(format!(
            "| {label} | {} | {:.2}× | {:.2}× | {} |",
            thousands(r.per_second),
            r.per_second / axum,
            r.per_second / fast,
            ratio(Some(r.per_second), uws),
        ))
    };
    headline.push(
        "| echo, on axum (ratios: higher is better; for memory, lower) | tower-websockets | × axum | × fastwebsockets | × uWS |"
            .to_owned(),
    );
    headline.push("|---|---:|---:|---:|---:|".to_owned());
    for (scenario, label) in ECHO {
        headline.extend(line(scenario, &format!("{label}, echoes/s")));
    }
    headline.extend(line("churn", "handshakes/s"));
    if let (Some(o), Some(a), Some(f)) = (
        results.get("idle", "ours-axum").and_then(|r| r.rss_per_socket_bytes),
        results.get("idle", "axum").and_then(|r| r.rss_per_socket_bytes),
        results.get("idle", "fastwebsockets").and_then(|r| r.rss_per_socket_bytes),
    ) {
        let u = results.get("idle", "uws").and_then(|r| r.rss_per_socket_bytes);
        headline.push(format!(
            "| idle memory per socket | {:.1} KiB | {:.2}× | {:.2}× | {} |",
            o / 1024.0,
            o / a,
            o / f,
            ratio(Some(o), u),
        ));
    }
    let _ = writeln!(t, "\nHeadline figures (for the README):\n");
    for l in headline {
        let _ = writeln!(t, "{l}");
    }
    t
}

/// The `deflate` scenario (issue 11): JSON text echoed with permessage-deflate.
const DEFLATE: [(&str, &str); 2] =
    [("deflate-100x1k", "100 conn × 1 KiB JSON"), ("deflate-10x64k", "10 conn × 64 KiB JSON")];
/// The scenario's servers (scripts/bench.sh names them): ours and the peer with compression,
/// ours without (the client offers, the server declines).
const DEFLATE_SERVERS: [(&str, &str); 3] = [
    ("ours-deflate", "**tower-websockets** (axum), compression on"),
    ("sockudo-deflate", "sockudo-ws (axum), compression on"),
    ("ours-plain", "**tower-websockets** (axum), compression off"),
];
/// The memory runs: the servers above and both with `server_no_context_takeover`, each with the
/// peer's server to compare with.
const DEFLATE_MEMORY: [(&str, &str, Option<&str>); 5] = [
    ("ours-deflate", "**tower-websockets**, context takeover", Some("sockudo-deflate")),
    ("ours-deflate-nct", "**tower-websockets**, `server_no_context_takeover`", Some("sockudo-deflate-nct")),
    ("sockudo-deflate", "sockudo-ws, context takeover", Some("sockudo-deflate")),
    ("sockudo-deflate-nct", "sockudo-ws, `server_no_context_takeover`", Some("sockudo-deflate-nct")),
    ("ours-plain", "**tower-websockets**, compression off", None),
];
/// The peer, the denominator of every `× peer` ratio.
const PEER: &str = "sockudo-deflate";

fn bytes(value: Option<f64>) -> String {
    value.map_or("–".to_owned(), |v| format!("{v:.0}"))
}

/// The permessage-deflate tables, when a run has any of their records.
fn deflate_tables(t: &mut String, results: &Results) {
    let has = |scenario: &str| results.by_key.keys().any(|(s, _)| s == scenario);
    if DEFLATE.iter().any(|(scenario, _)| has(scenario)) {
        let _ = writeln!(t, "\n### permessage-deflate: echo of JSON text\n");
        let _ = writeln!(
            t,
            "Goal (issue 11): ours with compression at least 1.0× the peer with compression \
             (sockudo-ws), in echoes per second. Both compress at level 1 with context takeover \
             and 15-bit windows, every message; the load generator offers `permessage-deflate; \
             client_max_window_bits`, sends compressed frames and inflates every echo (to ours \
             without compression, it offers the same and is declined). \"Wire\" is bytes per \
             message on the socket, frame headers included: up is client to server, down is the \
             echo; \"× smaller\" divides the message's size by the echo's bytes on the wire.\n"
        );
        let _ = writeln!(
            t,
            "| scenario | server | echoes/s | × peer ({UP}) | MB/s | server CPU | server µs/echo | µs × peer ({DOWN}) | wire B up | wire B down | × smaller (down) | client CPU | others' CPU |"
        );
        let _ = writeln!(t, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        let mut saturated = Vec::new();
        for (scenario, label) in DEFLATE {
            let peer = results.get(scenario, PEER);
            for (server, name) in DEFLATE_SERVERS {
                let Some(r) = results.get(scenario, server) else { continue };
                if r.client_cpu >= 90.0 {
                    saturated.push(format!("{label}, {server}"));
                }
                let smaller =
                    r.wire_down_bytes.filter(|b| *b > 0.0).map(|b| format!("{:.1}×", r.size as f64 / b));
                let _ = writeln!(
                    t,
                    "| {label} | {name} | {} | {} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    thousands(r.per_second),
                    ratio(Some(r.per_second), peer.as_ref().map(|p| p.per_second)),
                    r.mb_per_second,
                    cpu(r.server_cpu),
                    us(r.server_us_per_op),
                    ratio(r.server_us_per_op, peer.as_ref().and_then(|p| p.server_us_per_op)),
                    bytes(r.wire_up_bytes),
                    bytes(r.wire_down_bytes),
                    smaller.unwrap_or_else(|| "–".to_owned()),
                    cpu(Some(r.client_cpu)),
                    cpu(r.other_cpu),
                );
            }
        }
        if !saturated.is_empty() {
            let _ = writeln!(
                t,
                "\nThe load generator used 90 % of its core or more in: {}. There it may be the \
                 bottleneck (it inflates every echo): compare the server µs per echo, not the rates.",
                saturated.join("; ")
            );
        }
    }
    if has("deflate-memory") {
        let count = DEFLATE_MEMORY
            .iter()
            .find_map(|(server, _, _)| results.get("deflate-memory", server))
            .map_or(0, |r| r.count);
        let _ = writeln!(
            t,
            "\n### permessage-deflate: memory per socket ({} sockets, each after one 1 KiB echo)\n",
            thousands(count as f64)
        );
        let _ = writeln!(
            t,
            "The server's RSS growth over N sockets that have each echoed one compressed JSON \
             message and then idle, divided by N; `× peer` compares with sockudo-ws at the same \
             context takeover.\n"
        );
        let _ = writeln!(t, "| server | RSS before | RSS after | per socket | × peer ({DOWN}) |");
        let _ = writeln!(t, "|---|---:|---:|---:|---:|");
        for (server, name, peer) in DEFLATE_MEMORY {
            let Some(r) = results.get("deflate-memory", server) else { continue };
            let per = r.rss_per_socket_bytes;
            let peer =
                peer.and_then(|p| results.get("deflate-memory", p)).and_then(|p| p.rss_per_socket_bytes);
            let _ = writeln!(
                t,
                "| {name} | {:.1} MiB | {:.1} MiB | {} | {} |",
                r.rss_before_kib.unwrap_or(0) as f64 / 1024.0,
                r.rss_after_kib.unwrap_or(0) as f64 / 1024.0,
                per.map_or("–".to_owned(), |b| format!("{:.1} KiB", b / 1024.0)),
                ratio(per, peer),
            );
        }
    }
}

/// The goal rows of the `deflate` scenario.
fn deflate_goals(results: &Results) -> Vec<String> {
    let mut lines = Vec::new();
    for (scenario, label) in DEFLATE {
        let (Some(ours), Some(peer)) = (results.get(scenario, "ours-deflate"), results.get(scenario, PEER))
        else {
            continue;
        };
        lines.push(format!(
            "| permessage-deflate ≥ 1.0× the peer (sockudo-ws), compression on: {label} | {} | {} |",
            ratio(Some(ours.per_second), Some(peer.per_second)),
            met((peer.per_second > 0.0).then(|| ours.per_second / peer.per_second >= 1.0))
        ));
    }
    lines
}

fn met(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "yes",
        Some(false) => "**no**",
        None => "–",
    }
}

/// `(benchmark, mean ns)` from criterion's `DIR/<group>/<bench>/new/estimates.json` and
/// `benchmark.json` (which holds the benchmark's full name).
fn criterion_rows(dir: &std::path::Path) -> Vec<(String, f64)> {
    let mut rows = Vec::new();
    let Ok(groups) = fs::read_dir(dir) else { return rows };
    for group in groups.flatten() {
        let Ok(benches) = fs::read_dir(group.path()) else { continue };
        for bench in benches.flatten() {
            let new = bench.path().join("new");
            let (Ok(estimates), Ok(meta)) = (
                fs::read_to_string(new.join("estimates.json")),
                fs::read_to_string(new.join("benchmark.json")),
            ) else {
                continue;
            };
            let (Ok(estimates), Ok(meta)) = (
                serde_json::from_str::<serde_json::Value>(&estimates),
                serde_json::from_str::<serde_json::Value>(&meta),
            ) else {
                continue;
            };
            let name = meta["full_id"].as_str().unwrap_or("?").to_owned();
            if let Some(ns) = estimates["mean"]["point_estimate"].as_f64() {
                rows.push((name, ns));
            }
        }
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(mode: &str, scenario: &str, server: &str, per_second: f64) -> Record {
        Record {
            mode: mode.to_owned(),
            scenario: scenario.to_owned(),
            server: server.to_owned(),
            connections: 100,
            size: 20,
            per_second,
            p50_us: per_second / 1000.0,
            p99_us: per_second / 500.0,
            slices: vec![per_second],
            ..Record::default()
        }
    }

    fn render_records(records: Vec<Record>) -> String {
        let args = Args {
            results: PathBuf::new(),
            lock: PathBuf::new(),
            criterion: None,
            meta: vec![("uws".to_owned(), "uWebSockets from libuwebsockets-sys 0.0.10".to_owned())],
            out: None,
            docs: None,
        };
        render(&Results::new(records), "", &args)
    }

    fn row<'a>(table: &'a str, starts: &str) -> &'a str {
        table
            .lines()
            .find(|l| l.starts_with(starts))
            .unwrap_or_else(|| panic!("no row {starts:?} in\n{table}"))
    }

    #[test]
    fn echo_and_latency_tables_have_the_uws_ratio_and_say_which_way_is_better() {
        let t = render_records(vec![
            record("echo", "echo-100x20", "ours-axum", 90_000.0),
            record("echo", "echo-100x20", "axum", 60_000.0),
            record("echo", "echo-100x20", "fastwebsockets", 100_000.0),
            record("echo", "echo-100x20", "uws", 120_000.0),
        ]);
        assert!(t.contains(
            "| × axum (higher is better) | × fastwebsockets (higher is better) | × uWS (higher is better) |"
        ));
        assert!(t.contains("| p50 × uWS (lower is better) | p99 × uWS (lower is better) |"));
        // 90,000 / 60,000, / 100,000, / 120,000.
        assert!(
            row(&t, "| 100 conn × 20 B | **tower-websockets** (axum) | 90,000 |")
                .contains("| 1.50× | 0.90× | 0.75× |")
        );
        assert!(
            row(&t, "| 100 conn × 20 B | uWebSockets (`EchoServer` example) | 120,000 |")
                .contains("| 2.00× | 1.20× | 1.00× |")
        );
        assert!(
            row(&t, "| throughput ≥ 0.9× uWS: 100 conn × 20 B, ours-axum, bench-load |")
                .contains("| 0.75× | **no** |")
        );
        assert!(row(&t, "| 100 conn × 20 B, echoes/s |").ends_with("| 1.50× | 0.90× | 0.75× |"));
        assert!(t.contains("| uWebSockets | uWebSockets from libuwebsockets-sys 0.0.10 |"));
        // No load_test run, no load_test table.
        assert!(!t.contains("measured by uWebSockets' `load_test`"));
    }

    #[test]
    fn small_ratios_keep_a_significant_digit() {
        assert_eq!(ratio(Some(246.0), Some(132_384.0)), "0.002×");
        assert_eq!(ratio(Some(90.0), Some(60.0)), "1.50×");
        assert_eq!(ratio(Some(1.0), Some(0.0)), "–");
        assert_eq!(ratio(None, Some(1.0)), "–");
    }

    #[test]
    fn a_missing_uws_figure_gives_a_dash_not_a_ratio() {
        let t = render_records(vec![
            record("echo", "echo-100x20", "ours-axum", 90_000.0),
            record("echo", "echo-100x20", "axum", 60_000.0),
        ]);
        assert!(
            row(&t, "| 100 conn × 20 B | **tower-websockets** (axum) | 90,000 |")
                .contains("| 1.50× | – | – |")
        );
    }

    #[test]
    fn load_test_runs_get_their_own_table_and_goals() {
        let t = render_records(vec![
            record("uws-load", "uwsload-200x16k", "ours-hyper", 40_000.0),
            record("uws-load", "uwsload-200x16k", "uws", 50_000.0),
        ]);
        assert!(t.contains("### Echo throughput, measured by uWebSockets' `load_test`"));
        assert!(
            row(&t, "| 200 conn × 16 KiB | **tower-websockets** (hyper `service_fn`) | 40,000 | 40,000 |")
                .contains("| 0.80× |")
        );
        assert!(
            row(&t, "| throughput ≥ 0.8× uWS: 200 conn × 16 KiB, ours-hyper, load_test |")
                .contains("| 0.80× | yes |")
        );
        // The load_test records are not echo-table rows.
        assert!(!t.contains("| 200 conn × 16 KiB | uWebSockets (`EchoServer` example) | 50,000 | 50.0 |"));
    }

    fn deflate_record(scenario: &str, server: &str, per_second: f64, size: usize) -> Record {
        Record {
            size,
            mb_per_second: per_second * size as f64 / 1e6,
            server_us_per_op: Some(1e6 / per_second),
            wire_up_bytes: Some(size as f64 / 8.0),
            wire_down_bytes: Some(size as f64 / 5.0),
            client_cpu: 40.0,
            ..record("echo", scenario, server, per_second)
        }
    }

    #[test]
    fn deflate_runs_get_their_table_ratios_to_the_peer_and_the_goal() {
        let memory = |server: &str, per_socket: f64| Record {
            rss_per_socket_bytes: Some(per_socket),
            count: 1000,
            ..record("idle", "deflate-memory", server, 1.0)
        };
        let t = render_records(vec![
            deflate_record("deflate-100x1k", "ours-deflate", 30_000.0, 1024),
            deflate_record("deflate-100x1k", "sockudo-deflate", 25_000.0, 1024),
            deflate_record("deflate-100x1k", "ours-plain", 60_000.0, 1024),
            deflate_record("deflate-10x64k", "ours-deflate", 900.0, 65_536),
            Record {
                client_cpu: 95.0,
                ..deflate_record("deflate-10x64k", "sockudo-deflate", 1_000.0, 65_536)
            },
            memory("ours-deflate", 300.0 * 1024.0),
            memory("sockudo-deflate", 400.0 * 1024.0),
            memory("ours-plain", 8.0 * 1024.0),
        ]);
        assert!(t.contains("### permessage-deflate: echo of JSON text"));
        assert!(t.contains("Goal (issue 11): ours with compression at least 1.0× the peer"));
        // 30,000 / 25,000; µs per echo 33.3 against 40.0; 1024 / 204.8 = 5.0× smaller.
        assert!(
            row(&t, "| 100 conn × 1 KiB JSON | **tower-websockets** (axum), compression on | 30,000 |")
                .contains("| 1.20× | 30.7 | – | 33.33 | 0.83× | 128 | 205 | 5.0× | 40 % |")
        );
        assert!(
            row(&t, "| 100 conn × 1 KiB JSON | **tower-websockets** (axum), compression off | 60,000 |")
                .contains("| 2.40× |")
        );
        assert!(
            row(
                &t,
                "| permessage-deflate ≥ 1.0× the peer (sockudo-ws), compression on: 100 conn × 1 KiB JSON |"
            )
            .ends_with("| 1.20× | yes |")
        );
        assert!(
            row(
                &t,
                "| permessage-deflate ≥ 1.0× the peer (sockudo-ws), compression on: 10 conn × 64 KiB JSON |"
            )
            .ends_with("| 0.90× | **no** |")
        );
        assert!(t.contains(
            "The load generator used 90 % of its core or more in: 10 conn × 64 KiB JSON, sockudo-deflate."
        ));
        assert!(t.contains(
            "### permessage-deflate: memory per socket (1,000 sockets, each after one 1 KiB echo)"
        ));
        assert!(row(&t, "| **tower-websockets**, context takeover |").ends_with("| 300.0 KiB | 0.75× |"));
        assert!(row(&t, "| **tower-websockets**, compression off |").ends_with("| 8.0 KiB | – |"));
        // No record, no row.
        assert!(!t.contains("`server_no_context_takeover` |"));
    }

    #[test]
    fn no_deflate_records_no_deflate_tables() {
        let t = render_records(vec![record("echo", "echo-100x20", "ours-axum", 90_000.0)]);
        assert!(!t.contains("permessage-deflate"));
    }

    #[test]
    fn broadcast_test_runs_get_a_fan_out_table_ratios_and_goals() {
        let fan = |scenario: &str, server: &str, per_second: f64, connections: usize| Record {
            connections,
            rss_before_kib: Some(4096),
            rss_after_kib: Some(4096 + 10 * 1024),
            rss_per_socket_bytes: Some(10.0 * 1024.0 * 1024.0 / connections as f64),
            slow_clients: Some(usize::from(scenario.ends_with("slow"))),
            dropped: server.starts_with("ours").then_some(7),
            ..record("uws-broadcast", scenario, server, per_second)
        };
        let t = render_records(vec![
            fan("fanout-100", "ours-hub", 300.0, 100),
            fan("fanout-100", "axum-chat", 100.0, 100),
            fan("fanout-100", "uws-pubsub", 600.0, 100),
            fan("fanout-100", "other", 50.0, 100),
            fan("fanout-1000", "ours-hub", 2.0, 1000),
            fan("fanout-1000", "uws-pubsub", 2.0, 1000),
            fan("fanout-1000-slow", "ours-hub", 1.9, 1000),
        ]);
        assert!(t.contains("### Fan-out, measured by uWebSockets' `broadcast_test`"));
        // 300 rounds/s of 100 × 100 deliveries; 3× the chat, 0.5× uWebSockets.
        let ours = row(&t, "| 100 clients | **tower-websockets** `broadcast::Hub`, `forward_to`");
        assert!(ours.contains("| 300.00 | 300.00 | 3,000,000 | 3.00× | 0.50× |"), "{ours}");
        assert!(ours.contains("| 14.0 MiB | 102.4 KiB | 7 |"), "{ours}");
        assert!(row(&t, "| 100 clients | `other` | 50.00 |").contains("0.50×"));
        assert!(row(&t, "| 1,000 clients + 1 that never reads | **tower-websockets**").contains("1.90"));
        let slow = row(
            &t,
            "| **tower-websockets** `broadcast::Hub`, `forward_to` (one flush per burst) | 2.00 | 1.90 |",
        );
        assert!(slow.contains("0.95×"), "{slow}");
        assert!(
            row(&t, "| fan-out ≥ 2.0× the axum chat: 100 clients, ours-hub | 3.00× | yes |")
                .ends_with("yes |")
        );
        assert!(row(&t, "| fan-out ≥ 0.8× uWebSockets: 100 clients, ours-hub | 0.50× |").contains("**no**"));
        assert!(row(&t, "| fan-out ≥ 0.8× uWebSockets: 1,000 clients, ours-hub | 1.00× |").contains("yes"));
        assert!(
            row(&t, "| fan-out: memory per subscriber reported (1,000 clients), ours-hub | 10.2 KiB |")
                .contains("yes")
        );
        assert!(row(&t, "| fan-out: a slow subscriber does not slow the others").contains("0.95× | yes"));
    }
}
