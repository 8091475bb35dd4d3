//! HTTP/1.x request heads: finding where one ends in a byte stream split
//! anywhere, and parsing the request line and header fields.

use std::fmt;

/// Whether `b` may appear in a method (an RFC 9110 token).
pub fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Finds the end of a request head — the first empty line, ended by CRLF or
/// a bare LF — across calls, scanning each byte once.
#[derive(Debug, Default, Clone)]
pub struct HeadScanner {
    /// Where the line not yet ended starts.
    line_start: usize,
}

impl HeadScanner {
    /// The length of the head (through its empty line) if `buf` holds all of
    /// it. `buf` must be the same buffer as on the previous call, grown.
    pub fn scan(&mut self, buf: &[u8]) -> Option<usize> {
        while let Some(i) = buf[self.line_start..].iter().position(|&b| b == b'\n') {
            let end = self.line_start + i;
            let line = &buf[self.line_start..end];
            self.line_start = end + 1;
            if line.is_empty() || line == b"\r" {
                let len = self.line_start;
                self.line_start = 0;
                return Some(len);
            }
        }
        None
    }

    /// Start over for the next request.
    pub fn reset(&mut self) {
        self.line_start = 0;
    }
}

/// A parsed request head. Text is decoded lossily; names keep their case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    /// The request target exactly as sent.
    pub target: String,
    /// `HTTP/1.0`, `HTTP/1.1`, ...
    pub version: String,
    pub minor: u8,
    pub headers: Vec<(String, String)>,
}

impl Head {
    /// The first value of the header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of the header `name`.
    pub fn header_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.headers
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether a `Connection` (or `Proxy-Connection`) header lists `option`.
    pub fn connection_has(&self, option: &str) -> bool {
        ["connection", "proxy-connection"].iter().any(|h| {
            self.header_all(h)
                .flat_map(|v| v.split(','))
                .any(|o| o.trim().eq_ignore_ascii_case(option))
        })
    }

    /// Whether the client wants the connection kept open after this request.
    pub fn keep_alive(&self) -> bool {
        if self.connection_has("close") {
            return false;
        }
        self.minor >= 1 || self.connection_has("keep-alive")
    }
}

/// Most header fields kept from one head; the rest are ignored.
pub const MAX_HEADERS: usize = 100;

/// Why a head is not HTTP/1.x.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeadError {
    /// Not `METHOD SP target SP version`.
    RequestLine,
    /// A method with characters outside a token.
    Method,
    /// A version other than `HTTP/1.x`.
    Version(String),
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::RequestLine => f.write_str("malformed request line"),
            HeadError::Method => f.write_str("malformed method"),
            HeadError::Version(v) => write!(f, "unsupported version {v:?}"),
        }
    }
}

/// Parse a complete head (request line, header lines, empty line).
/// Header lines without a colon are skipped; folded lines (starting with
/// white space) continue the previous value.
pub fn parse_head(bytes: &[u8]) -> Result<Head, HeadError> {
    // Valid UTF-8 (nearly every head) is checked word by word; the lossy
    // decoder walks byte by byte even when nothing needs replacing.
    let text = match std::str::from_utf8(bytes) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    };
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let request_line = lines.next().unwrap_or_default();
    let parts: Vec<&str> = request_line.split_ascii_whitespace().collect();
    let [method, target, version] = parts[..] else {
        return Err(HeadError::RequestLine);
    };
    if !method.bytes().all(is_token_byte) {
        return Err(HeadError::Method);
    }
    let minor = version
        .strip_prefix("HTTP/1.")
        .filter(|m| m.len() == 1)
        .and_then(|m| m.parse::<u8>().ok())
        .ok_or_else(|| HeadError::Version(version.chars().take(32).collect()))?;
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = headers.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.is_empty() || !name.bytes().all(is_token_byte) || headers.len() >= MAX_HEADERS {
            continue;
        }
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
    Ok(Head {
        method: method.to_owned(),
        target: target.to_owned(),
        version: version.to_owned(),
        minor,
        headers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scanner_finds_the_empty_line_across_pushes() {
        let head = b"GET / HTTP/1.1\r\nHost: a\r\n\r\nrest";
        let mut scanner = HeadScanner::default();
        for n in 0..head.len() - 4 {
            assert_eq!(scanner.scan(&head[..n]), None, "{n}");
        }
        assert_eq!(scanner.scan(head), Some(head.len() - 4));
        let mut scanner = HeadScanner::default();
        assert_eq!(scanner.scan(b"GET / HTTP/1.0\nHost: a\n\nx"), Some(24));
    }

    #[test]
    fn heads_parse_with_folding_and_junk_lines() {
        let head =
            parse_head(b"get http://a/ HTTP/1.0\r\nHost: a\r\nX-A: 1\r\n  2\r\njunk\r\n\r\n")
                .unwrap();
        assert_eq!((head.method.as_str(), head.minor), ("get", 0));
        assert_eq!(head.header("x-a"), Some("1 2"));
        assert_eq!(head.headers.len(), 2);
        assert!(!head.keep_alive());
        assert_eq!(parse_head(b"GET /\r\n\r\n"), Err(HeadError::RequestLine));
        assert_eq!(
            parse_head(b"GET / HTTP/2.0\r\n\r\n"),
            Err(HeadError::Version("HTTP/2.0".into()))
        );
        assert_eq!(
            parse_head(b"G(T / HTTP/1.1\r\n\r\n"),
            Err(HeadError::Method)
        );
    }

    #[test]
    fn keep_alive_rules() {
        let ka = |h: &[u8]| parse_head(h).unwrap().keep_alive();
        assert!(ka(b"GET / HTTP/1.1\r\n\r\n"));
        assert!(!ka(b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n"));
        assert!(ka(
            b"GET / HTTP/1.0\r\nProxy-Connection: keep-alive\r\n\r\n"
        ));
        assert!(!ka(b"GET / HTTP/1.0\r\n\r\n"));
    }
}
