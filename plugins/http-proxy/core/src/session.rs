//! The server side of one HTTP proxy connection: heads read across packets,
//! each request classified, answered and recorded, keep-alive honoured.

use std::marker::PhantomData;
use std::net::IpAddr;

use socks_core::wire::hex_preview;
use socks_core::{DEFAULT_SMTP_PORTS, Kind, ephemeral_port, fnv1a, parse_ports, request_event};
use spampot_sdk::{Config, ConnInfo, Context, Event, Target};

use crate::addr::{is_reserved_host, is_reserved_ip, parse_authority};
use crate::head::{Head, HeadScanner, is_token_byte, parse_head};
use crate::persona::{Flavor, Persona, Refusal, Squid};
use crate::text::{clip, decode_base64, push_decimal};

/// Longest request head read (request line and header fields).
pub const MAX_HEAD: usize = 16 * 1024;
/// Longest request body skipped to keep a connection alive; a longer one
/// is answered and the connection closed.
pub const MAX_BODY: u64 = 1024 * 1024;
/// Requests served on one connection before it is closed.
pub const MAX_REQUESTS: u32 = 100;
/// Longest URL kept in an event.
const MAX_URL_FIELD: usize = 2048;

/// URL substrings that mark a proxy-judge request (config `judge_paths`).
pub const DEFAULT_JUDGE_PATHS: [&str; 5] =
    ["azenv.php", "judge", "prxjdg", "proxyjudge", "env.php"];

/// The page for every other request (config `default_body`): Apache's
/// default page, what a fresh web server answers.
pub const DEFAULT_BODY: &str = "<html><body><h1>It works!</h1></body></html>\n";

/// Request headers a proxy consumes rather than forwards, so a judge never
/// sees them.
const HOP_BY_HOP: [&str; 2] = ["proxy-authorization", "proxy-connection"];

/// What the config sets (see the `http-proxy` crate docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub judge_paths: Vec<String>,
    /// The address a judge sees as `REMOTE_ADDR`: the proxy's own.
    pub egress_addr: String,
    pub default_body: String,
    pub smtp_ports: Vec<u16>,
    /// The judge's `REMOTE_PORT`: the proxy's outgoing ephemeral port.
    pub egress_port: u16,
}

impl Settings {
    pub fn from_config(conn: &ConnInfo, config: &Config) -> Self {
        let judge_paths = match config.get("judge_paths") {
            Some(list) => list
                .split(',')
                .map(|p| p.trim().to_ascii_lowercase())
                .filter(|p| !p.is_empty())
                .collect(),
            None => DEFAULT_JUDGE_PATHS.iter().map(|p| p.to_string()).collect(),
        };
        Settings {
            judge_paths,
            egress_addr: config
                .get("egress_addr")
                .map(str::to_owned)
                .unwrap_or_else(|| default_egress(&conn.local_addr)),
            default_body: config
                .get("default_body")
                .unwrap_or(DEFAULT_BODY)
                .to_owned(),
            smtp_ports: config
                .get("smtp_ports")
                .map(parse_ports)
                .unwrap_or_else(|| DEFAULT_SMTP_PORTS.to_vec()),
            egress_port: ephemeral_port(&conn.session_id),
        }
    }
}

/// The address a judge would see: the sensor's own if it is public;
/// behind NAT (a private or documentation address) a plausible public
/// address derived from it — a Brazilian broadband range, stable per
/// sensor address. Never the client's address: that would make the proxy
/// transparent.
pub fn default_egress(local_addr: &str) -> String {
    match local_addr.parse::<IpAddr>() {
        Ok(ip) if !is_reserved_ip(ip) => match ip {
            IpAddr::V4(v4) => dotted(v4.octets()),
            IpAddr::V6(_) => ip.to_string(),
        },
        _ => {
            const FIRST: [u8; 8] = [177, 179, 186, 187, 189, 191, 200, 201];
            let h = fnv1a(local_addr.as_bytes());
            let b = h.to_be_bytes();
            dotted([FIRST[usize::from(b[0] % 8)], b[1], b[2], 1 + b[3] % 254])
        }
    }
}

