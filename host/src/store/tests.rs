use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags};
use serde_json::{Map, Value, json};

use super::*;

fn config(data_dir: &Path) -> StoreConfig {
    StoreConfig {
        data_dir: data_dir.to_path_buf(),
        quota_bytes: 0,
        max_batch: 64,
        events_rotate_bytes: 0,
        pack_roll_bytes: blobs::PACK_ROLL_BYTES,
        journal_roll_bytes: journal::SEGMENT_ROLL_BYTES,
        max_unindexed_artifacts: 64 * 1024,
    }
}

fn origin(session: &str, src_ip: &str) -> Origin {
    Origin {
        session: session.into(),
        sensor: "sensor-1".into(),
        plugin: "smtp".into(),
        src_ip: src_ip.into(),
        src_port: 40000,
        dst_port: 25,
        timestamp: chrono::Utc::now(),
    }
}

fn email_meta(rcpts: &[&str]) -> Vec<(String, String)> {
    let mut m = vec![
        ("helo".to_string(), "mx.spammer.example".to_string()),
        (
            "mail_from".to_string(),
            "<bulk@spammer.example>".to_string(),
        ),
        ("target_host".to_string(), "mx.victim.example".to_string()),
        ("via".to_string(), "socks5,smtp".to_string()),
        ("probe".to_string(), "false".to_string()),
        ("queue_id".to_string(), "4F2A1B".to_string()),
        ("persona".to_string(), "postfix".to_string()),
    ];
    for r in rcpts {
        m.push(("rcpt_to".to_string(), r.to_string()));
    }
    m
}

fn message(n: usize) -> Vec<u8> {
    format!("From: bulk@spammer.example\r\nSubject: offer {n}\r\n\r\nCheap pills, number {n}.\r\n")
        .into_bytes()
}

fn db(data_dir: &Path) -> Connection {
    Connection::open_with_flags(data_dir.join(DB_FILE), OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap()
}

fn count(data_dir: &Path, sql: &str) -> i64 {
    db(data_dir).query_row(sql, [], |r| r.get(0)).unwrap()
}

/// The digest of every body stored under `blobs/`: each record of each pack
/// (checked: complete, decompressing to its digest, no torn tail), then each
/// legacy `.zst` file.
fn stored_bodies(data_dir: &Path) -> Vec<String> {
    fn walk(p: &Path, acc: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(p).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_dir() {
                walk(&e.path(), acc);
            } else {
                acc.push(e.path());
            }
        }
    }
    let mut files = Vec::new();
    walk(&data_dir.join(BLOBS_DIR), &mut files);
    files.sort();
    let mut acc = Vec::new();
    for f in files {
        let name = f.file_name().unwrap().to_str().unwrap().to_string();
        if name.ends_with(".pack") {
            let scan =
                spampot_blobstore::scan_pack(&mut std::fs::File::open(&f).unwrap(), true).unwrap();
            assert_eq!(scan.valid_len, scan.file_len, "{name} has a torn tail");
            for r in scan.records {
                assert!(r.intact, "{name} @{}: body does not match", r.offset);
                acc.push(r.header.sha256_hex());
            }
        } else {
            let sha = name
                .strip_suffix(".zst")
                .expect("only packs and .zst files");
            acc.push(sha.to_string());
        }
    }
    acc
}

/// `(pack, pack_offset)` of a stored body.
fn location(data_dir: &Path, sha: &str) -> (Option<i64>, Option<i64>) {
    db(data_dir)
        .query_row(
            "SELECT pack, pack_offset FROM artifacts WHERE sha256 = ?1",
            [sha],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap()
}

fn event(eventid: &str, session: &str, fields: Value) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("eventid".into(), eventid.into());
    m.insert("timestamp".into(), format_ts(&chrono::Utc::now()).into());
    m.insert("sensor".into(), "sensor-1".into());
    m.insert("session".into(), session.into());
    m.insert("src_ip".into(), "203.0.113.7".into());
    m.insert("src_port".into(), 51234.into());
    m.insert("dst_port".into(), 1080.into());
    m.insert("plugin".into(), "socks".into());
    if let Value::Object(f) = fields {
        m.extend(f);
    }
    m
}

/// The exported `messages` rows without their ids (which are local).
fn message_rows(dir: &Path) -> Vec<Value> {
    let (_, text) = export_string(dir, ExportWhat::Messages, ExportFormat::Jsonl);
    text.lines()
        .map(|l| {
            let mut v: Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("id");
            v
        })
        .collect()
}

fn export_string(data_dir: &Path, what: ExportWhat, format: ExportFormat) -> (u64, String) {
    let mut out = Vec::new();
    let n = export(data_dir, what, format, &mut out).unwrap();
    (n, String::from_utf8(out).unwrap())
}

#[tokio::test]
async fn email_roundtrip_and_dedup() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let store = CaptureStore::open(config(&data)).unwrap();
    let body = message(1);
    let rcpts = ["a@victim.example", "b@victim.example", "c@victim.example"];

    let first = store
        .put_artifact(
            origin("s1", "198.51.100.1"),
            "email",
            email_meta(&rcpts),
            body.clone(),
        )
        .await
        .unwrap();
    let sha = sha256_hex(&body);
    assert_eq!(
        first,
        PutOutcome::Stored {
            sha256: sha.clone(),
            size: body.len() as u64,
            new_blob: true
        }
    );
    let second = store
        .put_artifact(
            origin("s2", "198.51.100.2"),
            "email",
            email_meta(&rcpts[..1]),
            body.clone(),
        )
        .await
        .unwrap();
    assert_eq!(
        second,
        PutOutcome::Stored {
            sha256: sha.clone(),
            size: body.len() as u64,
            new_blob: false
        }
    );
    let usage = store.usage();
    assert_eq!(usage.messages, 2);
    assert_eq!(usage.recipients, 4);
    assert_eq!(usage.artifacts, 1);
    assert_eq!(usage.artifacts_stored, 1);
    assert!(usage.blob_bytes > 0);
    store.close().await;

    assert_eq!(count(&data, "SELECT COUNT(*) FROM messages"), 2);
    assert_eq!(count(&data, "SELECT COUNT(*) FROM recipients"), 4);
    assert_eq!(
        count(
            &data,
            "SELECT rcpt_count FROM messages WHERE session = 's1'"
        ),
        3
    );
    assert_eq!(count(&data, "SELECT seen_count FROM artifacts"), 2);
    assert_eq!(count(&data, "SELECT COUNT(*) FROM artifact_sightings"), 0);
    let (helo, probe, via, persona, stored): (String, i64, String, String, i64) = db(&data)
        .query_row(
            "SELECT helo, probe, via, persona, stored FROM messages WHERE session = 's1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!(
        (helo.as_str(), probe, via.as_str(), persona.as_str(), stored),
        ("mx.spammer.example", 0, "socks5,smtp", "postfix", 1)
    );
    let order: Vec<String> = db(&data)
        .prepare(
            "SELECT address FROM recipients r JOIN messages m ON m.id = r.message_id
             WHERE m.session = 's1' ORDER BY position",
        )
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(order, rcpts);

    // One record, the first of pack 1, right after the pack header.
    assert_eq!(stored_bodies(&data), std::slice::from_ref(&sha));
    assert!(data.join("blobs/pack-000001.pack").is_file());
    assert_eq!(
        location(&data, &sha),
        (Some(1), Some(spampot_blobstore::PACK_HEADER_LEN as i64))
    );
    assert_eq!(read_blob(&data, &sha).unwrap(), body);

    let mut shown = Vec::new();
    show_message(&data, &sha[..10], &mut shown).unwrap();
    let shown = String::from_utf8(shown).unwrap();
    assert!(shown.contains(&format!("sha256:      {sha}")), "{shown}");
    assert!(shown.contains("count:       2"), "{shown}");
    assert!(
        shown.contains("198.51.100.1 (1), 198.51.100.2 (1)"),
        "{shown}"
    );
    assert!(shown.contains("mx.spammer.example (2)"), "{shown}");
    assert!(shown.contains("  a@victim.example (2)"), "{shown}");
    assert!(shown.contains("recipients:  3 distinct"), "{shown}");
    assert!(
        shown.ends_with(std::str::from_utf8(&body).unwrap()),
        "{shown}"
    );
}

