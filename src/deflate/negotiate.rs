//! The permessage-deflate negotiation of RFC 7692 §5 and §7, on the extension list grammar of
//! RFC 6455 §9.1:
//!
//! ```text
//! extension-list  = 1#extension                      (elements separated by ",", OWS around)
//! extension       = extension-token *( ";" extension-param )
//! extension-param = token [ "=" ( token | quoted-string ) ]
//! ```
//!
//! A quoted value may hold `,` and `;`; once unescaped it must be a token (RFC 7692 §7.1).
//! Header lines are lists of their own, read in order. Empty list elements are skipped
//! (RFC 9110 §5.6.1); an element that does not parse is declined and the next one is read. All
//! of this is peer input: nothing here panics, whatever the bytes.

use http::{HeaderMap, HeaderValue, header::SEC_WEBSOCKET_EXTENSIONS};

use super::{Compression, NegotiatedCompression};

const EXTENSION: &str = "permessage-deflate";
const SERVER_NO_CONTEXT_TAKEOVER: &str = "server_no_context_takeover";
const CLIENT_NO_CONTEXT_TAKEOVER: &str = "client_no_context_takeover";
const SERVER_MAX_WINDOW_BITS: &str = "server_max_window_bits";
const CLIENT_MAX_WINDOW_BITS: &str = "client_max_window_bits";

/// Server side: the first acceptable permessage-deflate offer among every
/// `Sec-WebSocket-Extensions` line, and the answer to it. `None` when compression is off or no
/// offer is acceptable.
///
/// An offer is declined for an unknown or duplicate parameter, a window size that is not 8 to
/// 15 written without leading zeros, `server_max_window_bits` without a value, a value on a flag,
/// or anything that does not parse; the next offer is then tried.
pub(crate) fn negotiate(headers: &HeaderMap, config: &Compression) -> Option<NegotiatedCompression> {
    if !config.enabled {
        return None;
    }
    let offer = headers
        .get_all(SEC_WEBSOCKET_EXTENSIONS)
        .iter()
        .flat_map(|line| elements(line.as_bytes()))
        .filter_map(Result::ok)
        .filter(|element| element.name.eq_ignore_ascii_case(EXTENSION.as_bytes()))
        .find_map(|element| Params::read(&element.params).ok())?;
    Some(NegotiatedCompression {
        server_no_context_takeover: offer.server_no_context_takeover || config.server_no_context_takeover,
        client_no_context_takeover: offer.client_no_context_takeover,
        server_max_window_bits: offer
            .server_max_window_bits
            .map(|bits| bits.min(config.server_max_window_bits)),
        client_max_window_bits: match (offer.client_max_window_bits, config.client_max_window_bits) {
            (ClientBits::Absent, _) | (_, None) => None,
            (ClientBits::Bare, Some(ours)) => Some(ours),
            (ClientBits::Bits(offered), Some(ours)) => Some(ours.min(offered)),
        },
    })
}

/// Client side: the offer to send for `config`: always `client_max_window_bits` (we inflate
/// any window), `server_no_context_takeover` when `config` asks for it, and
/// `server_max_window_bits=N` when `config` limits the server's window below 15 bits.
#[cfg(any(test, feature = "test-util"))]
pub(crate) fn client_offer(config: &Compression) -> HeaderValue {
    let mut offer = format!("{EXTENSION}; {CLIENT_MAX_WINDOW_BITS}");
    if config.server_no_context_takeover {
        offer.push_str(&format!("; {SERVER_NO_CONTEXT_TAKEOVER}"));
    }
    if config.server_max_window_bits < 15 {
        offer.push_str(&format!("; {SERVER_MAX_WINDOW_BITS}={}", config.server_max_window_bits));
    }
    header_value(offer)
}

