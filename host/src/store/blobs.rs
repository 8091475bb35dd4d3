//! Content-addressed blob files: `blobs/ab/cd/<sha256>.zst`.
//!
//! A blob's name is derived only from its SHA-256, validated as 64 lowercase
//! hex characters before use; nothing else ever becomes a path.

use std::collections::{BTreeSet, HashSet};
use std::io::{self, Write};
use std::sync::{Arc, Mutex, mpsc};

use cap_std::fs::{Dir, File, OpenOptions};
use sha2::{Digest, Sha256};

/// The directory, relative to the data directory, holding the blob shards.
pub const BLOBS_DIR: &str = "blobs";

/// zstd level for blobs: level 3 (zstd's default) compresses mail text ~4x at
/// hundreds of MB/s per core, so compression never becomes the bottleneck.
pub const ZSTD_LEVEL: i32 = 3;

/// True if `s` is a full SHA-256 in lowercase hex (exactly 64 of `[0-9a-f]`).
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && is_lower_hex(s)
}

pub(super) fn is_lower_hex(s: &str) -> bool {
    s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Lowercase hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// `blobs/ab/cd` for a validated digest.
fn shard_of(sha256: &str) -> String {
    debug_assert!(is_sha256_hex(sha256));
    format!("{BLOBS_DIR}/{}/{}", &sha256[0..2], &sha256[2..4])
}

/// `blobs/ab/cd/<sha256>.zst`, or `None` if `sha256` is not a valid digest.
pub fn blob_rel_path(sha256: &str) -> Option<String> {
    is_sha256_hex(sha256).then(|| format!("{}/{sha256}.zst", shard_of(sha256)))
}

/// Whether the blob file exists (a hint only: the database decides).
pub(super) fn blob_exists(dir: &Dir, sha256: &str) -> bool {
    blob_rel_path(sha256).is_some_and(|p| dir.is_file(p))
}

/// Threads that fsync one batch's files concurrently. On journaling file
/// systems concurrent fsyncs share a journal commit, so a batch of N new
/// blobs costs about one or two fsyncs of latency instead of N.
const SYNC_THREADS: usize = 8;

/// A blob written under its temp name, waiting for fsync and rename.
struct Staged {
    tmp: String,
    fin: String,
    shard: String,
}

/// Writes a batch's blobs for the writer thread: [`BlobWriter::stage`] each
/// one, then [`BlobWriter::commit`] once before the transaction commits.
pub(super) struct BlobWriter {
    /// Shard directories known to exist, to save two syscalls per blob.
    known_shards: HashSet<String>,
    /// Blobs of the current batch written to temp names, and their open files.
    staged: Vec<Staged>,
    staged_files: Vec<File>,
    /// Directories whose entries changed in the current batch.
    dirty_dirs: BTreeSet<String>,
    pool: SyncPool,
}

impl BlobWriter {
    pub(super) fn new() -> io::Result<Self> {
        Ok(BlobWriter {
            known_shards: HashSet::new(),
            staged: Vec::new(),
            staged_files: Vec::new(),
            dirty_dirs: BTreeSet::new(),
            pool: SyncPool::new(SYNC_THREADS)?,
        })
    }

    /// Write `compressed` to the temp name of blob `sha256`
    /// (`blobs/ab/cd/<sha256>.zst.tmp`), creating the shard directories.
    pub(super) fn stage(&mut self, dir: &Dir, sha256: &str, compressed: &[u8]) -> io::Result<()> {
        if !is_sha256_hex(sha256) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("invalid blob name {sha256:?}"),
            ));
        }
        let shard = shard_of(sha256);
        let result = self.stage_inner(dir, sha256, &shard, compressed);
        if result.is_err() {
            // Someone may have removed or replaced the shard: look again next time.
            self.known_shards.remove(&shard);
        }
        result
    }

    fn stage_inner(
        &mut self,
        dir: &Dir,
        sha256: &str,
        shard: &str,
        compressed: &[u8],
    ) -> io::Result<()> {
        if !self.known_shards.contains(shard) {
            let top = &shard[..BLOBS_DIR.len() + 3]; // "blobs/ab"
            if create_dir_new(dir, top)? {
                self.dirty_dirs.insert(BLOBS_DIR.to_string());
            }
            if create_dir_new(dir, shard)? {
                self.dirty_dirs.insert(top.to_string());
            }
            self.known_shards.insert(shard.to_string());
        }
        // One writer thread per data directory (the lock file guarantees it),
        // and a body is staged at most once per batch, so a fixed temp name
        // cannot collide; a leftover from a crash is truncated and reused.
        let tmp = format!("{shard}/{sha256}.zst.tmp");
        let mut file = dir.open_with(
            &tmp,
            OpenOptions::new().write(true).create(true).truncate(true),
        )?;
        file.write_all(compressed)?;
        self.staged_files.push(file);
        self.staged.push(Staged {
            tmp,
            fin: format!("{shard}/{sha256}.zst"),
            shard: shard.to_string(),
        });
        Ok(())
    }

    /// Make the staged blobs durable under their final names: rename each
    /// temp file over its final name, then fsync every blob file and every
    /// directory whose entries changed (shards, and parents of new shards),
    /// all concurrently, in one round.
    ///
    /// Renaming before the fsync is safe because the blob file is not the
    /// commit point: the database row is, and it commits only after this
    /// returns Ok. A crash in between leaves a file no stored row refers to
    /// (an orphan, possibly incomplete); it is rewritten when that body comes
    /// again, since only bodies the database does not list as stored are
    /// staged, and readers verify the SHA-256 of what they read. One fsync
    /// round instead of two (files, then directories) gave ~50% more
    /// artifacts/s in the 20-writer benchmark.
    pub(super) fn commit(&mut self, dir: &Dir) -> io::Result<()> {
        let result = self.commit_inner(dir);
        self.reset();
        result
    }

    fn commit_inner(&mut self, dir: &Dir) -> io::Result<()> {
        for s in &self.staged {
            dir.rename(&s.tmp, dir, &s.fin)?;
            self.dirty_dirs.insert(s.shard.clone());
        }
        // The open descriptors follow the renamed files.
        let mut files = std::mem::take(&mut self.staged_files);
        for d in &self.dirty_dirs {
            // cap-std directory handles may be O_PATH descriptors, which
            // fsync rejects (EBADF); open the directory for reading instead.
            files.push(dir.open(d)?);
        }
        self.pool.sync_all(files)
    }

    /// Forget the current batch (after a failure; temp files stay as orphans
    /// and are overwritten when the body comes again).
    pub(super) fn reset(&mut self) {
        self.staged.clear();
        self.staged_files.clear();
        self.dirty_dirs.clear();
    }
}

