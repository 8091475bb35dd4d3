//! The indexer thread: owns the read-write SQLite connection and puts the
//! rows of acknowledged artifacts and of events into it, one transaction per
//! job, while the writer goes on acknowledging. Under `smtp-source` a job of
//! 50 ms of traffic (the delay then) took ~9 ms; done on the writer's
//! thread, every 250 in that window waited for it.
//!
//! One job is in flight at a time. A job that fails comes back whole, so the
//! writer keeps its artifacts (they are acknowledged, and safe in the
//! journal) and sends them again. A thread that dies (a bug: it panicked)
//! takes its job with it; the writer starts another (`Writer::restart_indexer`)
//! and replays that job's artifacts from the journal.

use std::sync::mpsc as std_mpsc;
use std::thread::JoinHandle;

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use serde_json::Value;
use tokio::sync::mpsc;

use super::blobs;
use super::journal::{self, BodyFate, Entry, Position};
use super::{EventMap, format_ts};

/// What the writer hands over: the acknowledged artifacts and the logged
/// events not yet in the database, and the journal position they reach.
pub(super) struct Job {
    pub entries: Vec<Entry>,
    pub events: Vec<EventMap>,
    pub position: Position,
}

/// A job's outcome; the job comes back so a failed one can be sent again.
pub(super) struct Done {
    pub result: Result<(), String>,
    pub job: Job,
}

enum Order {
    Index(Job),
    /// Test hook: stop like a killed process (the connection is not closed).
    #[cfg(test)]
    Crash,
    /// Test hook: panic in the indexer thread.
    #[cfg(test)]
    Panic,
    /// Test hook: panic on receiving the next job (it dies with the job).
    #[cfg(test)]
    PanicOnNextJob,
}

pub(super) struct Indexer {
    orders: Option<std_mpsc::Sender<Order>>,
    done: mpsc::UnboundedReceiver<Done>,
    thread: Option<JoinHandle<()>>,
    /// Artifacts and journal position of the job in flight, if one is.
    in_flight: Option<(usize, Position)>,
    /// The thread is gone (a bug: it panicked); nothing is indexed any more.
    dead: bool,
    /// Where the journal ends for the job the thread died with, if it died
    /// holding one with artifacts: they are only in the journal now.
    lost: Option<Position>,
}

impl Indexer {
    pub(super) fn spawn(conn: Connection) -> std::io::Result<Indexer> {
        let (orders, orders_rx) = std_mpsc::channel();
        let (done_tx, done) = mpsc::unbounded_channel();
        let thread = std::thread::Builder::new()
            .name("spampot-index".into())
            .spawn(move || run(conn, orders_rx, done_tx))?;
        Ok(Indexer {
            orders: Some(orders),
            done,
            thread: Some(thread),
            in_flight: None,
            dead: false,
            lost: None,
        })
    }

    /// Artifacts in the job in flight (0 if none is).
    pub(super) fn in_flight(&self) -> usize {
        self.in_flight.map_or(0, |(n, _)| n)
    }

    pub(super) fn busy(&self) -> bool {
        self.in_flight.is_some()
    }

    /// Whether the thread is gone: the rows of what was acknowledged since
    /// wait for the journal's replay at the next open.
    pub(super) fn dead(&self) -> bool {
        self.dead
    }

    /// The journal position of the job the thread died with, if any.
    pub(super) fn lost(&self) -> Option<Position> {
        self.lost
    }

    /// Hand a job over; the caller checked that none is in flight.
    pub(super) fn send(&mut self, job: Job) -> Result<(), Job> {
        debug_assert!(self.in_flight.is_none());
        let flight = (job.entries.len(), job.position);
        let Some(orders) = &self.orders else {
            return Err(job);
        };
        match orders.send(Order::Index(job)) {
            Ok(()) => {
                self.in_flight = Some(flight);
                Ok(())
            }
            Err(std_mpsc::SendError(Order::Index(job))) => {
                self.dead = true;
                Err(job)
            }
            #[cfg(test)]
            Err(_) => unreachable!("only index orders are sent here"),
        }
    }