#[tokio::test]
async fn unknown_meta_is_kept_and_uploads_are_sighted() {
    let tmp = tempfile::tempdir().unwrap();
    let store = CaptureStore::open(config(tmp.path())).unwrap();
    let mut meta = email_meta(&["x@victim.example"]);
    meta.push(("x-mailer".into(), "bulk 1.0".into()));
    meta.push(("helo".into(), "second-helo".into()));
    meta.push(("x-mailer".into(), "again".into()));
    store
        .put_artifact(origin("s1", "192.0.2.1"), "email", meta, message(1))
        .await
        .unwrap();
    let upload = b"\x7fELF fake worm binary".to_vec();
    let upload_meta = vec![
        ("filename".to_string(), "../../etc/passwd".to_string()),
        ("path".to_string(), "/tmp/x".to_string()),
    ];
    for s in ["s2", "s3"] {
        store
            .put_artifact(
                origin(s, "192.0.2.2"),
                "uploaded-file",
                upload_meta.clone(),
                upload.clone(),
            )
            .await
            .unwrap();
    }
    // An unknown kind is kept as "other".
    store
        .put_artifact(origin("s4", "192.0.2.3"), "weird", vec![], b"x".to_vec())
        .await
        .unwrap();
    store.close().await;

    let extra: String = db(tmp.path())
        .query_row("SELECT extra_meta FROM messages", [], |r| r.get(0))
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&extra).unwrap(),
        json!([
            ["x-mailer", "bulk 1.0"],
            ["helo", "second-helo"],
            ["x-mailer", "again"]
        ])
    );
    assert_eq!(
        count(
            tmp.path(),
            "SELECT COUNT(*) FROM artifact_sightings WHERE kind = 'uploaded-file'"
        ),
        2
    );
    assert_eq!(
        count(
            tmp.path(),
            "SELECT COUNT(*) FROM artifacts WHERE kind = 'other'"
        ),
        1
    );
    let meta: String = db(tmp.path())
        .query_row("SELECT meta FROM artifact_sightings LIMIT 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&meta).unwrap(),
        json!([["filename", "../../etc/passwd"], ["path", "/tmp/x"]])
    );
    // show message refuses a non-email artifact, naming its kind.
    let err = show_message(tmp.path(), &sha256_hex(&upload), &mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains("uploaded-file"), "{err}");
    // Nothing but the store's own files in the data directory.
    let mut names: Vec<String> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| !n.starts_with("spampot.db-")) // WAL files of the test's readers
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            BLOBS_DIR,
            EVENTS_FILE,
            journal::JOURNAL_DIR,
            DB_FILE,
            LOCK_FILE
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_puts_group_commit() {
    let tmp = tempfile::tempdir().unwrap();
    let store = CaptureStore::open(config(tmp.path())).unwrap();
    let mut tasks = Vec::new();
    for t in 0..50 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::new();
            for i in 0..4 {
                // Half the bodies are shared between tasks: dedup under concurrency.
                let body = if i % 2 == 0 {
                    message(t * 10 + i)
                } else {
                    message(i)
                };
                let r = store
                    .put_artifact(
                        origin(&format!("s{t}-{i}"), "198.51.100.9"),
                        "email",
                        email_meta(&["v@victim.example"]),
                        body,
                    )
                    .await;
                out.push(r);
            }
            out
        }));
    }
    let mut ok = 0;
    for t in tasks {
        for r in t.await.unwrap() {
            assert!(matches!(r, Ok(PutOutcome::Stored { .. })), "{r:?}");
            ok += 1;
        }
    }
    assert_eq!(ok, 200);
    assert_eq!(store.usage().messages, 200);
    let batches = store
        .inner
        .stats
        .put_batches
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        batches < 200,
        "no group commit: {batches} batches for 200 puts"
    );
    store.close().await;
    assert_eq!(count(tmp.path(), "SELECT COUNT(*) FROM messages"), 200);
    // 100 distinct even bodies + 2 shared odd ones.
    assert_eq!(count(tmp.path(), "SELECT COUNT(*) FROM artifacts"), 102);
    assert_eq!(
        count(tmp.path(), "SELECT SUM(seen_count) FROM artifacts"),
        200
    );
    let mut bodies = stored_bodies(tmp.path());
    bodies.sort();
    bodies.dedup();
    assert_eq!(bodies.len(), 102, "each distinct body stored once");
    assert_eq!(stored_bodies(tmp.path()).len(), 102);
    let (n, _) = export_string(tmp.path(), ExportWhat::Messages, ExportFormat::Jsonl);
    assert_eq!(n, 200);
}

#[tokio::test]
async fn acknowledged_put_survives_a_crash() {
    let tmp = tempfile::tempdir().unwrap();
    let store = CaptureStore::open(config(tmp.path())).unwrap();
    let body = message(7);
    let outcome = store
        .put_artifact(
            origin("s1", "192.0.2.44"),
            "email",
            email_meta(&["r@victim.example"]),
            body.clone(),
        )
        .await
        .unwrap();
    // Die without flush or close: buffers leaked, database not closed.
    store.send_test_hook(Request::Crash).await;
    assert_eq!(store.flush().await, Err(PutError::Closed));
    std::mem::forget(store);

    let reopened = CaptureStore::open(config(tmp.path())).unwrap();
    assert_eq!(reopened.usage().messages, 1);
    assert_eq!(reopened.usage().recipients, 1);
    reopened.close().await;
    assert_eq!(read_blob(tmp.path(), outcome.sha256()).unwrap(), body);
    let mut shown = Vec::new();
    show_message(tmp.path(), outcome.sha256(), &mut shown).unwrap();
    assert!(String::from_utf8(shown).unwrap().contains("192.0.2.44 (1)"));
}

/// What a power loss does to SQLite with synchronous=NORMAL: the database
/// file as it was before the last transactions, no WAL.
fn lose_database_tail(data_dir: &Path, saved: &Path) {
    std::fs::copy(saved, data_dir.join(DB_FILE)).unwrap();
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(data_dir.join(format!("{DB_FILE}{suffix}")));
    }
}

/// Puts a new body (3 recipients), a repeat of `first` (2) and an upload,
/// each its own batch (each put waits for its acknowledgement).
async fn put_three(store: &CaptureStore, first: &[u8]) {
    let rcpts = ["a@victim.example", "b@victim.example"];
    let puts = [
        (
            "email",
            email_meta(&["c@victim.example", "d@x", "e@x"]),
            message(2),
        ),
        ("email", email_meta(&rcpts), first.to_vec()),
        ("uploaded-file", vec![], b"MZ payload".to_vec()),
    ];
    for (i, (kind, meta, body)) in puts.into_iter().enumerate() {
        store
            .put_artifact(origin(&format!("t{i}"), "192.0.2.9"), kind, meta, body)
            .await
            .unwrap();
    }
}

/// A store in `data` holding message 1 (session s1, `meta`), closed, its
/// database copied to `saved`. Returns message 1.
async fn first_message_saved(data: &Path, saved: &Path, meta: Vec<(String, String)>) -> Vec<u8> {
    let first = message(1);
    let store = CaptureStore::open(config(data)).unwrap();
    store
        .put_artifact(origin("s1", "192.0.2.1"), "email", meta, first.clone())
        .await
        .unwrap();
    store.close().await;
    std::fs::copy(data.join(DB_FILE), saved).unwrap();
    first
}

#[tokio::test]
async fn offline_readers_replay_what_a_stopped_sensor_left_in_the_journal() {
    let tmp = tempfile::tempdir().unwrap();
    let saved = tmp.path().join("saved.db");
    let data = tmp.path().join("data");
    let first = first_message_saved(&data, &saved, vec![]).await;
    assert_eq!(catch_up(&data).await.unwrap(), CatchUp::UpToDate);
    let store = CaptureStore::open(config(&data)).unwrap();
    put_three(&store, &first).await;
    store.close().await;
    lose_database_tail(&data, &saved);
    assert_eq!(count(&data, "SELECT COUNT(*) FROM messages"), 1);

    // A running sensor (it holds the lock) replays and indexes itself.
    let lock = std::fs::File::open(data.join(LOCK_FILE)).unwrap();
    assert_eq!(
        // SAFETY: flock on a valid, owned file descriptor.
        unsafe {
            libc::flock(
                std::os::fd::AsRawFd::as_raw_fd(&lock),
                libc::LOCK_EX | libc::LOCK_NB,
            )
        },
        0
    );
    assert_eq!(catch_up(&data).await.unwrap(), CatchUp::SensorRunning);
    assert_eq!(count(&data, "SELECT COUNT(*) FROM messages"), 1);
    drop(lock);

    assert_eq!(catch_up(&data).await.unwrap(), CatchUp::Replayed);
    assert_eq!(count(&data, "SELECT COUNT(*) FROM messages"), 3);
    assert_eq!(count(&data, "SELECT COUNT(*) FROM artifact_sightings"), 1);
    assert_eq!(catch_up(&data).await.unwrap(), CatchUp::UpToDate);
}

#[tokio::test]
async fn batches_the_database_lost_are_replayed_from_the_journal() {
    let tmp = tempfile::tempdir().unwrap();
    let saved = tmp.path().join("saved.db");
    let data = tmp.path().join("data");
    let rcpts = email_meta(&["a@victim.example", "b@victim.example"]);
    let first = first_message_saved(&data, &saved, rcpts).await;

    let store = CaptureStore::open(config(&data)).unwrap();
    put_three(&store, &first).await;
    store.close().await;
    lose_database_tail(&data, &saved);
    // ...and a torn record after the last acknowledged one.
    let segments = || -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(data.join(journal::JOURNAL_DIR))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    };
    assert_eq!(segments(), ["journal-000002.log"]);
    // The segment is zero-filled past its records; the torn record goes
    // right after the last one.
    let seg = data.join("journal/journal-000002.log");
    let raw = std::fs::read(&seg).unwrap();
    let end = journal_records_end(&raw);
    assert!(raw.len() > end && raw[end..].iter().all(|b| *b == 0));
    let f = std::fs::OpenOptions::new().write(true).open(&seg).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, b"SPJB\x40\0\0\0\0\0\0\0[{\"torn", end as u64)
        .unwrap();
    drop(f);
    assert_eq!(count(&data, "SELECT COUNT(*) FROM messages"), 1);

    let store = CaptureStore::open(config(&data)).unwrap();
    let u = store.usage();
    assert_eq!((u.messages, u.recipients, u.artifacts), (3, 7, 3));
    // Opening again replays nothing twice.
    store.close().await;
    let store = CaptureStore::open(config(&data)).unwrap();
    assert_eq!(store.usage().messages, 3);
    store.close().await;
    assert_eq!(segments(), ["journal-000004.log"]);
    assert_eq!(
        count(
            &data,
            "SELECT seen_count FROM artifacts WHERE sha256 = (SELECT sha256 FROM messages WHERE session = 's1')"
        ),
        2
    );
    assert_eq!(count(&data, "SELECT COUNT(*) FROM artifact_sightings"), 1);
    assert_eq!(
        read_blob(&data, &sha256_hex(&message(2))).unwrap(),
        message(2)
    );
    assert_eq!(stored_bodies(&data).len(), 3);
    let mut shown = Vec::new();
    show_message(&data, &sha256_hex(&message(2)), &mut shown).unwrap();
    let shown = String::from_utf8(shown).unwrap();
    assert!(
        shown.contains("e@x") && shown.contains("192.0.2.9"),
        "{shown}"
    );
}

