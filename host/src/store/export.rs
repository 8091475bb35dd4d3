//! The read side, for offline commands: `spampot export` and `spampot show
//! message`. Opens the database read-only; safe to run while the honeypot
//! writes (WAL readers do not block the writer).

use std::borrow::Cow;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::Path;
use std::str::FromStr;

use cap_std::ambient_authority;
use cap_std::fs::Dir;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value};

use spampot_blobstore::{BlobError, Form};

use super::blobs::{self, is_lower_hex, is_sha256_hex};
use super::writer::{ROTATED_PREFIX, ROTATED_STAMP};
use super::{DB_FILE, EVENTS_FILE, StoreError, schema};

/// What `export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportWhat {
    /// Every event, from events.jsonl and its rotated files, oldest first.
    Events,
    /// Every row of `messages` with its recipients, in arrival order.
    Messages,
}

/// Output format of `export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// One JSON object per line.
    Jsonl,
    /// RFC 4180 CSV with a header line.
    Csv,
}

impl FromStr for ExportWhat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "events" => Ok(ExportWhat::Events),
            "messages" => Ok(ExportWhat::Messages),
            _ => Err(format!("unknown export {s:?}: expected events or messages")),
        }
    }
}

impl FromStr for ExportFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "jsonl" => Ok(ExportFormat::Jsonl),
            "csv" => Ok(ExportFormat::Csv),
            _ => Err(format!("unknown format {s:?}: expected jsonl or csv")),
        }
    }
}

fn open_dir(data_dir: &Path) -> Result<Dir, StoreError> {
    Dir::open_ambient_dir(data_dir, ambient_authority()).map_err(|source| StoreError::Io {
        path: data_dir.to_path_buf(),
        source,
    })
}

fn db_err(data_dir: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Db {
        path: data_dir.join(DB_FILE),
        source,
    }
}

/// Write every event or message of the data directory to `out`; returns the
/// number of rows (lines after the CSV header). Streams: memory use does not
/// grow with the data.
pub fn export(
    data_dir: &Path,
    what: ExportWhat,
    format: ExportFormat,
    out: &mut dyn Write,
) -> Result<u64, StoreError> {
    let mut out = BufWriter::with_capacity(64 * 1024, out);
    let rows = match what {
        ExportWhat::Events => export_events(data_dir, format, &mut out)?,
        ExportWhat::Messages => export_messages(data_dir, format, &mut out)?,
    };
    out.flush().map_err(StoreError::Output)?;
    Ok(rows)
}

/// Names of the rotated event logs, oldest first (by timestamp, then
/// sequence number).
pub(super) fn rotated_event_files(dir: &Dir) -> io::Result<Vec<String>> {
    let mut rotated: Vec<(String, u32, String)> = Vec::new();
    for entry in dir.entries()? {
        let name = entry?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(key) = rotated_key(name) {
            rotated.push((key.0.to_string(), key.1, name.to_string()));
        }
    }
    rotated.sort();
    Ok(rotated.into_iter().map(|(_, _, n)| n).collect())
}

/// Identity of an open file, to notice the same file under two names.
pub(super) fn file_id(file: &std::fs::File) -> Option<(u64, u64)> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        file.metadata().ok().map(|m| (m.dev(), m.ino()))
    }
    #[cfg(not(unix))]
    {
        let _ = file;
        None
    }
}

/// `events-20261127T044021.123Z[-N].jsonl` → ("20261127T044021.123Z", N).
fn rotated_key(name: &str) -> Option<(&str, u32)> {
    let rest = name.strip_prefix(ROTATED_PREFIX)?.strip_suffix(".jsonl")?;
    let stamp_len = 20;
    debug_assert_eq!(
        chrono::DateTime::<chrono::Utc>::UNIX_EPOCH
            .format(ROTATED_STAMP)
            .to_string()
            .len(),
        stamp_len
    );
    if rest.len() < stamp_len || !rest.is_char_boundary(stamp_len) {
        return None;
    }
    let (stamp, seq) = rest.split_at(stamp_len);
    if !stamp
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'T' | b'Z' | b'.'))
    {
        return None;
    }
    let seq = match seq {
        "" => 0,
        s => s.strip_prefix('-')?.parse().ok()?,
    };
    Some((stamp, seq))
}

