//! SOCKS 4, 4A and 5 server emulation for spampot plugins, as a library:
//! the wire parsers ([`wire`]) and the per-connection state machine
//! ([`Socks`]). The `socks` plugin exports it as it is; the `mydoom` plugin
//! reuses it for the worm's SOCKS 4 proxy.
//!
//! This crate never calls `export_emulator!`: a crate that does cannot be
//! linked into another plugin (both would define the component's exports).
//! The behaviour and the events are documented in the `socks` plugin crate.
//!
//! The vocabulary every proxy emulator shares — [`Kind`], [`request_event`],
//! [`parse_ports`], [`wire::hex_preview`] — lives here too; the HTTP proxy
//! library uses it, so that all modules classify requests the same way.

pub mod session;
pub mod wire;

pub use session::{DEFAULT_SMTP_PORTS, Options, Socks, ephemeral_port, fnv1a};

use spampot_sdk::Event;

/// The request types of the SpamPots tables: the `kind` of `proxy.request`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A CONNECT to an SMTP port (granted and spliced to the SMTP emulator).
    ConnectSmtp,
    /// A CONNECT to any other destination (refused).
    ConnectOther,
    /// A plain HTTP request (HTTP proxies only).
    Get,
    /// Anything malformed, unsupported or cut short.
    Error,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ConnectSmtp => "connect-smtp",
            Kind::ConnectOther => "connect-other",
            Kind::Get => "get",
            Kind::Error => "error",
        }
    }
}

/// A `proxy.request` event with its four common fields; add extras with the
/// [`Event`] builder methods.
pub fn request_event(module: &str, kind: Kind, target_host: &str, target_port: u16) -> Event {
    Event::new("proxy.request")
        .text("module", module)
        .text("kind", kind.as_str())
        .text("target_host", target_host)
        .int("target_port", i64::from(target_port))
}

/// A comma-separated list of ports (a TOML array arrives flattened this way);
/// entries that are not ports are skipped.
pub fn parse_ports(list: &str) -> Vec<u16> {
    list.split(',')
        .filter_map(|p| p.trim().parse::<u16>().ok())
        .filter(|&p| p != 0)
        .collect()
}