    /// The job in flight's outcome, once it is known (for `select!`).
    pub(super) async fn finished(&mut self) -> Done {
        if self.in_flight.is_none() {
            return std::future::pending().await;
        }
        let done = self.done.recv().await;
        self.landed(done)
    }

    /// Block until the job in flight is done; `None` if none is.
    pub(super) fn wait(&mut self) -> Option<Done> {
        self.in_flight?;
        let done = self.done.blocking_recv();
        Some(self.landed(done))
    }

    /// A thread that died (a bug: it panicked) took its job with it; the
    /// journal still holds those artifacts, up to the job's position.
    fn landed(&mut self, done: Option<Done>) -> Done {
        let (artifacts, position) = self.in_flight.take().expect("a job was in flight");
        done.unwrap_or_else(|| {
            self.dead = true;
            // A job of events only has nothing the journal could give back.
            self.lost = (artifacts > 0).then_some(position);
            tracing::error!("the store indexer thread stopped with a job");
            Done {
                result: Err("the indexer thread stopped".into()),
                job: Job {
                    entries: Vec::new(),
                    events: Vec::new(),
                    position,
                },
            }
        })
    }

    /// Wait for the job in flight, checkpoint the WAL into the database and
    /// close the connection (what dropping it does too).
    pub(super) fn close(self) {}

    /// Hang up and wait for the thread to end.
    fn stop(&mut self) {
        self.orders = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    #[cfg(test)]
    pub(super) fn panic(&self) {
        if let Some(orders) = &self.orders {
            let _ = orders.send(Order::Panic);
        }
    }

    #[cfg(test)]
    pub(super) fn panic_on_next_job(&self) {
        if let Some(orders) = &self.orders {
            let _ = orders.send(Order::PanicOnNextJob);
        }
    }

    #[cfg(test)]
    pub(super) fn crash(mut self) {
        if let Some(orders) = &self.orders {
            let _ = orders.send(Order::Crash);
        }
        self.stop();
    }
}

impl Drop for Indexer {
    fn drop(&mut self) {
        // Also on a writer panic: the database is closed before the
        // data-directory lock (dropped after this) lets another store in.
        self.stop();
    }
}

/// The thread body: one transaction per job, until the writer hangs up.
fn run(mut conn: Connection, orders: std_mpsc::Receiver<Order>, done: mpsc::UnboundedSender<Done>) {
    #[cfg(test)]
    let mut panic_on_job = false;
    while let Ok(order) = orders.recv() {
        match order {
            Order::Index(job) => {
                #[cfg(test)]
                if panic_on_job {
                    panic!("test-induced store indexer panic with a job");
                }
                let result = index_job(&mut conn, &job);
                if done.send(Done { result, job }).is_err() {
                    break;
                }
            }
            #[cfg(test)]
            Order::Crash => {
                std::mem::forget(conn);
                return;
            }
            #[cfg(test)]
            Order::Panic => panic!("test-induced store indexer panic"),
            #[cfg(test)]
            Order::PanicOnNextJob => panic_on_job = true,
        }
    }
    // Fold the WAL into the database so the directory is a single file plus
    // blobs for copying; best effort.
    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())) {
        tracing::debug!("WAL checkpoint at close failed: {e}");
    }
}

/// One job in one transaction, without fsync (`flush`, a journal roll and
/// shutdown sync the WAL). An event the tables refuse is only in the log.
fn index_job(conn: &mut Connection, job: &Job) -> Result<(), String> {
    let sql = |e: rusqlite::Error| e.to_string();
    let tx = conn.transaction().map_err(sql)?;
    index_entries(&tx, &job.entries).map_err(sql)?;
    if !job.entries.is_empty() {
        journal::record_position(&tx, job.position).map_err(sql)?;
    }
    for ev in &job.events {
        if let Err(e) = index_event(&tx, ev) {
            tracing::warn!(eventid = ?ev.get("eventid"), "cannot index event: {e}");
        }
    }
    tx.commit().map_err(sql)
}

