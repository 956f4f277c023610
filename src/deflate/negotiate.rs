//! The permessage-deflate negotiation of RFC 7692 §5 and §7. (Being written.)

use http::{HeaderMap, HeaderValue};

use super::{Compression, NegotiatedCompression};

/// Server side: the first acceptable permessage-deflate offer among every
/// `Sec-WebSocket-Extensions` line, and the answer to it. `None` when compression is off or no
/// offer is acceptable.
pub(crate) fn negotiate(_headers: &HeaderMap, _config: &Compression) -> Option<NegotiatedCompression> {
    None
}

/// Client side: the offer to send for `config`.
pub(crate) fn client_offer(_config: &Compression) -> HeaderValue {
    HeaderValue::from_static("permessage-deflate; client_max_window_bits")
}

/// Client side: checks the server's answer to our offer.
pub(crate) fn accept_answer(
    _headers: &HeaderMap,
    _config: &Compression,
) -> Result<Option<NegotiatedCompression>, String> {
    Ok(None)
}

impl NegotiatedCompression {
    /// The answer's `Sec-WebSocket-Extensions` value: one permessage-deflate element.
    pub(crate) fn header_value(&self) -> HeaderValue {
        HeaderValue::from_static("permessage-deflate")
    }
}