/// The common event fields, as CSV columns; everything else goes into the
/// `fields` column as a JSON object.
const EVENT_COLUMNS: &[&str] = &[
    "timestamp",
    "eventid",
    "sensor",
    "session",
    "src_ip",
    "src_port",
    "dst_port",
    "plugin",
];

fn export_events(
    data_dir: &Path,
    format: ExportFormat,
    out: &mut dyn Write,
) -> Result<u64, StoreError> {
    let dir = open_dir(data_dir)?;
    let dir_err = |source| StoreError::Io {
        path: data_dir.to_path_buf(),
        source,
    };
    // Open the current log first and keep it open: if the honeypot rotates
    // it meanwhile, the held descriptor follows the renamed file, and the
    // rotated name is then skipped in the listing below (same inode).
    let current = match dir.open(EVENTS_FILE) {
        Ok(f) => Some(f.into_std()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(dir_err(e)),
    };
    let current_id = current.as_ref().and_then(file_id);
    if format == ExportFormat::Csv {
        let mut header: Vec<Cow<str>> = EVENT_COLUMNS.iter().map(|c| Cow::from(*c)).collect();
        header.push("fields".into());
        csv_row(out, &header).map_err(StoreError::Output)?;
    }
    let mut rows = 0u64;
    let mut line = Vec::with_capacity(4096);
    for name in rotated_event_files(&dir).map_err(dir_err)? {
        let path = data_dir.join(&name);
        let file = match dir.open(&name) {
            Ok(f) => f.into_std(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => return Err(StoreError::Io { path, source }),
        };
        if current_id.is_some() && file_id(&file) == current_id {
            continue; // the held current log, read last
        }
        rows += export_event_file(&path, file, format, out, &mut line)?;
    }
    if let Some(file) = current {
        let path = data_dir.join(EVENTS_FILE);
        rows += export_event_file(&path, file, format, out, &mut line)?;
    }
    Ok(rows)
}

/// Export the events of one log file; returns how many.
fn export_event_file(
    path: &Path,
    file: std::fs::File,
    format: ExportFormat,
    out: &mut dyn Write,
    line: &mut Vec<u8>,
) -> Result<u64, StoreError> {
    let io_err = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let mut lineno = 0u64;
    let mut rows = 0u64;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', line).map_err(io_err)?;
        if n == 0 {
            break;
        }
        lineno += 1;
        let text = trim_line(line);
        if text.is_empty() {
            continue;
        }
        let event: Map<String, Value> = match serde_json::from_slice(text) {
            Ok(e) => e,
            Err(e) => {
                // A torn line from a crash; skip it, say where.
                tracing::warn!(file = %path.display(), line = lineno, "skipping bad event line: {e}");
                continue;
            }
        };
        match format {
            ExportFormat::Jsonl => {
                out.write_all(text)
                    .and_then(|()| out.write_all(b"\n"))
                    .map_err(StoreError::Output)?;
            }
            ExportFormat::Csv => {
                let mut event = event;
                let mut cells: Vec<Cow<str>> = Vec::with_capacity(EVENT_COLUMNS.len() + 1);
                for col in EVENT_COLUMNS {
                    cells.push(match event.remove(*col) {
                        None | Some(Value::Null) => Cow::Borrowed(""),
                        Some(Value::String(s)) => Cow::Owned(s),
                        Some(v) => Cow::Owned(v.to_string()),
                    });
                }
                cells.push(Cow::Owned(Value::Object(event).to_string()));
                csv_row(out, &cells).map_err(StoreError::Output)?;
            }
        }
        rows += 1;
    }
    Ok(rows)
}

fn trim_line(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b'\n' | b'\r') {
        end -= 1;
    }
    &line[..end]
}

