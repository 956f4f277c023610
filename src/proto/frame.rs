//! Frames on the wire (RFC 6455 §5.2): the [`OpCode`], the [`FrameHeader`] with its parser and
//! encoder, the inline [`HeaderBytes`] an encoded header lives in, and masking (§5.3).

use crate::proto::error::ProtocolError;

/// The longest header: 2 bytes, a 64-bit length and a mask key.
pub(crate) const MAX_HEADER_LEN: usize = 14;

/// The longest payload of a control frame (RFC 6455 §5.5).
pub(crate) const MAX_CONTROL_PAYLOAD: u64 = 125;

/// Which end of the connection we are: it decides masking (RFC 6455 §5.1). Used by the decoder
/// and the encoder, which the socket moves onto in issue 19's next step.
#[cfg_attr(not(test), allow(dead_code))]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// We accepted the connection: the peer's frames must be masked, ours are not.
    Server,
    /// We opened the connection: the peer's frames must not be masked, ours are.
    Client,
}

/// A frame's opcode (RFC 6455 §5.2, §11.8): the six that are defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpCode {
    /// 0x0: the next fragment of a message.
    Continuation,
    /// 0x1: the first frame of a text message.
    Text,
    /// 0x2: the first frame of a binary message.
    Binary,
    /// 0x8: Close.
    Close,
    /// 0x9: Ping.
    Ping,
    /// 0xA: Pong.
    Pong,
}

impl OpCode {
    /// The opcode of the 4-bit value `bits`; `None` for the reserved values (3–7, 11–15).
    pub(crate) const fn from_bits(bits: u8) -> Option<Self> {
        Some(match bits {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            _ => return None,
        })
    }

    /// The 4-bit value on the wire.
    pub(crate) const fn bits(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }

    /// Close, Ping or Pong (RFC 6455 §5.5).
    pub(crate) const fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }
}

/// A frame header as it is on the wire. `opcode` is the raw 4-bit value, so that a header with
/// a reserved opcode still parses: [`OpCode::from_bits`] tells the decoder whether it is one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    pub(crate) fin: bool,
    pub(crate) rsv1: bool,
    pub(crate) rsv2: bool,
    pub(crate) rsv3: bool,
    /// The opcode's 4 bits.
    pub(crate) opcode: u8,
    pub(crate) masked: bool,
    /// The mask key; all zero when `masked` is false.
    pub(crate) mask: [u8; 4],
    /// The payload's length.
    pub(crate) payload_len: u64,
    /// The header's own length, mask key included.
    pub(crate) len: usize,
}

impl FrameHeader {
    /// The header of a frame we send: FIN as given, no RSV bit but `rsv1`, masked with `mask`
    /// when there is one. `len` is the shortest encoding's.
    pub(crate) fn new(
        fin: bool,
        rsv1: bool,
        opcode: OpCode,
        payload_len: u64,
        mask: Option<[u8; 4]>,
    ) -> Self {
        let extended = match payload_len {
            0..=125 => 0,
            126..=0xFFFF => 2,
            _ => 8,
        };
        Self {
            fin,
            rsv1,
            rsv2: false,
            rsv3: false,
            opcode: opcode.bits(),
            masked: mask.is_some(),
            mask: mask.unwrap_or_default(),
            payload_len,
            len: 2 + extended + if mask.is_some() { 4 } else { 0 },
        }
    }

