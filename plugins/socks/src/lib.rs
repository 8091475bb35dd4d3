//! The spampot SOCKS plugin: an open SOCKS 4, 4A and 5 proxy that grants
//! CONNECTs to SMTP ports and hands the stream to the SMTP emulator. It
//! connects nowhere.
//!
//! # Behaviour
//! The first byte picks the version: `04` is SOCKS 4/4A, `05` SOCKS 5;
//! anything else is recorded as an error (with a hex preview) and the
//! connection is closed without a reply. Every message may arrive split at
//! any byte; nothing is answered until it is complete.
//!
//! - **SOCKS 4/4A** (`04 CD DSTPORT DSTIP USERID 00`, and for 4A, where
//!   `DSTIP` is `0.0.0.x` with `x` ≠ 0, a host name and `00`). User id and
//!   host name may be at most 255 bytes: longer is an error, closed without
//!   a reply. A CONNECT to an SMTP port is answered `00 5A DSTPORT DSTIP`
//!   (the request's port and address echoed; for 4A the `0.0.0.x` marker)
//!   and spliced to `DSTIP:DSTPORT` or the 4A host name. A CONNECT to any
//!   other port, BIND, or an unknown command is answered
//!   `00 5B DSTPORT DSTIP` and closed.
//! - **SOCKS 5** (RFC 1928). Method `02` (username/password, RFC 1929:
//!   every credential is recorded and accepted with `01 00`) is chosen
//!   whenever offered — clients offer it beside `00`, and only then send the
//!   credentials they hold — else `00` (no authentication), else `05 FF`
//!   and close. Requests
//!   may name an IPv4 address, a domain or an IPv6 address. A CONNECT to an
//!   SMTP port is answered `05 00 00 01 BND.ADDR BND.PORT` and spliced.
//!   `BND` is what a real server reports, the address and port of its
//!   outgoing socket: the sensor's own IPv4 address (`conn.local_addr`, or
//!   `bound_addr`; `0.0.0.0` when neither is IPv4) and an ephemeral port in
//!   32768–60999 chosen by a hash of the session id. A CONNECT elsewhere is
//!   refused with `REP 02` (connection not allowed by ruleset: a proxy that
//!   only allows some ports, rather than `05`, which would claim we tried
//!   the destination); BIND, UDP ASSOCIATE and unknown commands with
//!   `REP 07`; an unknown address type with `REP 08`. Failure replies carry
//!   `BND` `0.0.0.0:0`. Then the connection is closed.
//! - Greeting, authentication and request may be pipelined in one packet;
//!   bytes after a granted CONNECT (a client that does not wait for the
//!   reply) are passed to the SMTP emulator as the splice's pending bytes.
//! - Destination addresses are not filtered: a SOCKS daemon grants what its
//!   rules allow, and these rules allow every SMTP destination (unlike the
//!   HTTP proxy's Squid persona, which refuses private addresses as Squid's
//!   default `to_localhost` rule does).
//!
//! # Config (`[plugins.socks]`)
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `smtp_ports` | `25,587` | CONNECTs to these ports are granted and spliced (a TOML array or comma-separated) |
//! | `bound_addr` | the sensor's address | IPv4 `BND.ADDR` of a granted SOCKS 5 CONNECT (set it to the public address behind NAT) |
//!
//! # Events
//! - `proxy.request`, one per request: `module` (`socks4` for 4 and 4A,
//!   `socks5` for 5 and for unrecognised first bytes), `kind`
//!   (`connect-smtp`, `connect-other` or `error`), `target_host` (dotted
//!   IPv4, domain, or IPv6 without brackets; `""` if none), `target_port`
//!   (0 if none). Extras: `version` (int), `command` (`connect`, `bind`,
//!   `udp-associate` or hex); SOCKS 4: `socks4a` (flag), `userid`;
//!   SOCKS 5: `auth` (`none` or `username-password`), `username` (if
//!   authenticated), `atyp` (`ipv4`, `domain`, `ipv6`). Errors add
//!   `detail`, and when the request was cut short or not SOCKS at all,
//!   `stage` and `hex_preview` (first 16 bytes received). BIND and UDP
//!   ASSOCIATE are errors (`detail`: unsupported command). A client that
//!   closes or idles mid-request yields an error at close or timeout.
//! - `credential`: `protocol` = `socks5`, `mechanism` = `username-password`,
//!   `username`, `password`.

pub use socks_core::*;

/// SOCKS 4, 4a and 5 (with and without a password) to port 25, then SMTP,
/// and requests it refuses: the corpus the fuzz tests mutate, natively and
/// through the component.
pub const CONVERSATIONS: &[&[u8]] = &[
    b"\x04\x01\x00\x19\xc0\x00\x02\x19spammer\x00HELO x\r\n",
    b"\x04\x01\x00\x19\x00\x00\x00\x01\x00mx.example.com\x00EHLO x\r\n",
    b"\x05\x01\x00\x05\x01\x00\x03\x0emx.example.com\x00\x19EHLO x\r\n",
    b"\x05\x02\x00\x02\x01\x04user\x04pass\x05\x01\x00\x01\xc0\x00\x02\x19\x00\x19HELO x\r\n",
    b"\x05\x01\x02\x01\x04user\x04pass\x05\x01\x00\x04\x20\x01\x0d\xb8\x00\x00\x00\x00\
      \x00\x00\x00\x00\x00\x00\x00\x01\x00\x19MAIL FROM:<a@b>\r\n",
    b"\x05\x01\x00\x05\x03\x00\x01\x00\x00\x00\x00\x00\x00",
    b"\x04\x02\x00\x15\xc0\x00\x02\x01\x00",
];

use spampot_sdk::{Config, ConnInfo, Context, Emulator, PluginInfo, export_emulator};

/// The `socks` plugin: [`socks_core::Socks`] with its own defaults.
pub struct SocksProxy(Socks);

impl SocksProxy {
    /// The session underneath.
    pub fn session(&self) -> &Socks {
        &self.0
    }
}

impl Emulator for SocksProxy {
    fn describe() -> PluginInfo {
        PluginInfo::new("socks", env!("CARGO_PKG_VERSION"))
            .protocols(["socks4", "socks5"])
            .ports(&[1080])
    }

    fn start(conn: &ConnInfo, config: &Config) -> Self {
        SocksProxy(Socks::new(Options::from_config(conn, config)))
    }

    fn on_data(&mut self, data: &[u8], cx: &mut Context) {
        self.0.data(data, cx);
    }

    fn on_timeout(&mut self, cx: &mut Context) {
        self.0.timeout(cx);
    }

    fn on_close(&mut self, cx: &mut Context) {
        self.0.closed(cx);
    }
}

export_emulator!(SocksProxy);
