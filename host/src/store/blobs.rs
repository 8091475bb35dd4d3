//! Artifact bodies on disk: append-only pack files written by the writer
//! thread (`blobs/pack-000001.pack`, …), plus read support for the legacy
//! one-file-per-body layout (`blobs/ab/cd/<sha256>.zst`). The format and the
//! reader live in the `spampot-blobstore` crate, shared with the report.
//!
//! Nothing a plugin sends becomes a path: packs are named by an integer id,
//! legacy files by a digest validated as 64 lowercase hex characters.

use std::cell::RefCell;
use std::collections::HashSet;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Mutex;

use cap_std::fs::{Dir, OpenOptions};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

pub use spampot_blobstore::{
    BLOBS_DIR, PACK_ROLL_BYTES, ZSTD_LEVEL, is_sha256_hex, legacy_rel_path, pack_rel_path,
    sha256_hex,
};
use spampot_blobstore::{
    PACK_HEADER_LEN, RECORD_HEADER_LEN, RecordHeader, append_record, is_pack_header, pack_header,
};

pub(super) fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

thread_local! {
    /// One zstd compression context per thread: creating one per artifact
    /// (what `zstd::bulk::compress` does) allocates and initialises
    /// ~1 MiB of tables each time. Tokio workers, the blocking pool and the
    /// writer each keep theirs for the thread's life.
    static COMPRESSOR: RefCell<Option<zstd::bulk::Compressor<'static>>> =
        const { RefCell::new(None) };
}

/// Compress a body at [`ZSTD_LEVEL`] with this thread's context. The output
/// is the same as `zstd::bulk::compress(data, ZSTD_LEVEL)`.
pub(super) fn compress(data: &[u8]) -> io::Result<Vec<u8>> {
    COMPRESSOR.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = Some(zstd::bulk::Compressor::new(ZSTD_LEVEL)?);
        }
        c.as_mut().expect("set above").compress(data)
    })
}

/// Digests (their first 64 bits) the writer has seen stored, so callers can
/// skip compressing a body that is known already. A hint only: a false
/// positive costs the writer a compression, a miss a wasted one; the
/// database decides.
pub(super) struct KnownBodies(Mutex<HashSet<u64>>);

/// Entries kept in [`KnownBodies`] before it starts over: 64k × 8 bytes
/// (plus the set's overhead, ~1 MiB) covers the campaigns active at once; a
/// campaign that repeats a body is re-learnt after one more sighting.
const KNOWN_HINT_CAP: usize = 1 << 16;

impl KnownBodies {
    pub(super) fn new() -> Self {
        KnownBodies(Mutex::new(HashSet::new()))
    }

    fn key(sha256: &str) -> Option<u64> {
        sha256
            .get(..16)
            .and_then(|p| u64::from_str_radix(p, 16).ok())
    }

    pub(super) fn contains(&self, sha256: &str) -> bool {
        let Some(k) = Self::key(sha256) else {
            return false;
        };
        self.0.lock().is_ok_and(|s| s.contains(&k))
    }

    pub(super) fn insert(&self, sha256: &str) {
        let Some(k) = Self::key(sha256) else { return };
        if let Ok(mut s) = self.0.lock() {
            if s.len() >= KNOWN_HINT_CAP {
                s.clear();
            }
            s.insert(k);
        }
    }
}

/// The pack being appended to.
struct OpenPack {
    id: i64,
    file: std::fs::File,
    /// Bytes of the file that acknowledged batches cover.
    committed: u64,
    /// Written since the last fdatasync.
    dirty: bool,
}

/// Appends a batch's new bodies to the current pack for the writer thread:
/// [`PackWriter::stage`] each one; the journal record carries
/// [`PackWriter::staged`] (that is what makes them durable); then
/// [`PackWriter::write`] and [`PackWriter::committed`] (or
/// [`PackWriter::abort`] if anything failed). [`PackWriter::sync`] runs
/// before the batch's rows are indexed, and the `packs` rows follow with
/// them ([`extend_pack_row`]).
pub(super) struct PackWriter {
    current: Option<OpenPack>,
    /// Records of the current batch, to be written at `current.committed`.
    pending: Vec<u8>,
    /// The roll check ran for the current batch.
    prepared: bool,
    roll_bytes: u64,
    /// A pack whose failed batch could not be cut off: continue in a new
    /// pack after it.
    abandoned: Option<i64>,
}

/// Above this a batch buffer (the pack's, the journal's) is freed after use
/// rather than kept: one large upload should not pin its size in memory for
/// the process's life.
pub(super) const BATCH_BUFFER_KEEP_BYTES: usize = 8 << 20;

impl PackWriter {
    pub(super) fn new(roll_bytes: u64) -> Self {
        PackWriter {
            current: None,
            pending: Vec::new(),
            prepared: false,
            roll_bytes: roll_bytes.max(1),
            abandoned: None,
        }
    }

