//! A chat on `tower_websockets::broadcast`: rooms, nicknames, who is present, and the log.
//!
//! ```text
//! cargo run --example chat
//! ```
//!
//! then open <http://localhost:5001> in two windows. One process, nothing else to install.
//! `GET /` serves the page; `/ws` accepts WebSockets; anything else is a 404.
//!
//! Several instances share the rooms through Redis pub/sub (the `redis` feature):
//!
//! ```text
//! cargo run --features redis --example chat -- --bind 127.0.0.1:5001 --redis redis://127.0.0.1:6379
//! cargo run --features redis --example chat -- --bind 127.0.0.1:5002 --redis redis://127.0.0.1:6379
//! ```
//!
//! A message said on one reaches the room on both, once; who is present is merged from every
//! instance's own list (each instance shares its list of a room whenever it changes, on an
//! internal topic, and answers a newcomer's list with its own).
//!
//! The protocol is text both ways. The client sends `nick:NAME` first, then `join:ROOM` (which
//! leaves the room it was in) and `say:TEXT`. The server sends JSON objects:
//! `{"type":"message","room":..,"nick":..,"text":..}`, `{"type":"presence","room":..,"members":[..]}`
//! when someone joins or leaves, `{"type":"info","text":..}`, `{"type":"missed","count":N}`
//! when the client fell behind and lost messages, and `{"type":"error","text":..}` for a bad
//! command.

use std::{
    collections::{BTreeMap, HashMap},
    convert::Infallible,
    process::ExitCode,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

use clap::Parser;
use http::{Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
    service::TowerToHyperService,
};
use tokio::net::TcpListener;
use tower::ServiceBuilder;
use tower_websockets::{
    Message, PreparedMessage, TextBody, WebSocket, WebSocketLayer, WebSocketUpgrade,
    broadcast::{Delivery, Hub, Subscriber},
};

const INDEX_HTML: &str = include_str!("chat/index.html");
/// How long a client has to send its request head, first byte included.
const HEAD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

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
    /// Share the rooms with other instances through Redis pub/sub (needs the `redis` feature),
    /// e.g. redis://127.0.0.1:6379 or redis://:PASSWORD@HOST:PORT
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
}

/// The hub topic of a chat room.
pub(crate) fn room_topic(room: &str) -> String {
    format!("room:{room}")
}

/// The internal topic on which instances share who is present in their rooms (no room's topic
/// starts with `chat:`). A roster is `roster\tINSTANCE\tROOM\tNICK\tNICK...`: names have no
/// control characters, so tabs separate them.
const PRESENCE_TOPIC: &str = "chat:presence";

/// Another instance's id → who is present there, in one room.
type Rosters = BTreeMap<u64, Vec<String>>;

/// The chat's state, shared by every socket: the hub, and who is in which room.
#[derive(Clone)]
pub(crate) struct Chat {
    pub(crate) hub: Hub,
    /// This instance's id in the rosters it shares.
    instance: u64,
    /// Room → socket id → nickname: who is present here.
    rooms: Arc<Mutex<HashMap<String, BTreeMap<u64, String>>>>,
    /// Room → other instance → who is present there (with a backplane).
    elsewhere: Arc<Mutex<HashMap<String, Rosters>>>,
    next_id: Arc<AtomicU64>,
}

impl Default for Chat {
    fn default() -> Self {
        Self::new(Hub::new())
    }
}

impl Chat {
    pub(crate) fn new(hub: Hub) -> Self {
        use std::hash::{BuildHasher, Hasher};
        let mut random = std::collections::hash_map::RandomState::new().build_hasher();
        random.write_u32(std::process::id());
        Self {
            hub,
            instance: random.finish(),
            rooms: Arc::default(),
            elsewhere: Arc::default(),
            next_id: Arc::default(),
        }
    }

    /// Puts `nick` (socket `id`) in `room`, or takes it out with `None`, tells the room who is
    /// present now, and tells the other instances (if any) who is present here.
    fn set_presence(&self, room: &str, id: u64, nick: Option<&str>) {
        let here = {
            let mut rooms = self.rooms.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let members = rooms.entry(room.to_owned()).or_default();
            match nick {
                Some(nick) => members.insert(id, nick.to_owned()),
                None => members.remove(&id),
            };
            let here: Vec<String> = members.values().cloned().collect();
            if members.is_empty() {
                rooms.remove(room);
            }
            here
        };
        self.announce_presence(room);
        self.share_roster(room, &here);
    }

    /// Tells this instance's sockets in `room` who is present on every instance.
    fn announce_presence(&self, room: &str) {
        let mut members: Vec<String> = {
            let rooms = self.rooms.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            rooms
                .get(room)
                .map(|members| members.values().map(|m| json_string(m)).collect())
                .unwrap_or_default()
        };
        {
            let elsewhere = self.elsewhere.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            for roster in elsewhere.get(room).into_iter().flat_map(BTreeMap::values) {
                members.extend(roster.iter().map(|m| json_string(m)));
            }
        }
        let presence = format!(
            r#"{{"type":"presence","room":{},"members":[{}]}}"#,
            json_string(room),
            members.join(",")
        );
        // Every instance works out the room's list for its own sockets.
        self.hub.publish_local(&room_topic(room), presence);
    }

