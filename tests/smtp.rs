//! The SMTP relay emulator behind a real sensor, driven by real clients:
//! every message acknowledged is in the store, none is delivered, bodies
//! are kept once however often they arrive, and a SIGKILL loses nothing
//! that got a 250.

use std::collections::HashSet;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use spampot_blackbox::{Client, TestSensor, WAIT, require, spampot_bin};

const SMTP: u16 = 25;

async fn smtp_sensor() -> TestSensor {
    TestSensor::start(&["smtp"], &[(SMTP, "smtp")], "").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swaks_message_is_stored_with_its_envelope() {
    require("swaks");
    let sensor = smtp_sensor().await;
    let addr = sensor.addr(SMTP);
    let out = tokio::task::spawn_blocking(move || {
        Command::new("swaks")
            .args(["--server", &addr.to_string(), "--helo", "spammer.example"])
            .args([
                "--from",
                "spam@example.net",
                "--to",
                "a@example.com,b@example.org",
            ])
            .args(["--body", "Buy now: http://pills.example/"])
            .output()
            .expect("run swaks")
    })
    .await
    .unwrap();
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "swaks failed:\n{transcript}");
    assert!(
        transcript.contains("<-  250 2.0.0 Ok: queued as")
            || transcript.contains("Message accepted"),
        "{transcript}"
    );

    let rows = sensor.messages().await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let m = &rows[0];
    assert_eq!(m["helo"], "spammer.example");
    assert_eq!(m["mail_from"], "spam@example.net");
    assert_eq!(m["rcpt_count"], 2);
    assert_eq!(m["src_ip"], "127.0.0.1");
    assert_eq!(m["dst_port"], 25);
    let sha = m["sha256"].as_str().unwrap().to_owned();
    let mut shown = Vec::new();
    spampot::store::show_message(sensor.data.path(), &sha, &mut shown).expect("show message");
    let shown = String::from_utf8_lossy(&shown);
    assert!(shown.contains("Buy now: http://pills.example/"), "{shown}");
    assert!(shown.contains("b@example.org"), "{shown}");
    sensor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_source_thousand_messages_nine_recipients_all_stored_bodies_deduplicated() {
    require("smtp-source");
    let sensor = smtp_sensor().await;
    let addr = sensor.addr(SMTP);
    let out = tokio::task::spawn_blocking(move || {
        Command::new("smtp-source")
            .args(["-s", "20", "-m", "1000", "-r", "9", "-l", "5120"])
            .args(["-f", "sender@example.net", "-t", "rcpt@example.com"])
            .arg(addr.to_string())
            .output()
            .expect("run smtp-source")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "smtp-source failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows = sensor.messages().await;
    assert_eq!(rows.len(), 1000);
    let recipients: u64 = rows.iter().map(|m| m["rcpt_count"].as_u64().unwrap()).sum();
    assert_eq!(recipients, 9000);
    // smtp-source sends one body, headers and all, for every message.
    let bodies: HashSet<&str> = rows.iter().map(|m| m["sha256"].as_str().unwrap()).collect();
    eprintln!(
        "{} distinct bodies among {} messages",
        bodies.len(),
        rows.len()
    );
    let blob_files = stored_body_count(&sensor.data.path().join("blobs"));
    assert_eq!(blob_files, bodies.len(), "one blob per distinct body");
    sensor.stop().await;
}

/// Bodies stored under `blobs/`: the records of every pack (each checked:
/// complete and decompressing to its digest) plus legacy `.zst` files.
fn stored_body_count(dir: &std::path::Path) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            n += stored_body_count(&path);
        } else if path.extension().is_some_and(|e| e == "zst") {
            n += 1;
        } else if path.extension().is_some_and(|e| e == "pack") {
            let mut f = std::fs::File::open(&path).unwrap();
            let scan = spampot_blobstore::scan_pack(&mut f, true).unwrap();
            assert_eq!(
                scan.valid_len,
                scan.file_len,
                "{}: torn tail",
                path.display()
            );
            assert!(scan.records.iter().all(|r| r.intact), "{}", path.display());
            n += scan.records.len();
        }
    }
    n
}

