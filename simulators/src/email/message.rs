//! Reading a received message as far as the inbox needs: the `From`, `Subject` and
//! `Message-ID` headers, with RFC 2047 encoded words decoded as a mail client shows them, and
//! the text body with its quoted-printable or base64 transfer encoding undone.
//!
//! Senders (lettre among them) encode anything that is not ASCII: a Cyrillic subject becomes
//! `=?utf-8?b?...?=` and a Cyrillic body base64 or quoted-printable. A test reading the inbox
//! wants the words the person would read, so the sink decodes both, for UTF-8 (and ASCII and
//! Latin-1) text. Anything it cannot decode is kept as it came rather than refused: a sink
//! takes every message.

use base64::Engine as _;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};

/// How deep multiparts are searched for the text part.
const MAX_DEPTH: usize = 4;

/// Base64 as mail uses it: the standard alphabet, padding optional.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// What the inbox shows of one received message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Parsed {
    /// The `From` header, decoded (`E-Services Portal <noreply@portal.gov.by>`).
    pub(super) from: Option<String>,
    /// The `Subject` header, decoded.
    pub(super) subject: Option<String>,
    /// The `Message-ID` header as sent (`<...@hub.portal>`).
    pub(super) message_id: Option<String>,
    /// The text body, decoded, with `\n` line ends: of a multipart message, its first
    /// `text/plain` part.
    pub(super) text: String,
}

/// Reads a message as DATA carried it (dot-unstuffed, CRLF line ends).
pub(super) fn parse(raw: &[u8]) -> Parsed {
    let (head, body) = split(raw);
    let headers = parse_headers(head);
    Parsed {
        from: header(&headers, "from").map(decode_words),
        subject: header(&headers, "subject").map(decode_words),
        message_id: header(&headers, "message-id").map(str::to_owned),
        text: find_text(&headers, body, 0).unwrap_or_default(),
    }
}

/// The header block and the body, split at the first empty line.
fn split(raw: &[u8]) -> (&[u8], &[u8]) {
    let mut start = 0;
    while start < raw.len() {
        let end = line_end(raw, start);
        let line = &raw[start..end];
        if line == b"\r\n" || line == b"\n" {
            return (&raw[..start], &raw[end..]);
        }
        start = end;
    }
    (raw, &[])
}

/// The index just past the line that starts at `start` (its `\n` included).
fn line_end(raw: &[u8], start: usize) -> usize {
    raw[start..]
        .iter()
        .position(|&b| b == b'\n')
        .map_or(raw.len(), |i| start + i + 1)
}

/// The headers as (lower-case name, unfolded value) pairs, in order.
fn parse_headers(head: &[u8]) -> Vec<(String, String)> {
    let text = String::from_utf8_lossy(head);
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in text.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with([' ', '\t']) {
            // A folded line continues the previous header; unfolding drops only the line break.
            if let Some((_, value)) = headers.last_mut() {
                value.push_str(line);
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.to_owned()));
        }
    }
    headers
}

/// The first header called `name` (lower case), trimmed.
fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, value)| value.trim())
}

/// A parameter of a header value such as `text/plain; charset="utf-8"`, unquoted.
fn parameter(value: &str, name: &str) -> Option<String> {
    value.split(';').skip(1).find_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case(name)
            .then(|| value.trim().trim_matches('"').to_owned())
    })
}

/// The text of an entity: a single part's decoded body, or a multipart's first `text/plain`
/// part. At the top level any single part counts; inside a multipart only `text/plain`.
fn find_text(headers: &[(String, String)], body: &[u8], depth: usize) -> Option<String> {
    let content_type = header(headers, "content-type").unwrap_or("text/plain");
    let mime = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    if mime.starts_with("multipart/") {
        let boundary = parameter(content_type, "boundary")?;
        if depth >= MAX_DEPTH {
            return None;
        }
        return parts(body, &boundary).into_iter().find_map(|part| {
            let (head, body) = split(part);
            find_text(&parse_headers(head), body, depth + 1)
        });
    }
    if depth > 0 && mime != "text/plain" {
        return None;
    }
    let encoding = header(headers, "content-transfer-encoding")
        .unwrap_or("7bit")
        .to_ascii_lowercase();
    let bytes = match encoding.as_str() {
        "base64" => decode_base64(body).unwrap_or_else(|| body.to_vec()),
        "quoted-printable" => decode_quoted_printable(body),
        _ => body.to_vec(),
    };
    let charset = parameter(content_type, "charset").unwrap_or_else(|| "utf-8".to_owned());
    Some(decode_charset(&charset, &bytes).replace("\r\n", "\n"))
}

