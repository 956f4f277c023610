//! A client that speaks WebSocket by hand over TCP, and hand-made frames: for the tests that must
//! send what no client library sends (tests/adversarial.rs) or see the server's frames as they are
//! on the wire, RSV1 included (tests/deflate.rs, tests/broadcast.rs).

use std::time::Duration;

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{
        TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
};

pub(crate) const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub(crate) const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A client frame: `b0` is FIN, RSV and the opcode; the payload is masked.
pub(crate) fn frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = header(b0, payload.len() as u64, true);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    out
}

/// An unmasked frame, as no client may send.
pub(crate) fn unmasked_frame(b0: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = header(b0, payload.len() as u64, false);
    out.extend_from_slice(payload);
    out
}

/// A frame header, with the mask key when `masked`, in the shortest length form.
pub(crate) fn header(b0: u8, len: u64, masked: bool) -> Vec<u8> {
    let mask_bit = if masked { 0x80 } else { 0 };
    let mut out = vec![b0];
    match len {
        0..=125 => out.push(mask_bit | len as u8),
        126..=0xffff => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&len.to_be_bytes());
        }
    }
    if masked {
        out.extend_from_slice(&MASK);
    }
    out
}

/// A header with the 64-bit length form whatever the length, as `header` never makes for small
/// ones, so that any 64-bit value can be announced.
pub(crate) fn header64(b0: u8, len: u64) -> Vec<u8> {
    let mut out = vec![b0, 0x80 | 127];
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&MASK);
    out
}

pub(crate) fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut payload = code.to_be_bytes().to_vec();
    payload.extend_from_slice(reason);
    payload
}

pub(crate) fn handshake_request(extra_headers: &str) -> String {
    format!(
        "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n{extra_headers}\r\n"
    )
}

/// A TCP connection that speaks WebSocket by hand: its write half, and a reader.
pub(crate) struct Raw {
    pub(crate) write: OwnedWriteHalf,
    pub(crate) reader: Reader,
}

/// The read half of a [`Raw`] connection, with what has been read and not yet parsed.
pub(crate) struct Reader {
    read: OwnedReadHalf,
    buf: Vec<u8>,
}

impl Raw {
    /// Connects, sends `request`, and returns the response head (`None` if the connection
    /// ends first).
    pub(crate) async fn request(addr: &str, request: &[u8]) -> (Self, Option<String>) {
        let (read, write) = TcpStream::connect(addr).await.expect("connect").into_split();
        let mut raw = Self { write, reader: Reader { read, buf: Vec::new() } };
        // The server may answer (and close) before it has read everything: ignore write errors.
        let _ = raw.write.write_all(request).await;
        let head = raw.reader.read_head().await;
        (raw, head)
    }

    /// Connects and completes a valid handshake.
    pub(crate) async fn open(addr: &str) -> Self {
        Self::open_with(addr, "").await.0
    }

    /// Connects and completes a valid handshake with `extra_headers` (each line ending in
    /// `\r\n`), such as an extension offer; returns the connection and the 101's head.
    pub(crate) async fn open_with(addr: &str, extra_headers: &str) -> (Self, String) {
        let (raw, head) = Self::request(addr, handshake_request(extra_headers).as_bytes()).await;
        let head = head.expect("a response head");
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        (raw, head)
    }

    pub(crate) async fn send(&mut self, bytes: &[u8]) {
        self.write.write_all(bytes).await.expect("the server reads");
    }

    /// Resets the connection: SO_LINGER 0, so that closing sends a RST instead of a FIN.
    pub(crate) fn reset(self) {
        let stream = self.reader.read.reunite(self.write).expect("the halves of one stream");
        stream.set_zero_linger().unwrap();
        drop(stream);
    }
}

