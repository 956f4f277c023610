//! `WebSocketSender`: sending from other tasks through the socket's one owner, the byte-bounded
//! queue and its policies, keep-alive and shutdown while only senders send, no leaks, and every
//! method after the socket has ended. In-memory test client (feature `test-util`).
#![cfg(feature = "test-util")]

use std::{collections::HashMap, convert::Infallible, future::Future, time::Duration};

use http::Request;
use hyper::body::Incoming;
use tokio::sync::{Mutex, mpsc};
use tower::ServiceBuilder;
use tower_websockets::{
    CloseCode, Error, Message, WebSocket, WebSocketLayer, WebSocketSender, WebSocketUpgrade,
    sender::{SendError, SendPolicy, SocketClosed},
    test::{TestClient, live_sender_queues},
};

/// The leak test counts process-wide sender queues: the tests here run one at a time.
static SERIAL: Mutex<()> = Mutex::const_new(());

fn client_for<F, Fut>(layer: WebSocketLayer, handler: F) -> TestClient
where
    F: Fn(WebSocket) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let service = ServiceBuilder::new().layer(layer).service_fn(move |mut req: Request<Incoming>| {
        let handler = handler.clone();
        async move {
            let upgrade = WebSocketUpgrade::from_request(&mut req).expect("a WebSocket handshake");
            Ok::<_, Infallible>(upgrade.on_upgrade(handler))
        }
    });
    TestClient::new(service).timeout(Duration::from_secs(30))
}

const TASKS: usize = 16;
const PER_TASK: usize = 200;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_tasks_send_while_the_handler_reads_each_message_once_and_in_order() {
    let _serial = SERIAL.lock().await;
    let (read_tx, mut read_rx) = mpsc::unbounded_channel();
    let client = client_for(WebSocketLayer::new(), move |mut socket: WebSocket| {
        let read_tx = read_tx.clone();
        async move {
            let sender = socket.sender();
            for task in 0..TASKS {
                let sender = sender.clone();
                tokio::spawn(async move {
                    for i in 0..PER_TASK {
                        sender.send(format!("{task}:{i}")).await.expect("socket open");
                    }
                });
            }
            drop(sender);
            // The handler reads (and echoes, with a prefix) what the client sends meanwhile.
            let mut read = 0;
            while let Some(Ok(message)) = socket.recv().await {
                if let Message::Text(text) = message {
                    read += 1;
                    socket.send(format!("echo:{}", text.as_str())).await.expect("socket open");
                }
            }
            let _ = read_tx.send(read);
        }
    });
    let mut socket = client.connect("/ws").await.unwrap();
    for i in 0..50 {
        socket.send_text(&format!("c{i}")).await.unwrap();
    }
    let mut next: HashMap<usize, usize> = HashMap::new();
    let mut echoes = 0;
    for _ in 0..TASKS * PER_TASK + 50 {
        let text = socket.recv_text().await.unwrap();
        if let Some(echo) = text.strip_prefix("echo:") {
            assert_eq!(echo, format!("c{echoes}"));
            echoes += 1;
            continue;
        }
        let (task, i) = text.split_once(':').expect("task:i");
        let (task, i): (usize, usize) = (task.parse().unwrap(), i.parse().unwrap());
        let expected = next.entry(task).or_default();
        assert_eq!(i, *expected, "task {task} out of order or repeated");
        *expected += 1;
    }
    assert_eq!(echoes, 50);
    assert_eq!(next.len(), TASKS);
    assert!(next.values().all(|&n| n == PER_TASK), "{next:?}");
    socket.close().await.unwrap();
    assert_eq!(read_rx.recv().await, Some(50));
}

const LIMIT: usize = 64 * 1024;
const CHUNK: usize = 1024;

