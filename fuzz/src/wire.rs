//! Reading what the server wrote: it must be whole, well-formed, unmasked frames (RFC 6455 §5.2).

/// A frame the server sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerFrame {
    /// FIN.
    pub fin: bool,
    /// The opcode (low four bits of the first byte).
    pub opcode: u8,
    /// The payload (servers do not mask).
    pub payload: Vec<u8>,
}

/// Close codes a server may put in a Close frame (RFC 6455 §7.4.1 and §7.4.2, with the IANA
/// registrations 1012 to 1014): never 1004 to 1006 or 1015, nor anything outside 1000 to 4999
/// but the ranges given to applications.
pub fn server_may_send(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Parses the server's whole output into frames, or says what is wrong with it.
pub fn parse_server_output(mut bytes: &[u8]) -> Result<Vec<ServerFrame>, String> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        if bytes.len() < 2 {
            return Err(format!("a truncated frame header: {bytes:02x?}"));
        }
        let (b0, b1) = (bytes[0], bytes[1]);
        if b0 & 0x70 != 0 {
            return Err(format!("the server set RSV bits: {b0:#04x}"));
        }
        if b1 & 0x80 != 0 {
            return Err("the server masked a frame".into());
        }
        let (len, header) = match b1 & 0x7f {
            126 => {
                let Some(ext) = bytes.get(2..4) else { return Err("a truncated 16-bit length".into()) };
                let len = u64::from(u16::from_be_bytes([ext[0], ext[1]]));
                if len < 126 {
                    return Err(format!("a 16-bit length for {len} bytes (not minimal)"));
                }
                (len, 4)
            }
            127 => {
                let Some(ext) = bytes.get(2..10) else { return Err("a truncated 64-bit length".into()) };
                let len = u64::from_be_bytes(ext.try_into().expect("8 bytes"));
                if len >> 63 != 0 || len < 65536 {
                    return Err(format!("a bad 64-bit length {len:#x}"));
                }
                (len, 10)
            }
            n => (u64::from(n), 2),
        };
        let end = usize::try_from(len).ok().and_then(|len| len.checked_add(header));
        let Some(payload) = end.and_then(|end| bytes.get(header..end)) else {
            return Err(format!("a truncated payload: {len} bytes announced, {} left", bytes.len() - header));
        };
        let frame = ServerFrame { fin: b0 & 0x80 != 0, opcode: b0 & 0x0f, payload: payload.to_vec() };
        bytes = &bytes[header + payload.len()..];
        check_frame(&frame)?;
        frames.push(frame);
    }
    Ok(frames)
}

fn check_frame(frame: &ServerFrame) -> Result<(), String> {
    match frame.opcode {
        0..=2 => Ok(()),
        8..=10 if !frame.fin => Err("a fragmented control frame".into()),
        8..=10 if frame.payload.len() > 125 => Err("a control frame over 125 bytes".into()),
        8 => match frame.payload.len() {
            0 => Ok(()),
            1 => Err("a one-byte Close payload".into()),
            _ => {
                let code = u16::from_be_bytes([frame.payload[0], frame.payload[1]]);
                if !server_may_send(code) {
                    return Err(format!("a Close with code {code}, which a server may not send"));
                }
                std::str::from_utf8(&frame.payload[2..])
                    .map(drop)
                    .map_err(|_| "a Close reason that is not UTF-8".into())
            }
        },
        9 | 10 => Ok(()),
        other => Err(format!("reserved opcode {other:#x}")),
    }
}
