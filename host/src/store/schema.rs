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
const M1_TABLES: &str = include_str!("migrations/0001_tables.sql");

/// Version 2: the indexes the reports and `show message` need.
const M2_INDEXES: &str = include_str!("migrations/0002_indexes.sql");

/// Version 3: pack files for artifact bodies (`artifacts.pack`,
/// `artifacts.pack_offset`, table `packs`).
const M3_PACKS: &str = include_str!("migrations/0003_packs.sql");

/// Version 4: the journal position (table `journal`).
const M4_JOURNAL: &str = include_str!("migrations/0004_journal.sql");

/// Version 5: the store's identity (table `store`), for a collector's
/// cursors.
const M5_STORE_ID: &str = include_str!("migrations/0005_store_id.sql");

/// Every migration, in order. `MIGRATIONS[i]` takes `user_version` i to i+1.
pub const MIGRATIONS: &[&str] = &[M1_TABLES, M2_INDEXES, M3_PACKS, M4_JOURNAL, M5_STORE_ID];

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

/// Open (creating if needed) the database for the writer: WAL, busy timeout,
/// pending migrations (synchronous=FULL), then synchronous=NORMAL: the
/// writer's batches are durable in the journal before they commit, and
/// `flush` fsyncs the WAL for the rest.
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
    // The writer's page cache, in KiB (negative = KiB). The indexes keyed by
    // digest (artifacts' primary key, messages(sha256)) touch a different
    // page per message; SQLite's default 2 MiB stops holding them early and
    // every miss is a pread in the commit path. 32 MiB is small next to the
    // sensor's per-session memory budget.
    conn.pragma_update(None, "cache_size", -32 * 1024)
        .map_err(&err)?;
    conn.set_prepared_statement_cache_capacity(32);
    migrate(&mut conn, path)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(&err)?;
    Ok(conn)
}

/// Open the writer's read-only connection (after `open_rw` migrated the
/// database): which bodies are stored, and the last pack, between two of the
/// indexer's transactions.
pub(super) fn open_lookup(path: &Path) -> Result<Connection, StoreError> {
    let err = db_err(path);
    let conn = open_read_only(path).map_err(&err)?;
    // One lookup per artifact, in the digest index: a different page each
    // time, like the indexer's (see its cache above), but reads only.
    conn.pragma_update(None, "cache_size", -8 * 1024)
        .map_err(&err)?;
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
    let conn = open_read_only(path).map_err(&err)?;
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

fn open_read_only(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    Ok(conn)
}

/// The store's identity: a random non-zero number drawn when the store was
/// made (migration 5).
pub(super) fn store_identity(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT identity FROM store WHERE id = 1", [], |r| r.get(0))
}
