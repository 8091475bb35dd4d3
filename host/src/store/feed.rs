//! The data directory as a feed: what a collector pulls from a sensor, one
//! page at a time, from a cursor the collector keeps (`GET /feed` in
//! `admin.rs` serves it, `collector.rs` reads it). Read-only, like
//! `export`: it runs beside the writer and takes no lock.
//!
//! A cursor names the store it was made on (its identity, drawn when the
//! store was made: a sensor reinstalled under the same name has another,
//! and its row ids start again) and holds one position per source, each
//! moving on its own:
//! * the event log: a file, named by its inode (a rotation renames the file
//!   and keeps the inode, so a position survives it), and a byte offset;
//! * `messages`: the last row id sent;
//! * `artifact_sightings`: the last row id sent.
//!
//! Rows are sent with the artifact's origin and its meta pairs as the
//! plugin gave them (rebuilt from the row's columns), so the collector can
//! put them into its own store and get the same rows.

use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::export::{file_id, rotated_event_files};
use super::indexer::EmailMeta;
use super::{DB_FILE, EVENTS_FILE, schema};

/// Where a collector is in each of a sensor's sources. The default is the
/// very beginning.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedCursor {
    /// The identity of the sensor's store (`store` table); 0 before the
    /// first page, or from a sensor older than that table.
    #[serde(default)]
    pub store: i64,
    /// Inode of the event-log file being read; 0 before the first.
    #[serde(default)]
    pub events_file: u64,
    /// Bytes of that file already sent (always at a line end).
    #[serde(default)]
    pub events_offset: u64,
    /// The last `messages.id` sent.
    #[serde(default)]
    pub message_id: i64,
    /// The last `artifact_sightings.id` sent.
    #[serde(default)]
    pub sighting_id: i64,
}

impl FeedCursor {
    /// The cursor as the query string of `GET /feed`.
    pub fn query(&self) -> String {
        format!(
            "store={}&events_file={}&events_offset={}&message_id={}&sighting_id={}",
            self.store, self.events_file, self.events_offset, self.message_id, self.sighting_id
        )
    }
}

/// How much one page may carry.
#[derive(Debug, Clone, Copy)]
pub struct FeedLimits {
    /// Bytes of event log per page (whole lines; a single longer line is
    /// sent whole).
    pub event_bytes: u64,
    /// Rows of `messages` and of `artifact_sightings` per page, each.
    pub rows: u32,
    /// Bytes of stored bodies the rows of each table may point at (a row
    /// is always sent, however large its body): a collector holds a page's
    /// bodies in memory before it writes any of the page.
    pub body_bytes: u64,
}

impl Default for FeedLimits {
    fn default() -> Self {
        FeedLimits {
            // ~10,000 events of a busy sensor: a page is a few MiB of JSON,
            // quick to send and to ingest, and far under the client's cap.
            event_bytes: 4 << 20,
            // A message row with 9 recipients is ~1 KiB of JSON.
            rows: 1000,
            // 1,000 messages of SpamPots' typical 5 KB fit many times over;
            // uploads of several MiB make shorter pages.
            body_bytes: 32 << 20,
        }
    }
}

/// One artifact put, as the sensor's store recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedArtifact {
    /// Row id on the sensor (`messages.id` or `artifact_sightings.id`).
    pub id: i64,
    pub session: String,
    /// RFC 3339 UTC with milliseconds, as stored.
    pub ts: String,
    pub sensor: String,
    pub src_ip: String,
    pub src_port: u16,
    pub dst_port: u16,
    pub plugin: String,
    pub kind: String,
    pub sha256: String,
    pub size: u64,
    /// False when the sensor's quota refused the body: only the row exists.
    pub stored: bool,
    pub meta: Vec<(String, String)>,
}

