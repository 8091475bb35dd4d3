//! Counters, latency histograms and the report (table or JSON).

use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::conn::Fail;
use crate::mix::{Mix, N_SCENARIOS, Scenario};

/// Where in a session something failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    Connect,
    /// The proxy's answer to CONNECT (HTTP status, SOCKS reply).
    Proxy,
    Banner,
    Ehlo,
    Mail,
    Rcpt,
    Data,
    /// End of DATA → `250`.
    Message,
    Quit,
    Judge,
    /// A CONNECT that should have been refused.
    Refusal,
    Malformed,
    Upload,
}

pub const N_STAGES: usize = 13;
const N_FAILS: usize = Fail::ALL.len();

impl Stage {
    pub const ALL: [Stage; N_STAGES] = [
        Stage::Connect,
        Stage::Proxy,
        Stage::Banner,
        Stage::Ehlo,
        Stage::Mail,
        Stage::Rcpt,
        Stage::Data,
        Stage::Message,
        Stage::Quit,
        Stage::Judge,
        Stage::Refusal,
        Stage::Malformed,
        Stage::Upload,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Stage::Connect => "connect",
            Stage::Proxy => "proxy",
            Stage::Banner => "banner",
            Stage::Ehlo => "ehlo",
            Stage::Mail => "mail",
            Stage::Rcpt => "rcpt",
            Stage::Data => "data",
            Stage::Message => "message",
            Stage::Quit => "quit",
            Stage::Judge => "judge",
            Stage::Refusal => "refusal",
            Stage::Malformed => "malformed",
            Stage::Upload => "upload",
        }
    }
}

/// What one session produced. Reused from session to session.
#[derive(Debug)]
pub struct SessionReport {
    pub scenario: Scenario,
    pub error: Option<(Stage, Fail)>,
    /// The reply that was not expected (first line, truncated).
    pub sample: Option<String>,
    /// Connect → SMTP banner line.
    pub banner: Option<Duration>,
    /// End of DATA → `250`, one per accepted message.
    pub message_latency: Vec<Duration>,
    pub messages: u32,
    pub rcpts: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub duration: Duration,
}

impl SessionReport {
    pub fn new(scenario: Scenario) -> Self {
        SessionReport {
            scenario,
            error: None,
            sample: None,
            banner: None,
            message_latency: Vec::new(),
            messages: 0,
            rcpts: 0,
            bytes_in: 0,
            bytes_out: 0,
            duration: Duration::ZERO,
        }
    }

    pub fn reset(&mut self, scenario: Scenario) {
        self.scenario = scenario;
        self.error = None;
        self.sample = None;
        self.banner = None;
        self.message_latency.clear();
        self.messages = 0;
        self.rcpts = 0;
        self.bytes_in = 0;
        self.bytes_out = 0;
        self.duration = Duration::ZERO;
    }
}

fn histogram() -> Histogram<u64> {
    // microseconds, 1 µs .. 1 h, 2 significant digits (1 %): small enough
    // to keep one per worker.
    Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("valid histogram bounds")
}

/// Counters of one worker (or shard); merged at the end.
pub struct Stats {
    pub ok: [u64; N_SCENARIOS],
    pub failed: [u64; N_SCENARIOS],
    pub errors: [[u64; N_FAILS]; N_STAGES],
    samples: Vec<Option<String>>,
    pub banner: Histogram<u64>,
    pub message: Histogram<u64>,
    pub session: Histogram<u64>,
    pub messages: u64,
    pub rcpts: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            ok: [0; N_SCENARIOS],
            failed: [0; N_SCENARIOS],
            errors: [[0; N_FAILS]; N_STAGES],
            samples: vec![None; N_STAGES * N_FAILS],
            banner: histogram(),
            message: histogram(),
            session: histogram(),
            messages: 0,
            rcpts: 0,
            bytes_in: 0,
            bytes_out: 0,
        }
    }
}

fn us(d: Duration) -> u64 {
    (d.as_micros() as u64).max(1)
}

