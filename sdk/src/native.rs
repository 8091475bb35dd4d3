//! Drive an emulator as plain Rust, without wasm: what the test harness and
//! the host's native benchmark path use. The calls mirror the WIT `session`
//! resource one for one.

use crate::{Action, Config, ConnInfo, Context, Emulator, Host};

/// One session of an emulator, called directly.
pub struct NativeSession<E: Emulator> {
    emulator: E,
}

impl<E: Emulator> NativeSession<E> {
    /// Start a session, as the WIT constructor does.
    pub fn start(conn: &ConnInfo, config: &Config) -> Self {
        NativeSession {
            emulator: E::start(conn, config),
        }
    }

    /// Call `on_open`; returns the actions it queued.
    pub fn on_open(&mut self, host: &mut dyn Host) -> Vec<Action> {
        let mut cx = Context::new(host);
        self.emulator.on_open(&mut cx);
        cx.into_actions()
    }

    /// Call `on_data`; returns the actions it queued.
    pub fn on_data(&mut self, data: &[u8], host: &mut dyn Host) -> Vec<Action> {
        let mut cx = Context::new(host);
        self.emulator.on_data(data, &mut cx);
        cx.into_actions()
    }

    /// Call `on_timeout`; returns the actions it queued.
    pub fn on_timeout(&mut self, host: &mut dyn Host) -> Vec<Action> {
        let mut cx = Context::new(host);
        self.emulator.on_timeout(&mut cx);
        cx.into_actions()
    }

    /// Call `on_close`.
    pub fn on_close(&mut self, host: &mut dyn Host) {
        let mut cx = Context::new(host);
        self.emulator.on_close(&mut cx);
    }

    /// The emulator itself, for assertions on its state.
    pub fn emulator(&self) -> &E {
        &self.emulator
    }
}
