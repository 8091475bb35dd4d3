//! Test helpers: a data directory from a small spec, and a MaxMind DB writer.
#![allow(dead_code)]

pub mod mix;
pub mod mmdb;

use std::path::Path;

use spampot_report::fixture::{FixtureWriter, MessageRow, RequestRow, SessionRow};

/// `n` messages from one source; message `k` at `at` + k seconds.
pub struct MsgGroup {
    pub n: usize,
    pub ip: &'static str,
    pub sensor: &'static str,
    /// `YYYY-MM-DDTHH:MM:SS` (UTC) of the first message.
    pub at: &'static str,
    pub port: u16,
    pub via: &'static str,
    pub from: &'static str,
    pub rcpts: &'static [&'static str],
    pub body: &'static str,
    pub probe: bool,
}

/// `n` sessions on `port`, session `k` at `day`T12:00:00 + k seconds.
pub struct SessGroup {
    pub n: usize,
    pub port: u16,
    pub plugin: &'static str,
    pub sensor: &'static str,
    pub day: &'static str,
}

/// `n` proxy requests, request `k` at `day`T12:00:00 + k seconds.
pub struct ReqGroup {
    pub n: usize,
    pub module: &'static str,
    pub kind: &'static str,
    pub sensor: &'static str,
    pub day: &'static str,
}

pub struct Spec {
    pub ip2asn_v4: &'static str,
    pub ip2asn_v6: &'static str,
    pub messages: Vec<MsgGroup>,
    pub sessions: Vec<SessGroup>,
    pub requests: Vec<ReqGroup>,
}

fn at_plus(at: &str, secs: usize) -> String {
    let t = chrono::NaiveDateTime::parse_from_str(at, "%Y-%m-%dT%H:%M:%S")
        .expect("spec time")
        .and_utc()
        + chrono::Duration::seconds(secs as i64);
    spampot_report::fixture::ts(t)
}

/// Write the spec's rows, bodies and TSV files into `dir`.
pub fn build(dir: &Path, spec: &Spec) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("ip2asn-v4.tsv"), spec.ip2asn_v4).unwrap();
    std::fs::write(dir.join("ip2asn-v6.tsv"), spec.ip2asn_v6).unwrap();
    let mut w = FixtureWriter::open(dir).unwrap();
    for (g, s) in spec.sessions.iter().enumerate() {
        for k in 0..s.n {
            let at = at_plus(&format!("{}T12:00:00", s.day), k);
            w.session(&SessionRow {
                session: format!("s{g}-{k}"),
                sensor: s.sensor.into(),
                src_ip: "192.0.2.1".into(),
                src_port: 40000,
                dst_port: s.port,
                plugin: s.plugin.into(),
                started_at: at.clone(),
                ended_at: at,
                duration_ms: 10,
                bytes_in: 1,
                bytes_out: 1,
                reason: "client closed".into(),
            })
            .unwrap();
        }
    }
    for (g, r) in spec.requests.iter().enumerate() {
        for k in 0..r.n {
            w.request(&RequestRow {
                session: format!("r{g}-{k}"),
                ts: at_plus(&format!("{}T12:00:00", r.day), k),
                sensor: r.sensor.into(),
                src_ip: "192.0.2.1".into(),
                dst_port: 1080,
                plugin: "socks".into(),
                module: r.module.into(),
                kind: r.kind.into(),
                target_host: Some("mx.example.com".into()),
                target_port: Some(25),
            })
            .unwrap();
        }
    }
    for (g, m) in spec.messages.iter().enumerate() {
        for k in 0..m.n {
            let row = MessageRow {
                session: format!("m{g}-{k}"),
                ts: at_plus(m.at, k),
                sensor: m.sensor.into(),
                src_ip: m.ip.into(),
                src_port: 40000,
                dst_port: m.port,
                plugin: "smtp".into(),
                helo: "helo.example".into(),
                mail_from: m.from.into(),
                recipients: m.rcpts.iter().map(|s| s.to_string()).collect(),
                via: m.via.into(),
                target_host: None,
                probe: Some(m.probe),
                queue_id: "Q1".into(),
                persona: "postfix".into(),
            };
            w.message(&row, m.body.as_bytes()).unwrap();
        }
    }
    w.finish().unwrap();
}
