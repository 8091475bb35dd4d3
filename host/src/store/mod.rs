//! The capture store: where everything the honeypot observes ends up.
//!
//! * `events.jsonl` (+ rotated `events-<UTC>.jsonl`): every event, one JSON
//!   object per line, in arrival order.
//! * `spampot.db` (SQLite, WAL): events indexed into report tables, and the
//!   durable record of every artifact (messages, recipients, uploads...).
//! * `blobs/pack-000001.pack`, …: artifact bodies, zstd-compressed, stored
//!   once, appended to pack files (written behind the journal, fdatasynced
//!   before their rows are indexed). Older data directories also have
//!   `blobs/ab/cd/<sha256>.zst`, still read.
//! * `journal/journal-000001.log`, …: each batch of artifacts, fdatasynced
//!   before it is acknowledged and replayed into the database after a crash
//!   or a power loss (`journal.rs`).
//!
//! The writer thread (`writer.rs`) owns the event log, the journal and the
//! packs: [`CaptureStore::put_artifact`] returns once the batch's journal
//! record, bodies included, is on disk (group commit: one fdatasync per
//! batch of concurrent callers). The indexer thread (`indexer.rs`) owns the
//! read-write database connection and puts the rows of artifacts and events
//! in behind it, one transaction per 250 ms. See `docs/store.md` for the full
//! contract.
//!
//! The module is self-contained: it uses no other module of the crate.

mod blobs;
mod export;
mod feed;
mod indexer;
mod journal;
mod schema;
#[cfg(test)]
mod tests;
mod writer;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

pub use blobs::{PACK_ROLL_BYTES, is_sha256_hex, legacy_rel_path, pack_rel_path, sha256_hex};
pub use export::{
    BlobReader, ExportFormat, ExportWhat, Verification, export, read_blob, show_message, verify,
};
pub use feed::{FeedArtifact, FeedCursor, FeedError, FeedLimits, FeedPage, read_page};
pub use schema::{MIGRATIONS, SCHEMA_VERSION};

/// The SQLite database, relative to the data directory.
pub const DB_FILE: &str = "spampot.db";
/// The current event log, relative to the data directory.
pub const EVENTS_FILE: &str = "events.jsonl";
/// Held (flock) by the process whose writer owns the data directory.
pub const LOCK_FILE: &str = "spampot.lock";
pub use blobs::BLOBS_DIR;

/// Artifacts above this size are hashed and compressed on tokio's blocking
/// pool rather than inline on the calling task, so a multi-megabyte upload
/// cannot stall a runtime worker.
const INLINE_PREP_LIMIT: usize = 256 * 1024;

/// Requests queued for the writer before callers wait (`put_artifact`, `flush`)
/// or events are dropped (`record`). ~16k events is several seconds of a
/// heavy attack; beyond that, memory matters more than completeness.
const QUEUE_CAPACITY: usize = 16 * 1024;

/// The artifact kinds the store knows; anything else is stored as "other".
pub const ARTIFACT_KINDS: &[&str] = &["email", "uploaded-file", "credential", "other"];

/// Configuration of a [`CaptureStore`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    pub data_dir: PathBuf,
    /// Bytes of blob storage allowed (compressed bytes on disk). 0 = no quota.
    pub quota_bytes: u64,
    /// Group commit: how many artifacts at most share one fsync/transaction.
    pub max_batch: usize,
    /// Rotate events.jsonl when it grows past this many bytes (0 = never).
    pub events_rotate_bytes: u64,
    /// Start a new blob pack once the current one is past this many bytes.
    pub pack_roll_bytes: u64,
    /// Start a new journal segment (and delete the old) past this many bytes.
    pub journal_roll_bytes: u64,
    /// Acknowledged artifacts whose rows the database has not taken (it
    /// keeps failing: disk full, a broken file) before new artifacts are
    /// refused with an error instead of piling up in memory.
    pub max_unindexed_artifacts: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            // The FHS place for a daemon's state; systemd's
            // `StateDirectory=spampot` creates it with the right owner.
            data_dir: PathBuf::from("/var/lib/spampot"),
            // 8 GiB of compressed bodies is millions of typical spam messages
            // (a few KB each after zstd) yet fits the small VPS disks sensors
            // run on, leaving room for the database and event logs.
            quota_bytes: 8 << 30,
            // Large enough to amortise the commit over a burst from many
            // sessions, small enough that one batch's blob fsyncs (~0.1-1 ms
            // each) keep the slowest acknowledgement well under a second.
            max_batch: 256,
            // 256 MiB files are still easy to grep, copy off the sensor and
            // compress, and rotation happens only a few times a day even
            // under heavy abuse.
            events_rotate_bytes: 256 << 20,
            pack_roll_bytes: blobs::PACK_ROLL_BYTES,
            journal_roll_bytes: journal::SEGMENT_ROLL_BYTES,
            // Each waiting artifact holds its envelope in memory (a few dozen
            // short strings for a message of 9 recipients). At the thousands
            // of messages a second a busy sensor takes, a database refusing
            // every row reaches this within a minute: long enough to ride out
            // a hiccup, short enough to fail loudly.
            max_unindexed_artifacts: 64 * 1024,
        }
    }
}

