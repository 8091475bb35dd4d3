//! spampot: a low-interaction honeypot that measures how open proxies and
//! open relays are abused to send spam, in the line of CERT.br's SpamPots.
//!
//! The host accepts sockets and moves bytes; every protocol is emulated by a
//! WebAssembly component (a plugin) in its own sandbox, so hostile input is
//! parsed only there. When an abuser asks a proxy plugin to connect to port
//! 25, the host *splices* the stream into the SMTP plugin, which receives the
//! mail itself. Nothing is ever relayed or delivered.
//!
//! # Layout
//!
//! Follow a connection from the socket to a report:
//!
//! - [`server`]: the sensor — its listeners, session caps, run-time control,
//!   graceful shutdown; owns the [`server::Sensor`].
//! - [`listener`]: one port — bind, accept, admit or refuse, enable/disable.
//! - [`session`]: one connection — socket bytes to the plugin, actions back,
//!   idle/total/byte caps, splices.
//! - [`plugin`]: the wasmtime engine and one sandboxed instance per session
//!   (deadlines, memory caps, traps).
//! - [`host_api`]: what a plugin may ask of the host (events, artifacts, logs), metered.
//! - [`store`]: the capture store — the journal acknowledgements wait for,
//!   SQLite (indexed behind it on a thread of its own), content-addressed
//!   bodies, `events.jsonl`.
//! - [`events`]: the event vocabulary's common fields.
//! - [`registry`]: plugins by name, loaded from the plugin directory.
//! - [`native`]: plugins linked in as plain Rust, to measure the sandbox's cost.
//! - [`harness`]: sessions without sockets, for in-process benches and tests.
//! - [`config`]: the TOML config and its defaults.
//! - [`admin`]: status page, dashboard and metrics over HTTP.
//! - [`tls`]: the admin API's key pair, and the fingerprint its clients pin.
//! - [`stats`]: counters since start.
//! - [`ratelimit`]: token buckets for connection rates and bandwidth.
//! - [`ctl`]: the client side of `spampot ctl` and `spampot status`.
//! - [`fleet`]: `spampot fleet`, the health of several sensors at once.
//! - [`collector`]: `spampot collect`, their captures pulled into one store.

pub mod admin;
pub mod collector;
pub mod config;
pub mod ctl;
pub mod events;
pub mod fleet;
pub mod harness;
pub mod host_api;
pub mod listener;
pub mod native;
pub mod plugin;
pub mod ratelimit;
pub mod registry;
pub mod server;
pub mod session;
pub mod stats;
pub mod store;
pub mod tls;

pub use config::Config;
pub use server::Server;