/// One client that sends messages with unique bodies until the sensor
/// dies, and returns the SHA-256 of every body that got a 250.
async fn send_until_killed(
    addr: std::net::SocketAddr,
    client: usize,
    acked_total: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> Vec<String> {
    let mut acked = Vec::new();
    let Ok(Ok(stream)) = tokio::time::timeout(WAIT, tokio::net::TcpStream::connect(addr)).await
    else {
        return acked;
    };
    let mut c = Client::new(stream);
    if c.try_read_until("\r\n").await.is_none() {
        return acked;
    }
    c.send("EHLO load.example\r\n").await;
    if c.try_read_until("250 ").await.is_none() || c.try_read_until("\r\n").await.is_none() {
        return acked;
    }
    for n in 0.. {
        let body = format!("Subject: load {client}-{n}\r\n\r\nunique body {client}-{n}\r\n");
        let batch = format!(
            "MAIL FROM:<s@example.net>\r\nRCPT TO:<r{n}@example.com>\r\nDATA\r\n{body}.\r\n"
        );
        if !c.try_send(batch.as_bytes()).await {
            return acked;
        }
        // 250 (MAIL), 250 (RCPT), 354, then the answer to the message.
        for _ in 0..3 {
            if c.try_read_until("\r\n").await.is_none() {
                return acked;
            }
        }
        match c.try_read_until("\r\n").await {
            Some(line) if line.starts_with("250") => {
                acked.push(hex(&Sha256::digest(body.as_bytes())));
                acked_total.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            _ => return acked,
        }
    }
    acked
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_load_loses_no_acknowledged_message() {
    let bin = spampot_bin();
    let dir = tempfile::tempdir().unwrap();
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    std::fs::copy(spampot_blackbox::wasm("smtp"), plugins.join("smtp.wasm")).unwrap();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let config = dir.path().join("sensor.toml");
    std::fs::write(
        &config,
        format!(
            "plugin_dir = \"plugins\"\ndata_dir = \"data\"\n[admin]\nenabled = false\n[[listener]]\nport = {port}\nplugin = \"smtp\"\nbind = \"127.0.0.1\"\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(&bin)
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("start sensor");
    let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + WAIT;
    while tokio::net::TcpStream::connect(addr).await.is_err() {
        assert!(Instant::now() < deadline, "sensor did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let acked_total = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let clients: Vec<_> = (0..8)
        .map(|i| tokio::spawn(send_until_killed(addr, i, acked_total.clone())))
        .collect();
    // Kill in the middle of the load, however fast this machine is.
    let deadline = Instant::now() + Duration::from_secs(30);
    while acked_total.load(std::sync::atomic::Ordering::Relaxed) < 200 {
        assert!(
            Instant::now() < deadline,
            "too few messages acknowledged to test"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().expect("SIGKILL the sensor");
    child.wait().unwrap();
    let mut acked = Vec::new();
    for c in clients {
        acked.extend(c.await.unwrap());
    }
    assert!(acked.len() >= 200, "{} acknowledged", acked.len());

    // What an analyst runs after the crash: `spampot export` first replays
    // the rows the database had not taken yet from the journal.
    let export = Command::new(&bin)
        .args(["export", "--what", "messages", "--data"])
        .arg(dir.path().join("data"))
        .env("RUST_LOG", "warn")
        .output()
        .expect("run spampot export");
    assert!(
        export.status.success(),
        "{}",
        String::from_utf8_lossy(&export.stderr)
    );
    let stored: HashSet<String> = String::from_utf8(export.stdout)
        .expect("utf-8 export")
        .lines()
        .map(|l| {
            let m: serde_json::Value = serde_json::from_str(l).expect("export line is JSON");
            m["sha256"].as_str().unwrap().to_owned()
        })
        .collect();
    eprintln!(
        "{} messages acknowledged before SIGKILL, {} in the store",
        acked.len(),
        stored.len()
    );
    let lost: Vec<_> = acked.iter().filter(|sha| !stored.contains(*sha)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged messages lost",
        lost.len(),
        acked.len()
    );

    // And every body the database points at reads back whole.
    let verify = Command::new(&bin)
        .args(["verify", "--data"])
        .arg(dir.path().join("data"))
        .env("RUST_LOG", "warn")
        .output()
        .expect("run spampot verify");
    let report = String::from_utf8_lossy(&verify.stdout);
    assert!(
        verify.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&verify.stderr)
    );
    assert!(
        report.contains(&format!("{} intact", stored.len())),
        "{report}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_bodies_are_stored_once_and_counted_every_time() {
    let sensor = smtp_sensor().await;
    let mut c = Client::connect(sensor.addr(SMTP)).await;
    c.read_until("\r\n").await;
    c.send("HELO campaign.example\r\n").await;
    c.read_until("\r\n").await;
    let body = "Subject: same campaign\r\n\r\nThe same spam, again.\r\n";
    for n in 0..5 {
        c.send(format!(
            "MAIL FROM:<s@example.net>\r\nRCPT TO:<v{n}@example.com>\r\nDATA\r\n{body}.\r\n"
        ))
        .await;
        c.read_until("354").await;
        c.read_until("\r\n").await; // the rest of the 354 line
        let answer = c.read_until("\r\n").await;
        assert!(answer.starts_with("250 "), "{answer}");
    }
    c.send("QUIT\r\n").await;
    c.read_to_close().await;

    let rows = sensor.messages().await;
    assert_eq!(rows.len(), 5);
    let sha = hex(&Sha256::digest(body.as_bytes()));
    assert!(rows.iter().all(|m| m["sha256"] == sha.as_str()), "{rows:?}");
    assert_eq!(stored_body_count(&sensor.data.path().join("blobs")), 1);
    sensor.stop().await;
}
