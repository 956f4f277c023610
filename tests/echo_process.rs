//! The echo example as a process: SIGTERM closes every WebSocket with 1001 and the process exits
//! with status 0 within --shutdown-timeout.
#![cfg(unix)]

mod common;

use std::time::Duration;

use common::echo_process::start;
use futures_util::{SinkExt, StreamExt};
use tokio::process::Child;
use tokio_tungstenite::tungstenite::Message;

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