    /// Publishes who is present in `room` here, for the other instances (a no-op without a
    /// backplane: nothing here subscribes to the topic).
    fn share_roster(&self, room: &str, here: &[String]) {
        let mut roster = format!("roster\t{}\t{room}", self.instance);
        for nick in here {
            roster.push('\t');
            roster.push_str(nick);
        }
        self.hub.publish(PRESENCE_TOPIC, roster);
    }

    /// Keeps track of who is present on the other instances: run it when the hub has a
    /// backplane.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn follow_other_instances(&self) -> tokio::task::JoinHandle<()> {
        let chat = self.clone();
        let mut rosters = self.hub.subscriber();
        rosters.subscribe(PRESENCE_TOPIC);
        tokio::spawn(async move {
            loop {
                match rosters.recv().await {
                    Delivery::Message(message) => {
                        if let Some(roster) = message.to_message().as_text() {
                            chat.take_roster(roster);
                        }
                    }
                    Delivery::Close(_) => {
                        rosters.subscribe(PRESENCE_TOPIC);
                    }
                    _ => {}
                }
            }
        })
    }

    /// Records another instance's roster of a room; answers with ours if that instance is new
    /// in the room.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    fn take_roster(&self, roster: &str) {
        let mut fields = roster.split('\t');
        let (Some("roster"), Some(Ok(instance)), Some(room)) =
            (fields.next(), fields.next().map(str::parse::<u64>), fields.next())
        else {
            tracing::warn!(roster, "ignored a roster that is not one");
            return;
        };
        if instance == self.instance {
            return;
        }
        let members: Vec<String> = fields.map(str::to_owned).collect();
        let newcomer = {
            let mut elsewhere = self.elsewhere.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let rosters = elsewhere.entry(room.to_owned()).or_default();
            let newcomer = !members.is_empty() && !rosters.contains_key(&instance);
            if members.is_empty() {
                rosters.remove(&instance);
            } else {
                rosters.insert(instance, members);
            }
            if rosters.is_empty() {
                elsewhere.remove(room);
            }
            newcomer
        };
        self.announce_presence(room);
        if newcomer {
            let here: Vec<String> = {
                let rooms = self.rooms.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                rooms.get(room).map(|members| members.values().cloned().collect()).unwrap_or_default()
            };
            if !here.is_empty() {
                self.share_roster(room, &here);
            }
        }
    }
}

/// The layer: messages up to 8 KiB (a chat line is short), pings every 30 s.
pub(crate) fn layer() -> Result<WebSocketLayer, tower_websockets::ConfigError> {
    WebSocketLayer::builder()
        .max_message_size(8 * 1024)
        .keep_alive_interval(std::time::Duration::from_secs(30))
        .build()
}

/// Serves the page on `/` and the chat's WebSockets on `/ws`.
pub(crate) async fn route(chat: Chat, mut req: Request<Incoming>) -> Result<Response<TextBody>, Infallible> {
    Ok(match req.uri().path() {
        "/" | "/index.html" if req.method() == Method::GET || req.method() == Method::HEAD => {
            let mut response = Response::new(TextBody::from(INDEX_HTML));
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, header::HeaderValue::from_static("text/html; charset=utf-8"));
            response
        }
        "/ws" => match WebSocketUpgrade::from_request(&mut req) {
            Ok(upgrade) => upgrade.on_upgrade(move |socket| session(socket, chat)),
            Err(rejection) => rejection.into_http_response(),
        },
        _ => {
            let mut response = Response::new(TextBody::from("404 Not Found"));
            *response.status_mut() = StatusCode::NOT_FOUND;
            response
        }
    })
}

