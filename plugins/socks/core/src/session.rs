//! The server side of one SOCKS connection: version dispatch, the SOCKS 5
//! method and RFC 1929 sub-negotiations, and the decision on each request.

use spampot_sdk::{Config, ConnInfo, Context, Event, Target};

use crate::wire::{
    self, CMD_CONNECT, METHOD_NONE, METHOD_UNACCEPTABLE, METHOD_USERPASS, Malformed, Parse,
    REP_ADDRESS_NOT_SUPPORTED, REP_COMMAND_NOT_SUPPORTED, REP_NOT_ALLOWED, REP_SUCCEEDED, Request4,
    Request5, V4_GRANTED, V4_REJECTED,
};
use crate::{Kind, parse_ports, request_event};

/// Ports whose CONNECT is granted and spliced, unless configured otherwise.
pub const DEFAULT_SMTP_PORTS: [u16; 2] = [25, 587];

/// How a [`Socks`] session behaves; [`Options::from_config`] gives the
/// `socks` plugin's defaults, which other plugins (MyDoom) adjust.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The `module` of every `proxy.request`; `None`: `socks4` for version 4
    /// and 4A, `socks5` for version 5 and for bytes that are neither.
    pub module: Option<&'static str>,
    /// Whether to speak SOCKS 5; when off, a first byte `05` is garbage.
    pub socks5: bool,
    /// The `VN` byte of SOCKS 4 replies: 0 by the protocol.
    pub reply_version4: u8,
    /// CONNECT to these ports is granted and spliced; to any other, refused.
    pub smtp_ports: Vec<u16>,
    /// `BND.ADDR` and `BND.PORT` of a granted SOCKS 5 CONNECT.
    pub bound_addr: [u8; 4],
    pub bound_port: u16,
}

impl Options {
    /// The `socks` plugin's behaviour for this connection and config (keys
    /// `smtp_ports` and `bound_addr`, see the crate docs).
    pub fn from_config(conn: &ConnInfo, config: &Config) -> Self {
        let smtp_ports = config
            .get("smtp_ports")
            .map(parse_ports)
            .unwrap_or_else(|| DEFAULT_SMTP_PORTS.to_vec());
        // A real server reports the address and ephemeral port of its
        // outgoing socket: the sensor's own address and a port in Linux's
        // default ephemeral range, stable for the session.
        let bound_addr = config
            .get("bound_addr")
            .or(Some(conn.local_addr.as_str()))
            .and_then(|a| a.parse::<std::net::Ipv4Addr>().ok())
            .map(|a| a.octets())
            .unwrap_or([0; 4]);
        let bound_port = ephemeral_port(&conn.session_id);
        Options {
            module: None,
            socks5: true,
            reply_version4: 0,
            smtp_ports,
            bound_addr,
            bound_port,
        }
    }
}

/// FNV-1a, for choices that must be stable per session or per sensor.
pub fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |h, &b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// A port in Linux's default ephemeral range (32768–60999), stable for `seed`:
/// what a proxy's outgoing socket would be bound to.
pub fn ephemeral_port(seed: &str) -> u16 {
    32768 + (fnv1a(seed.as_bytes()) % 28232) as u16
}

/// What the next bytes from the client should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// The first byte picks the version.
    Start,
    V4Request,
    V5Greeting,
    V5Auth,
    V5Request,
    /// Answered, closed or spliced: nothing more is read or recorded.
    Done,
}

impl Stage {
    fn name(self) -> &'static str {
        match self {
            Stage::Start | Stage::V4Request | Stage::V5Request | Stage::Done => "request",
            Stage::V5Greeting => "greeting",
            Stage::V5Auth => "auth",
        }
    }
}

/// One SOCKS connection. Bytes are buffered until the message the stage
/// expects is complete; every message is bounded (SOCKS 4 fields by
/// [`wire::MAX_FIELD`], SOCKS 5 by its length bytes), so the buffer is too.
pub struct Socks {
    opts: Options,
    stage: Stage,
    buf: Vec<u8>,
    /// The SOCKS 5 method chosen, for events.
    auth: &'static str,
    username: Option<String>,
}

impl Socks {
    pub fn new(opts: Options) -> Self {
        Socks {
            opts,
            stage: Stage::Start,
            buf: Vec::new(),
            auth: "none",
            username: None,
        }
    }

