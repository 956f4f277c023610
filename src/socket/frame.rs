//! A frame header as RFC 6455 §5.2 lays it out, and masking (§5.3): what the transport's plain
//! read path and the inflater (`deflate/inflate.rs`) both need to read frames under tungstenite.

use super::TransportError;

/// A frame header, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FrameHeader {
    pub(crate) fin: bool,
    pub(crate) rsv1: bool,
    pub(crate) rsv2: bool,
    pub(crate) rsv3: bool,
    pub(crate) opcode: u8,
    pub(crate) masked: bool,
    pub(crate) mask: [u8; 4],
    /// The payload's length.
    pub(crate) payload_len: u64,
    /// The header's own length, mask key included.
    pub(crate) len: usize,
}

impl FrameHeader {
    /// The header at the start of `bytes`; `None` until it has arrived whole. A 64-bit length
    /// with its most significant bit set (which tungstenite would accept) is an error as soon
    /// as the length is there.
    pub(crate) fn parse(bytes: &[u8]) -> Result<Option<Self>, TransportError> {
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
                    return Err(TransportError::LengthTopBit);
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
    pub(crate) fn any_rsv(&self) -> bool {
        self.rsv1 || self.rsv2 || self.rsv3
    }
}

/// XORs `bytes`, which start `offset` bytes into a payload, with the payload's mask key (RFC
/// 6455 §5.3): masks and unmasks. Eight bytes at a time.
pub(crate) fn apply_mask(bytes: &mut [u8], mask: [u8; 4], offset: usize) {
    let mut key = [0; 8];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = mask[(offset + i) % 4];
    }
    let word_key = u64::from_ne_bytes(key);
    let mut words = bytes.chunks_exact_mut(8);
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
        assert!(matches!(FrameHeader::parse(&top), Err(TransportError::LengthTopBit)));
    }

    #[test]
    fn masking_twice_from_any_offset_gives_the_bytes_back() {
        let plain: Vec<u8> = (0..37).collect();
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
    }
}
