//! The wasm side of the SDK: WIT bindings, and the adapter that exports an
//! [`Emulator`] as the `spampot:emulator` component. Plugins never name
//! anything here; [`export_emulator!`](crate::export_emulator) does.

use std::cell::RefCell;
use std::marker::PhantomData;

use crate::{Context, Emulator, Host, types};

#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        world: "plugin",
        path: "../wit",
        pub_export_macro: true,
        export_macro_name: "export",
        default_bindings_module: "spampot_sdk::guest::bindings",
    });
}

use bindings::exports::spampot::emulator::emulator as wit_export;
use bindings::spampot::emulator::{host as wit_host, types as wit};

/// The WIT imports, as the SDK's [`Host`].
struct WitHost;

impl Host for WitHost {
    fn emit(&mut self, event: types::Event) {
        wit_host::emit(&event_to_wit(event));
    }

    fn store_artifact(&mut self, artifact: types::Artifact) -> Result<String, types::StoreError> {
        let kind = match artifact.kind {
            types::ArtifactKind::Email => wit::ArtifactKind::Email,
            types::ArtifactKind::UploadedFile => wit::ArtifactKind::UploadedFile,
            types::ArtifactKind::Credential => wit::ArtifactKind::Credential,
            types::ArtifactKind::Other => wit::ArtifactKind::Other,
        };
        let wit_artifact = wit::Artifact {
            kind,
            meta: artifact.meta,
            data: artifact.data,
        };
        wit_host::store_artifact(&wit_artifact).map_err(|e| match e {
            wit::StoreError::QuotaExceeded => types::StoreError::QuotaExceeded,
            wit::StoreError::TooLarge(n) => types::StoreError::TooLarge(n),
            wit::StoreError::SessionLimit => types::StoreError::SessionLimit,
            wit::StoreError::Io(msg) => types::StoreError::Io(msg),
        })
    }

    fn log(&mut self, message: &str) {
        wit_host::log(message);
    }

    fn now(&mut self) -> std::time::Duration {
        let (secs, nanos) = wit_host::now();
        std::time::Duration::new(secs, nanos.min(999_999_999))
    }
}

fn event_to_wit(event: types::Event) -> wit::Event {
    let fields = event
        .fields
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                types::FieldValue::Text(s) => wit::FieldValue::Text(s),
                types::FieldValue::Int(n) => wit::FieldValue::Int(n),
                types::FieldValue::Flag(b) => wit::FieldValue::Flag(b),
                types::FieldValue::Texts(list) => wit::FieldValue::Texts(list),
            };
            (k, v)
        })
        .collect();
    wit::Event {
        kind: event.kind,
        fields,
    }
}

fn action_to_wit(action: types::Action) -> wit::Action {
    match action {
        types::Action::Send(bytes) => wit::Action::Send(bytes),
        types::Action::Close => wit::Action::Close,
        types::Action::Splice(req) => wit::Action::Splice(wit::SpliceRequest {
            target: wit::Target {
                host: req.target.host,
                port: req.target.port,
            },
            pending: req.pending,
        }),
        types::Action::DelayMs(ms) => wit::Action::DelayMs(ms),
    }
}

fn conn_from_wit(conn: wit::ConnInfo) -> types::ConnInfo {
    types::ConnInfo {
        session_id: conn.session_id,
        sensor: conn.sensor,
        peer_addr: conn.peer_addr,
        peer_port: conn.peer_port,
        local_addr: conn.local_addr,
        local_port: conn.local_port,
        via: conn.via,
        target: conn.target.map(|t| types::Target {
            host: t.host,
            port: t.port,
        }),
    }
}

/// Runs one callback with a fresh context over the WIT imports.
fn with_context(f: impl FnOnce(&mut Context)) -> Vec<wit::Action> {
    let mut host = WitHost;
    let mut cx = Context::new(&mut host);
    f(&mut cx);
    cx.into_actions().into_iter().map(action_to_wit).collect()
}

/// The component's root: exports `E` as the `emulator` interface.
pub struct Component<E>(PhantomData<E>);

impl<E: Emulator> wit_export::Guest for Component<E> {
    type Session = Session<E>;

    fn describe() -> wit::PluginInfo {
        let info = E::describe();
        wit::PluginInfo {
            name: info.name,
            version: info.version,
            protocols: info.protocols,
            default_ports: info.default_ports,
        }
    }
}

/// One session resource, wrapping one emulator value. WIT resource methods
/// take `&self`; the host never calls them concurrently, so a `RefCell` suffices.
pub struct Session<E>(RefCell<E>);

impl<E: Emulator> wit_export::GuestSession for Session<E> {
    fn new(conn: wit::ConnInfo, config: Vec<(String, String)>) -> Self {
        let conn = conn_from_wit(conn);
        Session(RefCell::new(E::start(&conn, &types::Config(config))))
    }

    fn on_open(&self) -> Vec<wit::Action> {
        with_context(|cx| self.0.borrow_mut().on_open(cx))
    }

    fn on_data(&self, data: Vec<u8>) -> Vec<wit::Action> {
        with_context(|cx| self.0.borrow_mut().on_data(&data, cx))
    }

    fn on_timeout(&self) -> Vec<wit::Action> {
        with_context(|cx| self.0.borrow_mut().on_timeout(cx))
    }

    fn on_close(&self) {
        with_context(|cx| self.0.borrow_mut().on_close(cx));
    }
}
