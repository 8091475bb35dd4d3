//! The health of several sensors, from their admin APIs: what SpamPots'
//! central server checked of its ten sensors before it pulled their data.
//! `spampot fleet --sensors FILE` asks each sensor for `/status` at once and
//! says which are down, which have a port that should listen and does not,
//! whose clock drifted (timestamps from several sensors are compared in
//! reports), and whose disk or quota is nearly full.
//!
//! Like `spampot status`, these are operator requests to addresses the
//! operator lists (`ctl.rs`); no client session reaches this code.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A sensor that does not answer in this long is reported unreachable; the
/// other sensors' answers are not held up by it (all are asked at once).
const TIMEOUT: Duration = Duration::from_secs(10);

/// Why the fleet file was refused.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("cannot read the fleet file {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid fleet file {path}: {message}")]
    Invalid { path: PathBuf, message: String },
}

/// The sensors to check and what counts as a problem.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fleet {
    #[serde(rename = "sensor")]
    pub sensors: Vec<SensorEntry>,
    /// A sensor clock further than this from this host's is a problem:
    /// reports put several sensors' timestamps side by side.
    #[serde(default = "default_max_clock_skew_secs")]
    pub max_clock_skew_secs: f64,
    /// Less free disk than this under a sensor's data directory is a
    /// problem: the journal, the packs and SQLite all grow there.
    #[serde(default = "default_min_free_disk_bytes")]
    pub min_free_disk_bytes: u64,
    /// A store filled past this share of its quota is a problem: new bodies
    /// are then recorded without their bytes.
    #[serde(default = "default_max_quota_used")]
    pub max_quota_used: f64,
    /// With `--collector`: a sensor the collector has not pulled whole for
    /// longer than this is a problem (its captures are not in the reports).
    #[serde(default = "default_max_pull_age_secs")]
    pub max_pull_age_secs: f64,
}

fn default_max_clock_skew_secs() -> f64 {
    // NTP keeps a sensor within milliseconds; seconds mean it is not running.
    5.0
}

fn default_min_free_disk_bytes() -> u64 {
    // A day of a busy SpamPots sensor (~100,000 messages of ~5 KB,
    // compressed and deduplicated to far less) fits many times over.
    1 << 30
}

fn default_max_quota_used() -> f64 {
    0.9
}

fn default_max_pull_age_secs() -> f64 {
    // A collector run from cron every few minutes, or with --every 300:
    // an hour without a good pass means it stopped or keeps failing.
    3600.0
}

/// One sensor of the fleet file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorEntry {
    /// The name the sensor is expected to report (its config's `sensor`).
    pub name: String,
    /// Its admin API (`[admin] bind`).
    pub admin: SocketAddr,
    /// Its `[admin] token`, if it has one.
    pub token: Option<String>,
    /// The fingerprint of its certificate when it serves `[admin] tls`
    /// (the sensor logs it at start); the API is then reached over HTTPS.
    pub tls_fingerprint: Option<crate::tls::Fingerprint>,
}

impl SensorEntry {
    pub fn endpoint(&self) -> crate::ctl::Endpoint {
        crate::ctl::Endpoint {
            addr: self.admin,
            tls: self.tls_fingerprint,
        }
    }
}

impl Fleet {
    pub fn load(path: &Path) -> Result<Fleet, FleetError> {
        let text = std::fs::read_to_string(path).map_err(|source| FleetError::Read {
            path: path.to_owned(),
            source,
        })?;
        Fleet::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Fleet, FleetError> {
        let invalid = |message: String| FleetError::Invalid {
            path: path.to_owned(),
            message,
        };
        let fleet: Fleet = toml::from_str(text).map_err(|e| invalid(e.to_string()))?;
        if fleet.sensors.is_empty() {
            return Err(invalid("no [[sensor]] to check".into()));
        }
        let mut names: Vec<&str> = fleet.sensors.iter().map(|s| s.name.as_str()).collect();
        names.sort_unstable();
        if let Some(w) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(invalid(format!("sensor {:?} is listed twice", w[0])));
        }
        if !(fleet.max_clock_skew_secs.is_finite() && fleet.max_clock_skew_secs >= 0.0) {
            return Err(invalid("max_clock_skew_secs must be a number ≥ 0".into()));
        }
        if !(0.0..=1.0).contains(&fleet.max_quota_used) {
            return Err(invalid("max_quota_used must be between 0 and 1".into()));
        }
        if !(fleet.max_pull_age_secs.is_finite() && fleet.max_pull_age_secs > 0.0) {
            return Err(invalid("max_pull_age_secs must be a number > 0".into()));
        }
        Ok(fleet)
    }
}