type SyncJob = (File, mpsc::Sender<io::Result<()>>);

/// A few long-lived threads that fsync files handed to them, so that one
/// batch's fsyncs run concurrently without spawning threads per batch.
struct SyncPool {
    jobs: mpsc::Sender<SyncJob>,
}

impl SyncPool {
    fn new(threads: usize) -> io::Result<SyncPool> {
        let (jobs, rx) = mpsc::channel::<SyncJob>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("spampot-fsync-{i}"))
                .spawn(move || {
                    loop {
                        // The guard is dropped at the end of the statement, so
                        // other workers can take the next job during our fsync.
                        let job = match rx.lock() {
                            Ok(guard) => guard.recv(),
                            Err(_) => return,
                        };
                        let Ok((file, back)) = job else { return };
                        let _ = back.send(file.sync_all());
                    }
                })?;
        }
        // The threads exit when `jobs` (owned by the writer) is dropped.
        Ok(SyncPool { jobs })
    }

    /// fsync every file, concurrently; the first error wins.
    fn sync_all(&self, files: Vec<File>) -> io::Result<()> {
        if files.len() <= 1 {
            return files.iter().try_for_each(|f| f.sync_all());
        }
        let n = files.len();
        let (back, results) = mpsc::channel();
        for f in files {
            self.jobs
                .send((f, back.clone()))
                .map_err(|_| io::Error::other("fsync threads are gone"))?;
        }
        drop(back);
        let mut result = Ok(());
        for _ in 0..n {
            let r = results
                .recv()
                .unwrap_or_else(|_| Err(io::Error::other("an fsync thread died")));
            if result.is_ok() {
                result = r;
            }
        }
        result
    }
}

/// Create `path` (relative to `dir`); Ok(true) if it was created now.
fn create_dir_new(dir: &Dir, path: &str) -> io::Result<bool> {
    match dir.create_dir(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e),
    }
}

/// fsync a directory (relative to `dir`; "." for `dir` itself).
pub(super) fn sync_dir(dir: &Dir, path: &str) -> io::Result<()> {
    // cap-std directory handles may be O_PATH descriptors, which fsync
    // rejects (EBADF); open the directory for reading instead.
    dir.open(path)?.sync_all()
}
