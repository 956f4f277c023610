//! The seam between a [`Hub`](super::Hub) and a broker that carries its topics to other server
//! instances: the [`Backplane`] a hub calls, the [`BackplaneError`] users see, and the
//! envelope a message travels in between instances. The seam has one implementation so far,
//! the `redis` feature's.
#![cfg_attr(not(feature = "redis"), allow(dead_code))]

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use crate::{message::Utf8Bytes, prepared::PreparedMessage, proto::frame::OpCode};

/// Where a backplane reports whether the broker took a message.
pub(crate) type Confirm = tokio::sync::oneshot::Sender<Result<(), BackplaneError>>;

/// What a hub asks of its backplane. Every call is made without waiting: the backplane queues
/// the work for its own tasks.
pub(crate) trait Backplane: Send + Sync + 'static {
    /// The first local subscriber joined `topic`: receive it from the other instances.
    fn topic_added(&self, topic: &str);

    /// The last local subscriber left `topic`.
    fn topic_removed(&self, topic: &str);

    /// Sends a message published here to the other instances, without waiting for the broker.
    /// The outcome goes to `confirm` if given, and into the hub's counts
    /// ([`Hub::record_relay`](super::Hub::record_relay)) in any case.
    fn relay(&self, topic: &str, message: &PreparedMessage, confirm: Option<Confirm>);
}

/// Why a backplane could not start, or could not carry a message to the other instances.
///
/// Local subscribers are never affected: a message published while the backplane is down still
/// reaches every subscriber of this instance.
///
/// ```
/// use tower_websockets::broadcast::BackplaneError;
///
/// fn explain(error: &BackplaneError) -> String {
///     if error.is_unavailable() {
///         format!("other servers missed it: {error}")
///     } else {
///         error.to_string()
///     }
/// }
/// # let _ = explain;
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BackplaneError {
    /// The broker's URL could not be used (at start-up).
    InvalidUrl {
        /// The URL, without its password.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The broker could not be reached, or did not answer in time (at start-up).
    Unreachable {
        /// The URL, without its password.
        url: String,
        /// What failed.
        reason: String,
    },
    /// The broker refused us: a wrong password or user, or a command it does not allow (at
    /// start-up).
    Refused {
        /// The URL, without its password.
        url: String,
        /// The broker's answer.
        reason: String,
    },
    /// The broker is down or the connection to it broke; the backplane is reconnecting. The
    /// message reached this instance's subscribers only.
    Unavailable {
        /// The last failure.
        reason: String,
    },
    /// More messages are waiting for the broker than the backplane queues
    /// (`RedisBackplaneBuilder::max_pending`).
    /// The message reached this instance's subscribers only.
    Overloaded,
    /// The hub already has a backplane.
    AlreadyAttached,
    /// The backplane stopped (its runtime shut down).
    Stopped,
}

impl BackplaneError {
    /// Is this a failure to reach the other instances at run time (the broker is down, or the
    /// backplane is overloaded or stopped), rather than a start-up error?
    ///
    /// ```
    /// use tower_websockets::broadcast::BackplaneError;
    ///
    /// assert!(BackplaneError::Overloaded.is_unavailable());
    /// assert!(!BackplaneError::AlreadyAttached.is_unavailable());
    /// ```
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable { .. } | Self::Overloaded | Self::Stopped)
    }
}

impl fmt::Display for BackplaneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidUrl { url, reason } => write!(f, "invalid backplane URL `{url}`: {reason}"),
            Self::Unreachable { url, reason } => write!(f, "cannot reach the backplane at {url}: {reason}"),
            Self::Refused { url, reason } => write!(f, "the backplane at {url} refused the connection: {reason}"),
            Self::Unavailable { reason } => {
                write!(f, "the backplane is unavailable (reconnecting): {reason}; only this instance's subscribers got the message")
            }
            Self::Overloaded => f.write_str(
                "the backplane is overloaded (too many messages waiting for the broker); only this instance's subscribers got the message",
            ),
            Self::AlreadyAttached => f.write_str("the hub already has a backplane"),
            Self::Stopped => f.write_str("the backplane has stopped; only this instance's subscribers got the message"),
        }
    }
}

impl std::error::Error for BackplaneError {}

/// The envelope's first byte: its format version and the message's kind.
const TEXT: u8 = 1;
const BINARY: u8 = 2;
/// Kind byte plus the origin's 8 bytes.
const HEADER_LEN: usize = 9;