/// Who/where an artifact came from; filled by the host, never by plugins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub session: String,
    pub sensor: String,
    pub plugin: String,
    pub src_ip: String,
    pub src_port: u16,
    pub dst_port: u16,
    pub timestamp: chrono::DateTime<chrono::Utc>,
}

/// What happened to an artifact handed to [`CaptureStore::put_artifact`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// The body is durably stored (now, or already before: `new_blob` false)
    /// and the sighting is recorded.
    Stored {
        sha256: String,
        size: u64,
        new_blob: bool,
    },
    /// The sighting is recorded (rows with `stored = 0`) but the body was not
    /// kept: the blob quota is reached.
    OverQuota { sha256: String, size: u64 },
}

impl PutOutcome {
    pub fn sha256(&self) -> &str {
        match self {
            PutOutcome::Stored { sha256, .. } | PutOutcome::OverQuota { sha256, .. } => sha256,
        }
    }
}

/// Why [`CaptureStore::put_artifact`] or [`CaptureStore::flush`] failed. Never
/// acknowledge the artifact to the client on an error.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum PutError {
    /// A blob write, fsync or the commit failed: nothing of the batch is durable.
    #[error("capture store I/O error: {0}")]
    Io(String),
    /// The store was closed, or its writer thread died.
    #[error("capture store is closed")]
    Closed,
}

/// Errors opening the store and from the offline (read-side) commands.
#[derive(thiserror::Error, Debug)]
pub enum StoreError {
    #[error("cannot create data directory {path}: {source}")]
    CreateDir { path: PathBuf, source: io::Error },
    #[error("I/O error on {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("database error in {path}: {source}")]
    Db {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error("migrating {path} to schema version {to_version} failed: {source}")]
    Migration {
        path: PathBuf,
        to_version: i64,
        source: rusqlite::Error,
    },
    #[error(
        "database {path} has schema version {found}, newer than this spampot supports \
         ({supported}); run a newer spampot on it, or use another data directory"
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error(
        "database {path} has schema version {found}, older than this spampot's ({supported}); \
         start the honeypot once on this data directory to upgrade it"
    )]
    OlderSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },
    #[error("{path} is not a spampot database (foreign SQLite application_id)")]
    NotSpampotDb { path: PathBuf },
    #[error("no spampot database at {path}; does --data point at a spampot data directory?")]
    NoDatabase { path: PathBuf },
    #[error(
        "data directory {path} is in use by another spampot process (lock {LOCK_FILE} is held)"
    )]
    Locked { path: PathBuf },
    #[error("cannot start the store writer thread: {0}")]
    Thread(io::Error),
    #[error("invalid SHA-256 {input:?}: {reason}")]
    InvalidSha256 { input: String, reason: &'static str },
    #[error(
        "SHA-256 prefix {prefix:?} is ambiguous: it matches several artifacts; give more digits"
    )]
    Ambiguous { prefix: String },
    #[error("{what} not found in {path}")]
    NotFound { path: PathBuf, what: String },
    #[error("{path} is corrupt: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    #[error("cannot write output: {0}")]
    Output(io::Error),
}

