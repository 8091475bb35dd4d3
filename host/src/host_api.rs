//! What a plugin can ask of the host — the WIT `host` interface: emit an
//! event, store an artifact durably, log a line. Every call is metered and
//! capped here; nothing a plugin passes becomes a path or a command.

use std::sync::Arc;
use std::time::Instant;

use serde_json::Value;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::WasiCtx;

use crate::config::Limits;
use crate::events::{EventLog, Origin};
use crate::plugin::{self, CallMeter, WitHost, WitTypesHost, wit};
use crate::stats::Stats;
use crate::store::{self, CaptureStore, PutError, PutOutcome};

/// Longest event kind, field name, or text value kept; longer is truncated.
/// Events are for analysis, not for carrying payloads (those are artifacts).
const MAX_TEXT: usize = 4096;
/// Fields per event and items per list field kept.
const MAX_FIELDS: usize = 64;
const MAX_LIST: usize = 10_000;
/// Log lines one session may write: a chatty plugin must not flood the log.
const MAX_LOG_LINES: u32 = 100;
/// Metadata one artifact may carry (1,000 recipients of 300 bytes fit).
const MAX_META_BYTES: usize = 1 << 20;

/// The state a plugin instance's `Store` carries.
pub struct HostState {
    /// Created at the plugin's first WASI call: the sensor's own plugins
    /// import no WASI, and building a context per session costs ~0.4 µs.
    pub(crate) wasi: Option<WasiCtx>,
    pub(crate) table: ResourceTable,
    pub(crate) limits: plugin::InstanceLimits,
    pub(crate) meter: CallMeter,
    /// Where this instance's events and artifacts go; `None` while a plugin
    /// is probed at load time.
    link: Option<SessionLink>,
    /// The wall clock `now` answers; `None` is the system's. Fixed only by
    /// tests that compare two runs of a session byte for byte.
    clock: Option<std::time::Duration>,
}

/// An artifact that passed the checks and waits to be stored.
pub struct Admitted {
    origin: store::Origin,
    kind: &'static str,
    recipients: u64,
    meta: Vec<(String, String)>,
    data: Vec<u8>,
}

impl Admitted {
    pub fn data(&self) -> &[u8] {
        &self.data
    }
}

/// The sensor services one session reaches through the host interface.
pub struct SessionLink {
    pub events: EventLog,
    pub store: CaptureStore,
    pub stats: Arc<Stats>,
    pub limits: Arc<Limits>,
    pub origin: Origin,
    /// Carried across splices so that caps hold for the whole connection.
    pub counters: SessionCounters,
}

/// What one connection has used of its caps so far.
#[derive(Debug, Default, Clone)]
pub struct SessionCounters {
    pub artifacts: u32,
    pub events: u32,
    pub events_dropped: u32,
    pub log_lines: u32,
    pub messages: u32,
}

impl HostState {
    /// State for a session's instance.
    pub fn new(link: SessionLink) -> Self {
        let meter = CallMeter::new(std::time::Duration::from_millis(
            link.limits.call_deadline_ms,
        ));
        HostState {
            wasi: None,
            table: plugin::new_table(),
            limits: plugin::store_limits(&link.limits),
            meter,
            link: Some(link),
            clock: None,
        }
    }

    /// The same state with `now` fixed at `since_epoch`.
    pub fn with_fixed_clock(mut self, since_epoch: std::time::Duration) -> Self {
        self.clock = Some(since_epoch);
        self
    }

    /// The wall clock this session's plugin sees, since the Unix epoch.
    pub fn now(&self) -> std::time::Duration {
        self.clock.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
        })
    }

    /// State for probing a plugin (describe) with nowhere to send events.
    pub fn detached(limits: &Limits) -> Self {
        HostState {
            wasi: None,
            table: plugin::new_table(),
            limits: plugin::store_limits(limits),
            meter: CallMeter::new(std::time::Duration::from_millis(limits.call_deadline_ms)),
            link: None,
            clock: None,
        }
    }

    pub fn link(&self) -> Option<&SessionLink> {
        self.link.as_ref()
    }

    /// Take the link back when the instance ends (to carry it to the next leg).
    pub fn take_link(&mut self) -> Option<SessionLink> {
        self.link.take()
    }
}

fn truncate(mut s: String) -> String {
    if s.len() > MAX_TEXT {
        let mut cut = MAX_TEXT;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
    s
}

/// Event kinds are dotted lower-case words; anything else is renamed so it
/// cannot masquerade as a host event in a report.
fn event_kind(kind: String) -> String {
    let ok = !kind.is_empty()
        && kind.len() <= 64
        && kind
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b));
    let reserved = ["session.", "plugin.", "listener.", "limit.", "store."]
        .iter()
        .any(|p| kind.starts_with(p));
    if ok && !reserved {
        kind
    } else {
        "plugin.invalid-event".into()
    }
}

fn field_value(value: wit::FieldValue) -> Value {
    match value {
        wit::FieldValue::Text(s) => truncate(s).into(),
        wit::FieldValue::Int(n) => n.into(),
        wit::FieldValue::Flag(b) => b.into(),
        wit::FieldValue::Texts(list) => Value::Array(
            list.into_iter()
                .take(MAX_LIST)
                .map(|s| truncate(s).into())
                .collect(),
        ),
    }
}