#[tokio::test]
async fn bodies_a_pack_lost_come_back_from_the_journal() {
    let tmp = tempfile::tempdir().unwrap();
    let saved = tmp.path().join("saved.db");
    let data = tmp.path().join("data");
    let first = first_message_saved(&data, &saved, vec![]).await;
    let pack = data.join("blobs/pack-000001.pack");
    let committed = std::fs::metadata(&pack).unwrap().len();

    let store = CaptureStore::open(config(&data)).unwrap();
    put_three(&store, &first).await;
    store.close().await;
    // A power loss took the rows and the pack's tail (written, synced only
    // before indexing), and left debris where the bodies were.
    lose_database_tail(&data, &saved);
    let f = std::fs::OpenOptions::new().write(true).open(&pack).unwrap();
    f.set_len(committed).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, &[0xAA; 40], committed).unwrap();
    drop(f);

    let store = CaptureStore::open(config(&data)).unwrap();
    assert_eq!(store.usage().messages, 3);
    store
        .put_artifact(origin("s9", "192.0.2.1"), "email", vec![], message(4))
        .await
        .unwrap();
    store.close().await;
    for body in [first, message(2), b"MZ payload".to_vec(), message(4)] {
        assert_eq!(read_blob(&data, &sha256_hex(&body)).unwrap(), body);
    }
    assert_eq!(stored_bodies(&data).len(), 4);
    let size: i64 = db(&data)
        .query_row("SELECT size FROM packs WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(std::fs::metadata(&pack).unwrap().len(), size as u64);
}

/// Where a journal segment's records end: after the 16-byte header, each
/// record is `SPJB`, its payload length (u64 LE), the payload and 32 bytes.
fn journal_records_end(raw: &[u8]) -> usize {
    let mut at = 16;
    while raw.get(at..at + 4) == Some(b"SPJB") {
        let n = u64::from_le_bytes(raw[at + 4..at + 12].try_into().unwrap()) as usize;
        at += 12 + n + 32;
    }
    at
}

#[tokio::test]
async fn a_journal_record_that_does_not_verify_ends_the_replay() {
    let tmp = tempfile::tempdir().unwrap();
    let saved = tmp.path().join("saved.db");
    let data = tmp.path().join("data");
    let store = CaptureStore::open(config(&data)).unwrap();
    store.close().await;
    std::fs::copy(data.join(DB_FILE), &saved).unwrap();
    let store = CaptureStore::open(config(&data)).unwrap();
    put_three(&store, &message(1)).await;
    store.close().await;
    lose_database_tail(&data, &saved);
    // Flip a byte inside the second record (the repeat of message 1): it
    // and the third are not replayed, the first is.
    let seg = data.join("journal/journal-000002.log");
    let mut raw = std::fs::read(&seg).unwrap();
    let second = raw
        .windows(4)
        .enumerate()
        .filter(|(_, w)| *w == b"SPJB")
        .nth(1)
        .unwrap()
        .0;
    raw[second + 20] ^= 0x20;
    std::fs::write(&seg, &raw).unwrap();
    let store = CaptureStore::open(config(&data)).unwrap();
    let u = store.usage();
    store.close().await;
    assert_eq!((u.messages, u.artifacts), (1, 1));
    assert_eq!(count(&data, "SELECT COUNT(*) FROM artifact_sightings"), 0);
}

#[tokio::test]
async fn journal_segments_roll_and_old_ones_go() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path());
    cfg.journal_roll_bytes = 1;
    let store = CaptureStore::open(cfg.clone()).unwrap();
    put_three(&store, &message(1)).await;
    // The last roll happens after its batch is answered.
    store.flush().await.unwrap();
    let segments: Vec<_> = std::fs::read_dir(tmp.path().join(journal::JOURNAL_DIR))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    // Segment 1 at open, one roll per batch.
    assert_eq!(segments, ["journal-000004.log"]);
    store.close().await;
    let store = CaptureStore::open(cfg).unwrap();
    assert_eq!(store.usage().messages, 2);
    store.close().await;
}

