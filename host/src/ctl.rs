//! The client side of `spampot ctl`, `status`, `fleet` and `collect`:
//! one HTTP/1.1 request to a sensor's own admin API, over TLS when the
//! sensor's certificate is pinned. This is the only outbound connection in
//! the host, made by an operator's command to an address the operator
//! names; no client session can reach it.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::tls::Fingerprint;

/// A sensor's admin API: its address and, when it serves TLS, the
/// fingerprint of its certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub tls: Option<Fingerprint>,
}

impl Endpoint {
    pub fn plain(addr: SocketAddr) -> Endpoint {
        Endpoint { addr, tls: None }
    }
}

/// Why a control request failed.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    #[error(
        "cannot reach the admin API at {addr}: {source} (is the sensor running? see [admin] bind)"
    )]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error(
        "TLS with the admin API at {addr} failed: {message} (does the sensor serve [admin] tls?)"
    )]
    Tls { addr: SocketAddr, message: String },
    #[error(
        "the admin API at {addr} {mismatch}: another host, or the sensor's key pair was replaced (it logs its fingerprint at start)"
    )]
    WrongCertificate {
        addr: SocketAddr,
        mismatch: crate::tls::PinMismatch,
    },
    #[error("the admin API at {0} did not answer in time")]
    Timeout(SocketAddr),
    #[error("unreadable answer from the admin API: {0}")]
    Protocol(String),
    #[error("{status}: {message}")]
    Refused { status: u16, message: String },
}

/// Answers are small JSON documents; a sensor that hangs must not hang the CLI.
const TIMEOUT: Duration = Duration::from_secs(30);

/// `/status` of a sensor with a hundred listeners and plugins is tens of
/// KiB; an address that streams without end (a wrong port in a fleet file)
/// must not fill this process's memory before the timeout.
const MAX_ANSWER_BYTES: u64 = 4 << 20;

/// Send `method path` to the admin API and return the JSON body of a 2xx
/// answer; other answers become [`CtlError::Refused`] with the API's message.
pub async fn request(
    endpoint: Endpoint,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> Result<serde_json::Value, CtlError> {
    request_bounded(endpoint, method, path, token, MAX_ANSWER_BYTES, TIMEOUT).await
}

/// [`request`] with another cap on the answer's size and time: a page of
/// the feed or a captured body is larger than a control answer.
pub async fn request_bounded(
    endpoint: Endpoint,
    method: &str,
    path: &str,
    token: Option<&str>,
    max_bytes: u64,
    timeout: Duration,
) -> Result<serde_json::Value, CtlError> {
    let addr = endpoint.addr;
    let exchange = async {
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|source| CtlError::Connect { addr, source })?;
        let Some(pin) = endpoint.tls else {
            return exchange(tcp, addr, method, path, token, max_bytes).await;
        };
        let connector = tokio_rustls::TlsConnector::from(crate::tls::client_config(pin));
        // The pin, not the name, identifies the sensor; the address is
        // what there is to name it by.
        let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
        let tls =
            connector.connect(name, tcp).await.map_err(
                |e| match crate::tls::PinMismatch::within(&e) {
                    Some(mismatch) => CtlError::WrongCertificate {
                        addr,
                        mismatch: *mismatch,
                    },
                    None => CtlError::Tls {
                        addr,
                        message: e.to_string(),
                    },
                },
            )?;
        exchange(tls, addr, method, path, token, max_bytes).await
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| CtlError::Timeout(addr))?
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    max_bytes: u64,
) -> Result<serde_json::Value, CtlError> {
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let io = |e: std::io::Error| CtlError::Protocol(e.to_string());
    stream.write_all(head.as_bytes()).await.map_err(io)?;
    let mut raw = Vec::new();
    (&mut stream)
        .take(max_bytes + 1)
        .read_to_end(&mut raw)
        .await
        .map_err(io)?;
    if raw.len() as u64 > max_bytes {
        return Err(CtlError::Protocol(format!(
            "the answer from {addr} is larger than {} MiB: not a spampot admin API?",
            max_bytes >> 20
        )));
    }
    // A TLS record (an alert, 0x15) or silence is what a TLS-only API
    // answers to plain HTTP.
    if raw.is_empty() || raw.starts_with(&[0x15, 0x03]) {
        return Err(CtlError::Protocol(format!(
            "the admin API at {addr} answered no HTTP; if it serves TLS, pass its certificate's fingerprint (--tls-fingerprint, or tls_fingerprint in the fleet file)"
        )));
    }
    let (status, body) = parse_response(&raw)?;
    let json: serde_json::Value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(&body).into()));
    if (200..300).contains(&status) {
        Ok(json)
    } else {
        let message = json
            .get("error")
            .and_then(|e| e.as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| json.to_string());
        Err(CtlError::Refused { status, message })
    }
}

/// Status code and body of an HTTP/1.1 response (identity or chunked).
fn parse_response(raw: &[u8]) -> Result<(u16, Vec<u8>), CtlError> {
    let bad = |what: &str| CtlError::Protocol(what.to_owned());
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&raw[..split]).map_err(|_| bad("headers are not text"))?;
    let body = &raw[split + 4..];
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("no status code"))?;
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    if !chunked {
        return Ok((status, body.to_vec()));
    }
    let mut out = Vec::new();
    let mut rest = body;
    loop {
        let line_end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or_else(|| bad("truncated chunk"))?;
        let size = std::str::from_utf8(&rest[..line_end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next().unwrap_or("").trim(), 16).ok())
            .ok_or_else(|| bad("bad chunk size"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok((status, out));
        }
        let chunk = rest.get(..size).ok_or_else(|| bad("truncated chunk"))?;
        out.extend_from_slice(chunk);
        rest = rest.get(size + 2..).ok_or_else(|| bad("truncated chunk"))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_identity_and_chunked_bodies() {
        let (status, body) =
            parse_response(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}").unwrap();
        assert_eq!((status, body.as_slice()), (200, &b"{}"[..]));
        let (status, body) = parse_response(
            b"HTTP/1.1 404 Not Found\r\ntransfer-encoding: chunked\r\n\r\n3\r\n{\"a\r\n4\r\n\":1}\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!(status, 404);
        assert_eq!(body, b"{\"a\":1}");
        assert!(parse_response(b"garbage").is_err());
    }

    /// A wrong address that streams without end gets an error at the cap,
    /// not a process that grows until the timeout.
    #[tokio::test]
    async fn an_endless_answer_is_cut_at_the_cap() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let chunk = vec![b'x'; 64 << 10];
            while s.write_all(&chunk).await.is_ok() {}
        });
        let err = request(Endpoint::plain(addr), "GET", "/status", None)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("larger than 4 MiB"), "{err}");
    }
}
