//! A reference reading of what a client sent (RFC 6455 §5 and §7), written from the RFC: which
//! messages a server must deliver, and how it must end. The `frames` target holds the server to
//! it, so a wrong close code is a finding, not only a panic.
//!
//! The order of the checks follows the read path of a streaming server, which cannot know a
//! frame's payload before it has arrived: the header (and its length against the frame limit)
//! first, then the payload, then what the frame says.

use crate::{MAX_FRAME_SIZE, MAX_MESSAGE_SIZE};

/// Gap 1 of issue #14: a 64-bit length with its most significant bit set must fail the
/// connection with 1002 (RFC 6455 §5.2), but tungstenite reads it as a length and the frame limit
/// answers 1009. Set to `true` once the transport seam checks the bit; until then both codes pass.
pub const GAP1_FIXED: bool = true;

/// How the server must end the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The input ran out without a Close, mid-frame or between frames: the server sees the
    /// connection end and sends no Close.
    Eof,
    /// The peer broke the protocol: the server closes with one of these codes.
    Violation {
        /// The codes the RFC allows (more than one when a frame has several faults, and for
        /// [`GAP1_FIXED`]).
        codes: Vec<u16>,
        /// What was wrong.
        why: &'static str,
        /// The header showed the fault but the payload never came: the server may also have
        /// waited for it and seen the connection end (no Close).
        or_eof: bool,
    },
    /// The peer sent a Close: the server answers it.
    PeerClose(Reply),
}

/// The server's answer to the peer's Close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A Close without a payload, for one without a payload.
    Empty,
    /// The peer's payload echoed (code and reason), as RFC 6455 §5.5.1 suggests.
    Echo(Vec<u8>),
    /// The peer's code is one no endpoint may send: 1002.
    ProtocolError,
    /// 1014 (Bad Gateway) is registered at IANA but was added after tungstenite's table: it
    /// answers 1002. Either the echo or 1002 passes.
    EchoOrProtocolError(Vec<u8>),
}

/// What the server must do with the input.
#[derive(Debug, Clone, Default)]
pub struct Expected {
    /// Whole messages before the end, in order: (text?, payload).
    pub messages: Vec<(bool, Vec<u8>)>,
    /// Ping payloads, in order.
    pub pings: Vec<Vec<u8>>,
    /// How it ends.
    pub end: Option<End>,
}