/// A layer whose sockets buffer at most `LIMIT` sender bytes, with `policy` past it.
fn limited(policy: SendPolicy) -> WebSocketLayer {
    WebSocketLayer::builder()
        .max_buffered_amount(LIMIT)
        .on_buffer_full(policy)
        .write_buffer_size(4096)
        .build()
        .unwrap()
}

/// A handler that hands its sender out and drives the socket with `closed()`; it reports what
/// `closed()` returned.
fn send_only(
    senders: mpsc::UnboundedSender<WebSocketSender>,
    ends: mpsc::UnboundedSender<Result<SocketClosed, Error>>,
) -> impl Fn(WebSocket) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Clone + Send + Sync + 'static
{
    move |mut socket: WebSocket| {
        let (senders, ends) = (senders.clone(), ends.clone());
        Box::pin(async move {
            let _ = senders.send(socket.sender());
            let _ = ends.send(socket.closed().await);
        })
    }
}

/// Fills the queue of a client that never reads: `try_send` until it is refused.
async fn fill(sender: &WebSocketSender) -> (usize, SendError) {
    let mut sent = 0;
    loop {
        match sender.try_send(Message::binary(vec![7u8; CHUNK])) {
            Ok(()) => sent += 1,
            Err(error) => return (sent, error),
        }
        // Lets the owner move the queue into its write buffer and the pipe.
        tokio::task::yield_now().await;
        if sent > 100_000 {
            panic!("the queue never filled");
        }
    }
}

