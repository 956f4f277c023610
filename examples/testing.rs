//! Testing an axum chat handler with the in-memory test client: no port, no server to start.
//!
//! `cargo test --all-features --example testing` runs the tests below;
//! `cargo run --features axum,test-util --example testing` runs the same conversation and prints it.

use axum::{Router, extract::State, response::IntoResponse, routing::any};
use tower_websockets::{
    Message, WebSocket, WebSocketLayer, WebSocketUpgrade,
    broadcast::{Hub, Subscriber},
};

/// The one room's topic.
const ROOM: &str = "room";

/// The app under test: a chat room on `/chat` that speaks `chat.v1`, for pages on
/// https://chat.example.com only.
pub fn app() -> Router {
    let websockets = WebSocketLayer::builder()
        .allowed_origins(["https://chat.example.com"])
        .build()
        .expect("valid options");
    Router::new().route("/chat", any(join)).with_state(Hub::new()).layer(websockets)
}

async fn join(upgrade: WebSocketUpgrade, State(hub): State<Hub>) -> impl IntoResponse {
    // Subscribed here, before the 101 goes out: once a client's connect returns, it is in the
    // room and gets the next message (subscribed in the callback, it might not yet be).
    let mut subscriber = hub.subscriber();
    subscriber.subscribe(ROOM);
    upgrade.protocols(["chat.v1"]).on_upgrade(move |socket| chat(socket, hub, subscriber))
}

async fn chat(mut socket: WebSocket, hub: Hub, mut subscriber: Subscriber) {
    loop {
        tokio::select! {
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => { hub.publish(ROOM, text); }
                Some(Ok(_)) => {}
                _ => break,
            },
            () = subscriber.ready() => match subscriber.forward_to(&mut socket).await {
                Ok(forwarded) if forwarded.close.is_none() => {}
                _ => break,
            },
        }
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), tower_websockets::test::TestError> {
    use tower_websockets::test::TestClient;

    let client = TestClient::new(app());
    let mut alice = client.connect("/chat").origin("https://chat.example.com").protocols(["chat.v1"]).await?;
    let mut bob = client.connect("/chat").protocols(["chat.v1"]).await?;
    alice.send_text("hello, bob").await?;
    println!("bob got:   {}", bob.recv_text().await?);
    println!("alice got: {}", alice.recv_text().await?);
    let refused = client.connect("/chat").origin("https://evil.example").await.unwrap_err();
    println!("evil.example: {refused}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use http::StatusCode;
    use tower_websockets::test::TestClient;

    use super::app;

    #[tokio::test]
    async fn everyone_in_the_room_gets_each_message() {
        let client = TestClient::new(app());
        let mut alice = client.connect("/chat").protocols(["chat.v1"]).await.unwrap();
        let mut bob = client.connect("/chat").protocols(["chat.v1"]).await.unwrap();
        assert_eq!(alice.protocol(), Some("chat.v1"));

        alice.send_text("hi all").await.unwrap();
        assert_eq!(bob.recv_text().await.unwrap(), "hi all");
        assert_eq!(alice.recv_text().await.unwrap(), "hi all");
    }

    /// The newcomer gets the very next message, even with the server on other threads.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_newcomer_gets_the_next_message() {
        let client = TestClient::new(app());
        let mut alice = client.connect("/chat").protocols(["chat.v1"]).await.unwrap();
        for round in 0..100 {
            let mut newcomer = client.connect("/chat").protocols(["chat.v1"]).await.unwrap();
            alice.send_text(&format!("welcome #{round}")).await.unwrap();
            assert_eq!(newcomer.recv_text().await.unwrap(), format!("welcome #{round}"));
            assert_eq!(alice.recv_text().await.unwrap(), format!("welcome #{round}"));
            newcomer.close().await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_page_from_another_site_is_refused() {
        let client = TestClient::new(app());
        let error = client.connect("/chat").origin("https://evil.example").await.unwrap_err();
        assert_eq!(error.refused().unwrap().status(), StatusCode::FORBIDDEN);
    }
}
