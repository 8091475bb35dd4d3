//! The spampot Sobig.F plugin: the HTTP proxy that the Sobig.F worm (2003)
//! left listening on TCP 3382 of infected machines, rented out to spammers.
//!
//! It is the `http-proxy` plugin's proxy ([`HttpProxy`] from the
//! [`http_proxy_core`] library) with this persona, [`SobigF`]:
//! - `module` = `sobig` in every `proxy.request`, so the SpamPots tables
//!   count the worm's port apart from the ordinary HTTP proxies;
//! - **no banner**: no `Server` header and no `Proxy-Agent` on CONNECT's
//!   `200` (`HTTP/1.0 200 Connection established` and an empty line, no
//!   more). The worm's proxy was a small component of its own, not a
//!   product with a name; a Squid or WinGate banner on 3382 would be a
//!   fingerprint no infected machine ever showed, while a silent proxy is
//!   what spam tools written for it expected;
//! - **terse pages**: `HTTP/1.0` status lines and one-line HTML error bodies
//!   (`<h1>503 Service Unavailable</h1>`) instead of Squid's templates.
//!
//! Everything else — CONNECT to SMTP ports spliced to the SMTP emulator
//! with pipelined bytes as pending data, other ports `503`, reserved
//! destinations `403`, judge pages for an elite proxy, keep-alive,
//! `Proxy-Authorization` recorded as a `credential` (`protocol` =
//! `http-proxy`), errors — behaves, is configured and is recorded exactly
//! as documented in the `http-proxy` plugin; the config table is
//! `[plugins.sobig]` with the same keys (`judge_paths`, `egress_addr`,
//! `default_body`, `server_header`, `via_name`, `smtp_ports`). Setting
//! `server_header` gives the persona a banner after all.

pub use http_proxy_core::*;

/// A CONNECT to port 25, a judge GET, a POST and a SOCKS request on the
/// wrong port: the corpus the fuzz tests mutate, natively and through the
/// component.
pub const CONVERSATIONS: &[&[u8]] = &[
    b"CONNECT mx.example.com:25 HTTP/1.0\r\n\r\nHELO spam\r\n",
    b"GET http://judge.example.com/azenv.php HTTP/1.1\r\nHost: judge.example.com\r\n\r\n",
    b"POST http://www.example.com/ HTTP/1.0\r\nContent-Length: 3\r\n\r\nabc",
    b"\x04\x01\x00\x19\xc8\xa0\x02\x03\x00",
];

use spampot_sdk::{ConnInfo, PluginInfo, export_emulator};

/// The persona of Sobig.F's proxy.
pub struct SobigF;

impl Flavor for SobigF {
    fn describe() -> PluginInfo {
        PluginInfo::new("sobig", env!("CARGO_PKG_VERSION"))
            .protocols(["http-proxy"])
            .ports(&[3382])
    }

    fn persona(_conn: &ConnInfo) -> Persona {
        Persona {
            module: "sobig",
            server: None,
            hostname: "localhost".into(),
            style: PageStyle::Minimal,
        }
    }
}

/// The `sobig` plugin.
pub type Sobig = HttpProxy<SobigF>;

export_emulator!(Sobig);