#[tokio::test]
async fn wait_policy_blocks_at_the_limit_and_resumes_when_the_client_reads() {
    let _serial = SERIAL.lock().await;
    let (senders_tx, mut senders) = mpsc::unbounded_channel();
    let (ends_tx, mut ends) = mpsc::unbounded_channel();
    let client = client_for(limited(SendPolicy::Wait), send_only(senders_tx, ends_tx));
    let mut socket = client.connect("/ws").await.unwrap();
    let sender = senders.recv().await.unwrap();

    let (sent, error) = fill(&sender).await;
    assert!(matches!(&error, SendError::Full(m) if m.len() == CHUNK), "{error:?}");
    assert!(sender.buffered_amount() <= LIMIT, "{}", sender.buffered_amount());
    assert!(sender.buffered_amount() + CHUNK > LIMIT);
    // `send` waits; `send_timeout` gives up with the message back.
    let blocked = tokio::time::timeout(Duration::from_millis(200), sender.send(vec![1u8; CHUNK])).await;
    assert!(blocked.is_err(), "send should wait for room");
    let late = Message::text("l".repeat(CHUNK));
    let timed_out = sender.send_timeout(late.clone(), Duration::from_millis(50)).await;
    assert_eq!(timed_out, Err(SendError::Timeout(late)));
    assert!(!sender.is_closed());

    // The client reads: room again, the waiting send completes, and everything drains.
    let waiting = {
        let sender = sender.clone();
        tokio::spawn(async move { sender.send(Message::text("after")).await })
    };
    let mut received = 0;
    loop {
        match socket.recv_data().await.unwrap() {
            Message::Binary(bytes) => {
                assert_eq!(bytes.len(), CHUNK);
                received += 1;
            }
            Message::Text(text) => {
                assert_eq!(text.as_str(), "after");
                break;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(received, sent);
    assert_eq!(waiting.await.unwrap(), Ok(()));
    tokio::time::timeout(Duration::from_secs(5), sender.drained()).await.unwrap().unwrap();
    assert_eq!(sender.buffered_amount(), 0);
    socket.close().await.unwrap();
    let closed = ends.recv().await.unwrap().unwrap();
    assert_eq!(closed.frame.map(|f| f.code), Some(CloseCode::NORMAL));
}

#[tokio::test]
async fn drop_newest_policy_refuses_the_message_at_once_and_keeps_the_queue() {
    let _serial = SERIAL.lock().await;
    let (senders_tx, mut senders) = mpsc::unbounded_channel();
    let (ends_tx, mut ends) = mpsc::unbounded_channel();
    let client = client_for(limited(SendPolicy::DropNewest), send_only(senders_tx, ends_tx));
    let mut socket = client.connect("/ws").await.unwrap();
    let sender = senders.recv().await.unwrap();

    let (sent, error) = fill(&sender).await;
    assert!(matches!(error, SendError::Full(_)));
    // `send` does not wait under this policy: the message comes back at once.
    let dropped = Message::text("d".repeat(CHUNK));
    let refused = tokio::time::timeout(Duration::from_secs(1), sender.send(dropped.clone()))
        .await
        .expect("send must not wait");
    assert_eq!(refused, Err(SendError::Full(dropped.clone())));
    assert_eq!(refused.unwrap_err().into_message(), dropped);
    assert!(sender.buffered_amount() <= LIMIT);
    // What was queued is all delivered.
    for _ in 0..sent {
        assert_eq!(socket.recv_data().await.unwrap().len(), CHUNK);
    }
    sender.drained().await.unwrap();
    sender.send("now fits").await.unwrap();
    assert_eq!(socket.recv_text().await.unwrap(), "now fits");
    socket.close().await.unwrap();
    assert!(ends.recv().await.unwrap().is_ok());
}

#[tokio::test]
async fn close_policy_closes_with_its_code_after_what_was_queued() {
    let _serial = SERIAL.lock().await;
    for code in [CloseCode::POLICY_VIOLATION, CloseCode::TRY_AGAIN_LATER] {
        let (senders_tx, mut senders) = mpsc::unbounded_channel();
        let (ends_tx, mut ends) = mpsc::unbounded_channel();
        let client = client_for(limited(SendPolicy::Close(code)), send_only(senders_tx, ends_tx));
        let mut socket = client.connect("/ws").await.unwrap();
        let sender = senders.recv().await.unwrap();

        let (sent, error) = fill(&sender).await;
        assert!(matches!(&error, SendError::Closed(m) if m.len() == CHUNK), "{error:?}");
        assert!(sender.is_closed());
        assert!(matches!(sender.send("more").await, Err(SendError::Closed(_))));
        // The client gets what was written before the Close, then the policy's Close.
        let mut received = 0;
        let frame = loop {
            match socket.recv().await.unwrap() {
                Message::Binary(_) => received += 1,
                Message::Close(frame) => break frame.expect("a close code"),
                Message::Ping(_) | Message::Pong(_) => {}
                other @ Message::Text(_) => panic!("unexpected {other:?}"),
            }
        };
        assert!(received <= sent);
        assert_eq!(frame.code, code);
        assert_eq!(frame.reason.as_str(), tower_websockets::sender::BUFFER_FULL_CLOSE_REASON);
        assert!(socket.is_closed().await);
        let closed = ends.recv().await.unwrap().unwrap();
        assert_eq!(closed.frame.map(|f| f.code), Some(code));
    }
}

#[tokio::test(start_paused = true)]
async fn keep_alive_runs_while_only_senders_send() {
    let _serial = SERIAL.lock().await;
    let layer = WebSocketLayer::builder()
        .keep_alive_interval(Duration::from_secs(10))
        .keep_alive_timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let (senders_tx, mut senders) = mpsc::unbounded_channel();
    let (ends_tx, mut ends) = mpsc::unbounded_channel();
    let client = client_for(layer, send_only(senders_tx, ends_tx)).timeout(Duration::from_secs(120));
    let mut socket = client.connect("/ws").await.unwrap();
    let sender = senders.recv().await.unwrap();
    let ticker = {
        let sender = sender.clone();
        tokio::spawn(async move {
            let mut n = 0u32;
            while sender.send(format!("tick {n}")).await.is_ok() {
                n += 1;
                tokio::time::sleep(Duration::from_secs(3)).await;
            }
            n
        })
    };
    // The client reads (and so answers Pings) for a minute: ticks arrive, and so do Pings
    // (the client only sends Pongs, so the server hears nothing else from it).
    let (mut ticks, mut pings) = (0, 0);
    let start = tokio::time::Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        match socket.recv().await.unwrap() {
            Message::Text(text) => {
                assert_eq!(text.as_str(), format!("tick {ticks}"));
                ticks += 1;
            }
            Message::Ping(_) => pings += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(ticks >= 19, "{ticks}");
    assert!(pings >= 2, "{pings}");
    assert!(!sender.is_closed());

    // The client stops reading (no more Pongs): the keep-alive timeout ends the socket, and
    // the senders see it.
    let ended = ends.recv().await.unwrap();
    assert!(matches!(ended, Err(Error::KeepAliveTimeout { .. })), "{ended:?}");
    assert!(sender.is_closed());
    assert!(ticker.await.unwrap() >= ticks);
    drop(socket);
}

#[tokio::test(start_paused = true)]
async fn shutdown_closes_with_1001_while_only_senders_send() {
    let _serial = SERIAL.lock().await;
    let layer = WebSocketLayer::new();
    let handle = layer.shutdown_handle();
    let (senders_tx, mut senders) = mpsc::unbounded_channel();
    let (ends_tx, mut ends) = mpsc::unbounded_channel();
    let client = client_for(layer, send_only(senders_tx, ends_tx));
    let mut socket = client.connect("/ws").await.unwrap();
    let sender = senders.recv().await.unwrap();
    let ticker = {
        let sender = sender.clone();
        tokio::spawn(async move {
            while sender.send("tick").await.is_ok() {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    assert_eq!(socket.recv_text().await.unwrap(), "tick");
    let shutdown = tokio::spawn(async move { handle.shutdown(Duration::from_secs(10)).await });
    let frame = loop {
        match socket.recv().await.unwrap() {
            Message::Close(frame) => break frame.expect("a close code"),
            Message::Text(text) => assert_eq!(text.as_str(), "tick"),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(frame.code, CloseCode::GOING_AWAY);
    assert!(socket.is_closed().await);
    let report = shutdown.await.unwrap();
    assert_eq!((report.open_at_start, report.cut), (1, 0));
    let closed = ends.recv().await.unwrap().unwrap();
    assert_eq!(closed.frame.map(|f| f.code), Some(CloseCode::GOING_AWAY));
    ticker.await.unwrap();
    assert!(sender.is_closed());
}

#[tokio::test]
async fn every_sender_method_fails_once_the_socket_has_ended() {
    let _serial = SERIAL.lock().await;
    let (senders_tx, mut senders) = mpsc::unbounded_channel();
    let client = client_for(WebSocketLayer::new(), move |mut socket: WebSocket| {
        let senders_tx = senders_tx.clone();
        async move {
            let sender = socket.sender();
            let _ = socket.close(CloseCode::NORMAL, "bye").await;
            // A sender asked for after the close is closed from the start.
            let late = socket.sender();
            let _ = senders_tx.send((sender, late));
        }
    });
    let mut socket = client.connect("/ws").await.unwrap();
    assert_eq!(socket.recv_close().await.unwrap().map(|f| f.code), Some(CloseCode::NORMAL));
    let (sender, late) = senders.recv().await.unwrap();
    for sender in [sender, late] {
        assert!(sender.is_closed());
        assert_eq!(sender.buffered_amount(), 0);
        assert_eq!(sender.send("a").await, Err(SendError::Closed(Message::text("a"))));
        assert_eq!(sender.try_send("b"), Err(SendError::Closed(Message::text("b"))));
        assert_eq!(
            sender.send_timeout("c", Duration::from_secs(1)).await,
            Err(SendError::Closed(Message::text("c")))
        );
        assert!(matches!(sender.drained().await, Err(Error::Closed)));
        let error = sender.try_send("d").unwrap_err();
        assert!(error.is_closed());
        assert_eq!(error.to_string(), "the WebSocket is closed");
        assert!(format!("{sender:?}").contains("closed: true"));
    }
}

#[tokio::test]
async fn a_dropped_socket_wakes_a_waiting_sender_with_closed() {
    let _serial = SERIAL.lock().await;
    let (senders_tx, mut senders) = mpsc::unbounded_channel();
    let (ends_tx, mut ends) = mpsc::unbounded_channel();
    let client = client_for(limited(SendPolicy::Wait), send_only(senders_tx, ends_tx));
    let socket = client.connect("/ws").await.unwrap();
    let sender = senders.recv().await.unwrap();
    fill(&sender).await;
    let waiting = {
        let sender = sender.clone();
        tokio::spawn(async move { sender.send(Message::binary(vec![0u8; CHUNK])).await })
    };
    let drained = {
        let sender = sender.clone();
        tokio::spawn(async move { sender.drained().await })
    };
    tokio::task::yield_now().await;
    // The client goes away without a Close: the socket ends, and the waiters with it.
    drop(socket);
    assert_eq!(waiting.await.unwrap(), Err(SendError::Closed(Message::binary(vec![0u8; CHUNK]))));
    assert!(matches!(drained.await.unwrap(), Err(Error::Closed)));
    assert!(ends.recv().await.unwrap().is_err());
}

#[tokio::test]
async fn ten_thousand_connections_with_senders_leave_no_task_and_no_queue_behind() {
    let _serial = SERIAL.lock().await;
    let metrics = tokio::runtime::Handle::current().metrics();
    let tasks_before = metrics.num_alive_tasks();
    let queues_before = live_sender_queues();
    let layer = WebSocketLayer::new();
    let handle = layer.shutdown_handle();
    let client = client_for(layer, |mut socket: WebSocket| async move {
        let sender = socket.sender();
        let task = {
            let sender = sender.clone();
            // Sends until the socket ends; the task ends with it.
            tokio::spawn(async move {
                let mut n = 0u64;
                while sender.send(format!("{n}")).await.is_ok() {
                    n += 1;
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            })
        };
        let _ = socket.closed().await;
        drop(socket);
        let _ = task.await;
    });
    for _ in 0..100 {
        let mut batch = tokio::task::JoinSet::new();
        for _ in 0..100 {
            let mut socket = client.connect("/ws").await.unwrap();
            batch.spawn(async move {
                assert_eq!(socket.recv_text().await.unwrap(), "0");
                socket.close().await.unwrap();
            });
        }
        while let Some(done) = batch.join_next().await {
            done.unwrap();
        }
    }
    drop(client);
    let mut settled = false;
    for _ in 0..500 {
        if handle.stats().open == 0
            && live_sender_queues() == queues_before
            && metrics.num_alive_tasks() == tasks_before
        {
            settled = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        settled,
        "open {}, queues {} (before {queues_before}), tasks {} (before {tasks_before})",
        handle.stats().open,
        live_sender_queues(),
        metrics.num_alive_tasks()
    );
    assert_eq!(handle.stats().accepted, 10_000);
}

#[tokio::test]
async fn max_buffered_amount_is_validated_per_socket_too() {
    let _serial = SERIAL.lock().await;
    let service = ServiceBuilder::new().layer(WebSocketLayer::new()).service_fn(
        |mut req: Request<Incoming>| async move {
            let upgrade = WebSocketUpgrade::from_request(&mut req).unwrap();
            let error = upgrade.max_buffered_amount(0).try_on_upgrade(|_socket| async {}).unwrap_err();
            assert_eq!(error.option(), "max_buffered_amount");
            Ok::<_, Infallible>(http::Response::new(tower_websockets::handshake::HandshakeBody::from(
                "refused",
            )))
        },
    );
    let refused = TestClient::new(service).connect("/ws").await;
    assert!(refused.is_err());
}