#[tokio::test]
async fn quota_counts_but_does_not_store() {
    let tmp = tempfile::tempdir().unwrap();
    let first = message(1);
    let compressed = zstd::bulk::compress(&first, blobs::ZSTD_LEVEL).unwrap();
    let mut cfg = config(tmp.path());
    cfg.quota_bytes = compressed.len() as u64 + 5;
    let store = CaptureStore::open(cfg).unwrap();
    let put = |n: usize, body: Vec<u8>| {
        let store = store.clone();
        async move {
            store
                .put_artifact(
                    origin(&format!("s{n}"), "192.0.2.1"),
                    "email",
                    email_meta(&["q@victim.example"]),
                    body,
                )
                .await
                .unwrap()
        }
    };
    assert!(matches!(
        put(1, first.clone()).await,
        PutOutcome::Stored { new_blob: true, .. }
    ));
    let second = message(2);
    assert_eq!(
        put(2, second.clone()).await,
        PutOutcome::OverQuota {
            sha256: sha256_hex(&second),
            size: second.len() as u64
        }
    );
    assert!(matches!(
        put(3, message(3)).await,
        PutOutcome::OverQuota { .. }
    ));
    // A body already stored is still accepted past the quota.
    assert!(matches!(
        put(4, first.clone()).await,
        PutOutcome::Stored {
            new_blob: false,
            ..
        }
    ));
    let usage = store.usage();
    assert!(usage.over_quota);
    assert_eq!(usage.blob_bytes, compressed.len() as u64);
    assert_eq!(usage.messages, 4);
    assert_eq!(usage.artifacts, 3);
    assert_eq!(usage.artifacts_stored, 1);
    store.close().await;

    assert_eq!(stored_bodies(tmp.path()), [sha256_hex(&first)]);
    assert!(matches!(
        read_blob(tmp.path(), &sha256_hex(&second)),
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(
        count(tmp.path(), "SELECT COUNT(*) FROM messages WHERE stored = 0"),
        2
    );
    assert_eq!(
        count(
            tmp.path(),
            "SELECT COUNT(*) FROM artifacts WHERE stored = 0 AND stored_size = 0"
        ),
        2
    );
    let (_, events) = export_string(tmp.path(), ExportWhat::Events, ExportFormat::Jsonl);
    let quota: Vec<Value> = events
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["eventid"] == "store.quota")
        .collect();
    assert_eq!(quota.len(), 1, "{events}");
    assert_eq!(quota[0]["sha256"], sha256_hex(&second));
    assert_eq!(quota[0]["session"], "s2");
    let mut shown = Vec::new();
    show_message(tmp.path(), &sha256_hex(&second), &mut shown).unwrap();
    assert!(
        String::from_utf8(shown)
            .unwrap()
            .contains("not stored: over quota")
    );

    // Reopening computes usage from the database.
    let store = CaptureStore::open(config(tmp.path())).unwrap();
    assert_eq!(store.usage().blob_bytes, compressed.len() as u64);
    store.close().await;
}

#[tokio::test]
async fn migrations_upgrade_old_and_refuse_newer() {
    const { assert!(SCHEMA_VERSION >= 2, "the upgrade test needs two migrations") };
    assert_eq!(schema::APPLICATION_ID, 1_397_772_372);
    let tmp = tempfile::tempdir().unwrap();
    {
        let conn = Connection::open(tmp.path().join(DB_FILE)).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute(
            "INSERT INTO artifacts (sha256, kind, size, stored_size, stored, first_seen, last_seen)
             VALUES ('00', 'email', 10, 0, 0, 'x', 'x')",
            [],
        )
        .unwrap();
    }
    // The read side refuses an old schema with a clear message.
    let err = export(
        tmp.path(),
        ExportWhat::Messages,
        ExportFormat::Csv,
        &mut Vec::new(),
    )
    .unwrap_err();
    assert!(
        matches!(err, StoreError::OlderSchema { found: 1, .. }),
        "{err}"
    );

    let store = CaptureStore::open(config(tmp.path())).unwrap();
    assert_eq!(store.usage().artifacts, 1);
    store.close().await;
    let conn = db(tmp.path());
    let v: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    let idx: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = 'messages_sha256'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(idx, 1);
    drop(conn);

    let newer = tempfile::tempdir().unwrap();
    {
        let conn = Connection::open(newer.path().join(DB_FILE)).unwrap();
        conn.pragma_update(None, "user_version", 999).unwrap();
    }
    let err = CaptureStore::open(config(newer.path())).unwrap_err();
    assert!(
        matches!(err, StoreError::NewerSchema { found: 999, .. }),
        "{err}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("999") && msg.contains(DB_FILE) && msg.contains("newer"),
        "{msg}"
    );
    let err = export(
        newer.path(),
        ExportWhat::Messages,
        ExportFormat::Jsonl,
        &mut Vec::new(),
    )
    .unwrap_err();
    assert!(matches!(err, StoreError::NewerSchema { .. }), "{err}");

    let foreign = tempfile::tempdir().unwrap();
    {
        let conn = Connection::open(foreign.path().join(DB_FILE)).unwrap();
        conn.pragma_update(None, "application_id", 42).unwrap();
    }
    let err = CaptureStore::open(config(foreign.path())).unwrap_err();
    assert!(matches!(err, StoreError::NotSpampotDb { .. }), "{err}");
}

#[tokio::test]
async fn user_supplied_digests_are_validated() {
    let tmp = tempfile::tempdir().unwrap();
    let store = CaptureStore::open(config(tmp.path())).unwrap();
    let out = store
        .put_artifact(origin("s", "192.0.2.1"), "email", vec![], message(1))
        .await
        .unwrap();
    store.close().await;
    let sha = out.sha256().to_string();
    let bad = [
        "../etc/passwd".to_string(),
        "../../../../../../etc/passwd".to_string(),
        format!("{}/../x", &sha[..20]),
        format!("{sha}0"),
        sha.to_uppercase(),
        format!("{}g", &sha[..63]),
        format!("{}\0", &sha[..63]),
        String::new(),
    ];
    for b in &bad {
        assert!(
            matches!(
                read_blob(tmp.path(), b),
                Err(StoreError::InvalidSha256 { .. })
            ),
            "read_blob accepted {b:?}"
        );
        let r = show_message(tmp.path(), b, &mut Vec::new());
        assert!(
            matches!(r, Err(StoreError::InvalidSha256 { .. })),
            "show_message accepted {b:?}: {r:?}"
        );
    }
    // read_blob wants the full digest; show_message takes a unique prefix of
    // 8 to 64 digits (it resolves it to a full digest from the database).
    assert!(matches!(
        read_blob(tmp.path(), &sha[..63]),
        Err(StoreError::InvalidSha256 { .. })
    ));
    show_message(tmp.path(), &sha[..63], &mut Vec::new()).unwrap();
    assert!(matches!(
        show_message(tmp.path(), &sha[..7], &mut Vec::new()),
        Err(StoreError::InvalidSha256 { .. })
    ));
    show_message(tmp.path(), &sha[..8], &mut Vec::new()).unwrap();
    assert!(matches!(
        read_blob(tmp.path(), &sha[..8]),
        Err(StoreError::InvalidSha256 { .. })
    ));
    assert!(matches!(
        show_message(tmp.path(), "0123456789abcdef", &mut Vec::new()),
        Err(StoreError::NotFound { .. })
    ));
    assert_eq!(legacy_rel_path("../etc/passwd"), None);
}

#[tokio::test]
async fn events_are_indexed_exported_and_rotated() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path());
    cfg.events_rotate_bytes = 600;
    let store = CaptureStore::open(cfg).unwrap();
    let mut n = 0;
    let mut rec = |store: &CaptureStore, mut ev: Map<String, Value>| {
        ev.insert("seq".into(), n.into());
        n += 1;
        store.record(ev);
    };
    rec(&store, event("session.open", "S1", json!({})));
    rec(
        &store,
        event(
            "proxy.request",
            "S1",
            json!({"module": "socks5", "kind": "connect", "target_host": "mx.victim.example", "target_port": 25}),
        ),
    );
    store.flush().await.unwrap();
    rec(
        &store,
        event(
            "credential",
            "S1",
            json!({"protocol": "smtp", "mechanism": "PLAIN", "username": "admin", "password": "hunter2, \"quoted\"\nnewline"}),
        ),
    );
    rec(
        &store,
        event("smtp.message", "S1", json!({"rcpt_to": ["a@x", "b@y"]})),
    );
    store.flush().await.unwrap();
    rec(
        &store,
        event(
            "session.close",
            "S1",
            json!({"duration_ms": 1234, "bytes_in": 100, "bytes_out": "200", "reason": "client closed"}),
        ),
    );
    // A close without an open still makes a session row.
    rec(
        &store,
        event("session.close", "S2", json!({"reason": "timeout"})),
    );
    store.flush().await.unwrap();
    for _ in 0..10 {
        rec(
            &store,
            event("telnet.command", "S3", json!({"line": "enable"})),
        );
        store.flush().await.unwrap();
    }
    assert_eq!(store.usage().events_written, 16);
    store.close().await;

    let d = tmp.path();
    assert_eq!(count(d, "SELECT COUNT(*) FROM sessions"), 2);
    let row: (String, i64, i64, Option<String>, i64, i64, i64, String) = db(d)
        .query_row(
            "SELECT src_ip, src_port, dst_port, started_at, duration_ms, bytes_in, bytes_out, reason
             FROM sessions WHERE session = 'S1'",
            [],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                    r.get(7)?,
                ))
            },
        )
        .unwrap();
    assert_eq!(row.0, "203.0.113.7");
    assert_eq!((row.1, row.2), (51234, 1080));
    assert!(row.3.is_some());
    assert_eq!((row.4, row.5, row.6), (1234, 100, 200));
    assert_eq!(row.7, "client closed");
    assert_eq!(
        count(
            d,
            "SELECT COUNT(*) FROM requests WHERE module = 'socks5' AND kind = 'connect' AND target_port = 25"
        ),
        1
    );
    assert_eq!(
        count(
            d,
            "SELECT COUNT(*) FROM credentials WHERE username = 'admin' AND mechanism = 'PLAIN'"
        ),
        1
    );

    let rotated =
        export::rotated_event_files(&Dir::open_ambient_dir(d, ambient_authority()).unwrap())
            .unwrap();
    assert!(rotated.len() >= 2, "{rotated:?}");

    let (rows, jsonl) = export_string(d, ExportWhat::Events, ExportFormat::Jsonl);
    assert_eq!(rows, 16);
    let seqs: Vec<i64> = jsonl
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["seq"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(seqs, (0..16).collect::<Vec<_>>());

    let (rows, csv) = export_string(d, ExportWhat::Events, ExportFormat::Csv);
    assert_eq!(rows, 16);
    assert!(csv.starts_with(
        "timestamp,eventid,sensor,session,src_ip,src_port,dst_port,plugin,fields\r\n"
    ));
    // The quoted newline in the password does not split the record.
    assert_eq!(csv.split("\r\n").filter(|l| !l.is_empty()).count(), 17);
    // CSV doubles the quotes of the JSON-escaped password.
    assert!(csv.contains(r#"hunter2, \""quoted\""\nnewline"#), "{csv}");
}

#[tokio::test]
async fn messages_export_formats() {
    let tmp = tempfile::tempdir().unwrap();
    let store = CaptureStore::open(config(tmp.path())).unwrap();
    for i in 0..3 {
        store
            .put_artifact(
                origin(&format!("s{i}"), "192.0.2.8"),
                "email",
                email_meta(&["a@victim.example", "b,\"c\"@victim.example"]),
                message(i),
            )
            .await
            .unwrap();
    }
    store
        .put_artifact(
            origin("u", "192.0.2.8"),
            "uploaded-file",
            vec![],
            b"not a message".to_vec(),
        )
        .await
        .unwrap();
    store.close().await;
    let (rows, jsonl) = export_string(tmp.path(), ExportWhat::Messages, ExportFormat::Jsonl);
    assert_eq!(rows, 3);
    let first: Value = serde_json::from_str(jsonl.lines().next().unwrap()).unwrap();
    assert_eq!(
        first["recipients"],
        json!(["a@victim.example", "b,\"c\"@victim.example"])
    );
    assert_eq!(first["stored"], json!(true));
    assert_eq!(first["probe"], json!(false));
    assert_eq!(first["rcpt_count"], json!(2));
    assert_eq!(first["src_port"], json!(40000));
    assert_eq!(first["extra_meta"], Value::Null);
    let (rows, csv) = export_string(tmp.path(), ExportWhat::Messages, ExportFormat::Csv);
    assert_eq!(rows, 3);
    assert_eq!(csv.lines().count(), 4);
    assert!(csv.lines().next().unwrap().starts_with("id,session,ts,"));
}

#[tokio::test]
async fn failed_blob_write_fails_the_put_and_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let store = CaptureStore::open(config(tmp.path())).unwrap();
    let body = message(42);
    let sha = sha256_hex(&body);
    // A directory where the first pack must go makes the blob write fail.
    let obstacle = tmp
        .path()
        .join(spampot_blobstore::pack_rel_path(1).unwrap());
    std::fs::create_dir(&obstacle).unwrap();
    store.record(event("session.open", "S1", json!({})));
    let r = store
        .put_artifact(
            origin("s1", "192.0.2.1"),
            "email",
            email_meta(&["a@b"]),
            body.clone(),
        )
        .await;
    assert!(matches!(r, Err(PutError::Io(_))), "{r:?}");
    assert_eq!(store.usage().messages, 0);
    std::fs::remove_dir(&obstacle).unwrap();
    let r = store
        .put_artifact(
            origin("s1", "192.0.2.1"),
            "email",
            email_meta(&["a@b"]),
            body.clone(),
        )
        .await;
    assert!(
        matches!(r, Ok(PutOutcome::Stored { new_blob: true, .. })),
        "{r:?}"
    );
    store.close().await;
    assert_eq!(count(tmp.path(), "SELECT COUNT(*) FROM messages"), 1);
    // The event of the failed batch is still indexed.
    assert_eq!(count(tmp.path(), "SELECT COUNT(*) FROM sessions"), 1);
    assert_eq!(read_blob(tmp.path(), &sha).unwrap(), body);
    assert_eq!(stored_bodies(tmp.path()), [sha]);
}

/// Rename a table behind the store's back: with `messages` gone, the
/// database refuses the rows of every email.
fn rename_table(data: &Path, from: &str, to: &str) {
    let conn = Connection::open(data.join(DB_FILE)).unwrap();
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .unwrap();
    conn.execute_batch(&format!("ALTER TABLE {from} RENAME TO {to}"))
        .unwrap();
}

#[tokio::test]
async fn a_database_that_refuses_rows_loses_no_acknowledged_artifact() {
    let tmp = tempfile::tempdir().unwrap();
    let store = CaptureStore::open(config(tmp.path())).unwrap();
    let rename = |from: &str, to: &str| rename_table(tmp.path(), from, to);
    store
        .put_artifact(origin("s1", "192.0.2.1"), "email", vec![], message(1))
        .await
        .unwrap();
    store.flush().await.unwrap();
    // The rows of the next artifacts cannot be inserted for a while: they
    // are acknowledged anyway (the journal has them), and flush says the
    // database is behind.
    rename("messages", "messages_away");
    for n in 2..4 {
        store
            .put_artifact(origin("s2", "192.0.2.1"), "email", vec![], message(n))
            .await
            .unwrap();
    }
    let err = store.flush().await.unwrap_err();
    assert!(err.to_string().contains("journal"), "{err}");
    let u = store.usage();
    assert_eq!(
        (u.messages, u.unindexed_artifacts, u.index_failing),
        (3, 2, true)
    );
    // The failed job's bodies are still known to be stored: a repeat is a
    // sighting, not a second copy.
    let again = store
        .put_artifact(origin("s3", "192.0.2.1"), "email", vec![], message(2))
        .await
        .unwrap();
    assert!(
        matches!(
            again,
            PutOutcome::Stored {
                new_blob: false,
                ..
            }
        ),
        "{again:?}"
    );
    rename("messages_away", "messages");
    store.flush().await.unwrap();
    let u = store.usage();
    assert_eq!((u.unindexed_artifacts, u.index_failing), (0, false));
    assert_eq!(count(tmp.path(), "SELECT COUNT(*) FROM messages"), 4);
    assert_eq!(count(tmp.path(), "SELECT COUNT(*) FROM artifacts"), 3);
    store.close().await;
    assert_eq!(stored_bodies(tmp.path()).len(), 3);
    for n in 1..4 {
        assert_eq!(
            read_blob(tmp.path(), &sha256_hex(&message(n))).unwrap(),
            message(n)
        );
    }
    let size: i64 = db(tmp.path())
        .query_row("SELECT size FROM packs WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    let len = std::fs::metadata(tmp.path().join("blobs/pack-000001.pack"))
        .unwrap()
        .len();
    assert_eq!(size as u64, len);
}

#[tokio::test]
async fn past_the_cap_of_unindexed_artifacts_new_ones_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path());
    cfg.max_unindexed_artifacts = 2;
    let store = CaptureStore::open(cfg).unwrap();
    store.flush().await.unwrap();
    let rename = |from: &str, to: &str| rename_table(tmp.path(), from, to);
    rename("messages", "messages_away");
    for n in 1..3 {
        store
            .put_artifact(origin("s1", "192.0.2.1"), "email", vec![], message(n))
            .await
            .unwrap();
    }
    // Make sure the two were tried (and refused) by the database.
    store.flush().await.unwrap_err();
    let err = store
        .put_artifact(origin("s2", "192.0.2.1"), "email", vec![], message(3))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("refusing more until it does"),
        "{err}"
    );
    assert_eq!(store.usage().unindexed_artifacts, 2);
    // Once the database takes rows again, so does the store.
    rename("messages_away", "messages");
    store.flush().await.unwrap();
    store
        .put_artifact(origin("s2", "192.0.2.1"), "email", vec![], message(3))
        .await
        .unwrap();
    store.close().await;
    assert_eq!(count(tmp.path(), "SELECT COUNT(*) FROM messages"), 3);
}