/// One page of the feed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FeedPage {
    pub events: Vec<Map<String, Value>>,
    pub messages: Vec<FeedArtifact>,
    pub sightings: Vec<FeedArtifact>,
    /// Lines of the event log that are not JSON objects (a crash's torn
    /// line), passed over.
    pub skipped_lines: u64,
    /// Where the next page starts.
    pub next: FeedCursor,
    /// True when a source stopped at this page's limit: ask again at once.
    pub more: bool,
    /// Messages past `next` when the page was read: how far a collector
    /// that stops here is behind. From the largest row id, so a row id
    /// the indexer skipped would count once too many. `None` from a
    /// sensor older than this field.
    #[serde(default)]
    pub messages_left: Option<u64>,
}

/// Why a page cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    #[error(
        "this sensor's store is not the one the cursor was made on (identity {now:016x}, not {was:016x}): its data directory was replaced; `spampot collect --start-over NAME` pulls it from its beginning"
    )]
    StoreReplaced { was: i64, now: i64 },
    #[error(
        "the event log file of this cursor (inode {0}) is no longer in the data directory: it was deleted or moved away"
    )]
    CursorGone(u64),
    #[error("the event log is shorter than this cursor's offset {offset} (inode {file})")]
    BadOffset { file: u64, offset: u64 },
    #[error("cannot read {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: io::Error,
    },
    #[error(transparent)]
    Store(#[from] super::StoreError),
    #[error("cannot read the database {path}: {source}")]
    Db {
        path: std::path::PathBuf,
        source: rusqlite::Error,
    },
}

/// A single event line longer than this is refused rather than read into
/// memory: the host caps what a session may emit far below it.
const MAX_LINE_BYTES: u64 = 64 << 20;

/// Read the page that starts at `cursor`.
pub fn read_page(
    data_dir: &Path,
    cursor: &FeedCursor,
    limits: FeedLimits,
) -> Result<FeedPage, FeedError> {
    let mut page = FeedPage {
        next: *cursor,
        ..FeedPage::default()
    };
    let db_path = data_dir.join(DB_FILE);
    let db_err = |source| FeedError::Db {
        path: db_path.clone(),
        source,
    };
    // Before anything is read: a cursor from another store would point at
    // other files and rows, or silently past the new ones.
    let conn = if db_path.exists() {
        Some(schema::open_ro(&db_path)?)
    } else {
        None
    };
    if let Some(conn) = &conn {
        let now = schema::store_identity(conn).map_err(db_err)?;
        if cursor.store != 0 && cursor.store != now {
            return Err(FeedError::StoreReplaced {
                was: cursor.store,
                now,
            });
        }
        page.next.store = now;
    }
    read_events(data_dir, cursor, limits.event_bytes, &mut page)?;
    if let Some(conn) = conn {
        let full_messages;
        let full_sightings;
        (page.messages, full_messages) =
            read_messages(&conn, cursor.message_id, limits).map_err(db_err)?;
        (page.sightings, full_sightings) =
            read_sightings(&conn, cursor.sighting_id, limits).map_err(db_err)?;
        page.more |= full_messages || full_sightings;
        if let Some(last) = page.messages.last() {
            page.next.message_id = last.id;
        }
        if let Some(last) = page.sightings.last() {
            page.next.sighting_id = last.id;
        }
        let newest: i64 = conn
            .query_row("SELECT coalesce(max(id), 0) FROM messages", [], |r| {
                r.get(0)
            })
            .map_err(db_err)?;
        page.messages_left = Some(newest.saturating_sub(page.next.message_id).max(0) as u64);
    }
    Ok(page)
}

