//! The store's journal: what a client is acknowledged on.
//!
//! Every batch of artifacts is appended here as one record (each artifact's
//! envelope and what became of its body, and the batch's new bodies as they
//! go into their pack) and fdatasynced, before anyone hears "stored": one
//! sync per batch. The pack is written behind it and fdatasynced before the
//! rows naming it are indexed; the rows go into SQLite with the events, in
//! one transaction per 250 ms and without an fsync. Committing each batch on
//! its own (a pack fdatasync, a WAL fsync, ~15 WAL pages per message) was
//! most of an acknowledgement's wait (`docs/performance.md`). A crash loses
//! the rows not yet indexed, a power loss perhaps the pack's tail and
//! SQLite's last transactions too; `open` replays the batches past the
//! position the database recorded ([`Position`]), bodies included.
//!
//! Layout: `<data>/journal/journal-000001.log`, … A 16-byte header (magic
//! `SPPTJRNL`, version u32 LE, 4 zero bytes), then one record per batch:
//! magic `SPJB`, payload length (u64 LE), the payload, the SHA-256 of the
//! payload. The payload: the length of the JSON (u32 LE), the JSON (the
//! batch's [`Entry`]s), then, if the batch has new bodies, the pack id
//! (i64 LE), the offset in it (u64 LE) and the pack records to write there. A record that runs past the end
//! of the file or whose digest does not match ends the journal: it is the
//! torn tail of a batch that was being written when the machine stopped.
//!
//! Each `open` starts a new segment. A segment is deleted once the database
//! is durable past it: at open (after replay) and whenever the writer rolls
//! to a new segment (it fsyncs the WAL first), so the journal stays small.

use std::io;
use std::os::unix::fs::FileExt;

use cap_std::fs::Dir;
use rusqlite::{Connection, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The journal's directory, relative to the data directory.
pub const JOURNAL_DIR: &str = "journal";

const SEGMENT_MAGIC: [u8; 8] = *b"SPPTJRNL";
const SEGMENT_VERSION: u32 = 1;
const SEGMENT_HEADER_LEN: u64 = 16;
const RECORD_MAGIC: [u8; 4] = *b"SPJB";
/// Magic and payload length before the payload.
const RECORD_HEAD_LEN: u64 = 12;
/// SHA-256 after the payload.
const RECORD_TAIL_LEN: u64 = 32;

/// Roll to a new segment (and fsync the WAL, and delete the old ones) past
/// this size. 64 MiB is ~100,000 messages of 9 recipients: one extra WAL
/// fsync per 100,000 messages costs nothing, and a replay after power loss
/// reads at most this much.
pub(super) const SEGMENT_ROLL_BYTES: u64 = 64 << 20;

/// The segment is zero-filled this far ahead of its last record. An
/// fdatasync that must also make a new file size durable cost twice one
/// that only flushes data over blocks already written (224 µs against
/// 109 µs here, `docs/performance.md`); zero-filling 4 MiB costs one slower
/// sync per ~700 batches of `smtp-source`. Replay reads zeros as the end.
const PREALLOCATE_BYTES: u64 = 4 << 20;

/// A replayed batch larger than this is refused as corrupt: the writer's
/// batches are at most `max_batch` envelopes, far below it.
pub(super) const MAX_RECORD_PAYLOAD: u64 = 256 << 20;

/// Where the database's rows end in the journal: the segment and the offset
/// after the last batch committed (the `journal` table's one row). Ordered
/// as the journal is written: by segment, then offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Position {
    pub segment: i64,
    pub offset: u64,
}

/// One artifact of a batch, as the writer recorded it: enough to insert its
/// rows again.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Entry {
    pub session: String,
    pub ts: String,
    pub sensor: String,
    pub src_ip: String,
    pub src_port: u16,
    pub dst_port: u16,
    pub plugin: String,
    pub kind: String,
    pub meta: Vec<(String, String)>,
    pub sha256: String,
    pub size: u64,
    pub body: BodyFate,
}

/// What the batch did with the body. Replay repeats the decision instead of
/// taking it again (the quota or the pack may have moved on since).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "fate", rename_all = "snake_case")]
pub(super) enum BodyFate {
    /// Stored already, by an earlier batch.
    Known,
    /// Written by this batch: a record in pack `pack` at `offset`.
    Packed {
        pack: i64,
        offset: u64,
        stored_len: u64,
    },
    /// Not kept: the blob quota was reached.
    OverQuota,
}

/// `journal/journal-000001.log` for segment 1; `None` below 1.
pub fn segment_rel_path(id: i64) -> Option<String> {
    (id >= 1).then(|| format!("{JOURNAL_DIR}/journal-{id:06}.log"))
}

