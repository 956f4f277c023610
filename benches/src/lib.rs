//! What the benchmark binaries share: reading a process's CPU time and memory from `/proc`, and
//! the result record that `bench-load` prints and `bench-report` reads.

use std::{fs, io};

use serde::{Deserialize, Serialize};

/// Clock ticks per second, the unit of `utime` and `stime` in `/proc/PID/stat`.
pub fn clock_ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as u64 } else { 100 }
}

/// User plus system CPU time of a process (`"self"` or a pid), in clock ticks, from
/// `/proc/PID/stat` fields 14 and 15.
pub fn cpu_ticks(pid: &str) -> io::Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces: split after it.
    let rest = stat.rsplit_once(')').map(|(_, rest)| rest).ok_or_else(|| bad("no ')' in stat"))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state), so field N is at index N - 3.
    let utime: u64 = fields.get(11).and_then(|f| f.parse().ok()).ok_or_else(|| bad("no utime"))?;
    let stime: u64 = fields.get(12).and_then(|f| f.parse().ok()).ok_or_else(|| bad("no stime"))?;
    Ok(utime + stime)
}

/// CPU time of the whole machine, all cores, that was not idle: user, nice, system, irq,
/// softirq and steal from the first line of `/proc/stat`, in clock ticks.
pub fn machine_busy_ticks() -> io::Result<u64> {
    let stat = fs::read_to_string("/proc/stat")?;
    let line = stat.lines().next().ok_or_else(|| bad("empty /proc/stat"))?;
    let fields: Vec<u64> = line.split_whitespace().skip(1).filter_map(|f| f.parse().ok()).collect();
    if fields.len() < 8 {
        return Err(bad("short cpu line in /proc/stat"));
    }
    // user nice system idle iowait irq softirq steal
    Ok(fields[0] + fields[1] + fields[2] + fields[5] + fields[6] + fields[7])
}

/// Resident set size of a process, in KiB, from `VmRSS` in `/proc/PID/status`.
pub fn rss_kib(pid: &str) -> io::Result<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| bad("no VmRSS"))
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_owned())
}

/// CPU use between two readings of [`cpu_ticks`], as a percentage of one core.
pub fn cpu_percent(ticks: u64, seconds: f64) -> f64 {
    if seconds <= 0.0 {
        return 0.0;
    }
    ticks as f64 / clock_ticks_per_second() as f64 / seconds * 100.0
}

/// One measurement, as `bench-load` prints it (one JSON object per line).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Record {
    /// `echo`, `churn`, `idle` or `http`.
    pub mode: String,
    /// The scenario label given on the command line (such as `echo-100x20`).
    pub scenario: String,
    /// The server's name, as given to `bench-server --server`.
    pub server: String,
    /// Concurrent connections.
    pub connections: usize,
    /// Payload size in bytes (echo), or 0.
    pub size: usize,
    /// Length of the measuring window, in seconds.
    pub seconds: f64,
    /// Completed operations (echoes, handshakes, HTTP responses) in the window.
    pub count: u64,
    /// Operations per second over the window.
    pub per_second: f64,
    /// Operations per second in each one-second slice of the window.
    pub slices: Vec<f64>,
    /// Payload megabytes (10^6 bytes) echoed per second, one way.
    pub mb_per_second: f64,
    /// Round-trip latency percentiles in microseconds (echo and http).
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    /// The server's CPU use over the window, in % of one core (when its pid was given).
    pub server_cpu: Option<f64>,
    /// The server's CPU time per operation, in microseconds: a cost that holds up better than
    /// the rate when the machine is busy.
    pub server_us_per_op: Option<f64>,
    /// The load generator's own CPU use over the window, in % of one core.
    pub client_cpu: f64,
    /// CPU used over the window by everything else on the machine (other processes, the
    /// kernel's own work), in % of one core: the noise. Above ~10 % the run was disturbed.
    pub other_cpu: Option<f64>,
    /// Idle memory: the server's VmRSS before and after opening the sockets, in KiB.
    pub rss_before_kib: Option<u64>,
    pub rss_after_kib: Option<u64>,
    /// Idle memory: the RSS growth per open socket, in bytes.
    pub rss_per_socket_bytes: Option<f64>,
    /// Echo: bytes on the wire per message, client to server (the frame, header and mask
    /// included).
    pub wire_up_bytes: Option<f64>,
    /// Echo: bytes on the wire per echo, server to client (its data frames, headers included).
    pub wire_down_bytes: Option<f64>,
    /// With `--deflate`: the server's permessage-deflate answer, or `declined`.
    pub deflate: Option<String>,
    /// `json` for JSON text messages; absent for the binary pattern.
    pub payload: Option<String>,
    /// Fan-out: extra clients that upgraded, joined the broadcast and never read.
    pub slow_clients: Option<usize>,
    /// Fan-out: messages the server's hub dropped from subscriber queues over the whole run
    /// (`GET /stats` of `ours-hub`), when the server reports it.
    pub dropped: Option<u64>,
}