impl Stats {
    pub fn record(&mut self, r: &mut SessionReport) {
        let i = r.scenario.index();
        match r.error {
            None => self.ok[i] += 1,
            Some((stage, fail)) => {
                self.failed[i] += 1;
                self.errors[stage as usize][fail.index()] += 1;
                let slot = &mut self.samples[stage as usize * N_FAILS + fail.index()];
                if slot.is_none() {
                    *slot = r.sample.take();
                }
            }
        }
        if let Some(b) = r.banner {
            self.banner.saturating_record(us(b));
        }
        for &m in &r.message_latency {
            self.message.saturating_record(us(m));
        }
        self.session.saturating_record(us(r.duration));
        self.messages += r.messages as u64;
        self.rcpts += r.rcpts;
        self.bytes_in += r.bytes_in;
        self.bytes_out += r.bytes_out;
    }

    pub fn merge(&mut self, o: &Stats) {
        for i in 0..N_SCENARIOS {
            self.ok[i] += o.ok[i];
            self.failed[i] += o.failed[i];
        }
        for s in 0..N_STAGES {
            for f in 0..N_FAILS {
                self.errors[s][f] += o.errors[s][f];
                let k = s * N_FAILS + f;
                if self.samples[k].is_none() {
                    self.samples[k].clone_from(&o.samples[k]);
                }
            }
        }
        let _ = self.banner.add(&o.banner);
        let _ = self.message.add(&o.message);
        let _ = self.session.add(&o.session);
        self.messages += o.messages;
        self.rcpts += o.rcpts;
        self.bytes_in += o.bytes_in;
        self.bytes_out += o.bytes_out;
    }