/// What one sensor answered, and what is wrong with it.
#[derive(Debug, Clone, Serialize)]
pub struct SensorHealth {
    pub name: String,
    pub admin: SocketAddr,
    /// `/status` as the sensor sent it; `None` when it did not answer.
    pub status: Option<Value>,
    /// The sensor's clock minus this host's, in seconds (the request's
    /// round trip halved is the error bar).
    pub clock_skew_secs: Option<f64>,
    /// Seconds since the collector last pulled this sensor whole
    /// (`--collector`); `None` when not asked or never.
    pub pulled_secs_ago: Option<f64>,
    /// Empty when the sensor is healthy.
    pub problems: Vec<String>,
}

impl SensorHealth {
    /// Nothing known yet of `entry`'s sensor.
    pub fn new(entry: &SensorEntry) -> SensorHealth {
        SensorHealth {
            name: entry.name.clone(),
            admin: entry.admin,
            status: None,
            clock_skew_secs: None,
            pulled_secs_ago: None,
            problems: Vec::new(),
        }
    }

    pub fn healthy(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Ask every sensor at once; answers come back in the file's order.
pub async fn check(fleet: &Fleet) -> Vec<SensorHealth> {
    let shared = std::sync::Arc::new(fleet.clone());
    let asks: Vec<_> = (0..fleet.sensors.len())
        .map(|i| {
            let fleet = shared.clone();
            tokio::spawn(async move { check_one(&fleet, &fleet.sensors[i]).await })
        })
        .collect();
    let mut out = Vec::with_capacity(fleet.sensors.len());
    for (ask, entry) in asks.into_iter().zip(&fleet.sensors) {
        out.push(ask.await.unwrap_or_else(|e| {
            let mut health = SensorHealth::new(entry);
            health
                .problems
                .push(format!("the check itself failed: {e}"));
            health
        }));
    }
    out
}

async fn check_one(fleet: &Fleet, entry: &SensorEntry) -> SensorHealth {
    let before = now_ms();
    let answer = tokio::time::timeout(
        TIMEOUT,
        crate::ctl::request(entry.endpoint(), "GET", "/status", entry.token.as_deref()),
    )
    .await;
    let after = now_ms();
    let mut health = SensorHealth::new(entry);
    match answer {
        Err(_) => health
            .problems
            .push(format!("unreachable: no answer in {} s", TIMEOUT.as_secs())),
        Ok(Err(e)) => health.problems.push(format!("unreachable: {e}")),
        Ok(Ok(status)) => {
            let (skew, problems) = assess(fleet, entry, &status, (before + after) / 2.0);
            health.clock_skew_secs = skew;
            health.problems = problems;
            health.status = Some(status);
        }
    }
    health
}

fn now_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
        * 1000.0
}

/// Add what the collector's pass records say of each sensor (SpamPots'
/// "rsync status"): never pulled, the last pass failed, or no good pass
/// for longer than `max_pull_age_secs`. `now` is this host's clock.
pub fn assess_pulls(
    fleet: &Fleet,
    health: &mut [SensorHealth],
    passes: &std::collections::BTreeMap<String, crate::collector::PassRecord>,
    now: chrono::DateTime<chrono::Utc>,
) {
    for h in health {
        let Some(pass) = passes.get(&h.name) else {
            h.problems
                .push("the collector has not pulled it yet".into());
            continue;
        };
        if let Some(error) = &pass.error {
            h.problems.push(format!(
                "the collector's last pull ({}) failed: {error}",
                pass.at
            ));
        }
        let age = pass
            .last_ok
            .as_deref()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| (now - t.to_utc()).num_milliseconds() as f64 / 1000.0);
        h.pulled_secs_ago = age;
        // A pass that stopped at its page limit did not pull it whole: a
        // collector that cannot keep up shows here once it is too far behind.
        let behind = if pass.behind {
            let left = crate::collector::left_to_pull(pass.messages_left);
            format!("; its last pass stopped with {left}")
        } else {
            String::new()
        };
        match age {
            Some(a) if a > fleet.max_pull_age_secs => h.problems.push(format!(
                "last pulled whole {} ago (more than {} s): its captures are not in the reports{behind}",
                human_age(a),
                fleet.max_pull_age_secs
            )),
            Some(_) => {}
            None => h
                .problems
                .push(format!("the collector has never pulled it whole{behind}")),
        }
    }
}