#[tokio::test]
async fn torn_pack_tail_is_cut_at_open() {
    let tmp = tempfile::tempdir().unwrap();
    let store = CaptureStore::open(config(tmp.path())).unwrap();
    let first = message(1);
    store
        .put_artifact(origin("s1", "192.0.2.1"), "email", vec![], first.clone())
        .await
        .unwrap();
    store.send_test_hook(Request::Crash).await;
    std::mem::forget(store);
    // What a crash mid-batch leaves: a record header without its body.
    let pack = tmp.path().join("blobs/pack-000001.pack");
    let committed = std::fs::metadata(&pack).unwrap().len();
    // Longer than the next record, so appending over it cannot hide it.
    let mut tail = Vec::new();
    spampot_blobstore::append_record(&mut tail, &sha256_hex(b"lost"), 4, &[7u8; 4000]).unwrap();
    tail.truncate(tail.len() - 3);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&pack)
        .unwrap();
    std::io::Write::write_all(&mut f, &tail).unwrap();
    drop(f);

    let store = CaptureStore::open(config(tmp.path())).unwrap();
    let second = message(2);
    store
        .put_artifact(origin("s2", "192.0.2.1"), "email", vec![], second.clone())
        .await
        .unwrap();
    store.close().await;
    assert_eq!(
        location(tmp.path(), &sha256_hex(&second)),
        (Some(1), Some(committed as i64))
    );
    let size: i64 = db(tmp.path())
        .query_row("SELECT size FROM packs WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(std::fs::metadata(&pack).unwrap().len(), size as u64);
    assert_eq!(
        stored_bodies(tmp.path()),
        [sha256_hex(&first), sha256_hex(&second)]
    );
    assert_eq!(read_blob(tmp.path(), &sha256_hex(&first)).unwrap(), first);
    assert_eq!(read_blob(tmp.path(), &sha256_hex(&second)).unwrap(), second);
}

#[tokio::test]
async fn packs_roll_at_the_size_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path());
    // Every batch after the first finds its pack full.
    cfg.pack_roll_bytes = 1;
    let store = CaptureStore::open(cfg).unwrap();
    let bodies: Vec<Vec<u8>> = (0..3).map(message).collect();
    for (i, b) in bodies.iter().enumerate() {
        store
            .put_artifact(
                origin(&format!("s{i}"), "192.0.2.1"),
                "email",
                vec![],
                b.clone(),
            )
            .await
            .unwrap();
    }
    store.close().await;
    for (i, b) in bodies.iter().enumerate() {
        let sha = sha256_hex(b);
        assert_eq!(location(tmp.path(), &sha).0, Some(i as i64 + 1));
        assert_eq!(read_blob(tmp.path(), &sha).unwrap(), *b);
    }
    assert!(tmp.path().join("blobs/pack-000003.pack").is_file());
    assert_eq!(count(tmp.path(), "SELECT COUNT(*) FROM packs"), 3);
}

#[tokio::test]
async fn legacy_blob_files_are_still_read_and_deduplicated() {
    const { assert!(SCHEMA_VERSION >= spampot_blobstore::PACK_SCHEMA_VERSION) };
    let tmp = tempfile::tempdir().unwrap();
    let old = message(1);
    let sha = sha256_hex(&old);
    let compressed = zstd::bulk::compress(&old, blobs::ZSTD_LEVEL).unwrap();
    {
        // A data directory from before packs: schema version 2, one body in
        // the per-file layout.
        let conn = Connection::open(tmp.path().join(DB_FILE)).unwrap();
        conn.execute_batch(MIGRATIONS[0]).unwrap();
        conn.execute_batch(MIGRATIONS[1]).unwrap();
        conn.pragma_update(None, "user_version", 2).unwrap();
        conn.execute(
            "INSERT INTO artifacts (sha256, kind, size, stored_size, stored, first_seen, last_seen)
             VALUES (?1, 'email', ?2, ?3, 1, 'x', 'x')",
            rusqlite::params![sha, old.len() as i64, compressed.len() as i64],
        )
        .unwrap();
        let path = tmp.path().join(legacy_rel_path(&sha).unwrap());
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &compressed).unwrap();
    }
    let store = CaptureStore::open(config(tmp.path())).unwrap();
    assert_eq!(store.usage().blob_bytes, compressed.len() as u64);
    let again = store
        .put_artifact(origin("s1", "192.0.2.1"), "email", vec![], old.clone())
        .await
        .unwrap();
    assert!(
        matches!(
            again,
            PutOutcome::Stored {
                new_blob: false,
                ..
            }
        ),
        "{again:?}"
    );
    let new = message(2);
    store
        .put_artifact(origin("s2", "192.0.2.1"), "email", vec![], new.clone())
        .await
        .unwrap();
    store.close().await;
    assert_eq!(location(tmp.path(), &sha), (None, None));
    assert_eq!(location(tmp.path(), &sha256_hex(&new)).0, Some(1));
    assert_eq!(read_blob(tmp.path(), &sha).unwrap(), old);
    assert_eq!(read_blob(tmp.path(), &sha256_hex(&new)).unwrap(), new);
    let mut shown = Vec::new();
    show_message(tmp.path(), &sha, &mut shown).unwrap();
    assert!(shown.ends_with(&old));
    let mut all = stored_bodies(tmp.path());
    all.sort();
    let mut want = vec![sha.clone(), sha256_hex(&new)];
    want.sort();
    assert_eq!(all, want);
    // A legacy file that does not match its name is refused.
    std::fs::write(
        tmp.path().join(legacy_rel_path(&sha).unwrap()),
        zstd::bulk::compress(b"tampered", 3).unwrap(),
    )
    .unwrap();
    assert!(matches!(
        read_blob(tmp.path(), &sha),
        Err(StoreError::Corrupt { .. })
    ));
}