    /// The options this session runs with.
    pub fn options(&self) -> &Options {
        &self.opts
    }

    /// Bytes from the client.
    pub fn data(&mut self, data: &[u8], cx: &mut Context) {
        if self.stage == Stage::Done {
            return;
        }
        self.buf.extend_from_slice(data);
        while self.stage != Stage::Done && !self.buf.is_empty() {
            let progressed = match self.stage {
                Stage::Start => self.dispatch(cx),
                Stage::V4Request => self.v4_request(cx),
                Stage::V5Greeting => self.v5_greeting(cx),
                Stage::V5Auth => self.v5_auth(cx),
                Stage::V5Request => self.v5_request(cx),
                Stage::Done => false,
            };
            if !progressed {
                break;
            }
        }
    }

    /// The client was idle in the middle of a request: record it and hang up.
    pub fn timeout(&mut self, cx: &mut Context) {
        self.abandoned("idle timeout", cx);
        cx.close();
    }

    /// The connection is gone: a request cut short is an error.
    pub fn closed(&mut self, cx: &mut Context) {
        self.abandoned("truncated", cx);
    }

    fn abandoned(&mut self, why: &str, cx: &mut Context) {
        let started = self.stage != Stage::Start || !self.buf.is_empty();
        if self.stage == Stage::Done || !started {
            return;
        }
        let version = match self.stage {
            Stage::V4Request => Some(4),
            Stage::Start => None,
            _ => Some(5),
        };
        let detail = format!("{why} during {}", self.stage.name());
        let event = self
            .error(version, &detail)
            .text("stage", self.stage.name())
            .text("hex_preview", wire::hex_preview(&self.buf));
        cx.emit(event);
        self.stage = Stage::Done;
    }

