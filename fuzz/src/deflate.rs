//! The `deflate_offer` target's input and reference: `Sec-WebSocket-Extensions` offers built
//! from the fuzz input by a small grammar (so that the reference needs no parser), and the
//! decision RFC 7692 §5 and §7 asks for, computed from that structure.
//!
//! The reference: the first `permessage-deflate` offer (any letter case) whose parameters are
//! all known, none twice, flags without a value, `server_max_window_bits` with a value, and
//! every value 8 to 15 written without leading zeros (plain, quoted, or quoted with escapes).
//! The answer echoes the offer's `server_no_context_takeover` and `client_no_context_takeover`,
//! adds `server_no_context_takeover` when the server is configured for it, answers
//! `server_max_window_bits` only when offered (the smaller of the two), and
//! `client_max_window_bits` only when offered and configured.

/// One parameter of an offer, as written.
#[derive(Debug, Clone)]
pub struct Param {
    pub name: &'static str,
    /// `None`: no `=value`.
    pub value: Option<Value>,
}

/// A parameter value and how it is written.
#[derive(Debug, Clone)]
pub struct Value {
    pub text: &'static str,
    pub form: Form,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    Plain,
    Quoted,
    /// Quoted, with its first character escaped (`"\1\0"`-style).
    Escaped,
}

/// One extension element.
#[derive(Debug, Clone)]
pub struct Element {
    pub name: &'static str,
    pub params: Vec<Param>,
}

/// The server's options, picked by the input.
#[derive(Debug, Clone, Copy)]
pub struct ServerConfig {
    pub server_no_context_takeover: bool,
    pub server_max_window_bits: u8,
    pub client_max_window_bits: Option<u8>,
}

const NAMES: [&str; 5] = ["permessage-deflate", "PerMessage-Deflate", "x-webkit-deflate-frame", "permessage-foo", "deflate"];
const PARAMS: [&str; 6] = [
    "server_no_context_takeover",
    "client_no_context_takeover",
    "server_max_window_bits",
    "client_max_window_bits",
    "Server_Max_Window_Bits",
    "x_unknown",
];
const VALUES: [&str; 10] = ["8", "9", "10", "15", "7", "16", "010", "1", "abc", "12"];

/// Reads the input as a stream of choices.
struct Choices<'a>(&'a [u8]);

impl Choices<'_> {
    fn next(&mut self, n: usize) -> usize {
        match self.0.split_first() {
            Some((&byte, rest)) => {
                self.0 = rest;
                usize::from(byte) % n
            }
            None => 0,
        }
    }
}

/// The header lines (each a list of elements) and the server's options the input describes.
pub fn generate(input: &[u8]) -> (Vec<Vec<Element>>, ServerConfig) {
    let mut c = Choices(input);
    let config = ServerConfig {
        server_no_context_takeover: c.next(2) == 1,
        server_max_window_bits: 9 + c.next(7) as u8,
        client_max_window_bits: match c.next(9) {
            0 => None,
            n => Some(7 + n as u8),
        },
    };
    let lines = (0..1 + c.next(3))
        .map(|_| {
            (0..1 + c.next(3))
                .map(|_| Element {
                    name: NAMES[c.next(NAMES.len())],
                    params: (0..c.next(5))
                        .map(|_| Param {
                            name: PARAMS[c.next(PARAMS.len())],
                            value: match c.next(3) {
                                0 => None,
                                _ => Some(Value {
                                    text: VALUES[c.next(VALUES.len())],
                                    form: [Form::Plain, Form::Quoted, Form::Escaped][c.next(3)],
                                }),
                            },
                        })
                        .collect(),
                })
                .collect()
        })
        .collect();
    (lines, config)
}

/// A header line as text: elements joined by `, `, parameters by `; `.
pub fn render(line: &[Element]) -> String {
    line.iter()
        .map(|element| {
            let mut text = element.name.to_owned();
            for param in &element.params {
                text.push_str("; ");
                text.push_str(param.name);
                if let Some(value) = &param.value {
                    text.push('=');
                    match value.form {
                        Form::Plain => text.push_str(value.text),
                        Form::Quoted => text.push_str(&format!("\"{}\"", value.text)),
                        Form::Escaped => {
                            let mut chars = value.text.chars();
                            let first = chars.next().unwrap_or('0');
                            text.push_str(&format!("\"\\{first}{}\"", chars.as_str()));
                        }
                    }
                }
            }
            text
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A window-bits value: 8 to 15 with no leading zero.
fn bits(value: &Value) -> Option<u8> {
    let text = value.text;
    if text.is_empty() || text.starts_with('0') || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok().filter(|bits| (8..=15).contains(bits))
}

/// The answer RFC 7692 asks for, or `None` when no offer is acceptable.
pub fn expected_answer(lines: &[Vec<Element>], config: ServerConfig) -> Option<String> {
    lines.iter().flatten().find_map(|element| {
        if !element.name.eq_ignore_ascii_case("permessage-deflate") {
            return None;
        }
        let mut seen = Vec::new();
        let (mut snct, mut cnct, mut smwb, mut cmwb) = (false, false, None, None);
        for param in &element.params {
            let name = param.name.to_ascii_lowercase();
            if seen.contains(&name) {
                return None;
            }
            seen.push(name.clone());
            match (name.as_str(), &param.value) {
                ("server_no_context_takeover", None) => snct = true,
                ("client_no_context_takeover", None) => cnct = true,
                ("server_max_window_bits", Some(value)) => smwb = Some(bits(value)?),
                ("client_max_window_bits", None) => cmwb = Some(None),
                ("client_max_window_bits", Some(value)) => cmwb = Some(Some(bits(value)?)),
                _ => return None,
            }
        }
        let mut answer = String::from("permessage-deflate");
        if snct || config.server_no_context_takeover {
            answer.push_str("; server_no_context_takeover");
        }
        if cnct {
            answer.push_str("; client_no_context_takeover");
        }
        if let Some(offered) = smwb {
            answer.push_str(&format!("; server_max_window_bits={}", offered.min(config.server_max_window_bits)));
        }
        if let (Some(offered), Some(configured)) = (cmwb, config.client_max_window_bits) {
            let bits = offered.map_or(configured, |offered| offered.min(configured));
            answer.push_str(&format!("; client_max_window_bits={bits}"));
        }
        Some(answer)
    })
}