    /// The header at the start of `bytes`; `None` until it has arrived whole. Nothing is
    /// consumed: the caller advances by [`len`](Self::len) once it takes the frame.
    ///
    /// # Errors
    ///
    /// [`ProtocolError::LengthTopBit`] for a 64-bit length with its most significant bit set
    /// (§5.2), as soon as the length is there.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Option<Self>, ProtocolError> {
        let [b0, b1, rest @ ..] = bytes else { return Ok(None) };
        let (payload_len, extended) = match b1 & 0x7F {
            126 => match rest {
                [a, b, ..] => (u64::from(u16::from_be_bytes([*a, *b])), 2),
                _ => return Ok(None),
            },
            127 => {
                let Some(bytes) = rest.get(..8) else { return Ok(None) };
                let mut length = [0; 8];
                length.copy_from_slice(bytes);
                let length = u64::from_be_bytes(length);
                if length >> 63 != 0 {
                    return Err(ProtocolError::LengthTopBit);
                }
                (length, 8)
            }
            short => (u64::from(short), 0),
        };
        let masked = b1 & 0x80 != 0;
        let mut mask = [0; 4];
        if masked {
            let Some(key) = rest.get(extended..extended + 4) else { return Ok(None) };
            mask.copy_from_slice(key);
        }
        Ok(Some(Self {
            fin: b0 & 0x80 != 0,
            rsv1: b0 & 0x40 != 0,
            rsv2: b0 & 0x20 != 0,
            rsv3: b0 & 0x10 != 0,
            opcode: b0 & 0x0F,
            masked,
            mask,
            payload_len,
            len: 2 + extended + if masked { 4 } else { 0 },
        }))
    }

    /// Is any of the three RSV bits set?
    #[cfg(test)]
    pub(crate) fn any_rsv(&self) -> bool {
        self.rsv1 || self.rsv2 || self.rsv3
    }

    /// The header's bytes, in the shortest length form (§5.2 requires it of a sender).
    pub(crate) fn encode(&self) -> HeaderBytes {
        let mut bytes = [0; MAX_HEADER_LEN];
        bytes[0] = u8::from(self.fin) << 7
            | u8::from(self.rsv1) << 6
            | u8::from(self.rsv2) << 5
            | u8::from(self.rsv3) << 4
            | (self.opcode & 0x0F);
        let mask_bit = u8::from(self.masked) << 7;
        let mut len = 2;
        match self.payload_len {
            short @ 0..=125 => bytes[1] = mask_bit | short as u8,
            medium @ 126..=0xFFFF => {
                bytes[1] = mask_bit | 126;
                bytes[2..4].copy_from_slice(&(medium as u16).to_be_bytes());
                len = 4;
            }
            long => {
                bytes[1] = mask_bit | 127;
                bytes[2..10].copy_from_slice(&long.to_be_bytes());
                len = 10;
            }
        }
        if self.masked {
            bytes[len..len + 4].copy_from_slice(&self.mask);
            len += 4;
        }
        HeaderBytes { bytes, len: len as u8 }
    }
}

/// An encoded header, inline: no allocation per frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HeaderBytes {
    bytes: [u8; MAX_HEADER_LEN],
    len: u8,
}

impl HeaderBytes {
    /// The header's bytes.
    pub(crate) fn as_slice(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }
}

impl AsRef<[u8]> for HeaderBytes {
    fn as_ref(&self) -> &[u8] {
        self.as_slice()
    }
}

