//! `spampot collect`: the data half of SpamPots' central server. It pulls
//! the captures (events, messages, uploads, their bodies) of every sensor
//! of a fleet file, all at once, into one data directory of its own, so one
//! `spampot report` covers them all (`--sensor` still picks one).
//!
//! Each sensor serves its data directory as a feed (`GET /feed`,
//! `store/feed.rs`) from a cursor; the collector keeps one cursor per
//! sensor in `collector.json` in its data directory and moves it only after
//! what it pulled is durable in its own store. The captures go in through
//! the same [`CaptureStore`] calls a sensor makes, so the rows are built by
//! the same code. A page's bodies are fetched before any of it is written,
//! so a network failure writes nothing; a crash while a page is written
//! pulls that page again (at least once, never lost). Everything pulled
//! from a sensor is filed under that sensor's name in the fleet file.
//!
//! Like `fleet`, these are operator requests to addresses the operator
//! lists (`ctl.rs`); no client session reaches this code.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::ctl::{self, CtlError};
use crate::fleet::{Fleet, SensorEntry};
use crate::store::{
    CaptureStore, FeedArtifact, FeedCursor, FeedPage, Origin, PutError, StoreConfig, StoreError,
    sha256_hex,
};

/// The collector's cursors, in its data directory.
pub const STATE_FILE: &str = "collector.json";

/// A page is a few MiB (`FeedLimits`); this leaves room for a sensor with
/// larger limits and still stops a stream that is not a feed.
const MAX_PAGE_BYTES: u64 = 64 << 20;

/// Digests asked for in one `/feed/bodies` request (the sensor takes 256).
const BODIES_PER_REQUEST: usize = 256;

/// Body bytes asked for in one request, by the rows' sizes; a larger body
/// goes alone. Few round trips over a slow uplink, small answers.
const BODY_BYTES_PER_REQUEST: u64 = 16 << 20;

/// A sensor answers with up to 24 MiB of bodies, or one body of up to its
/// `max_artifact_bytes` (15 MiB by default), a third larger in base64.
const MAX_BODIES_ANSWER_BYTES: u64 = 128 << 20;

/// Long enough for a page or a large body over a slow uplink (the SpamPots
/// sensors sat on residential ADSL).
const TIMEOUT: Duration = Duration::from_secs(120);

/// Artifacts put at once: enough for the store to commit them in one group
/// (one fdatasync), few enough that the copies of their bodies stay small.
const PUT_CHUNK: usize = 64;

/// Events recorded between flushes: well under the store's queue, which
/// drops what does not fit.
const EVENT_CHUNK: usize = 4096;

/// Pages read from one sensor in one pass (~1 GiB of event log), so that a
/// pass ends, its report written and its exit status given, even while a
/// sensor captures faster than it can be pulled; the next pass goes on.
const MAX_PAGES_PER_PASS: u32 = 256;

/// Bodies kept after they were fetched, so a campaign's body crosses the
/// network once per run, not once per copy.
const BODY_CACHE_BYTES: usize = 64 << 20;

