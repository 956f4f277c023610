//! A chat on axum and `tower_websockets::broadcast`: rooms, nicknames, who is present, and the
//! log. The template to copy for an app of your own: an origin policy, compression, typed JSON
//! both ways, and the hub.
//!
//! ```text
//! cargo run --features axum,json --example chat
//! ```
//!
//! then open <http://localhost:5001> in two windows. One process, nothing else to install.
//! `GET /` serves the page and `/ws` accepts WebSockets, from the page's own origin and from
//! those given with `--allowed-origin`.
//!
//! Several instances share the rooms through Redis pub/sub (the `redis` feature):
//!
//! ```text
//! cargo run --features axum,json,redis --example chat -- --bind 127.0.0.1:5001 --redis redis://127.0.0.1:6379
//! cargo run --features axum,json,redis --example chat -- --bind 127.0.0.1:5002 --redis redis://127.0.0.1:6379
//! ```
//!
//! A message said on one reaches the room on both, once. Who is present is merged from every
//! instance's own list: each instance shares its list of a room whenever it changes, on an
//! internal topic, and answers an instance new to the room with its own.
//!
//! The protocol is JSON text both ways. The client sends `{"type":"nick","name":..}` first, then
//! `{"type":"join","room":..}` (which leaves the room it was in) and `{"type":"say","text":..}`.
//! The server sends `{"type":"message","room":..,"nick":..,"text":..}`,
//! `{"type":"presence","room":..,"members":[..]}` when someone joins or leaves,
//! `{"type":"info","text":..}`, `{"type":"missed","count":N}` when the client fell behind and
//! lost messages, and `{"type":"error","text":..}` for a bad command (the socket stays open).

use std::{
    collections::{BTreeMap, HashMap},
    process::ExitCode,
    sync::{
        Arc, Mutex, MutexGuard,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    extract::State,
    http::{HeaderValue, header, request::Parts},
    response::{Html, IntoResponse},
    routing::{any, get},
};
use clap::Parser;
use serde::{Deserialize, Serialize};
use tower_websockets::{
    AllowedOrigins, Compression, ConfigError, Error, WebSocket, WebSocketLayer, WebSocketUpgrade,
    broadcast::{Delivery, Hub, PreparedMessage, Subscriber},
};

const INDEX_HTML: &str = include_str!("chat/index.html");

/// Longest nickname and room name, in characters.
const MAX_NAME: usize = 32;
/// Longest chat line, in characters.
const MAX_TEXT: usize = 2000;

/// A chat server: rooms, nicknames, who is present, and the log.
#[derive(Debug, Parser)]
#[command(name = "chat")]
struct Options {
    /// Address to listen on (port 0 picks a free port)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:5001")]
    bind: String,
    /// Let pages from this origin connect too, e.g. https://chat.example.com (repeatable; the
    /// chat's own page always may)
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    allowed_origins: Vec<String>,
    /// Share the rooms with other instances through Redis pub/sub (needs the `redis` feature),
    /// e.g. redis://127.0.0.1:6379 or redis://:PASSWORD@HOST:PORT
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// Serve the crate's metrics (sockets, messages, the hub's) at http://ADDR/metrics in
    /// Prometheus' text format (needs the `metrics` feature)
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
}

#[path = "common/metrics.rs"]
mod metrics_endpoint;

/// What a client sends.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Command {
    Nick { name: String },
    Join { room: String },
    Say { text: String },
}