/// `Some(stored)` if `artifacts` has a row for the digest.
pub(super) fn stored_state(conn: &Connection, sha256: &str) -> rusqlite::Result<Option<bool>> {
    conn.prepare_cached("SELECT stored FROM artifacts WHERE sha256 = ?1")?
        .query_row([sha256], |r| r.get::<_, i64>(0).map(|s| s != 0))
        .optional()
}

/// Insert one artifact's rows as its entry says: the `artifacts` row (new,
/// or one more sighting) and its `messages`+`recipients` or
/// `artifact_sightings` row. `existing` is [`stored_state`] before it.
fn apply_entry(tx: &Transaction<'_>, e: &Entry, existing: Option<bool>) -> rusqlite::Result<()> {
    let (stored, stored_size, pack, pack_offset) = match e.body {
        BodyFate::Known => (true, None, None, None),
        BodyFate::Packed {
            pack,
            offset,
            stored_len,
        } => (true, Some(stored_len), Some(pack), Some(offset)),
        BodyFate::OverQuota => (false, Some(0), None, None),
    };
    match (existing, stored_size) {
        (Some(_), None) => {
            tx.prepare_cached(
                "UPDATE artifacts SET seen_count = seen_count + 1,
                     first_seen = MIN(first_seen, ?2), last_seen = MAX(last_seen, ?2)
                 WHERE sha256 = ?1",
            )?
            .execute(params![e.sha256, e.ts])?;
        }
        (Some(_), Some(stored_size)) => {
            tx.prepare_cached(
                "UPDATE artifacts SET stored = ?2, stored_size = ?3,
                     seen_count = seen_count + 1,
                     first_seen = MIN(first_seen, ?4), last_seen = MAX(last_seen, ?4),
                     pack = ?5, pack_offset = ?6
                 WHERE sha256 = ?1",
            )?
            .execute(params![
                e.sha256,
                stored,
                stored_size,
                e.ts,
                pack,
                pack_offset
            ])?;
        }
        (None, stored_size) => {
            // A `Known` body without a row happens only in a replay over a
            // database that lost more than the journal holds: keep the
            // sighting, flagged as not stored.
            let stored = stored && stored_size.is_some();
            tx.prepare_cached(
                "INSERT INTO artifacts (sha256, kind, size, stored_size, stored, first_seen,
                     last_seen, seen_count, pack, pack_offset)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, 1, ?7, ?8)",
            )?
            .execute(params![
                e.sha256,
                e.kind,
                e.size,
                stored_size.unwrap_or(0),
                stored,
                e.ts,
                pack,
                pack_offset
            ])?;
        }
    }
    let stored = stored && (existing.is_some() || stored_size.is_some());
    if e.kind == "email" {
        let m = EmailMeta::parse(&e.meta);
        let extra = (!m.extra.is_empty()).then(|| pairs_json(&m.extra));
        tx.prepare_cached(
            "INSERT INTO messages (session, ts, sensor, src_ip, src_port, dst_port, plugin,
                 helo, mail_from, rcpt_count, size, sha256, stored, via, target_host, probe,
                 queue_id, persona, extra_meta)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16,
                 ?17, ?18, ?19)",
        )?
        .execute(params![
            e.session,
            e.ts,
            e.sensor,
            e.src_ip,
            e.src_port,
            e.dst_port,
            e.plugin,
            m.helo,
            m.mail_from,
            m.rcpt_to.len() as i64,
            e.size,
            e.sha256,
            stored,
            m.via,
            m.target_host,
            m.probe,
            m.queue_id,
            m.persona,
            extra,
        ])?;
        let message_id = tx.last_insert_rowid();
        let mut ins = tx.prepare_cached(
            "INSERT INTO recipients (message_id, position, address) VALUES (?1, ?2, ?3)",
        )?;
        for (i, addr) in m.rcpt_to.iter().enumerate() {
            ins.execute(params![message_id, i as i64, addr])?;
        }
    } else {
        tx.prepare_cached(
            "INSERT INTO artifact_sightings
                 (sha256, session, ts, sensor, src_ip, src_port, dst_port, plugin, kind, meta)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        )?
        .execute(params![
            e.sha256,
            e.session,
            e.ts,
            e.sensor,
            e.src_ip,
            e.src_port,
            e.dst_port,
            e.plugin,
            e.kind,
            pairs_json(&e.meta),
        ])?;
    }
    Ok(())
}

