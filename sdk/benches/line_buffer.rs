//! `LineBuffer` splitting a pipelined SMTP batch (EHLO, MAIL, 20 × RCPT,
//! DATA), fed whole and in 1-, 7- and 1460-byte chunks. Throughput is the
//! batch's bytes.
//!
//! ```sh
//! CARGO_TARGET_DIR=/tmp/crit-target cargo bench -p spampot-sdk --bench line_buffer
//! ```

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use spampot_sdk::LineBuffer;

/// What a bulk mailer pipelines after the banner.
fn batch() -> Vec<u8> {
    let mut s =
        String::from("EHLO mx.spammer.example\r\nMAIL FROM:<bulk@spammer.example> SIZE=5120\r\n");
    for i in 0..20 {
        s.push_str(&format!("RCPT TO:<victim{i}@example.com>\r\n"));
    }
    s.push_str("DATA\r\n");
    s.into_bytes()
}

/// Feed `data` in `chunk`-byte pieces, taking every complete line after each.
fn split(data: &[u8], chunk: usize) -> usize {
    let mut buf = LineBuffer::new(514);
    let mut lines = 0;
    for piece in data.chunks(chunk) {
        buf.push(piece);
        while let Some(line) = buf.next_line() {
            black_box(line.ok());
            lines += 1;
        }
    }
    lines
}

fn line_buffer(c: &mut Criterion) {
    let data = batch();
    assert_eq!(split(&data, data.len()), 23);
    let mut group = c.benchmark_group("line_buffer/pipelined_batch");
    group.throughput(Throughput::Bytes(data.len() as u64));
    for (name, chunk) in [("whole", data.len()), ("1460", 1460), ("7", 7), ("1", 1)] {
        group.bench_with_input(BenchmarkId::from_parameter(name), &chunk, |b, &chunk| {
            b.iter(|| split(black_box(&data), chunk))
        });
    }
    group.finish();
}

criterion_group!(benches, line_buffer);
criterion_main!(benches);