/// What a client asked for.
enum Command<'a> {
    Nick(&'a str),
    Join(&'a str),
    Say(&'a str),
}

/// Parses a client's line, or says what is wrong with it.
fn parse(line: &str) -> Result<Command<'_>, String> {
    let (verb, arg) = line.split_once(':').ok_or("a command is nick:NAME, join:ROOM or say:TEXT")?;
    let arg = arg.trim();
    match verb {
        "nick" | "join" => {
            let what = if verb == "nick" { "a nickname" } else { "a room name" };
            if arg.is_empty() || arg.chars().count() > MAX_NAME {
                return Err(format!("{what} has 1 to {MAX_NAME} characters"));
            }
            if arg.chars().any(char::is_control) {
                return Err(format!("{what} has no control characters"));
            }
            Ok(if verb == "nick" { Command::Nick(arg) } else { Command::Join(arg) })
        }
        "say" if arg.is_empty() => Err("nothing to say".to_owned()),
        "say" if arg.chars().count() > MAX_TEXT => Err(format!("a line has at most {MAX_TEXT} characters")),
        "say" => Ok(Command::Say(arg)),
        _ => Err(format!("unknown command `{verb}`: use nick, join or say")),
    }
}

/// One client, from its first message to its last.
async fn session(mut socket: WebSocket, chat: Chat) {
    let id = chat.next_id.fetch_add(1, Ordering::Relaxed);
    let mut subscriber = chat.hub.subscriber();
    let mut nick: Option<String> = None;
    let mut room: Option<String> = None;
    loop {
        let reply = tokio::select! {
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(line))) => match parse(&line) {
                    Ok(command) => act(&chat, &mut subscriber, id, &mut nick, &mut room, command).await,
                    Err(problem) => Some(event("error", &problem)),
                },
                Some(Ok(Message::Binary(_))) => Some(event("error", "send text")),
                Some(Ok(_)) => None,
                Some(Err(_)) | None => break,
            },
            () = subscriber.ready() => {
                // What was published to the room: whatever is queued, in one write.
                match subscriber.forward_to(&mut socket).await {
                    Ok(forwarded) if forwarded.close.is_some() => break,
                    Ok(forwarded) => (forwarded.missed > 0).then(|| {
                        PreparedMessage::text(format!(r#"{{"type":"missed","count":{}}}"#, forwarded.missed))
                    }),
                    Err(_) => break,
                }
            }
        };
        if let Some(reply) = reply {
            if socket.send_prepared(&reply).await.is_err() {
                break;
            }
        }
    }
    if let (Some(room), Some(_)) = (room, nick) {
        drop(subscriber); // leave the room's topic before telling it
        chat.set_presence(&room, id, None);
    }
}

/// Carries out a command; the reply to this client only, if any.
async fn act(
    chat: &Chat,
    subscriber: &mut Subscriber,
    id: u64,
    nick: &mut Option<String>,
    room: &mut Option<String>,
    command: Command<'_>,
) -> Option<PreparedMessage> {
    match command {
        Command::Nick(name) => {
            *nick = Some(name.to_owned());
            if let Some(room) = room {
                chat.set_presence(room, id, Some(name));
            }
            Some(event("info", &format!("you are {name}")))
        }
        Command::Join(_) | Command::Say(_) if nick.is_none() => {
            Some(event("error", "choose a nickname first"))
        }
        Command::Join(name) => {
            if let Some(old) = room.take() {
                subscriber.unsubscribe(&room_topic(&old));
                chat.set_presence(&old, id, None);
            }
            subscriber.subscribe(&room_topic(name));
            chat.set_presence(name, id, nick.as_deref());
            *room = Some(name.to_owned());
            None
        }
        Command::Say(text) => {
            let (Some(room), Some(nick)) = (room.as_deref(), nick.as_deref()) else {
                return Some(event("error", "join a room first"));
            };
            let line = format!(
                r#"{{"type":"message","room":{},"nick":{},"text":{}}}"#,
                json_string(room),
                json_string(nick),
                json_string(text)
            );
            // One encoding for everyone in the room, the sender included; with Redis, the other
            // instances' sockets in the room too, and the sender hears if they could not be
            // reached.
            match chat.hub.publish_confirmed(&room_topic(room), line).await {
                Ok(_) => None,
                Err(error) => Some(event("error", &format!("not everyone got it: {error}"))),
            }
        }
    }
}

/// `{"type":kind,"text":text}`.
fn event(kind: &str, text: &str) -> PreparedMessage {
    PreparedMessage::text(format!(r#"{{"type":"{kind}","text":{}}}"#, json_string(text)))
}

/// A JSON string literal.
pub(crate) fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            // Control characters, and the two line separators some JavaScript parsers dislike.
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", u32::from(c)));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
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
    Err("--redis needs the `redis` feature: cargo run --features redis --example chat -- --redis URL"
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
    let listener = match TcpListener::bind(&options.bind).await {
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
    let layer = match layer() {
        Ok(layer) => layer,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let chat = Chat::default();
    if let Some(url) = &options.redis {
        if let Err(message) = share_rooms_through_redis(&chat, url).await {
            eprintln!("error: {message}");
            return ExitCode::FAILURE;
        }
    }
    let service = ServiceBuilder::new().layer(layer).service_fn(move |req| route(chat.clone(), req));
    let mut http = auto::Builder::new(TokioExecutor::new());
    http.http2().enable_connect_protocol();
    // Kestrel's limits on a request head, as in the echo example (docs/security.md): 32 KiB at
    // most (else 431), 100 header lines, 30 seconds to send it.
    http.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEAD_TIMEOUT)
        .max_buf_size(32 * 1024)
        .max_headers(100);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    continue;
                }
            },
            _ = tokio::signal::ctrl_c() => return ExitCode::SUCCESS,
        };
        let service = TowerToHyperService::new(service.clone());
        let http = http.clone();
        tokio::spawn(async move {
            // auto::Builder reads the first bytes with no timeout of its own.
            let first = tokio::time::timeout(HEAD_TIMEOUT, stream.peek(&mut [0u8])).await;
            if matches!(first, Ok(Ok(1))) {
                let _ = http.serve_connection_with_upgrades(TokioIo::new(stream), service).await;
            }
        });
    }
}