/// Counters for status pages. Cheap: read from atomics, no I/O.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StoreUsage {
    /// Compressed blob bytes on disk (what the quota counts).
    pub blob_bytes: u64,
    /// The configured quota (0 = none).
    pub quota_bytes: u64,
    /// True once a blob was refused for the quota since the store was opened.
    pub over_quota: bool,
    /// Rows in `messages` (one per email received, duplicates included).
    pub messages: u64,
    /// Rows in `recipients`.
    pub recipients: u64,
    /// Distinct artifact bodies (rows in `artifacts`).
    pub artifacts: u64,
    /// Distinct bodies whose blob is on disk.
    pub artifacts_stored: u64,
    /// Events written to the event log since the store was opened.
    pub events_written: u64,
    /// Events dropped since open (queue full, store closed, write error).
    pub events_dropped: u64,
    /// Durable commits of artifacts since open; `messages` over this is the
    /// group-commit batch size.
    pub commits: u64,
    /// Acknowledged artifacts (durable in the journal) whose rows are not in
    /// the database yet: about half a second's worth at most while it keeps
    /// up (the next index transaction's and the one being written).
    pub unindexed_artifacts: u64,
    /// The last attempt to index them failed (disk full, a broken database);
    /// `put_artifact` refuses new ones past
    /// [`StoreConfig::max_unindexed_artifacts`] waiting.
    pub index_failing: bool,
}

/// Counters shared between the writer thread and the handles.
#[derive(Default)]
pub(crate) struct Stats {
    blob_bytes: AtomicU64,
    over_quota: AtomicBool,
    messages: AtomicU64,
    recipients: AtomicU64,
    artifacts: AtomicU64,
    artifacts_stored: AtomicU64,
    events_written: AtomicU64,
    events_dropped: AtomicU64,
    /// Committed batches that held artifacts (group commits), for tests and
    /// tuning.
    put_batches: AtomicU64,
    unindexed_artifacts: AtomicU64,
    index_failing: AtomicBool,
}

/// An artifact's body, its SHA-256 and (unless already on disk) its
/// compressed form.
type Prepared = (Vec<u8>, String, Option<Vec<u8>>);

/// One artifact on its way to the writer.
pub(crate) struct PutRequest {
    origin: Origin,
    kind: &'static str,
    meta: Vec<(String, String)>,
    /// The body; empty when `absent`.
    data: Vec<u8>,
    /// The body's size when the caller has only its digest
    /// (`put_without_body`).
    absent: Option<u64>,
    sha256: String,
    /// Compressed body, unless the body was known to be stored when the
    /// caller looked (then the writer compresses only if it turns out to be
    /// needed).
    compressed: Option<Vec<u8>>,
    reply: oneshot::Sender<Result<PutOutcome, PutError>>,
}

impl PutRequest {
    /// The body's size, whether or not its bytes came with it.
    fn size(&self) -> u64 {
        self.absent.unwrap_or(self.data.len() as u64)
    }
}

pub(crate) enum Request {
    Put(Box<PutRequest>),
    Flush(oneshot::Sender<Result<(), PutError>>),
    Close(oneshot::Sender<()>),
    /// Test hook: stop like a killed process (nothing flushed, lock released).
    #[cfg(test)]
    Crash,
    /// Test hook: panic in the writer thread.
    #[cfg(test)]
    Panic,
    /// Test hook: panic in the indexer thread (the writer goes on).
    #[cfg(test)]
    PanicIndexer,
    /// Test hook: the indexer thread panics with the next job it gets.
    #[cfg(test)]
    PanicIndexerWithJob,
}

/// One event as the host recorded it (a JSON object).
pub(crate) type EventMap = serde_json::Map<String, serde_json::Value>;

struct Inner {
    tx: mpsc::Sender<Request>,
    /// Events go on a queue of their own that the writer drains without
    /// waiting on it: a record() never wakes the writer thread, which at
    /// several events per session was a futex wake and a context switch
    /// each. Artifacts and control requests on `tx` do wake it.
    events_tx: mpsc::Sender<EventMap>,
    stats: Arc<Stats>,
    known: Arc<blobs::KnownBodies>,
    quota_bytes: u64,
    data_dir: PathBuf,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    warned_drop: AtomicBool,
}

