//! Opening `spampot.db` read-only, and the schema for standalone fixtures.
//!
//! The schema's source of truth is the host's migrations,
//! `host/src/store/migrations/*.sql` (documented in `docs/store.md`). This
//! crate cannot depend on the host (wasmtime), so it includes the same SQL
//! files, for fixtures written into an empty directory. A test checks these
//! tables and columns against `docs/store.md`, and writing a fixture on top
//! of a database migrated by the host changes no schema.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::ReportError;

/// The database file inside a data directory.
pub const DB_FILE: &str = "spampot.db";
/// The blob directory inside a data directory.
pub use spampot_blobstore::BLOBS_DIR;
/// `PRAGMA application_id` of a spampot database ("SPPT").
pub const APPLICATION_ID: i64 = 0x5350_5054;
/// The host's schema version whose tables [`SCHEMA_SQL`], [`INDEXES_SQL`],
/// [`PACKS_SQL`] and [`JOURNAL_SQL`] repeat.
pub const SCHEMA_VERSION: i64 = 4;

/// Tables (migration 1) of the host's schema: the same file the host's
/// store migrates with, so the two cannot drift apart.
pub const SCHEMA_SQL: &str = include_str!("../../host/src/store/migrations/0001_tables.sql");

/// Indexes (migration 2) of the host's schema, from the same file.
pub const INDEXES_SQL: &str = include_str!("../../host/src/store/migrations/0002_indexes.sql");

/// Pack files for bodies (migration 3) of the host's schema, from the same file.
pub const PACKS_SQL: &str = include_str!("../../host/src/store/migrations/0003_packs.sql");

/// The journal position (migration 4) of the host's schema, from the same file.
pub const JOURNAL_SQL: &str = include_str!("../../host/src/store/migrations/0004_journal.sql");

/// The tables a report reads; a database missing one is refused.
const REQUIRED_TABLES: &[&str] = &[
    "sessions",
    "requests",
    "artifacts",
    "messages",
    "recipients",
];

/// Path of `spampot.db` in `data_dir`.
pub fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join(DB_FILE)
}

/// Open `<data>/spampot.db` read-only (safe while the honeypot writes: WAL).
///
/// Refuses a foreign SQLite file (application_id) and a database without the
/// report's tables (never started: `user_version` 0). A newer schema is
/// accepted as long as the tables are there: migrations only add.
pub fn open_ro(data_dir: &Path) -> Result<Connection, ReportError> {
    let path = db_path(data_dir);
    if !path.is_file() {
        return Err(ReportError::NoDatabase { path });
    }
    let err = ReportError::db(&path);
    let conn = Connection::open_with_flags(
        &path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(&err)?;
    conn.busy_timeout(Duration::from_secs(10)).map_err(&err)?;
    let app: i64 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .map_err(&err)?;
    if app != 0 && app != APPLICATION_ID {
        return Err(ReportError::NotSpampotDb { path });
    }
    let version: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(&err)?;
    if version == 0 {
        return Err(ReportError::NoDatabase { path });
    }
    for table in REQUIRED_TABLES {
        let n: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = ?1",
                [table],
                |r| r.get(0),
            )
            .map_err(&err)?;
        if n == 0 {
            return Err(ReportError::Invalid(format!(
                "{}: table {table} missing (schema version {version})",
                path.display()
            )));
        }
    }
    // Reports sort and group big sets; let SQLite spill to temp files rather
    // than grow without bound, and give it a reasonable page cache (64 MiB).
    conn.execute_batch("PRAGMA temp_store = FILE; PRAGMA cache_size = -65536;")
        .map_err(&err)?;
    Ok(conn)
}

/// Why a body could not be read.
#[derive(Debug, PartialEq, Eq)]
pub enum BlobError {
    /// Not a valid digest.
    BadName,
    /// Not stored (over quota, unknown digest) or its file is gone.
    Missing,
    /// Unreadable, not zstd, or its SHA-256 differs from its name.
    Corrupt,
}

/// Open the data directory for [`read_blob`].
pub fn open_data_dir(data_dir: &Path) -> Result<cap_std::fs::Dir, ReportError> {
    cap_std::fs::Dir::open_ambient_dir(data_dir, cap_std::ambient_authority())
        .map_err(ReportError::io(data_dir))
}

/// Read and decompress the body `sha256`, verifying its digest, from its
/// pack record or legacy file: the store's one reader
/// ([`spampot_blobstore::read_blob`]), with `conn` the data directory's
/// database and `dir` the data directory.
pub fn read_blob(
    conn: &Connection,
    dir: &cap_std::fs::Dir,
    sha256: &str,
) -> Result<Vec<u8>, BlobError> {
    use spampot_blobstore::BlobError as E;
    let mut body = Vec::new();
    match spampot_blobstore::read_blob(
        conn,
        dir,
        sha256,
        spampot_blobstore::Form::Decompressed,
        &mut body,
    ) {
        Ok(_) => Ok(body),
        Err(E::BadName(_)) => Err(BlobError::BadName),
        Err(E::Unknown(_) | E::NotStored(_) | E::Missing { .. }) => Err(BlobError::Missing),
        Err(_) => Err(BlobError::Corrupt),
    }
}