/// Client side: checks the server's answer to our offer ([`client_offer`] of the same
/// `config`). `Ok(None)` when the server answered no extension; an error naming the problem
/// when the answer is not one well-formed permessage-deflate element that fits our offer.
#[cfg(any(test, feature = "test-util"))]
pub(crate) fn accept_answer(
    headers: &HeaderMap,
    config: &Compression,
) -> Result<Option<NegotiatedCompression>, String> {
    let mut answered =
        headers.get_all(SEC_WEBSOCKET_EXTENSIONS).iter().flat_map(|line| elements(line.as_bytes()));
    let Some(first) = answered.next() else {
        return Ok(None);
    };
    if answered.next().is_some() {
        return Err("the server answered more than one extension; we offered one".to_owned());
    }
    let element =
        first.map_err(|why| format!("the server's Sec-WebSocket-Extensions does not parse: {why}"))?;
    if !config.enabled {
        return Err(format!("the server answered the extension {}, and we offered none", show(element.name)));
    }
    if !element.name.eq_ignore_ascii_case(EXTENSION.as_bytes()) {
        return Err(format!(
            "the server answered the extension {}, which we did not offer",
            show(element.name)
        ));
    }
    let answer = Params::read(&element.params)
        .map_err(|why| format!("the server's permessage-deflate answer: {why}"))?;
    if config.server_no_context_takeover && !answer.server_no_context_takeover {
        return Err(format!("the server did not answer {SERVER_NO_CONTEXT_TAKEOVER}, which we asked for"));
    }
    if config.server_max_window_bits < 15 {
        let offered = config.server_max_window_bits;
        match answer.server_max_window_bits {
            None => {
                return Err(format!(
                    "the server did not answer {SERVER_MAX_WINDOW_BITS}; we asked for {offered}"
                ));
            }
            Some(bits) if bits > offered => {
                return Err(format!(
                    "the server answered {SERVER_MAX_WINDOW_BITS}={bits}, above the {offered} we offered"
                ));
            }
            Some(_) => {}
        }
    }
    // We always offer client_max_window_bits, so the server may answer it (RFC 7692 §7.1.2.2),
    // but with a value: the window it allows us.
    let client_max_window_bits = match answer.client_max_window_bits {
        ClientBits::Absent => None,
        ClientBits::Bare => {
            return Err(format!("the server answered {CLIENT_MAX_WINDOW_BITS} without a value"));
        }
        ClientBits::Bits(bits) => Some(bits),
    };
    Ok(Some(NegotiatedCompression {
        server_no_context_takeover: answer.server_no_context_takeover,
        client_no_context_takeover: answer.client_no_context_takeover,
        server_max_window_bits: answer.server_max_window_bits,
        client_max_window_bits,
    }))
}

impl NegotiatedCompression {
    /// The answer's `Sec-WebSocket-Extensions` value: one permessage-deflate element, its
    /// parameters in a fixed order (`server_no_context_takeover`, `client_no_context_takeover`,
    /// `server_max_window_bits=N`, `client_max_window_bits=N`).
    pub(crate) fn header_value(&self) -> HeaderValue {
        let mut answer = EXTENSION.to_owned();
        if self.server_no_context_takeover {
            answer.push_str(&format!("; {SERVER_NO_CONTEXT_TAKEOVER}"));
        }
        if self.client_no_context_takeover {
            answer.push_str(&format!("; {CLIENT_NO_CONTEXT_TAKEOVER}"));
        }
        if let Some(bits) = self.server_max_window_bits {
            answer.push_str(&format!("; {SERVER_MAX_WINDOW_BITS}={bits}"));
        }
        if let Some(bits) = self.client_max_window_bits {
            answer.push_str(&format!("; {CLIENT_MAX_WINDOW_BITS}={bits}"));
        }
        header_value(answer)
    }
}

/// Our own text (names, `; ` and decimal numbers) as a header value.
fn header_value(text: String) -> HeaderValue {
    HeaderValue::try_from(text).expect("extension names and decimal numbers are a valid header value")
}

/// One element of an extension list: the extension's name and its parameters.
#[derive(Debug)]
struct Element<'a> {
    name: &'a [u8],
    params: Vec<Param<'a>>,
}

/// One extension parameter: its name and its value, unquoted, if it has one.
#[derive(Debug)]
struct Param<'a> {
    name: &'a [u8],
    value: Option<Vec<u8>>,
}

impl Param<'_> {
    fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name.as_bytes())
    }
}

/// The elements of one header line, empty ones skipped; an element that does not parse is an
/// error that says why.
fn elements(line: &[u8]) -> impl Iterator<Item = Result<Element<'_>, String>> {
    SplitUnquoted::new(line, b',').map(trim).filter(|element| !element.is_empty()).map(element)
}

fn element(text: &[u8]) -> Result<Element<'_>, String> {
    let mut pieces = SplitUnquoted::new(text, b';').map(trim);
    let name = pieces.next().unwrap_or_default();
    if !is_token(name) {
        return Err(format!("{} is not an extension name", show(name)));
    }
    let params = pieces.map(param).collect::<Result<_, _>>()?;
    Ok(Element { name, params })
}

fn param(text: &[u8]) -> Result<Param<'_>, String> {
    if text.is_empty() {
        return Err("an empty parameter (a stray `;`)".to_owned());
    }
    let mut halves = text.splitn(2, |&byte| byte == b'=');
    let name = trim(halves.next().unwrap_or_default());
    if !is_token(name) {
        return Err(format!("{} is not a parameter name", show(name)));
    }
    let value = match halves.next().map(trim) {
        None => None,
        Some(raw) => Some(value(raw).map_err(|why| format!("the value of {}: {why}", show(name)))?),
    };
    Ok(Param { name, value })
}

/// A parameter's value: a token, or a quoted-string whose content is a token.
fn value(raw: &[u8]) -> Result<Vec<u8>, &'static str> {
    let value = match raw.strip_prefix(b"\"") {
        Some(quoted) => unquote(quoted)?,
        None => raw.to_vec(),
    };
    if value.is_empty() {
        Err("it is empty")
    } else if is_token(&value) {
        Ok(value)
    } else {
        Err("it is not a token")
    }
}

