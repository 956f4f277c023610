//! The decoder's tests: every check with its exact error and close code, any split of the
//! stream, fragments with control frames between them, limits before allocation, incremental
//! UTF-8, direct reads into the payload buffer, compressed messages, and frames tungstenite
//! encoded.

use bytes::BufMut;
use flate2::{Compress, Compression, FlushCompress};
use tokio_tungstenite::tungstenite::protocol::frame::{
    Frame as TFrame,
    coding::{CloseCode as TCloseCode, Data, OpCode as TOpCode},
};

use super::*;
use crate::deflate::MessageInflater;

const MASK: [u8; 4] = [0x37, 0xFA, 0x21, 0x3D];

fn server(max_frame_size: Option<usize>, max_message_size: Option<usize>) -> Decoder {
    Decoder::new(DecoderConfig { role: Role::Server, max_frame_size, max_message_size })
}

fn deflating(max_message_size: Option<usize>) -> Decoder {
    let config = DecoderConfig { role: Role::Server, max_frame_size: Some(1 << 20), max_message_size };
    Decoder::with_inflater(config, Box::new(MessageInflater::new(false)))
}

/// A frame with first byte `b0`, masked with `MASK` unless `mask` is `None`.
fn frame_with(b0: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![b0];
    let bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        len @ 0..=125 => out.push(bit | len as u8),
        len @ 126..=0xFFFF => {
            out.push(bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            out.push(bit | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// A masked client frame.
fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    frame_with(b0, payload, Some(MASK))
}

const TEXT: u8 = 0x81;
const BINARY: u8 = 0x82;
const CLOSE: u8 = 0x88;
const PING: u8 = 0x89;
const PONG: u8 = 0x8A;

/// Feeds `input` in the pieces `cuts` makes (ascending offsets), collecting events until the
/// first error.
fn run_cuts(decoder: &mut Decoder, input: &[u8], cuts: &[usize]) -> (Vec<Event>, Option<ProtocolError>) {
    let mut events = Vec::new();
    let mut src = BytesMut::new();
    let mut start = 0;
    for &end in cuts.iter().chain([input.len()].iter()) {
        src.extend_from_slice(&input[start..end.max(start)]);
        start = end.max(start);
        loop {
            match decoder.decode(&mut src) {
                Ok(Some(event)) => events.push(event),
                Ok(None) => break,
                Err(error) => return (events, Some(error)),
            }
        }
    }
    (events, None)
}

fn run(decoder: &mut Decoder, input: &[u8]) -> (Vec<Event>, Option<ProtocolError>) {
    run_cuts(decoder, input, &[])
}

/// The error `input` fails with, and its close code.
fn fails(mut decoder: Decoder, input: &[u8]) -> (ProtocolError, u16) {
    let (_, error) = run(&mut decoder, input);
    let error = error.unwrap_or_else(|| panic!("no error for {input:02x?}"));
    let code = error.close_code();
    // It stays failed.
    assert_eq!(decoder.decode(&mut BytesMut::from(&frame(PING, b"")[..])), Err(error.clone()));
    (error, code)
}

fn text(s: &str) -> Event {
    Event::Text(Bytes::copy_from_slice(s.as_bytes()))
}

fn binary(b: &[u8]) -> Event {
    Event::Binary(Bytes::copy_from_slice(b))
}

#[test]
fn reserved_bits_fail_with_1002_on_the_first_two_bytes() {
    assert_eq!(fails(server(None, None), &[0xA1, 0x80]), (ProtocolError::ReservedBits { bits: 0b010 }, 1002));
    assert_eq!(fails(server(None, None), &[0x91, 0x80]), (ProtocolError::ReservedBits { bits: 0b001 }, 1002));
    // RSV1 without a negotiated extension.
    assert_eq!(fails(server(None, None), &[0xC1, 0x80]), (ProtocolError::ReservedBits { bits: 0b100 }, 1002));
    // With permessage-deflate: RSV2/3 still fail, RSV1 only on a data message's first frame.
    assert_eq!(fails(deflating(None), &[0xE1, 0x80]), (ProtocolError::ReservedBits { bits: 0b110 }, 1002));
    assert_eq!(fails(deflating(None), &[0xC9, 0x80]), (ProtocolError::MisplacedRsv1, 1002));
    let mut continuation = frame(0x01, b"a");
    continuation.extend_from_slice(&frame(0xC0, b"b"));
    assert_eq!(fails(deflating(None), &continuation), (ProtocolError::MisplacedRsv1, 1002));
}

#[test]
fn reserved_opcodes_fail_with_1002() {
    for op in (3..=7).chain(0xB..=0xF) {
        assert_eq!(fails(server(None, None), &[0x80 | op]), (ProtocolError::UnknownOpcode(op), 1002), "{op}");
    }
}

#[test]
fn control_frame_rules() {
    // Over 125 bytes: known once the length is there.
    assert_eq!(
        fails(server(None, None), &frame(PING, &[0; 126])[..8]),
        (ProtocolError::ControlFrameTooLong, 1002)
    );
    let mut close = vec![CLOSE, 0xFF, 0, 0, 0, 0, 0, 0, 0x01, 0x00];
    close.extend_from_slice(&MASK);
    assert_eq!(fails(server(None, None), &close), (ProtocolError::ControlFrameTooLong, 1002));
    // A length in a longer form than needed is accepted, as tungstenite does: a 64-bit zero.
    let mut pong = vec![PONG, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0];
    pong.extend_from_slice(&MASK);
    assert_eq!(run(&mut server(None, None), &pong), (vec![Event::Pong(Bytes::new())], None));
    // A 125-byte Ping is fine.
    let ping = vec![7; 125];
    assert_eq!(run(&mut server(None, None), &frame(PING, &ping)), (vec![Event::Ping(ping.into())], None));
    // Without FIN.
    assert_eq!(fails(server(None, None), &[0x09, 0x80]), (ProtocolError::FragmentedControlFrame, 1002));
    // A Close of one byte.
    assert_eq!(fails(server(None, None), &frame(CLOSE, b"x")), (ProtocolError::CloseOneByte, 1002));
}

#[test]
fn fragmentation_rules() {
    assert_eq!(fails(server(None, None), &frame(0x80, b"x")), (ProtocolError::UnexpectedContinuation, 1002));
    for second in [TEXT, BINARY, 0x01, 0x02] {
        let mut input = frame(0x01, b"a");
        input.extend_from_slice(&frame(second, b"b"));
        assert_eq!(
            fails(server(None, None), &input),
            (ProtocolError::ExpectedContinuation, 1002),
            "{second:x}"
        );
    }
    // After a whole message, a continuation has nothing to continue.
    let mut input = frame(0x01, b"a");
    input.extend_from_slice(&frame(0x80, b"b"));
    input.extend_from_slice(&frame(0x80, b"c"));
    let (events, error) = run(&mut server(None, None), &input);
    assert_eq!(events, [text("ab")]);
    assert_eq!(error, Some(ProtocolError::UnexpectedContinuation));
}

#[test]
fn masking_depends_on_the_role() {
    assert_eq!(
        fails(server(None, None), &frame_with(TEXT, b"hi", None)),
        (ProtocolError::UnmaskedFrame, 1002)
    );
    let client =
        || Decoder::new(DecoderConfig { role: Role::Client, max_frame_size: None, max_message_size: None });
    assert_eq!(fails(client(), &frame(TEXT, b"hi")), (ProtocolError::MaskedFrame, 1002));
    assert_eq!(run(&mut client(), &frame_with(TEXT, b"hi", None)), (vec![text("hi")], None));
}

#[test]
fn the_64_bit_length_top_bit_fails_with_1002() {
    let header = [BINARY, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1];
    assert_eq!(fails(server(None, None), &header), (ProtocolError::LengthTopBit, 1002));
}

#[test]
fn close_payloads() {
    let close = |payload: &[u8]| run(&mut server(None, None), &frame(CLOSE, payload));
    assert_eq!(close(b""), (vec![Event::Close(None)], None));
    let mut payload = 4001u16.to_be_bytes().to_vec();
    payload.extend_from_slice("bye ✓".as_bytes());
    let expected = CloseFrame { code: 4001, reason: Bytes::from("bye ✓") };
    assert_eq!(close(&payload), (vec![Event::Close(Some(expected))], None));
    for code in [1000, 1001, 1003, 1007, 1011, 1014, 3000, 4999] {
        assert!(
            matches!(&close(&u16::to_be_bytes(code)).0[..], [Event::Close(Some(f))] if f.code == code),
            "{code}"
        );
    }
    for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, u16::MAX] {
        let input = frame(CLOSE, &code.to_be_bytes());
        assert_eq!(
            fails(server(None, None), &input),
            (ProtocolError::InvalidCloseCode(code), 1002),
            "{code}"
        );
    }
    let mut bad_reason = 1000u16.to_be_bytes().to_vec();
    bad_reason.extend_from_slice(b"\xFF");
    assert_eq!(
        fails(server(None, None), &frame(CLOSE, &bad_reason)),
        (ProtocolError::InvalidCloseReason, 1007)
    );
    // Bad both ways: the reason decides, as in tungstenite.
    let mut both = 1005u16.to_be_bytes().to_vec();
    both.extend_from_slice(b"\xC3");
    let (error, code) = fails(server(None, None), &frame(CLOSE, &both));
    assert_eq!((error, code), (ProtocolError::InvalidCloseReason, 1007));
}

#[test]
fn nothing_is_decoded_after_a_close() {
    let mut input = frame(CLOSE, &1000u16.to_be_bytes());
    input.extend_from_slice(&frame(TEXT, b"late"));
    // Even bytes that would fail.
    input.extend_from_slice(&[0xF3, 0x00]);
    let mut decoder = server(None, None);
    let mut src = BytesMut::from(&input[..]);
    assert!(matches!(decoder.decode(&mut src), Ok(Some(Event::Close(Some(_))))));
    assert!(decoder.is_closed());
    assert_eq!(decoder.decode(&mut src), Ok(None));
    assert!(src.is_empty(), "the rest is dropped");
}

#[test]
fn invalid_utf8_fails_with_1007() {
    assert_eq!(fails(server(None, None), &frame(TEXT, b"ok \xC3\x28")), (ProtocolError::InvalidUtf8, 1007));
    // A message that ends inside a code point.
    let mut input = frame(0x01, b"a");
    input.extend_from_slice(&frame(0x80, b"\xE2\x82"));
    assert_eq!(fails(server(None, None), &input), (ProtocolError::InvalidUtf8, 1007));
    // Binary is not checked.
    assert_eq!(run(&mut server(None, None), &frame(BINARY, b"\xFF")), (vec![binary(b"\xFF")], None));
}

#[test]
fn a_code_point_may_be_split_between_fragments() {
    let mut input = frame(0x01, b"a\xE2");
    input.extend_from_slice(&frame(0x00, b"\x82"));
    input.extend_from_slice(&frame(0x80, b"\xAC b"));
    assert_eq!(run(&mut server(None, None), &input), (vec![text("a€ b")], None));
}

#[test]
fn invalid_utf8_fails_at_the_first_bad_fragment_and_the_first_bad_chunk() {
    // The second fragment is bad; the message's end never comes.
    let mut input = frame(0x01, "κόσμε".as_bytes());
    input.extend_from_slice(&frame(0x00, b"\xCE\xBA\xE1\x80\x80\xED\xA0\x80"));
    let first_len = frame(0x01, "κόσμε".as_bytes()).len();
    let (events, error) = run_cuts(&mut server(None, None), &input, &[first_len]);
    assert!(events.is_empty());
    assert_eq!(error, Some(ProtocolError::InvalidUtf8));
    // Within one frame (Autobahn 6.4.3/6.4.4): the bad bytes fail before the frame's end comes.
    let mut payload = "valid text, then".as_bytes().to_vec();
    payload.extend_from_slice(b"\xF4\x90\x80\x80");
    payload.extend_from_slice(&[b'x'; 100]);
    let whole = frame(TEXT, &payload);
    let partial = &whole[..whole.len() - 100];
    let mut decoder = server(None, None);
    let mut src = BytesMut::from(partial);
    let mut first = BytesMut::from(&partial[..10]);
    assert_eq!(decoder.decode(&mut first), Ok(None), "the valid start waits");
    src.advance(10);
    assert_eq!(decoder.decode(&mut src), Err(ProtocolError::InvalidUtf8));
}

#[test]
fn limits_are_checked_before_anything_is_reserved() {
    // 2^40 bytes announced: refused on the header alone.
    let mut huge = vec![BINARY, 0xFF];
    huge.extend_from_slice(&(1u64 << 40).to_be_bytes());
    huge.extend_from_slice(&MASK);
    assert_eq!(
        fails(server(Some(16 << 20), None), &huge),
        (ProtocolError::FrameTooBig { size: 1 << 40, max: 16 << 20 }, 1009)
    );
    assert_eq!(
        fails(server(None, Some(64 << 20)), &huge),
        (ProtocolError::MessageTooBig { size: 1 << 40, max: 64 << 20 }, 1009)
    );
    // Without limits, the buffer grows as the bytes come, not on the peer's word.
    let mut decoder = server(None, None);
    let (events, error) = run(&mut decoder, &huge);
    assert_eq!((events.len(), error), (0, None));
    let capacity = decoder.message.as_ref().map(|m| m.buf.capacity()).unwrap_or_default();
    assert!(capacity as u64 <= RESERVE_UNLIMITED, "{capacity}");
    // The message limit counts the fragments together, before the last one's payload comes.
    let mut input = frame(0x02, &[1; 6]);
    input.extend_from_slice(&frame(0x80, &[2; 6])[..6]);
    assert_eq!(
        fails(server(None, Some(10)), &input),
        (ProtocolError::MessageTooBig { size: 12, max: 10 }, 1009)
    );
    // Exactly at the limits is fine.
    let mut input = frame(0x02, &[1; 5]);
    input.extend_from_slice(&frame(0x80, &[2; 5]));
    let mut expected = vec![1; 5];
    expected.extend_from_slice(&[2; 5]);
    assert_eq!(run(&mut server(Some(5), Some(10)), &input), (vec![binary(&expected)], None));
    assert_eq!(
        fails(server(Some(5), None), &frame(BINARY, &[0; 6])),
        (ProtocolError::FrameTooBig { size: 6, max: 5 }, 1009)
    );
}

/// A stream with every kind of frame and length form, fragments with control frames between
/// them, code points split between fragments, and a Close.
fn mixed_stream() -> (Vec<u8>, Vec<Event>) {
    let large: Vec<u8> = (0..70_000u32).map(|i| (i % 251) as u8).collect();
    let medium = "é".repeat(100);
    let mut input = Vec::new();
    input.extend_from_slice(&frame(TEXT, b"hello"));
    input.extend_from_slice(&frame(0x02, b"frag"));
    input.extend_from_slice(&frame(PING, b"p1"));
    input.extend_from_slice(&frame(0x00, b"men"));
    input.extend_from_slice(&frame(PONG, b""));
    input.extend_from_slice(&frame(0x80, b"ts"));
    input.extend_from_slice(&frame(BINARY, &large));
    input.extend_from_slice(&frame(TEXT, medium.as_bytes()));
    input.extend_from_slice(&frame(0x01, b"\xF0\x9F"));
    input.extend_from_slice(&frame(PING, b"p2"));
    input.extend_from_slice(&frame(0x00, b"\x98"));
    input.extend_from_slice(&frame(0x80, b"\x80!"));
    input.extend_from_slice(&frame(BINARY, b""));
    let mut close = 1000u16.to_be_bytes().to_vec();
    close.extend_from_slice(b"done");
    input.extend_from_slice(&frame(CLOSE, &close));
    let events = vec![
        text("hello"),
        Event::Ping(Bytes::from_static(b"p1")),
        Event::Pong(Bytes::new()),
        binary(b"fragments"),
        Event::Binary(large.into()),
        text(&medium),
        Event::Ping(Bytes::from_static(b"p2")),
        text("😀!"),
        binary(b""),
        Event::Close(Some(CloseFrame { code: 1000, reason: Bytes::from_static(b"done") })),
    ];
    (input, events)
}

#[test]
fn any_split_of_the_stream_gives_the_same_events() {
    let (input, expected) = mixed_stream();
    // Whole, one byte at a time, and cut at every offset in two.
    assert_eq!(run(&mut server(None, None), &input), (expected.clone(), None));
    let every: Vec<usize> = (1..input.len()).collect();
    assert_eq!(run_cuts(&mut server(None, None), &input, &every), (expected.clone(), None));
    for cut in (0..input.len()).step_by(97).chain(0..300) {
        assert_eq!(
            run_cuts(&mut server(None, Some(1 << 20)), &input, &[cut]),
            (expected.clone(), None),
            "{cut}"
        );
    }
    // Random splits (a fixed-seed LCG).
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    for round in 0..200 {
        let mut cuts = Vec::new();
        let mut at = 0;
        while at < input.len() {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            at += 1 + (seed >> 33) as usize % if round % 2 == 0 { 16 } else { 4096 };
            cuts.push(at.min(input.len()));
        }
        assert_eq!(
            run_cuts(&mut server(Some(1 << 20), Some(1 << 20)), &input, &cuts),
            (expected.clone(), None)
        );
    }
}

#[test]
fn a_whole_message_in_the_buffer_is_split_off_without_a_copy() {
    let input = frame(BINARY, &[9; 300]);
    let mut src = BytesMut::from(&input[..]);
    let start = src.as_ptr() as usize;
    let Ok(Some(Event::Binary(payload))) = server(None, None).decode(&mut src) else { panic!("a message") };
    assert_eq!(&payload[..], &[9; 300]);
    assert_eq!(payload.as_ptr() as usize, start + 8, "the payload is where it arrived");
}

#[test]
fn the_rest_of_a_payload_can_be_read_straight_into_its_final_buffer() {
    let payload: Vec<u8> = (0..100_000u32).map(|i| (i % 253) as u8).collect();
    let input = frame(TEXT, &payload.iter().map(|b| b % 128).collect::<Vec<u8>>());
    let mut decoder = server(Some(1 << 20), Some(1 << 20));
    // The header and the first bytes come through the staging buffer...
    let mut src = BytesMut::from(&input[..1000]);
    assert_eq!(decoder.decode(&mut src), Ok(None));
    assert!(src.is_empty());
    // ...the rest straight into the payload's buffer, reserved at its final size.
    let mut rest = &input[1000..];
    let mut reads = 0;
    while let Some(mut buf) = decoder.payload_buf() {
        assert!(buf.remaining_mut() <= rest.len());
        let n = buf.remaining_mut().min(7000);
        buf.put_slice(&rest[..n]);
        rest = &rest[n..];
        reads += 1;
        let event = decoder.decode(&mut BytesMut::new()).unwrap();
        if rest.is_empty() {
            let Some(Event::Text(text)) = event else { panic!("the message") };
            assert_eq!(text.len(), payload.len());
            assert_eq!(
                text.iter().copied().collect::<Vec<u8>>(),
                payload.iter().map(|b| b % 128).collect::<Vec<u8>>()
            );
        } else {
            assert_eq!(event, None);
        }
    }
    assert!(rest.is_empty() && reads == 15, "{reads} reads");
    // Not for control frames, nor between frames.
    assert!(decoder.payload_buf().is_none());
    let mut src = BytesMut::from(&frame(PING, b"abc")[..4]);
    assert_eq!(decoder.decode(&mut src), Ok(None));
    assert!(decoder.payload_buf().is_none());
}

#[test]
fn invalid_utf8_read_straight_into_the_buffer_fails_too() {
    let input = frame(TEXT, &[b'a', b'b', 0xFF, b'c']);
    let mut decoder = server(None, None);
    let mut src = BytesMut::from(&input[..7]);
    assert_eq!(decoder.decode(&mut src), Ok(None));
    decoder.payload_buf().expect("the payload's buffer").put_slice(&input[7..9]);
    assert_eq!(decoder.decode(&mut src), Err(ProtocolError::InvalidUtf8));
}

/// Raw deflate with a sync flush, the trailer removed.
fn deflate(compress: &mut Compress, data: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() + 64);
    compress.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
    assert!(out.ends_with(&SYNC_FLUSH_TRAILER));
    out.truncate(out.len() - 4);
    out
}

#[test]
fn compressed_messages_inflate_with_context_takeover_and_fragments() {
    let mut compress = Compress::new(Compression::fast(), false);
    let first = "compressed text, compressed text, compressed text".repeat(20);
    let second: Vec<u8> = (0..40_000u32).map(|i| (i % 7) as u8).collect();
    let mut input = frame(0xC1, &deflate(&mut compress, first.as_bytes()));
    let deflated = deflate(&mut compress, &second);
    let (a, b) = deflated.split_at(deflated.len() / 2);
    input.extend_from_slice(&frame(0x42, a));
    input.extend_from_slice(&frame(PING, b"between"));
    input.extend_from_slice(&frame(0x80, b));
    input.extend_from_slice(&frame(TEXT, b"plain"));
    let expected = vec![
        text(&first),
        Event::Ping(Bytes::from_static(b"between")),
        Event::Binary(second.into()),
        text("plain"),
    ];
    assert_eq!(run(&mut deflating(None), &input), (expected.clone(), None));
    let every: Vec<usize> = (1..input.len()).collect();
    assert_eq!(run_cuts(&mut deflating(Some(40_000)), &input, &every), (expected, None));
}

#[test]
fn compressed_faults() {
    // Over the limit once inflated: a bomb fails with 1009 having made about the limit.
    let mut compress = Compress::new(Compression::best(), false);
    let bomb = deflate(&mut compress, &vec![0; 1 << 20]);
    assert!(bomb.len() < 2000);
    let mut decoder = deflating(Some(64 * 1024));
    let (_, error) = run(&mut decoder, &frame(0xC2, &bomb));
    assert!(matches!(error, Some(ProtocolError::MessageTooBig { max: 65_536, size }) if size == 65_537));
    assert!(decoder.message.is_none(), "nothing is held after the error");
    assert_eq!(error.map(|e| e.close_code()), Some(1009));
    // Not deflate data: 1007.
    let (error, code) = fails(deflating(None), &frame(0xC1, &[0xFF; 16]));
    assert!(matches!(error, ProtocolError::CorruptCompressedData(_)), "{error:?}");
    assert_eq!(code, 1007);
    // Data after a final block: 1007.
    let mut finished = Vec::new();
    Compress::new(Compression::fast(), false)
        .compress_vec(b"end", &mut finished, FlushCompress::Finish)
        .unwrap();
    finished.extend_from_slice(&[0x00, 0x00]);
    let (error, code) = fails(deflating(None), &frame(0xC1, &finished));
    assert!(matches!(error, ProtocolError::CorruptCompressedData(_)), "{error:?}");
    assert_eq!(code, 1007);
    // Inflated text that is not UTF-8: 1007.
    let mut compress = Compress::new(Compression::fast(), false);
    assert_eq!(
        fails(deflating(None), &frame(0xC1, &deflate(&mut compress, b"ok\xFF"))),
        (ProtocolError::InvalidUtf8, 1007)
    );
    // Exactly the limit, inflated, is fine.
    let mut compress = Compress::new(Compression::fast(), false);
    let exact = frame(0xC2, &deflate(&mut compress, &[5; 1000]));
    assert_eq!(run(&mut deflating(Some(1000)), &exact), (vec![binary(&[5; 1000])], None));
}

#[test]
fn frames_tungstenite_encodes_decode_the_same() {
    let mut input = Vec::new();
    let mut masked = |mut frame: TFrame, key: [u8; 4]| {
        frame.header_mut().mask = Some(key);
        frame.format(&mut input).unwrap();
    };
    let large: Vec<u8> = (0..66_000u32).map(|i| (i * 7) as u8).collect();
    masked(TFrame::message("héllo", TOpCode::Data(Data::Text), true), [1, 2, 3, 4]);
    masked(TFrame::message(large.clone(), TOpCode::Data(Data::Binary), true), [9, 9, 9, 9]);
    masked(TFrame::message("frag", TOpCode::Data(Data::Text), false), [5, 6, 7, 8]);
    masked(TFrame::ping(&b"ping"[..]), [0xAA, 0xBB, 0xCC, 0xDD]);
    masked(TFrame::message("ments", TOpCode::Data(Data::Continue), true), [0, 0, 0, 1]);
    masked(TFrame::message(vec![0; 300], TOpCode::Data(Data::Binary), true), [7, 0, 7, 0]);
    let close = tokio_tungstenite::tungstenite::protocol::CloseFrame {
        code: TCloseCode::Away,
        reason: "gone".into(),
    };
    masked(TFrame::close(Some(close)), [3, 1, 4, 1]);
    let expected = vec![
        text("héllo"),
        Event::Binary(large.into()),
        Event::Ping(Bytes::from_static(b"ping")),
        text("fragments"),
        binary(&[0; 300]),
        Event::Close(Some(CloseFrame { code: 1001, reason: Bytes::from_static(b"gone") })),
    ];
    assert_eq!(run(&mut server(None, None), &input), (expected.clone(), None));
    let every: Vec<usize> = (1..input.len()).step_by(3).collect();
    assert_eq!(run_cuts(&mut server(Some(1 << 17), Some(1 << 17)), &input, &every), (expected, None));
}