/// A small deterministic generator (xorshift64*), so that every run sends the same bytes.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (0 is replaced: xorshift needs a non-zero state).
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 { 0x9e37_79b9_7f4a_7c15 } else { seed })
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number below `n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// One of `items` (not empty).
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

const SYMBOLS: [(&str, u64); 8] = [
    ("BTC-USD", 4_312_500),
    ("ETH-USD", 318_725),
    ("SOL-USD", 14_210),
    ("ADA-USD", 61),
    ("AAPL", 23_412),
    ("MSFT", 41_890),
    ("EUR-USD", 108),
    ("XAU-USD", 263_050),
];
const VENUES: [&str; 4] = ["XNAS", "XNYS", "BATS", "ARCX"];
const TIERS: [&str; 3] = ["basic", "gold", "platinum"];
const WORDS: [&str; 16] = [
    "market", "update", "order", "filled", "partial", "cancel", "price", "level", "book", "depth", "spread",
    "quote", "trade", "stream", "client", "session",
];

/// `count` distinct messages of JSON text of exactly `size` bytes each (as a dashboard or a
/// trading feed sends: an envelope, then an array of records whose keys repeat and whose
/// values vary), the same on every call. Text like this compresses 5–15× with
/// permessage-deflate; the records' values come from a fixed-seed generator, so consecutive
/// messages differ and a compressor with context takeover cannot just point back at the last
/// one. Sizes below about 40 bytes give letters only (not JSON).
pub fn json_messages(size: usize, count: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(0x5eed_0000_0000_0000 ^ size as u64);
    let mut id = 100_000u64;
    (0..count).map(|seq| json_message(size, seq as u64, &mut id, &mut rng)).collect()
}

fn json_message(size: usize, seq: u64, id: &mut u64, rng: &mut Rng) -> Vec<u8> {
    use std::fmt::Write as _;
    // Room the envelope's end needs: `],"note":"` and `"}`, plus at least one letter of note.
    const TAIL: usize = 13;
    let mut out = String::with_capacity(size + 256);
    let _ = write!(
        out,
        r#"{{"type":"trades","seq":{seq},"sent":"2026-11-29T18:{:02}:{:02}.{:03}Z","items":["#,
        seq / 3600 % 60,
        seq / 60 % 60,
        rng.below(1000)
    );
    if out.len() + TAIL > size {
        // Too small for the envelope: letters only.
        return (0..size).map(|i| b'a' + (i % 26) as u8).collect();
    }
    let mut record = String::with_capacity(256);
    let mut first = true;
    loop {
        record.clear();
        let (symbol, base) = SYMBOLS[rng.below(SYMBOLS.len() as u64) as usize];
        let price = base + rng.below(100);
        let user = 4_000 + rng.below(16);
        *id += 1 + rng.below(3);
        let _ = write!(
            record,
            r#"{}{{"id":{id},"symbol":"{symbol}","side":"{}","price":{}.{:02},"qty":{},"venue":"{}","user":{{"id":{user},"name":"user-{user}","tier":"{}"}},"status":"filled"}}"#,
            if first { "" } else { "," },
            rng.pick(&["buy", "sell"]),
            price / 100,
            price % 100,
            rng.pick(&["0.25", "0.5", "1", "2", "5", "10"]),
            rng.pick(&VENUES),
            rng.pick(&TIERS),
        );
        if out.len() + record.len() + TAIL > size {
            break;
        }
        out.push_str(&record);
        first = false;
    }
    out.push_str(r#"],"note":""#);
    let end = size - 2;
    let mut space = false;
    while out.len() < end {
        if space {
            out.push(' ');
        } else {
            let word = rng.pick(&WORDS);
            out.push_str(&word[..word.len().min(end - out.len())]);
        }
        space = !space;
    }
    out.push_str("\"}");
    debug_assert_eq!(out.len(), size);
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use flate2::{Compress, Compression, FlushCompress};

    use super::*;

    /// Compressed size with a sync flush, one compressor for all messages (context takeover).
    fn deflated(messages: &[Vec<u8>]) -> usize {
        let mut compress = Compress::new_with_window_bits(Compression::new(1), false, 15);
        let mut total = 0;
        for message in messages {
            let mut out = Vec::with_capacity(message.len() + 64);
            compress.compress_vec(message, &mut out, FlushCompress::Sync).unwrap();
            total += out.len() - 4;
        }
        total
    }

    #[test]
    fn json_messages_have_the_size_asked_for_and_parse() {
        for size in [400usize, 1024, 4000, 65_536] {
            let messages = json_messages(size, 8);
            for message in &messages {
                assert_eq!(message.len(), size);
                let value: serde_json::Value = serde_json::from_slice(message)
                    .unwrap_or_else(|e| panic!("size {size}: {e}: {}", String::from_utf8_lossy(message)));
                assert!(value["items"].as_array().is_some_and(|items| !items.is_empty()), "size {size}");
            }
            assert!(messages.windows(2).all(|w| w[0] != w[1]), "size {size}: consecutive messages repeat");
        }
        assert_eq!(json_messages(10, 2), vec![b"abcdefghij".to_vec(); 2]);
    }

    #[test]
    fn json_messages_are_deterministic() {
        assert_eq!(json_messages(1024, 4), json_messages(1024, 4));
        assert_ne!(json_messages(1024, 4)[0][..200], json_messages(2048, 4)[0][..200]);
    }

    #[test]
    fn json_messages_compress_5_to_15_times() {
        for (size, count) in [(1024usize, 256usize), (65_536, 4)] {
            let messages = json_messages(size, count);
            let ratio = (size * count) as f64 / deflated(&messages) as f64;
            assert!((5.0..=15.0).contains(&ratio), "{size} B: compresses {ratio:.1}×");
        }
    }
}