/// Columns of the messages export, in order.
const MESSAGE_COLUMNS: &[&str] = &[
    "id",
    "session",
    "ts",
    "sensor",
    "src_ip",
    "src_port",
    "dst_port",
    "plugin",
    "helo",
    "mail_from",
    "rcpt_count",
    "recipients",
    "size",
    "sha256",
    "stored",
    "via",
    "target_host",
    "probe",
    "queue_id",
    "persona",
    "extra_meta",
];

fn export_messages(
    data_dir: &Path,
    format: ExportFormat,
    out: &mut dyn Write,
) -> Result<u64, StoreError> {
    let conn = schema::open_ro(&data_dir.join(DB_FILE))?;
    let err = db_err(data_dir);
    let mut stmt = conn
        .prepare(
            "SELECT m.id, m.session, m.ts, m.sensor, m.src_ip, m.src_port, m.dst_port, m.plugin,
                 m.helo, m.mail_from, m.rcpt_count,
                 (SELECT json_group_array(address) FROM
                     (SELECT address FROM recipients r WHERE r.message_id = m.id ORDER BY position)),
                 m.size, m.sha256, m.stored, m.via, m.target_host, m.probe, m.queue_id,
                 m.persona, m.extra_meta
             FROM messages m ORDER BY m.id",
        )
        .map_err(&err)?;
    if format == ExportFormat::Csv {
        let header: Vec<Cow<str>> = MESSAGE_COLUMNS.iter().map(|c| Cow::from(*c)).collect();
        csv_row(out, &header).map_err(StoreError::Output)?;
    }
    let mut rows = stmt.query([]).map_err(&err)?;
    let mut count = 0u64;
    while let Some(row) = rows.next().map_err(&err)? {
        let mut values = Vec::with_capacity(MESSAGE_COLUMNS.len());
        for (i, col) in MESSAGE_COLUMNS.iter().enumerate() {
            let v: rusqlite::types::Value = row.get(i).map_err(&err)?;
            values.push(message_value(col, v));
        }
        match format {
            ExportFormat::Jsonl => {
                let obj: Map<String, Value> = MESSAGE_COLUMNS
                    .iter()
                    .map(|c| c.to_string())
                    .zip(values)
                    .collect();
                serde_json::to_writer(&mut *out, &obj)
                    .map_err(io::Error::from)
                    .and_then(|()| out.write_all(b"\n"))
                    .map_err(StoreError::Output)?;
            }
            ExportFormat::Csv => {
                let cells: Vec<Cow<str>> = values
                    .into_iter()
                    .map(|v| match v {
                        Value::Null => Cow::Borrowed(""),
                        Value::String(s) => Cow::Owned(s),
                        Value::Bool(b) => Cow::Borrowed(if b { "true" } else { "false" }),
                        other => Cow::Owned(other.to_string()),
                    })
                    .collect();
                csv_row(out, &cells).map_err(StoreError::Output)?;
            }
        }
        count += 1;
    }
    Ok(count)
}

/// A messages column as JSON: flags as booleans, JSON columns parsed.
fn message_value(col: &str, v: rusqlite::types::Value) -> Value {
    use rusqlite::types::Value as Sql;
    match (col, v) {
        (_, Sql::Null) => Value::Null,
        ("stored" | "probe", Sql::Integer(i)) => Value::Bool(i != 0),
        ("recipients" | "extra_meta", Sql::Text(t)) => {
            serde_json::from_str(&t).unwrap_or(Value::String(t))
        }
        (_, Sql::Integer(i)) => i.into(),
        (_, Sql::Real(f)) => f.into(),
        (_, Sql::Text(t)) => t.into(),
        (_, Sql::Blob(b)) => hex::encode(b).into(),
    }
}