/// An IPv4 address in dotted decimal, without `core::fmt` (slow in a
/// component, and this runs for every session).
fn dotted(octets: [u8; 4]) -> String {
    let mut out = String::with_capacity(15);
    for (i, octet) in octets.into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        push_decimal(&mut out, u64::from(octet), 1);
    }
    out
}

/// What the next bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    /// A request body being skipped: bytes left.
    Body(u64),
    /// Closed or spliced.
    Done,
}

/// How the request named its destination.
enum Form {
    Absolute,
    Origin,
}

/// One HTTP proxy connection, with the persona `F` gives.
pub struct HttpProxy<F: Flavor = Squid> {
    persona: Persona,
    settings: Settings,
    local_port: u16,
    buf: Vec<u8>,
    scanner: HeadScanner,
    state: State,
    requests: u32,
    flavor: PhantomData<fn() -> F>,
}

impl<F: Flavor> HttpProxy<F> {
    /// A session: `F`'s persona with the config's overrides.
    pub fn new(conn: &ConnInfo, config: &Config) -> Self {
        let mut persona = F::persona(conn);
        if let Some(server) = config.get("server_header") {
            persona.server = (!server.is_empty()).then(|| server.to_owned());
        }
        if let Some(name) = config.get("via_name").filter(|n| !n.is_empty()) {
            persona.hostname = name.to_owned();
        }
        HttpProxy {
            persona,
            settings: Settings::from_config(conn, config),
            local_port: conn.local_port,
            buf: Vec::new(),
            scanner: HeadScanner::default(),
            state: State::Head,
            requests: 0,
            flavor: PhantomData,
        }
    }

