//! `spampot-sdk`: everything a researcher needs to write a spampot protocol
//! emulator, and the only crate a plugin imports.
//!
//! A plugin is a type that implements [`Emulator`]. The host owns the socket:
//! it calls [`Emulator::on_data`] with whatever bytes arrived, and the plugin
//! answers through its [`Context`] — bytes to send, close, splice the stream
//! to another emulator, tarpit — and records events and artifacts. One value
//! of the type lives for one connection.
//!
//! ```
//! use spampot_sdk::{Config, ConnInfo, Context, Emulator, Event, PluginInfo};
//!
//! /// Answers every line with an error, like a confused daemon.
//! pub struct Grumpy;
//!
//! impl Emulator for Grumpy {
//!     fn describe() -> PluginInfo {
//!         PluginInfo::new("grumpy", "0.1.0").protocols(["tcp"]).ports(&[4444])
//!     }
//!     fn start(_conn: &ConnInfo, _config: &Config) -> Self {
//!         Grumpy
//!     }
//!     fn on_data(&mut self, data: &[u8], cx: &mut Context) {
//!         cx.emit(Event::new("grumpy.input").int("bytes", data.len() as i64));
//!         cx.send(b"ERR go away\r\n");
//!     }
//! }
//!
//! spampot_sdk::export_emulator!(Grumpy);
//!
//! # fn main() {
//! let mut h = spampot_sdk::testing::Harness::<Grumpy>::new(ConnInfo::test(4444));
//! h.feed(b"hello\n");
//! assert_eq!(h.sent(), b"ERR go away\r\n");
//! # }
//! ```
//!
//! Build for the host with `cargo build --target wasm32-wasip2` and a
//! `cdylib` crate type: the output `.wasm` is the component the host loads.
//!
//! # Layout
//! - [`types`]: plain Rust mirrors of the WIT types (`Action`, `Event`, ...).
//! - [`context`]: [`Context`], through which a plugin acts, and the [`Host`]
//!   services behind it.
//! - [`buffer`]: line splitting with bounded memory.
//! - [`native`]: drives an emulator without wasm (tests, benchmarks).
//! - [`testing`]: a scripted harness and an in-memory recorder for tests.
//! - [`text`]: decoding helpers (base64).

#![warn(missing_docs)]

pub mod buffer;
pub mod context;
pub mod native;
pub mod testing;
pub mod text;
pub mod types;

#[cfg(all(target_arch = "wasm32", feature = "arena"))]
mod arena;
#[cfg(target_arch = "wasm32")]
#[doc(hidden)]
pub mod guest;

#[cfg(all(target_arch = "wasm32", feature = "arena"))]
#[global_allocator]
static ALLOCATOR: arena::Arena = arena::Arena::new();

pub use buffer::{LineBuffer, LineTooLong};
pub use context::{Context, Host};
pub use types::{
    Action, Artifact, ArtifactKind, Config, ConnInfo, Event, FieldValue, PluginInfo, SpliceRequest,
    StoreError, Target,
};

/// A protocol emulator. One value lives for one connection (or one leg of
/// it, after a splice); the host calls the methods in order and never
/// concurrently.
///
/// Callbacks should return promptly: the host bounds each call with a
/// deadline and ends the session if it passes.
pub trait Emulator: Sized + 'static {
    /// Name, version, protocols and usual ports of this emulator.
    fn describe() -> PluginInfo;

    /// A new connection. `config` is the plugin's table from the sensor config.
    fn start(conn: &ConnInfo, config: &Config) -> Self;

    /// The connection is open: send a banner here if the protocol speaks first.
    fn on_open(&mut self, cx: &mut Context) {
        let _ = cx;
    }

    /// Bytes from the client, split wherever the network split them.
    fn on_data(&mut self, data: &[u8], cx: &mut Context);

    /// The client was idle for the configured time. The default closes the
    /// connection; protocols with an idle reply (SMTP's 421) send it first.
    fn on_timeout(&mut self, cx: &mut Context) {
        cx.close();
    }

    /// The connection is gone. Actions queued here are ignored; events and
    /// artifacts are still recorded.
    fn on_close(&mut self, cx: &mut Context) {
        let _ = cx;
    }
}

/// Export an [`Emulator`] as the plugin's component. Call it once, at the
/// crate root of the plugin. On non-wasm targets it expands to nothing, so
/// the same crate also builds as a native library for tests.
#[macro_export]
macro_rules! export_emulator {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type __SpampotComponent = $crate::guest::Component<$ty>;
    $crate::__export_plugin_impl!(__SpampotComponent with_types_in $crate::guest::bindings);
        };
    };
}
