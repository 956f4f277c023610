//! [`Encoder`]: frames out. The header is built inline ([`HeaderBytes`], at most 14 bytes) and
//! the payload stays the caller's [`Bytes`]: a server never copies an uncompressed payload, and
//! the socket writes [`EncodedFrame::io_slices`] with one vectored write (or
//! [`EncodedFrame::write_to`] a staging buffer, for small frames and IO that does not write
//! vectored). A client masks (RFC 6455 §5.3), which needs a copy of the payload.

use std::{
    collections::hash_map::RandomState,
    hash::{BuildHasher, Hasher},
};

use bytes::{BufMut, Bytes, BytesMut};

use crate::proto::{
    close::is_allowed_on_wire,
    error::ProtocolError,
    frame::{FrameHeader, HeaderBytes, MAX_CONTROL_PAYLOAD, OpCode, Role, apply_mask},
};

/// The longest reason a Close can carry: 125 bytes of payload less the code.
pub(crate) const MAX_CLOSE_REASON: usize = 123;

/// One frame, ready to write: its header, then its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EncodedFrame {
    header: HeaderBytes,
    payload: Bytes,
}

impl EncodedFrame {
    /// The header's bytes.
    pub(crate) fn header(&self) -> &[u8] {
        self.header.as_slice()
    }

    /// The payload, masked for a client.
    pub(crate) fn payload(&self) -> &Bytes {
        &self.payload
    }

    /// The frame's length on the wire.
    pub(crate) fn len(&self) -> usize {
        self.header().len() + self.payload.len()
    }

    /// The header and the payload, for `poll_write_vectored`.
    #[cfg(test)]
    pub(crate) fn io_slices(&self) -> [std::io::IoSlice<'_>; 2] {
        [std::io::IoSlice::new(self.header()), std::io::IoSlice::new(&self.payload)]
    }

    /// Appends the whole frame to `dst` (coalescing small frames into one write).
    #[cfg(test)]
    pub(crate) fn write_to(&self, dst: &mut BytesMut) {
        dst.reserve(self.len());
        dst.put_slice(self.header());
        dst.put_slice(&self.payload);
    }
}

/// Where a client's mask keys come from: a hasher keyed at random by the standard library, over
/// a counter. RFC 6455 §10.3 asks for keys the application cannot predict.
#[derive(Debug)]
struct MaskKeys {
    state: RandomState,
    counter: u64,
}

impl MaskKeys {
    fn next(&mut self) -> [u8; 4] {
        self.counter = self.counter.wrapping_add(1);
        let mut hasher = self.state.build_hasher();
        hasher.write_u64(self.counter);
        (hasher.finish() as u32).to_ne_bytes()
    }
}

/// Frames the messages of one side of a connection.
#[derive(Debug)]
pub(crate) struct Encoder {
    role: Role,
    masks: MaskKeys,
}

impl Encoder {
    /// An encoder for `role`: a client masks every frame.
    pub(crate) fn new(role: Role) -> Self {
        Self { role, masks: MaskKeys { state: RandomState::new(), counter: 0 } }
    }

    /// A frame of any kind. `rsv1` marks the first frame of a compressed message. A server's
    /// payload is kept as it is; a client's is masked into a copy.
    pub(crate) fn frame(&mut self, opcode: OpCode, fin: bool, rsv1: bool, payload: Bytes) -> EncodedFrame {
        let mask = match self.role {
            Role::Server => None,
            Role::Client => Some(self.masks.next()),
        };
        Self::frame_with_mask(opcode, fin, rsv1, payload, mask)
    }

    /// A frame masked with `mask` (or not, with `None`), whatever the role: for tests and
    /// peers that want their own keys.
    pub(crate) fn frame_with_mask(
        opcode: OpCode,
        fin: bool,
        rsv1: bool,
        payload: Bytes,
        mask: Option<[u8; 4]>,
    ) -> EncodedFrame {
        let header = FrameHeader::new(fin, rsv1, opcode, payload.len() as u64, mask).encode();
        let payload = match mask {
            None => payload,
            Some(key) => {
                let mut masked = BytesMut::from(&payload[..]);
                apply_mask(&mut masked, key, 0);
                masked.freeze()
            }
        };
        EncodedFrame { header, payload }
    }

    /// A whole text message in one frame (the caller has a `str`, so it is UTF-8).
    #[cfg(test)]
    pub(crate) fn text(&mut self, payload: Bytes) -> EncodedFrame {
        self.frame(OpCode::Text, true, false, payload)
    }

    /// A whole binary message in one frame.
    #[cfg(test)]
    pub(crate) fn binary(&mut self, payload: Bytes) -> EncodedFrame {
        self.frame(OpCode::Binary, true, false, payload)
    }

    /// A Ping or a Pong.
    ///
    /// # Errors
    ///
    /// [`ProtocolError::ControlFrameTooLong`] for a payload over 125 bytes (RFC 6455 §5.5).
    pub(crate) fn control(&mut self, opcode: OpCode, payload: Bytes) -> Result<EncodedFrame, ProtocolError> {
        if payload.len() as u64 > MAX_CONTROL_PAYLOAD {
            return Err(ProtocolError::ControlFrameTooLong);
        }
        Ok(self.frame(opcode, true, false, payload))
    }

