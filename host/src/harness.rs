//! Sessions without sockets: what a plugin session needs of the host (the
//! capture store, the event log, limits, counters) and the connection it is
//! told about. For the benches and tests that drive a plugin in-process
//! (`spampot-bench session-cost`, the plugin memory test).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use crate::config::Limits;
use crate::events::{EventLog, Origin};
use crate::host_api::{SessionCounters, SessionLink};
use crate::plugin::wit;
use crate::stats::Stats;
use crate::store::{CaptureStore, StoreConfig, StoreError};

/// A host for in-process sessions, its capture store in a directory of the
/// caller's (a temporary one, usually).
pub struct Harness {
    pub store: CaptureStore,
    events: EventLog,
    limits: Arc<Limits>,
    stats: Arc<Stats>,
}

impl Harness {
    pub fn open(limits: Limits, data_dir: &Path) -> Result<Harness, StoreError> {
        let store = CaptureStore::open(StoreConfig {
            data_dir: data_dir.to_owned(),
            ..StoreConfig::default()
        })?;
        Ok(Harness {
            events: EventLog::new("harness", store.clone()),
            store,
            limits: Arc::new(limits),
            stats: Arc::new(Stats::default()),
        })
    }

    /// The host's link and the connection of session `i`: a client at
    /// 192.0.2.7 (TEST-NET-1) that reached `port` directly.
    pub fn session(&self, i: usize, port: u16, plugin: &str) -> (SessionLink, wit::ConnInfo) {
        let peer = SocketAddr::from(([192, 0, 2, 7], 40000));
        let link = SessionLink {
            events: self.events.clone(),
            store: self.store.clone(),
            stats: self.stats.clone(),
            limits: self.limits.clone(),
            origin: Origin::new(format!("{i:012x}"), peer, port, plugin),
            counters: SessionCounters::default(),
        };
        let conn = wit::ConnInfo {
            session_id: format!("{i:012x}"),
            sensor: "harness".into(),
            peer_addr: "192.0.2.7".into(),
            peer_port: 40000,
            local_addr: "198.51.100.1".into(),
            local_port: port,
            via: vec![],
            target: None,
        };
        (link, conn)
    }
}