    /// Add one body to the batch; returns its (pack id, record offset) as the
    /// `artifacts` row must name it. The first call of a batch opens (or
    /// rolls to) the pack; at the writer's first batch `conn` says which
    /// pack was the last.
    pub(super) fn stage(
        &mut self,
        dir: &Dir,
        conn: &Connection,
        sha256: &str,
        size: u64,
        compressed: &[u8],
    ) -> io::Result<(i64, u64)> {
        if !self.prepared {
            self.prepare(dir, conn)?;
            self.prepared = true;
        }
        let pack = self.current.as_ref().expect("prepared");
        let offset = pack.committed + self.pending.len() as u64;
        let id = pack.id;
        append_record(&mut self.pending, sha256, size, compressed).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid blob name {sha256:?}"),
            )
        })?;
        Ok((id, offset))
    }

    /// The batch's records and where they go: (pack id, offset, bytes), if
    /// the batch has new bodies.
    pub(super) fn staged(&self) -> Option<(i64, u64, &[u8])> {
        let pack = self.current.as_ref()?;
        (!self.pending.is_empty()).then_some((pack.id, pack.committed, &self.pending[..]))
    }

    /// Write the batch's records with one `pwrite`, no sync: the journal
    /// record holds them until [`PackWriter::sync`].
    pub(super) fn write(&mut self) -> io::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pack = self.current.as_mut().expect("staged");
        pack.file.write_all_at(&self.pending, pack.committed)?;
        pack.dirty = true;
        Ok(())
    }

    /// fdatasync what was written since the last sync: before the rows
    /// naming it can become durable (the journal records holding the same
    /// bytes are deleted only after that).
    pub(super) fn sync(&mut self) -> io::Result<()> {
        if let Some(pack) = self.current.as_mut()
            && pack.dirty
        {
            // fdatasync covers the data and the grown file size, which is
            // all a reader needs; the directory entry was synced at creation.
            pack.file.sync_data()?;
            pack.dirty = false;
        }
        Ok(())
    }

    /// The batch is in the journal: its bytes are committed too.
    pub(super) fn committed(&mut self) {
        if let Some(p) = self.current.as_mut() {
            p.committed += self.pending.len() as u64;
        }
        self.end_batch();
    }

    /// The batch failed: cut whatever it appended. If even that fails, the
    /// next batch starts a new pack rather than append after the debris.
    pub(super) fn abort(&mut self) {
        if let Some(p) = &self.current
            && let Err(e) = p.file.set_len(p.committed)
        {
            tracing::error!(
                pack = p.id,
                "cannot cut a failed batch off its blob pack: {e}"
            );
            self.abandoned = Some(p.id);
            self.current = None;
        }
        self.end_batch();
    }

    fn end_batch(&mut self) {
        self.prepared = false;
        if self.pending.capacity() > BATCH_BUFFER_KEEP_BYTES {
            self.pending = Vec::new();
        } else {
            self.pending.clear();
        }
    }

    /// Make `current` a pack below the roll size: the open one, else the last
    /// one the database knows (its uncommitted tail cut off), else a new one.
    /// Only the first batch after open asks the database, which the journal
    /// replay has brought up to date.
    fn prepare(&mut self, dir: &Dir, conn: &Connection) -> io::Result<()> {
        if let Some(id) = self.abandoned {
            self.current = Some(create_pack(dir, id + 1)?);
            self.abandoned = None;
            return Ok(());
        }
        if self.current.is_none() {
            let last: Option<(i64, i64)> = conn
                .query_row(
                    "SELECT id, size FROM packs ORDER BY id DESC LIMIT 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(io::Error::other)?;
            match last {
                None => {
                    self.current = Some(create_pack(dir, 1)?);
                    return Ok(());
                }
                Some((id, size)) => match reopen_pack(dir, id, size.max(0) as u64) {
                    Ok(p) => self.current = Some(p),
                    Err(e) => {
                        // Committed bytes are gone (restored backup, disk
                        // trouble): never append after a hole; start afresh.
                        tracing::error!(
                            pack = id,
                            "cannot continue blob pack, starting a new one: {e}"
                        );
                        self.current = Some(create_pack(dir, id + 1)?);
                        return Ok(());
                    }
                },
            }
        }
        if self.current.as_ref().expect("set above").committed >= self.roll_bytes {
            // The old pack is not named again: make it durable now.
            self.sync()?;
            let next = self.current.as_ref().expect("set above").id + 1;
            self.current = Some(create_pack(dir, next)?);
        }
        Ok(())
    }
}

/// Open an existing pack for appending at `committed` (its `packs.size`);
/// bytes past it are the tail of a batch that never committed and are cut.
fn reopen_pack(dir: &Dir, id: i64, committed: u64) -> io::Result<OpenPack> {
    let path = pack_rel_path(id).ok_or_else(|| io::Error::other(format!("bad pack id {id}")))?;
    let file = dir
        .open_with(&path, OpenOptions::new().read(true).write(true))?
        .into_std();
    let len = file.metadata()?.len();
    let mut head = [0u8; PACK_HEADER_LEN as usize];
    file.read_exact_at(&mut head, 0)?;
    if !is_pack_header(&head) {
        return Err(io::Error::other(format!("{path} has no pack header")));
    }
    if len < committed {
        return Err(io::Error::other(format!(
            "{path} is {len} bytes, the database says {committed} are committed"
        )));
    }
    if len > committed {
        file.set_len(committed)?;
        file.sync_data()?;
        tracing::warn!(
            pack = %path,
            bytes = len - committed,
            "cut the uncommitted tail of a blob pack (a batch that never committed)"
        );
    }
    Ok(OpenPack {
        id,
        file,
        committed,
        dirty: false,
    })
}

