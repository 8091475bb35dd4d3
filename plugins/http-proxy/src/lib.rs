//! The spampot HTTP proxy plugin: an open Squid, as spammers hope to find
//! one on the SpamPots HTTP ports (8080, 80, 3128, 8000, 6588, 4480, 81).
//! It answers `CONNECT` to SMTP ports and hands the stream to the SMTP
//! emulator; it answers proxy-judge checks as an elite (anonymous) proxy
//! would; it fetches and connects to nothing.
//!
//! The code is the [`http_proxy_core`] library, re-exported here: this
//! crate is [`HttpProxy`] with the [`Squid`] flavor. The `sobig` plugin is
//! the same proxy with another persona.
//!
//! # Behaviour
//! - **Heads** are read up to 16 KiB ([`MAX_HEAD`]), split across packets
//!   anywhere, lines ended by CRLF or a bare LF; empty lines between
//!   requests are skipped. A longer head is answered `400` (Squid's
//!   `ERR_TOO_BIG`) and closed. A request line that is not
//!   `METHOD SP target SP HTTP/1.x`, or a first byte that cannot start a
//!   method (TLS, SOCKS, binary junk), is answered `400`
//!   (`ERR_INVALID_REQ`) and closed.
//! - **`CONNECT host[:port]`** (method in any case; port 443 if omitted;
//!   `[v6]:port` accepted):
//!   - to an SMTP port (`smtp_ports`, default 25 and 587):
//!     `HTTP/1.0 200 Connection established`, `Proxy-Agent: <server>`, then
//!     a splice to `host:port` with every byte the client sent after the
//!     head as pending data (kind `connect-smtp`);
//!   - to a reserved destination — an IP literal (in any `inet_aton` form,
//!     e.g. `127.1` or `0x7f000001`) that is private, shared (100.64/10),
//!     loopback, link-local, multicast, unspecified, documentation or
//!     otherwise special-purpose, or `localhost` — on any port, SMTP
//!     included: `403 Forbidden` (`ERR_ACCESS_DENIED`), as Squid's default
//!     `to_localhost`/`localnet` rules answer; kind `connect-other`,
//!     `detail` = `reserved destination address`. A real open proxy on a
//!     network would not relay into its own LAN, and splicing such a target
//!     would only teach the abuser about the sensor;
//!   - to any other port: `503 Service Unavailable` (`ERR_CONNECT_FAIL`,
//!     "(111) Connection refused"); kind `connect-other`.
//!
//!   A refused CONNECT closes the connection (a client that pipelined SMTP
//!   behind it would otherwise have its mail parsed as HTTP).
//! - **Absolute-form requests** (`GET http://host[:port]/path`, and every
//!   other method): kind `get`, destination from the URL (port 80, 443 for
//!   `https`, 21 for `ftp`). A URL whose path or query contains one of
//!   `judge_paths` gets an azenv-style **judge page**: each forwarded
//!   request header as `HTTP_NAME = value` (name upper-cased, `-` → `_`,
//!   repeats joined with `, `), then `REMOTE_ADDR` (= `egress_addr`, never
//!   the client's address), `REMOTE_PORT`, `REQUEST_METHOD`, `REQUEST_URI`,
//!   `REQUEST_TIME_FLOAT`, `REQUEST_TIME`. No `HTTP_VIA` or
//!   `HTTP_X_FORWARDED_FOR` is added, so checkers rate the proxy *elite*;
//!   `Proxy-Authorization` and `Proxy-Connection` are consumed by the proxy
//!   and not shown, as a real proxy does not forward them. Any other URL
//!   gets `default_body`. Both are `200 OK` as from an Apache origin
//!   (`Server: Apache`; no `Via`/`X-Cache`: elite). A URL naming a reserved
//!   destination is refused `403` (kind `get`). `HEAD` gets no body.
//! - **Origin-form requests** (`GET / HTTP/1.1`: the proxy taken for a web
//!   server): answered with `default_body` like a web server's default
//!   page; kind `get`, `target_host` = the `Host` header's host,
//!   `target_port` = the port the client connected to.
//! - **Keep-alive**: HTTP/1.1 unless `Connection: close`; HTTP/1.0 with
//!   `Connection: keep-alive` or `Proxy-Connection: keep-alive`. Pipelined
//!   requests are answered in order, one event each, up to
//!   [`MAX_REQUESTS`] per connection. A `Content-Length` body of up to
//!   1 MiB ([`MAX_BODY`]) is skipped; a longer one, or a
//!   `Transfer-Encoding` body, is answered and the connection closed. A
//!   malformed or conflicting `Content-Length` is a `400` error.
//! - **`Proxy-Authorization`** is recorded as a `credential` and never
//!   checked: every request is served.
//! - A head cut short by the client closing, or by the idle timeout, is an
//!   `error` (the timeout also closes).
//!
//! # Config (`[plugins.http-proxy]`)
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `judge_paths` | `azenv.php,judge,prxjdg,proxyjudge,env.php` | case-insensitive substrings of a URL's path and query that make it a proxy-judge request (a TOML array or comma-separated) |
//! | `egress_addr` | the sensor's address if public, else a plausible public address derived from it | the judge page's `REMOTE_ADDR` (set it to the sensor's public address behind NAT) |
//! | `default_body` | Apache's "It works!" page | the HTML of every non-judge `200` |
//! | `server_header` | `squid/3.5.27` | `Server` of the proxy's own pages and `Proxy-Agent` of CONNECT; empty sends neither |
//! | `via_name` | `localhost` | the proxy's host name in its error pages ("Generated ... by NAME (server)"); never sent as `Via` |
//! | `smtp_ports` | `25,587` | CONNECTs to these ports are granted and spliced |
//!
//! # Events
//! - `proxy.request`, one per request: `module` = `http`, `kind`
//!   (`connect-smtp`, `connect-other`, `get`, `error`), `target_host`
//!   (`""` if none; IPv6 without brackets), `target_port` (0 if none).
//!   Extras when the head parsed: `method`, `url` (the request target,
//!   ≤ 2048 chars), `version`, `user_agent` (if sent), `status` (int, the
//!   answer's status code); for `get`: `form` (`absolute` or `origin`) and
//!   `judge` (flag). Errors: `detail`, and `hex_preview` (first ≤ 16 bytes)
//!   when the bytes were not an HTTP head.
//! - `credential`: `protocol` = `http-proxy`, `mechanism` (`Basic`, or the
//!   scheme sent), `username`, `password`, `decoded` (flag). Basic
//!   credentials that are not base64, and other schemes, are kept raw in
//!   `username` with an empty `password` and `decoded` = false.