impl Reader {
    /// Reads an HTTP response head (5 s at most); `None` if the connection ends first.
    pub(crate) async fn read_head(&mut self) -> Option<String> {
        tokio::time::timeout(Duration::from_secs(5), async {
            loop {
                if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head: Vec<u8> = self.buf.drain(..end + 4).collect();
                    return Some(String::from_utf8_lossy(&head).into_owned());
                }
                if !self.fill().await {
                    return None;
                }
            }
        })
        .await
        .expect("a response head within 5 s")
    }

    /// Reads more; `false` at the end of the stream (or a reset).
    pub(crate) async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 4096];
        match self.read.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// The next whole frame from the server: (opcode, payload); `None` at the end of the stream.
    pub(crate) async fn next_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        let (b0, payload) = self.next_raw_frame().await?;
        Some((b0 & 0x0f, payload))
    }

    /// The next whole frame from the server as it came: (its first byte: FIN, RSV1-3 and the
    /// opcode; the payload); `None` at the end of the stream.
    pub(crate) async fn next_raw_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if let Some((b0, header_len, len)) = parse_server_header(&self.buf) {
                if self.buf.len() >= header_len + len {
                    let frame: Vec<u8> = self.buf.drain(..header_len + len).collect();
                    return Some((b0, frame[header_len..].to_vec()));
                }
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// The next data frame (Text, Binary or Continuation), skipping Pings and Pongs; 10 s at
    /// most.
    pub(crate) async fn next_data_frame(&mut self) -> (u8, Vec<u8>) {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let (b0, payload) = self.next_raw_frame().await.expect("a frame before the end");
                if !matches!(b0 & 0x0f, 0x9 | 0xa) {
                    return (b0, payload);
                }
            }
        })
        .await
        .expect("a data frame within 10 s")
    }

    /// Skips frames until the server's Close, and returns its code (`Some(None)` for a Close
    /// without one); `None` if the connection ends first. 10 s at most.
    pub(crate) async fn close_code(&mut self) -> Option<Option<u16>> {
        tokio::time::timeout(Duration::from_secs(10), async {
            while let Some((opcode, payload)) = self.next_frame().await {
                if opcode == 0x8 {
                    return Some(payload.get(..2).map(|code| u16::from_be_bytes([code[0], code[1]])));
                }
            }
            None
        })
        .await
        .expect("the server's Close or end within 10 s")
    }

    /// Waits for the server to end the connection (10 s at most).
    pub(crate) async fn assert_closed(&mut self) {
        tokio::time::timeout(Duration::from_secs(10), async { while self.fill().await {} })
            .await
            .expect("the server ends the connection within 10 s");
    }
}

/// (first byte, header length, payload length) of a server frame at the start of `buf`.
pub(crate) fn parse_server_header(buf: &[u8]) -> Option<(u8, usize, usize)> {
    let (b0, b1) = (*buf.first()?, *buf.get(1)?);
    assert_eq!(b1 & 0x80, 0, "the server masked a frame");
    let (len, header_len) = match b1 & 0x7f {
        126 => (u16::from_be_bytes(buf.get(2..4)?.try_into().unwrap()) as usize, 4),
        127 => (u64::from_be_bytes(buf.get(2..10)?.try_into().unwrap()) as usize, 10),
        n => (n as usize, 2),
    };
    Some((b0, header_len, len))
}

/// Inflates one permessage-deflate message as RFC 7692 §7.2.2 says: its payload, then the
/// `00 00 ff ff` the sender removed, through `decompress` (one per connection with context
/// takeover, a new one per message without). flate2 directly, not the crate's inflater.
///
/// The output comes 256 bytes per call, so that a back-reference beyond 256 bytes is read from
/// the inflater's window: one farther back than the negotiated window is then an error, as zlib
/// only checks the window for data it no longer has in its output buffer.
pub(crate) fn inflate(
    decompress: &mut flate2::Decompress,
    payload: &[u8],
) -> Result<Vec<u8>, flate2::DecompressError> {
    let mut input = payload.to_vec();
    input.extend_from_slice(&[0x00, 0x00, 0xff, 0xff]);
    let start = decompress.total_in();
    let mut out = Vec::new();
    let mut chunk = [0u8; 256];
    loop {
        let (consumed, produced) = (decompress.total_in(), decompress.total_out());
        let taken = (consumed - start) as usize;
        decompress.decompress(&input[taken..], &mut chunk, flate2::FlushDecompress::Sync)?;
        let written = (decompress.total_out() - produced) as usize;
        out.extend_from_slice(&chunk[..written]);
        let all_in = (decompress.total_in() - start) as usize == input.len();
        if (all_in && written < chunk.len()) || (decompress.total_in() == consumed && written == 0) {
            return Ok(out);
        }
    }
}

/// A binary message that a 15-bit window compresses by referring 2,000 bytes back, which a 9-bit
/// window (512 bytes) cannot reach.
pub(crate) fn far_repeat() -> Vec<u8> {
    // 2,000 bytes that do not compress (xorshift64*), twice.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let block: Vec<u8> = (0..2000)
        .map(|_| {
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
        })
        .collect();
    [block.as_slice(), block.as_slice()].concat()
}