fn segment_header() -> [u8; SEGMENT_HEADER_LEN as usize] {
    let mut h = [0u8; SEGMENT_HEADER_LEN as usize];
    h[..8].copy_from_slice(&SEGMENT_MAGIC);
    h[8..12].copy_from_slice(&SEGMENT_VERSION.to_le_bytes());
    h
}

/// Encode one batch record: header, payload (see the module docs), digest.
fn encode_record(
    out: &mut Vec<u8>,
    entries_json: &[u8],
    pack: Option<(i64, u64, &[u8])>,
) -> io::Result<()> {
    let json_len = u32::try_from(entries_json.len())
        .map_err(|_| io::Error::other("a batch's entries exceed 4 GiB"))?;
    out.extend_from_slice(&RECORD_MAGIC);
    out.extend_from_slice(&[0u8; 8]); // payload length, below
    let start = out.len();
    out.extend_from_slice(&json_len.to_le_bytes());
    out.extend_from_slice(entries_json);
    if let Some((id, offset, bytes)) = pack {
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(bytes);
    }
    let len = (out.len() - start) as u64;
    out[start - 8..start].copy_from_slice(&len.to_le_bytes());
    let digest = Sha256::digest(&out[start..]);
    out.extend_from_slice(&digest);
    Ok(())
}

/// A record's payload, split: the entries' JSON and the pack records.
pub(super) struct Payload<'a> {
    pub entries_json: &'a [u8],
    pub pack: Option<(i64, u64, &'a [u8])>,
}

/// Split a payload read back by [`read_records`].
pub(super) fn decode_payload(payload: &[u8]) -> io::Result<Payload<'_>> {
    let bad = |why: &str| io::Error::new(io::ErrorKind::InvalidData, why.to_string());
    let json_len = payload
        .get(..4)
        .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as usize)
        .ok_or_else(|| bad("payload too short"))?;
    let entries_json = payload
        .get(4..4 + json_len)
        .ok_or_else(|| bad("entries run past the payload"))?;
    let rest = &payload[4 + json_len..];
    let pack = match rest.len() {
        0 => None,
        n if n > 16 => Some((
            i64::from_le_bytes(rest[..8].try_into().expect("8 bytes")),
            u64::from_le_bytes(rest[8..16].try_into().expect("8 bytes")),
            &rest[16..],
        )),
        _ => return Err(bad("truncated pack section")),
    };
    Ok(Payload { entries_json, pack })
}

/// The segment being appended to by the writer thread.
pub(super) struct Journal {
    segment: i64,
    file: std::fs::File,
    /// End of the last record written; the next goes here.
    len: u64,
    /// End of the zero-filled part of the file.
    allocated: u64,
    roll_bytes: u64,
    record: Vec<u8>,
}

impl Journal {
    /// Start segment `id` (a new, empty file, durable with its directory entry).
    pub(super) fn create(dir: &Dir, id: i64, roll_bytes: u64) -> io::Result<Journal> {
        let path = segment_rel_path(id)
            .ok_or_else(|| io::Error::other(format!("bad journal segment id {id}")))?;
        let file = super::blobs::create_with_header(dir, &path, JOURNAL_DIR, &segment_header())?;
        Ok(Journal {
            segment: id,
            file,
            len: SEGMENT_HEADER_LEN,
            allocated: SEGMENT_HEADER_LEN,
            roll_bytes: roll_bytes.max(1),
            record: Vec::new(),
        })
    }

    /// Write one batch's record (its entries' JSON and its pack records, if
    /// any) and make it durable. Returns the position after it (also
    /// [`Journal::position`] until the next append).
    pub(super) fn append(
        &mut self,
        entries_json: &[u8],
        pack: Option<(i64, u64, &[u8])>,
    ) -> io::Result<Position> {
        self.record.clear();
        encode_record(&mut self.record, entries_json, pack)?;
        let end = self.len + self.record.len() as u64;
        if end > self.allocated {
            // Synced together with the record below.
            self.zero_fill(end + PREALLOCATE_BYTES)?;
        }
        self.file.write_all_at(&self.record, self.len)?;
        self.file.sync_data()?;
        self.len += self.record.len() as u64;
        if self.record.capacity() > super::blobs::BATCH_BUFFER_KEEP_BYTES {
            self.record = Vec::new();
        }
        Ok(Position {
            segment: self.segment,
            offset: self.len,
        })
    }

    /// Write zeros from the end of the zero-filled part up to `to`.
    fn zero_fill(&mut self, to: u64) -> io::Result<()> {
        static ZEROS: [u8; 64 << 10] = [0; 64 << 10];
        while self.allocated < to {
            let n = (to - self.allocated).min(ZEROS.len() as u64) as usize;
            self.file.write_all_at(&ZEROS[..n], self.allocated)?;
            self.allocated += n as u64;
        }
        Ok(())
    }