/// One of [`ARTIFACT_KINDS`]; anything else is "other".
fn known_kind(kind: &str) -> &'static str {
    match ARTIFACT_KINDS.iter().find(|k| **k == kind) {
        Some(k) => k,
        None => {
            tracing::warn!(kind, "unknown artifact kind, stored as \"other\"");
            "other"
        }
    }
}

/// Handle on an open capture store. Cheap to clone; all clones share one
/// writer thread. Dropping the last handle without [`CaptureStore::close`]
/// still flushes (the writer sees the channel close), but `close` lets the
/// caller wait for it.
#[derive(Clone)]
pub struct CaptureStore {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for CaptureStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureStore")
            .field("data_dir", &self.inner.data_dir)
            .finish_non_exhaustive()
    }
}

/// RFC 3339 UTC with milliseconds: `2026-11-27T04:40:21.123Z`.
pub fn format_ts(ts: &chrono::DateTime<chrono::Utc>) -> String {
    ts.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn io_err(path: &Path) -> impl Fn(io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Create the data directory (0700 on Unix: it holds captured credentials)
/// and open it as a capability.
fn open_data_dir(data_dir: &Path) -> Result<Dir, StoreError> {
    if !data_dir.is_dir() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder
            .create(data_dir)
            .map_err(|source| StoreError::CreateDir {
                path: data_dir.to_path_buf(),
                source,
            })?;
    }
    Dir::open_ambient_dir(data_dir, ambient_authority()).map_err(io_err(data_dir))
}

/// What [`catch_up`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// The database holds every acknowledged artifact (or there is no
    /// database of this version to read: the command says so itself).
    UpToDate,
    /// A running sensor holds the directory and indexes them itself.
    SensorRunning,
    /// The journal's batches past the database were replayed into it.
    Replayed,
}

/// Before an offline command reads a data directory: if its sensor stopped
/// (a crash, a kill) with acknowledged artifacts not yet in the database,
/// replay the journal into it, as the sensor's next start would. Needs
/// write access only when there is something to replay.
pub async fn catch_up(data_dir: &Path) -> Result<CatchUp, StoreError> {
    let Ok(conn) = schema::open_ro(&data_dir.join(DB_FILE)) else {
        return Ok(CatchUp::UpToDate);
    };
    let dir = Dir::open_ambient_dir(data_dir, ambient_authority()).map_err(io_err(data_dir))?;
    let pending = journal::has_unindexed(&dir, &conn)
        .map_err(io_err(&data_dir.join(journal::JOURNAL_DIR)))?;
    drop(conn);
    if !pending {
        return Ok(CatchUp::UpToDate);
    }
    match CaptureStore::open(StoreConfig {
        data_dir: data_dir.to_path_buf(),
        ..StoreConfig::default()
    }) {
        Ok(store) => {
            store.close().await;
            Ok(CatchUp::Replayed)
        }
        Err(StoreError::Locked { .. }) => Ok(CatchUp::SensorRunning),
        Err(e) => Err(e),
    }
}

/// Take an exclusive, non-blocking flock on `spampot.lock`. Released when the
/// returned file is closed (also when the process dies).
fn lock_data_dir(dir: &Dir, data_dir: &Path) -> Result<cap_std::fs::File, StoreError> {
    let path = data_dir.join(LOCK_FILE);
    let file = dir
        .open_with(
            LOCK_FILE,
            cap_std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true),
        )
        .map_err(io_err(&path))?;
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a valid, owned file descriptor.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            return Err(if e.kind() == io::ErrorKind::WouldBlock {
                StoreError::Locked {
                    path: data_dir.to_path_buf(),
                }
            } else {
                StoreError::Io { path, source: e }
            });
        }
    }
    Ok(file)
}

