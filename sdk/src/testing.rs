//! Test a plugin natively: a [`Harness`] plays a byte conversation against an
//! emulator and records what it sent, did, emitted and stored — no wasm, no
//! sockets.
//!
//! ```
//! # use spampot_sdk::{Config, ConnInfo, Context, Emulator, PluginInfo};
//! # struct Echo;
//! # impl Emulator for Echo {
//! #     fn describe() -> PluginInfo { PluginInfo::new("echo", "0") }
//! #     fn start(_: &ConnInfo, _: &Config) -> Self { Echo }
//! #     fn on_data(&mut self, d: &[u8], cx: &mut Context) { cx.send(d) }
//! # }
//! use spampot_sdk::testing::Harness;
//! let mut h = Harness::<Echo>::new(ConnInfo::test(7));
//! h.open();
//! h.feed(b"ping");
//! assert_eq!(h.take_sent(), b"ping");
//! assert!(!h.closed());
//! ```

use sha2::{Digest, Sha256};

mod fuzz;
pub use fuzz::{Fuzz, FuzzCase, FuzzSummary};

use crate::native::NativeSession;
use crate::{
    Action, Artifact, Config, ConnInfo, Emulator, Event, FieldValue, Host, SpliceRequest,
    StoreError,
};

/// An in-memory [`Host`]: keeps every event, artifact and log line.
#[derive(Debug, Default)]
pub struct Recorder {
    /// Every event emitted, in order.
    pub events: Vec<Event>,
    /// Every artifact stored, in order.
    pub artifacts: Vec<Artifact>,
    /// Every log line.
    pub logs: Vec<String>,
    /// When set, `store_artifact` fails with this error (to test how a
    /// plugin answers a full disk).
    pub fail_store: Option<StoreError>,
    /// When set, `now` answers this instead of the system's clock, so two
    /// runs of a conversation can be compared byte for byte.
    pub clock: Option<std::time::Duration>,
}

impl Host for Recorder {
    fn emit(&mut self, event: Event) {
        self.events.push(event);
    }

    fn store_artifact(&mut self, artifact: Artifact) -> Result<String, StoreError> {
        if let Some(err) = &self.fail_store {
            return Err(err.clone());
        }
        let sha = hex::encode(Sha256::digest(&artifact.data));
        self.artifacts.push(artifact);
        Ok(sha)
    }

    fn now(&mut self) -> std::time::Duration {
        match self.clock {
            Some(fixed) => fixed,
            None => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default(),
        }
    }

    fn log(&mut self, message: &str) {
        self.logs.push(message.to_owned());
    }
}

/// Plays a conversation against one session of `E` and records the outcome.
pub struct Harness<E: Emulator> {
    session: NativeSession<E>,
    /// What the host would have been asked to do, in order, over the whole session.
    pub actions: Vec<Action>,
    /// What was recorded: events, artifacts, logs.
    pub recorder: Recorder,
    sent: Vec<u8>,
    closed: bool,
    splice: Option<SpliceRequest>,
}

impl<E: Emulator> Harness<E> {
    /// A session with an empty config.
    pub fn new(conn: ConnInfo) -> Self {
        Self::with_config(conn, Config::default())
    }

    /// A session with the given config.
    pub fn with_config(conn: ConnInfo, config: Config) -> Self {
        Harness {
            session: NativeSession::start(&conn, &config),
            actions: Vec::new(),
            recorder: Recorder::default(),
            sent: Vec::new(),
            closed: false,
            splice: None,
        }
    }

    /// Call `on_open`; returns the actions of this call.
    pub fn open(&mut self) -> Vec<Action> {
        let actions = self.session.on_open(&mut self.recorder);
        self.apply(actions)
    }

