//! `CaptureStore::put_artifact` of N concurrent email artifacts (N = 1, 20),
//! with distinct bodies (each a new blob: zstd, a pack record, the batch's
//! fdatasync) and with one body shared by all (after the first, a sighting of
//! a known blob), on a temporary directory, from a 2-worker tokio runtime.
//! `sessions` is the distinct case with what an SMTP session also records:
//! `session.open`, `smtp.message` and `session.close` events per message
//! (the first and last are indexed into `sessions`). Each put returns only
//! once durable, so a batch is one group commit. Criterion's time is per
//! batch; the throughput line gives artifacts per second.
//!
//! ```sh
//! cargo bench -p spampot --bench store_batch
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Map, Value};
use spampot::store::{CaptureStore, Origin, PutOutcome, StoreConfig, format_ts};

fn origin(n: u64) -> Origin {
    Origin {
        session: format!("bench-{n}"),
        sensor: "bench".into(),
        plugin: "smtp".into(),
        src_ip: "198.51.100.7".into(),
        src_port: 40000,
        dst_port: 25,
        timestamp: chrono::Utc::now(),
    }
}

fn meta() -> Vec<(String, String)> {
    let mut m = vec![
        ("helo".to_string(), "mx.spammer.example".to_string()),
        (
            "mail_from".to_string(),
            "<bulk@spammer.example>".to_string(),
        ),
        ("probe".to_string(), "false".to_string()),
        ("queue_id".to_string(), "4F2A1B".to_string()),
        ("persona".to_string(), "postfix".to_string()),
    ];
    for i in 0..9 {
        m.push(("rcpt_to".to_string(), format!("<victim{i}@example.com>")));
    }
    m
}

/// An event as the host builds it (common fields, then the event's own).
fn event(eventid: &str, n: u64, fields: &[(&str, Value)]) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("eventid".into(), eventid.into());
    m.insert("timestamp".into(), format_ts(&chrono::Utc::now()).into());
    m.insert("sensor".into(), "bench".into());
    m.insert("session".into(), format!("bench-session-{n}").into());
    m.insert("src_ip".into(), "198.51.100.7".into());
    m.insert("src_port".into(), 40000.into());
    m.insert("dst_port".into(), 25.into());
    m.insert("plugin".into(), "smtp".into());
    for (k, v) in fields {
        m.insert((*k).into(), v.clone());
    }
    m
}

/// The events of one SMTP session carrying one message.
fn session_events(n: u64) -> Vec<Map<String, Value>> {
    vec![
        event("session.open", n, &[]),
        event(
            "smtp.message",
            n,
            &[
                ("size", 5120.into()),
                ("rcpt_count", 9.into()),
                ("queue_id", "4F2A1B".into()),
            ],
        ),
        event(
            "session.close",
            n,
            &[
                ("reason", "client closed".into()),
                ("duration_ms", 12.into()),
                ("bytes_in", 5600.into()),
                ("bytes_out", 400.into()),
            ],
        ),
    ]
}

/// A 5 KB message; `n` makes it distinct.
fn body(n: u64) -> Vec<u8> {
    let mut b = format!(
        "From: bulk@spammer.example\r\nSubject: offer {n}\r\nMessage-ID: <{n}@spammer.example>\r\n\r\n"
    );
    while b.len() < 5 * 1024 {
        b.push_str("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusm\r\n");
    }
    b.into_bytes()
}

fn store_batch(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let store = CaptureStore::open(StoreConfig {
        data_dir: tmp.path().to_path_buf(),
        quota_bytes: 0,
        ..StoreConfig::default()
    })
    .unwrap();
    let counter = AtomicU64::new(0);
    let shared = body(u64::MAX);

    let mut group = c.benchmark_group("store_batch");
    // A batch takes milliseconds (fsyncs): fewer samples keep the run short.
    group.sample_size(30);
    for n in [1u64, 20] {
        group.throughput(Throughput::Elements(n));
        for (name, distinct, events) in [
            ("distinct", true, false),
            ("identical", false, false),
            ("sessions", true, true),
        ] {
            if events && n == 1 {
                continue;
            }
            let id = BenchmarkId::new(name, n);
            group.bench_function(id, |b| {
                b.iter_custom(|iters| {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        // Bodies are built before the clock starts.
                        let keys: Vec<u64> = (0..n)
                            .map(|_| counter.fetch_add(1, Ordering::Relaxed))
                            .collect();
                        let bodies: Vec<Vec<u8>> = keys
                            .iter()
                            .map(|&k| if distinct { body(k) } else { shared.clone() })
                            .collect();
                        let evs: Vec<Map<String, Value>> = if events {
                            keys.iter().flat_map(|&k| session_events(k)).collect()
                        } else {
                            Vec::new()
                        };
                        let start = Instant::now();
                        for ev in evs {
                            store.record(ev);
                        }
                        rt.block_on(async {
                            let tasks: Vec<_> = bodies
                                .into_iter()
                                .enumerate()
                                .map(|(i, data)| {
                                    let store = store.clone();
                                    tokio::spawn(async move {
                                        store
                                            .put_artifact(origin(i as u64), "email", meta(), data)
                                            .await
                                    })
                                })
                                .collect();
                            for t in tasks {
                                let r = t.await.unwrap();
                                assert!(matches!(r, Ok(PutOutcome::Stored { .. })), "{r:?}");
                            }
                        });
                        total += start.elapsed();
                    }
                    total
                })
            });
        }
    }
    group.finish();
    rt.block_on(store.close());
}

criterion_group!(benches, store_batch);
criterion_main!(benches);