/// The rows of acknowledged artifacts, in the order they were decided: the
/// deferred index and a journal replay are the same code.
pub(super) fn index_entries(tx: &Transaction<'_>, entries: &[Entry]) -> rusqlite::Result<()> {
    for e in entries {
        let existing = stored_state(tx, &e.sha256)?;
        apply_entry(tx, e, existing)?;
        if let BodyFate::Packed {
            pack,
            offset,
            stored_len,
        } = e.body
        {
            blobs::extend_pack_row(tx, pack, offset, stored_len)?;
        }
    }
    Ok(())
}

/// `[["key","value"], ...]`: keeps order and repeated keys.
fn pairs_json(pairs: &[(String, String)]) -> String {
    let v: Vec<[&str; 2]> = pairs
        .iter()
        .map(|(k, v)| [k.as_str(), v.as_str()])
        .collect();
    serde_json::to_string(&v).unwrap_or_else(|_| "[]".into())
}

/// The envelope of an email artifact, from its meta pairs.
#[derive(Default, Debug, PartialEq, Eq)]
pub(super) struct EmailMeta {
    pub(super) helo: Option<String>,
    pub(super) mail_from: Option<String>,
    pub(super) rcpt_to: Vec<String>,
    pub(super) target_host: Option<String>,
    pub(super) via: Option<String>,
    pub(super) probe: Option<bool>,
    pub(super) queue_id: Option<String>,
    pub(super) persona: Option<String>,
    /// Unknown keys, repeats of single-valued keys, unparsable `probe`.
    pub(super) extra: Vec<(String, String)>,
}

impl EmailMeta {
    pub(super) fn parse(meta: &[(String, String)]) -> EmailMeta {
        let mut m = EmailMeta::default();
        for (k, v) in meta {
            let slot = match k.as_str() {
                "rcpt_to" => {
                    m.rcpt_to.push(v.clone());
                    continue;
                }
                "probe" if m.probe.is_none() => {
                    match v.as_str() {
                        "true" => m.probe = Some(true),
                        "false" => m.probe = Some(false),
                        _ => m.extra.push((k.clone(), v.clone())),
                    }
                    continue;
                }
                "helo" => &mut m.helo,
                "mail_from" => &mut m.mail_from,
                "target_host" => &mut m.target_host,
                "via" => &mut m.via,
                "queue_id" => &mut m.queue_id,
                "persona" => &mut m.persona,
                _ => {
                    m.extra.push((k.clone(), v.clone()));
                    continue;
                }
            };
            if slot.is_none() {
                *slot = Some(v.clone());
            } else {
                m.extra.push((k.clone(), v.clone()));
            }
        }
        m
    }

    /// Meta pairs that [`parse`](Self::parse) turns back into this envelope:
    /// the columns of a `messages` row as a plugin could have sent them (the
    /// collector puts them into its own store this way).
    pub(super) fn into_pairs(self) -> Vec<(String, String)> {
        let single = [
            ("helo", self.helo),
            ("mail_from", self.mail_from),
            ("target_host", self.target_host),
            ("via", self.via),
            ("probe", self.probe.map(|p| p.to_string())),
            ("queue_id", self.queue_id),
            ("persona", self.persona),
        ];
        let mut pairs: Vec<(String, String)> = single
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_owned(), v?)))
            .collect();
        pairs.extend(self.rcpt_to.into_iter().map(|a| ("rcpt_to".to_owned(), a)));
        pairs.extend(self.extra);
        pairs
    }
}