/// The bodies of a multipart's parts, between its `--boundary` lines.
fn parts<'a>(body: &'a [u8], boundary: &str) -> Vec<&'a [u8]> {
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut current: Option<usize> = None;
    let mut start = 0;
    while start < body.len() {
        let end = line_end(body, start);
        let line = body[start..end].trim_ascii_end();
        if let Some(rest) = line.strip_prefix(delimiter.as_bytes())
            && (rest.is_empty() || rest == b"--")
        {
            if let Some(from) = current {
                // The line break before a delimiter belongs to the delimiter.
                let part = &body[from..start];
                let part = part.strip_suffix(b"\n").unwrap_or(part);
                parts.push(part.strip_suffix(b"\r").unwrap_or(part));
            }
            if rest == b"--" {
                break;
            }
            current = Some(end);
        }
        start = end;
    }
    parts
}

/// Decodes the RFC 2047 encoded words in a header value (`=?utf-8?b?0J/RgNC40LLQtdGC?=`);
/// the white space between two adjacent encoded words is dropped, as the RFC says.
pub(super) fn decode_words(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    let mut after_word = false;
    while let Some(start) = rest.find("=?") {
        let (before, candidate) = rest.split_at(start);
        match encoded_word(candidate) {
            Some((decoded, len)) => {
                if !(after_word && before.chars().all(char::is_whitespace)) {
                    out.push_str(before);
                }
                out.push_str(&decoded);
                rest = &candidate[len..];
                after_word = true;
            }
            None => {
                out.push_str(before);
                out.push_str("=?");
                rest = &candidate[2..];
                after_word = false;
            }
        }
    }
    out.push_str(rest);
    out
}

/// One encoded word at the start of `s`: its decoded text and its length in `s`.
fn encoded_word(s: &str) -> Option<(String, usize)> {
    let inner = s.strip_prefix("=?")?;
    let (charset, rest) = inner.split_once('?')?;
    let (encoding, rest) = rest.split_once('?')?;
    let end = rest.find("?=")?;
    let text = &rest[..end];
    if charset.is_empty() || text.contains(char::is_whitespace) {
        return None;
    }
    let bytes = if encoding.eq_ignore_ascii_case("b") {
        decode_base64(text.as_bytes())?
    } else if encoding.eq_ignore_ascii_case("q") {
        decode_q(text.as_bytes())
    } else {
        return None;
    };
    // RFC 2231 lets a language follow the charset: `utf-8*ru`.
    let charset = charset.split('*').next().unwrap_or(charset);
    let len = 2 + s[2..].len() - rest.len() + end + 2;
    Some((decode_charset(charset, &bytes), len))
}

/// The `Q` encoding of encoded words: quoted-printable with `_` for a space.
fn decode_q(text: &[u8]) -> Vec<u8> {
    let spaced: Vec<u8> = text
        .iter()
        .map(|&b| if b == b'_' { b' ' } else { b })
        .collect();
    decode_quoted_printable(&spaced)
}

/// Quoted-printable (RFC 2045): `=XX` is a byte, `=` at a line end a soft line break; anything
/// malformed is kept as it is.
pub(super) fn decode_quoted_printable(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i] != b'=' {
            out.push(input[i]);
            i += 1;
            continue;
        }
        let rest = &input[i + 1..];
        if rest.starts_with(b"\r\n") {
            i += 3;
        } else if rest.starts_with(b"\n") {
            i += 2;
        } else if let (Some(high), Some(low)) = (
            rest.first().and_then(|&b| hex_value(b)),
            rest.get(1).and_then(|&b| hex_value(b)),
        ) {
            out.push(high << 4 | low);
            i += 3;
        } else {
            out.push(b'=');
            i += 1;
        }
    }
    out
}

