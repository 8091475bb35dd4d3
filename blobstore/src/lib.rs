//! How spampot keeps artifact bodies on disk, and the one way to read them.
//!
//! Bodies are zstd-compressed and named by the SHA-256 of the uncompressed
//! bytes. Two layouts live side by side under `<data>/blobs/`:
//!
//! * **pack files** (schema version 3 on): `blobs/pack-000001.pack`, …
//!   Append-only; a 16-byte file header, then records, each a 52-byte
//!   [`RecordHeader`] (magic, SHA-256, uncompressed and compressed length)
//!   followed by the compressed bytes. The `artifacts` row names the pack and
//!   the offset of the record header (`pack`, `pack_offset`); `packs.size` is
//!   how many bytes of each pack are committed. Bytes past it are the tail of
//!   a batch that never committed.
//! * **legacy files** (data directories written before packs):
//!   `blobs/ab/cd/<sha256>.zst`, one file per body. Rows without a pack
//!   location are read from there.
//!
//! Every reader (the host's `export`/`show`, the report, tests) goes through
//! [`read_blob`]; the host's writer and the report's fixture writer encode
//! records with [`append_record`]. Nothing here trusts a name that did not
//! come from a validated digest or an integer pack id.

use std::io::{self, Read, Seek, SeekFrom, Write};

use cap_std::fs::Dir;
use rusqlite::{Connection, OptionalExtension};
use sha2::{Digest, Sha256};

/// The directory, relative to the data directory, holding packs and legacy blobs.
pub const BLOBS_DIR: &str = "blobs";

/// zstd level for bodies: level 3 (zstd's default) compresses mail text ~4x at
/// hundreds of MB/s per core, so compression never becomes the bottleneck.
pub const ZSTD_LEVEL: i32 = 3;

/// First 8 bytes of every pack file.
pub const PACK_MAGIC: [u8; 8] = *b"SPPTPACK";
/// Format version in the pack header; readers refuse other versions.
pub const PACK_VERSION: u32 = 1;
/// Pack file header: magic, version (u32 LE), 4 reserved zero bytes.
pub const PACK_HEADER_LEN: u64 = 16;
/// First 4 bytes of every record header.
pub const RECORD_MAGIC: [u8; 4] = *b"SPBR";
/// Record header: magic, raw SHA-256 (32), uncompressed length (u64 LE),
/// compressed length (u64 LE).
pub const RECORD_HEADER_LEN: u64 = 52;

/// A pack is closed and the next one started once it has grown past this
/// many bytes (checked when a batch starts, so a pack can exceed it by one
/// batch). 256 MiB: the default 8 GiB quota is ~32 packs, few files for any
/// directory or backup tool, while one pack is still quick to copy off a
/// sensor, check or rebuild from, and far below any file-size limit.
pub const PACK_ROLL_BYTES: u64 = 256 << 20;

/// The schema version (`PRAGMA user_version`) from which `artifacts` has the
/// `pack`/`pack_offset` columns and the `packs` table exists.
pub const PACK_SCHEMA_VERSION: i64 = 3;

/// True if `s` is a full SHA-256 in lowercase hex (exactly 64 of `[0-9a-f]`).
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Lowercase hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// `blobs/ab/cd/<sha256>.zst` (the legacy one-file-per-body layout), or
/// `None` if `sha256` is not a valid digest.
pub fn legacy_rel_path(sha256: &str) -> Option<String> {
    is_sha256_hex(sha256).then(|| {
        format!(
            "{BLOBS_DIR}/{}/{}/{sha256}.zst",
            &sha256[0..2],
            &sha256[2..4]
        )
    })
}

/// `blobs/pack-000001.pack` for pack id 1; `None` for ids below 1.
pub fn pack_rel_path(id: i64) -> Option<String> {
    (id >= 1).then(|| format!("{BLOBS_DIR}/pack-{id:06}.pack"))
}

/// The header every pack file starts with.
pub fn pack_header() -> [u8; PACK_HEADER_LEN as usize] {
    let mut h = [0u8; PACK_HEADER_LEN as usize];
    h[..8].copy_from_slice(&PACK_MAGIC);
    h[8..12].copy_from_slice(&PACK_VERSION.to_le_bytes());
    h
}

/// Whether `h` is a pack header of the version this code reads.
pub fn is_pack_header(h: &[u8]) -> bool {
    h.len() >= PACK_HEADER_LEN as usize
        && h[..8] == PACK_MAGIC
        && h[8..12] == PACK_VERSION.to_le_bytes()
}

/// The header before each body in a pack: enough to check or rebuild the
/// database's view of a pack offline ([`scan_pack`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordHeader {
    pub sha256: [u8; 32],
    /// Uncompressed length.
    pub size: u64,
    /// Length of the compressed bytes that follow the header.
    pub stored_len: u64,
}