/// The event-log files in order, oldest first, each with its inode; the
/// current log is last. Opened before they are read, so a rotation in
/// between renames a file this already holds.
fn event_files(data_dir: &Path) -> Result<Vec<EventFile>, FeedError> {
    let io_err = |source| FeedError::Io {
        path: data_dir.to_path_buf(),
        source,
    };
    let dir = Dir::open_ambient_dir(data_dir, ambient_authority()).map_err(io_err)?;
    let current = match dir.open(EVENTS_FILE) {
        Ok(f) => Some(f.into_std()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(io_err(e)),
    };
    let current_id = current.as_ref().and_then(file_id);
    let mut files = Vec::new();
    for name in rotated_event_files(&dir).map_err(io_err)? {
        let file = match dir.open(&name) {
            Ok(f) => f.into_std(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(e)),
        };
        match file_id(&file) {
            Some(id) if Some(id) != current_id => files.push(EventFile {
                inode: id.1,
                name,
                file,
                current: false,
            }),
            _ => {}
        }
    }
    if let (Some(file), Some(id)) = (current, current_id) {
        files.push(EventFile {
            inode: id.1,
            name: EVENTS_FILE.to_owned(),
            file,
            current: true,
        });
    }
    Ok(files)
}

/// An event-log file, open.
struct EventFile {
    inode: u64,
    name: String,
    file: std::fs::File,
    /// `events.jsonl`, still written to.
    current: bool,
}

fn read_events(
    data_dir: &Path,
    cursor: &FeedCursor,
    budget: u64,
    page: &mut FeedPage,
) -> Result<(), FeedError> {
    let files = event_files(data_dir)?;
    let start = if cursor.events_file == 0 {
        0
    } else {
        files
            .iter()
            .position(|f| f.inode == cursor.events_file)
            .ok_or(FeedError::CursorGone(cursor.events_file))?
    };
    let mut offset = if cursor.events_file == 0 {
        0
    } else {
        cursor.events_offset
    };
    let mut budget = budget;
    for EventFile {
        inode,
        name,
        file,
        current,
    } in files.into_iter().skip(start)
    {
        let path = data_dir.join(name);
        let io_err = |source| FeedError::Io {
            path: path.clone(),
            source,
        };
        let len = file.metadata().map_err(io_err)?.len();
        if offset > len {
            return Err(FeedError::BadOffset {
                file: inode,
                offset,
            });
        }
        let mut reader = BufReader::with_capacity(256 * 1024, file);
        reader.seek(SeekFrom::Start(offset)).map_err(io_err)?;
        let mut line = Vec::new();
        page.next.events_file = inode;
        loop {
            if budget == 0 {
                page.next.events_offset = offset;
                page.more = true;
                return Ok(());
            }
            line.clear();
            // One line at most MAX_LINE_BYTES, however large the budget.
            let n = (&mut reader)
                .take(MAX_LINE_BYTES)
                .read_until(b'\n', &mut line)
                .map_err(io_err)? as u64;
            let complete = line.last() == Some(&b'\n');
            // The current log's last line may be half written: leave it for
            // the next page. A rotated log is whole (a torn line there is
            // from a crash; it is passed over below).
            if n == 0 || (!complete && current) {
                break;
            }
            if !complete && n >= MAX_LINE_BYTES {
                return Err(io_err(io::Error::other(format!(
                    "an event line at offset {offset} is longer than {MAX_LINE_BYTES} bytes"
                ))));
            }
            offset += n;
            budget = budget.saturating_sub(n);
            match serde_json::from_slice::<Map<String, Value>>(&line) {
                Ok(event) => page.events.push(event),
                Err(_) => page.skipped_lines += 1,
            }
        }
        page.next.events_offset = offset;
        if current {
            break;
        }
        offset = 0;
    }
    Ok(())
}

type Origin = (String, String, String, String, u16, u16, String);

fn origin(row: &rusqlite::Row<'_>) -> rusqlite::Result<Origin> {
    Ok((
        row.get("session")?,
        row.get("ts")?,
        row.get("sensor")?,
        row.get("src_ip")?,
        row.get("src_port")?,
        row.get("dst_port")?,
        row.get("plugin")?,
    ))
}

fn artifact(
    id: i64,
    (session, ts, sensor, src_ip, src_port, dst_port, plugin): Origin,
    kind: String,
    sha256: String,
    size: u64,
    stored: bool,
    meta: Vec<(String, String)>,
) -> FeedArtifact {
    FeedArtifact {
        id,
        session,
        ts,
        sensor,
        src_ip,
        src_port,
        dst_port,
        plugin,
        kind,
        sha256,
        size,
        stored,
        meta,
    }
}

/// Rows taken so far against a page's limits.
struct Taken {
    limits: FeedLimits,
    rows: u32,
    body_bytes: u64,
}

impl Taken {
    fn new(limits: FeedLimits) -> Taken {
        Taken {
            limits,
            rows: 0,
            body_bytes: 0,
        }
    }

    /// Count a row; true when the page has no room for another.
    fn full_after(&mut self, row: &FeedArtifact) -> bool {
        self.rows += 1;
        if row.stored {
            self.body_bytes += row.size;
        }
        self.rows >= self.limits.rows || self.body_bytes >= self.limits.body_bytes
    }
}

fn read_messages(
    conn: &Connection,
    after: i64,
    limits: FeedLimits,
) -> rusqlite::Result<(Vec<FeedArtifact>, bool)> {
    let mut rows = conn.prepare(
        "SELECT id, session, ts, sensor, src_ip, src_port, dst_port, plugin, helo, mail_from,
                size, sha256, stored, via, target_host, probe, queue_id, persona, extra_meta
         FROM messages WHERE id > ?1 ORDER BY id LIMIT ?2",
    )?;
    let mut recipients = conn
        .prepare_cached("SELECT address FROM recipients WHERE message_id = ?1 ORDER BY position")?;
    let (mut out, mut taken) = (Vec::new(), Taken::new(limits));
    let mut it = rows.query(params![after, limits.rows])?;
    while let Some(row) = it.next()? {
        let id: i64 = row.get("id")?;
        let rcpt_to = recipients
            .query_map([id], |r| r.get::<_, String>(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let extra: Option<String> = row.get("extra_meta")?;
        let meta = EmailMeta {
            helo: row.get("helo")?,
            mail_from: row.get("mail_from")?,
            rcpt_to,
            target_host: row.get("target_host")?,
            via: row.get("via")?,
            probe: row.get("probe")?,
            queue_id: row.get("queue_id")?,
            persona: row.get("persona")?,
            extra: extra.as_deref().map(pairs).unwrap_or_default(),
        };
        out.push(artifact(
            id,
            origin(row)?,
            "email".into(),
            row.get("sha256")?,
            row.get("size")?,
            row.get("stored")?,
            meta.into_pairs(),
        ));
        if taken.full_after(&out[out.len() - 1]) {
            return Ok((out, true));
        }
    }
    Ok((out, false))
}

fn read_sightings(
    conn: &Connection,
    after: i64,
    limits: FeedLimits,
) -> rusqlite::Result<(Vec<FeedArtifact>, bool)> {
    let mut rows = conn.prepare(
        "SELECT s.id, s.session, s.ts, s.sensor, s.src_ip, s.src_port, s.dst_port, s.plugin,
                s.kind, s.sha256, s.meta, a.size, a.stored
         FROM artifact_sightings s JOIN artifacts a ON a.sha256 = s.sha256
         WHERE s.id > ?1 ORDER BY s.id LIMIT ?2",
    )?;
    let (mut out, mut taken) = (Vec::new(), Taken::new(limits));
    let mut it = rows.query(params![after, limits.rows])?;
    while let Some(row) = it.next()? {
        let meta: String = row.get("meta")?;
        out.push(artifact(
            row.get("id")?,
            origin(row)?,
            row.get("kind")?,
            row.get("sha256")?,
            row.get("size")?,
            row.get("stored")?,
            pairs(&meta),
        ));
        if taken.full_after(&out[out.len() - 1]) {
            return Ok((out, true));
        }
    }
    Ok((out, false))
}

/// `[["key","value"], ...]` as the indexer wrote it.
fn pairs(json: &str) -> Vec<(String, String)> {
    serde_json::from_str::<Vec<(String, String)>>(json).unwrap_or_default()
}