/// One CSV record (RFC 4180: quote fields with `,` `"` CR or LF, double quotes).
fn csv_row(out: &mut dyn Write, cells: &[Cow<str>]) -> io::Result<()> {
    for (i, cell) in cells.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        if cell.contains([',', '"', '\r', '\n']) {
            out.write_all(b"\"")?;
            out.write_all(cell.replace('"', "\"\"").as_bytes())?;
            out.write_all(b"\"")?;
        } else {
            out.write_all(cell.as_bytes())?;
        }
    }
    out.write_all(b"\r\n")
}

/// Validate a full digest from user input.
fn check_sha256(input: &str) -> Result<(), StoreError> {
    if is_sha256_hex(input) {
        Ok(())
    } else {
        Err(StoreError::InvalidSha256 {
            input: input.to_string(),
            reason: "expected exactly 64 lowercase hex characters",
        })
    }
}

/// Resolve a digest or unique prefix (8..=64 lowercase hex) to a full digest
/// known to the `artifacts` table.
fn resolve_sha256(conn: &Connection, data_dir: &Path, prefix: &str) -> Result<String, StoreError> {
    if prefix.len() < 8 || prefix.len() > 64 || !is_lower_hex(prefix) {
        return Err(StoreError::InvalidSha256 {
            input: prefix.to_string(),
            reason: "expected 8 to 64 lowercase hex characters (a digest or a unique prefix)",
        });
    }
    // Hex digits sort below 'g': [prefix, prefix+"g") is the prefix range,
    // which uses the primary key.
    let mut stmt = conn
        .prepare("SELECT sha256 FROM artifacts WHERE sha256 >= ?1 AND sha256 < ?2 LIMIT 2")
        .map_err(db_err(data_dir))?;
    let found: Vec<String> = stmt
        .query_map(params![prefix, format!("{prefix}g")], |r| r.get(0))
        .and_then(|rows| rows.collect())
        .map_err(db_err(data_dir))?;
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(StoreError::NotFound {
            path: data_dir.join(DB_FILE),
            what: format!("artifact {prefix}"),
        }),
        _ => Err(StoreError::Ambiguous {
            prefix: prefix.to_string(),
        }),
    }
}

/// Make attacker-controlled text safe to print on a terminal: control
/// characters are shown escaped.
fn printable(s: &str) -> Cow<'_, str> {
    if s.chars().any(char::is_control) {
        Cow::Owned(
            s.chars()
                .map(|c| {
                    if c.is_control() {
                        c.escape_default().to_string()
                    } else {
                        c.to_string()
                    }
                })
                .collect(),
        )
    } else {
        Cow::Borrowed(s)
    }
}