fn hex_value(b: u8) -> Option<u8> {
    char::from(b)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Base64 with the line breaks (any white space) of a body left out; `None` when malformed.
fn decode_base64(input: &[u8]) -> Option<Vec<u8>> {
    let compact: Vec<u8> = input
        .iter()
        .copied()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    BASE64.decode(compact).ok()
}

/// Text in `charset`: Latin-1 byte for byte, everything else read as UTF-8 (lossily: a sink
/// shows what it can).
fn decode_charset(charset: &str, bytes: &[u8]) -> String {
    let charset = charset.trim().to_ascii_lowercase();
    if matches!(charset.as_str(), "iso-8859-1" | "latin1" | "l1") {
        bytes.iter().map(|&b| char::from(b)).collect()
    } else {
        String::from_utf8_lossy(bytes).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_words_are_decoded_and_joined() {
        assert_eq!(
            decode_words("=?utf-8?b?0JDQutGC0LjQstCw0YbQuNGP?="),
            "Активация"
        );
        // Adjacent words (as a folded long subject gives them) join without the space.
        assert_eq!(
            decode_words("=?utf-8?b?0JDQutGC0LjQstCw0YbQuNGP?=\r\n =?UTF-8?B?INGD0YfRkdGC0LA=?="),
            "Активация учёта"
        );
        assert_eq!(
            decode_words("=?utf-8?q?=D0=9F=D1=80=D0=B8_=D0=B2=D0=B5=D1=82?= world"),
            "При вет world"
        );
        assert_eq!(decode_words("=?iso-8859-1?q?caf=E9?="), "café");
        assert_eq!(
            decode_words("Portal =?utf-8?b?0J/QvtGA0YLQsNC7?= <a@b.by>"),
            "Portal Портал <a@b.by>"
        );
    }

    #[test]
    fn malformed_encoded_words_stay_as_they_came() {
        for value in [
            "plain subject",
            "=?utf-8?x?abc?=",
            "=?utf-8?b?not base64?=",
            "=?utf-8?b?abc",
            "price =? 5",
        ] {
            assert_eq!(decode_words(value), value);
        }
    }

    #[test]
    fn quoted_printable_is_decoded_with_soft_breaks() {
        assert_eq!(
            decode_quoted_printable(b"=D0=9F=D1=80=D0=B8=\r\n=D0=B2=D0=B5=D1=82 a=3Db =ZZ"),
            "Привет a=b =ZZ".as_bytes()
        );
    }

    #[test]
    fn a_base64_body_and_subject_are_decoded() {
        let raw = b"From: =?utf-8?b?0J/QvtGA0YLQsNC7?= <noreply@portal.gov.by>\r\n\
            Subject: =?utf-8?b?0JDQutGC0LjQstCw0YbQuNGP?=\r\n\
            Message-ID: <k@hub.portal>\r\n\
            Content-Type: text/plain; charset=utf-8\r\n\
            Content-Transfer-Encoding: base64\r\n\
            \r\n\
            0J/RgNC40LLQtdGCLA0K\r\n\
            0LzQuNGA\r\n";
        let parsed = parse(raw);
        assert_eq!(
            parsed.from.as_deref(),
            Some("Портал <noreply@portal.gov.by>")
        );
        assert_eq!(parsed.subject.as_deref(), Some("Активация"));
        assert_eq!(parsed.message_id.as_deref(), Some("<k@hub.portal>"));
        assert_eq!(parsed.text, "Привет,\nмир");
    }

    #[test]
    fn a_seven_bit_body_is_kept_with_unix_line_ends() {
        let parsed = parse(b"Subject: Hi\r\n\r\nline one\r\nline two\r\n");
        assert_eq!(parsed.subject.as_deref(), Some("Hi"));
        assert_eq!(parsed.from, None);
        assert_eq!(parsed.message_id, None);
        assert_eq!(parsed.text, "line one\nline two\n");
    }

    #[test]
    fn the_text_of_a_multipart_is_its_first_plain_part() {
        let raw = b"Subject: x\r\n\
            Content-Type: multipart/alternative; boundary=\"b1\"\r\n\
            \r\n\
            preamble\r\n\
            --b1\r\n\
            Content-Type: text/html\r\n\
            \r\n\
            <p>html</p>\r\n\
            --b1\r\n\
            Content-Type: text/plain; charset=utf-8\r\n\
            Content-Transfer-Encoding: quoted-printable\r\n\
            \r\n\
            =D0=A2=D0=B5=D0=BA=D1=81=D1=82\r\n\
            --b1--\r\n\
            epilogue\r\n";
        assert_eq!(parse(raw).text, "Текст");
    }

    #[test]
    fn a_message_without_a_body_or_headers_parses() {
        assert_eq!(parse(b""), Parsed::default());
        assert_eq!(parse(b"\r\nbody only").text, "body only");
    }
}