    /// The batch's transaction did not commit: forget its record, so the
    /// next one overwrites it and a replay never sees it.
    pub(super) fn abort(&mut self, at: Position) {
        if at.segment == self.segment && at.offset <= self.len {
            self.len = at.offset;
            self.allocated = at.offset;
            if let Err(e) = self.file.set_len(at.offset) {
                tracing::warn!("cannot cut the journal after a failed batch: {e}");
            }
        }
    }

    pub(super) fn position(&self) -> Position {
        Position {
            segment: self.segment,
            offset: self.len,
        }
    }

    pub(super) fn wants_roll(&self) -> bool {
        self.len >= self.roll_bytes
    }

    /// Continue in segment `self.segment + 1`. The caller has made the
    /// database durable up to [`Journal::position`]; older segments go.
    pub(super) fn roll(&mut self, dir: &Dir) -> io::Result<()> {
        let next = Journal::create(dir, self.segment + 1, self.roll_bytes)?;
        *self = next;
        delete_segments_before(dir, self.segment);
        Ok(())
    }
}

/// Remove segments older than `keep_from` (best effort: a leftover segment
/// only costs disk; replay starts from the database's position anyway).
pub(super) fn delete_segments_before(dir: &Dir, keep_from: i64) {
    for id in segment_ids(dir).into_iter().filter(|id| *id < keep_from) {
        if let Some(path) = segment_rel_path(id)
            && let Err(e) = dir.remove_file(&path)
        {
            tracing::warn!(segment = %path, "cannot delete an old journal segment: {e}");
        }
    }
}

/// Ids of the segment files present, ascending.
pub(super) fn segment_ids(dir: &Dir) -> Vec<i64> {
    let Ok(entries) = dir.read_dir(JOURNAL_DIR) else {
        return Vec::new();
    };
    let mut ids: Vec<i64> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let id = name.strip_prefix("journal-")?.strip_suffix(".log")?;
            (id.len() == 6 && id.bytes().all(|b| b.is_ascii_digit()))
                .then(|| id.parse().ok())
                .flatten()
        })
        .filter(|id| *id >= 1)
        .collect();
    ids.sort_unstable();
    ids
}

/// The complete batch records of segment `id` from `from` on (the payloads,
/// each with the offset after it). Stops at the first torn or corrupt record.
pub(super) fn read_records(dir: &Dir, id: i64, from: u64) -> io::Result<Vec<(Vec<u8>, u64)>> {
    let path = segment_rel_path(id).ok_or_else(|| io::Error::other("bad segment id"))?;
    let file = dir.open(&path)?.into_std();
    let len = file.metadata()?.len();
    let mut head = [0u8; SEGMENT_HEADER_LEN as usize];
    file.read_exact_at(&mut head, 0)?;
    if head[..8] != SEGMENT_MAGIC || head[8..12] != SEGMENT_VERSION.to_le_bytes() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{path} is not a spampot journal segment of version {SEGMENT_VERSION}"),
        ));
    }
    let mut out = Vec::new();
    let mut at = from.max(SEGMENT_HEADER_LEN);
    while len.saturating_sub(at) >= RECORD_HEAD_LEN + RECORD_TAIL_LEN {
        let mut rec_head = [0u8; RECORD_HEAD_LEN as usize];
        file.read_exact_at(&mut rec_head, at)?;
        if rec_head[..4] != RECORD_MAGIC {
            break;
        }
        let n = u64::from_le_bytes(rec_head[4..12].try_into().expect("8 bytes"));
        // A damaged length can be anything: bound it before adding.
        if n > MAX_RECORD_PAYLOAD {
            break;
        }
        let end = at + RECORD_HEAD_LEN + n + RECORD_TAIL_LEN;
        if end > len {
            break;
        }
        let mut payload = vec![0u8; n as usize];
        file.read_exact_at(&mut payload, at + RECORD_HEAD_LEN)?;
        let mut digest = [0u8; RECORD_TAIL_LEN as usize];
        file.read_exact_at(&mut digest, at + RECORD_HEAD_LEN + n)?;
        if Sha256::digest(&payload).as_slice() != digest {
            break;
        }
        out.push((payload, end));
        at = end;
    }
    Ok(out)
}

