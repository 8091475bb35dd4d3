//! The SQLite schema and its versioned migrations.
//!
//! `PRAGMA user_version` holds the number of migrations applied. Each entry of
//! [`MIGRATIONS`] is applied in order, each in its own IMMEDIATE transaction
//! that also bumps `user_version`, so a crash mid-upgrade leaves the database
//! at the last complete step. Migrations are append-only: never edit a step
//! that has shipped, add a new one.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use super::StoreError;

/// `PRAGMA application_id` of a spampot database ("SPPT"), so that pointing
/// `--data` at some other SQLite file fails clearly instead of half-migrating it.
pub const APPLICATION_ID: i64 = 0x5350_5054;

/// How long a connection waits for a lock held by another connection
/// (an export running while the honeypot writes) before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Version 1: the tables.
const M1_TABLES: &str = r#"
PRAGMA application_id = 1397772372;

CREATE TABLE sessions (
    session     TEXT PRIMARY KEY,
    sensor      TEXT,
    src_ip      TEXT,
    src_port    INTEGER,
    dst_port    INTEGER,
    plugin      TEXT,
    started_at  TEXT,
    ended_at    TEXT,
    duration_ms INTEGER,
    bytes_in    INTEGER,
    bytes_out   INTEGER,
    reason      TEXT
) WITHOUT ROWID;

CREATE TABLE requests (
    id          INTEGER PRIMARY KEY,
    session     TEXT,
    ts          TEXT NOT NULL,
    sensor      TEXT,
    src_ip      TEXT,
    dst_port    INTEGER,
    plugin      TEXT,
    module      TEXT,
    kind        TEXT,
    target_host TEXT,
    target_port INTEGER
);

CREATE TABLE credentials (
    id          INTEGER PRIMARY KEY,
    session     TEXT,
    ts          TEXT NOT NULL,
    sensor      TEXT,
    src_ip      TEXT,
    dst_port    INTEGER,
    plugin      TEXT,
    protocol    TEXT,
    mechanism   TEXT,
    username    TEXT,
    password    TEXT
);

CREATE TABLE artifacts (
    sha256      TEXT PRIMARY KEY,
    kind        TEXT NOT NULL,
    size        INTEGER NOT NULL,
    stored_size INTEGER NOT NULL DEFAULT 0,
    stored      INTEGER NOT NULL DEFAULT 0,
    first_seen  TEXT NOT NULL,
    last_seen   TEXT NOT NULL,
    seen_count  INTEGER NOT NULL DEFAULT 1
) WITHOUT ROWID;

CREATE TABLE artifact_sightings (
    id          INTEGER PRIMARY KEY,
    sha256      TEXT NOT NULL REFERENCES artifacts(sha256),
    session     TEXT,
    ts          TEXT NOT NULL,
    sensor      TEXT,
    src_ip      TEXT,
    src_port    INTEGER,
    dst_port    INTEGER,
    plugin      TEXT,
    kind        TEXT NOT NULL,
    meta        TEXT NOT NULL
);

CREATE TABLE messages (
    id          INTEGER PRIMARY KEY,
    session     TEXT,
    ts          TEXT NOT NULL,
    sensor      TEXT,
    src_ip      TEXT,
    src_port    INTEGER,
    dst_port    INTEGER,
    plugin      TEXT,
    helo        TEXT,
    mail_from   TEXT,
    rcpt_count  INTEGER NOT NULL,
    size        INTEGER NOT NULL,
    sha256      TEXT NOT NULL REFERENCES artifacts(sha256),
    stored      INTEGER NOT NULL,
    via         TEXT,
    target_host TEXT,
    probe       INTEGER,
    queue_id    TEXT,
    persona     TEXT,
    extra_meta  TEXT
);

CREATE TABLE recipients (
    message_id  INTEGER NOT NULL REFERENCES messages(id),
    position    INTEGER NOT NULL,
    address     TEXT NOT NULL,
    PRIMARY KEY (message_id, position)
) WITHOUT ROWID;
"#;