/// XORs `bytes`, which start `offset` bytes into a payload, with the payload's mask key (RFC
/// 6455 §5.3): masks and unmasks. Sixteen bytes at a time (two words, which LLVM vectorises),
/// in safe code; an all-zero key changes nothing and is skipped.
pub(crate) fn apply_mask(bytes: &mut [u8], mask: [u8; 4], offset: usize) {
    if mask == [0; 4] {
        return;
    }
    let mut key = [0; 8];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = mask[(offset + i) % 4];
    }
    let word_key = u64::from_ne_bytes(key);
    let mut blocks = bytes.chunks_exact_mut(16);
    for block in &mut blocks {
        let (a, b) = block.split_at_mut(8);
        for word in [a, b] {
            let mut value = [0; 8];
            value.copy_from_slice(word);
            word.copy_from_slice(&(u64::from_ne_bytes(value) ^ word_key).to_ne_bytes());
        }
    }
    // 16 is a multiple of 4: the key lines up with the remainder's start again.
    let rest = blocks.into_remainder();
    let mut words = rest.chunks_exact_mut(8);
    for word in &mut words {
        let mut value = [0; 8];
        value.copy_from_slice(word);
        word.copy_from_slice(&(u64::from_ne_bytes(value) ^ word_key).to_ne_bytes());
    }
    for (byte, key) in words.into_remainder().iter_mut().zip(key) {
        *byte ^= key;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_length_form_and_the_mask_key_are_read_and_a_partial_header_waits() {
        let short = [0x81, 0x85, 1, 2, 3, 4];
        let header = FrameHeader::parse(&short).unwrap().unwrap();
        assert_eq!((header.fin, header.opcode, header.payload_len, header.len), (true, 1, 5, 6));
        assert_eq!(header.mask, [1, 2, 3, 4]);
        assert!(!header.any_rsv());
        let medium = [0x42, 0x7E, 0x01, 0x00];
        let header = FrameHeader::parse(&medium).unwrap().unwrap();
        assert_eq!((header.fin, header.rsv1, header.payload_len, header.len), (false, true, 256, 4));
        assert!(header.any_rsv());
        let long = [0x82, 0x7F, 0, 0, 0, 1, 0, 0, 0, 0];
        assert_eq!(FrameHeader::parse(&long).unwrap().unwrap().payload_len, 1 << 32);
        for cut in 0..short.len() {
            assert_eq!(FrameHeader::parse(&short[..cut]).unwrap(), None, "{cut} bytes");
        }
        let top = [0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(FrameHeader::parse(&top), Err(ProtocolError::LengthTopBit));
        // A reserved opcode still parses: refusing it is the decoder's business.
        assert_eq!(FrameHeader::parse(&[0x83, 0x00]).unwrap().unwrap().opcode, 3);
        assert_eq!(OpCode::from_bits(3), None);
    }

    #[test]
    fn encode_uses_the_shortest_form_and_parses_back() {
        let cases = [
            (0, None, 2),
            (125, None, 2),
            (126, None, 4),
            (0xFFFF, None, 4),
            (0x1_0000, None, 10),
            (1 << 40, None, 10),
            (5, Some([9, 8, 7, 6]), 6),
            (300, Some([1, 2, 3, 4]), 8),
            (70_000, Some([1, 2, 3, 4]), 14),
        ];
        for (fin, rsv1) in [(true, false), (false, true)] {
            for op in [
                OpCode::Continuation,
                OpCode::Text,
                OpCode::Binary,
                OpCode::Close,
                OpCode::Ping,
                OpCode::Pong,
            ] {
                for (length, mask, header_len) in cases {
                    let header = FrameHeader::new(fin, rsv1, op, length, mask);
                    let bytes = header.encode();
                    assert_eq!(bytes.as_slice().len(), header_len, "{length}");
                    assert_eq!(header.len, header_len);
                    assert_eq!(FrameHeader::parse(bytes.as_slice()).unwrap(), Some(header));
                    assert_eq!(OpCode::from_bits(header.opcode), Some(op));
                }
            }
        }
        assert_eq!(FrameHeader::new(true, false, OpCode::Text, 5, None).encode().as_slice(), [0x81, 0x05]);
        assert_eq!(
            FrameHeader::new(false, true, OpCode::Binary, 256, Some([1, 2, 3, 4])).encode().as_slice(),
            [0x42, 0xFE, 0x01, 0x00, 1, 2, 3, 4]
        );
    }

    #[test]
    fn masking_twice_from_any_offset_gives_the_bytes_back() {
        let plain: Vec<u8> = (0..53).collect();
        let mask = [0xA1, 0x02, 0xF3, 0x44];
        let mut whole = plain.clone();
        apply_mask(&mut whole, mask, 0);
        for (i, (m, p)) in whole.iter().zip(&plain).enumerate() {
            assert_eq!(*m, p ^ mask[i % 4]);
        }
        // The same, in two pieces: the second starts `split` bytes into the payload.
        for split in 0..plain.len() {
            let mut pieces = plain.clone();
            let (first, second) = pieces.split_at_mut(split);
            apply_mask(first, mask, 0);
            apply_mask(second, mask, split);
            assert_eq!(pieces, whole, "split at {split}");
        }
        apply_mask(&mut whole, mask, 0);
        assert_eq!(whole, plain);
        let mut unchanged = plain.clone();
        apply_mask(&mut unchanged, [0; 4], 3);
        assert_eq!(unchanged, plain);
    }
}
