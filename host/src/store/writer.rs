//! The writer thread: owns the event log, the journal and the blob packs,
//! and commits what the handles send it in batches (group commit). A batch
//! is acknowledged once its journal record (the envelopes and the new
//! bodies) is fdatasynced. The pack is written behind it. Every 250 ms, after
//! a pack fdatasync, the rows and the events go to the indexer thread
//! (`indexer.rs`), which puts them into SQLite in one transaction (no WAL
//! fsync: the journal replays them if a crash or a power loss takes them).

use std::collections::HashMap;
use std::io::{self, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use cap_std::fs::{Dir, File, OpenOptions};
use rusqlite::Connection;
use serde_json::Map;
use tokio::sync::mpsc;

use super::blobs::{self, KnownBodies, PackWriter};
use super::indexer::{self, Done, Indexer, Job};
use super::journal::{self, BodyFate, Entry, Journal, Position};
use super::{
    DB_FILE, EVENTS_FILE, EventMap, PutError, PutOutcome, PutRequest, Request, Stats, StoreConfig,
    StoreError, format_ts, schema,
};

/// At most this many events are taken into one batch (they are cheap: a line
/// and at most one row each), so a flood of events cannot starve artifacts
/// queued behind it of their commit for long.
const MAX_EVENTS_PER_BATCH: usize = 8192;

/// Buffer of the event log writer; flushed at the end of every batch.
const EVENT_BUFFER: usize = 256 * 1024;

/// Events and acknowledged artifacts are indexed into SQLite at most this
/// long after they reached the event log or the journal, in one transaction.
/// No client waits for it (its `250` waited for the journal only), and one
/// transaction holds the rows of many sessions, which share B-tree pages:
/// committing each group-commit batch on its own wrote ~15 WAL pages per
/// message under `smtp-source`. 250 ms rather than 50: the sensor spent
/// ~11% less CPU per `smtp-source` message (fewer pages and commits per
/// row, a pack fdatasync a quarter as often) and took ~10% more messages/s;
/// 1 s gained nothing more (docs/performance.md). Short enough that a
/// report run right after traffic sees it.
const INDEX_DELAY: Duration = Duration::from_millis(250);

/// ...or as soon as this many events and artifacts wait, so memory stays
/// bounded in a flood.
const INDEX_BATCH: usize = 4096;

/// How often the writer takes the queued events when no artifact wakes it
/// sooner: the most an event waits before it is in the event log. Recording
/// an event never wakes the writer (see `Inner::events_tx`).
const EVENT_DRAIN_INTERVAL: Duration = Duration::from_millis(10);

/// Indexer threads started in place of one that died. A panic is a bug; if
/// the same rows cause it again, a few tries bound the thrash, and after them
/// the rows wait in the journal for the next start.
pub(super) const MAX_INDEXER_RESTARTS: u32 = 3;

pub(super) struct WriterInit {
    pub dir: Arc<Dir>,
    pub known: Arc<KnownBodies>,
    pub data_dir: PathBuf,
    pub conn: Connection,
    pub lock: File,
    pub stats: Arc<Stats>,
    pub config: StoreConfig,
}

pub(super) struct Writer {
    dir: Arc<Dir>,
    /// `spampot.db`, to open the indexer's connection again after a restart.
    db_path: PathBuf,
    /// Indexer threads started after the first died (see [`MAX_INDEXER_RESTARTS`]).
    indexer_restarts: u32,
    /// Read-only: which bodies the database has, and the last pack.
    lookup: Connection,
    /// Owns the read-write connection; declared before `_lock` so it is
    /// closed before the lock is released.
    indexer: Indexer,
    events: EventLog,
    packs: PackWriter,
    journal: Journal,
    /// Digests stored, shared with the handles as a hint to skip compression.
    known: Arc<KnownBodies>,
    stats: Arc<Stats>,
    quota_bytes: u64,
    max_batch: usize,
    /// See [`StoreConfig::max_unindexed_artifacts`].
    max_unindexed: usize,
    /// Compressed bytes of all stored blobs (committed).
    blob_bytes: u64,
    /// A `store.quota` event was written since open.
    quota_reported: bool,
    /// Transactions were committed (synchronous=NORMAL) since the WAL was
    /// last fsynced.
    wal_unsynced: bool,
    /// Events in the log but not yet indexed.
    unindexed: Vec<EventMap>,
    /// Acknowledged artifacts (durable in the journal) neither indexed nor
    /// in the indexer's job. With the job's, they run up to the journal's
    /// position: a failed batch cuts its record, and the journal rolls only
    /// once they are all indexed.
    unindexed_entries: Vec<Entry>,
    /// For the digests among them: `stored`, as the database will say once
    /// they are indexed (the batches in between decide on it).
    pending_bodies: HashMap<String, bool>,
    /// The same for the job in flight.
    in_flight_bodies: HashMap<String, bool>,
    /// Since when something waits to be indexed.
    unindexed_since: Option<Instant>,
    /// The data-directory lock; released when the writer is dropped.
    _lock: File,
}

/// Counter changes of one batch, applied only if it commits.
#[derive(Default)]
struct Delta {
    blob_bytes: u64,
    artifacts: u64,
    artifacts_stored: u64,
    messages: u64,
    recipients: u64,
    quota_event: Option<EventMap>,
}

fn count(conn: &Connection, sql: &str) -> rusqlite::Result<u64> {
    conn.query_row(sql, [], |r| r.get::<_, i64>(0))
        .map(|n| n.max(0) as u64)
}

impl Writer {
    pub(super) fn new(init: WriterInit) -> Result<Writer, StoreError> {
        let db_path = init.data_dir.join(DB_FILE);
        let db_err = |source| StoreError::Db {
            path: db_path.clone(),
            source,
        };
        let mut conn = init.conn;
        let journal = open_journal(&init.dir, &mut conn, init.config.journal_roll_bytes).map_err(
            |source| StoreError::Io {
                path: init.data_dir.join(journal::JOURNAL_DIR),
                source,
            },
        )?;
        let blob_bytes = count(
            &conn,
            "SELECT COALESCE(SUM(stored_size), 0) FROM artifacts WHERE stored = 1",
        )
        .map_err(db_err)?;
        let s = &init.stats;
        s.blob_bytes.store(blob_bytes, Ordering::Relaxed);
        s.artifacts.store(
            count(&conn, "SELECT COUNT(*) FROM artifacts").map_err(db_err)?,
            Ordering::Relaxed,
        );
        s.artifacts_stored.store(
            count(&conn, "SELECT COUNT(*) FROM artifacts WHERE stored = 1").map_err(db_err)?,
            Ordering::Relaxed,
        );
        s.messages.store(
            count(&conn, "SELECT COUNT(*) FROM messages").map_err(db_err)?,
            Ordering::Relaxed,
        );
        s.recipients.store(
            count(&conn, "SELECT COUNT(*) FROM recipients").map_err(db_err)?,
            Ordering::Relaxed,
        );
        let events = EventLog::open(init.dir.clone(), init.config.events_rotate_bytes).map_err(
            |source| StoreError::Io {
                path: init.data_dir.join(EVENTS_FILE),
                source,
            },
        )?;
        let lookup = schema::open_lookup(&db_path)?;
        let indexer = Indexer::spawn(conn).map_err(StoreError::Thread)?;
        Ok(Writer {
            dir: init.dir,
            db_path,
            indexer_restarts: 0,
            lookup,
            indexer,
            events,
            packs: PackWriter::new(init.config.pack_roll_bytes),
            journal,
            known: init.known,
            stats: init.stats,
            quota_bytes: init.config.quota_bytes,
            max_batch: init.config.max_batch.max(1),
            max_unindexed: init.config.max_unindexed_artifacts,
            blob_bytes,
            quota_reported: false,
            wal_unsynced: false,
            unindexed: Vec::new(),
            unindexed_entries: Vec::new(),
            pending_bodies: HashMap::new(),
            in_flight_bodies: HashMap::new(),
            unindexed_since: None,
            _lock: init.lock,
        })
    }

    /// The thread body: block for one request, drain what is already queued
    /// (up to `max_batch` artifacts), process the batch, answer, repeat.
    pub(super) fn run(
        mut self,
        mut rx: mpsc::Receiver<Request>,
        mut events_rx: mpsc::Receiver<EventMap>,
        timer: tokio::runtime::Runtime,
    ) {
        loop {
            // Wake for an artifact or a control request, or to drain the
            // events (which never wake the writer) and to index the
            // deferred ones.
            let mut wait = if events_rx.is_empty() {
                EVENT_DRAIN_INTERVAL
            } else {
                Duration::ZERO
            };
            if let Some(since) = self.unindexed_since
                && !self.indexer.busy()
            {
                wait = wait.min(INDEX_DELAY.saturating_sub(since.elapsed()));
            }
            let indexer = &mut self.indexer;
            let woke = timer.block_on(async {
                tokio::select! {
                    r = tokio::time::timeout(wait, rx.recv()) => Ok(r),
                    done = indexer.finished() => Err(done),
                }
            });
            let first = match woke {
                Ok(Ok(Some(req))) => Some(req),
                Ok(Ok(None)) => {
                    // Every handle is gone without close(): shut down cleanly.
                    self.drain_events(&mut events_rx);
                    self.shutdown();
                    return;
                }
                Ok(Err(_elapsed)) => None,
                Err(done) => {
                    self.indexed(done);
                    None
                }
            };
            let mut puts = Vec::new();
            let mut control = first.and_then(|req| sort_request(req, &mut puts));
            while control.is_none() && puts.len() < self.max_batch {
                match rx.try_recv() {
                    Ok(req) => control = sort_request(req, &mut puts),
                    Err(_) => break,
                }
            }
            let events = take_events(&mut events_rx);
            self.process(events, puts);
            if matches!(control, Some(Request::Flush(_) | Request::Close(_))) {
                // Everything recorded before the flush is in the queue now.
                self.drain_events(&mut events_rx);
            }
            match control {
                None | Some(Request::Put(_)) => {}
                Some(Request::Flush(reply)) => {
                    let _ = reply.send(self.sync_to_disk());
                }
                Some(Request::Close(reply)) => {
                    drop(rx); // queued requests after Close see Closed
                    self.shutdown();
                    let _ = reply.send(());
                    return;
                }
                #[cfg(test)]
                Some(Request::Crash) => {
                    let Writer {
                        lookup,
                        indexer,
                        events,
                        _lock,
                        ..
                    } = self;
                    // Like a killed process: no flush of buffers, no close of
                    // the database; only the flock goes away.
                    indexer.crash();
                    std::mem::forget(lookup);
                    std::mem::forget(events);
                    drop(_lock);
                    return;
                }
                #[cfg(test)]
                Some(Request::Panic) => panic!("test-induced store writer panic"),
                #[cfg(test)]
                Some(Request::PanicIndexer) => self.indexer.panic(),
                #[cfg(test)]
                Some(Request::PanicIndexerWithJob) => self.indexer.panic_on_next_job(),
            }
        }
    }

    /// Log and index every event still queued (before a flush or close).
    fn drain_events(&mut self, events_rx: &mut mpsc::Receiver<EventMap>) {
        loop {
            let events = take_events(events_rx);
            if events.is_empty() {
                return;
            }
            self.process(events, Vec::new());
        }
    }

    fn process(&mut self, events: Vec<EventMap>, puts: Vec<PutRequest>) {
        for ev in &events {
            self.log_event(ev);
        }
        if !events.is_empty() {
            self.unindexed_since.get_or_insert_with(Instant::now);
            self.unindexed.extend(events);
        }
        if !puts.is_empty() {
            self.commit_puts(puts);
        }
        let due = self
            .unindexed_since
            .is_some_and(|since| since.elapsed() >= INDEX_DELAY);
        if due || self.unindexed.len() + self.unindexed_entries.len() >= INDEX_BATCH {
            self.start_index();
        }
        if let Err(e) = self.events.end_batch() {
            tracing::warn!("event log write failed: {e}");
        }
    }

    /// Hand the events and artifacts waiting since the last job to the
    /// indexer, unless a job is in flight (its end starts the next one).
    /// The pack is fdatasynced first: rows naming its bytes may become
    /// durable (a checkpoint) before the next flush.
    fn start_index(&mut self) {
        if self.indexer.busy() {
            return;
        }
        self.unindexed_since = None;
        if self.unindexed.is_empty() && self.unindexed_entries.is_empty() {
            return;
        }
        let events = std::mem::take(&mut self.unindexed);
        let entries = std::mem::take(&mut self.unindexed_entries);
        let job = Job {
            entries,
            events,
            position: self.journal.position(),
        };
        if let Err(e) = self.packs.sync() {
            let result = Err(format!("cannot fdatasync the blob pack: {e}"));
            return self.indexed(Done { result, job });
        }
        match self.indexer.send(job) {
            Ok(()) => self.in_flight_bodies = std::mem::take(&mut self.pending_bodies),
            Err(job) => {
                let result = Err("the indexer thread stopped".into());
                self.indexed(Done { result, job });
            }
        }
    }

    /// A job's outcome. On failure its artifacts (acknowledged) wait again,
    /// ahead of the newer ones, and are sent again after [`INDEX_DELAY`];
    /// its events are only in the log then.
    fn indexed(&mut self, done: Done) {
        let Done { result, job } = done;
        match result {
            Ok(()) => {
                self.wal_unsynced = true;
                self.in_flight_bodies.clear();
                if self.stats.index_failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("the capture database takes rows again");
                }
            }
            Err(e) => {
                // Warn once per streak of failures.
                if !self.stats.index_failing.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        artifacts = job.entries.len(),
                        events = job.events.len(),
                        "cannot index into the capture database, will retry: {e}"
                    );
                }
                if !job.entries.is_empty() {
                    let newer = std::mem::replace(&mut self.unindexed_entries, job.entries);
                    self.unindexed_entries.extend(newer);
                    self.unindexed_since = Some(Instant::now());
                }
                // Decisions of later batches are newer than the job's.
                for (sha256, stored) in self.in_flight_bodies.drain() {
                    self.pending_bodies.entry(sha256).or_insert(stored);
                }
            }
        }
        if self.indexer.dead() {
            self.restart_indexer();
        }
        self.count_unindexed();
    }

    /// The indexer thread died (a bug: it panicked). Start another on a new
    /// connection, after putting the artifacts of the job it died with back
    /// from the journal (that job's events stay only in the event log). At
    /// most [`MAX_INDEXER_RESTARTS`] times; after that, rows wait for the
    /// next start and `flush` says so.
    fn restart_indexer(&mut self) {
        if self.indexer_restarts >= MAX_INDEXER_RESTARTS {
            return;
        }
        self.indexer_restarts += 1;
        let lost = self.indexer.lost();
        let started = (|| -> Result<Indexer, String> {
            let mut conn = schema::open_rw(&self.db_path).map_err(|e| e.to_string())?;
            if let Some(until) = lost {
                replay_journal(&self.dir, &mut conn, Some(until)).map_err(|e| e.to_string())?;
                // Short of the job's end, the journal must not roll (a new
                // thread would let it): leave the rows to the next open.
                let reached = journal::recorded_position(&conn).map_err(|e| e.to_string())?;
                if reached != Some(until) {
                    return Err(format!(
                        "the journal replay stopped at {reached:?}, before the lost job's end {until:?}"
                    ));
                }
            }
            Indexer::spawn(conn).map_err(|e| e.to_string())
        })();
        match started {
            Ok(indexer) => {
                // Dropping the old one joins its finished thread.
                self.indexer = indexer;
                // The database holds every artifact up to where the dead
                // thread stopped; what waits goes in the next job.
                self.stats.index_failing.store(false, Ordering::Relaxed);
                tracing::warn!(
                    restarts = self.indexer_restarts,
                    replayed = lost.is_some(),
                    "restarted the store indexer thread"
                );
            }
            Err(e) => tracing::error!(
                "cannot restart the store indexer thread; rows wait for the next start: {e}"
            ),
        }
    }

    /// Index everything waiting now and wait for it (flush, a journal roll,
    /// shutdown). Returns whether nothing is left waiting.
    fn index_all(&mut self) -> bool {
        for _ in 0..2 {
            // The job in flight, then one with everything after it.
            if let Some(done) = self.indexer.wait() {
                self.indexed(done);
            }
            self.start_index();
        }
        if let Some(done) = self.indexer.wait() {
            self.indexed(done);
        }
        self.unindexed_entries.is_empty() && !self.indexer.dead()
    }

    /// Acknowledged artifacts not in the database yet: waiting, and in the
    /// job in flight.
    fn unindexed_count(&self) -> usize {
        self.unindexed_entries.len() + self.indexer.in_flight()
    }

    fn count_unindexed(&self) {
        self.stats
            .unindexed_artifacts
            .store(self.unindexed_count() as u64, Ordering::Relaxed);
    }

    /// One durable batch of artifacts; each caller hears the outcome only
    /// after its body and its journal record are on disk.
    fn commit_puts(&mut self, mut puts: Vec<PutRequest>) {
        let unindexed = self.unindexed_count();
        if unindexed >= self.max_unindexed {
            let msg = format!(
                "the capture database has not taken the rows of {unindexed} acknowledged artifacts; refusing more until it does"
            );
            for p in puts {
                let _ = p.reply.send(Err(PutError::Io(msg.clone())));
            }
            return;
        }
        match self.transact(&mut puts) {
            Ok(done) => {
                self.stats.put_batches.fetch_add(1, Ordering::Relaxed);
                self.apply(done.delta);
                self.unindexed_entries.extend(done.entries);
                self.count_unindexed();
                self.pending_bodies.extend(done.bodies);
                self.unindexed_since.get_or_insert_with(Instant::now);
                for (p, outcome) in puts.into_iter().zip(done.outcomes) {
                    if matches!(outcome, PutOutcome::Stored { .. }) {
                        self.known.insert(outcome.sha256());
                    }
                    let _ = p.reply.send(Ok(outcome));
                }
                if self.journal.wants_roll() {
                    self.roll_journal();
                }
            }
            Err(msg) => {
                tracing::warn!(
                    artifacts = puts.len(),
                    "capture store batch failed, nothing of it is durable: {msg}"
                );
                for p in puts {
                    let _ = p.reply.send(Err(PutError::Io(msg.clone())));
                }
            }
        }
    }

    fn log_event(&mut self, ev: &EventMap) {
        match self.events.append(ev) {
            Ok(()) => {
                self.stats.events_written.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.stats.events_dropped.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("cannot append to the event log: {e}");
            }
        }
    }

    fn apply(&mut self, delta: Delta) {
        let s = &self.stats;
        self.blob_bytes += delta.blob_bytes;
        s.blob_bytes.store(self.blob_bytes, Ordering::Relaxed);
        s.artifacts.fetch_add(delta.artifacts, Ordering::Relaxed);
        s.artifacts_stored
            .fetch_add(delta.artifacts_stored, Ordering::Relaxed);
        s.messages.fetch_add(delta.messages, Ordering::Relaxed);
        s.recipients.fetch_add(delta.recipients, Ordering::Relaxed);
        if let Some(ev) = delta.quota_event {
            self.quota_reported = true;
            self.stats.over_quota.store(true, Ordering::Relaxed);
            tracing::warn!(
                quota_bytes = self.quota_bytes,
                blob_bytes = self.blob_bytes,
                "blob quota reached: further new artifact bodies are counted, not stored"
            );
            self.log_event(&ev);
        }
    }

    /// The database is durable up to the journal's position: start a new
    /// segment and delete the old ones.
    fn roll_journal(&mut self) {
        if !self.index_all() {
            return; // the segment keeps growing until the database takes rows
        }
        let result = sync_wal(&self.dir).and_then(|()| {
            self.wal_unsynced = false;
            self.journal.roll(&self.dir)
        });
        if let Err(e) = result {
            // The segment keeps growing; the next batch tries again.
            tracing::warn!("cannot roll the store journal: {e}");
        }
    }

    /// Decide each artifact's body, stage the new ones; write and fdatasync
    /// the journal record, then write the pack. Nothing of a failed batch
    /// stays.
    fn transact(&mut self, puts: &mut [PutRequest]) -> Result<Batch, String> {
        let before = self.journal.position();
        let result = self.transact_inner(puts);
        if result.is_err() {
            self.journal.abort(before);
            self.packs.abort();
        }
        result
    }

    fn transact_inner(&mut self, puts: &mut [PutRequest]) -> Result<Batch, String> {
        let mut ctx = PutCtx {
            dir: &self.dir,
            conn: &self.lookup,
            packs: &mut self.packs,
            pending: &self.pending_bodies,
            in_flight: &self.in_flight_bodies,
            bodies: HashMap::new(),
            quota_bytes: self.quota_bytes,
            blob_bytes: self.blob_bytes,
            quota_reported: self.quota_reported,
            delta: Delta::default(),
        };
        let mut outcomes = Vec::with_capacity(puts.len());
        let mut entries = Vec::with_capacity(puts.len());
        for p in puts.iter_mut() {
            let (outcome, entry) = put_one(&mut ctx, p)?;
            outcomes.push(outcome);
            entries.push(entry);
        }
        let (delta, bodies) = (ctx.delta, ctx.bodies);
        // One fdatasync makes the batch durable: the journal record carries
        // the new bodies' pack records too. The pack gets the same bytes
        // behind it, synced before any row names them; a crash loses at most
        // what a replay writes again.
        let entries_json =
            serde_json::to_vec(&entries).map_err(|e| format!("cannot encode the batch: {e}"))?;
        self.journal
            .append(&entries_json, self.packs.staged())
            .map_err(|e| format!("cannot write the store journal: {e}"))?;
        self.packs
            .write()
            .map_err(|e| format!("cannot write the blob pack: {e}"))?;
        self.packs.committed();
        Ok(Batch {
            outcomes,
            entries,
            bodies,
            delta,
        })
    }

    /// flush(): everything into the database, the event log and the WAL's
    /// commits to disk.
    fn sync_to_disk(&mut self) -> Result<(), PutError> {
        if !self.index_all() {
            return Err(PutError::Io(
                "the capture database does not take rows (see the log); acknowledged artifacts are safe in the journal".into(),
            ));
        }
        self.events
            .sync()
            .map_err(|e| PutError::Io(format!("cannot sync the event log: {e}")))?;
        if self.wal_unsynced {
            sync_wal(&self.dir)
                .map_err(|e| PutError::Io(format!("cannot fsync the database WAL: {e}")))?;
            self.wal_unsynced = false;
        }
        Ok(())
    }

    fn shutdown(mut self) {
        if let Err(e) = self.sync_to_disk() {
            tracing::warn!("capture store shutdown: {e}");
        }
        let Writer { indexer, _lock, .. } = self;
        // Checkpoints the WAL into the database and closes it.
        indexer.close();
        tracing::info!("capture store closed");
        drop(_lock);
    }
}