/// A message as it travels between instances: a kind byte (text or binary), the publishing
/// instance's id (8 bytes, big-endian), then the payload. The id lets an instance skip its own
/// messages when the broker echoes them back: they already reached its subscribers.
pub(crate) fn encode_envelope(origin: u64, message: &PreparedMessage) -> Bytes {
    let (payload, kind) = message.payload();
    let mut envelope = BytesMut::with_capacity(HEADER_LEN + payload.len());
    envelope.put_u8(if kind == OpCode::Text { TEXT } else { BINARY });
    envelope.put_u64(origin);
    envelope.put_slice(&payload);
    envelope.freeze()
}

/// What an envelope from the broker holds.
#[derive(Debug)]
pub(crate) enum Envelope {
    /// From another instance: deliver it.
    Foreign(PreparedMessage),
    /// Our own message, echoed back by the broker.
    Own,
}

/// Reads an envelope. An `Err` names what is wrong with it (it did not come from a
/// tower-websockets backplane of this version, or its text is not UTF-8).
pub(crate) fn decode_envelope(origin: u64, envelope: &[u8]) -> Result<Envelope, String> {
    if envelope.len() < HEADER_LEN {
        return Err(format!("{} bytes, shorter than the {HEADER_LEN}-byte header", envelope.len()));
    }
    let (header, payload) = envelope.split_at(HEADER_LEN);
    let mut id = [0; 8];
    id.copy_from_slice(&header[1..]);
    if u64::from_be_bytes(id) == origin {
        return Ok(Envelope::Own);
    }
    let payload = Bytes::copy_from_slice(payload);
    match header[0] {
        TEXT => Utf8Bytes::try_from(payload)
            .map(|text| Envelope::Foreign(PreparedMessage::text(text)))
            .map_err(|_| "a text message that is not UTF-8".to_owned()),
        BINARY => Ok(Envelope::Foreign(PreparedMessage::binary(payload))),
        kind => Err(format!("unknown kind byte {kind}")),
    }
}

/// A random id for this instance's backplane, from the standard library's randomly keyed
/// hasher, the clock and the process id (no dependency for one number).
pub(crate) fn random_origin() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
        hasher.write_u128(now.as_nanos());
    }
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_envelope_round_trips_text_and_binary() {
        for message in [PreparedMessage::text("héllo"), PreparedMessage::binary(vec![0, 255, 7])] {
            let envelope = encode_envelope(7, &message);
            assert_eq!(envelope.len(), HEADER_LEN + message.len());
            let Ok(Envelope::Foreign(decoded)) = decode_envelope(8, &envelope) else {
                panic!("a foreign message")
            };
            assert_eq!(decoded.to_message(), message.to_message());
        }
    }

    #[test]
    fn our_own_envelope_is_recognised() {
        let envelope = encode_envelope(42, &PreparedMessage::text("mine"));
        assert!(matches!(decode_envelope(42, &envelope), Ok(Envelope::Own)));
    }

    #[test]
    fn a_bad_envelope_is_an_error_that_names_the_problem() {
        let short = decode_envelope(1, b"abc").unwrap_err();
        assert!(short.contains("shorter"), "{short}");

        let mut unknown = encode_envelope(2, &PreparedMessage::binary(vec![1])).to_vec();
        unknown[0] = 9;
        let unknown = decode_envelope(1, &unknown).unwrap_err();
        assert!(unknown.contains("unknown kind byte 9"), "{unknown}");

        let mut invalid = encode_envelope(2, &PreparedMessage::binary(vec![0xff, 0xfe])).to_vec();
        invalid[0] = TEXT;
        let invalid = decode_envelope(1, &invalid).unwrap_err();
        assert!(invalid.contains("UTF-8"), "{invalid}");
    }

    #[test]
    fn origins_differ() {
        assert_ne!(random_origin(), random_origin());
    }

    #[test]
    fn errors_say_what_happened() {
        let error =
            BackplaneError::Refused { url: "redis://127.0.0.1:1/".into(), reason: "WRONGPASS".into() };
        assert_eq!(
            error.to_string(),
            "the backplane at redis://127.0.0.1:1/ refused the connection: WRONGPASS"
        );
        assert!(!error.is_unavailable());
        assert!(BackplaneError::Unavailable { reason: "x".into() }.is_unavailable());
        assert!(BackplaneError::Stopped.is_unavailable());
    }
}