/// Create pack `id` (replacing a leftover file of a creation no batch
/// used) with its header, durable with its directory entry. Its `packs` row
/// comes with the first batch indexed that names it.
fn create_pack(dir: &Dir, id: i64) -> io::Result<OpenPack> {
    let path = pack_rel_path(id).ok_or_else(|| io::Error::other(format!("bad pack id {id}")))?;
    let file = create_with_header(dir, &path, BLOBS_DIR, &pack_header())?;
    tracing::info!(pack = %path, "new blob pack");
    Ok(OpenPack {
        id,
        file,
        committed: PACK_HEADER_LEN,
        dirty: false,
    })
}

/// Create `path` (truncating a leftover) holding just `header`, durable with
/// its directory entry in `parent`: a pack or a journal segment.
pub(super) fn create_with_header(
    dir: &Dir,
    path: &str,
    parent: &str,
    header: &[u8],
) -> io::Result<std::fs::File> {
    let file = dir
        .open_with(
            path,
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true),
        )?
        .into_std();
    file.write_all_at(header, 0)?;
    file.sync_all()?;
    sync_dir(dir, parent)?;
    Ok(file)
}

/// fsync a directory (relative to `dir`; "." for `dir` itself).
pub(super) fn sync_dir(dir: &Dir, path: &str) -> io::Result<()> {
    // cap-std directory handles may be O_PATH descriptors, which fsync
    // rejects (EBADF); open the directory for reading instead.
    dir.open(path)?.sync_all()
}

/// Write a journal record's pack bytes back where they belong and fdatasync
/// them (replay: the pack may have lost them with the power). Creates the
/// pack, with its header, if the crash took the file.
pub(super) fn restore_records(dir: &Dir, pack: i64, offset: u64, bytes: &[u8]) -> io::Result<()> {
    let path =
        pack_rel_path(pack).ok_or_else(|| io::Error::other(format!("bad pack id {pack}")))?;
    if offset < PACK_HEADER_LEN {
        return Err(io::Error::other(format!(
            "offset {offset} inside the header of {path}"
        )));
    }
    let file = dir
        .open_with(
            &path,
            OpenOptions::new().read(true).write(true).create(true),
        )?
        .into_std();
    if file.metadata()?.len() < PACK_HEADER_LEN {
        file.write_all_at(&pack_header(), 0)?;
    }
    file.write_all_at(bytes, offset)?;
    file.sync_data()?;
    sync_dir(dir, BLOBS_DIR)
}

/// Check that pack `pack` holds, at `offset`, the record of `sha256` with
/// `stored_len` compressed bytes, all of them present (a journal replay
/// trusts nothing it did not check).
pub(super) fn check_record(
    dir: &Dir,
    pack: i64,
    offset: u64,
    sha256: &str,
    stored_len: u64,
) -> io::Result<()> {
    let path =
        pack_rel_path(pack).ok_or_else(|| io::Error::other(format!("bad pack id {pack}")))?;
    let file = dir.open(&path)?.into_std();
    let mut raw = [0u8; RECORD_HEADER_LEN as usize];
    file.read_exact_at(&mut raw, offset)?;
    let header = RecordHeader::decode(&raw)
        .ok_or_else(|| io::Error::other(format!("no record at offset {offset} of {path}")))?;
    let end = offset
        .checked_add(RECORD_HEADER_LEN)
        .and_then(|o| o.checked_add(stored_len))
        .ok_or_else(|| io::Error::other(format!("record at offset {offset} runs past 2^64")))?;
    if header.sha256_hex() != sha256 || header.stored_len != stored_len {
        return Err(io::Error::other(format!(
            "the record at offset {offset} of {path} is another body"
        )));
    }
    if file.metadata()?.len() < end {
        return Err(io::Error::other(format!("{path} ends inside the record")));
    }
    Ok(())
}

/// Count a replayed record as committed in `packs` (creating the pack's row
/// if the transaction that created it was lost).
pub(super) fn extend_pack_row(
    tx: &Transaction<'_>,
    pack: i64,
    offset: u64,
    stored_len: u64,
) -> rusqlite::Result<()> {
    tx.prepare_cached("INSERT OR IGNORE INTO packs (id, size, created_at) VALUES (?1, ?2, ?3)")?
        .execute(params![
            pack,
            PACK_HEADER_LEN as i64,
            super::format_ts(&chrono::Utc::now())
        ])?;
    let end = offset + RECORD_HEADER_LEN + stored_len;
    tx.prepare_cached("UPDATE packs SET size = MAX(size, ?2) WHERE id = ?1")?
        .execute(params![pack, end as i64])?;
    Ok(())
}
