//! [`Utf8Validator`]: checks a text message's UTF-8 (RFC 6455 §8.1) piece by piece as its bytes
//! arrive, so an invalid message fails at the first bad piece, not at its end. A code point may
//! be split between pieces: up to three bytes of an unfinished one are carried to the next.

/// Incremental UTF-8 validation of one message.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Utf8Validator {
    /// The start of a code point the last piece ended inside.
    carry: [u8; 4],
    carry_len: u8,
}

/// The length of the code point a lead byte starts; 0 for a byte no code point starts with.
fn width(lead: u8) -> usize {
    match lead {
        0x00..=0x7F => 1,
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 0,
    }
}

impl Utf8Validator {
    /// Checks the next piece of the message.
    ///
    /// # Errors
    ///
    /// As soon as the bytes so far cannot be the start of valid UTF-8.
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) -> Result<(), ()> {
        if self.carry_len > 0 {
            let have = usize::from(self.carry_len);
            let need = width(self.carry[0]);
            if need <= have {
                // Only the start of a code point is ever carried; anything else is invalid.
                return Err(());
            }
            let take = (need - have).min(bytes.len());
            self.carry[have..have + take].copy_from_slice(&bytes[..take]);
            let have = have + take;
            bytes = &bytes[take..];
            match std::str::from_utf8(&self.carry[..have]) {
                Ok(_) => self.carry_len = 0,
                // Still a valid start of the code point: wait for the rest.
                Err(e) if e.error_len().is_none() && have < need => {
                    self.carry_len = have as u8;
                    return Ok(());
                }
                Err(_) => return Err(()),
            }
        }
        match std::str::from_utf8(bytes) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_none() => {
                // The piece ends inside a code point (at most three bytes of it).
                let tail = &bytes[e.valid_up_to()..];
                self.carry[..tail.len()].copy_from_slice(tail);
                self.carry_len = tail.len() as u8;
                Ok(())
            }
            Err(_) => Err(()),
        }
    }

    /// The message has ended.
    ///
    /// # Errors
    ///
    /// When it ended inside a code point.
    pub(crate) fn finish(&mut self) -> Result<(), ()> {
        let complete = self.carry_len == 0;
        *self = Self::default();
        if complete { Ok(()) } else { Err(()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(pieces: &[&[u8]]) -> Result<(), usize> {
        let mut validator = Utf8Validator::default();
        for (i, piece) in pieces.iter().enumerate() {
            validator.feed(piece).map_err(|()| i)?;
        }
        validator.finish().map_err(|()| pieces.len())
    }

    #[test]
    fn a_code_point_may_be_split_anywhere() {
        let text = "aé€𝄞z κόσμε".as_bytes();
        for a in 0..=text.len() {
            for b in a..=text.len() {
                assert_eq!(check(&[&text[..a], &text[a..b], &text[b..]]), Ok(()), "{a} {b}");
            }
        }
        // One byte at a time.
        let bytes: Vec<&[u8]> = text.chunks(1).collect();
        assert_eq!(check(&bytes), Ok(()));
    }

    #[test]
    fn invalid_bytes_fail_in_the_piece_that_has_them() {
        // A bad continuation right after a split lead byte fails in the second piece.
        assert_eq!(check(&[b"ok\xE2", b"\x28\xA1", b"more"]), Err(1));
        // F4 90 is past U+10FFFF: known bad after two bytes, before the code point ends.
        assert_eq!(check(&[b"a", b"\xF4", b"\x90", b"\x80\x80"]), Err(2));
        // A lone continuation byte, a surrogate, an overlong form, a byte never used.
        assert_eq!(check(&[b"valid", b"\x80"]), Err(1));
        assert_eq!(check(&[b"\xED\xA0\x80"]), Err(0));
        assert_eq!(check(&[b"\xC0\xAF"]), Err(0));
        assert_eq!(check(&[b"x", b"\xFF"]), Err(1));
        // Ending inside a code point fails at the end.
        assert_eq!(check(&[b"abc", b"\xE2\x82"]), Err(2));
        assert_eq!(check(&[b"\xF0\x9D", b"\x84"]), Err(2));
    }
}
