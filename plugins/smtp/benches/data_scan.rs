//! The DATA phase's terminator scan and dot-unstuffing over a 5 KB and a
//! 100 KB message, whole and in 1460-byte packets, and one whole SMTP
//! transaction (EHLO … QUIT, 9 recipients, 5 KB body) through the SDK's
//! native harness: the plugin's per-message cost without wasm.
//!
//! ```sh
//! CARGO_TARGET_DIR=/tmp/crit-target cargo bench -p spampot-plugin-smtp --bench data_scan
//! ```

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use smtp::Smtp;
use smtp::data::{DataReader, Feed};
use spampot_sdk::testing::Harness;
use spampot_sdk::{Config, ConnInfo};

/// A spam body of about `size` bytes as it travels after `354`: header,
/// 76-column text lines, one in eight starting with a (stuffed) dot, then the
/// end-of-data line.
fn wire_message(size: usize) -> Vec<u8> {
    let mut m = String::from(
        "From: \"Deals\" <bulk@spammer.example>\r\nTo: undisclosed-recipients:;\r\n\
         Subject: Cheap pills\r\nMessage-ID: <1@spammer.example>\r\n\r\n",
    );
    let mut n = 0;
    while m.len() < size {
        if n % 8 == 7 {
            m.push_str("..and a line that starts with a dot, stuffed by the client........\r\n");
        } else {
            m.push_str("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusm\r\n");
        }
        n += 1;
    }
    m.push_str(".\r\n");
    m.into_bytes()
}

/// Scan `wire` in `packet`-byte pieces; the body length after unstuffing.
fn scan(wire: &[u8], packet: usize) -> usize {
    let mut reader = DataReader::new(10 << 20, 0);
    for piece in wire.chunks(packet) {
        if let Feed::Done(_) = reader.feed(piece) {
            return reader.into_body().len();
        }
    }
    panic!("no end-of-data line");
}

fn data_scan(c: &mut Criterion) {
    let mut group = c.benchmark_group("data_scan");
    for (label, size) in [("5KB", 5 * 1024), ("100KB", 100 * 1024)] {
        let wire = wire_message(size);
        assert!(scan(&wire, wire.len()) < wire.len());
        group.throughput(Throughput::Bytes(wire.len() as u64));
        for (how, packet) in [("whole", wire.len()), ("1460", 1460)] {
            group.bench_with_input(BenchmarkId::new(label, how), &packet, |b, &packet| {
                b.iter(|| scan(black_box(&wire), packet))
            });
        }
    }
    group.finish();
}

/// One SMTP transaction as `smtp-source -r 9 -l 5120` sends it: each command
/// waits for its reply, the body arrives in 1460-byte packets.
fn transaction(c: &mut Criterion) {
    let mut commands: Vec<Vec<u8>> = vec![
        b"EHLO mx.spammer.example\r\n".to_vec(),
        b"MAIL FROM:<bulk@spammer.example>\r\n".to_vec(),
    ];
    for i in 0..9 {
        commands.push(format!("RCPT TO:<victim{i}@example.com>\r\n").into_bytes());
    }
    commands.push(b"DATA\r\n".to_vec());
    let body = wire_message(5 * 1024);
    let config = Config::default()
        .with("persona", "postfix")
        .with("hostname", "mail.example.com");
    let run = || {
        let mut h = Harness::<Smtp>::with_config(ConnInfo::test(25), config.clone());
        h.open();
        for c in &commands {
            h.feed(c);
        }
        h.feed_chunked(&body, 1460);
        h.feed(b"QUIT\r\n");
        h.close();
        h
    };
    let h = run();
    assert!(h.closed());
    assert_eq!(h.artifacts().len(), 1);
    let mut group = c.benchmark_group("smtp_transaction");
    group.throughput(Throughput::Elements(1));
    group.bench_function("ehlo_9rcpt_5KB_quit", |b| b.iter(|| black_box(run())));
    group.finish();
}

criterion_group!(benches, data_scan, transaction);
criterion_main!(benches);
