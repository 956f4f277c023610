//! The echo example as a process: SIGTERM closes every WebSocket with 1001 and the process exits
//! with status 0 within --shutdown-timeout.
#![cfg(unix)]

use std::{path::PathBuf, process::Stdio, time::Duration};

use futures_util::{SinkExt, StreamExt};
use tokio::{
    io::{AsyncBufReadExt, BufReader},
    process::{Child, Command},
};
use tokio_tungstenite::tungstenite::Message;

/// `target/<profile>/examples/echo`, which `cargo test` builds beside the test binaries; built
/// here if this test runs alone.
fn echo_binary() -> PathBuf {
    let mut dir = std::env::current_exe().unwrap();
    dir.pop(); // the test binary
    if dir.ends_with("deps") {
        dir.pop();
    }
    let binary = dir.join("examples").join("echo");
    if !binary.exists() {
        let status =
            std::process::Command::new(env!("CARGO")).args(["build", "--example", "echo"]).status().unwrap();
        assert!(status.success(), "cargo build --example echo");
    }
    binary
}

/// Starts the echo example on a free port; returns the process, its address, and its output.
async fn start(args: &[&str]) -> (Child, String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    let mut child = Command::new(echo_binary())
        .args(["--bind", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
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

/// The rest of the process's output, up to its end.
async fn rest_of(log: &mut tokio::sync::mpsc::UnboundedReceiver<String>) -> String {
    let mut lines = Vec::new();
    while let Ok(Some(line)) = tokio::time::timeout(Duration::from_secs(10), log.recv()).await {
        lines.push(line);
    }
    lines.join("\n")
}

fn sigterm(child: &Child) {
    let pid = child.id().unwrap().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
}

#[tokio::test]
async fn sigterm_closes_every_socket_with_1001_and_exits_0() {
    let (mut child, addr, mut log) = start(&["--shutdown-timeout", "10"]).await;
    let mut readers = Vec::new();
    for i in 0..3 {
        let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await.unwrap();
        socket.send(Message::text(format!("before {i}"))).await.unwrap();
        assert_eq!(socket.next().await.unwrap().unwrap(), Message::text(format!("before {i}")));
        readers.push(tokio::spawn(async move {
            let mut codes = Vec::new();
            while let Some(Ok(message)) = socket.next().await {
                if let Message::Close(Some(frame)) = message {
                    codes.push(u16::from(frame.code));
                }
            }
            codes
        }));
    }

    sigterm(&child);
    for reader in readers {
        let codes = tokio::time::timeout(Duration::from_secs(10), reader).await.unwrap().unwrap();
        assert_eq!(codes, vec![1001]);
    }
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status}");
    let output = rest_of(&mut log).await;
    assert!(output.contains("SIGTERM: shutting down"), "{output}");
    assert!(output.contains("open=3 cut=0"), "{output}");
}

#[tokio::test]
async fn a_client_that_ignores_the_close_is_cut_at_the_deadline() {
    let (mut child, addr, mut log) = start(&["--shutdown-timeout", "1"]).await;
    // Never reads again, so never answers the server's Close.
    let (_deaf, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws")).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    sigterm(&child);
    let started = std::time::Instant::now();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait()).await.unwrap().unwrap();
    assert!(status.success(), "{status}");
    assert!(started.elapsed() >= Duration::from_secs(1), "it waited for the deadline");
    let output = rest_of(&mut log).await;
    assert!(output.contains("open=1 cut=1"), "{output}");
}