#[tokio::test]
async fn writer_panic_closes_instead_of_hanging() {
    let tmp = tempfile::tempdir().unwrap();
    let store = CaptureStore::open(config(tmp.path())).unwrap();
    store.send_test_hook(Request::Panic).await;
    let r = store
        .put_artifact(origin("s", "192.0.2.1"), "email", vec![], message(1))
        .await;
    assert_eq!(r, Err(PutError::Closed));
    assert_eq!(store.flush().await, Err(PutError::Closed));
    store.record(event("session.open", "S", json!({})));
    assert_eq!(store.usage().events_dropped, 1);
    store.close().await;
}

/// A store in `tmp` that took `hook` (an indexer panic) and then three
/// acknowledged messages.
async fn three_messages_after(tmp: &Path, hook: Request) -> CaptureStore {
    let store = CaptureStore::open(config(tmp)).unwrap();
    store.flush().await.unwrap();
    store.send_request(hook).await;
    for n in 1..4 {
        store
            .put_artifact(origin("s1", "192.0.2.1"), "email", vec![], message(n))
            .await
            .unwrap();
    }
    store
}

#[tokio::test]
async fn an_idle_indexer_that_dies_is_restarted_and_nothing_waits() {
    let tmp = tempfile::tempdir().unwrap();
    let store = three_messages_after(tmp.path(), Request::PanicIndexer).await;
    // The job sent to the dead thread came back; a new thread indexed it.
    store.flush().await.unwrap();
    assert!(!store.usage().index_failing);
    assert_eq!(count(tmp.path(), "SELECT COUNT(*) FROM messages"), 3);

    // A thread that dies with a job of events only has nothing to replay:
    // the event is in the log, and the next thread takes the next ones.
    store.send_request(Request::PanicIndexerWithJob).await;
    store.record(event("session.open", "lost", json!({})));
    store.flush().await.unwrap();
    store.record(event("session.open", "kept", json!({})));
    store.flush().await.unwrap();
    assert!(!store.usage().index_failing);
    assert_eq!(count(tmp.path(), "SELECT COUNT(*) FROM sessions"), 1);
    store.close().await;
    let log = std::fs::read_to_string(tmp.path().join(EVENTS_FILE)).unwrap();
    assert!(
        log.contains("\"lost\"") && log.contains("\"kept\""),
        "{log}"
    );
}

#[tokio::test]
async fn an_indexer_that_dies_with_a_job_is_restarted_and_the_job_replayed() {
    let tmp = tempfile::tempdir().unwrap();
    let store = three_messages_after(tmp.path(), Request::PanicIndexerWithJob).await;
    // The thread died holding those three; the journal gave them back.
    store.flush().await.unwrap();
    assert_eq!(count(tmp.path(), "SELECT COUNT(*) FROM messages"), 3);
    // A repeat after the restart is a sighting of the replayed body.
    store
        .put_artifact(origin("s2", "192.0.2.2"), "email", vec![], message(1))
        .await
        .unwrap();
    store.flush().await.unwrap();
    assert_eq!(count(tmp.path(), "SELECT COUNT(*) FROM messages"), 4);
    assert_eq!(count(tmp.path(), "SELECT COUNT(*) FROM artifacts"), 3);
    assert_eq!(
        count(
            tmp.path(),
            "SELECT seen_count FROM artifacts ORDER BY seen_count DESC LIMIT 1"
        ),
        2
    );
    store.close().await;
    assert_eq!(stored_bodies(tmp.path()).len(), 3);
}

#[tokio::test]
async fn an_indexer_that_keeps_dying_stops_being_restarted_and_loses_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = CaptureStore::open(config(tmp.path())).unwrap();
    store.flush().await.unwrap();
    let mut n = 0;
    // Each death with a job costs a restart; the last one is not replaced.
    for _ in 0..=writer::MAX_INDEXER_RESTARTS {
        store.send_request(Request::PanicIndexerWithJob).await;
        n += 1;
        store
            .put_artifact(origin("s1", "192.0.2.1"), "email", vec![], message(n))
            .await
            .unwrap();
        let _ = store.flush().await;
    }
    // Artifacts are still acknowledged: the journal has them.
    n += 1;
    store
        .put_artifact(origin("s1", "192.0.2.1"), "email", vec![], message(n))
        .await
        .unwrap();
    let err = store.flush().await.unwrap_err();
    assert!(err.to_string().contains("journal"), "{err}");
    assert!(store.usage().index_failing);
    store.close().await;
    let indexed = count(tmp.path(), "SELECT COUNT(*) FROM messages");
    assert_eq!(indexed, i64::from(writer::MAX_INDEXER_RESTARTS));
    // The next open replays the rest.
    let store = CaptureStore::open(config(tmp.path())).unwrap();
    store.close().await;
    assert_eq!(count(tmp.path(), "SELECT COUNT(*) FROM messages"), n as i64);
}

#[tokio::test]
async fn data_directory_is_locked_while_open() {
    let tmp = tempfile::tempdir().unwrap();
    let store = CaptureStore::open(config(tmp.path())).unwrap();
    let err = CaptureStore::open(config(tmp.path())).unwrap_err();
    assert!(matches!(err, StoreError::Locked { .. }), "{err}");
    // The read side works while the honeypot runs.
    assert_eq!(
        export(
            tmp.path(),
            ExportWhat::Messages,
            ExportFormat::Jsonl,
            &mut Vec::new()
        )
        .unwrap(),
        0
    );
    store.close().await;
    store.close().await; // idempotent
    assert_eq!(
        store
            .put_artifact(origin("s", "1"), "email", vec![], vec![])
            .await,
        Err(PutError::Closed)
    );
    let again = CaptureStore::open(config(tmp.path())).unwrap();
    again.close().await;
}

#[tokio::test]
async fn torn_event_line_is_terminated_and_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join(EVENTS_FILE),
        b"{\"eventid\":\"a\",\"seq\":0}\n{\"eventid\":\"torn",
    )
    .unwrap();
    let store = CaptureStore::open(config(tmp.path())).unwrap();
    store.record(event("b", "S", json!({"seq": 1})));
    store.close().await;
    let (rows, out) = export_string(tmp.path(), ExportWhat::Events, ExportFormat::Jsonl);
    assert_eq!(rows, 2, "{out}");
}

#[tokio::test]
async fn events_are_indexed_shortly_without_a_flush() {
    let tmp = tempfile::tempdir().unwrap();
    let store = CaptureStore::open(config(tmp.path())).unwrap();
    store.record(event("session.open", "S1", json!({})));
    // A durable put is acknowledged on the journal, before any row...
    store
        .put_artifact(
            origin("S1", "198.51.100.7"),
            "email",
            email_meta(&["a@victim.example"]),
            message(1),
        )
        .await
        .unwrap();
    assert_eq!(store.usage().messages, 1);
    // ...and the rows follow soon after, no flush needed.
    let mut rows = (0, 0);
    for _ in 0..500 {
        rows = (
            count(tmp.path(), "SELECT COUNT(*) FROM sessions"),
            count(tmp.path(), "SELECT COUNT(*) FROM messages"),
        );
        if rows == (1, 1) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(
        rows,
        (1, 1),
        "session.open and the message indexed without a flush"
    );
    store.close().await;
}

#[tokio::test]
async fn dropping_every_handle_flushes() {
    let tmp = tempfile::tempdir().unwrap();
    let store = CaptureStore::open(config(tmp.path())).unwrap();
    store.record(event("session.open", "S1", json!({})));
    drop(store);
    // The writer shuts down on its own and releases the lock.
    let mut reopened = None;
    for _ in 0..200 {
        match CaptureStore::open(config(tmp.path())) {
            Ok(s) => {
                reopened = Some(s);
                break;
            }
            Err(StoreError::Locked { .. }) => {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await
            }
            Err(e) => panic!("{e}"),
        }
    }
    reopened.expect("lock released").close().await;
    assert_eq!(count(tmp.path(), "SELECT COUNT(*) FROM sessions"), 1);
}

#[test]
fn email_meta_parsing() {
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    let m = indexer::EmailMeta::parse(&pairs(&[
        ("probe", "maybe"),
        ("rcpt_to", "a"),
        ("rcpt_to", "b"),
    ]));
    assert_eq!(format!("{m:?}").matches("maybe").count(), 1);
}

/// Throughput: `cargo test --release -- --ignored --nocapture throughput`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn throughput() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path());
    cfg.max_batch = StoreConfig::default().max_batch;
    let store = CaptureStore::open(cfg).unwrap();
    let writers = 20;
    let per_writer = 500;
    let start = std::time::Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                let mut body = message(w * per_writer + i);
                body.extend(std::iter::repeat_n(b'x', 3000));
                store.record(event("smtp.message", &format!("s{w}"), json!({"i": i})));
                store
                    .put_artifact(
                        origin(&format!("s{w}"), "198.51.100.1"),
                        "email",
                        email_meta(&["a@victim.example", "b@victim.example"]),
                        body,
                    )
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let elapsed = start.elapsed();
    let total = writers * per_writer;
    let batches = store
        .inner
        .stats
        .put_batches
        .load(std::sync::atomic::Ordering::Relaxed);
    println!(
        "{total} distinct emails (+{total} events) by {writers} writers in {elapsed:?}: \
         {:.0} artifacts/s, {batches} group commits ({:.1} artifacts each)",
        total as f64 / elapsed.as_secs_f64(),
        total as f64 / batches as f64
    );
    store.close().await;
}