/// A close code a peer may send (RFC 6455 §7.4): 1000 to 1003, 1007 to 1014, 3000 to 4999.
pub fn peer_may_send(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

fn violation(codes: &[u16], why: &'static str) -> End {
    End::Violation { codes: codes.to_vec(), why, or_eof: false }
}

/// What a frame's first byte alone shows to be wrong (compression is off in the `frames` target),
/// with a fragmented message open or not.
fn first_byte_faults(b0: u8, fragmented: bool) -> Vec<(u16, &'static str)> {
    let (fin, rsv, opcode) = (b0 & 0x80 != 0, b0 & 0x70, b0 & 0x0f);
    let mut faults = Vec::new();
    if rsv != 0 {
        faults.push((1002, "RSV bits without an extension"));
    }
    match opcode {
        0x3..=0x7 | 0xb..=0xf => faults.push((1002, "a reserved opcode")),
        0x8..=0xa if !fin => faults.push((1002, "a fragmented control frame")),
        0x0 if !fragmented => faults.push((1002, "a continuation with nothing to continue")),
        0x1 | 0x2 if fragmented => faults.push((1002, "a new message inside a fragmented one")),
        _ => {}
    }
    faults
}

/// Does `bytes` hold an invalid UTF-8 sequence (one that more bytes cannot repair)?
fn utf8_broken(bytes: &[u8]) -> bool {
    matches!(std::str::from_utf8(bytes), Err(e) if e.error_len().is_some())
}

/// Reads `input` as a client's frames.
pub fn expect(input: &[u8]) -> Expected {
    let mut out = Expected::default();
    out.end = Some(read(input, &mut out));
    out
}

fn read(mut input: &[u8], out: &mut Expected) -> End {
    // The message being assembled from fragments: (text?, bytes so far).
    let mut partial: Option<(bool, Vec<u8>)> = None;
    loop {
        // A server may fail the connection on the first header bytes that show a fault, before
        // the rest of the frame has come (RFC 6455 §5.2; docs/conformance.md): if the input
        // stops there, a Close with the fault's code or none are both right.
        let early = |faults: Vec<(u16, &'static str)>| match faults.first() {
            Some(&(_, why)) => {
                End::Violation { codes: faults.iter().map(|&(code, _)| code).collect(), why, or_eof: true }
            }
            None => End::Eof,
        };
        let Some(&b0) = input.first() else { return End::Eof };
        let first_byte_faults = first_byte_faults(b0, partial.is_some());
        let Some(&b1) = input.get(1) else { return early(first_byte_faults) };
        let mut first_faults = first_byte_faults;
        if b1 & 0x80 == 0 {
            first_faults.push((1002, "an unmasked frame"));
        }
        let (fin, rsv, opcode, masked) = (b0 & 0x80 != 0, b0 & 0x70, b0 & 0x0f, b1 & 0x80 != 0);
        let mut at = 2;
        let mut top_bit = false;
        let len = match b1 & 0x7f {
            126 => {
                let Some(ext) = input.get(2..4) else { return early(first_faults) };
                at = 4;
                u64::from(u16::from_be_bytes([ext[0], ext[1]]))
            }
            127 => {
                let Some(ext) = input.get(2..10) else { return early(first_faults) };
                at = 10;
                let len = u64::from_be_bytes(ext.try_into().expect("8 bytes"));
                top_bit = len >> 63 != 0;
                len
            }
            n => u64::from(n),
        };
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        let mask = if masked {
            let Some(key) = input.get(at..at + 4) else {
                // The length alone shows this one: a server may fail before the mask key comes.
                if top_bit && GAP1_FIXED {
                    return End::Violation {
                        codes: vec![1002],
                        why: "the 64-bit length's top bit is set",
                        or_eof: true,
                    };
                }
                return early(first_faults);
            };
            at += 4;
            Some([key[0], key[1], key[2], key[3]])
        } else {
            None
        };
        // What the header alone shows to be wrong. A server may fail the connection as soon as it
        // has the header, or once the payload has arrived; with two faults, either code is right.
        let control = opcode & 0x08 != 0;
        let mut header_faults: Vec<(u16, &'static str)> = Vec::new();
        if top_bit {
            header_faults.push((1002, "the 64-bit length's top bit is set"));
            if !GAP1_FIXED {
                header_faults.push((1009, "the 64-bit length's top bit is set"));
            }
        }
        if len > MAX_FRAME_SIZE {
            header_faults.push((1009, "a frame over the frame limit"));
        }
        if mask.is_none() {
            header_faults.push((1002, "an unmasked frame"));
        }
        if rsv != 0 {
            header_faults.push((1002, "RSV bits without an extension"));
        }
        if matches!(opcode, 0x3..=0x7 | 0xb..=0xf) {
            header_faults.push((1002, "a reserved opcode"));
        }
        if control && !fin {
            header_faults.push((1002, "a fragmented control frame"));
        }
        if control && len > 125 {
            header_faults.push((1002, "a control frame over 125 bytes"));
        }
        // What the header shows with the message so far (the server may fail here too, or once
        // the payload has come, with the same code).
        if opcode == 0x8 && len == 1 {
            header_faults.push((1002, "a one-byte Close payload"));
        }
        match (opcode, partial.as_ref()) {
            (0x0, None) => header_faults.push((1002, "a continuation with nothing to continue")),
            (0x1 | 0x2, Some(_)) => header_faults.push((1002, "a new message inside a fragmented one")),
            (0x0, Some((_, bytes))) if bytes.len().saturating_add(len) > MAX_MESSAGE_SIZE => {
                header_faults.push((1009, "a message over the message limit"));
            }
            _ => {}
        }
        let complete = input.len().checked_sub(at).is_some_and(|left| left >= len);
        if let Some(&(_, why)) = header_faults.first() {
            let codes = header_faults.iter().map(|&(code, _)| code).collect();
            return End::Violation { codes, why, or_eof: !complete };
        }
        if !complete {
            // Text is checked as it arrives: invalid UTF-8 in the part that came may fail the
            // connection before the frame ends (RFC 6455 §8.1).
            let text = match (opcode, partial.as_ref()) {
                (0x1, None) => Some(Vec::new()),
                (0x0, Some((true, bytes))) => Some(bytes.clone()),
                _ => None,
            };
            if let (Some(mut bytes), Some(mask)) = (text, mask) {
                let came = input.get(at..).unwrap_or_default();
                bytes.extend(came.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
                if utf8_broken(&bytes) {
                    return End::Violation {
                        codes: vec![1007],
                        why: "invalid UTF-8 in a text message",
                        or_eof: true,
                    };
                }
            }
            return End::Eof;
        }
        let payload = &input[at..at + len];
        input = &input[at + len..];
        let mask = mask.expect("checked above");
        let payload: Vec<u8> = payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]).collect();
        if control {
            match opcode {
                0x8 => return close(&payload),
                0x9 => out.pings.push(payload),
                _ => {} // a Pong
            }
            continue;
        }
        match (opcode, partial.as_mut()) {
            (0x0, None) => return violation(&[1002], "a continuation with nothing to continue"),
            (0x0, Some((text, bytes))) => {
                if bytes.len() + payload.len() > MAX_MESSAGE_SIZE {
                    return violation(&[1009], "a message over the message limit");
                }
                bytes.extend_from_slice(&payload);
                if *text && utf8_broken(bytes) {
                    return violation(&[1007], "invalid UTF-8 in a text message");
                }
                if fin {
                    let (text, bytes) = partial.take().expect("matched Some");
                    if text && std::str::from_utf8(&bytes).is_err() {
                        return violation(&[1007], "a text message ending mid-character");
                    }
                    out.messages.push((text, bytes));
                }
            }
            (_, Some(_)) => return violation(&[1002], "a new message inside a fragmented one"),
            (_, None) => {
                let text = opcode == 0x1;
                if fin {
                    if text && std::str::from_utf8(&payload).is_err() {
                        return violation(&[1007], "invalid UTF-8 in a text message");
                    }
                    out.messages.push((text, payload));
                } else {
                    if text && utf8_broken(&payload) {
                        return violation(&[1007], "invalid UTF-8 in a text message");
                    }
                    partial = Some((text, payload));
                }
            }
        }
    }
}

/// The peer's Close (RFC 6455 §5.5.1, §7.1.5, §7.4).
fn close(payload: &[u8]) -> End {
    match payload.len() {
        0 => End::PeerClose(Reply::Empty),
        1 => violation(&[1002], "a one-byte Close payload"),
        _ => {
            if std::str::from_utf8(&payload[2..]).is_err() {
                return violation(&[1007], "a Close reason that is not UTF-8");
            }
            let code = u16::from_be_bytes([payload[0], payload[1]]);
            End::PeerClose(match code {
                1014 => Reply::EchoOrProtocolError(payload.to_vec()),
                code if peer_may_send(code) => Reply::Echo(payload.to_vec()),
                _ => Reply::ProtocolError,
            })
        }
    }
}

/// A client frame, masked with the key `0` so that the payload reads as it is (for seeds and
/// tests).
pub fn client_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = vec![b0];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n <= 0xffff => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend_from_slice(payload);
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_messages_and_violations() {
        let mut input = client_frame(0x81, b"hi");
        input.extend(client_frame(0x01, b"a"));
        input.extend(client_frame(0x89, b"p"));
        input.extend(client_frame(0x80, b"b"));
        input.extend(client_frame(0x88, &[0x03, 0xe8]));
        let expected = expect(&input);
        assert_eq!(expected.messages, vec![(true, b"hi".to_vec()), (true, b"ab".to_vec())]);
        assert_eq!(expected.pings, vec![b"p".to_vec()]);
        assert_eq!(expected.end, Some(End::PeerClose(Reply::Echo(vec![0x03, 0xe8]))));

        assert!(
            matches!(expect(&[0x81, 0x00]).end, Some(End::Violation { ref codes, .. }) if codes == &[1002])
        );
        let bad = client_frame(0x81, &[0xff]);
        assert!(matches!(expect(&bad).end, Some(End::Violation { ref codes, .. }) if codes == &[1007]));
        assert_eq!(expect(&bad[..3]).end, Some(End::Eof));
    }

    /// The close code the model expects for `input`, for a violation.
    fn codes(input: &[u8]) -> Vec<u16> {
        match expect(input).end {
            Some(End::Violation { codes, .. }) => codes,
            other => panic!("expected a violation, got {other:?}"),
        }
    }

    /// Each rule of the model on its own, so that a model that answers one of them wrongly
    /// fails here and not only on the fuzz corpus.
    #[test]
    fn a_fault_in_the_first_bytes_may_fail_before_the_frame_is_whole() {
        let may_fail = |input: &[u8], code: u16| {
            let end = expect(input).end.expect("an end");
            assert!(
                matches!(&end, End::Violation { codes, or_eof: true, .. } if codes.contains(&code)),
                "{input:?}: {end:?}"
            );
        };
        may_fail(&[0x00], 1002); // a continuation with nothing to continue
        may_fail(&[0x91], 1002); // RSV3
        may_fail(&[0x81, 0x05], 1002); // unmasked
        may_fail(&[0x09, 0x80], 1002); // a fragmented Ping
        // Invalid UTF-8 in the part of a text frame that came.
        may_fail(&[&[0x81, 0x84, 0, 0, 0, 0][..], b"\xff"].concat(), 1007);
        assert_eq!(expect(&[0x81]).end, Some(End::Eof));
        assert_eq!(expect(&[&[0x81, 0x84, 0, 0, 0, 0][..], b"ok"].concat()).end, Some(End::Eof));
    }

    #[test]
    fn every_violation_has_its_code() {
        let frames = |list: &[(u8, &[u8])]| -> Vec<u8> {
            list.iter().flat_map(|(b0, payload)| client_frame(*b0, payload)).collect()
        };
        let cases: &[(&str, Vec<u8>, u16)] = &[
            ("invalid UTF-8 in the first fragment", frames(&[(0x01, &[0xff])]), 1007),
            ("invalid UTF-8 in a continuation", frames(&[(0x01, b"a"), (0x00, &[0xff]), (0x80, b"b")]), 1007),
            ("a text message ending mid-character", frames(&[(0x01, b"a"), (0x80, &[0xe2, 0x82])]), 1007),
            ("a continuation with nothing to continue", frames(&[(0x80, b"a")]), 1002),
            ("a new message inside a fragmented one", frames(&[(0x01, b"a"), (0x81, b"b")]), 1002),
            ("a one-byte Close", frames(&[(0x88, &[0x03])]), 1002),
            ("a Close reason that is not UTF-8", frames(&[(0x88, &[0x03, 0xe8, 0xff])]), 1007),
            ("RSV1 without an extension", frames(&[(0xc1, b"a")]), 1002),
            ("a reserved opcode", frames(&[(0x83, b"a")]), 1002),
            ("a fragmented Ping", frames(&[(0x09, b"a")]), 1002),
            ("a 126-byte Ping", frames(&[(0x89, &[0u8; 126])]), 1002),
        ];
        for (what, input, code) in cases {
            assert_eq!(codes(input), [*code], "{what}");
        }
        // A code no endpoint may send is answered with 1002; 1014 with its echo or 1002.
        let close = |code: u16| client_frame(0x88, &code.to_be_bytes());
        assert_eq!(expect(&close(1005)).end, Some(End::PeerClose(Reply::ProtocolError)));
        assert_eq!(
            expect(&close(1014)).end,
            Some(End::PeerClose(Reply::EchoOrProtocolError(close(1014)[6..].to_vec())))
        );
        assert_eq!(expect(&client_frame(0x88, b"")).end, Some(End::PeerClose(Reply::Empty)));
        // A text message cut mid-character at the end of the input is not (yet) a violation.
        assert_eq!(expect(&client_frame(0x01, &[0xe2, 0x82])).end, Some(End::Eof));
    }
}
