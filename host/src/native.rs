//! Plugins linked into the host as plain Rust, for measuring what the
//! sandbox costs: the same emulator code, called through the SDK's native
//! path, in the same session loop, with the same host services. The
//! `spampot` binary never links a native plugin; benchmarks do.
//!
//! A native plugin is trusted code: no deadline, no memory cap. It exists to
//! be compared with its component, not to serve hostile traffic.

use std::sync::Arc;

use spampot_sdk::native::NativeSession;
use spampot_sdk::{self as sdk, Emulator};

use crate::host_api::{Admitted, HostState};
use crate::plugin::wit;

/// Starts native sessions of one emulator.
pub trait NativeFactory: Send + Sync {
    fn describe(&self) -> wit::PluginInfo;
    fn start(&self, conn: &sdk::ConnInfo, config: &sdk::Config) -> Box<dyn NativeLeg>;
}

/// One native session; the calls mirror the WIT `session` resource.
pub trait NativeLeg: Send {
    fn on_open(&mut self, host: &mut dyn sdk::Host) -> Vec<sdk::Action>;
    fn on_data(&mut self, data: &[u8], host: &mut dyn sdk::Host) -> Vec<sdk::Action>;
    fn on_timeout(&mut self, host: &mut dyn sdk::Host) -> Vec<sdk::Action>;
    fn on_close(&mut self, host: &mut dyn sdk::Host);
}

impl<E: Emulator + Send> NativeLeg for NativeSession<E> {
    fn on_open(&mut self, host: &mut dyn sdk::Host) -> Vec<sdk::Action> {
        NativeSession::on_open(self, host)
    }
    fn on_data(&mut self, data: &[u8], host: &mut dyn sdk::Host) -> Vec<sdk::Action> {
        NativeSession::on_data(self, data, host)
    }
    fn on_timeout(&mut self, host: &mut dyn sdk::Host) -> Vec<sdk::Action> {
        NativeSession::on_timeout(self, host)
    }
    fn on_close(&mut self, host: &mut dyn sdk::Host) {
        NativeSession::on_close(self, host)
    }
}

/// The factory for emulator type `E`.
pub struct Native<E>(std::marker::PhantomData<fn() -> E>);

impl<E: Emulator + Send> Native<E> {
    pub fn factory() -> Arc<dyn NativeFactory> {
        Arc::new(Native::<E>(std::marker::PhantomData))
    }
}

impl<E: Emulator + Send> NativeFactory for Native<E> {
    fn describe(&self) -> wit::PluginInfo {
        let info = E::describe();
        wit::PluginInfo {
            name: info.name,
            version: info.version,
            protocols: info.protocols,
            default_ports: info.default_ports,
        }
    }

    fn start(&self, conn: &sdk::ConnInfo, config: &sdk::Config) -> Box<dyn NativeLeg> {
        Box::new(NativeSession::<E>::start(conn, config))
    }
}

/// The host services for a native session: the same `HostState` a
/// component's `Store` carries. The SDK's `Host` is synchronous, and a
/// worker thread must not wait for an fsync: an artifact that passes the
/// checks is answered with its SHA-256 at once and stored right after the
/// call returns, before the host carries out a single action of that call.
/// So the client still sees no acknowledgement before the data is durable;
/// if storing fails, the session ends instead (see `PluginSession::call`).
pub struct NativeHost<'a> {
    pub state: &'a mut HostState,
    pub pending: &'a mut Vec<Admitted>,
}

impl sdk::Host for NativeHost<'_> {
    fn emit(&mut self, event: sdk::Event) {
        self.state.emit_event(event_to_wit(event));
    }

    fn store_artifact(&mut self, artifact: sdk::Artifact) -> Result<String, sdk::StoreError> {
        let kind = match artifact.kind {
            sdk::ArtifactKind::Email => wit::ArtifactKind::Email,
            sdk::ArtifactKind::UploadedFile => wit::ArtifactKind::UploadedFile,
            sdk::ArtifactKind::Credential => wit::ArtifactKind::Credential,
            sdk::ArtifactKind::Other => wit::ArtifactKind::Other,
        };
        let artifact = wit::Artifact {
            kind,
            meta: artifact.meta,
            data: artifact.data,
        };
        let admitted = self.state.admit(artifact).map_err(|e| match e {
            wit::StoreError::QuotaExceeded => sdk::StoreError::QuotaExceeded,
            wit::StoreError::TooLarge(n) => sdk::StoreError::TooLarge(n),
            wit::StoreError::SessionLimit => sdk::StoreError::SessionLimit,
            wit::StoreError::Io(msg) => sdk::StoreError::Io(msg),
        })?;
        let sha256 = {
            use sha2::Digest;
            hex::encode(sha2::Sha256::digest(admitted.data()))
        };
        self.pending.push(admitted);
        Ok(sha256)
    }

    fn log(&mut self, message: &str) {
        self.state.log_line(message.to_owned());
    }

    fn now(&mut self) -> std::time::Duration {
        self.state.now()
    }
}

fn event_to_wit(event: sdk::Event) -> wit::Event {
    let fields = event
        .fields
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                sdk::FieldValue::Text(s) => wit::FieldValue::Text(s),
                sdk::FieldValue::Int(n) => wit::FieldValue::Int(n),
                sdk::FieldValue::Flag(b) => wit::FieldValue::Flag(b),
                sdk::FieldValue::Texts(l) => wit::FieldValue::Texts(l),
            };
            (k, v)
        })
        .collect();
    wit::Event {
        kind: event.kind,
        fields,
    }
}

/// The SDK's actions as the session loop takes them.
pub fn action_to_wit(action: sdk::Action) -> wit::Action {
    match action {
        sdk::Action::Send(bytes) => wit::Action::Send(bytes),
        sdk::Action::Close => wit::Action::Close,
        sdk::Action::Splice(req) => wit::Action::Splice(wit::SpliceRequest {
            target: wit::Target {
                host: req.target.host,
                port: req.target.port,
            },
            pending: req.pending,
        }),
        sdk::Action::DelayMs(ms) => wit::Action::DelayMs(ms),
    }
}

/// The connection as the SDK describes it.
pub fn conn_from_wit(conn: &wit::ConnInfo) -> sdk::ConnInfo {
    sdk::ConnInfo {
        session_id: conn.session_id.clone(),
        sensor: conn.sensor.clone(),
        peer_addr: conn.peer_addr.clone(),
        peer_port: conn.peer_port,
        local_addr: conn.local_addr.clone(),
        local_port: conn.local_port,
        via: conn.via.clone(),
        target: conn
            .target
            .as_ref()
            .map(|t| sdk::Target::new(&t.host, t.port)),
    }
}