/// Version 2: the indexes the reports and `show message` need.
const M2_INDEXES: &str = r#"
CREATE INDEX sessions_started_at  ON sessions(started_at);
CREATE INDEX sessions_src_ip      ON sessions(src_ip);
CREATE INDEX requests_ts          ON requests(ts);
CREATE INDEX requests_src_ip      ON requests(src_ip);
CREATE INDEX requests_module_kind ON requests(module, kind);
CREATE INDEX requests_session     ON requests(session);
CREATE INDEX credentials_ts       ON credentials(ts);
CREATE INDEX credentials_src_ip   ON credentials(src_ip);
CREATE INDEX artifacts_kind       ON artifacts(kind);
CREATE INDEX sightings_sha256     ON artifact_sightings(sha256);
CREATE INDEX sightings_ts         ON artifact_sightings(ts);
CREATE INDEX sightings_src_ip     ON artifact_sightings(src_ip);
CREATE INDEX messages_ts          ON messages(ts);
CREATE INDEX messages_src_ip      ON messages(src_ip);
CREATE INDEX messages_sha256      ON messages(sha256);
CREATE INDEX messages_session     ON messages(session);
CREATE INDEX recipients_address   ON recipients(address);
"#;

/// Every migration, in order. `MIGRATIONS[i]` takes `user_version` i to i+1.
pub const MIGRATIONS: &[&str] = &[M1_TABLES, M2_INDEXES];

/// The schema version this binary writes and reads (`PRAGMA user_version`).
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

fn db_err(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Db {
        path: path.to_path_buf(),
        source,
    }
}

fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
}

fn check_application_id(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let id: i64 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .map_err(db_err(path))?;
    if id != 0 && id != APPLICATION_ID {
        return Err(StoreError::NotSpampotDb {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// Open (creating if needed) the database for the writer: WAL, synchronous=FULL,
/// busy timeout, then apply pending migrations.
pub(super) fn open_rw(path: &Path) -> Result<Connection, StoreError> {
    let err = db_err(path);
    let mut conn = Connection::open(path).map_err(&err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(&err)?;
    check_application_id(&conn, path)?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(&err)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Db {
            path: path.to_path_buf(),
            source: rusqlite::Error::InvalidParameterName(format!(
                "journal_mode=WAL refused (got {mode}); is the file system local?"
            )),
        });
    }
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(&err)?;
    conn.set_prepared_statement_cache_capacity(32);
    migrate(&mut conn, path)?;
    Ok(conn)
}

/// Bring `conn` to [`SCHEMA_VERSION`]; refuse a database written by a newer binary.
pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let err = db_err(path);
    loop {
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        // Read inside the write transaction: another process cannot migrate
        // concurrently (the data-directory lock prevents it anyway).
        let version = user_version(&tx).map_err(&err)?;
        if !(0..=SCHEMA_VERSION).contains(&version) {
            return Err(StoreError::NewerSchema {
                path: path.to_path_buf(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version == SCHEMA_VERSION {
            return Ok(());
        }
        let step = MIGRATIONS[version as usize];
        tx.execute_batch(step)
            .map_err(|source| StoreError::Migration {
                path: path.to_path_buf(),
                to_version: version + 1,
                source,
            })?;
        tx.pragma_update(None, "user_version", version + 1)
            .map_err(&err)?;
        tx.commit().map_err(&err)?;
        tracing::info!(db = %path.display(), version = version + 1, "store schema migrated");
    }
}

/// Open the database read-only for the offline commands. The schema must be
/// exactly this binary's: older data directories are upgraded by starting the
/// honeypot once on them, newer ones need a newer binary.
pub(super) fn open_ro(path: &Path) -> Result<Connection, StoreError> {
    if !path.is_file() {
        return Err(StoreError::NoDatabase {
            path: path.to_path_buf(),
        });
    }
    let err = db_err(path);
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(&err)?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(&err)?;
    check_application_id(&conn, path)?;
    let version = user_version(&conn).map_err(&err)?;
    if !(0..=SCHEMA_VERSION).contains(&version) {
        return Err(StoreError::NewerSchema {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version == 0 {
        return Err(StoreError::NoDatabase {
            path: path.to_path_buf(),
        });
    }
    if version < SCHEMA_VERSION {
        return Err(StoreError::OlderSchema {
            path: path.to_path_buf(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(conn)
}