    pub fn persona(&self) -> &Persona {
        &self.persona
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Bytes from the client.
    pub fn data(&mut self, data: &[u8], cx: &mut Context) {
        if self.state == State::Done {
            return;
        }
        self.buf.extend_from_slice(data);
        loop {
            match self.state {
                State::Done => return,
                State::Body(left) => {
                    let n = left.min(self.buf.len() as u64);
                    self.buf.drain(..n as usize);
                    self.state = if n == left {
                        State::Head
                    } else {
                        State::Body(left - n)
                    };
                    if self.state != State::Head {
                        return;
                    }
                }
                State::Head => {
                    if !self.next_request(cx) {
                        return;
                    }
                }
            }
        }
    }

    /// The client was idle: a head cut short is an error; close either way.
    pub fn timeout(&mut self, cx: &mut Context) {
        self.abandoned("idle timeout", cx);
        cx.close();
    }

    /// The connection is gone.
    pub fn closed(&mut self, cx: &mut Context) {
        self.abandoned("truncated", cx);
    }

    fn abandoned(&mut self, why: &str, cx: &mut Context) {
        if self.state == State::Head && !self.buf.is_empty() {
            let event = self
                .request(Kind::Error, "", 0)
                .text("detail", format!("{why} inside the request head"))
                .text("hex_preview", hex_preview(&self.buf));
            cx.emit(event);
        }
        self.state = State::Done;
    }

    fn request(&self, kind: Kind, host: &str, port: u16) -> Event {
        request_event(self.persona.module, kind, host, port)
    }

    /// Answer an error page, record `event`, and hang up.
    fn refuse(&mut self, refusal: Refusal, event: Event, cx: &mut Context) {
        let now = cx.now().as_secs();
        cx.send(self.persona.error_page(refusal, now));
        cx.emit(event.int("status", i64::from(refusal.status().0)));
        cx.close();
        self.state = State::Done;
    }

    /// Read and answer the next request if its head is complete. Returns
    /// whether to go on reading this buffer.
    fn next_request(&mut self, cx: &mut Context) -> bool {
        // Empty lines between requests are ignored (RFC 9112 §2.2).
        let blank = self
            .buf
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        if blank > 0 {
            self.buf.drain(..blank);
            self.scanner.reset();
        }
        let Some(&first) = self.buf.first() else {
            return false;
        };
        if !is_token_byte(first) {
            let line = first_line(&self.buf);
            let event = self
                .request(Kind::Error, "", 0)
                .text("detail", "not an HTTP request")
                .text("hex_preview", hex_preview(&self.buf));
            self.refuse(Refusal::InvalidRequest { line: &line }, event, cx);
            return false;
        }
        let len = match self.scanner.scan(&self.buf) {
            Some(len) if len <= MAX_HEAD => len,
            None if self.buf.len() <= MAX_HEAD => return false,
            _ => {
                let event = self
                    .request(Kind::Error, "", 0)
                    .text(
                        "detail",
                        format!("request head larger than {MAX_HEAD} bytes"),
                    )
                    .text("hex_preview", hex_preview(&self.buf));
                self.refuse(Refusal::TooBig, event, cx);
                return false;
            }
        };
        let rest = self.buf.split_off(len);
        let head_bytes = std::mem::replace(&mut self.buf, rest);
        let head = match parse_head(&head_bytes) {
            Ok(head) => head,
            Err(e) => {
                let line = first_line(&head_bytes);
                let event = self
                    .request(Kind::Error, "", 0)
                    .text("detail", e.to_string())
                    .text("url", clip(&line, MAX_URL_FIELD))
                    .text("hex_preview", hex_preview(&head_bytes));
                self.refuse(Refusal::InvalidRequest { line: &line }, event, cx);
                return false;
            }
        };
        self.requests += 1;
        self.credentials(&head, cx);
        if head.method.eq_ignore_ascii_case("CONNECT") {
            self.connect(&head, cx);
            false
        } else {
            self.get(&head, cx)
        }
    }

    /// The common extras of a request's event.
    fn annotate(&self, event: Event, head: &Head) -> Event {
        let event = event
            .text("method", head.method.clone())
            .text("url", clip(&head.target, MAX_URL_FIELD))
            .text("version", head.version.clone());
        match head.header("user-agent") {
            Some(ua) => event.text("user_agent", clip(ua, 512)),
            None => event,
        }
    }

    fn connect(&mut self, head: &Head, cx: &mut Context) {
        let Some((host, port)) = parse_authority(&head.target) else {
            let event = self
                .annotate(self.request(Kind::Error, "", 0), head)
                .text("detail", "invalid CONNECT authority");
            self.refuse(Refusal::InvalidUrl { url: &head.target }, event, cx);
            return;
        };
        let port = port.unwrap_or(443);
        let smtp = self.settings.smtp_ports.contains(&port);
        if is_reserved_host(&host) {
            // Squid's default rules deny connections to the proxy's own and
            // private networks (`to_localhost`, `localnet`), SMTP or not.
            let event = self
                .annotate(self.request(Kind::ConnectOther, &host, port), head)
                .text("detail", "reserved destination address");
            self.refuse(Refusal::AccessDenied { url: &head.target }, event, cx);
        } else if smtp {
            cx.send(self.persona.connect_established());
            let event = self.annotate(self.request(Kind::ConnectSmtp, &host, port), head);
            cx.emit(event.int("status", 200));
            self.state = State::Done;
            let pending = std::mem::take(&mut self.buf);
            cx.splice(Target::new(host, port), pending);
        } else {
            let event = self.annotate(self.request(Kind::ConnectOther, &host, port), head);
            let refusal = Refusal::ConnectFail {
                url: &head.target,
                host: &host,
            };
            self.refuse(refusal, event, cx);
        }
    }

    /// Any other method. Returns whether the connection stays open.
    fn get(&mut self, head: &Head, cx: &mut Context) -> bool {
        let (form, host, port, path) = match split_url(&head.target) {
            Some(Ok((host, port, path))) => (Form::Absolute, host, port, path),
            Some(Err(())) => return self.invalid_url(head, cx),
            None if head.target.starts_with('/') || head.target == "*" => {
                // Someone taking the proxy for a web server.
                let host = head
                    .header("host")
                    .and_then(parse_authority)
                    .map(|(h, _)| h)
                    .unwrap_or_default();
                (Form::Origin, host, self.local_port, head.target.clone())
            }
            None => return self.invalid_url(head, cx),
        };
        let event = self
            .annotate(self.request(Kind::Get, &host, port), head)
            .text(
                "form",
                match form {
                    Form::Absolute => "absolute",
                    Form::Origin => "origin",
                },
            );
        let body_len = match body_length(head) {
            Ok(len) => len,
            Err(detail) => {
                let event = self
                    .annotate(self.request(Kind::Error, &host, port), head)
                    .text("detail", detail);
                let line = format!("{} {} {}", head.method, head.target, head.version);
                self.refuse(Refusal::InvalidRequest { line: &line }, event, cx);
                return false;
            }
        };
        if matches!(form, Form::Absolute) && is_reserved_host(&host) {
            let event = event
                .flag("judge", false)
                .text("detail", "reserved destination address");
            self.refuse(Refusal::AccessDenied { url: &head.target }, event, cx);
            return false;
        }
        let path_lower = path.to_ascii_lowercase();
        let judge = self
            .settings
            .judge_paths
            .iter()
            .any(|p| path_lower.contains(p.as_str()));
        let keep_alive = head.keep_alive()
            && self.requests < MAX_REQUESTS
            && body_len.is_some_and(|n| n <= MAX_BODY);
        // One clock read per request: each is a host call from the sandbox.
        let now = cx.now();
        let page = if judge {
            self.judge_page(head, &path, now)
        } else {
            self.settings.default_body.clone()
        };
        let head_only = head.method.eq_ignore_ascii_case("HEAD");
        cx.send(
            self.persona
                .origin_page(&page, keep_alive, head_only, now.as_secs()),
        );
        cx.emit(event.flag("judge", judge).int("status", 200));
        if !keep_alive {
            cx.close();
            self.state = State::Done;
            return false;
        }
        if let Some(n) = body_len.filter(|&n| n > 0) {
            self.state = State::Body(n);
        }
        true
    }

    fn invalid_url(&mut self, head: &Head, cx: &mut Context) -> bool {
        let event = self
            .annotate(self.request(Kind::Error, "", 0), head)
            .text("detail", "invalid URL");
        self.refuse(Refusal::InvalidUrl { url: &head.target }, event, cx);
        false
    }

    /// An azenv-style page, as a judge behind an elite proxy prints it: the
    /// headers the proxy forwarded, the proxy's address as the client's.
    fn judge_page(&self, head: &Head, path: &str, now: std::time::Duration) -> String {
        let mut vars: Vec<(String, String)> = Vec::new();
        for (name, value) in &head.headers {
            if HOP_BY_HOP.iter().any(|h| name.eq_ignore_ascii_case(h)) {
                continue;
            }
            let mut key = String::with_capacity(5 + name.len());
            key.push_str("HTTP_");
            key.extend(name.chars().map(|c| match c {
                '-' => '_',
                c => c.to_ascii_uppercase(),
            }));
            match vars.iter_mut().find(|(k, _)| *k == key) {
                Some((_, v)) => {
                    v.push_str(", ");
                    v.push_str(value);
                }
                None => vars.push((key, value.clone())),
            }
        }
        let mut page = String::with_capacity(512);
        page.push_str(
            "<html>\n<head>\n<title>AZ Environment variables 1.04</title>\n</head>\n<body>\n<pre>\n",
        );
        // Piece by piece, not a `format!` per line: `core::fmt` was ~19% of
        // this plugin's time per judge session in a running sensor.
        fn var(page: &mut String, name: &str, value: &str) {
            page.push_str(name);
            page.push_str(" = ");
            page.push_str(value);
            page.push('\n');
        }
        for (k, v) in &vars {
            var(&mut page, k, v);
        }
        var(&mut page, "REMOTE_ADDR", &self.settings.egress_addr);
        let secs = now.as_secs();
        page.push_str("REMOTE_PORT = ");
        push_decimal(&mut page, u64::from(self.settings.egress_port), 1);
        page.push('\n');
        var(&mut page, "REQUEST_METHOD", &head.method);
        var(&mut page, "REQUEST_URI", path);
        page.push_str("REQUEST_TIME_FLOAT = ");
        push_decimal(&mut page, secs, 1);
        page.push('.');
        push_decimal(&mut page, u64::from(now.subsec_micros() / 100), 4);
        page.push_str("\nREQUEST_TIME = ");
        push_decimal(&mut page, secs, 1);
        page.push_str("\n</pre>\n</body>\n</html>\n");
        page
    }

    /// `Proxy-Authorization` is recorded whatever it holds; the proxy
    /// accepts every request regardless.
    fn credentials(&self, head: &Head, cx: &mut Context) {
        let Some(value) = head.header("proxy-authorization") else {
            return;
        };
        let (scheme, token) = value.split_once(' ').unwrap_or((value, ""));
        let token = token.trim();
        let basic = scheme.eq_ignore_ascii_case("basic");
        let decoded = basic.then(|| decode_base64(token)).flatten();
        let (mechanism, username, password, ok) = match decoded {
            Some(bytes) => {
                let text = String::from_utf8_lossy(&bytes).into_owned();
                let (user, pass) = text.split_once(':').unwrap_or((&text, ""));
                ("Basic".to_owned(), user.to_owned(), pass.to_owned(), true)
            }
            // Not base64, or another scheme: keep the raw credentials.
            None => {
                let mechanism = if basic {
                    "Basic".to_owned()
                } else {
                    clip(scheme, 32)
                };
                (mechanism, clip(token, 512), String::new(), false)
            }
        };
        cx.emit(
            Event::new("credential")
                .text("protocol", "http-proxy")
                .text("mechanism", mechanism)
                .text("username", username)
                .text("password", password)
                .flag("decoded", ok),
        );
    }
}

/// The first line of `bytes` (at most 256 bytes of it), lossily decoded.
fn first_line(bytes: &[u8]) -> String {
    let end = bytes
        .iter()
        .position(|&b| b == b'\n')
        .unwrap_or(bytes.len())
        .min(256);
    let line = &bytes[..end];
    String::from_utf8_lossy(line.strip_suffix(b"\r").unwrap_or(line)).into_owned()
}

/// An absolute URL's host, port and path (with query). `None` if `target`
/// is not absolute; `Err` if it is, but its authority is malformed.
#[allow(clippy::type_complexity)]
fn split_url(target: &str) -> Option<Result<(String, u16, String), ()>> {
    let (scheme, rest) = target.split_once("://")?;
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
    {
        return None;
    }
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => 443,
        "ftp" => 21,
        _ => 80,
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    // User information is not part of the destination.
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let path = match path.split('#').next() {
        Some(p) if p.starts_with('/') => p.to_owned(),
        Some(p) => format!("/{p}"),
        None => "/".to_owned(),
    };
    Some(match parse_authority(authority) {
        Some((host, port)) => Ok((host, port.unwrap_or(default_port), path)),
        None => Err(()),
    })
}

/// The declared body length: `Ok(Some(n))` for `Content-Length`,
/// `Ok(None)` for a body delimited otherwise (`Transfer-Encoding`), which
/// this proxy does not parse and so closes after; `Err` for a malformed or
/// conflicting length.
fn body_length(head: &Head) -> Result<Option<u64>, &'static str> {
    if head.header("transfer-encoding").is_some() {
        return Ok(None);
    }
    let mut length = None;
    for value in head.header_all("content-length") {
        for part in value.split(',') {
            let part = part.trim();
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err("invalid Content-Length");
            }
            let n: u64 = part.parse().map_err(|_| "invalid Content-Length")?;
            if length.is_some_and(|l| l != n) {
                return Err("conflicting Content-Length");
            }
            length = Some(n);
        }
    }
    Ok(Some(length.unwrap_or(0)))
}