/// `42s`, `17m`, `5h03m`, `3d04h`.
pub fn human_age(secs: f64) -> String {
    let s = secs.max(0.0) as u64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86400, s % 86400 / 3600),
    }
}

/// What is wrong with a sensor that answered `status` when this host's
/// clock read `local_ms`: the skew, and the problems, worst first.
pub fn assess(
    fleet: &Fleet,
    entry: &SensorEntry,
    status: &Value,
    local_ms: f64,
) -> (Option<f64>, Vec<String>) {
    let mut problems = Vec::new();
    match status["sensor"].as_str() {
        Some(name) if name == entry.name => {}
        Some(name) => problems.push(format!(
            "reports itself as {name:?}, not {:?}: its events carry that name",
            entry.name
        )),
        None => problems.push("its status has no sensor name".into()),
    }
    for l in status["listeners"].as_array().into_iter().flatten() {
        if l["enabled"] == true && l["bound"].is_null() {
            let why = l["error"].as_str().unwrap_or("no error given");
            problems.push(format!(
                "port {} is enabled but not listening: {why}",
                l["port"]
            ));
        }
    }
    let skew = status["clock"]["unix_ms"]
        .as_f64()
        .map(|ms| (ms - local_ms) / 1000.0);
    match skew {
        Some(s) if s.abs() > fleet.max_clock_skew_secs => problems.push(format!(
            "clock is {s:+.1} s off this host's (more than {} s)",
            fleet.max_clock_skew_secs
        )),
        Some(_) => {}
        None => problems.push("its status has no clock".into()),
    }
    let store = &status["store"];
    if let Some(free) = store["free_disk_bytes"].as_u64()
        && free < fleet.min_free_disk_bytes
    {
        problems.push(format!(
            "{} MiB free on the store's disk (less than {} MiB)",
            free >> 20,
            fleet.min_free_disk_bytes >> 20
        ));
    }
    if let (Some(size), Some(quota)) = (store["size_bytes"].as_u64(), store["quota_bytes"].as_u64())
        && quota > 0
        && size as f64 > quota as f64 * fleet.max_quota_used
    {
        problems.push(format!(
            "store at {:.0}% of its quota: bodies past it are recorded without their bytes",
            size as f64 * 100.0 / quota as f64
        ));
    }
    (skew, problems)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fleet() -> Fleet {
        Fleet::parse(
            "[[sensor]]\nname = \"s1\"\nadmin = \"127.0.0.1:8025\"\n",
            Path::new("fleet.toml"),
        )
        .unwrap()
    }

    fn healthy_status() -> Value {
        json!({
            "sensor": "s1",
            "clock": {"unix_ms": 1_795_000_000_000u64},
            "listeners": [{"port": 25, "enabled": true, "bound": "0.0.0.0:25", "error": null}],
            "store": {"free_disk_bytes": 50u64 << 30, "size_bytes": 10, "quota_bytes": 100},
        })
    }

    #[test]
    fn a_healthy_sensor_has_no_problem_and_its_skew_is_measured() {
        let f = fleet();
        let (skew, problems) = assess(&f, &f.sensors[0], &healthy_status(), 1_795_000_001_500.0);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(skew, Some(-1.5));
    }

    #[test]
    fn each_problem_is_named() {
        let f = fleet();
        let mut status = healthy_status();
        status["sensor"] = json!("other");
        status["listeners"][0]["bound"] = Value::Null;
        status["listeners"][0]["error"] = json!("cannot bind 0.0.0.0:25: Address in use");
        status["store"]["free_disk_bytes"] = json!(1u64 << 20);
        status["store"]["size_bytes"] = json!(95);
        let (_, problems) = assess(&f, &f.sensors[0], &status, 1_795_000_060_000.0);
        let text = problems.join("\n");
        for expected in [
            "reports itself as \"other\"",
            "port 25 is enabled but not listening: cannot bind 0.0.0.0:25: Address in use",
            "clock is -60.0 s off",
            "1 MiB free",
            "store at 95% of its quota",
        ] {
            assert!(
                text.contains(expected),
                "{expected:?} missing from:\n{text}"
            );
        }
    }

    #[test]
    fn a_disabled_port_that_does_not_listen_is_fine() {
        let f = fleet();
        let mut status = healthy_status();
        status["listeners"][0]["enabled"] = json!(false);
        status["listeners"][0]["bound"] = Value::Null;
        let (_, problems) = assess(&f, &f.sensors[0], &status, 1_795_000_000_000.0);
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn bad_fleet_files_are_refused_with_the_reason() {
        let refused = |text: &str| {
            Fleet::parse(text, Path::new("fleet.toml"))
                .unwrap_err()
                .to_string()
        };
        assert!(refused("").contains("sensor"), "{}", refused(""));
        let twice = "[[sensor]]\nname = \"a\"\nadmin = \"127.0.0.1:1\"\n\
                     [[sensor]]\nname = \"a\"\nadmin = \"127.0.0.1:2\"\n";
        assert!(refused(twice).contains("listed twice"));
        assert!(
            refused("[[sensor]]\nname = \"a\"\nadmin = \"localhost\"\n").contains("fleet.toml")
        );
        assert!(
            refused("max_quota_used = 2.0\n[[sensor]]\nname = \"a\"\nadmin = \"127.0.0.1:1\"\n")
                .contains("max_quota_used")
        );
        assert!(
            refused("[[sensor]]\nname = \"a\"\nadmin = \"127.0.0.1:1\"\nport = 3\n")
                .contains("port")
        );
        assert!(
            refused("max_pull_age_secs = 0\n[[sensor]]\nname = \"a\"\nadmin = \"127.0.0.1:1\"\n")
                .contains("max_pull_age_secs")
        );
    }

    /// The collector's side of each sensor: pulled recently (no problem,
    /// its age measured), never, a failed last pass, or too long ago.
    #[test]
    fn the_collectors_passes_are_checked() {
        use crate::collector::PassRecord;
        let text = [
            "fresh",
            "never",
            "failing",
            "stale",
            "lagging",
            "catching-up",
        ]
        .iter()
        .map(|n| format!("[[sensor]]\nname = \"{n}\"\nadmin = \"127.0.0.1:1\"\n"))
        .collect::<String>();
        let f = Fleet::parse(&text, Path::new("fleet.toml")).unwrap();
        let now = chrono::DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z")
            .unwrap()
            .to_utc();
        let pass = |at: &str, last_ok: Option<&str>, error: Option<&str>| PassRecord {
            at: at.into(),
            last_ok: last_ok.map(Into::into),
            error: error.map(Into::into),
            behind: false,
            messages_left: None,
        };
        let behind = |at: &str, last_ok: Option<&str>| PassRecord {
            behind: true,
            ..pass(at, last_ok, None)
        };
        let passes = [
            (
                "fresh",
                pass(
                    "2026-11-28T11:55:00.000Z",
                    Some("2026-11-28T11:55:00.000Z"),
                    None,
                ),
            ),
            (
                "failing",
                pass(
                    "2026-11-28T11:55:00.000Z",
                    Some("2026-11-28T11:50:00.000Z"),
                    Some("403: set a token"),
                ),
            ),
            (
                "stale",
                pass(
                    "2026-11-28T09:00:00.000Z",
                    Some("2026-11-28T09:00:00.000Z"),
                    None,
                ),
            ),
            // Its passes keep stopping at the page limit: pulled often,
            // never whole since 08:00.
            (
                "lagging",
                behind("2026-11-28T11:59:00.000Z", Some("2026-11-28T08:00:00.000Z")),
            ),
            (
                "catching-up",
                PassRecord {
                    messages_left: Some(51_200),
                    ..behind("2026-11-28T11:59:00.000Z", None)
                },
            ),
        ]
        .into_iter()
        .map(|(n, p)| (n.to_string(), p))
        .collect();
        let mut health: Vec<SensorHealth> = f.sensors.iter().map(SensorHealth::new).collect();
        assess_pulls(&f, &mut health, &passes, now);
        assert!(health[0].problems.is_empty(), "{:?}", health[0].problems);
        assert_eq!(health[0].pulled_secs_ago, Some(300.0));
        assert!(health[1].problems[0].contains("not pulled it yet"));
        assert!(health[2].problems[0].contains("failed: 403: set a token"));
        assert_eq!(health[2].problems.len(), 1, "{:?}", health[2].problems);
        assert!(
            health[3].problems[0].contains("3h00m ago"),
            "{:?}",
            health[3].problems
        );
        assert_eq!(
            health[4].problems,
            [
                "last pulled whole 4h00m ago (more than 3600 s): its captures are not in the reports; its last pass stopped with more to pull"
            ]
        );
        assert_eq!(
            health[5].problems,
            [
                "the collector has never pulled it whole; its last pass stopped with ~51200 messages more to pull"
            ]
        );
    }
}