    pub fn sessions(&self) -> u64 {
        self.ok.iter().sum::<u64>() + self.failed.iter().sum::<u64>()
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Serialize, Clone, PartialEq)]
pub struct Latency {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Latency {
    fn of(h: &Histogram<u64>) -> Latency {
        let ms = |v: u64| v as f64 / 1000.0;
        if h.is_empty() {
            return Latency {
                count: 0,
                p50_ms: 0.0,
                p90_ms: 0.0,
                p99_ms: 0.0,
                max_ms: 0.0,
                mean_ms: 0.0,
            };
        }
        Latency {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            max_ms: ms(h.max()),
            mean_ms: (h.mean() / 1000.0 * 1000.0).round() / 1000.0,
        }
    }
}

#[derive(Debug, Serialize, Clone)]
pub struct ErrorCount {
    pub stage: &'static str,
    pub kind: &'static str,
    pub count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample: Option<String>,
}

#[derive(Debug, Serialize, Clone)]
pub struct ScenarioCount {
    pub scenario: &'static str,
    pub weight_pct: f64,
    pub sessions: u64,
    pub ok: u64,
    pub failed: u64,
}

#[derive(Debug, Serialize, Clone)]
pub struct Report {
    pub mode: String,
    pub elapsed_s: f64,
    pub sessions: u64,
    pub sessions_ok: u64,
    pub sessions_failed: u64,
    pub sessions_per_s: f64,
    pub messages: u64,
    pub messages_per_s: f64,
    pub recipients: u64,
    pub recipients_per_message: f64,
    pub bytes_out: u64,
    pub bytes_in: u64,
    pub mbit_out_per_s: f64,
    /// Open loop: arrivals not started because `--max-inflight` was reached.
    pub arrivals_skipped: u64,
    /// Sessions still running at the hard deadline, cut off (not counted).
    pub sessions_aborted: u64,
    pub latency_banner: Latency,
    pub latency_message: Latency,
    pub latency_session: Latency,
    pub errors: Vec<ErrorCount>,
    pub scenarios: Vec<ScenarioCount>,
    pub skipped_scenarios: Vec<&'static str>,
}

impl Report {
    #[allow(clippy::too_many_arguments)]
    pub fn build(
        mode: String,
        elapsed: Duration,
        st: &Stats,
        mix: &Mix,
        arrivals_skipped: u64,
        sessions_aborted: u64,
        skipped_scenarios: Vec<&'static str>,
    ) -> Report {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let round = |x: f64| (x * 100.0).round() / 100.0;
        let sessions = st.sessions();
        let failed: u64 = st.failed.iter().sum();
        let mut errors = Vec::new();
        for s in Stage::ALL {
            for f in Fail::ALL {
                let count = st.errors[s as usize][f.index()];
                if count > 0 {
                    errors.push(ErrorCount {
                        stage: s.name(),
                        kind: f.name(),
                        count,
                        sample: st.samples[s as usize * N_FAILS + f.index()].clone(),
                    });
                }
            }
        }
        errors.sort_by_key(|e| std::cmp::Reverse(e.count));
        let scenarios = Scenario::ALL
            .iter()
            .filter(|&&s| mix.weight(s) > 0.0 || st.ok[s.index()] + st.failed[s.index()] > 0)
            .map(|&s| ScenarioCount {
                scenario: s.name(),
                weight_pct: round(mix.percent(s)),
                sessions: st.ok[s.index()] + st.failed[s.index()],
                ok: st.ok[s.index()],
                failed: st.failed[s.index()],
            })
            .collect();
        Report {
            mode,
            elapsed_s: (secs * 1000.0).round() / 1000.0,
            sessions,
            sessions_ok: sessions - failed,
            sessions_failed: failed,
            sessions_per_s: round(sessions as f64 / secs),
            messages: st.messages,
            messages_per_s: round(st.messages as f64 / secs),
            recipients: st.rcpts,
            recipients_per_message: if st.messages > 0 {
                round(st.rcpts as f64 / st.messages as f64)
            } else {
                0.0
            },
            bytes_out: st.bytes_out,
            bytes_in: st.bytes_in,
            mbit_out_per_s: round(st.bytes_out as f64 * 8.0 / secs / 1e6),
            arrivals_skipped,
            sessions_aborted,
            latency_banner: Latency::of(&st.banner),
            latency_message: Latency::of(&st.message),
            latency_session: Latency::of(&st.session),
            errors,
            scenarios,
            skipped_scenarios,
        }
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "mode            {}", self.mode);
        let _ = writeln!(o, "elapsed         {:.3} s", self.elapsed_s);
        let _ = writeln!(
            o,
            "sessions        {} ({} ok, {} failed)  {:.1}/s",
            self.sessions, self.sessions_ok, self.sessions_failed, self.sessions_per_s
        );
        let _ = writeln!(
            o,
            "messages        {}  {:.1}/s",
            self.messages, self.messages_per_s
        );
        let _ = writeln!(
            o,
            "recipients      {}  ({:.2} per message)",
            self.recipients, self.recipients_per_message
        );
        let _ = writeln!(
            o,
            "bytes           {} out, {} in  ({:.1} Mbit/s out)",
            self.bytes_out, self.bytes_in, self.mbit_out_per_s
        );
        if self.arrivals_skipped > 0 {
            let _ = writeln!(
                o,
                "arrivals skipped {} (max-inflight reached)",
                self.arrivals_skipped
            );
        }
        if self.sessions_aborted > 0 {
            let _ = writeln!(
                o,
                "aborted         {} (still running at the hard deadline)",
                self.sessions_aborted
            );
        }
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "{:<22} {:>8} {:>9} {:>9} {:>9} {:>9}",
            "latency (ms)", "count", "p50", "p90", "p99", "max"
        );
        for (name, l) in [
            ("connect -> 220", &self.latency_banner),
            ("end of DATA -> 250", &self.latency_message),
            ("session", &self.latency_session),
        ] {
            let _ = writeln!(
                o,
                "{:<22} {:>8} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                name, l.count, l.p50_ms, l.p90_ms, l.p99_ms, l.max_ms
            );
        }
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "{:<18} {:>8} {:>9} {:>8} {:>8}",
            "scenario", "weight%", "sessions", "ok", "failed"
        );
        for s in &self.scenarios {
            let _ = writeln!(
                o,
                "{:<18} {:>8.2} {:>9} {:>8} {:>8}",
                s.scenario, s.weight_pct, s.sessions, s.ok, s.failed
            );
        }
        if !self.skipped_scenarios.is_empty() {
            let _ = writeln!(
                o,
                "skipped (no target): {}",
                self.skipped_scenarios.join(", ")
            );
        }
        let _ = writeln!(o);
        if self.errors.is_empty() {
            let _ = writeln!(o, "errors          none");
        } else {
            let _ = writeln!(o, "{:<10} {:<11} {:>8}  sample", "stage", "kind", "count");
            for e in &self.errors {
                let _ = writeln!(
                    o,
                    "{:<10} {:<11} {:>8}  {}",
                    e.stage,
                    e.kind,
                    e.count,
                    e.sample.as_deref().unwrap_or("")
                );
            }
        }
        o
    }
}