#[tokio::test]
async fn verify_reads_every_body_back_and_names_the_damaged_and_the_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let store = CaptureStore::open(config(&data)).unwrap();
    let mut size = 0;
    for n in 0..3 {
        let body = message(n);
        size += body.len() as u64;
        store
            .put_artifact(
                origin("s1", "198.51.100.1"),
                "email",
                email_meta(&["a@victim.example"]),
                body,
            )
            .await
            .unwrap();
    }
    // A repeat is one more row of sightings, not one more body.
    store
        .put_artifact(
            origin("s2", "198.51.100.2"),
            "email",
            email_meta(&["b@victim.example"]),
            message(0),
        )
        .await
        .unwrap();
    store.close().await;

    let mut listed = Vec::new();
    let found = verify(&data, &mut listed).unwrap();
    assert_eq!(
        found,
        Verification {
            intact: 3,
            bytes: size,
            not_stored: 0,
            failed: 0
        }
    );
    assert!(listed.is_empty());

    // One flipped byte inside the second body's zstd frame.
    let damaged = sha256_hex(&message(1));
    let (Some(pack), Some(offset)) = location(&data, &damaged) else {
        panic!("the body is in a pack");
    };
    let pack_file = data.join(pack_rel_path(pack).unwrap());
    let mut bytes = std::fs::read(&pack_file).unwrap();
    let at = offset as usize + spampot_blobstore::RECORD_HEADER_LEN as usize + 6;
    bytes[at] ^= 0x40;
    std::fs::write(&pack_file, &bytes).unwrap();
    let mut listed = Vec::new();
    let found = verify(&data, &mut listed).unwrap();
    assert_eq!((found.intact, found.failed), (2, 1));
    let listed = String::from_utf8(listed).unwrap();
    assert!(listed.starts_with(&format!("{damaged}: ")), "{listed}");
    assert_eq!(listed.lines().count(), 1, "{listed}");

    // Without the pack, every body it held is missing.
    std::fs::remove_file(&pack_file).unwrap();
    let mut listed = Vec::new();
    let found = verify(&data, &mut listed).unwrap();
    assert_eq!((found.intact, found.failed), (0, 3));
    assert_eq!(String::from_utf8(listed).unwrap().lines().count(), 3);
}