#[cfg(test)]
mod hub_tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::broadcast::{Delivery, Hub};

    /// A backplane that writes down what the hub asks of it, and answers relays with `answer`.
    #[derive(Default)]
    struct Recorder {
        calls: Mutex<Vec<String>>,
        answer: Mutex<Option<BackplaneError>>,
    }

    impl Backplane for Arc<Recorder> {
        fn topic_added(&self, topic: &str) {
            self.calls.lock().unwrap().push(format!("+{topic}"));
        }

        fn topic_removed(&self, topic: &str) {
            self.calls.lock().unwrap().push(format!("-{topic}"));
        }

        fn relay(&self, topic: &str, message: &PreparedMessage, confirm: Option<Confirm>) {
            let text = message.to_message().as_text().unwrap_or("?").to_owned();
            self.calls.lock().unwrap().push(format!("{topic}:{text}"));
            let answer = self.answer.lock().unwrap().clone().map_or(Ok(()), Err);
            if let Some(confirm) = confirm {
                let _ = confirm.send(answer);
            }
        }
    }

    fn calls(recorder: &Recorder) -> Vec<String> {
        std::mem::take(&mut *recorder.calls.lock().unwrap())
    }

    #[test]
    fn the_backplane_hears_of_topics_as_they_gain_their_first_and_lose_their_last_subscriber() {
        let hub = Hub::new();
        let mut early = hub.subscriber();
        early.subscribe("existing");
        let recorder = Arc::new(Recorder::default());
        hub.attach_backplane(Arc::new(recorder.clone())).unwrap();
        assert_eq!(calls(&recorder), ["+existing"], "topics that exist at attach time are announced");

        let mut alice = hub.subscriber();
        let mut bob = hub.subscriber();
        alice.subscribe("room");
        bob.subscribe("room");
        assert_eq!(calls(&recorder), ["+room"], "only the first subscriber subscribes the instance");
        alice.unsubscribe("room");
        assert!(calls(&recorder).is_empty());
        drop(bob);
        drop(early);
        let mut left = calls(&recorder);
        left.sort();
        assert_eq!(left, ["-existing", "-room"]);

        let again = hub.attach_backplane(Arc::new(recorder.clone())).unwrap_err();
        assert_eq!(again, BackplaneError::AlreadyAttached);
    }

    #[tokio::test]
    async fn publishing_reaches_local_subscribers_once_and_the_backplane_once() {
        let hub = Hub::new();
        let recorder = Arc::new(Recorder::default());
        hub.attach_backplane(Arc::new(recorder.clone())).unwrap();
        let mut alice = hub.subscriber();
        alice.subscribe("room");
        calls(&recorder);

        assert_eq!(hub.publish("room", "from here"), 1);
        assert_eq!(calls(&recorder), ["room:from here"]);
        assert_eq!(hub.deliver_from_backplane("room", &PreparedMessage::text("from there")), 1);
        assert!(calls(&recorder).is_empty(), "a message from another instance is not relayed back");
        assert_eq!(hub.publish_local("room", "only here"), 1);
        assert!(calls(&recorder).is_empty(), "publish_local stays here");

        for expected in ["from here", "from there", "only here"] {
            let Some(Delivery::Message(message)) = alice.try_recv() else { panic!("{expected}") };
            assert_eq!(message.to_message().as_text(), Some(expected));
        }
        assert!(alice.try_recv().is_none(), "each message once");
        let stats = hub.stats();
        assert_eq!((stats.published, stats.from_backplane), (2, 1));
    }

    #[tokio::test]
    async fn publish_confirmed_reports_what_the_backplane_could_not_carry() {
        let hub = Hub::new();
        let recorder = Arc::new(Recorder::default());
        hub.attach_backplane(Arc::new(recorder.clone())).unwrap();
        let mut alice = hub.subscriber();
        alice.subscribe("room");

        assert_eq!(hub.publish_confirmed("room", "one").await, Ok(1));
        *recorder.answer.lock().unwrap() = Some(BackplaneError::Unavailable { reason: "down".into() });
        let error = hub.publish_confirmed("room", "two").await.unwrap_err();
        assert!(error.is_unavailable(), "{error}");
        assert_eq!(
            alice.queued_bytes(),
            2 * (3 + crate::broadcast::QUEUED_MESSAGE_OVERHEAD),
            "local subscribers got both"
        );
    }
}