pub use http_proxy_core::*;

/// What open-proxy abusers and proxy checkers send: the corpus the fuzz
/// tests mutate, natively and through the component.
pub const CONVERSATIONS: &[&[u8]] = &[
    b"CONNECT mx.example.com:25 HTTP/1.0\r\n\r\nEHLO spam\r\nMAIL FROM:<a@b>\r\n",
    b"CONNECT 192.0.2.25:25 HTTP/1.1\r\nHost: 192.0.2.25:25\r\nProxy-Authorization: Basic dTpw\r\n\r\n",
    b"GET http://judge.example.com/azenv.php?x=1 HTTP/1.1\r\nHost: judge.example.com\r\n\
      User-Agent: ProxyChecker/2.0\r\nProxy-Connection: keep-alive\r\n\r\n\
      GET http://judge.example.com/azenv.php HTTP/1.0\r\n\r\n",
    b"POST http://www.example.com/form HTTP/1.1\r\nHost: www.example.com\r\n\
      Content-Length: 11\r\n\r\nhello=world GET / HTTP/1.0\r\n\r\n",
    b"CONNECT www.example.com:443 HTTP/1.1\r\n\r\n\x16\x03\x01\x00\x05hello",
    b"GET http://[2001:db8::1]:8080/x HTTP/1.1\r\nHost: [2001:db8::1]:8080\r\n\
      Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
];

spampot_sdk::export_emulator!(HttpProxy);