    /// A Close: empty, or a code and a reason.
    ///
    /// # Errors
    ///
    /// [`ProtocolError::InvalidCloseCode`] for a code not allowed on the wire,
    /// [`ProtocolError::ControlFrameTooLong`] for a reason over 123 bytes.
    pub(crate) fn close(&mut self, close: Option<(u16, &str)>) -> Result<EncodedFrame, ProtocolError> {
        let payload = match close {
            None => Bytes::new(),
            Some((code, _)) if !is_allowed_on_wire(code) => {
                return Err(ProtocolError::InvalidCloseCode(code));
            }
            Some((_, reason)) if reason.len() > MAX_CLOSE_REASON => {
                return Err(ProtocolError::ControlFrameTooLong);
            }
            Some((code, reason)) => {
                let mut payload = BytesMut::with_capacity(2 + reason.len());
                payload.put_u16(code);
                payload.put_slice(reason.as_bytes());
                payload.freeze()
            }
        };
        self.control(OpCode::Close, payload)
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use tokio_tungstenite::tungstenite::protocol::frame::{
        FrameSocket,
        coding::{Control, Data, OpCode as TOpCode},
    };

    use super::*;
    use crate::proto::decoder::{Decoder, DecoderConfig, Event};

    #[test]
    fn a_server_frame_keeps_its_payload_and_has_an_inline_header() {
        let payload = Bytes::from(vec![3; 70_000]);
        let frame = Encoder::new(Role::Server).binary(payload.clone());
        assert_eq!(frame.header(), [0x82, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
        assert_eq!(frame.payload().as_ptr(), payload.as_ptr(), "not copied");
        assert_eq!(frame.len(), 10 + 70_000);
        let [header, body] = frame.io_slices();
        assert_eq!((&*header, body.len()), (frame.header(), 70_000));
        let mut out = BytesMut::new();
        frame.write_to(&mut out);
        frame.write_to(&mut out);
        assert_eq!(out.len(), 2 * frame.len());
        assert_eq!(&out[..10], frame.header());
    }

    #[test]
    fn tungstenite_reads_what_we_encode_both_ways() {
        for role in [Role::Server, Role::Client] {
            let mut encoder = Encoder::new(role);
            let mut out = BytesMut::new();
            encoder.text(Bytes::from_static("héllo".as_bytes())).write_to(&mut out);
            encoder.frame(OpCode::Binary, false, false, Bytes::from(vec![1; 200])).write_to(&mut out);
            encoder.control(OpCode::Ping, Bytes::from_static(b"p")).unwrap().write_to(&mut out);
            encoder.frame(OpCode::Continuation, true, false, Bytes::from(vec![2; 70_000])).write_to(&mut out);
            encoder.close(Some((4000, "bye"))).unwrap().write_to(&mut out);
            let mut socket = FrameSocket::new(Cursor::new(out.to_vec()));
            let mut frames = Vec::new();
            while let Some(frame) = socket.read(None).unwrap() {
                let mask = frame.header().mask;
                assert_eq!(mask.is_some(), role == Role::Client);
                // tungstenite's frame layer leaves the payload masked.
                let mut payload = frame.payload().to_vec();
                apply_mask(&mut payload, mask.unwrap_or_default(), 0);
                frames.push((frame.header().is_final, frame.header().opcode, payload));
            }
            let close = [&4000u16.to_be_bytes()[..], b"bye"].concat();
            let expected = [
                (true, TOpCode::Data(Data::Text), "héllo".as_bytes().to_vec()),
                (false, TOpCode::Data(Data::Binary), vec![1; 200]),
                (true, TOpCode::Control(Control::Ping), b"p".to_vec()),
                (true, TOpCode::Data(Data::Continue), vec![2; 70_000]),
                (true, TOpCode::Control(Control::Close), close),
            ];
            assert!(
                frames == expected,
                "{role:?}: {:?}",
                frames.iter().map(|f| (f.0, f.1, f.2.len())).collect::<Vec<_>>()
            );
        }
    }

    #[test]
    fn our_decoder_reads_what_a_client_encoder_writes() {
        let mut encoder = Encoder::new(Role::Client);
        let mut src = BytesMut::new();
        encoder.text(Bytes::from_static(b"one")).write_to(&mut src);
        encoder.close(None).unwrap().write_to(&mut src);
        let mut decoder =
            Decoder::new(DecoderConfig { role: Role::Server, max_frame_size: None, max_message_size: None });
        assert_eq!(decoder.decode(&mut src), Ok(Some(Event::Text(Bytes::from_static(b"one")))));
        assert_eq!(decoder.decode(&mut src), Ok(Some(Event::Close(None))));
        // Two client frames get different mask keys.
        let a = encoder.binary(Bytes::from_static(b"same"));
        let b = encoder.binary(Bytes::from_static(b"same"));
        assert_ne!(a.header()[2..6], b.header()[2..6]);
    }

    #[test]
    fn control_and_close_limits() {
        let mut encoder = Encoder::new(Role::Server);
        assert!(encoder.control(OpCode::Ping, Bytes::from(vec![0; 125])).is_ok());
        assert_eq!(
            encoder.control(OpCode::Pong, Bytes::from(vec![0; 126])),
            Err(ProtocolError::ControlFrameTooLong)
        );
        assert_eq!(encoder.close(Some((1005, ""))), Err(ProtocolError::InvalidCloseCode(1005)));
        let longest = "r".repeat(MAX_CLOSE_REASON);
        assert_eq!(encoder.close(Some((1000, &longest))).unwrap().len(), 2 + 125);
        let too_long = "r".repeat(MAX_CLOSE_REASON + 1);
        assert_eq!(encoder.close(Some((1000, &too_long))), Err(ProtocolError::ControlFrameTooLong));
        assert_eq!(encoder.close(None).unwrap().header(), [0x88, 0]);
    }
}
