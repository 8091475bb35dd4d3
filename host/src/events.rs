//! The event log: one JSON object per observation, like Cowrie's. The host
//! adds the common fields itself, so a plugin cannot forge where an event
//! came from.
//!
//! Every event carries `eventid`, `timestamp` (RFC 3339 UTC, milliseconds),
//! `sensor`, `session`, `src_ip`, `src_port`, `dst_port` and `plugin`; the
//! vocabulary is in `docs/architecture.md`.

use std::net::SocketAddr;

use serde_json::{Map, Value};

use crate::store::CaptureStore;

/// Who an event is about: one connection, as the host saw it.
#[derive(Debug, Clone)]
pub struct Origin {
    pub session: String,
    pub src_ip: String,
    pub src_port: u16,
    /// The logical port (before `port_offset`): the seed's port tables
    /// speak of 1080 and 8080, whatever the sensor actually binds.
    pub dst_port: u16,
    /// The plugin serving this leg of the connection.
    pub plugin: String,
}

impl Origin {
    pub fn new(session: String, peer: SocketAddr, dst_port: u16, plugin: &str) -> Self {
        Origin {
            session,
            src_ip: peer.ip().to_canonical().to_string(),
            src_port: peer.port(),
            dst_port,
            plugin: plugin.to_owned(),
        }
    }

    /// The sensor itself, for events no client caused (`plugin.loaded`, ...).
    pub fn sensor() -> Self {
        Origin {
            session: String::new(),
            src_ip: String::new(),
            src_port: 0,
            dst_port: 0,
            plugin: String::new(),
        }
    }
}

/// The fields every event has; a plugin's field with one of these names is
/// renamed so it cannot overwrite them.
const COMMON: [&str; 8] = [
    "eventid",
    "timestamp",
    "sensor",
    "session",
    "src_ip",
    "src_port",
    "dst_port",
    "plugin",
];

/// Writes events to the store's `events.jsonl` (and the tables it indexes).
#[derive(Clone)]
pub struct EventLog {
    sensor: String,
    store: CaptureStore,
}

impl EventLog {
    pub fn new(sensor: &str, store: CaptureStore) -> Self {
        EventLog {
            sensor: sensor.to_owned(),
            store,
        }
    }

    /// Record one event with the common fields filled from `origin`.
    pub fn emit<I>(&self, origin: &Origin, kind: &str, fields: I)
    where
        I: IntoIterator<Item = (String, Value)>,
    {
        self.store.record(self.build(origin, kind, fields));
    }

    /// The event as it is written, without writing it.
    pub fn build<I>(&self, origin: &Origin, kind: &str, fields: I) -> Map<String, Value>
    where
        I: IntoIterator<Item = (String, Value)>,
    {
        let mut event = Map::with_capacity(16);
        event.insert("eventid".into(), kind.into());
        event.insert("timestamp".into(), now_rfc3339().into());
        event.insert("sensor".into(), self.sensor.clone().into());
        event.insert("session".into(), origin.session.clone().into());
        event.insert("src_ip".into(), origin.src_ip.clone().into());
        event.insert("src_port".into(), origin.src_port.into());
        event.insert("dst_port".into(), origin.dst_port.into());
        event.insert("plugin".into(), origin.plugin.clone().into());
        for (key, value) in fields {
            let key = if COMMON.contains(&key.as_str()) {
                format!("plugin_{key}")
            } else {
                key
            };
            event.insert(key, value);
        }
        event
    }

    pub fn sensor(&self) -> &str {
        &self.sensor
    }
}

/// Now, as RFC 3339 UTC with milliseconds: `2026-11-27T04:40:21.123Z`.
pub fn now_rfc3339() -> String {
    crate::store::format_ts(&chrono::Utc::now())
}

/// A session id: 24 hex digits, the Unix time in milliseconds (44 bits),
/// a per-process sequence (20 bits, from a random start), then a random
/// number drawn once per process (32 bits).
///
/// Time first so that ids sort by creation: the store's B-trees keyed by
/// session (`sessions`, `messages.session`, `requests.session`) then grow at
/// their right edge instead of touching a random page per session, which
/// was most of the pages each commit wrote to the WAL. Within a process ids
/// are unique up to 2^20 sessions in one ms. The last 32 bits are for a
/// collector's store, which holds many sensors' sessions: with time and
/// sequence alone, two busy sensors (100 sessions/s each) would mint the
/// same id a few hundred times a year; with them, about once in 10^7 years.
pub fn new_session_id() -> String {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQUENCE: OnceLock<AtomicU64> = OnceLock::new();
    static PROCESS: OnceLock<u32> = OnceLock::new();
    let sequence = SEQUENCE
        .get_or_init(|| AtomicU64::new(rand::random()))
        .fetch_add(1, Ordering::Relaxed)
        & 0xf_ffff;
    let process = *PROCESS.get_or_init(rand::random);
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
        & 0xfff_ffff_ffff;
    format!("{:016x}{process:08x}", ms << 20 | sequence)
}

#[cfg(test)]
mod tests {
    use super::new_session_id;

    #[test]
    fn session_ids_are_unique_and_sort_by_time() {
        let first = new_session_id();
        assert_eq!(first.len(), 24);
        assert!(first.bytes().all(|b| b.is_ascii_hexdigit()));
        let ids: std::collections::HashSet<String> =
            (0..100_000).map(|_| new_session_id()).collect();
        assert_eq!(ids.len(), 100_000);
        std::thread::sleep(std::time::Duration::from_millis(2));
        let later = new_session_id();
        assert!(later > first, "{later} should sort after {first}");
    }
}
