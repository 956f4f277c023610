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
}