impl RecordHeader {
    /// `None` if `sha256` is not a valid digest.
    pub fn new(sha256: &str, size: u64, stored_len: u64) -> Option<RecordHeader> {
        if !is_sha256_hex(sha256) {
            return None;
        }
        let mut raw = [0u8; 32];
        hex::decode_to_slice(sha256, &mut raw).ok()?;
        Some(RecordHeader {
            sha256: raw,
            size,
            stored_len,
        })
    }

    pub fn encode(&self) -> [u8; RECORD_HEADER_LEN as usize] {
        let mut b = [0u8; RECORD_HEADER_LEN as usize];
        b[..4].copy_from_slice(&RECORD_MAGIC);
        b[4..36].copy_from_slice(&self.sha256);
        b[36..44].copy_from_slice(&self.size.to_le_bytes());
        b[44..52].copy_from_slice(&self.stored_len.to_le_bytes());
        b
    }

    /// `None` if the bytes are not a record header (wrong magic).
    pub fn decode(b: &[u8; RECORD_HEADER_LEN as usize]) -> Option<RecordHeader> {
        if b[..4] != RECORD_MAGIC {
            return None;
        }
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
        Some(RecordHeader {
            sha256: b[4..36].try_into().expect("32 bytes"),
            size: u64_at(36),
            stored_len: u64_at(44),
        })
    }

    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }
}

/// Append one record (header, then `compressed`) to `buf`. `None` (and `buf`
/// unchanged) if `sha256` is not a valid digest.
pub fn append_record(buf: &mut Vec<u8>, sha256: &str, size: u64, compressed: &[u8]) -> Option<()> {
    let h = RecordHeader::new(sha256, size, compressed.len() as u64)?;
    buf.extend_from_slice(&h.encode());
    buf.extend_from_slice(compressed);
    Some(())
}

/// Why a body could not be read.
#[derive(thiserror::Error, Debug)]
pub enum BlobError {
    #[error("invalid SHA-256 {0:?}: expected 64 lowercase hex digits")]
    BadName(String),
    #[error("no artifact {0} in the database")]
    Unknown(String),
    #[error("body {0} is not stored (it was over quota)")]
    NotStored(String),
    #[error("{path} is missing")]
    Missing { path: String },
    #[error("{path} is corrupt: {reason}")]
    Corrupt { path: String, reason: String },
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("database error: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("cannot write output: {0}")]
    Output(io::Error),
}

/// Where a body is, according to the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Location {
    /// Recorded, but over quota: no bytes anywhere.
    NotStored,
    /// `blobs/ab/cd/<sha256>.zst` (written before packs existed).
    Legacy,
    /// A record in `blobs/pack-<pack>.pack` whose header starts at `offset`.
    Pack {
        pack: i64,
        offset: u64,
        stored_len: u64,
    },
}

/// Look `sha256` (a validated digest) up in `artifacts`. Works on databases
/// from before packs (schema version 2: every stored body is legacy).
pub fn locate(conn: &Connection, sha256: &str) -> Result<Location, BlobError> {
    if !is_sha256_hex(sha256) {
        return Err(BlobError::BadName(sha256.to_string()));
    }
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    let sql = if version >= PACK_SCHEMA_VERSION {
        "SELECT stored, pack, pack_offset, stored_size FROM artifacts WHERE sha256 = ?1"
    } else {
        "SELECT stored, NULL, NULL, stored_size FROM artifacts WHERE sha256 = ?1"
    };
    let row = conn
        .prepare_cached(sql)?
        .query_row([sha256], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, Option<i64>>(1)?,
                r.get::<_, Option<i64>>(2)?,
                r.get::<_, i64>(3)?,
            ))
        })
        .optional()?;
    Ok(match row {
        None => return Err(BlobError::Unknown(sha256.to_string())),
        Some((0, ..)) => Location::NotStored,
        Some((_, Some(pack), Some(offset), len)) => Location::Pack {
            pack,
            offset: offset.max(0) as u64,
            stored_len: len.max(0) as u64,
        },
        Some(_) => Location::Legacy,
    })
}

/// What [`read_blob`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Form {
    /// The zstd frame as stored (not verified beyond the record header).
    Compressed,
    /// The body as received, its SHA-256 verified.
    Decompressed,
}