/// Whether the journal holds a complete batch past the database's position
/// (`conn`, read-only): what a sensor that stopped without indexing it
/// (a crash, a kill) left to replay.
pub(super) fn has_unindexed(dir: &Dir, conn: &Connection) -> io::Result<bool> {
    let from = recorded_position(conn).map_err(io::Error::other)?;
    for id in segment_ids(dir) {
        let Some(start) = replay_start(from, id) else {
            continue;
        };
        if !read_records(dir, id, start)?.is_empty() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Where segment `id`'s records past the database's position `from` begin;
/// `None` if the database is past the whole segment.
pub(super) fn replay_start(from: Option<Position>, id: i64) -> Option<u64> {
    match from {
        Some(p) if id < p.segment => None,
        Some(p) if id == p.segment => Some(p.offset),
        _ => Some(0),
    }
}

/// The database's journal position, if any batch was ever committed.
pub(super) fn recorded_position(conn: &Connection) -> rusqlite::Result<Option<Position>> {
    use rusqlite::OptionalExtension;
    conn.query_row(
        "SELECT segment, end_offset FROM journal WHERE id = 1",
        [],
        |r| {
            Ok(Position {
                segment: r.get(0)?,
                offset: r.get::<_, i64>(1)?.max(0) as u64,
            })
        },
    )
    .optional()
}

/// Record `pos` in the batch's transaction.
pub(super) fn record_position(conn: &Connection, pos: Position) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO journal (id, segment, end_offset) VALUES (1, ?1, ?2)
         ON CONFLICT(id) DO UPDATE SET segment = excluded.segment,
             end_offset = excluded.end_offset",
    )?
    .execute(params![pos.segment, pos.offset as i64])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_read_back_until_a_torn_or_corrupt_one() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = Dir::open_ambient_dir(tmp.path(), cap_std::ambient_authority()).unwrap();
        dir.create_dir(JOURNAL_DIR).unwrap();
        let mut j = Journal::create(&dir, 3, 1 << 20).unwrap();
        let a = j.append(b"first", None).unwrap();
        let b = j.append(b"second", Some((2, 16, b"records"))).unwrap();
        assert_eq!(a.segment, 3);
        type Split = (Vec<u8>, Option<(i64, u64, Vec<u8>)>);
        let split = |p: &[u8]| -> Split {
            let d = decode_payload(p).unwrap();
            (
                d.entries_json.to_vec(),
                d.pack.map(|(i, o, b)| (i, o, b.to_vec())),
            )
        };
        let read = |from: u64| -> Vec<(Split, u64)> {
            read_records(&dir, 3, from)
                .unwrap()
                .into_iter()
                .map(|(p, end)| (split(&p), end))
                .collect()
        };
        let second = (b"second".to_vec(), Some((2, 16, b"records".to_vec())));
        assert_eq!(
            read(0),
            [
                ((b"first".to_vec(), None), a.offset),
                (second.clone(), b.offset)
            ]
        );
        assert_eq!(read(a.offset), [(second, b.offset)]);
        // A torn third record, then a flipped byte in the second.
        let path = tmp.path().join(segment_rel_path(3).unwrap());
        let mut raw = std::fs::read(&path).unwrap();
        let mut third = Vec::new();
        encode_record(&mut third, b"third", None).unwrap();
        raw.extend_from_slice(&third[..third.len() - 3]);
        std::fs::write(&path, &raw).unwrap();
        assert_eq!(read(0).len(), 2);
        raw[a.offset as usize + RECORD_HEAD_LEN as usize] ^= 1;
        std::fs::write(&path, &raw).unwrap();
        assert_eq!(read(0).len(), 1);
        // An aborted record is cut and overwritten.
        j.abort(a);
        let c = j.append(b"3rd", None).unwrap();
        assert_eq!(
            read(0),
            [
                ((b"first".to_vec(), None), a.offset),
                ((b"3rd".to_vec(), None), c.offset)
            ]
        );
        assert!(decode_payload(&[9, 0, 0, 0, 1]).is_err());
        assert!(decode_payload(&[1, 0, 0, 0, b'x', 1, 2]).is_err());
        assert_eq!(segment_ids(&dir), [3]);
        j.roll(&dir).unwrap();
        assert_eq!(segment_ids(&dir), [4]);
        assert_eq!(j.position().segment, 4);
    }

    #[test]
    fn entries_keep_their_body_fate() {
        let e = Entry {
            session: "s".into(),
            ts: "2026-11-27T10:00:00.000Z".into(),
            sensor: "x".into(),
            src_ip: "127.0.0.1".into(),
            src_port: 1,
            dst_port: 25,
            plugin: "smtp".into(),
            kind: "email".into(),
            meta: vec![("rcpt_to".into(), "a@b".into())],
            sha256: "00".repeat(32),
            size: 5,
            body: BodyFate::Packed {
                pack: 2,
                offset: 16,
                stored_len: 9,
            },
        };
        let json = serde_json::to_string(&e).unwrap();
        let back: Entry = serde_json::from_str(&json).unwrap();
        assert_eq!(back.body, e.body);
        assert_eq!(back.meta, e.meta);
        assert!(json.contains(r#""fate":"packed""#), "{json}");
    }
}