impl CaptureStore {
    /// Create or open the data directory (via cap-std), the SQLite database
    /// (WAL), run migrations, start the writer thread.
    ///
    /// Takes an exclusive lock on the data directory: a second `open` of the
    /// same directory (in this or another process) fails with
    /// [`StoreError::Locked`] until the first store is closed.
    pub fn open(config: StoreConfig) -> Result<CaptureStore, StoreError> {
        let data_dir = config.data_dir.clone();
        let dir = open_data_dir(&data_dir)?;
        let lock = lock_data_dir(&dir, &data_dir)?;
        match dir.create_dir(BLOBS_DIR) {
            Ok(()) => blobs::sync_dir(&dir, ".").map_err(io_err(&data_dir))?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err(&data_dir.join(BLOBS_DIR))(e)),
        }
        let db_path = data_dir.join(DB_FILE);
        let conn = schema::open_rw(&db_path)?;
        let stats = Arc::new(Stats::default());
        let dir = Arc::new(dir);
        let known = Arc::new(blobs::KnownBodies::new());
        let writer = writer::Writer::new(writer::WriterInit {
            dir,
            known: known.clone(),
            data_dir: data_dir.clone(),
            conn,
            lock,
            stats: stats.clone(),
            config: config.clone(),
        })?;
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let (events_tx, events_rx) = mpsc::channel(QUEUE_CAPACITY);
        // Only for the writer's timed waits (event draining, deferred index).
        let timer = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .map_err(StoreError::Thread)?;
        let thread = std::thread::Builder::new()
            .name("spampot-store".into())
            .spawn(move || {
                // On a panic, unwinding drops the receiver and every pending
                // reply sender, so callers get PutError::Closed, not a hang.
                let run = std::panic::AssertUnwindSafe(|| writer.run(rx, events_rx, timer));
                if std::panic::catch_unwind(run).is_err() {
                    tracing::error!("capture store writer thread panicked; the store is closed");
                }
            })
            .map_err(StoreError::Thread)?;
        tracing::info!(data_dir = %data_dir.display(), "capture store open");
        Ok(CaptureStore {
            inner: Arc::new(Inner {
                tx,
                events_tx,
                stats,
                known,
                quota_bytes: config.quota_bytes,
                data_dir,
                thread: Mutex::new(Some(thread)),
                warned_drop: AtomicBool::new(false),
            }),
        })
    }

    /// The data directory this store was opened on.
    pub fn data_dir(&self) -> &Path {
        &self.inner.data_dir
    }

    /// Append one event (a JSON object the host built: eventid, timestamp,
    /// sensor, session, src_ip, src_port, dst_port, plugin + event fields) to
    /// events.jsonl and index it into the SQL tables. Non-blocking; never
    /// fails loudly: if the queue is full or the store closed, the event is
    /// dropped, counted in [`StoreUsage::events_dropped`] and logged.
    pub fn record(&self, event: serde_json::Map<String, serde_json::Value>) {
        if let Err(e) = self.inner.events_tx.try_send(event) {
            let n = self
                .inner
                .stats
                .events_dropped
                .fetch_add(1, Ordering::Relaxed)
                + 1;
            let why = match e {
                mpsc::error::TrySendError::Full(_) => "store queue full",
                mpsc::error::TrySendError::Closed(_) => "store closed",
            };
            // Warn on the first drop, then every 10000th, not per event.
            if !self.inner.warned_drop.swap(true, Ordering::Relaxed) || n.is_multiple_of(10_000) {
                tracing::warn!(dropped_total = n, "event dropped: {why}");
            }
        }
    }

    /// Persist an artifact durably. Returns only once the blob file and its
    /// database rows are fsynced/committed. See the module docs and
    /// `docs/store.md` for the contract. `kind` is "email" | "uploaded-file" |
    /// "credential" | "other" (anything else is stored as "other").
    pub async fn put_artifact(
        &self,
        origin: Origin,
        kind: &str,
        meta: Vec<(String, String)>,
        data: Vec<u8>,
    ) -> Result<PutOutcome, PutError> {
        let kind = known_kind(kind);
        let known = self.inner.known.clone();
        let large = data.len() > INLINE_PREP_LIMIT;
        // Compress here, on the caller's thread, so the single writer thread
        // only writes; a body the writer recently stored is not compressed.
        let prep = move || -> Result<Prepared, PutError> {
            let sha256 = sha256_hex(&data);
            let compressed = if known.contains(&sha256) {
                None
            } else {
                Some(
                    blobs::compress(&data)
                        .map_err(|e| PutError::Io(format!("zstd compression failed: {e}")))?,
                )
            };
            Ok((data, sha256, compressed))
        };
        let (data, sha256, compressed) = if large {
            tokio::task::spawn_blocking(prep)
                .await
                .map_err(|e| PutError::Io(format!("hashing task failed: {e}")))??
        } else {
            prep()?
        };
        self.send_put(|reply| PutRequest {
            origin,
            kind,
            meta,
            data,
            absent: None,
            sha256,
            compressed,
            reply,
        })
        .await
    }

    /// Record an artifact whose body is not at hand: a collector pulling a
    /// row whose body the sensor's quota refused. Its rows are made as for a
    /// put over quota (`stored` 0), unless this store holds the body already.
    pub async fn put_without_body(
        &self,
        origin: Origin,
        kind: &str,
        meta: Vec<(String, String)>,
        sha256: String,
        size: u64,
    ) -> Result<PutOutcome, PutError> {
        if !is_sha256_hex(&sha256) {
            return Err(PutError::Io(format!("{sha256:?} is not a SHA-256")));
        }
        self.send_put(|reply| PutRequest {
            origin,
            kind: known_kind(kind),
            meta,
            data: Vec::new(),
            absent: Some(size),
            sha256,
            compressed: None,
            reply,
        })
        .await
    }

    /// Hand the writer the request `build` makes around its reply channel,
    /// and wait for the answer.
    async fn send_put(
        &self,
        build: impl FnOnce(oneshot::Sender<Result<PutOutcome, PutError>>) -> PutRequest,
    ) -> Result<PutOutcome, PutError> {
        let (reply, answer) = oneshot::channel();
        let req = build(reply);
        self.inner
            .tx
            .send(Request::Put(Box::new(req)))
            .await
            .map_err(|_| PutError::Closed)?;
        answer.await.map_err(|_| PutError::Closed)?
    }

    /// Wait until every event recorded (and artifact put) so far is written
    /// and flushed to disk (event log fsynced, database WAL fsynced).
    pub async fn flush(&self) -> Result<(), PutError> {
        let (reply, answer) = oneshot::channel();
        self.inner
            .tx
            .send(Request::Flush(reply))
            .await
            .map_err(|_| PutError::Closed)?;
        answer.await.map_err(|_| PutError::Closed)?
    }

    /// Flush and stop the writer thread; releases the data-directory lock.
    /// Idempotent; after it, `put_artifact`/`flush` return [`PutError::Closed`]
    /// and `record` drops events.
    pub async fn close(&self) {
        let (reply, answer) = oneshot::channel();
        if self.inner.tx.send(Request::Close(reply)).await.is_ok() {
            let _ = answer.await;
        }
        let handle = self.inner.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(handle) = handle {
            // The thread has answered (or died); joining is immediate.
            let _ = tokio::task::spawn_blocking(move || handle.join()).await;
        }
    }

    /// Stats for status pages: blob bytes used, quota, counts of
    /// messages/recipients/artifacts. No I/O.
    pub fn usage(&self) -> StoreUsage {
        let s = &self.inner.stats;
        StoreUsage {
            blob_bytes: s.blob_bytes.load(Ordering::Relaxed),
            quota_bytes: self.inner.quota_bytes,
            over_quota: s.over_quota.load(Ordering::Relaxed),
            messages: s.messages.load(Ordering::Relaxed),
            recipients: s.recipients.load(Ordering::Relaxed),
            artifacts: s.artifacts.load(Ordering::Relaxed),
            artifacts_stored: s.artifacts_stored.load(Ordering::Relaxed),
            events_written: s.events_written.load(Ordering::Relaxed),
            events_dropped: s.events_dropped.load(Ordering::Relaxed),
            commits: s.put_batches.load(Ordering::Relaxed),
            unindexed_artifacts: s.unindexed_artifacts.load(Ordering::Relaxed),
            index_failing: s.index_failing.load(Ordering::Relaxed),
        }
    }

    /// Send a test hook the writer survives.
    #[cfg(test)]
    async fn send_request(&self, req: Request) {
        let _ = self.inner.tx.send(req).await;
    }

    /// Send a test hook that ends the writer thread, and wait for it to end.
    #[cfg(test)]
    async fn send_test_hook(&self, req: Request) {
        let _ = self.inner.tx.send(req).await;
        let handle = self.inner.thread.lock().unwrap().take();
        if let Some(h) = handle {
            let _ = tokio::task::spawn_blocking(move || h.join()).await;
        }
    }
}