/// The one reader of bodies: look `sha256` up in `artifacts` (through
/// `conn`), read it from its pack record or legacy file under `dir` (the data
/// directory) and write it to `out`, compressed or decompressed. Returns the
/// bytes written. A decompressed body is streamed and its SHA-256 checked at
/// the end: on [`BlobError::Corrupt`] `out` may hold a partial body.
pub fn read_blob(
    conn: &Connection,
    dir: &Dir,
    sha256: &str,
    form: Form,
    out: &mut dyn Write,
) -> Result<u64, BlobError> {
    let (path, reader) = match locate(conn, sha256)? {
        Location::NotStored => return Err(BlobError::NotStored(sha256.to_string())),
        Location::Legacy => {
            let path = legacy_rel_path(sha256).expect("validated by locate");
            let file = open(dir, &path)?;
            let len = file
                .metadata()
                .map_err(|source| io_err(&path, source))?
                .len();
            (path, io::Read::take(file, len))
        }
        Location::Pack {
            pack,
            offset,
            stored_len,
        } => {
            let path = pack_rel_path(pack).ok_or_else(|| BlobError::Corrupt {
                path: format!("artifacts row of {sha256}"),
                reason: format!("invalid pack id {pack}"),
            })?;
            let mut file = open(dir, &path)?;
            let mut raw = [0u8; RECORD_HEADER_LEN as usize];
            file.seek(SeekFrom::Start(offset))
                .and_then(|_| file.read_exact(&mut raw))
                .map_err(|e| corrupt_or_io(&path, e, offset))?;
            let h = RecordHeader::decode(&raw).ok_or_else(|| BlobError::Corrupt {
                path: path.clone(),
                reason: format!("no record header at offset {offset}"),
            })?;
            if h.sha256_hex() != sha256 || h.stored_len != stored_len {
                return Err(BlobError::Corrupt {
                    path,
                    reason: format!(
                        "the record at offset {offset} is {} ({} bytes), the database says {sha256} ({stored_len} bytes)",
                        h.sha256_hex(),
                        h.stored_len
                    ),
                });
            }
            (path, io::Read::take(file, stored_len))
        }
    };
    let expected = reader.limit();
    match form {
        Form::Compressed => {
            let mut reader = reader;
            let mut tee = Tee::new(out, None);
            let n = io::copy(&mut reader, &mut tee).map_err(|e| tee.error(&path, e))?;
            if n != expected {
                return Err(BlobError::Corrupt {
                    path,
                    reason: format!("truncated: {n} of {expected} bytes"),
                });
            }
            Ok(n)
        }
        Form::Decompressed => {
            let mut tee = Tee::new(out, Some(Sha256::new()));
            zstd::stream::copy_decode(io::BufReader::new(reader), &mut tee)
                .map_err(|e| tee.error(&path, e))?;
            let digest = hex::encode(tee.hasher.take().expect("hashing").finalize());
            if digest != sha256 {
                return Err(BlobError::Corrupt {
                    path,
                    reason: format!("body of {sha256} has SHA-256 {digest}"),
                });
            }
            Ok(tee.written)
        }
    }
}

fn io_err(path: &str, source: io::Error) -> BlobError {
    BlobError::Io {
        path: path.to_string(),
        source,
    }
}

fn corrupt_or_io(path: &str, e: io::Error, offset: u64) -> BlobError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        BlobError::Corrupt {
            path: path.to_string(),
            reason: format!("ends before the record at offset {offset}"),
        }
    } else {
        io_err(path, e)
    }
}

fn open(dir: &Dir, path: &str) -> Result<cap_std::fs::File, BlobError> {
    dir.open(path).map_err(|e| {
        if e.kind() == io::ErrorKind::NotFound {
            BlobError::Missing {
                path: path.to_string(),
            }
        } else {
            io_err(path, e)
        }
    })
}

/// Passes bytes to `out`, optionally hashing them, and remembers whether a
/// failure was the output's (so it is not blamed on the blob).
struct Tee<'a> {
    out: &'a mut dyn Write,
    hasher: Option<Sha256>,
    written: u64,
    out_failed: bool,
}

impl<'a> Tee<'a> {
    fn new(out: &'a mut dyn Write, hasher: Option<Sha256>) -> Self {
        Tee {
            out,
            hasher,
            written: 0,
            out_failed: false,
        }
    }

    fn error(&self, path: &str, e: io::Error) -> BlobError {
        if self.out_failed {
            BlobError::Output(e)
        } else if e.kind() == io::ErrorKind::Other || e.kind() == io::ErrorKind::InvalidData {
            BlobError::Corrupt {
                path: path.to_string(),
                reason: format!("not a valid zstd body: {e}"),
            }
        } else {
            io_err(path, e)
        }
    }
}

impl Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self
            .out
            .write(buf)
            .inspect_err(|_| self.out_failed = true)?;
        if let Some(h) = self.hasher.as_mut() {
            h.update(&buf[..n]);
        }
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush().inspect_err(|_| self.out_failed = true)
    }
}

/// One record found by [`scan_pack`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackRecord {
    /// Offset of the record header (what `artifacts.pack_offset` holds).
    pub offset: u64,
    pub header: RecordHeader,
    /// With `verify`: false if the body does not decompress to its digest.
    pub intact: bool,
}