/// What the server sends.
#[derive(Debug, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Event<'a> {
    Message { room: &'a str, nick: &'a str, text: &'a str },
    Presence { room: &'a str, members: Vec<String> },
    Info { text: &'a str },
    Error { text: &'a str },
    Missed { count: u64 },
}

impl Event<'_> {
    /// The event as a message, encoded once for however many sockets it goes to.
    fn prepare(&self) -> PreparedMessage {
        PreparedMessage::json(self).expect("an event is strings and numbers")
    }
}

/// The hub topic of a chat room.
pub(crate) fn room_topic(room: &str) -> String {
    format!("room:{room}")
}

/// The internal topic on which instances share who is present in their rooms (no room's topic
/// starts with `chat:`).
const PRESENCE_TOPIC: &str = "chat:presence";

/// Who is present in one room on one instance, as instances tell each other.
#[derive(Debug, Serialize, Deserialize)]
struct Roster {
    instance: u64,
    room: String,
    members: Vec<String>,
}

/// Who is present in which room.
#[derive(Default)]
struct Presence {
    /// Room → socket id → nickname, on this instance.
    here: HashMap<String, BTreeMap<u64, String>>,
    /// Room → other instance → nicknames, from their rosters.
    elsewhere: HashMap<String, BTreeMap<u64, Vec<String>>>,
}

impl Presence {
    fn here(&self, room: &str) -> Vec<String> {
        self.here.get(room).map(|members| members.values().cloned().collect()).unwrap_or_default()
    }

    fn everywhere(&self, room: &str) -> Vec<String> {
        let elsewhere = self.elsewhere.get(room).into_iter().flat_map(BTreeMap::values).flatten();
        self.here(room).into_iter().chain(elsewhere.cloned()).collect()
    }
}

/// The chat's state, shared by every socket: the hub, and who is present where.
#[derive(Clone)]
pub(crate) struct Chat {
    pub(crate) hub: Hub,
    /// This instance's id in the rosters it shares.
    instance: u64,
    presence: Arc<Mutex<Presence>>,
    next_id: Arc<AtomicU64>,
}

impl Default for Chat {
    fn default() -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut random = std::collections::hash_map::RandomState::new().build_hasher();
        random.write_u32(std::process::id());
        Self { hub: Hub::new(), instance: random.finish(), presence: Arc::default(), next_id: Arc::default() }
    }
}

impl Chat {
    fn presence(&self) -> MutexGuard<'_, Presence> {
        self.presence.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Puts socket `id` in `room` as `nick`, or takes it out with `None`; tells the room, and
    /// the other instances.
    fn set_presence(&self, room: &str, id: u64, nick: Option<&str>) {
        let here = {
            let mut presence = self.presence();
            let members = presence.here.entry(room.to_owned()).or_default();
            match nick {
                Some(nick) => members.insert(id, nick.to_owned()),
                None => members.remove(&id),
            };
            if members.is_empty() {
                presence.here.remove(room);
            }
            presence.here(room)
        };
        self.announce(room);
        self.share(room, here);
    }

    /// Tells this instance's sockets in `room` who is present on every instance. Each instance
    /// does so for its own sockets, so this stays here: `publish_local`.
    fn announce(&self, room: &str) {
        let members = self.presence().everywhere(room);
        self.hub.publish_local(&room_topic(room), Event::Presence { room, members }.prepare());
    }

    /// Tells the other instances who is present in `room` here (nobody hears it without a
    /// backplane).
    fn share(&self, room: &str, members: Vec<String>) {
        let roster = Roster { instance: self.instance, room: room.to_owned(), members };
        self.hub.publish(PRESENCE_TOPIC, PreparedMessage::json(&roster).expect("a roster is strings"));
    }

    /// Follows the other instances' rosters: run it when the hub has a backplane.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn follow_other_instances(&self) -> tokio::task::JoinHandle<()> {
        let chat = self.clone();
        let mut rosters = self.hub.subscriber();
        rosters.subscribe(PRESENCE_TOPIC);
        tokio::spawn(async move {
            loop {
                match rosters.recv().await {
                    Delivery::Message(message) => match message.to_message().parse_json::<Roster>() {
                        Ok(roster) => chat.take_roster(roster),
                        Err(problem) => tracing::warn!(%problem, "ignored a roster that is not one"),
                    },
                    Delivery::Close(_) => {
                        rosters.subscribe(PRESENCE_TOPIC);
                    }
                    _ => {}
                }
            }
        })
    }

    /// Records another instance's roster, tells the room, and answers an instance new to the
    /// room with who is here.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    fn take_roster(&self, roster: Roster) {
        if roster.instance == self.instance {
            return;
        }
        let Roster { instance, room, members } = roster;
        let (newcomer, here) = {
            let mut presence = self.presence();
            let rosters = presence.elsewhere.entry(room.clone()).or_default();
            let newcomer = !members.is_empty() && !rosters.contains_key(&instance);
            if members.is_empty() {
                rosters.remove(&instance);
            } else {
                rosters.insert(instance, members);
            }
            if rosters.is_empty() {
                presence.elsewhere.remove(&room);
            }
            (newcomer, presence.here(&room))
        };
        self.announce(&room);
        if newcomer && !here.is_empty() {
            self.share(&room, here);
        }
    }
}