/// The content of a quoted-string whose opening quote was already read, with `\` escapes
/// resolved. The closing quote must end `text`.
fn unquote(text: &[u8]) -> Result<Vec<u8>, &'static str> {
    let mut content = Vec::with_capacity(text.len());
    let mut bytes = text.iter();
    loop {
        match bytes.next() {
            None => return Err("an unterminated quoted string"),
            Some(b'"') if bytes.as_slice().is_empty() => return Ok(content),
            Some(b'"') => return Err("text after a quoted string"),
            Some(b'\\') => match bytes.next() {
                Some(&escaped) => content.push(escaped),
                None => return Err("an unterminated quoted string"),
            },
            Some(&byte) => content.push(byte),
        }
    }
}

/// The permessage-deflate parameters of one element (an offer or an answer).
#[derive(Debug, Default)]
struct Params {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    client_max_window_bits: ClientBits,
}

/// `client_max_window_bits`: absent, without a value (only an offer may say that), or a value.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum ClientBits {
    #[default]
    Absent,
    Bare,
    Bits(u8),
}

impl Params {
    /// Reads the parameters: every one known, none twice, flags without a value and window
    /// sizes 8 to 15 without leading zeros.
    fn read(params: &[Param<'_>]) -> Result<Self, String> {
        let mut read = Self::default();
        for param in params {
            let twice = || format!("{} appears twice", show(param.name));
            if param.is(SERVER_NO_CONTEXT_TAKEOVER) || param.is(CLIENT_NO_CONTEXT_TAKEOVER) {
                if param.value.is_some() {
                    return Err(format!("{} is a flag, but has a value", show(param.name)));
                }
                let flag = if param.is(SERVER_NO_CONTEXT_TAKEOVER) {
                    &mut read.server_no_context_takeover
                } else {
                    &mut read.client_no_context_takeover
                };
                if std::mem::replace(flag, true) {
                    return Err(twice());
                }
            } else if param.is(SERVER_MAX_WINDOW_BITS) {
                let value = param
                    .value
                    .as_deref()
                    .ok_or_else(|| format!("{SERVER_MAX_WINDOW_BITS} needs a value"))?;
                if read.server_max_window_bits.replace(window_bits(SERVER_MAX_WINDOW_BITS, value)?).is_some()
                {
                    return Err(twice());
                }
            } else if param.is(CLIENT_MAX_WINDOW_BITS) {
                let bits = match param.value.as_deref() {
                    None => ClientBits::Bare,
                    Some(value) => ClientBits::Bits(window_bits(CLIENT_MAX_WINDOW_BITS, value)?),
                };
                if std::mem::replace(&mut read.client_max_window_bits, bits) != ClientBits::Absent {
                    return Err(twice());
                }
            } else {
                return Err(format!("unknown parameter {}", show(param.name)));
            }
        }
        Ok(read)
    }
}

/// A window size: a decimal number 8 to 15 without leading zeros (RFC 7692 §7.1.2).
fn window_bits(name: &str, value: &[u8]) -> Result<u8, String> {
    let shown = show(value);
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(format!("{name}={shown} is not a decimal number"));
    }
    if value.len() > 1 && value.starts_with(b"0") {
        return Err(format!("{name}={shown} has a leading zero"));
    }
    match std::str::from_utf8(value).ok().and_then(|digits| digits.parse::<u8>().ok()) {
        Some(bits) if (8..=15).contains(&bits) => Ok(bits),
        _ => Err(format!("{name}={shown} is outside 8 to 15")),
    }
}

/// RFC 9110 §5.6.2: `token = 1*tchar`.
fn is_token(text: &[u8]) -> bool {
    !text.is_empty()
        && text.iter().all(|&byte| {
            byte.is_ascii_alphanumeric()
                || matches!(
                    byte,
                    b'!' | b'#'
                        | b'$'
                        | b'%'
                        | b'&'
                        | b'\''
                        | b'*'
                        | b'+'
                        | b'-'
                        | b'.'
                        | b'^'
                        | b'_'
                        | b'`'
                        | b'|'
                        | b'~'
                )
        })
}

/// Without the optional white space (spaces and tabs) at both ends.
fn trim(mut text: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = text {
        text = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = text {
        text = rest;
    }
    text
}

/// Peer text for an error message, quoted and escaped.
fn show(text: &[u8]) -> String {
    format!("{:?}", String::from_utf8_lossy(text))
}

/// The pieces of `input` between the `separator`s that are not inside a quoted-string. An
/// unterminated quoted-string runs to the end of `input`.
#[derive(Debug)]
struct SplitUnquoted<'a> {
    rest: Option<&'a [u8]>,
    separator: u8,
}

impl<'a> SplitUnquoted<'a> {
    fn new(input: &'a [u8], separator: u8) -> Self {
        Self { rest: Some(input), separator }
    }
}