/// The events queued now, up to one batch's worth.
fn take_events(events_rx: &mut mpsc::Receiver<EventMap>) -> Vec<EventMap> {
    let mut events = Vec::new();
    while events.len() < MAX_EVENTS_PER_BATCH {
        match events_rx.try_recv() {
            Ok(ev) => events.push(ev),
            Err(_) => break,
        }
    }
    events
}

/// File an artifact into the batch; return a control request.
fn sort_request(req: Request, puts: &mut Vec<PutRequest>) -> Option<Request> {
    match req {
        Request::Put(p) => puts.push(*p),
        other => return Some(other),
    }
    None
}

/// fsync `spampot.db-wal` (the frames of synchronous=NORMAL commits).
/// A checkpoint syncs what it copies into the database file itself.
fn sync_wal(dir: &Dir) -> io::Result<()> {
    match dir.open(format!("{DB_FILE}-wal")) {
        Ok(f) => f.sync_all(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// What a batch that reached the journal leaves to do.
struct Batch {
    outcomes: Vec<PutOutcome>,
    entries: Vec<Entry>,
    /// `stored` of the digests the batch decided on.
    bodies: HashMap<String, bool>,
    delta: Delta,
}

struct PutCtx<'a> {
    dir: &'a Dir,
    conn: &'a Connection,
    packs: &'a mut PackWriter,
    /// Decided by earlier batches, not yet in the database.
    pending: &'a HashMap<String, bool>,
    in_flight: &'a HashMap<String, bool>,
    /// Decided by this batch.
    bodies: HashMap<String, bool>,
    quota_bytes: u64,
    blob_bytes: u64,
    quota_reported: bool,
    delta: Delta,
}

/// Decide one artifact's body (stage it if new and within quota), count it,
/// and return its outcome and its journal entry.
fn put_one(ctx: &mut PutCtx<'_>, p: &mut PutRequest) -> Result<(PutOutcome, Entry), String> {
    let size = p.size();
    let decided = (ctx.bodies.get(&p.sha256))
        .or_else(|| ctx.pending.get(&p.sha256))
        .or_else(|| ctx.in_flight.get(&p.sha256));
    let existing = match decided {
        Some(stored) => Some(*stored),
        None => indexer::stored_state(ctx.conn, &p.sha256)
            .map_err(|e| format!("database error: {e}"))?,
    };
    let body = if existing == Some(true) {
        BodyFate::Known
    } else if p.absent.is_some() {
        // Recorded as its source recorded it: without its bytes.
        BodyFate::OverQuota
    } else {
        let compressed = match p.compressed.take() {
            Some(c) => c,
            None => {
                blobs::compress(&p.data).map_err(|e| format!("zstd compression failed: {e}"))?
            }
        };
        let clen = compressed.len() as u64;
        let fits =
            ctx.quota_bytes == 0 || ctx.blob_bytes + ctx.delta.blob_bytes + clen <= ctx.quota_bytes;
        if fits {
            let (pack, offset) = ctx
                .packs
                .stage(ctx.dir, ctx.conn, &p.sha256, size, &compressed)
                .map_err(|e| format!("cannot write blob {}: {e}", p.sha256))?;
            ctx.delta.blob_bytes += clen;
            ctx.delta.artifacts_stored += 1;
            BodyFate::Packed {
                pack,
                offset,
                stored_len: clen,
            }
        } else {
            if !ctx.quota_reported && ctx.delta.quota_event.is_none() {
                ctx.delta.quota_event = Some(quota_event(
                    p,
                    ctx.quota_bytes,
                    ctx.blob_bytes + ctx.delta.blob_bytes,
                    clen,
                ));
            }
            BodyFate::OverQuota
        }
    };
    // The request is answered from its reply channel alone from here on:
    // its strings move into the entry.
    let o = &mut p.origin;
    let entry = Entry {
        session: std::mem::take(&mut o.session),
        ts: format_ts(&o.timestamp),
        sensor: std::mem::take(&mut o.sensor),
        src_ip: std::mem::take(&mut o.src_ip),
        src_port: o.src_port,
        dst_port: o.dst_port,
        plugin: std::mem::take(&mut o.plugin),
        kind: p.kind.to_string(),
        meta: std::mem::take(&mut p.meta),
        sha256: p.sha256.clone(),
        size,
        body,
    };
    let d = &mut ctx.delta;
    if existing.is_none() {
        d.artifacts += 1;
    }
    if entry.kind == "email" {
        d.messages += 1;
        d.recipients += entry.meta.iter().filter(|(k, _)| k == "rcpt_to").count() as u64;
    }
    let sha256 = p.sha256.clone();
    let outcome = match body {
        BodyFate::Known => PutOutcome::Stored {
            sha256,
            size,
            new_blob: false,
        },
        BodyFate::Packed { .. } => {
            ctx.bodies.insert(sha256.clone(), true);
            PutOutcome::Stored {
                sha256,
                size,
                new_blob: true,
            }
        }
        BodyFate::OverQuota => {
            ctx.bodies.insert(sha256.clone(), false);
            PutOutcome::OverQuota { sha256, size }
        }
    };
    Ok((outcome, entry))
}

/// Replay what the journal holds past the database's position, make the
/// database durable, and start a new segment (deleting the old ones).
fn open_journal(dir: &Dir, conn: &mut Connection, roll_bytes: u64) -> io::Result<Journal> {
    match dir.create_dir(journal::JOURNAL_DIR) {
        Ok(()) => blobs::sync_dir(dir, ".")?,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let from = journal::recorded_position(conn).map_err(io::Error::other)?;
    let segments = journal::segment_ids(dir);
    let replayed = replay_journal(dir, conn, None)?;
    if replayed.0 > 0 {
        tracing::warn!(
            batches = replayed.0,
            artifacts = replayed.1,
            "replayed store batches the database had lost (power loss or crash)"
        );
    }
    sync_wal(dir)?;
    let next = segments
        .last()
        .copied()
        .max(from.map(|p| p.segment))
        .unwrap_or(0)
        + 1;
    let journal = Journal::create(dir, next, roll_bytes)?;
    journal::delete_segments_before(dir, next);
    Ok(journal)
}

/// Put the journal's records past the database's position into it, up to
/// `until` (inclusive) if given: at open, everything; after an indexer
/// thread died, the job it took with it. Returns (records, artifacts).
fn replay_journal(
    dir: &Dir,
    conn: &mut Connection,
    until: Option<Position>,
) -> io::Result<(usize, usize)> {
    let from = journal::recorded_position(conn).map_err(io::Error::other)?;
    let mut replayed = (0usize, 0usize);
    for id in journal::segment_ids(dir) {
        let Some(start) = journal::replay_start(from, id) else {
            continue;
        };
        for (payload, end) in journal::read_records(dir, id, start)? {
            let position = Position {
                segment: id,
                offset: end,
            };
            if until.is_some_and(|u| position > u) {
                return Ok(replayed);
            }
            match replay_batch(dir, conn, &payload, position) {
                Ok(n) => {
                    replayed.0 += 1;
                    replayed.1 += n;
                }
                Err(e) => {
                    // Not acknowledged (its bodies never became durable) or
                    // unreadable: what follows in this segment is not either.
                    tracing::warn!(segment = id, offset = end, "journal replay stopped: {e}");
                    break;
                }
            }
        }
    }
    Ok(replayed)
}

/// Insert one journal record's rows (and its position) in one transaction.
/// Writes the record's bodies back into their pack first (a power loss may
/// have taken them) and refuses it if they still are not where it says.
fn replay_batch(
    dir: &Dir,
    conn: &mut Connection,
    payload: &[u8],
    position: Position,
) -> Result<usize, String> {
    let payload = journal::decode_payload(payload).map_err(|e| format!("unreadable batch: {e}"))?;
    let entries: Vec<Entry> = serde_json::from_slice(payload.entries_json)
        .map_err(|e| format!("unreadable batch: {e}"))?;
    if let Some((pack, offset, bytes)) = payload.pack {
        blobs::restore_records(dir, pack, offset, bytes)
            .map_err(|e| format!("cannot write bodies back into pack {pack}: {e}"))?;
    }
    for e in &entries {
        if let BodyFate::Packed {
            pack,
            offset,
            stored_len,
        } = e.body
        {
            blobs::check_record(dir, pack, offset, &e.sha256, stored_len)
                .map_err(|err| format!("body {} is not in pack {pack}: {err}", e.sha256))?;
        }
    }
    let sql = |e: rusqlite::Error| format!("database error: {e}");
    let tx = conn.transaction().map_err(sql)?;
    indexer::index_entries(&tx, &entries).map_err(sql)?;
    journal::record_position(&tx, position).map_err(sql)?;
    tx.commit().map_err(sql)?;
    Ok(entries.len())
}

/// The `store.quota` event, with the common fields of the artifact that
/// crossed the quota.
fn quota_event(p: &PutRequest, quota_bytes: u64, blob_bytes: u64, needed: u64) -> EventMap {
    let o = &p.origin;
    let mut m = Map::new();
    m.insert("eventid".into(), "store.quota".into());
    m.insert("timestamp".into(), format_ts(&chrono::Utc::now()).into());
    m.insert("sensor".into(), o.sensor.clone().into());
    m.insert("session".into(), o.session.clone().into());
    m.insert("src_ip".into(), o.src_ip.clone().into());
    m.insert("src_port".into(), o.src_port.into());
    m.insert("dst_port".into(), o.dst_port.into());
    m.insert("plugin".into(), o.plugin.clone().into());
    m.insert("quota_bytes".into(), quota_bytes.into());
    m.insert("blob_bytes".into(), blob_bytes.into());
    m.insert("sha256".into(), p.sha256.clone().into());
    m.insert("kind".into(), p.kind.into());
    m.insert("size".into(), p.size().into());
    m.insert("stored_size".into(), needed.into());
    m
}

/// Prefix of rotated event logs: `events-<UTC>.jsonl`, `events-<UTC>-<n>.jsonl`.
pub(super) const ROTATED_PREFIX: &str = "events-";
/// Format of the timestamp in rotated names; sorts lexicographically in time
/// order and has a fixed length of 20.
pub(super) const ROTATED_STAMP: &str = "%Y%m%dT%H%M%S%.3fZ";

/// The append-only event log.
struct EventLog {
    dir: Arc<Dir>,
    file: BufWriter<File>,
    len: u64,
    rotate_bytes: u64,
    line: Vec<u8>,
}

impl EventLog {
    fn open_file(dir: &Dir) -> io::Result<(File, u64)> {
        let existed = dir.exists(EVENTS_FILE);
        let mut f = dir.open_with(
            EVENTS_FILE,
            OpenOptions::new().read(true).append(true).create(true),
        )?;
        let mut len = f.metadata()?.len();
        if len > 0 {
            // A crash can leave a partial last line; terminate it so the next
            // event does not get glued to it (export skips the bad line).
            let mut last = [0u8];
            f.seek(SeekFrom::End(-1))?;
            f.read_exact(&mut last)?;
            if last[0] != b'\n' {
                f.write_all(b"\n")?;
                len += 1;
                tracing::warn!("{EVENTS_FILE} ended with a partial line; terminated it");
            }
        }
        if !existed {
            blobs::sync_dir(dir, ".")?;
        }
        Ok((f, len))
    }

    fn open(dir: Arc<Dir>, rotate_bytes: u64) -> io::Result<EventLog> {
        let (f, len) = Self::open_file(&dir)?;
        Ok(EventLog {
            dir,
            file: BufWriter::with_capacity(EVENT_BUFFER, f),
            len,
            rotate_bytes,
            line: Vec::with_capacity(1024),
        })
    }

    fn append(&mut self, ev: &EventMap) -> io::Result<()> {
        // Serialise first, so a line is either written whole or not at all.
        self.line.clear();
        serde_json::to_writer(&mut self.line, ev)?;
        self.line.push(b'\n');
        self.file.write_all(&self.line)?;
        self.len += self.line.len() as u64;
        Ok(())
    }

    /// End of a batch: hand the lines to the OS, rotate if due.
    fn end_batch(&mut self) -> io::Result<()> {
        self.file.flush()?;
        if self.rotate_bytes > 0 && self.len > self.rotate_bytes {
            self.rotate()?;
        }
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        self.file.flush()?;
        self.file.get_ref().sync_data()
    }

    fn rotate(&mut self) -> io::Result<()> {
        self.sync()?;
        let stamp = chrono::Utc::now().format(ROTATED_STAMP).to_string();
        let mut name = format!("{ROTATED_PREFIX}{stamp}.jsonl");
        let mut n = 1u32;
        // Never overwrite: the lock makes this thread the only writer.
        while self.dir.exists(&name) {
            name = format!("{ROTATED_PREFIX}{stamp}-{n}.jsonl");
            n += 1;
        }
        self.dir.rename(EVENTS_FILE, &self.dir, &name)?;
        let (f, len) = Self::open_file(&self.dir)?;
        self.file = BufWriter::with_capacity(EVENT_BUFFER, f);
        self.len = len;
        tracing::info!(rotated_to = %name, "event log rotated");
        Ok(())
    }
}
