//! HTTP proxy emulation for spampot plugins, as a library: [`HttpProxy`],
//! parameterised by a [`Flavor`] that gives the persona (the `module`
//! requests are counted under, banner headers, error page style) and the
//! plugin's description. The `http-proxy` plugin exports
//! `HttpProxy<Squid>`; the `sobig` plugin exports it with the persona of
//! Sobig.F's proxy.
//!
//! This crate never calls `export_emulator!`: a crate that does cannot be
//! linked into another plugin (both would define the component's exports).
//! Behaviour, config keys and events are documented in the `http-proxy`
//! plugin crate.

pub mod addr;
pub mod head;
pub mod persona;
pub mod session;
pub mod text;

pub use persona::{Flavor, PageStyle, Persona, Refusal, SQUID_SERVER, Squid};
pub use session::{
    DEFAULT_BODY, DEFAULT_JUDGE_PATHS, HttpProxy, MAX_BODY, MAX_HEAD, MAX_REQUESTS, Settings,
    default_egress,
};
pub use socks_core::Kind;

use spampot_sdk::{Config, ConnInfo, Context, Emulator, PluginInfo};

impl<F: Flavor> Emulator for HttpProxy<F> {
    fn describe() -> PluginInfo {
        F::describe()
    }

    fn start(conn: &ConnInfo, config: &Config) -> Self {
        HttpProxy::new(conn, config)
    }

    fn on_data(&mut self, data: &[u8], cx: &mut Context) {
        self.data(data, cx);
    }

    fn on_timeout(&mut self, cx: &mut Context) {
        self.timeout(cx);
    }

    fn on_close(&mut self, cx: &mut Context) {
        self.closed(cx);
    }
}
