//! The context a plugin acts through: actions for the client, and the host's
//! services (events, durable artifacts, logs).

use crate::types::{Action, Artifact, Event, SpliceRequest, StoreError, Target};

/// The host's services. On `wasm32` they are the WIT imports; natively, a
/// [`Recorder`](crate::testing::Recorder) or whatever the embedder provides.
pub trait Host {
    /// Record an event.
    fn emit(&mut self, event: Event);
    /// Persist an artifact; `Ok` carries its SHA-256 and means it is durable.
    fn store_artifact(&mut self, artifact: Artifact) -> Result<String, StoreError>;
    /// A diagnostic line for the operator's log.
    fn log(&mut self, message: &str);
    /// The wall clock, since the Unix epoch. On `wasm32` the host's clock;
    /// natively (tests, the native bench) the system's.
    fn now(&mut self) -> std::time::Duration {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
    }
}

/// Passed to every [`Emulator`](crate::Emulator) callback. Actions queue up
/// in order and go to the host when the callback returns.
pub struct Context<'h> {
    actions: Vec<Action>,
    host: &'h mut dyn Host,
}

impl<'h> Context<'h> {
    /// A context over `host` with no actions queued.
    pub fn new(host: &'h mut dyn Host) -> Self {
        Context {
            actions: Vec::new(),
            host,
        }
    }

    /// Write bytes to the client. Consecutive sends are merged into one
    /// write, so a plugin can answer a pipelined batch line by line cheaply.
    pub fn send(&mut self, bytes: impl AsRef<[u8]>) {
        let bytes = bytes.as_ref();
        if bytes.is_empty() {
            return;
        }
        if let Some(Action::Send(last)) = self.actions.last_mut() {
            last.extend_from_slice(bytes);
        } else {
            self.actions.push(Action::Send(bytes.to_vec()));
        }
    }

    /// Flush what was sent, then close the connection.
    pub fn close(&mut self) {
        self.actions.push(Action::Close);
    }

    /// Pretend to connect to `target`: the host hands the rest of the stream,
    /// starting with `pending`, to the emulator for `target.port`.
    pub fn splice(&mut self, target: Target, pending: Vec<u8>) {
        self.actions
            .push(Action::Splice(SpliceRequest { target, pending }));
    }

    /// Wait before the next action (tarpit).
    pub fn delay_ms(&mut self, ms: u32) {
        self.actions.push(Action::DelayMs(ms));
    }

    /// Record an event; see [`Event::new`].
    pub fn emit(&mut self, event: Event) {
        self.host.emit(event);
    }

    /// Persist an artifact. Acknowledge to the client only after `Ok`.
    pub fn store_artifact(&mut self, artifact: Artifact) -> Result<String, StoreError> {
        self.host.store_artifact(artifact)
    }

    /// A diagnostic line for the operator's log.
    pub fn log(&mut self, message: &str) {
        self.host.log(message);
    }

    /// The wall clock, since the Unix epoch (UTC). Prefer it to
    /// `SystemTime::now()`: a plugin that reads time only from here can be
    /// built without WASI (`wasm32-unknown-unknown`), which makes each
    /// session's instance cheaper to create.
    pub fn now(&mut self) -> std::time::Duration {
        self.host.now()
    }

    /// Whether a `close` or `splice` is queued: nothing after it will run.
    pub fn is_ending(&self) -> bool {
        self.actions
            .iter()
            .any(|a| matches!(a, Action::Close | Action::Splice(_)))
    }

    /// The actions queued so far, in order.
    pub fn actions(&self) -> &[Action] {
        &self.actions
    }

    /// Take the queued actions, leaving none.
    pub fn into_actions(self) -> Vec<Action> {
        self.actions
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime, UNIX_EPOCH};

    use super::Context;
    use crate::testing::Recorder;

    #[test]
    fn now_is_the_hosts_wall_clock() {
        let mut host = Recorder::default();
        let mut cx = Context::new(&mut host);
        let now = cx.now();
        let system = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        assert!(
            system.abs_diff(now) < Duration::from_secs(5),
            "{now:?} vs {system:?}"
        );
    }
}