/// A damaged journal (bit rot, a garbage or torn tail, a wild record
/// length) never panics the store: it opens with what is intact, or says
/// why it cannot. The journal is the store's own file, but a disk or a
/// crash can leave anything in it, and the sensor reads it at every start.
#[tokio::test]
async fn a_damaged_journal_never_panics_the_replay() {
    let tmp = tempfile::tempdir().unwrap();
    let saved = tmp.path().join("saved.db");
    let data = tmp.path().join("data");
    let first = first_message_saved(&data, &saved, email_meta(&["a@victim.example"])).await;
    let store = CaptureStore::open(config(&data)).unwrap();
    put_three(&store, &first).await;
    store.close().await;
    lose_database_tail(&data, &saved);
    let seg_rel = "journal/journal-000002.log";
    let raw = std::fs::read(data.join(seg_rel)).unwrap();
    // The records only: mutations land on them, not on the zero fill.
    let records = &raw[..journal_records_end(&raw)];
    let first_len_at = 16 + 4;

    // Wild lengths in the first record's header, then random damage.
    let mut damaged: Vec<(String, Vec<u8>)> = [
        u64::MAX,
        u64::MAX - 40,
        journal::MAX_RECORD_PAYLOAD,
        journal::MAX_RECORD_PAYLOAD + 1,
        records.len() as u64,
        0,
    ]
    .into_iter()
    .map(|n| {
        let mut bytes = records.to_vec();
        bytes[first_len_at..first_len_at + 8].copy_from_slice(&n.to_le_bytes());
        (format!("first record's length {n}"), bytes)
    })
    .collect();
    damaged.extend(
        spampot_sdk::testing::Fuzz::new(&[records])
            .cases(120)
            .inputs()
            .enumerate()
            .map(|(i, case)| (format!("fuzz case {i}"), case.input)),
    );
    for (what, bytes) in damaged {
        let dir = tempfile::tempdir().unwrap();
        let copy = dir.path().join("data");
        copy_dir(&data, &copy);
        std::fs::write(copy.join(seg_rel), &bytes).unwrap();
        let opened = std::panic::catch_unwind(|| CaptureStore::open(config(&copy)))
            .unwrap_or_else(|_| panic!("opening a journal with {what} panicked"));
        match opened {
            // The batches before the damage are replayed, never more than
            // were acknowledged.
            Ok(store) => {
                assert!(store.usage().messages <= 3, "{what}");
                store.close().await;
            }
            Err(e) => assert!(!e.to_string().is_empty(), "{what}"),
        }
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else if entry.file_name() != LOCK_FILE {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Every event once, in order, when the feed is read a few hundred bytes
/// at a time while the log rotates under it; the cursor survives the
/// rename of the file it points into.
#[tokio::test]
async fn the_feed_hands_out_every_event_once_across_rotations() {
    let tmp = tempfile::tempdir().unwrap();
    let mut cfg = config(tmp.path());
    cfg.events_rotate_bytes = 900;
    let store = CaptureStore::open(cfg).unwrap();
    let limits = FeedLimits {
        event_bytes: 500,
        rows: 2,
        ..FeedLimits::default()
    };
    let mut cursor = FeedCursor::default();
    let mut seen = Vec::new();
    let pull = |cursor: &mut FeedCursor, seen: &mut Vec<i64>| loop {
        let page = read_page(tmp.path(), cursor, limits).unwrap();
        assert_eq!(page.skipped_lines, 0);
        seen.extend(page.events.iter().map(|e| e["seq"].as_i64().unwrap()));
        *cursor = page.next;
        if !page.more {
            break;
        }
    };
    for seq in 0..60 {
        let mut ev = event("telnet.command", "S1", json!({"line": "enable"}));
        ev.insert("seq".into(), seq.into());
        store.record(ev);
        store.flush().await.unwrap();
        if seq % 7 == 0 {
            pull(&mut cursor, &mut seen);
        }
    }
    pull(&mut cursor, &mut seen);
    assert!(
        export::rotated_event_files(
            &Dir::open_ambient_dir(tmp.path(), ambient_authority()).unwrap()
        )
        .unwrap()
        .len()
            > 3,
        "the log rotated"
    );
    assert_eq!(seen, (0..60).collect::<Vec<_>>());

    // A cursor into a file that is gone is refused, not restarted.
    let gone = FeedCursor {
        events_file: u64::MAX,
        ..cursor
    };
    assert!(matches!(
        read_page(tmp.path(), &gone, limits),
        Err(FeedError::CursorGone(_))
    ));
    store.close().await;
}

/// A cursor carries the identity of the store it was made on: another
/// store (a sensor's data directory replaced) refuses it before anything is
/// read, while the store it came from, closed and opened again, keeps its
/// identity and serves the cursor on.
#[tokio::test]
async fn the_feed_refuses_a_cursor_made_on_another_store() {
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    let mut identities = Vec::new();
    for dir in [&first, &second] {
        let store = CaptureStore::open(config(dir.path())).unwrap();
        store.record(event("telnet.command", "S1", json!({"line": "enable"})));
        store.flush().await.unwrap();
        store.close().await;
        let page = read_page(dir.path(), &FeedCursor::default(), FeedLimits::default()).unwrap();
        assert_eq!(page.events.len(), 1);
        assert_ne!(page.next.store, 0);
        identities.push(page.next);
    }
    assert_ne!(identities[0].store, identities[1].store);
    match read_page(second.path(), &identities[0], FeedLimits::default()) {
        Err(e @ FeedError::StoreReplaced { .. }) => {
            assert!(e.to_string().contains("--start-over"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    // Reopened, the first store is the same store: its cursor goes on.
    let store = CaptureStore::open(config(first.path())).unwrap();
    store.record(event("telnet.command", "S2", json!({"line": "show"})));
    store.flush().await.unwrap();
    let page = read_page(first.path(), &identities[0], FeedLimits::default()).unwrap();
    assert_eq!(page.events.len(), 1);
    assert_eq!(page.next.store, identities[0].store);
    store.close().await;
}

/// A message's meta pairs, rebuilt from its row by the feed, make the same
/// row again: repeated single-valued keys, an unparsable probe, unknown
/// keys and the recipients' order included.
#[tokio::test]
async fn the_feed_rebuilds_meta_that_makes_the_same_rows() {
    let sensor = tempfile::tempdir().unwrap();
    let central = tempfile::tempdir().unwrap();
    let mut odd = vec![("probe".to_string(), "maybe".to_string())];
    odd.extend(email_meta(&["b@victim.example", "a@victim.example"]));
    odd.push(("helo".into(), "second-helo".into()));
    odd.push(("x-mailer".into(), "bulk 1.0".into()));
    odd.push(("probe".into(), "true".into()));
    let metas = [odd, email_meta(&[]), vec![]];
    let store = CaptureStore::open(config(sensor.path())).unwrap();
    for (i, meta) in metas.iter().enumerate() {
        store
            .put_artifact(
                origin(&format!("s{i}"), "192.0.2.1"),
                "email",
                meta.clone(),
                message(i),
            )
            .await
            .unwrap();
    }
    store
        .put_artifact(
            origin("u", "192.0.2.2"),
            "uploaded-file",
            vec![("path".into(), "/tmp/x".into())],
            b"MZ".to_vec(),
        )
        .await
        .unwrap();
    store.close().await;

    let page = read_page(sensor.path(), &FeedCursor::default(), FeedLimits::default()).unwrap();
    assert_eq!((page.messages.len(), page.sightings.len()), (3, 1));
    let copy = CaptureStore::open(config(central.path())).unwrap();
    for a in page.messages.iter().chain(&page.sightings) {
        let mut o = origin(&a.session, &a.src_ip);
        o.timestamp = chrono::DateTime::parse_from_rfc3339(&a.ts)
            .unwrap()
            .to_utc();
        let body = read_blob(sensor.path(), &a.sha256).unwrap();
        copy.put_artifact(o, &a.kind, a.meta.clone(), body)
            .await
            .unwrap();
    }
    copy.close().await;
    assert_eq!(message_rows(central.path()), message_rows(sensor.path()));
    let sightings = |dir: &Path| -> Vec<(String, String, String)> {
        db(dir)
            .prepare("SELECT session, kind, meta FROM artifact_sightings")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    };
    assert_eq!(sightings(central.path()), sightings(sensor.path()));
}

/// A row whose body its sensor's quota refused travels as a row: the copy
/// says `stored` 0 like the original, and a later put of the body stores it.
#[tokio::test]
async fn a_row_without_its_body_is_copied_as_such() {
    let sensor = tempfile::tempdir().unwrap();
    let central = tempfile::tempdir().unwrap();
    let mut cfg = config(sensor.path());
    cfg.quota_bytes = 1;
    let store = CaptureStore::open(cfg).unwrap();
    let outcome = store
        .put_artifact(
            origin("s1", "192.0.2.1"),
            "email",
            email_meta(&["a@x"]),
            message(1),
        )
        .await
        .unwrap();
    assert!(matches!(outcome, PutOutcome::OverQuota { .. }));
    store.close().await;

    let page = read_page(sensor.path(), &FeedCursor::default(), FeedLimits::default()).unwrap();
    let a = &page.messages[0];
    assert!(!a.stored);
    let copy = CaptureStore::open(config(central.path())).unwrap();
    let mut o = origin(&a.session, &a.src_ip);
    o.timestamp = chrono::DateTime::parse_from_rfc3339(&a.ts)
        .unwrap()
        .to_utc();
    let outcome = copy
        .put_without_body(o.clone(), &a.kind, a.meta.clone(), a.sha256.clone(), a.size)
        .await
        .unwrap();
    assert!(matches!(outcome, PutOutcome::OverQuota { .. }));
    assert!(matches!(
        copy.put_without_body(o, "email", vec![], "../x".into(), 1)
            .await,
        Err(PutError::Io(_))
    ));
    copy.close().await;
    assert_eq!(message_rows(central.path()), message_rows(sensor.path()));
    assert_eq!(
        message_rows(central.path())[0]["stored"],
        json!(false),
        "{:?}",
        message_rows(central.path())
    );
    assert_eq!(
        count(central.path(), "SELECT size FROM artifacts"),
        message(1).len() as i64
    );

    let copy = CaptureStore::open(config(central.path())).unwrap();
    copy.put_artifact(origin("s2", "192.0.2.1"), "email", vec![], message(1))
        .await
        .unwrap();
    copy.close().await;
    assert_eq!(count(central.path(), "SELECT stored FROM artifacts"), 1);
}

/// Damaged logs (garbage lines, binary, a rotated log with a torn tail, a
/// current log whose last line is still being written) are read to the end
/// at any page size: every whole JSON line once, in order, the rest
/// counted, the unfinished line left for later.
#[test]
fn the_feed_reads_damaged_logs_to_the_end_at_any_page_size() {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for case in 0..40 {
        let tmp = tempfile::tempdir().unwrap();
        let mut want = Vec::new();
        let mut garbage = 0;
        let names = [
            "events-20261127T000000.000Z.jsonl",
            "events-20261127T000000.000Z-1.jsonl",
            EVENTS_FILE,
        ];
        let mut seq = 0;
        for (i, name) in names.iter().enumerate() {
            let mut text = Vec::new();
            for _ in 0..next() % 30 {
                match next() % 4 {
                    0 => {
                        text.extend_from_slice(b"\xff\x00 not json {\n");
                        garbage += 1;
                    }
                    _ => {
                        text.extend_from_slice(format!("{{\"seq\":{seq}}}\n").as_bytes());
                        want.push(seq);
                        seq += 1;
                    }
                }
            }
            // A torn tail: garbage in a rotated log, unfinished in the current one.
            if next() % 2 == 0 {
                text.extend_from_slice(b"{\"seq\":");
                if i < 2 {
                    garbage += 1;
                }
            }
            std::fs::write(tmp.path().join(name), text).unwrap();
        }
        let limits = FeedLimits {
            event_bytes: 1 + next() % 200,
            rows: 10,
            ..FeedLimits::default()
        };
        let mut cursor = FeedCursor::default();
        let (mut seen, mut skipped) = (Vec::new(), 0);
        for _ in 0..10_000 {
            let page = read_page(tmp.path(), &cursor, limits).unwrap();
            seen.extend(page.events.iter().map(|e| e["seq"].as_i64().unwrap()));
            skipped += page.skipped_lines;
            cursor = page.next;
            if !page.more {
                break;
            }
        }
        assert_eq!(seen, want, "case {case}, {limits:?}");
        assert_eq!(skipped, garbage, "case {case}");
        // Nothing new: the next page is empty and does not move.
        let again = read_page(tmp.path(), &cursor, limits).unwrap();
        assert!(
            again.events.is_empty() && again.next == cursor,
            "case {case}"
        );
    }
}

/// A page's rows stop at its body budget (a row always goes, however
/// large), so a collector holding a page's bodies stays within it.
#[tokio::test]
async fn the_feed_pages_rows_by_the_bytes_of_their_bodies() {
    let tmp = tempfile::tempdir().unwrap();
    let store = CaptureStore::open(config(tmp.path())).unwrap();
    for i in 0..3u8 {
        store
            .put_artifact(
                origin("u", "192.0.2.2"),
                "uploaded-file",
                vec![],
                vec![i; 10_000],
            )
            .await
            .unwrap();
    }
    store.close().await;
    let limits = FeedLimits {
        body_bytes: 15_000,
        ..FeedLimits::default()
    };
    let first = read_page(tmp.path(), &FeedCursor::default(), limits).unwrap();
    assert_eq!(first.sightings.len(), 2);
    assert!(first.more);
    let second = read_page(tmp.path(), &first.next, limits).unwrap();
    assert_eq!(second.sightings.len(), 1);
    assert_eq!(second.sightings[0].id, first.sightings[1].id + 1);
    let one = FeedLimits {
        body_bytes: 1,
        ..FeedLimits::default()
    };
    assert_eq!(
        read_page(tmp.path(), &FeedCursor::default(), one)
            .unwrap()
            .sightings
            .len(),
        1
    );
}

/// Each page says how many messages are past it: what a collector that
/// stops there leaves behind (`fleet --collector` shows it).
#[tokio::test]
async fn a_feed_page_counts_the_messages_past_it() {
    let tmp = tempfile::tempdir().unwrap();
    let store = CaptureStore::open(config(tmp.path())).unwrap();
    for i in 0..3u8 {
        store
            .put_artifact(origin("m", "192.0.2.3"), "email", vec![], vec![i; 100])
            .await
            .unwrap();
    }
    store.close().await;
    let limits = FeedLimits {
        rows: 1,
        ..FeedLimits::default()
    };
    let mut cursor = FeedCursor::default();
    let mut left = Vec::new();
    loop {
        let page = read_page(tmp.path(), &cursor, limits).unwrap();
        left.push((page.messages.len(), page.messages_left.unwrap()));
        cursor = page.next;
        if !page.more {
            break;
        }
    }
    // A page full at its row limit says "more" even when it took the
    // last row: the page after it is empty.
    assert_eq!(left, [(1, 2), (1, 1), (1, 0), (0, 0)]);
}