/// Print the envelope of the message with this digest (or unique prefix of at
/// least 8 hex digits) — first/last seen, count, sources, HELOs, senders,
/// recipients, all taken from the `messages` table — then a blank line and
/// the raw decompressed message. Envelope values are escaped for the
/// terminal; the message itself is written as received.
pub fn show_message(data_dir: &Path, sha256: &str, out: &mut dyn Write) -> Result<(), StoreError> {
    let conn = schema::open_ro(&data_dir.join(DB_FILE))?;
    let sha = resolve_sha256(&conn, data_dir, sha256)?;
    let err = db_err(data_dir);
    let (size, stored, stored_size, kind): (i64, bool, i64, String) = conn
        .query_row(
            "SELECT size, stored, stored_size, kind FROM artifacts WHERE sha256 = ?1",
            [&sha],
            |r| Ok((r.get(0)?, r.get::<_, i64>(1)? != 0, r.get(2)?, r.get(3)?)),
        )
        .map_err(&err)?;
    let summary: Option<(i64, String, String)> = conn
        .query_row(
            "SELECT COUNT(*), MIN(ts), MAX(ts) FROM messages WHERE sha256 = ?1 HAVING COUNT(*) > 0",
            [&sha],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()
        .map_err(&err)?;
    let Some((count, first, last)) = summary else {
        return Err(StoreError::NotFound {
            path: data_dir.join(DB_FILE),
            what: format!("message {sha} (it is a {kind} artifact, not an email)"),
        });
    };
    let list = |sql: &str| -> Result<Vec<(String, i64)>, StoreError> {
        let mut stmt = conn.prepare(sql).map_err(&err)?;
        stmt.query_map([&sha], |r| {
            Ok((
                r.get::<_, Option<String>>(0)?.unwrap_or_default(),
                r.get(1)?,
            ))
        })
        .and_then(|rows| rows.collect())
        .map_err(&err)
    };
    let sources = list(
        "SELECT src_ip, COUNT(*) FROM messages WHERE sha256 = ?1
         GROUP BY src_ip ORDER BY COUNT(*) DESC, src_ip",
    )?;
    let helos = list(
        "SELECT helo, COUNT(*) FROM messages WHERE sha256 = ?1
         GROUP BY helo ORDER BY COUNT(*) DESC, helo",
    )?;
    let senders = list(
        "SELECT mail_from, COUNT(*) FROM messages WHERE sha256 = ?1
         GROUP BY mail_from ORDER BY COUNT(*) DESC, mail_from",
    )?;
    let recipients = list(
        "SELECT r.address, COUNT(*) FROM recipients r JOIN messages m ON m.id = r.message_id
         WHERE m.sha256 = ?1 GROUP BY r.address ORDER BY r.address",
    )?;
    let joined = |items: &[(String, i64)]| -> String {
        items
            .iter()
            .map(|(v, n)| format!("{} ({n})", printable(v)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut head = String::new();
    head.push_str(&format!("sha256:      {sha}\n"));
    head.push_str(&format!("size:        {size} bytes"));
    if stored {
        head.push_str(&format!(" ({stored_size} bytes stored, zstd)\n"));
    } else {
        head.push_str(" (body not stored: over quota)\n");
    }
    head.push_str(&format!("first seen:  {first}\n"));
    head.push_str(&format!("last seen:   {last}\n"));
    head.push_str(&format!("count:       {count}\n"));
    head.push_str(&format!("sources:     {}\n", joined(&sources)));
    head.push_str(&format!("helo:        {}\n", joined(&helos)));
    head.push_str(&format!("mail from:   {}\n", joined(&senders)));
    head.push_str(&format!("recipients:  {} distinct\n", recipients.len()));
    for (addr, n) in &recipients {
        head.push_str(&format!("  {} ({n})\n", printable(addr)));
    }
    head.push('\n');
    out.write_all(head.as_bytes()).map_err(StoreError::Output)?;
    if stored {
        stream_blob(&conn, data_dir, &sha, out)?;
    }
    out.flush().map_err(StoreError::Output)
}

/// Map the shared reader's errors to the store's, with full paths.
fn blob_err(data_dir: &Path, sha256: &str, e: BlobError) -> StoreError {
    match e {
        BlobError::BadName(input) => StoreError::InvalidSha256 {
            input,
            reason: "expected exactly 64 lowercase hex characters",
        },
        BlobError::Unknown(_) => StoreError::NotFound {
            path: data_dir.join(DB_FILE),
            what: format!("artifact {sha256}"),
        },
        BlobError::NotStored(_) => StoreError::NotFound {
            path: data_dir.join(blobs::BLOBS_DIR),
            what: format!("blob {sha256} (not stored: over quota)"),
        },
        BlobError::Missing { path } => StoreError::NotFound {
            path: data_dir.join(path),
            what: format!("blob {sha256}"),
        },
        BlobError::Corrupt { path, reason } => StoreError::Corrupt {
            path: data_dir.join(path),
            reason,
        },
        BlobError::Io { path, source } => StoreError::Io {
            path: data_dir.join(path),
            source,
        },
        BlobError::Db(source) => StoreError::Db {
            path: data_dir.join(DB_FILE),
            source,
        },
        BlobError::Output(e) => StoreError::Output(e),
    }
}

/// Stream the decompressed, verified body `sha256` to `out`, from its pack
/// record or legacy file (the shared reader decides which).
fn stream_blob(
    conn: &Connection,
    data_dir: &Path,
    sha256: &str,
    out: &mut dyn Write,
) -> Result<(), StoreError> {
    let dir = open_dir(data_dir)?;
    spampot_blobstore::read_blob(conn, &dir, sha256, Form::Decompressed, out)
        .map(|_| ())
        .map_err(|e| blob_err(data_dir, sha256, e))
}

/// What [`verify`] found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Verification {
    /// Stored bodies read back, decompressed and found to match their digest.
    pub intact: u64,
    /// Their size as received, in bytes.
    pub bytes: u64,
    /// Artifacts recorded over quota: no body to check.
    pub not_stored: u64,
    /// Stored bodies that are missing, damaged or not what their row says.
    pub failed: u64,
}

/// Read back every stored body the database knows, in pack order, through
/// the same reader `show` and the report use: each is located, decompressed
/// and its SHA-256 compared with its digest. Each failure is written to
/// `out` as `sha256: reason` as it is found; the counts come back. Evidence
/// a CSIRT hands on is only as good as this check: a flipped bit in a pack
/// shows here, not at the first `show` of that message.
pub fn verify(data_dir: &Path, out: &mut dyn Write) -> Result<Verification, StoreError> {
    let conn = schema::open_ro(&data_dir.join(DB_FILE))?;
    let dir = open_dir(data_dir)?;
    let err = db_err(data_dir);
    // `open_ro` accepts only this binary's schema, which has packs. Pack
    // order reads each pack front to back; legacy files (no pack) first.
    let mut stmt = conn
        .prepare("SELECT sha256, stored FROM artifacts ORDER BY pack, pack_offset, sha256")
        .map_err(&err)?;
    let rows = stmt
        .query_map([], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? != 0))
        })
        .map_err(&err)?;
    let mut found = Verification::default();
    for row in rows {
        let (sha256, stored) = row.map_err(&err)?;
        if !stored {
            found.not_stored += 1;
            continue;
        }
        match spampot_blobstore::read_blob(
            &conn,
            &dir,
            &sha256,
            Form::Decompressed,
            &mut io::sink(),
        ) {
            Ok(n) => {
                found.intact += 1;
                found.bytes += n;
            }
            Err(e) => {
                found.failed += 1;
                let why = blob_err(data_dir, &sha256, e);
                writeln!(out, "{sha256}: {why}").map_err(StoreError::Output)?;
            }
        }
    }
    Ok(found)
}

/// The decompressed content of blob `sha256` (exactly 64 lowercase hex
/// characters), verified against its digest.
pub fn read_blob(data_dir: &Path, sha256: &str) -> Result<Vec<u8>, StoreError> {
    check_sha256(sha256)?;
    let conn = schema::open_ro(&data_dir.join(DB_FILE))?;
    let mut buf = Vec::new();
    stream_blob(&conn, data_dir, sha256, &mut buf)?;
    Ok(buf)
}

/// Reads bodies by digest like [`read_blob`], over one database
/// connection for all of them.
pub struct BlobReader {
    conn: Connection,
    data_dir: std::path::PathBuf,
}

impl BlobReader {
    pub fn open(data_dir: &Path) -> Result<BlobReader, StoreError> {
        Ok(BlobReader {
            conn: schema::open_ro(&data_dir.join(DB_FILE))?,
            data_dir: data_dir.to_path_buf(),
        })
    }

    /// The decompressed body, verified against its digest.
    pub fn read(&self, sha256: &str) -> Result<Vec<u8>, StoreError> {
        check_sha256(sha256)?;
        let mut buf = Vec::new();
        stream_blob(&self.conn, &self.data_dir, sha256, &mut buf)?;
        Ok(buf)
    }
}