    fn module(&self, version: Option<u8>) -> &'static str {
        match (self.opts.module, version) {
            (Some(m), _) => m,
            (None, Some(4)) => "socks4",
            (None, _) => "socks5",
        }
    }

    /// A `proxy.request` of kind `error` with its detail.
    fn error(&self, version: Option<u8>, detail: &str) -> Event {
        request_event(self.module(version), Kind::Error, "", 0).text("detail", detail)
    }

    /// Record, stop reading, and hang up.
    fn fail(&mut self, event: Event, cx: &mut Context) -> bool {
        cx.emit(event);
        cx.close();
        self.stage = Stage::Done;
        self.buf.clear();
        false
    }

    fn dispatch(&mut self, cx: &mut Context) -> bool {
        match self.buf[0] {
            4 => self.stage = Stage::V4Request,
            5 if self.opts.socks5 => self.stage = Stage::V5Greeting,
            v => {
                let event = self
                    .error(None, &Malformed::Version(v).to_string())
                    .text("hex_preview", wire::hex_preview(&self.buf));
                return self.fail(event, cx);
            }
        }
        true
    }

    fn v4_request(&mut self, cx: &mut Context) -> bool {
        let (req, len) = match wire::parse_request4(&self.buf) {
            Parse::Incomplete => return false,
            Parse::Invalid(m) => {
                let event = self.error(Some(4), &m.to_string());
                return self.fail(event, cx);
            }
            Parse::Done(req, len) => (req, len),
        };
        let rest = self.buf.split_off(len);
        self.buf.clear();
        let event = self.v4_event(&req);
        let vn = self.opts.reply_version4;
        if req.command == CMD_CONNECT && self.opts.smtp_ports.contains(&req.port) {
            cx.send(wire::reply4(vn, V4_GRANTED, req.port, req.ip));
            cx.emit(event);
            self.stage = Stage::Done;
            cx.splice(Target::new(req.host(), req.port), rest);
            return false;
        }
        cx.send(wire::reply4(vn, V4_REJECTED, req.port, req.ip));
        self.fail(event, cx)
    }

    fn v4_event(&self, req: &Request4) -> Event {
        let host = req.host();
        let event = match req.command {
            CMD_CONNECT => {
                let kind = if self.opts.smtp_ports.contains(&req.port) {
                    Kind::ConnectSmtp
                } else {
                    Kind::ConnectOther
                };
                request_event(self.module(Some(4)), kind, &host, req.port)
            }
            other => request_event(self.module(Some(4)), Kind::Error, &host, req.port).text(
                "detail",
                format!("unsupported command {}", wire::command_name(other)),
            ),
        };
        event
            .int("version", 4)
            .text("command", wire::command_name(req.command))
            .flag("socks4a", req.is_4a())
            .text("userid", String::from_utf8_lossy(&req.userid))
    }

    fn v5_greeting(&mut self, cx: &mut Context) -> bool {
        let (greeting, len) = match wire::parse_greeting5(&self.buf) {
            Parse::Incomplete => return false,
            Parse::Invalid(m) => {
                let event = self.error(Some(5), &m.to_string());
                return self.fail(event, cx);
            }
            Parse::Done(g, len) => (g, len),
        };
        self.buf.drain(..len);
        let method = greeting.choose();
        cx.send([5, method]);
        match method {
            METHOD_NONE => self.stage = Stage::V5Request,
            METHOD_USERPASS => {
                self.auth = "username-password";
                self.stage = Stage::V5Auth;
            }
            _ => {
                debug_assert_eq!(method, METHOD_UNACCEPTABLE);
                let event = self
                    .error(Some(5), "no acceptable authentication method")
                    .int("version", 5)
                    .text("stage", "greeting")
                    .text("methods", wire::hex_preview(&greeting.methods));
                return self.fail(event, cx);
            }
        }
        true
    }

    fn v5_auth(&mut self, cx: &mut Context) -> bool {
        let (creds, len) = match wire::parse_userpass(&self.buf) {
            Parse::Incomplete => return false,
            Parse::Invalid(m) => {
                let event = self.error(Some(5), &m.to_string()).text("stage", "auth");
                return self.fail(event, cx);
            }
            Parse::Done(c, len) => (c, len),
        };
        self.buf.drain(..len);
        let username = String::from_utf8_lossy(&creds.username).into_owned();
        cx.emit(
            Event::new("credential")
                .text("protocol", "socks5")
                .text("mechanism", "username-password")
                .text("username", username.clone())
                .text("password", String::from_utf8_lossy(&creds.password)),
        );
        self.username = Some(username);
        // Every credential is good: RFC 1929 status 0 is success.
        cx.send([1, 0]);
        self.stage = Stage::V5Request;
        true
    }

    fn v5_request(&mut self, cx: &mut Context) -> bool {
        let (req, len) = match wire::parse_request5(&self.buf) {
            Parse::Incomplete => return false,
            Parse::Invalid(m) => {
                if let Malformed::AddressType(_) = m {
                    cx.send(wire::reply5(REP_ADDRESS_NOT_SUPPORTED, [0; 4], 0));
                }
                let event = self.v5_fields(self.error(Some(5), &m.to_string()));
                return self.fail(event, cx);
            }
            Parse::Done(req, len) => (req, len),
        };
        let rest = self.buf.split_off(len);
        self.buf.clear();
        let host = req.addr.host();
        let module = self.module(Some(5));
        match req.command {
            CMD_CONNECT if self.opts.smtp_ports.contains(&req.port) => {
                let event = request_event(module, Kind::ConnectSmtp, &host, req.port);
                cx.emit(self.v5_request_fields(event, &req));
                let (addr, port) = (self.opts.bound_addr, self.opts.bound_port);
                cx.send(wire::reply5(REP_SUCCEEDED, addr, port));
                self.stage = Stage::Done;
                cx.splice(Target::new(host, req.port), rest);
                false
            }
            CMD_CONNECT => {
                let event = request_event(module, Kind::ConnectOther, &host, req.port);
                let event = self.v5_request_fields(event, &req);
                cx.send(wire::reply5(REP_NOT_ALLOWED, [0; 4], 0));
                self.fail(event, cx)
            }
            other => {
                let event = request_event(module, Kind::Error, &host, req.port).text(
                    "detail",
                    format!("unsupported command {}", wire::command_name(other)),
                );
                let event = self.v5_request_fields(event, &req);
                cx.send(wire::reply5(REP_COMMAND_NOT_SUPPORTED, [0; 4], 0));
                self.fail(event, cx)
            }
        }
    }

    fn v5_fields(&self, event: Event) -> Event {
        let event = event.int("version", 5).text("auth", self.auth);
        match &self.username {
            Some(user) => event.text("username", user.clone()),
            None => event,
        }
    }

    fn v5_request_fields(&self, event: Event, req: &Request5) -> Event {
        self.v5_fields(event)
            .text("command", wire::command_name(req.command))
            .text("atyp", req.addr.type_name())
    }
}
