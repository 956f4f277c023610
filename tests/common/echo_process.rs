//! The echo example as a child process, for the tests that need it whole (signals, limits).

use std::{path::PathBuf, process::Stdio, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
    sync::mpsc,
};

/// `target/<profile>/examples/echo`, built (once per test process) by `cargo build --example
/// echo`: `cargo test` builds the example only as a test harness, so without this a binary left
/// by an older build would be tested (one without `--metrics`, say).
pub(crate) fn echo_binary() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let mut dir = std::env::current_exe().unwrap();
            dir.pop(); // the test binary
            if dir.ends_with("deps") {
                dir.pop();
            }
            let mut build = std::process::Command::new(env!("CARGO"));
            build.args(["build", "--example", "echo"]);
            if !cfg!(debug_assertions) {
                build.arg("--release"); // the profile of this test binary, whose directory is used
            }
            if cfg!(feature = "metrics") {
                build.args(["--features", "metrics"]);
            }
            let status = build.status().unwrap();
            assert!(status.success(), "cargo build --example echo");
            dir.join("examples").join("echo")
        })
        .clone()
}

/// Starts the echo example on a free port; returns the process, its address, and its output.
pub(crate) async fn start(args: &[&str]) -> (Child, String, mpsc::UnboundedReceiver<String>) {
    let mut child = Command::new(echo_binary())
        .args(["--bind", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (tx, mut rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = tx.send(line);
        }
    });
    let addr = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let line = rx.recv().await.expect("the echo example exited early");
            if let Some((_, rest)) = line.split_once("listening on http://") {
                return rest.trim().to_owned();
            }
        }
    })
    .await
    .expect("the listening line");
    (child, addr, rx)
}