fn artifact_kind(kind: wit::ArtifactKind) -> &'static str {
    match kind {
        wit::ArtifactKind::Email => "email",
        wit::ArtifactKind::UploadedFile => "uploaded-file",
        wit::ArtifactKind::Credential => "credential",
        wit::ArtifactKind::Other => "other",
    }
}

impl WitTypesHost for HostState {}

impl HostState {
    /// `emit`, metered: over the session's cap, events are counted, not kept.
    pub fn emit_event(&mut self, event: wit::Event) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        if link.counters.events >= link.limits.max_events_per_session {
            link.counters.events_dropped += 1;
            return;
        }
        link.counters.events += 1;
        let kind = event_kind(event.kind);
        let fields = event
            .fields
            .into_iter()
            .take(MAX_FIELDS)
            .map(|(k, v)| (truncate(k), field_value(v)));
        link.events.emit(&link.origin, &kind, fields);
    }

    /// `log`, rate-limited per session.
    pub fn log_line(&mut self, message: String) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        link.counters.log_lines += 1;
        if link.counters.log_lines <= MAX_LOG_LINES {
            tracing::info!(
                target: "spampot::plugin",
                session = %link.origin.session,
                plugin = %link.origin.plugin,
                "{}",
                truncate(message).escape_debug()
            );
        }
    }

    /// `store-artifact`: size-checked, stored durably, counted.
    pub async fn store(&mut self, artifact: wit::Artifact) -> Result<String, wit::StoreError> {
        let admitted = self.admit(artifact)?;
        self.put(admitted).await
    }

    /// The checks of `store-artifact` (size, metadata, session cap), which
    /// need no disk; counts the artifact against the session's cap.
    pub fn admit(&mut self, artifact: wit::Artifact) -> Result<Admitted, wit::StoreError> {
        let Some(link) = self.link.as_mut() else {
            return Err(wit::StoreError::Io("no store while loading".into()));
        };
        let limits = &link.limits;
        if artifact.data.len() as u64 > limits.max_artifact_bytes {
            return Err(wit::StoreError::TooLarge(limits.max_artifact_bytes));
        }
        let meta_bytes: usize = artifact.meta.iter().map(|(k, v)| k.len() + v.len()).sum();
        if meta_bytes > MAX_META_BYTES {
            return Err(wit::StoreError::TooLarge(MAX_META_BYTES as u64));
        }
        if link.counters.artifacts >= limits.max_artifacts_per_session {
            return Err(wit::StoreError::SessionLimit);
        }
        link.counters.artifacts += 1;

        let kind = artifact_kind(artifact.kind);
        let recipients = artifact.meta.iter().filter(|(k, _)| k == "rcpt_to").count() as u64;
        let origin = store::Origin {
            session: link.origin.session.clone(),
            sensor: link.events.sensor().to_owned(),
            plugin: link.origin.plugin.clone(),
            src_ip: link.origin.src_ip.clone(),
            src_port: link.origin.src_port,
            dst_port: link.origin.dst_port,
            timestamp: chrono::Utc::now(),
        };
        Ok(Admitted {
            origin,
            kind,
            recipients,
            meta: artifact.meta,
            data: artifact.data,
        })
    }

    /// Store an admitted artifact durably; `Ok` carries its SHA-256.
    pub async fn put(&mut self, artifact: Admitted) -> Result<String, wit::StoreError> {
        let Admitted {
            origin,
            kind,
            recipients,
            meta,
            data,
        } = artifact;
        let Some(link) = self.link.as_mut() else {
            return Err(wit::StoreError::Io("no store while loading".into()));
        };
        // Waiting for the disk is the host's time, not the plugin's.
        let started = Instant::now();
        let outcome = link.store.put_artifact(origin, kind, meta, data).await;
        self.meter.add_host_time(started.elapsed());

        let link = self.link.as_mut().expect("link checked above");
        if kind == "email" && outcome.is_ok() {
            link.counters.messages += 1;
            link.stats.count_message(recipients);
        }
        match outcome {
            Ok(PutOutcome::Stored { sha256, size, .. }) => {
                link.events.emit(
                    &link.origin,
                    "artifact.stored",
                    [
                        ("kind".to_string(), kind.into()),
                        ("sha256".to_string(), sha256.clone().into()),
                        ("size".to_string(), size.into()),
                    ],
                );
                Ok(sha256)
            }
            Ok(PutOutcome::OverQuota { .. }) => Err(wit::StoreError::QuotaExceeded),
            Err(PutError::Io(msg)) => Err(wit::StoreError::Io(msg)),
            Err(PutError::Closed) => Err(wit::StoreError::Io("the store is shutting down".into())),
        }
    }
}

impl WitHost for HostState {
    async fn emit(&mut self, event: wit::Event) -> wasmtime::Result<()> {
        self.emit_event(event);
        Ok(())
    }

    async fn store_artifact(
        &mut self,
        artifact: wit::Artifact,
    ) -> wasmtime::Result<Result<String, wit::StoreError>> {
        Ok(self.store(artifact).await)
    }

    async fn log(&mut self, message: String) -> wasmtime::Result<()> {
        self.log_line(message);
        Ok(())
    }

    async fn now(&mut self) -> wasmtime::Result<(u64, u32)> {
        let now = HostState::now(self);
        Ok((now.as_secs(), now.subsec_nanos()))
    }
}