/// What a pack file holds, from its own headers (no database needed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PackScan {
    pub records: Vec<PackRecord>,
    /// End of the last complete record: bytes after it are a torn tail.
    pub valid_len: u64,
    /// The file's length.
    pub file_len: u64,
}

/// Walk a pack's records offline (to check it, or to rebuild the database's
/// `pack`/`pack_offset` columns from it). Stops at the first incomplete or
/// unrecognisable record: everything from there on is the tail of a batch
/// that was being written when the process died. With `verify`, every body
/// is decompressed and its SHA-256 compared (`PackRecord::intact`).
pub fn scan_pack<R: Read + Seek>(file: &mut R, verify: bool) -> io::Result<PackScan> {
    let file_len = file.seek(SeekFrom::End(0))?;
    file.seek(SeekFrom::Start(0))?;
    let mut head = [0u8; PACK_HEADER_LEN as usize];
    file.read_exact(&mut head)?;
    if !is_pack_header(&head) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "not a spampot pack file (bad header or version)",
        ));
    }
    let mut records = Vec::new();
    let mut offset = PACK_HEADER_LEN;
    while file_len - offset >= RECORD_HEADER_LEN {
        let mut raw = [0u8; RECORD_HEADER_LEN as usize];
        file.seek(SeekFrom::Start(offset))?;
        file.read_exact(&mut raw)?;
        let Some(header) = RecordHeader::decode(&raw) else {
            break;
        };
        let end = offset
            .checked_add(RECORD_HEADER_LEN)
            .and_then(|o| o.checked_add(header.stored_len));
        let Some(end) = end.filter(|e| *e <= file_len) else {
            break;
        };
        let intact = !verify || {
            let mut body = Sha256::new();
            let mut hashed = HashOnly(&mut body);
            let data = io::Read::take(&mut *file, header.stored_len);
            zstd::stream::copy_decode(io::BufReader::new(data), &mut hashed).is_ok()
                && body.finalize().as_slice() == header.sha256
        };
        records.push(PackRecord {
            offset,
            header,
            intact,
        });
        offset = end;
    }
    Ok(PackScan {
        records,
        valid_len: offset,
        file_len,
    })
}

struct HashOnly<'a>(&'a mut Sha256);

impl Write for HashOnly<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_header_roundtrip_and_names() {
        let sha = sha256_hex(b"body");
        let h = RecordHeader::new(&sha, 4, 13).unwrap();
        assert_eq!(RecordHeader::decode(&h.encode()), Some(h));
        assert_eq!(h.sha256_hex(), sha);
        assert_eq!(RecordHeader::new("../etc", 1, 1), None);
        let mut bad = h.encode();
        bad[0] = b'X';
        assert_eq!(RecordHeader::decode(&bad), None);
        assert_eq!(pack_rel_path(0), None);
        assert_eq!(pack_rel_path(7).unwrap(), "blobs/pack-000007.pack");
        assert_eq!(legacy_rel_path("../etc/passwd"), None);
        assert!(is_pack_header(&pack_header()));
    }

    #[test]
    fn scan_stops_at_a_torn_tail_and_flags_bad_bodies() {
        let mut pack = pack_header().to_vec();
        let bodies: [&[u8]; 3] = [b"one", b"two two", b"three"];
        let mut offsets = Vec::new();
        for b in bodies {
            offsets.push(pack.len() as u64);
            let c = zstd::bulk::compress(b, ZSTD_LEVEL).unwrap();
            append_record(&mut pack, &sha256_hex(b), b.len() as u64, &c).unwrap();
        }
        let whole = pack.len() as u64;
        // Corrupt the second body's bytes (not its header).
        let last = pack.len() - 1;
        let second_data = offsets[1] as usize + RECORD_HEADER_LEN as usize + 4;
        pack[second_data] ^= 0xff;
        // A torn tail: a header whose body never made it.
        let c = zstd::bulk::compress(b"four", ZSTD_LEVEL).unwrap();
        append_record(&mut pack, &sha256_hex(b"four"), 4, &c).unwrap();
        pack.truncate(pack.len() - 2);
        let scan = scan_pack(&mut io::Cursor::new(&pack), true).unwrap();
        assert_eq!(scan.valid_len, whole);
        assert_eq!(scan.file_len, pack.len() as u64);
        let got: Vec<(u64, bool)> = scan.records.iter().map(|r| (r.offset, r.intact)).collect();
        assert_eq!(
            got,
            [(offsets[0], true), (offsets[1], false), (offsets[2], true)]
        );
        assert!(last > second_data);
        assert!(scan_pack(&mut io::Cursor::new(b"not a pack at all"), false).is_err());
    }
}