/// Why a pull failed.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot read the collector's cursors {path}: {message}")]
    State { path: PathBuf, message: String },
    #[error("cannot save the collector's cursors {path}: {source}")]
    SaveState {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Ctl(#[from] CtlError),
    #[error("reports itself as {got:?}, not {expected:?}")]
    Misnamed { expected: String, got: String },
    #[error("unreadable feed page: {0}")]
    BadPage(String),
    #[error("the body {sha256} it sent does not match its digest")]
    BadBody { sha256: String },
    #[error("cannot store what was pulled: {0}")]
    Put(#[from] PutError),
    #[error("the local store dropped {0} events (its queue was full)")]
    EventsDropped(u64),
    #[error("no sensor {0:?} in the fleet file")]
    NotInFleet(String),
}

/// What one sensor's pull brought in.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Pulled {
    pub name: String,
    pub events: u64,
    pub messages: u64,
    /// Non-email artifacts (uploads, credentials, other).
    pub sightings: u64,
    pub bodies_fetched: u64,
    /// Rows whose body the sensor's quota had refused: recorded without it,
    /// as the sensor did.
    pub without_body: u64,
    /// Bodies the sensor's rows point at but it no longer has (missing or
    /// damaged there: `spampot verify` on the sensor lists them); their
    /// rows are recorded without them.
    pub bodies_lost: u64,
    /// Torn lines of the sensor's event log, passed over.
    pub skipped_lines: u64,
    /// The pass stopped at its page limit with more to read.
    pub behind: bool,
    /// Messages the sensor held past where the pass stopped (`None` from a
    /// sensor that does not count them).
    pub messages_left: Option<u64>,
    /// Why the pull stopped early; what came before it is kept.
    pub error: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct State {
    sensors: BTreeMap<String, FeedCursor>,
    /// How each sensor's last pass went (`spampot fleet --collector`).
    #[serde(default)]
    passes: BTreeMap<String, PassRecord>,
}

/// How the collector's passes over one sensor went: what SpamPots' central
/// server checked as "rsync status".
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PassRecord {
    /// When the last pass over this sensor ended (RFC 3339 UTC).
    pub at: String,
    /// When a pass last pulled the sensor whole: no error, and not stopped
    /// at its page limit with more to read. `None` if none has yet.
    pub last_ok: Option<String>,
    /// Why the last pass stopped early, if it did.
    pub error: Option<String>,
    /// The last pass stopped at its page limit with more to pull: the
    /// collector is catching up, or cannot keep up.
    #[serde(default)]
    pub behind: bool,
    /// How many messages it left to pull, when `behind`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub messages_left: Option<u64>,
}

/// What a pass stopped at its page limit left: `~N messages more to pull`
/// when the sensor counts them, else `more to pull`.
pub fn left_to_pull(messages_left: Option<u64>) -> String {
    match messages_left {
        Some(n) => format!("~{n} messages more to pull"),
        None => "more to pull".into(),
    }
}

/// The pass records of a collector's data directory (read-only; the
/// collector may be running). Empty when it has not pulled yet.
pub fn read_passes(data_dir: &Path) -> Result<BTreeMap<String, PassRecord>, CollectError> {
    if !data_dir.is_dir() {
        return Err(CollectError::State {
            path: data_dir.to_path_buf(),
            message: "not a directory (the collector's --data)".into(),
        });
    }
    Ok(read_state(&data_dir.join(STATE_FILE))?.passes)
}

/// The state file; empty before the first pass.
fn read_state(path: &Path) -> Result<State, CollectError> {
    let failed = |message: String| CollectError::State {
        path: path.to_path_buf(),
        message,
    };
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| failed(e.to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(e) => Err(failed(e.to_string())),
    }
}

/// A collector's data directory, open: its store (locked, like a sensor's)
/// and its cursors.
pub struct Collector {
    shared: Arc<Shared>,
}

/// What the pulls of several sensors at once share.
struct Shared {
    store: CaptureStore,
    state_path: PathBuf,
    state: std::sync::Mutex<State>,
    bodies: std::sync::Mutex<BodyCache>,
    /// Held while a page is written: the pages of several sensors are
    /// fetched at once but written one after the other, so the store's
    /// event queue never holds more than one page's chunk and a failed
    /// page's count of dropped events is its own.
    writing: tokio::sync::Mutex<()>,
}

impl Collector {
    /// Open (or create) the collector's data directory.
    pub fn open(data_dir: &Path) -> Result<Collector, CollectError> {
        let store = CaptureStore::open(StoreConfig {
            data_dir: data_dir.to_path_buf(),
            ..StoreConfig::default()
        })?;
        let state_path = data_dir.join(STATE_FILE);
        let state = read_state(&state_path)?;
        Ok(Collector {
            shared: Arc::new(Shared {
                store,
                state_path,
                state: std::sync::Mutex::new(state),
                bodies: std::sync::Mutex::new(BodyCache::default()),
                writing: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// Pull every sensor of the fleet at once, each until it has nothing
    /// new (or its pass's page limit). A sensor that fails does not stop the
    /// others; the answers come in the fleet file's order.
    pub async fn pull_all(&mut self, fleet: &Fleet) -> Vec<Pulled> {
        let mut pulls = tokio::task::JoinSet::new();
        for (i, entry) in fleet.sensors.iter().cloned().enumerate() {
            let shared = self.shared.clone();
            pulls.spawn(async move {
                let mut pulled = Pulled {
                    name: entry.name.clone(),
                    ..Pulled::default()
                };
                if let Err(e) = shared.pull(&entry, &mut pulled).await {
                    tracing::warn!(sensor = %entry.name, error = %e, "pull stopped");
                    pulled.error = Some(e.to_string());
                }
                if let Err(e) = shared.record_pass(&entry.name, &pulled) {
                    tracing::warn!(sensor = %entry.name, error = %e, "pass not recorded");
                }
                (i, pulled)
            });
        }
        let mut all = Vec::new();
        while let Some(done) = pulls.join_next().await {
            match done {
                Ok(pulled) => all.push(pulled),
                Err(e) => tracing::error!("a pull task failed: {e}"),
            }
        }
        all.sort_by_key(|(i, _)| *i);
        all.into_iter().map(|(_, pulled)| pulled).collect()
    }

    /// Forget where the collector was in a sensor's feed, so that its next
    /// pass pulls it from the beginning: for a sensor whose data directory
    /// is new (reinstalled, a new disk), whose old cursor points at a log
    /// file and rows that no longer exist. Returns whether there was a
    /// cursor. The pass records stay: they are history.
    pub fn start_over(&self, fleet: &Fleet, sensor: &str) -> Result<bool, CollectError> {
        if !fleet.sensors.iter().any(|s| s.name == sensor) {
            return Err(CollectError::NotInFleet(sensor.to_owned()));
        }
        self.shared.forget(sensor)
    }

    /// Where the collector is in a sensor's feed; `None` before its first
    /// page.
    pub fn cursor(&self, sensor: &str) -> Option<FeedCursor> {
        self.shared.state().sensors.get(sensor).copied()
    }

    /// Flush and close the store; releases the data directory.
    pub async fn close(self) {
        self.shared.store.close().await;
    }
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while the lock was held leaves the cursors as they were
        // last saved: still good.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, BodyCache> {
        self.bodies.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn pull(&self, entry: &SensorEntry, pulled: &mut Pulled) -> Result<(), CollectError> {
        let token = entry.token.as_deref();
        for _ in 0..MAX_PAGES_PER_PASS {
            let cursor = self
                .state()
                .sensors
                .get(&entry.name)
                .copied()
                .unwrap_or_default();
            let path = format!("/feed?{}", cursor.query());
            let answer = ctl::request_bounded(
                entry.endpoint(),
                "GET",
                &path,
                token,
                MAX_PAGE_BYTES,
                TIMEOUT,
            )
            .await?;
            let Some(got) = answer
                .get("sensor")
                .and_then(|s| s.as_str())
                .map(str::to_owned)
            else {
                return Err(CollectError::BadPage(
                    "the answer is not a feed page: not a spampot admin API, or an older one"
                        .into(),
                ));
            };
            if got != entry.name {
                return Err(CollectError::Misnamed {
                    expected: entry.name.clone(),
                    got,
                });
            }
            let page: FeedPage =
                serde_json::from_value(answer).map_err(|e| CollectError::BadPage(e.to_string()))?;
            self.ingest(entry, &page, pulled).await?;
            self.save_state(&entry.name, page.next)?;
            pulled.messages_left = page.messages_left;
            if !page.more {
                return Ok(());
            }
        }
        pulled.behind = true;
        Ok(())
    }

    /// Put one page into the local store and wait until it is durable.
    /// Its bodies are fetched (and its rows checked) first: a network
    /// failure leaves nothing of the page written, and the page is read
    /// again whole next time.
    async fn ingest(
        &self,
        entry: &SensorEntry,
        page: &FeedPage,
        pulled: &mut Pulled,
    ) -> Result<(), CollectError> {
        let artifacts: Vec<&FeedArtifact> = page.messages.iter().chain(&page.sightings).collect();
        let bodies = self.bodies(entry, &artifacts, pulled).await?;
        let mut ready = Vec::with_capacity(artifacts.len());
        for a in &artifacts {
            let body = match a.stored {
                true => bodies.get(&a.sha256).cloned().flatten(),
                false => None,
            };
            ready.push((origin(a, &entry.name)?, body));
        }

        let _writing = self.writing.lock().await;
        let dropped_before = self.store.usage().events_dropped;
        for chunk in page.events.chunks(EVENT_CHUNK) {
            for event in chunk {
                let mut event = event.clone();
                event.insert("sensor".into(), entry.name.clone().into());
                self.store.record(event);
            }
            self.store.flush().await?;
        }
        let dropped = self.store.usage().events_dropped - dropped_before;
        if dropped > 0 {
            return Err(CollectError::EventsDropped(dropped));
        }
        pulled.events += page.events.len() as u64;
        pulled.skipped_lines += page.skipped_lines;

        let mut puts = tokio::task::JoinSet::new();
        for (a, (origin, body)) in artifacts.into_iter().zip(ready) {
            let (store, kind, meta) = (self.store.clone(), a.kind.clone(), a.meta.clone());
            match a.kind.as_str() {
                "email" => pulled.messages += 1,
                _ => pulled.sightings += 1,
            }
            match body {
                Some(data) => {
                    puts.spawn(async move {
                        store
                            .put_artifact(origin, &kind, meta, data.as_ref().clone())
                            .await
                    });
                }
                // The row still counts (a message, its recipients): without
                // its body, as the sensor's quota left it or as it was lost.
                None => {
                    if !a.stored {
                        pulled.without_body += 1;
                    }
                    let (sha256, size) = (a.sha256.clone(), a.size);
                    puts.spawn(async move {
                        store
                            .put_without_body(origin, &kind, meta, sha256, size)
                            .await
                    });
                }
            }
            if puts.len() >= PUT_CHUNK {
                finish(&mut puts).await?;
            }
        }
        finish(&mut puts).await?;
        self.store.flush().await?;
        Ok(())
    }

    /// The bodies of a page's stored rows, by digest: from the cache, else
    /// from this store, else from the sensor, a batch of digests per
    /// request, each body checked against its digest. `None` when the
    /// sensor no longer has it (missing or damaged there): waiting would
    /// not bring it back.
    async fn bodies(
        &self,
        entry: &SensorEntry,
        rows: &[&FeedArtifact],
        pulled: &mut Pulled,
    ) -> Result<HashMap<String, Option<Arc<Vec<u8>>>>, CollectError> {
        let mut found = HashMap::new();
        let mut wanted = std::collections::VecDeque::new();
        // One database connection for the page's lookups here, not one each.
        let local = crate::store::BlobReader::open(self.store.data_dir()).ok();
        for a in rows.iter().filter(|a| a.stored) {
            if found.contains_key(&a.sha256) {
                continue;
            }
            if !crate::store::is_sha256_hex(&a.sha256) {
                return Err(CollectError::BadPage(format!(
                    "{:?} is not a SHA-256",
                    a.sha256
                )));
            }
            let cached = self.cache().get(&a.sha256);
            let known = match cached {
                Some(data) => Some(data),
                // Another sensor's campaign, or an earlier run's: already here.
                None => local
                    .as_ref()
                    .and_then(|l| l.read(&a.sha256).ok())
                    .map(|data| self.cache().insert(a.sha256.clone(), data)),
            };
            match known {
                Some(data) => found.insert(a.sha256.clone(), Some(data)),
                None => {
                    wanted.push_back((a.sha256.clone(), a.size));
                    found.insert(a.sha256.clone(), None)
                }
            };
        }
        drop(local);
        while !wanted.is_empty() {
            let mut batch = Vec::new();
            let mut bytes = 0;
            while let Some((sha256, size)) = wanted.front() {
                if batch.len() == BODIES_PER_REQUEST
                    || (!batch.is_empty() && bytes + size > BODY_BYTES_PER_REQUEST)
                {
                    break;
                }
                bytes += size;
                batch.push(sha256.clone());
                wanted.pop_front();
            }
            let path = format!("/feed/bodies?sha256={}", batch.join(","));
            let answer = ctl::request_bounded(
                entry.endpoint(),
                "GET",
                &path,
                entry.token.as_deref(),
                MAX_BODIES_ANSWER_BYTES,
                TIMEOUT,
            )
            .await?;
            let mut answered = 0;
            for sha256 in batch {
                if let Some(b64) = answer["bodies"][&sha256].as_str() {
                    let data = base64::engine::general_purpose::STANDARD
                        .decode(b64)
                        .map_err(|e| CollectError::BadPage(format!("body {sha256}: {e}")))?;
                    if sha256_hex(&data) != sha256 {
                        return Err(CollectError::BadBody { sha256 });
                    }
                    pulled.bodies_fetched += 1;
                    let data = self.cache().insert(sha256.clone(), data);
                    found.insert(sha256, Some(data));
                    answered += 1;
                } else if let Some(why) = answer["lost"].get(&sha256) {
                    tracing::warn!(sensor = %entry.name, sha256, %why, "body lost on the sensor");
                    pulled.bodies_lost += 1;
                    answered += 1;
                } else {
                    // Past the answer's size: ask again.
                    wanted.push_back((sha256, 0));
                }
            }
            if answered == 0 {
                return Err(CollectError::BadPage(
                    "the sensor sent none of the bodies asked for".into(),
                ));
            }
        }
        Ok(found)
    }

    /// Move a sensor's cursor and save the state.
    fn save_state(&self, sensor: &str, next: FeedCursor) -> Result<(), CollectError> {
        let mut state = self.state();
        state.sensors.insert(sensor.to_owned(), next);
        self.write_state(&state)
    }

    /// Drop a sensor's cursor and save the state.
    fn forget(&self, sensor: &str) -> Result<bool, CollectError> {
        let mut state = self.state();
        let had = state.sensors.remove(sensor).is_some();
        self.write_state(&state)?;
        Ok(had)
    }

    /// Note how a sensor's pass ended and save the state.
    fn record_pass(&self, sensor: &str, pulled: &Pulled) -> Result<(), CollectError> {
        let mut state = self.state();
        let now = crate::store::format_ts(&chrono::Utc::now());
        let record = state.passes.entry(sensor.to_owned()).or_default();
        record.at = now.clone();
        if pulled.error.is_none() && !pulled.behind {
            record.last_ok = Some(now);
        }
        record.error = pulled.error.clone();
        record.behind = pulled.behind;
        record.messages_left = pulled.messages_left.filter(|_| pulled.behind);
        self.write_state(&state)
    }

    /// Write the state durably: to a temporary file, synced, renamed over.
    /// The caller holds the lock throughout, so two saves do not interleave.
    fn write_state(&self, state: &State) -> Result<(), CollectError> {
        let save = || -> std::io::Result<()> {
            let tmp = self.state_path.with_extension("json.tmp");
            let mut file = std::fs::File::create(&tmp)?;
            let text = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
            file.write_all(&text)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &self.state_path)?;
            if let Some(dir) = self.state_path.parent() {
                std::fs::File::open(dir)?.sync_all()?;
            }
            Ok(())
        };
        save().map_err(|source| CollectError::SaveState {
            path: self.state_path.clone(),
            source,
        })
    }
}

/// Where an artifact came from. The sensor is the one it was pulled from,
/// whatever the row says: a sensor cannot file captures under another's
/// name.
/// Wait for the puts in flight; the first failure is the page's.
async fn finish(
    puts: &mut tokio::task::JoinSet<Result<crate::store::PutOutcome, PutError>>,
) -> Result<(), CollectError> {
    while let Some(done) = puts.join_next().await {
        done.map_err(|e| CollectError::BadPage(format!("put task failed: {e}")))??;
    }
    Ok(())
}

fn origin(a: &FeedArtifact, sensor: &str) -> Result<Origin, CollectError> {
    let timestamp = chrono::DateTime::parse_from_rfc3339(&a.ts)
        .map_err(|e| CollectError::BadPage(format!("timestamp {:?}: {e}", a.ts)))?
        .with_timezone(&chrono::Utc);
    Ok(Origin {
        session: a.session.clone(),
        sensor: sensor.to_owned(),
        plugin: a.plugin.clone(),
        src_ip: a.src_ip.clone(),
        src_port: a.src_port,
        dst_port: a.dst_port,
        timestamp,
    })
}

/// Recently fetched bodies, dropped all at once when they outgrow their
/// budget (campaigns come in runs, so recent is what repeats).
#[derive(Default)]
struct BodyCache {
    bodies: HashMap<String, Arc<Vec<u8>>>,
    bytes: usize,
}

impl BodyCache {
    fn get(&self, sha256: &str) -> Option<Arc<Vec<u8>>> {
        self.bodies.get(sha256).cloned()
    }

    fn insert(&mut self, sha256: String, data: Vec<u8>) -> Arc<Vec<u8>> {
        if self.bytes + data.len() > BODY_CACHE_BYTES {
            self.bodies.clear();
            self.bytes = 0;
        }
        self.bytes += data.len();
        let data = Arc::new(data);
        self.bodies.insert(sha256, data.clone());
        data
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A stand-in sensor on loopback: `/feed` answers `page`; a request
    /// for bodies gets `body` under the first digest asked for, or that
    /// digest listed as lost for `None`.
    async fn fake_sensor(
        page: serde_json::Value,
        body: Option<&'static [u8]>,
    ) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && socket.read(&mut byte).await.unwrap_or(0) == 1
                {
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head);
                let asked = head
                    .split("sha256=")
                    .nth(1)
                    .map(|rest| rest[..64].to_owned())
                    .unwrap_or_default();
                let (status, answer) = match body {
                    _ if head.starts_with("GET /feed?") => ("200 OK", page.to_string()),
                    Some(body) => (
                        "200 OK",
                        json!({"bodies": {asked: base64::engine::general_purpose::STANDARD.encode(body)}})
                            .to_string(),
                    ),
                    None => (
                        "200 OK",
                        json!({"bodies": {}, "lost": {asked: "no such stored body"}}).to_string(),
                    ),
                };
                let reply = format!(
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                );
                let _ = socket.write_all(reply.as_bytes()).await;
            }
        });
        addr
    }

    fn page(sha256: &str, size: usize) -> serde_json::Value {
        json!({
            "sensor": "sensor-a",
            "events": [{"eventid": "session.open", "timestamp": "2026-11-27T04:40:21.123Z",
                        "sensor": "sensor-b", "session": "s1", "src_ip": "192.0.2.1",
                        "src_port": 4000, "dst_port": 25, "plugin": "smtp"}],
            "messages": [{"id": 7, "session": "s1", "ts": "2026-11-27T04:40:22.000Z",
                          "sensor": "sensor-b", "src_ip": "192.0.2.1", "src_port": 4000,
                          "dst_port": 25, "plugin": "smtp", "kind": "email",
                          "sha256": sha256, "size": size, "stored": true,
                          "meta": [["rcpt_to", "v@victim.example"]]}],
            "sightings": [],
            "skipped_lines": 0,
            "next": {"events_file": 42, "events_offset": 300, "message_id": 7, "sighting_id": 0},
            "more": false,
        })
    }

    fn fleet(addr: std::net::SocketAddr) -> Fleet {
        let text = format!("[[sensor]]\nname = \"sensor-a\"\nadmin = \"{addr}\"\ntoken = \"t\"\n");
        Fleet::parse(&text, Path::new("fleet.toml")).unwrap()
    }

    /// A sensor that always has more stops the pass at its page limit: the
    /// pass ends (no error), says it is behind, and is not recorded as a
    /// whole pull, so `fleet --collector` sees a collector that cannot keep
    /// up once its last whole pull grows old.
    #[tokio::test]
    async fn a_pass_stopped_at_its_page_limit_is_behind_not_whole() {
        let mut endless = page("", 0);
        endless["events"] = json!([]);
        endless["messages"] = json!([]);
        endless["more"] = json!(true);
        endless["messages_left"] = json!(1234);
        let addr = fake_sensor(endless, None).await;
        let dir = tempfile::tempdir().unwrap();
        let mut collector = Collector::open(dir.path()).unwrap();
        let pulled = collector.pull_all(&fleet(addr)).await;
        assert!(pulled[0].behind, "{pulled:?}");
        assert_eq!(pulled[0].error, None);
        collector.close().await;
        let pass = &read_passes(dir.path()).unwrap()["sensor-a"];
        assert!(pass.behind, "{pass:?}");
        assert_eq!(pass.messages_left, Some(1234), "{pass:?}");
        assert_eq!(pass.last_ok, None, "{pass:?}");
        assert!(!pass.at.is_empty());
    }

    /// A body that does not match its digest is refused before anything of
    /// its page is written, and the cursor stays where it was: the next
    /// pull asks for the same page.
    #[tokio::test]
    async fn a_body_that_does_not_match_its_digest_stops_the_pull_before_the_cursor_moves() {
        const BODY: &[u8] = b"Subject: hi\r\n\r\nbuy\r\n";
        let addr = fake_sensor(page(&sha256_hex(BODY), BODY.len()), Some(b"something else")).await;
        let dir = tempfile::tempdir().unwrap();
        let mut collector = Collector::open(dir.path()).unwrap();
        let pulled = collector.pull_all(&fleet(addr)).await;
        let error = pulled[0].error.as_deref().unwrap_or_default();
        assert!(error.contains("does not match its digest"), "{pulled:?}");
        assert_eq!(collector.cursor("sensor-a"), None);
        collector.close().await;
        // On disk too: no cursor, and the failed pass is recorded.
        let state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.path().join(STATE_FILE)).unwrap()).unwrap();
        assert!(state["sensors"].get("sensor-a").is_none(), "{state}");
        let failed = state["passes"]["sensor-a"]["error"]
            .as_str()
            .unwrap_or_default();
        assert!(failed.contains("does not match its digest"), "{state}");
        // Nothing of the page was written: reading it again duplicates nothing.
        let written = crate::store::read_page(
            dir.path(),
            &FeedCursor::default(),
            crate::store::FeedLimits::default(),
        )
        .unwrap();
        assert!(written.events.is_empty() && written.messages.is_empty());
    }

    /// Everything pulled from a sensor is filed under its fleet name, even
    /// what the sensor labels as another's; the cursor is saved.
    #[tokio::test]
    async fn captures_are_filed_under_the_sensor_they_came_from() {
        const BODY: &[u8] = b"Subject: hi\r\n\r\nbuy\r\n";
        let addr = fake_sensor(page(&sha256_hex(BODY), BODY.len()), Some(BODY)).await;
        let dir = tempfile::tempdir().unwrap();
        let mut collector = Collector::open(dir.path()).unwrap();
        let pulled = collector.pull_all(&fleet(addr)).await;
        assert_eq!(pulled[0].error, None);
        assert_eq!((pulled[0].events, pulled[0].messages), (1, 1));
        collector.close().await;

        let state: State =
            serde_json::from_slice(&std::fs::read(dir.path().join(STATE_FILE)).unwrap()).unwrap();
        assert_eq!(state.sensors["sensor-a"].events_offset, 300);
        let page = crate::store::read_page(
            dir.path(),
            &FeedCursor::default(),
            crate::store::FeedLimits::default(),
        )
        .unwrap();
        assert_eq!(page.events[0]["sensor"], "sensor-a");
        assert_eq!(page.messages[0].sensor, "sensor-a");
        assert_eq!(
            page.messages[0].meta,
            [("rcpt_to".into(), "v@victim.example".into())]
        );
    }

    /// A body the sensor no longer has does not stall the collector
    /// on that row forever: the row is recorded without it, counted, and
    /// the cursor moves on.
    #[tokio::test]
    async fn a_body_lost_on_the_sensor_is_recorded_as_missing_and_the_pull_goes_on() {
        let sha = sha256_hex(b"gone");
        let addr = fake_sensor(page(&sha, 4), None).await;
        let dir = tempfile::tempdir().unwrap();
        let mut collector = Collector::open(dir.path()).unwrap();
        let pulled = collector.pull_all(&fleet(addr)).await;
        assert_eq!(pulled[0].error, None, "{pulled:?}");
        assert_eq!((pulled[0].messages, pulled[0].bodies_lost), (1, 1));
        assert!(collector.cursor("sensor-a").is_some());
        collector.close().await;
        let page = crate::store::read_page(
            dir.path(),
            &FeedCursor::default(),
            crate::store::FeedLimits::default(),
        )
        .unwrap();
        assert_eq!(page.messages.len(), 1);
        assert!(!page.messages[0].stored);
    }

    /// Something else on the admin port (or a sensor too old to have a
    /// feed) is named as such, not taken for a sensor of another name.
    #[tokio::test]
    async fn an_answer_that_is_not_a_feed_page_is_named() {
        let addr = fake_sensor(json!({"version": "0.0.1"}), None).await;
        let dir = tempfile::tempdir().unwrap();
        let mut collector = Collector::open(dir.path()).unwrap();
        let pulled = collector.pull_all(&fleet(addr)).await;
        let error = pulled[0].error.as_deref().unwrap_or_default();
        assert!(error.contains("not a feed page"), "{pulled:?}");
        collector.close().await;
    }

    /// Sensors are pulled at once: one that accepts and never answers does
    /// not hold up another, whose page is stored and whose cursor is saved
    /// while the first is still waited for.
    #[tokio::test]
    async fn a_sensor_that_hangs_does_not_hold_up_the_others() {
        let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hung_addr = hung.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = hung.accept().await {
                held.push(socket);
            }
        });
        const BODY: &[u8] = b"Subject: hi\r\n\r\nbuy\r\n";
        let mut answering = page(&sha256_hex(BODY), BODY.len());
        answering["sensor"] = json!("sensor-b");
        let answering = fake_sensor(answering, Some(BODY)).await;
        let text = format!(
            "[[sensor]]\nname = \"sensor-a\"\nadmin = \"{hung_addr}\"\ntoken = \"t\"\n\
             [[sensor]]\nname = \"sensor-b\"\nadmin = \"{answering}\"\ntoken = \"t\"\n"
        );
        let fleet = Fleet::parse(&text, Path::new("fleet.toml")).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut collector = Collector::open(dir.path()).unwrap();
        let state = dir.path().join(STATE_FILE);
        let pass = tokio::spawn(async move { collector.pull_all(&fleet).await });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while !std::fs::read_to_string(&state).is_ok_and(|s| s.contains("sensor-b")) {
            assert!(
                !pass.is_finished(),
                "the pass ended before sensor-b was pulled"
            );
            assert!(
                tokio::time::Instant::now() < deadline,
                "sensor-b waited behind the hung sensor"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(
            !pass.is_finished(),
            "the hung sensor was given up on already"
        );
        pass.abort();
    }
}