/// A field as text: strings as is, numbers and booleans printed, arrays and
/// objects as JSON, null/missing as None.
fn text(ev: &EventMap, key: &str) -> Option<String> {
    match ev.get(key)? {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// A field as an integer: JSON numbers (clamped) or numeric strings.
fn int(ev: &EventMap, key: &str) -> Option<i64> {
    match ev.get(key)? {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_u64().map(|_| i64::MAX))
            .or_else(|| n.as_f64().map(|f| f as i64)),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

/// Index one event into the report tables (events the store does not know
/// are only in the event log).
fn index_event(tx: &Transaction<'_>, ev: &EventMap) -> rusqlite::Result<()> {
    let Some(eventid) = ev.get("eventid").and_then(Value::as_str) else {
        return Ok(());
    };
    let ts = text(ev, "timestamp").unwrap_or_else(|| format_ts(&chrono::Utc::now()));
    match eventid {
        "session.open" => {
            let Some(session) = text(ev, "session") else {
                return Ok(());
            };
            tx.prepare_cached(
                "INSERT INTO sessions (session, sensor, src_ip, src_port, dst_port, plugin, started_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT(session) DO UPDATE SET
                     sensor = excluded.sensor, src_ip = excluded.src_ip,
                     src_port = excluded.src_port, dst_port = excluded.dst_port,
                     plugin = excluded.plugin, started_at = excluded.started_at",
            )?
            .execute(params![
                session,
                text(ev, "sensor"),
                text(ev, "src_ip"),
                int(ev, "src_port"),
                int(ev, "dst_port"),
                text(ev, "plugin"),
                ts,
            ])?;
        }
        "session.close" => {
            let Some(session) = text(ev, "session") else {
                return Ok(());
            };
            // Upsert: the open may be missing (lost, or before this store).
            tx.prepare_cached(
                "INSERT INTO sessions (session, sensor, src_ip, src_port, dst_port, plugin,
                     ended_at, duration_ms, bytes_in, bytes_out, reason)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)
                 ON CONFLICT(session) DO UPDATE SET
                     ended_at = excluded.ended_at, duration_ms = excluded.duration_ms,
                     bytes_in = excluded.bytes_in, bytes_out = excluded.bytes_out,
                     reason = excluded.reason",
            )?
            .execute(params![
                session,
                text(ev, "sensor"),
                text(ev, "src_ip"),
                int(ev, "src_port"),
                int(ev, "dst_port"),
                text(ev, "plugin"),
                ts,
                int(ev, "duration_ms"),
                int(ev, "bytes_in"),
                int(ev, "bytes_out"),
                text(ev, "reason"),
            ])?;
        }
        "proxy.request" => {
            tx.prepare_cached(
                "INSERT INTO requests (session, ts, sensor, src_ip, dst_port, plugin,
                     module, kind, target_host, target_port)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                text(ev, "session"),
                ts,
                text(ev, "sensor"),
                text(ev, "src_ip"),
                int(ev, "dst_port"),
                text(ev, "plugin"),
                text(ev, "module"),
                text(ev, "kind"),
                text(ev, "target_host"),
                int(ev, "target_port"),
            ])?;
        }
        "credential" => {
            tx.prepare_cached(
                "INSERT INTO credentials (session, ts, sensor, src_ip, dst_port, plugin,
                     protocol, mechanism, username, password)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?
            .execute(params![
                text(ev, "session"),
                ts,
                text(ev, "sensor"),
                text(ev, "src_ip"),
                int(ev, "dst_port"),
                text(ev, "plugin"),
                text(ev, "protocol"),
                text(ev, "mechanism"),
                text(ev, "username"),
                text(ev, "password"),
            ])?;
        }
        _ => {}
    }
    Ok(())
}