/// The origin policy: the chat's own page (an `Origin` whose host and port are the ones the
/// request was sent to), and the origins in `extra`, as `scheme://host[:port]`.
fn origin_policy(extra: &[String]) -> Result<AllowedOrigins, String> {
    let extra: Vec<String> =
        extra.iter().map(|origin| origin.trim_end_matches('/').to_ascii_lowercase()).collect();
    if let Some(bad) = extra.iter().find(|o| !(o.starts_with("http://") || o.starts_with("https://"))) {
        return Err(format!(
            "--allowed-origin {bad}: an origin is http://HOST[:PORT] or https://HOST[:PORT]"
        ));
    }
    Ok(AllowedOrigins::predicate(move |origin: &HeaderValue, request: &Parts| {
        let Ok(origin) = origin.to_str().map(str::to_ascii_lowercase) else { return false };
        let host = request.headers.get(header::HOST).and_then(|host| host.to_str().ok());
        let host = host.or_else(|| request.uri.authority().map(|authority| authority.as_str()));
        let own = host.is_some_and(|host| {
            let page = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
            page.is_some_and(|page| page.eq_ignore_ascii_case(host))
        });
        own || extra.contains(&origin)
    }))
}

/// The app: the page on `/`, the chat's WebSockets on `/ws` (messages up to 8 KiB, compressed
/// when the browser offers it, pings every 30 s), from the allowed origins.
pub(crate) fn app(chat: Chat, allowed_origins: &[String]) -> Result<Router, String> {
    let websockets = WebSocketLayer::builder()
        .allowed_origins(origin_policy(allowed_origins)?)
        .compression(Compression::enabled())
        .max_message_size(8 * 1024)
        .keep_alive_interval(Duration::from_secs(30))
        .build()
        .map_err(|error: ConfigError| error.to_string())?;
    Ok(Router::new()
        .route("/", get(page))
        .route("/index.html", get(page))
        .route("/ws", any(accept))
        .with_state(chat)
        .layer(websockets))
}

async fn page() -> Html<&'static str> {
    Html(INDEX_HTML)
}

async fn accept(upgrade: WebSocketUpgrade, State(chat): State<Chat>) -> impl IntoResponse {
    // A socket joins rooms when its client asks to, so its subscriber starts in none; a socket
    // that belongs in a topic from the start is subscribed here, before the 101 (see the
    // `broadcast` module).
    let subscriber = chat.hub.subscriber();
    upgrade.on_upgrade(move |socket| session(socket, chat, subscriber))
}

/// One client, from its first message to its last.
async fn session(mut socket: WebSocket, chat: Chat, subscriber: Subscriber) {
    let mut client =
        Client { id: chat.next_id.fetch_add(1, Ordering::Relaxed), subscriber, nick: None, room: None };
    loop {
        let reply = tokio::select! {
            received = socket.recv_json::<Command>() => match received {
                Some(Ok(command)) => client.act(&chat, command).await,
                // Not a command: say what is wrong, and read on.
                Some(Err(Error::Json(problem))) => Some(Event::Error { text: &problem.to_string() }.prepare()),
                Some(Err(_)) | None => break,
            },
            // What was published to the room: whatever is queued, in one write.
            () = client.subscriber.ready() => match client.subscriber.forward_to(&mut socket).await {
                Ok(forwarded) if forwarded.close.is_some() => break,
                Ok(forwarded) => (forwarded.missed > 0).then(|| Event::Missed { count: forwarded.missed }.prepare()),
                Err(_) => break,
            },
        };
        if let Some(reply) = reply {
            if socket.send_prepared(&reply).await.is_err() {
                break;
            }
        }
    }
    if let (Some(room), Some(_)) = (client.room, client.nick) {
        drop(client.subscriber); // leave the room's topic before telling it
        chat.set_presence(&room, client.id, None);
    }
}

/// One client's state.
struct Client {
    id: u64,
    subscriber: Subscriber,
    nick: Option<String>,
    room: Option<String>,
}