    /// Call `on_data` with `bytes` in one piece; returns the actions of this call.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Action> {
        assert!(
            !self.closed && self.splice.is_none(),
            "fed bytes to a session that already closed or spliced"
        );
        let actions = self.session.on_data(bytes, &mut self.recorder);
        self.apply(actions)
    }

    /// Feed `bytes` in pieces of `chunk` bytes (1 = byte by byte), stopping
    /// early if the session closes or splices.
    pub fn feed_chunked(&mut self, bytes: &[u8], chunk: usize) {
        for piece in bytes.chunks(chunk.max(1)) {
            if self.closed || self.splice.is_some() {
                break;
            }
            self.feed(piece);
        }
    }

    /// Feed `bytes` split into two pieces at `offset`.
    pub fn feed_split(&mut self, bytes: &[u8], offset: usize) {
        let (a, b) = bytes.split_at(offset.min(bytes.len()));
        for piece in [a, b] {
            if !piece.is_empty() && !self.closed && self.splice.is_none() {
                self.feed(piece);
            }
        }
    }

    /// Call `on_timeout`.
    pub fn timeout(&mut self) -> Vec<Action> {
        let actions = self.session.on_timeout(&mut self.recorder);
        self.apply(actions)
    }

    /// Call `on_close`.
    pub fn close(&mut self) {
        self.session.on_close(&mut self.recorder);
    }

    /// Every byte sent to the client so far.
    pub fn sent(&self) -> &[u8] {
        &self.sent
    }

    /// Every byte sent so far, as (lossy) text.
    pub fn sent_text(&self) -> String {
        String::from_utf8_lossy(&self.sent).into_owned()
    }

    /// Take what was sent so far, so the next assertion sees only new bytes.
    pub fn take_sent(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.sent)
    }

    /// Like [`take_sent`](Self::take_sent), as text.
    pub fn take_text(&mut self) -> String {
        String::from_utf8_lossy(&self.take_sent()).into_owned()
    }

    /// Whether the plugin asked to close.
    pub fn closed(&self) -> bool {
        self.closed
    }

    /// The splice the plugin asked for, if any.
    pub fn spliced(&self) -> Option<&SpliceRequest> {
        self.splice.as_ref()
    }

    /// Events of this kind, in order.
    pub fn events(&self, kind: &str) -> Vec<&Event> {
        self.recorder
            .events
            .iter()
            .filter(|e| e.kind == kind)
            .collect()
    }

    /// Every artifact stored.
    pub fn artifacts(&self) -> &[Artifact] {
        &self.recorder.artifacts
    }

    /// The emulator, for assertions on its state.
    pub fn emulator(&self) -> &E {
        self.session.emulator()
    }

    /// Record the actions as the host would carry them out: sends up to the
    /// first close or splice, nothing after.
    fn apply(&mut self, actions: Vec<Action>) -> Vec<Action> {
        for action in &actions {
            if self.closed || self.splice.is_some() {
                break;
            }
            match action {
                Action::Send(bytes) => self.sent.extend_from_slice(bytes),
                Action::Close => self.closed = true,
                Action::Splice(req) => self.splice = Some(req.clone()),
                Action::DelayMs(_) => {}
            }
        }
        self.actions.extend(actions.iter().cloned());
        actions
    }
}

/// The text field `key` of `event`; panics (naming the event) if absent or
/// of another type. For assertions in tests.
pub fn text<'a>(event: &'a Event, key: &str) -> &'a str {
    event
        .get(key)
        .and_then(FieldValue::as_text)
        .unwrap_or_else(|| panic!("no text field {key} in {event:?}"))
}

/// The integer field `key` of `event`; panics if absent or of another type.
pub fn int(event: &Event, key: &str) -> i64 {
    event
        .get(key)
        .and_then(FieldValue::as_int)
        .unwrap_or_else(|| panic!("no int field {key} in {event:?}"))
}

/// The flag field `key` of `event`; panics if absent or of another type.
pub fn flag(event: &Event, key: &str) -> bool {
    event
        .get(key)
        .and_then(FieldValue::as_flag)
        .unwrap_or_else(|| panic!("no flag field {key} in {event:?}"))
}

/// The list field `key` of `event`; panics if absent or of another type.
pub fn texts<'a>(event: &'a Event, key: &str) -> &'a [String] {
    event
        .get(key)
        .and_then(FieldValue::as_texts)
        .unwrap_or_else(|| panic!("no texts field {key} in {event:?}"))
}