impl<'a> Iterator for SplitUnquoted<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let input = self.rest?;
        let mut quoted = false;
        let mut escaped = false;
        let end = input.iter().position(|&byte| {
            if escaped {
                escaped = false;
            } else if quoted {
                match byte {
                    b'\\' => escaped = true,
                    b'"' => quoted = false,
                    _ => {}
                }
            } else if byte == b'"' {
                quoted = true;
            } else {
                return byte == self.separator;
            }
            false
        });
        match end.and_then(|end| input.split_at_checked(end)) {
            Some((piece, rest)) => {
                // `rest` starts with the separator.
                self.rest = rest.get(1..);
                Some(piece)
            }
            None => {
                self.rest = None;
                Some(input)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A request or response with these `Sec-WebSocket-Extensions` lines.
    fn lines(lines: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for line in lines {
            headers.append(SEC_WEBSOCKET_EXTENSIONS, HeaderValue::from_str(line).unwrap());
        }
        headers
    }

    /// The server's answer to these offer lines, as its header text.
    fn answer(offer: &[&str], config: &Compression) -> Option<String> {
        negotiate(&lines(offer), config).map(|agreed| agreed.header_value().to_str().unwrap().to_owned())
    }

    fn on() -> Compression {
        Compression::enabled()
    }

    #[test]
    fn rfc_7692_examples() {
        let table: &[(&str, Compression, &str)] = &[
            // §5.2 and §7.1: the plain offer, and client_max_window_bits without a value.
            ("permessage-deflate", on(), "permessage-deflate"),
            ("permessage-deflate; client_max_window_bits", on(), "permessage-deflate"),
            (
                "permessage-deflate; client_max_window_bits",
                on().client_max_window_bits(Some(10)),
                "permessage-deflate; client_max_window_bits=10",
            ),
            // §5.2: the first offer is acceptable, so it is the one answered.
            (
                "permessage-deflate; client_max_window_bits; server_max_window_bits=10, \
                 permessage-deflate; client_max_window_bits",
                on(),
                "permessage-deflate; server_max_window_bits=10",
            ),
            // §7.1.2.1: the same, with a fallback offer behind it.
            (
                "permessage-deflate; server_max_window_bits=10, permessage-deflate",
                on(),
                "permessage-deflate; server_max_window_bits=10",
            ),
            // §7.1.1: the context takeover flags.
            (
                "permessage-deflate; server_no_context_takeover",
                on(),
                "permessage-deflate; server_no_context_takeover",
            ),
            (
                "permessage-deflate; client_no_context_takeover",
                on(),
                "permessage-deflate; client_no_context_takeover",
            ),
            (
                "permessage-deflate; client_no_context_takeover; server_no_context_takeover",
                on(),
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
            ),
        ];
        for (offer, config, expected) in table {
            assert_eq!(answer(&[offer], config).as_deref(), Some(*expected), "offer {offer:?}");
        }
    }

    #[test]
    fn the_answer_follows_the_config() {
        let table: &[(&str, Compression, &str)] = &[
            // We answer server_no_context_takeover when configured, offered or not.
            (
                "permessage-deflate",
                on().server_no_context_takeover(true),
                "permessage-deflate; server_no_context_takeover",
            ),
            // server_max_window_bits only when offered: the smaller of the two.
            ("permessage-deflate", on().server_max_window_bits(10), "permessage-deflate"),
            (
                "permessage-deflate; server_max_window_bits=14",
                on().server_max_window_bits(12),
                "permessage-deflate; server_max_window_bits=12",
            ),
            (
                "permessage-deflate; server_max_window_bits=10",
                on().server_max_window_bits(12),
                "permessage-deflate; server_max_window_bits=10",
            ),
            // 8 is accepted and answered 8 (the data path compresses with 9 bits).
            (
                "permessage-deflate; server_max_window_bits=8",
                on(),
                "permessage-deflate; server_max_window_bits=8",
            ),
            // client_max_window_bits only when offered and configured: the smaller of the two.
            ("permessage-deflate", on().client_max_window_bits(Some(10)), "permessage-deflate"),
            ("permessage-deflate; client_max_window_bits=9", on(), "permessage-deflate"),
            (
                "permessage-deflate; client_max_window_bits=9",
                on().client_max_window_bits(Some(12)),
                "permessage-deflate; client_max_window_bits=9",
            ),
            (
                "permessage-deflate; client_max_window_bits=15",
                on().client_max_window_bits(Some(12)),
                "permessage-deflate; client_max_window_bits=12",
            ),
            (
                "permessage-deflate; client_max_window_bits",
                on().client_max_window_bits(Some(8)),
                "permessage-deflate; client_max_window_bits=8",
            ),
            (
                "permessage-deflate; client_no_context_takeover; client_max_window_bits=11; \
                 server_max_window_bits=13; server_no_context_takeover",
                on().client_max_window_bits(Some(15)),
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                 server_max_window_bits=13; client_max_window_bits=11",
            ),
        ];
        for (offer, config, expected) in table {
            assert_eq!(answer(&[offer], config).as_deref(), Some(*expected), "offer {offer:?}, {config:?}");
        }
    }

    #[test]
    fn the_negotiated_values() {
        let agreed = negotiate(
            &lines(&["permessage-deflate; client_no_context_takeover; server_max_window_bits=9; client_max_window_bits"]),
            &on().client_max_window_bits(Some(10)),
        )
        .unwrap();
        assert!(!agreed.server_no_context_takeover());
        assert!(agreed.client_no_context_takeover());
        assert_eq!(agreed.server_max_window_bits(), Some(9));
        assert_eq!(agreed.client_max_window_bits(), Some(10));
    }

    #[test]
    fn compression_off_ignores_every_offer() {
        let offers = ["permessage-deflate", "permessage-deflate; client_max_window_bits"];
        assert_eq!(negotiate(&lines(&offers), &Compression::disabled()), None);
        assert_eq!(negotiate(&lines(&offers), &Compression::default()), None);
        assert_eq!(negotiate(&lines(&offers), &on().level(9)).map(|_| ()), Some(()));
    }

    #[test]
    fn no_offer_no_answer() {
        assert_eq!(answer(&[], &on()), None);
        assert_eq!(answer(&[""], &on()), None);
        assert_eq!(answer(&["x-webkit-deflate-frame"], &on()), None);
        assert_eq!(answer(&["permessage-deflate-2; client_max_window_bits"], &on()), None);
        assert_eq!(answer(&["deflate-frame, x-custom; a=1"], &on()), None);
    }

    #[test]
    fn other_extensions_are_skipped() {
        assert_eq!(
            answer(
                &["x-webkit-deflate-frame, foo; bar=1; baz, permessage-deflate; server_no_context_takeover"],
                &on()
            )
            .as_deref(),
            Some("permessage-deflate; server_no_context_takeover")
        );
    }

    #[test]
    fn every_header_line_is_read_in_order() {
        let offer = [
            "foo",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; client_no_context_takeover",
            "permessage-deflate; server_no_context_takeover",
        ];
        assert_eq!(answer(&offer, &on()).as_deref(), Some("permessage-deflate; client_no_context_takeover"));
        // A broken line does not spill into the next one.
        let offer =
            ["permessage-deflate; server_max_window_bits=\"10, permessage-deflate", "permessage-deflate"];
        assert_eq!(answer(&offer, &on()).as_deref(), Some("permessage-deflate"));
    }

    #[test]
    fn names_are_case_insensitive() {
        let table = [
            ("PerMessage-Deflate", "permessage-deflate"),
            (
                "PERMESSAGE-DEFLATE; Server_Max_Window_Bits=10",
                "permessage-deflate; server_max_window_bits=10",
            ),
            (
                "permessage-deflate; SERVER_NO_CONTEXT_TAKEOVER; Client_No_Context_Takeover",
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
            ),
        ];
        for (offer, expected) in table {
            assert_eq!(answer(&[offer], &on()).as_deref(), Some(expected), "offer {offer:?}");
        }
        // A duplicate is a duplicate in any case.
        assert_eq!(
            answer(&["permessage-deflate; server_no_context_takeover; SERVER_NO_CONTEXT_TAKEOVER"], &on()),
            None
        );
    }

    #[test]
    fn quoted_values_and_white_space() {
        let config = on().client_max_window_bits(Some(15));
        let table = [
            (
                "permessage-deflate; server_max_window_bits=\"10\"",
                "permessage-deflate; server_max_window_bits=10",
            ),
            (
                "permessage-deflate; client_max_window_bits=\"9\"",
                "permessage-deflate; client_max_window_bits=9",
            ),
            // A quoted-pair is the character it escapes.
            (
                "permessage-deflate; server_max_window_bits=\"1\\2\"",
                "permessage-deflate; server_max_window_bits=12",
            ),
            // Optional white space around the separators, spaces and tabs.
            (
                " \tpermessage-deflate \t;\tserver_max_window_bits = 11 ; client_no_context_takeover\t",
                "permessage-deflate; client_no_context_takeover; server_max_window_bits=11",
            ),
            // `,` and `;` inside another extension's quoted value do not split.
            ("foo; bar=\"a, b; c\", permessage-deflate", "permessage-deflate"),
            ("foo; bar=\"a\\\", permessage-deflate; x\", permessage-deflate", "permessage-deflate"),
        ];
        for (offer, expected) in table {
            assert_eq!(answer(&[offer], &config).as_deref(), Some(expected), "offer {offer:?}");
        }
    }

    /// Each of these offers is declined alone, and the offer after it is taken.
    const DECLINED: &[&str] = &[
        // An unknown parameter.
        "permessage-deflate; foo",
        "permessage-deflate; foo=1",
        "permessage-deflate; client_max_window_bits; mux",
        // A duplicate parameter.
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
        "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
        "permessage-deflate; client_max_window_bits; client_max_window_bits",
        "permessage-deflate; client_max_window_bits=10; client_max_window_bits",
        // A window size with leading zeros, outside 8 to 15, or not a decimal number.
        "permessage-deflate; server_max_window_bits=010",
        "permessage-deflate; server_max_window_bits=08",
        "permessage-deflate; client_max_window_bits=00010",
        "permessage-deflate; server_max_window_bits=16",
        "permessage-deflate; server_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=0",
        "permessage-deflate; client_max_window_bits=16",
        "permessage-deflate; client_max_window_bits=7",
        "permessage-deflate; server_max_window_bits=256",
        "permessage-deflate; server_max_window_bits=99999999999999999999",
        "permessage-deflate; server_max_window_bits=+10",
        "permessage-deflate; server_max_window_bits=ten",
        "permessage-deflate; server_max_window_bits=1.0",
        "permessage-deflate; server_max_window_bits=\"010\"",
        "permessage-deflate; server_max_window_bits=\"16\"",
        "permessage-deflate; server_max_window_bits=\"\"",
        "permessage-deflate; server_max_window_bits=\" 10\"",
        "permessage-deflate; server_max_window_bits=\"10;\"",
        // server_max_window_bits without a value.
        "permessage-deflate; server_max_window_bits",
        "permessage-deflate; server_max_window_bits=",
        // A value on a flag.
        "permessage-deflate; server_no_context_takeover=1",
        "permessage-deflate; client_no_context_takeover=true",
        "permessage-deflate; server_no_context_takeover=\"\"",
        "permessage-deflate; client_no_context_takeover=",
        // Malformed: stray `;`, bad tokens, bad quoting.
        "permessage-deflate;",
        "permessage-deflate;; client_no_context_takeover",
        "permessage-deflate; ; client_no_context_takeover",
        "; permessage-deflate",
        "permessage deflate",
        "permessage-deflate; server max_window_bits=10",
        "permessage-deflate; =10",
        "permessage-deflate; server_max_window_bits==10",
        "permessage-deflate; server_max_window_bits=10 11",
        "permessage-deflate; server_max_window_bits=\"10\"x",
        "permessage-deflate; server_max_window_bits=\"10\" \"11\"",
        "permessage-deflate; server_max_window_bits=1\"0\"",
        "\"permessage-deflate\"",
        "permessage-deflate; \"server_no_context_takeover\"",
        "permessage-deflate; server_max_window_bits=@",
        "permessage-deflate/1",
    ];

    #[test]
    fn every_decline_reason() {
        for offer in DECLINED {
            assert_eq!(answer(&[offer], &on()), None, "offer {offer:?} was accepted");
            let with_fallback = format!("{offer}, permessage-deflate; client_no_context_takeover");
            assert_eq!(
                answer(&[&with_fallback], &on()).as_deref(),
                Some("permessage-deflate; client_no_context_takeover"),
                "offer {offer:?} was not declined for the next one"
            );
            assert_eq!(
                answer(&[offer, "permessage-deflate; client_no_context_takeover"], &on()).as_deref(),
                Some("permessage-deflate; client_no_context_takeover"),
                "offer {offer:?} on its own line"
            );
        }
    }

    #[test]
    fn malformed_lists() {
        // An unterminated quote takes the rest of its line with it.
        assert_eq!(answer(&["permessage-deflate; server_max_window_bits=\"10"], &on()), None);
        assert_eq!(answer(&["permessage-deflate; server_max_window_bits=\"10\\\""], &on()), None);
        assert_eq!(answer(&["permessage-deflate; server_max_window_bits=\"10\\"], &on()), None);
        assert_eq!(answer(&["foo; a=\"b, permessage-deflate"], &on()), None);
        assert_eq!(answer(&["\""], &on()), None);
        assert_eq!(answer(&["\\"], &on()), None);
        // Empty elements are skipped.
        for offer in [
            ", , permessage-deflate ,",
            ",permessage-deflate",
            "permessage-deflate,,",
            " ,\t, permessage-deflate",
        ] {
            assert_eq!(answer(&[offer], &on()).as_deref(), Some("permessage-deflate"), "offer {offer:?}");
        }
        for offer in [",", " , ,", ";", ";;", "=", "\"\"", ";=;,=;"] {
            assert_eq!(answer(&[offer], &on()), None, "offer {offer:?}");
        }
        // Bytes that are no text at all.
        let mut headers = HeaderMap::new();
        headers.append(SEC_WEBSOCKET_EXTENSIONS, HeaderValue::from_bytes(b"permessage-deflate\xff").unwrap());
        headers.append(
            SEC_WEBSOCKET_EXTENSIONS,
            HeaderValue::from_bytes(b"permessage-deflate; server_max_window_bits=\"\xe9\"").unwrap(),
        );
        assert_eq!(negotiate(&headers, &on()), None);
        headers.append(SEC_WEBSOCKET_EXTENSIONS, HeaderValue::from_static("permessage-deflate"));
        assert!(negotiate(&headers, &on()).is_some());
    }

    /// A tiny deterministic generator, so that the scan below needs no dependency.
    fn next_random(state: &mut u64) -> u64 {
        *state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        *state >> 33
    }

    #[test]
    fn arbitrary_lines_never_panic_and_answers_round_trip() {
        const PIECES: &[&str] = &[
            "permessage-deflate",
            "PerMessage-Deflate",
            "server_no_context_takeover",
            "client_no_context_takeover",
            "server_max_window_bits",
            "client_max_window_bits",
            "x",
            "=",
            ";",
            ",",
            "\"",
            "\\",
            " ",
            "\t",
            "8",
            "9",
            "10",
            "15",
            "0",
            "16",
            "\u{e9}",
        ];
        let config = on().client_max_window_bits(Some(12)).server_max_window_bits(11);
        // Accepts any server_max_window_bits and requires nothing: every valid answer passes.
        let client = on();
        let mut state = 7;
        let mut accepted = 0;
        for _ in 0..20_000 {
            let mut line = String::new();
            for _ in 0..(next_random(&mut state) % 12) {
                line.push_str(PIECES[(next_random(&mut state) as usize) % PIECES.len()]);
            }
            let Ok(value) = HeaderValue::from_str(&line) else { continue };
            let mut headers = HeaderMap::new();
            headers.append(SEC_WEBSOCKET_EXTENSIONS, value);
            if let Some(agreed) = negotiate(&headers, &config) {
                accepted += 1;
                assert!(
                    agreed.server_max_window_bits.is_none_or(|bits| (8..=11).contains(&bits)),
                    "{line:?}"
                );
                assert!(
                    agreed.client_max_window_bits.is_none_or(|bits| (8..=12).contains(&bits)),
                    "{line:?}"
                );
                let answer = lines(&[agreed.header_value().to_str().unwrap()]);
                assert_eq!(accept_answer(&answer, &client), Ok(Some(agreed)), "{line:?}");
            }
            let _ = accept_answer(&headers, &client);
        }
        assert!(accepted > 100, "only {accepted} generated offers were acceptable");
    }

    #[test]
    fn answer_strings() {
        let none = NegotiatedCompression {
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            server_max_window_bits: None,
            client_max_window_bits: None,
        };
        let table = [
            (none, "permessage-deflate"),
            (
                NegotiatedCompression { server_no_context_takeover: true, ..none },
                "permessage-deflate; server_no_context_takeover",
            ),
            (
                NegotiatedCompression { client_no_context_takeover: true, ..none },
                "permessage-deflate; client_no_context_takeover",
            ),
            (
                NegotiatedCompression { server_max_window_bits: Some(8), ..none },
                "permessage-deflate; server_max_window_bits=8",
            ),
            (
                NegotiatedCompression { client_max_window_bits: Some(15), ..none },
                "permessage-deflate; client_max_window_bits=15",
            ),
            (
                NegotiatedCompression {
                    server_no_context_takeover: true,
                    client_max_window_bits: Some(10),
                    ..none
                },
                "permessage-deflate; server_no_context_takeover; client_max_window_bits=10",
            ),
            (
                NegotiatedCompression {
                    server_no_context_takeover: true,
                    client_no_context_takeover: true,
                    server_max_window_bits: Some(9),
                    client_max_window_bits: Some(12),
                },
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                 server_max_window_bits=9; client_max_window_bits=12",
            ),
        ];
        for (agreed, expected) in table {
            assert_eq!(agreed.header_value(), expected);
        }
    }

    #[test]
    fn client_offers() {
        let table = [
            (on(), "permessage-deflate; client_max_window_bits"),
            (
                on().server_no_context_takeover(true),
                "permessage-deflate; client_max_window_bits; server_no_context_takeover",
            ),
            (on().server_max_window_bits(15), "permessage-deflate; client_max_window_bits"),
            (
                on().server_max_window_bits(10),
                "permessage-deflate; client_max_window_bits; server_max_window_bits=10",
            ),
            (
                on().server_no_context_takeover(true)
                    .server_max_window_bits(9)
                    .client_max_window_bits(Some(10)),
                "permessage-deflate; client_max_window_bits; server_no_context_takeover; server_max_window_bits=9",
            ),
        ];
        for (config, expected) in table {
            assert_eq!(client_offer(&config), expected, "{config:?}");
        }
    }

    #[test]
    fn our_offers_are_answered_by_our_server() {
        for config in [
            on(),
            on().server_no_context_takeover(true),
            on().server_max_window_bits(9),
            on().server_no_context_takeover(true).server_max_window_bits(12).client_max_window_bits(Some(9)),
        ] {
            let offer = HeaderMap::from_iter([(SEC_WEBSOCKET_EXTENSIONS, client_offer(&config))]);
            let agreed = negotiate(&offer, &config).unwrap();
            let answer = HeaderMap::from_iter([(SEC_WEBSOCKET_EXTENSIONS, agreed.header_value())]);
            assert_eq!(accept_answer(&answer, &config), Ok(Some(agreed)), "{config:?}");
        }
    }

    #[test]
    fn accepted_answers() {
        assert_eq!(accept_answer(&HeaderMap::new(), &on()), Ok(None));
        assert_eq!(accept_answer(&HeaderMap::new(), &Compression::disabled()), Ok(None));
        assert_eq!(accept_answer(&lines(&[" , "]), &on()), Ok(None));
        let table: &[(&str, Compression, NegotiatedCompression)] = &[
            (
                "permessage-deflate",
                on(),
                NegotiatedCompression {
                    server_no_context_takeover: false,
                    client_no_context_takeover: false,
                    server_max_window_bits: None,
                    client_max_window_bits: None,
                },
            ),
            // The server may add either flag and any window size we did not limit (§7.1.1,
            // §7.1.2.1), and client_max_window_bits, since we always offer it (§7.1.2.2).
            (
                "Permessage-Deflate; server_no_context_takeover; client_no_context_takeover; \
                 server_max_window_bits=8; client_max_window_bits=\"9\"",
                on(),
                NegotiatedCompression {
                    server_no_context_takeover: true,
                    client_no_context_takeover: true,
                    server_max_window_bits: Some(8),
                    client_max_window_bits: Some(9),
                },
            ),
            // Our limit may be answered with less.
            (
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=9",
                on().server_no_context_takeover(true).server_max_window_bits(10),
                NegotiatedCompression {
                    server_no_context_takeover: true,
                    client_no_context_takeover: false,
                    server_max_window_bits: Some(9),
                    client_max_window_bits: None,
                },
            ),
        ];
        for (answer, config, expected) in table {
            assert_eq!(accept_answer(&lines(&[answer]), config), Ok(Some(*expected)), "answer {answer:?}");
        }
    }

    #[test]
    fn every_refused_answer() {
        let table: &[(&[&str], Compression, &str)] = &[
            (&["permessage-deflate, permessage-deflate"], on(), "more than one extension"),
            (&["permessage-deflate", "permessage-deflate"], on(), "more than one extension"),
            (&["permessage-deflate, foo"], on(), "more than one extension"),
            (&["x-webkit-deflate-frame"], on(), "\"x-webkit-deflate-frame\", which we did not offer"),
            (&["permessage-deflate"], Compression::disabled(), "\"permessage-deflate\", and we offered none"),
            (&["permessage-deflate; foo"], on(), "unknown parameter \"foo\""),
            (
                &["permessage-deflate; client_no_context_takeover; client_no_context_takeover"],
                on(),
                "\"client_no_context_takeover\" appears twice",
            ),
            (
                &["permessage-deflate; server_max_window_bits=9; server_max_window_bits=9"],
                on(),
                "\"server_max_window_bits\" appears twice",
            ),
            (
                &["permessage-deflate; server_max_window_bits=010"],
                on(),
                "server_max_window_bits=\"010\" has a leading zero",
            ),
            (
                &["permessage-deflate; server_max_window_bits=16"],
                on(),
                "server_max_window_bits=\"16\" is outside 8 to 15",
            ),
            (
                &["permessage-deflate; client_max_window_bits=7"],
                on(),
                "client_max_window_bits=\"7\" is outside 8 to 15",
            ),
            (
                &["permessage-deflate; client_max_window_bits=x"],
                on(),
                "client_max_window_bits=\"x\" is not a decimal number",
            ),
            (&["permessage-deflate; server_max_window_bits"], on(), "server_max_window_bits needs a value"),
            (&["permessage-deflate; client_max_window_bits"], on(), "client_max_window_bits without a value"),
            (
                &["permessage-deflate; server_no_context_takeover=1"],
                on(),
                "\"server_no_context_takeover\" is a flag",
            ),
            (
                &["permessage-deflate; server_max_window_bits=11"],
                on().server_max_window_bits(10),
                "server_max_window_bits=11, above the 10 we offered",
            ),
            (
                &["permessage-deflate"],
                on().server_max_window_bits(10),
                "did not answer server_max_window_bits; we asked for 10",
            ),
            (
                &["permessage-deflate"],
                on().server_no_context_takeover(true),
                "did not answer server_no_context_takeover, which we asked for",
            ),
            (&["permessage-deflate; server_max_window_bits=\"10"], on(), "an unterminated quoted string"),
            (&["permessage-deflate;"], on(), "a stray `;`"),
            (&["permessage deflate"], on(), "\"permessage deflate\" is not an extension name"),
        ];
        for (answer, config, problem) in table {
            let error = accept_answer(&lines(answer), config).unwrap_err();
            assert!(error.contains(problem), "answer {answer:?}: {error:?} does not say {problem:?}");
        }
    }
}