impl Client {
    /// Carries out a command; the reply to this client only, if any.
    async fn act(&mut self, chat: &Chat, command: Command) -> Option<PreparedMessage> {
        let problem = |text: &str| Some(Event::Error { text }.prepare());
        match command {
            Command::Nick { name } => {
                let name = name.trim().to_owned();
                if let Err(wrong) = check_name("a nickname", &name) {
                    return problem(&wrong);
                }
                if let Some(room) = &self.room {
                    chat.set_presence(room, self.id, Some(&name));
                }
                let reply = Event::Info { text: &format!("you are {name}") }.prepare();
                self.nick = Some(name);
                Some(reply)
            }
            Command::Join { .. } | Command::Say { .. } if self.nick.is_none() => {
                problem("choose a nickname first")
            }
            Command::Join { room } => {
                let room = room.trim().to_owned();
                if let Err(wrong) = check_name("a room name", &room) {
                    return problem(&wrong);
                }
                if let Some(old) = self.room.take() {
                    self.subscriber.unsubscribe(&room_topic(&old));
                    chat.set_presence(&old, self.id, None);
                }
                self.subscriber.subscribe(&room_topic(&room));
                chat.set_presence(&room, self.id, self.nick.as_deref());
                self.room = Some(room);
                None
            }
            Command::Say { text } => {
                let (Some(room), Some(nick)) = (self.room.as_deref(), self.nick.as_deref()) else {
                    return problem("join a room first");
                };
                let text = text.trim();
                if text.is_empty() {
                    return problem("nothing to say");
                }
                if text.chars().count() > MAX_TEXT {
                    return problem(&format!("a line has at most {MAX_TEXT} characters"));
                }
                // One encoding for everyone in the room, the sender included (its page shows the
                // line in the room's order); with Redis, the other instances' sockets in the room
                // too, and the sender hears if they could not be reached.
                let line = Event::Message { room, nick, text }.prepare();
                match chat.hub.publish_confirmed(&room_topic(room), line).await {
                    Ok(_) => None,
                    Err(error) => problem(&format!("not everyone got it: {error}")),
                }
            }
        }
    }
}

/// Checks a nickname or room name.
fn check_name(what: &str, name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(format!("{what} has 1 to {MAX_NAME} characters"));
    }
    if name.chars().any(char::is_control) {
        return Err(format!("{what} has no control characters"));
    }
    Ok(())
}

/// Attaches a Redis backplane to the chat's hub, and follows who is present elsewhere.
#[cfg(feature = "redis")]
pub(crate) async fn share_rooms_through_redis(chat: &Chat, url: &str) -> Result<(), String> {
    let backplane = tower_websockets::broadcast::RedisBackplane::attach(url, &chat.hub)
        .await
        .map_err(|error| error.to_string())?;
    tracing::info!("sharing rooms with other instances through Redis at {}", backplane.url());
    chat.follow_other_instances();
    Ok(())
}

#[cfg(not(feature = "redis"))]
async fn share_rooms_through_redis(_: &Chat, _: &str) -> Result<(), String> {
    Err("--redis needs the `redis` feature: cargo run --features axum,json,redis --example chat -- --redis URL"
        .to_owned())
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = Options::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    // The recorder before the hub: the hub takes its metrics' handles when it is built.
    if let Some(addr) = &options.metrics {
        let served = match metrics_endpoint::recorder(addr) {
            Ok(recorder) => {
                metrics_endpoint::serve(addr, recorder).await.map_err(|e| format!("--metrics {addr}: {e}"))
            }
            Err(message) => Err(message),
        };
        match served {
            Ok(addr) => tracing::info!("metrics on http://{addr}/metrics"),
            Err(message) => {
                eprintln!("error: {message}");
                return ExitCode::FAILURE;
            }
        }
    }
    let chat = Chat::default();
    let app = match app(chat.clone(), &options.allowed_origins) {
        Ok(app) => app,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(url) = &options.redis {
        if let Err(message) = share_rooms_through_redis(&chat, url).await {
            eprintln!("error: {message}");
            return ExitCode::FAILURE;
        }
    }
    let listener = match tokio::net::TcpListener::bind(&options.bind).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("error: cannot listen on {}: {e}", options.bind);
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => tracing::info!("listening on http://{addr}"),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    match axum::serve(listener, app).with_graceful_shutdown(shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
