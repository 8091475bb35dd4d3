//! Building a [`Report`] from a data directory.
//!
//! Every number comes from SQL aggregation or one streaming pass; nothing
//! holds the data set in memory. What grows with the data is bounded by
//! distinct values: distinct source IPs (each enriched once), distinct days,
//! ports, request kinds, and the bodies analyzed (`max_bodies`). Sender and
//! recipient domains are grouped by SQLite (which spills to temp files).
//! docs/report.md names the table and column behind each field.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::time::Duration;

use chrono::NaiveDate;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rusqlite::{Connection, params_from_iter};
use serde::Serialize;

use crate::body;
use crate::db::{self, BlobError};
use crate::enrich::{Enricher, EnrichmentPaths, UNKNOWN_CC};
use crate::time::{TimeBound, parse_since, parse_until};
use crate::{ReportError, Result};

/// Default number of rows in the top-N tables.
pub const DEFAULT_TOP: usize = 10;
/// Default cap on the distinct bodies decompressed and analyzed.
pub const DEFAULT_MAX_BODIES: usize = 200_000;
/// A body joins a campaign when the estimated Jaccard similarity of its word
/// 3-shingles with the campaign's first (most frequent) body is at least this.
pub const CAMPAIGN_MIN_SIMILARITY: f64 = 0.5;
/// LSH banding of the 64 MinHash values: 16 bands of 4. Two bodies are
/// compared when one band matches exactly: probability 1-(1-J^4)^16, i.e.
/// 0.9998 at J = 0.8, 0.64 at J = 0.5, 0.12 at J = 0.3.
const BANDS: usize = 16;
const ROWS: usize = body::MINHASH_K / BANDS;
/// Name of the AS 0 row of `top_asns` (not routed, or no source knows the address).
pub const UNKNOWN_AS_NAME: &str = "(not routed / unknown)";

/// What to report on.
#[derive(Debug, Clone)]
pub struct ReportOptions {
    /// The data directory (`spampot.db`, `blobs/`).
    pub data_dir: PathBuf,
    /// Inclusive lower bound: RFC 3339, or YYYY-MM-DD (00:00 UTC).
    pub since: Option<String>,
    /// Upper bound: RFC 3339 (exclusive), or YYYY-MM-DD (that whole day included).
    pub until: Option<String>,
    /// Only this sensor's rows.
    pub sensor: Option<String>,
    /// Rows of the top-N tables.
    pub top: usize,
    /// Enrichment files; unset ones are looked for in the data directory.
    pub enrichment: EnrichmentPaths,
    /// Analyze at most this many distinct bodies (the most frequent ones).
    pub max_bodies: usize,
    /// Progress bars on stderr (only drawn when stderr is a terminal).
    pub progress: bool,
}

impl ReportOptions {
    /// Defaults: everything, top 10, 200 000 bodies, no progress bar.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        ReportOptions {
            data_dir: data_dir.into(),
            since: None,
            until: None,
            sensor: None,
            top: DEFAULT_TOP,
            enrichment: EnrichmentPaths::default(),
            max_bodies: DEFAULT_MAX_BODIES,
            progress: false,
        }
    }
}

/// The report. Field order and names are the stable JSON shape (docs/report.md).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Report {
    pub filters: Filters,
    pub summary: Summary,
    pub sensors: Vec<SensorRow>,
    pub probes: Probes,
    pub top_asns: Vec<AsnRow>,
    pub top_ccs: Vec<CcRow>,
    pub ports: Vec<PortRow>,
    pub request_types: Vec<RequestTypeRow>,
    pub monthly: Vec<MonthRow>,
    pub daily: Vec<DayRow>,
    pub sender_domains: Vec<SenderDomainRow>,
    pub recipient_domains: Vec<RecipientDomainRow>,
    pub body_domains: Vec<BodyDomainRow>,
    pub campaigns: Vec<Campaign>,
    pub languages: Vec<LanguageRow>,
    pub body_analysis: BodyAnalysis,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Filters {
    /// `--since` as given, or null.
    pub since: Option<String>,
    /// `--until` as given, or null.
    pub until: Option<String>,
    pub sensor: Option<String>,
    pub top: usize,
    pub max_bodies: usize,
    /// Enrichment files used.
    pub enrichment: Vec<String>,
}

/// One sensor's share: what a collector's store, holding several, is
/// asked first (which sensor catches what, and whether one went quiet).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SensorRow {
    pub sensor: String,
    pub emails: u64,
    pub recipients: u64,
    /// Distinct source addresses of its emails.
    pub unique_ips: u64,
    /// Connections of any kind.
    pub sessions: u64,
    /// Timestamps of its first and last email; null without emails.
    pub first_email: Option<String>,
    pub last_email: Option<String>,
    /// Share of all emails.
    pub percent: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    pub period_start: Option<String>,
    pub period_end: Option<String>,
    pub days: u64,
    pub emails: u64,
    pub emails_per_day: f64,
    pub recipients: u64,
    pub recipients_per_email: f64,
    pub unique_ips: u64,
    pub unique_asns: u64,
    pub unique_ccs: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Probes {
    pub messages: u64,
    pub percent: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AsnRow {
    pub asn: u32,
    pub name: String,
    pub cc: String,
    pub emails: u64,
    pub percent: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct CcRow {
    pub cc: String,
    pub emails: u64,
    pub percent: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct PortRow {
    pub port: i64,
    pub protocol: String,
    pub plugin: String,
    pub used_by: String,
    pub sessions: u64,
    pub percent: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RequestTypeRow {
    pub module: String,
    pub kind: String,
    pub count: u64,
    pub percent: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MonthRow {
    pub month: String,
    pub emails: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct DayRow {
    pub day: String,
    pub emails: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SenderDomainRow {
    pub domain: String,
    pub emails: u64,
    pub percent: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RecipientDomainRow {
    pub domain: String,
    pub recipients: u64,
    pub percent: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BodyDomainRow {
    pub domain: String,
    pub emails: u64,
    pub percent: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Campaign {
    /// Hex digest of the MinHash signature of the campaign's most frequent body.
    pub id: String,
    pub messages: u64,
    pub percent: f64,
    /// Distinct bodies grouped in it.
    pub bodies: u64,
    pub first_seen: String,
    pub last_seen: String,
    /// Distinct `messages.src_ip` of its messages.
    pub sources: u64,
    /// Subject of its most frequent body.
    pub subject: String,
    /// Language of its most frequent body.
    pub language: String,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LanguageRow {
    pub language: String,
    pub emails: u64,
    pub percent: f64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BodyAnalysis {
    /// Distinct bodies (`messages.sha256`) of the selected messages.
    pub bodies_total: u64,
    /// Bodies decompressed and analyzed.
    pub bodies_analyzed: u64,
    /// Bodies not on disk (`artifacts.stored = 0`: over quota).
    pub bodies_not_stored: u64,
    /// Bodies listed as stored whose blob is missing, unreadable or fails its SHA-256.
    pub bodies_unreadable: u64,
    /// Selected messages whose body was analyzed (the base of the body tables).
    pub emails_covered: u64,
    /// True if `max_bodies` stopped the analysis (less frequent bodies skipped).
    pub capped: bool,
}

/// `part` of `total` in percent, rounded to 2 decimals (0 if total is 0).
pub fn percent(part: u64, total: u64) -> f64 {
    if total == 0 {
        0.0
    } else {
        round2(part as f64 * 100.0 / total as f64)
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// The WHERE clause of one table's rows under the filters.
struct Filter {
    since: Option<TimeBound>,
    until: Option<TimeBound>,
    sensor: Option<String>,
}

impl Filter {
    fn clause(&self, ts: &str, sensor: &str) -> (String, Vec<String>) {
        let mut conds = Vec::new();
        let mut params = Vec::new();
        if let Some(s) = &self.since {
            params.push(s.ts.clone());
            conds.push(format!("{ts} >= ?{}", params.len()));
        }
        if let Some(u) = &self.until {
            params.push(u.ts.clone());
            conds.push(format!("{ts} < ?{}", params.len()));
        }
        if let Some(s) = &self.sensor {
            params.push(s.clone());
            conds.push(format!("{sensor} = ?{}", params.len()));
        }
        if conds.is_empty() {
            (String::new(), params)
        } else {
            (format!("WHERE {}", conds.join(" AND ")), params)
        }
    }

    fn is_empty(&self) -> bool {
        self.since.is_none() && self.until.is_none() && self.sensor.is_none()
    }
}

struct Progress {
    enabled: bool,
}

impl Progress {
    fn spinner(&self, msg: &'static str) -> ProgressBar {
        if !self.enabled {
            return ProgressBar::hidden();
        }
        let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        pb.set_style(
            ProgressStyle::with_template("{spinner} {msg}: {human_pos} rows ({elapsed})")
                .expect("template"),
        );
        pb.set_message(msg);
        pb.enable_steady_tick(Duration::from_millis(120));
        pb
    }

    fn bar(&self, len: u64, msg: &'static str) -> ProgressBar {
        if !self.enabled {
            return ProgressBar::hidden();
        }
        let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
        pb.set_style(
            ProgressStyle::with_template(
                "{msg} [{bar:30}] {human_pos}/{human_len} ({elapsed}, eta {eta})",
            )
            .expect("template")
            .progress_chars("=> "),
        );
        pb.set_message(msg);
        pb.enable_steady_tick(Duration::from_millis(250));
        pb
    }
}

/// Rows between progress updates in streaming loops.
const TICK: u64 = 1 << 14;

/// Build the report. See docs/report.md for what each number is.
pub fn build_report(opts: &ReportOptions) -> Result<Report> {
    let filter = Filter {
        since: opts.since.as_deref().map(parse_since).transpose()?,
        until: opts.until.as_deref().map(parse_until).transpose()?,
        sensor: opts.sensor.clone(),
    };
    let paths = opts.enrichment.clone().discover(&opts.data_dir);
    let enricher = Enricher::open(&paths)?;
    let conn = db::open_ro(&opts.data_dir)?;
    let progress = Progress {
        enabled: opts.progress && std::io::stderr().is_terminal(),
    };
    let dbp = db::db_path(&opts.data_dir);
    let err = ReportError::db(&dbp);

    // One pass over the selected messages: totals, per day, per source IP.
    let (w, params) = filter.clause("ts", "sensor");
    let mut emails = 0u64;
    let mut recipients = 0u64;
    let mut probes = 0u64;
    let mut per_day: BTreeMap<String, u64> = BTreeMap::new();
    let mut per_ip: HashMap<String, u64> = HashMap::new();
    let mut no_ip = 0u64;
    {
        let pb = progress.spinner("messages");
        let mut stmt = conn
            .prepare(&format!(
                "SELECT ts, src_ip, rcpt_count, probe FROM messages {w}"
            ))
            .map_err(&err)?;
        let mut rows = stmt.query(params_from_iter(&params)).map_err(&err)?;
        while let Some(row) = rows.next().map_err(&err)? {
            emails += 1;
            let ts = row.get_ref(0).map_err(&err)?.as_str().unwrap_or("");
            let day = ts.get(..10).unwrap_or("");
            match per_day.get_mut(day) {
                Some(n) => *n += 1,
                None => {
                    per_day.insert(day.to_string(), 1);
                }
            }
            match row
                .get_ref(1)
                .map_err(&err)?
                .as_str_or_null()
                .ok()
                .flatten()
            {
                Some(ip) => match per_ip.get_mut(ip) {
                    Some(n) => *n += 1,
                    None => {
                        per_ip.insert(ip.to_string(), 1);
                    }
                },
                None => no_ip += 1,
            }
            recipients += row
                .get::<_, Option<i64>>(2)
                .map_err(&err)?
                .unwrap_or(0)
                .max(0) as u64;
            if row.get::<_, Option<i64>>(3).map_err(&err)? == Some(1) {
                probes += 1;
            }
            if emails.is_multiple_of(TICK) {
                pb.set_position(emails);
            }
        }
        pb.finish_and_clear();
    }

    // Enrich each distinct source IP once.
    struct AsAgg {
        emails: u64,
        labels: HashMap<(String, String), u64>,
    }
    let mut per_as: HashMap<u32, AsAgg> = HashMap::new();
    let mut per_cc: HashMap<String, u64> = HashMap::new();
    let mut asns: HashSet<u32> = HashSet::new();
    let mut ccs: HashSet<String> = HashSet::new();
    {
        let pb = progress.bar(per_ip.len() as u64, "enriching source IPs");
        let mut add = |info: crate::AsInfo, n: u64| {
            let agg = per_as.entry(info.asn).or_insert_with(|| AsAgg {
                emails: 0,
                labels: HashMap::new(),
            });
            agg.emails += n;
            if info.asn != 0 {
                asns.insert(info.asn);
                *agg.labels.entry((info.name, info.cc.clone())).or_default() += n;
            }
            if info.cc != UNKNOWN_CC {
                ccs.insert(info.cc.clone());
            }
            *per_cc.entry(info.cc).or_default() += n;
        };
        for (i, (ip, &n)) in per_ip.iter().enumerate() {
            add(enricher.lookup_str(ip), n);
            if (i as u64).is_multiple_of(TICK) {
                pb.set_position(i as u64);
            }
        }
        if no_ip > 0 {
            add(crate::AsInfo::unknown(), no_ip);
        }
        pb.finish_and_clear();
    }

    let mut top_asns: Vec<AsnRow> = per_as
        .into_iter()
        .map(|(asn, agg)| {
            let (name, cc) = if asn == 0 {
                (UNKNOWN_AS_NAME.to_string(), UNKNOWN_CC.to_string())
            } else {
                // The (name, country) behind most of the AS's emails.
                let mut labels: Vec<_> = agg.labels.into_iter().collect();
                labels.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
                labels.into_iter().next().map(|l| l.0).unwrap_or_default()
            };
            AsnRow {
                asn,
                name,
                cc,
                emails: agg.emails,
                percent: percent(agg.emails, emails),
            }
        })
        .collect();
    top_asns.sort_by(|a, b| b.emails.cmp(&a.emails).then(a.asn.cmp(&b.asn)));
    top_asns.truncate(opts.top);
    let mut top_ccs: Vec<CcRow> = per_cc
        .into_iter()
        .map(|(cc, n)| CcRow {
            cc,
            emails: n,
            percent: percent(n, emails),
        })
        .collect();
    top_ccs.sort_by(|a, b| b.emails.cmp(&a.emails).then_with(|| a.cc.cmp(&b.cc)));
    top_ccs.truncate(opts.top);

    // Period, days, per day and per month (gaps filled with zeros).
    let first_day = per_day.keys().next().and_then(|d| parse_day(d));
    let last_day = per_day.keys().next_back().and_then(|d| parse_day(d));
    let mut daily = Vec::new();
    let mut monthly: Vec<MonthRow> = Vec::new();
    let mut days = 0u64;
    if let (Some(first), Some(last)) = (first_day, last_day) {
        let mut d = first;
        while d <= last {
            let key = d.format("%Y-%m-%d").to_string();
            let n = per_day.get(&key).copied().unwrap_or(0);
            let month = key[..7].to_string();
            match monthly.last_mut() {
                Some(m) if m.month == month => m.emails += n,
                _ => monthly.push(MonthRow { month, emails: n }),
            }
            daily.push(DayRow {
                day: key,
                emails: n,
            });
            days += 1;
            d = d.succ_opt().expect("date in range");
        }
    }
    let summary = Summary {
        period_start: first_day.map(|d| d.format("%Y-%m-%d").to_string()),
        period_end: last_day.map(|d| d.format("%Y-%m-%d").to_string()),
        days,
        emails,
        emails_per_day: if days == 0 {
            0.0
        } else {
            round2(emails as f64 / days as f64)
        },
        recipients,
        recipients_per_email: if emails == 0 {
            0.0
        } else {
            round2(recipients as f64 / emails as f64)
        },
        unique_ips: per_ip.len() as u64,
        unique_asns: asns.len() as u64,
        unique_ccs: ccs.len() as u64,
    };
    drop(per_ip);

    let sensors = sensors(&conn, &filter, emails, &err)?;
    let ports = ports(&conn, &filter, &err)?;
    let request_types = request_types(&conn, &filter, &err)?;
    let sender_domains = sender_domains(&conn, &filter, opts.top, emails, &err)?;
    let recipient_domains = recipient_domains(&conn, &filter, opts.top, recipients, &err)?;
    let bodies = analyze_bodies(&conn, &filter, opts, emails, &progress, &err)?;

    Ok(Report {
        filters: Filters {
            since: filter.since.as_ref().map(|b| b.given.clone()),
            until: filter.until.as_ref().map(|b| b.given.clone()),
            sensor: filter.sensor.clone(),
            top: opts.top,
            max_bodies: opts.max_bodies,
            enrichment: paths.describe(),
        },
        summary,
        sensors,
        probes: Probes {
            messages: probes,
            percent: percent(probes, emails),
        },
        top_asns,
        top_ccs,
        ports,
        request_types,
        monthly,
        daily,
        sender_domains,
        recipient_domains,
        body_domains: bodies.domains,
        campaigns: bodies.campaigns,
        languages: bodies.languages,
        body_analysis: bodies.analysis,
    })
}

fn parse_day(s: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

/// Protocol of a plugin, as in the slides' port table.
pub fn protocol_of(plugin: &str) -> String {
    match plugin {
        "socks" | "mydoom" => "SOCKS".to_string(),
        "http-proxy" | "sobig" => "HTTP".to_string(),
        "smtp" => "SMTP".to_string(),
        "" => "?".to_string(),
        other => other.to_ascii_uppercase(),
    }
}

/// The slides' "used by" name of a port, else the plugin's name.
pub fn used_by(port: i64, plugin: &str) -> String {
    match port {
        1080 => "socks",
        8080 | 8000 | 81 => "alt http",
        80 => "http",
        3128 => "Squid",
        6588 => "AnalogX",
        4480 => "Proxy+",
        3127 => "MyDoom",
        3382 => "Sobig.f",
        25 => "smtp",
        587 => "submission",
        _ => plugin,
    }
    .to_string()
}

fn sensors(
    conn: &Connection,
    filter: &Filter,
    total_emails: u64,
    err: &impl Fn(rusqlite::Error) -> ReportError,
) -> Result<Vec<SensorRow>> {
    let mut rows: BTreeMap<String, SensorRow> = BTreeMap::new();
    fn row(rows: &mut BTreeMap<String, SensorRow>, sensor: String) -> &mut SensorRow {
        rows.entry(sensor.clone()).or_insert_with(|| SensorRow {
            sensor,
            emails: 0,
            recipients: 0,
            unique_ips: 0,
            sessions: 0,
            first_email: None,
            last_email: None,
            percent: 0.0,
        })
    }
    let (w, params) = filter.clause("ts", "sensor");
    let mut stmt = conn
        .prepare(&format!(
            "SELECT coalesce(sensor, ''), count(*), sum(max(coalesce(rcpt_count, 0), 0)),
                    count(DISTINCT src_ip), min(ts), max(ts)
             FROM messages {w} GROUP BY 1"
        ))
        .map_err(err)?;
    let mut it = stmt.query(params_from_iter(&params)).map_err(err)?;
    while let Some(r) = it.next().map_err(err)? {
        let entry = row(&mut rows, r.get(0).map_err(err)?);
        entry.emails = r.get::<_, i64>(1).map_err(err)? as u64;
        entry.recipients = r.get::<_, Option<i64>>(2).map_err(err)?.unwrap_or(0) as u64;
        entry.unique_ips = r.get::<_, i64>(3).map_err(err)? as u64;
        entry.first_email = r.get(4).map_err(err)?;
        entry.last_email = r.get(5).map_err(err)?;
        entry.percent = percent(entry.emails, total_emails);
    }
    drop(it);
    let (w, params) = filter.clause("started_at", "sensor");
    let mut stmt = conn
        .prepare(&format!(
            "SELECT coalesce(sensor, ''), count(*) FROM sessions {w} GROUP BY 1"
        ))
        .map_err(err)?;
    let mut it = stmt.query(params_from_iter(&params)).map_err(err)?;
    while let Some(r) = it.next().map_err(err)? {
        row(&mut rows, r.get(0).map_err(err)?).sessions = r.get::<_, i64>(1).map_err(err)? as u64;
    }
    let mut out: Vec<SensorRow> = rows.into_values().collect();
    out.sort_by(|a, b| {
        b.emails
            .cmp(&a.emails)
            .then_with(|| a.sensor.cmp(&b.sensor))
    });
    Ok(out)
}

fn ports(
    conn: &Connection,
    filter: &Filter,
    err: &impl Fn(rusqlite::Error) -> ReportError,
) -> Result<Vec<PortRow>> {
    let (w, params) = filter.clause("started_at", "sensor");
    let mut stmt = conn
        .prepare(&format!(
            "SELECT dst_port, coalesce(plugin, ''), count(*) FROM sessions {w} GROUP BY dst_port, plugin"
        ))
        .map_err(err)?;
    let rows: Vec<(Option<i64>, String, i64)> = stmt
        .query_map(params_from_iter(&params), |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .map_err(err)?
        .collect::<rusqlite::Result<_>>()
        .map_err(err)?;
    let total: u64 = rows.iter().map(|r| r.2 as u64).sum();
    let mut out: Vec<PortRow> = rows
        .into_iter()
        .map(|(port, plugin, n)| {
            let port = port.unwrap_or(0);
            PortRow {
                port,
                protocol: protocol_of(&plugin),
                used_by: used_by(port, &plugin),
                plugin,
                sessions: n as u64,
                percent: percent(n as u64, total),
            }
        })
        .collect();
    out.sort_by(|a, b| {
        b.sessions
            .cmp(&a.sessions)
            .then(a.port.cmp(&b.port))
            .then_with(|| a.plugin.cmp(&b.plugin))
    });
    Ok(out)
}

/// Display order of modules and kinds (the slide's order); others follow, sorted.
const MODULE_ORDER: &[&str] = &["http", "socks4", "socks5", "mydoom", "sobig"];
const KIND_ORDER: &[&str] = &["connect-smtp", "connect-other", "get", "error"];

fn rank(order: &[&str], s: &str) -> usize {
    order.iter().position(|o| *o == s).unwrap_or(order.len())
}

fn request_types(
    conn: &Connection,
    filter: &Filter,
    err: &impl Fn(rusqlite::Error) -> ReportError,
) -> Result<Vec<RequestTypeRow>> {
    let (w, params) = filter.clause("ts", "sensor");
    let mut stmt = conn
        .prepare(&format!(
            "SELECT coalesce(module, ''), coalesce(kind, ''), count(*) FROM requests {w} GROUP BY module, kind"
        ))
        .map_err(err)?;
    let mut by_module: BTreeMap<(usize, String), Vec<(String, u64)>> = BTreeMap::new();
    let mut rows = stmt.query(params_from_iter(&params)).map_err(err)?;
    while let Some(r) = rows.next().map_err(err)? {
        let module: String = r.get(0).map_err(err)?;
        let kind: String = r.get(1).map_err(err)?;
        let n: i64 = r.get(2).map_err(err)?;
        by_module
            .entry((rank(MODULE_ORDER, &module), module))
            .or_default()
            .push((kind, n as u64));
    }
    let mut out = Vec::new();
    for ((_, module), mut kinds) in by_module {
        kinds.sort_by(|a, b| {
            rank(KIND_ORDER, &a.0)
                .cmp(&rank(KIND_ORDER, &b.0))
                .then_with(|| a.0.cmp(&b.0))
        });
        let total: u64 = kinds.iter().map(|k| k.1).sum();
        for (kind, n) in kinds {
            out.push(RequestTypeRow {
                module: module.clone(),
                kind,
                count: n,
                percent: percent(n, total),
            });
        }
        out.push(RequestTypeRow {
            module,
            kind: "total".to_string(),
            count: total,
            percent: if total == 0 { 0.0 } else { 100.0 },
        });
    }
    Ok(out)
}

/// SQL for the domain of an address column: after the first `@`, without
/// angle brackets and spaces, lower case; `(empty)` for the null sender or
/// NULL, `(no domain)` without `@`.
fn domain_sql(col: &str) -> String {
    format!(
        "CASE WHEN {col} IS NULL OR trim({col}, '<> ') = '' THEN '(empty)' \
         WHEN instr({col}, '@') = 0 THEN '(no domain)' \
         ELSE lower(trim(substr({col}, instr({col}, '@') + 1), '<> ')) END"
    )
}

fn top_domains(
    conn: &Connection,
    sql: &str,
    params: &[String],
    err: &impl Fn(rusqlite::Error) -> ReportError,
) -> Result<Vec<(String, u64)>> {
    let mut stmt = conn.prepare(sql).map_err(err)?;
    stmt.query_map(params_from_iter(params), |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
    })
    .map_err(err)?
    .collect::<rusqlite::Result<_>>()
    .map_err(err)
}

fn sender_domains(
    conn: &Connection,
    filter: &Filter,
    top: usize,
    emails: u64,
    err: &impl Fn(rusqlite::Error) -> ReportError,
) -> Result<Vec<SenderDomainRow>> {
    let (w, params) = filter.clause("ts", "sensor");
    let sql = format!(
        "SELECT {d} AS d, count(*) AS n FROM messages {w} GROUP BY d ORDER BY n DESC, d LIMIT {top}",
        d = domain_sql("mail_from")
    );
    Ok(top_domains(conn, &sql, &params, err)?
        .into_iter()
        .map(|(domain, n)| SenderDomainRow {
            domain,
            emails: n,
            percent: percent(n, emails),
        })
        .collect())
}

fn recipient_domains(
    conn: &Connection,
    filter: &Filter,
    top: usize,
    recipients: u64,
    err: &impl Fn(rusqlite::Error) -> ReportError,
) -> Result<Vec<RecipientDomainRow>> {
    let (w, params) = filter.clause("m.ts", "m.sensor");
    let from = if filter.is_empty() {
        "recipients r".to_string()
    } else {
        format!("recipients r JOIN messages m ON m.id = r.message_id {w}")
    };
    let sql = format!(
        "SELECT {d} AS d, count(*) AS n FROM {from} GROUP BY d ORDER BY n DESC, d LIMIT {top}",
        d = domain_sql("r.address")
    );
    Ok(top_domains(conn, &sql, &params, err)?
        .into_iter()
        .map(|(domain, n)| RecipientDomainRow {
            domain,
            recipients: n,
            percent: percent(n, recipients),
        })
        .collect())
}

struct BodyTables {
    domains: Vec<BodyDomainRow>,
    campaigns: Vec<Campaign>,
    languages: Vec<LanguageRow>,
    analysis: BodyAnalysis,
}

struct Cluster {
    leader: body::Signature,
    id: u64,
    messages: u64,
    bodies: u64,
    first_seen: String,
    last_seen: String,
    subject: String,
    language: &'static str,
}

/// Leader clustering with MinHash LSH: a body joins the first (oldest,
/// hence most frequent) campaign whose leader shares an LSH band with it and
/// has similarity >= [`CAMPAIGN_MIN_SIMILARITY`]; else it leads a new one.
struct Clusterer {
    index: HashMap<u64, Vec<u32>>,
    clusters: Vec<Cluster>,
}

impl Clusterer {
    fn new() -> Self {
        Clusterer {
            index: HashMap::new(),
            clusters: Vec::new(),
        }
    }

    fn band_keys(sig: &body::Signature) -> [u64; BANDS] {
        let mut keys = [0u64; BANDS];
        for (b, key) in keys.iter_mut().enumerate() {
            let mut h: u64 = (b as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            for &v in &sig[b * ROWS..(b + 1) * ROWS] {
                h = (h ^ u64::from(v))
                    .wrapping_mul(0x0100_0000_01b3)
                    .rotate_left(17);
            }
            *key = h;
        }
        keys
    }

    /// The cluster of `sig`, and whether it is new (the caller pushes it).
    fn assign(&mut self, sig: &body::Signature) -> (u32, bool) {
        let keys = Self::band_keys(sig);
        let mut best: Option<u32> = None;
        for key in &keys {
            if let Some(list) = self.index.get(key) {
                for &c in list {
                    if best.is_none_or(|b| c < b)
                        && body::similarity(&self.clusters[c as usize].leader, sig)
                            >= CAMPAIGN_MIN_SIMILARITY
                    {
                        best = Some(c);
                    }
                }
            }
        }
        if let Some(c) = best {
            return (c, false);
        }
        let id = self.clusters.len() as u32;
        for key in keys {
            self.index.entry(key).or_default().push(id);
        }
        (id, true)
    }
}

fn analyze_bodies(
    conn: &Connection,
    filter: &Filter,
    opts: &ReportOptions,
    emails: u64,
    progress: &Progress,
    err: &impl Fn(rusqlite::Error) -> ReportError,
) -> Result<BodyTables> {
    let (w, params) = filter.clause("ts", "sensor");
    // Distinct bodies, most frequent first (the cap keeps the most frequent).
    let sql = format!(
        "SELECT g.sha256, g.n, g.first, g.last, coalesce(a.stored, 0) FROM \
         (SELECT sha256, count(*) AS n, min(ts) AS first, max(ts) AS last FROM messages {w} GROUP BY sha256) g \
         LEFT JOIN artifacts a ON a.sha256 = g.sha256 ORDER BY g.n DESC, g.sha256"
    );
    let mut stmt = conn.prepare(&sql).map_err(err)?;
    let mut rows = stmt.query(params_from_iter(&params)).map_err(err)?;
    let dir = db::open_data_dir(&opts.data_dir)?;
    let mut analysis = BodyAnalysis {
        bodies_total: 0,
        bodies_analyzed: 0,
        bodies_not_stored: 0,
        bodies_unreadable: 0,
        emails_covered: 0,
        capped: false,
    };
    let mut domains: HashMap<String, u64> = HashMap::new();
    let mut languages: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut clusterer = Clusterer::new();
    let mut body_cluster: HashMap<String, u32> = HashMap::new();
    let pb = progress.bar(emails, "analyzing bodies (emails covered)");
    while let Some(r) = rows.next().map_err(err)? {
        analysis.bodies_total += 1;
        let sha: String = r.get(0).map_err(err)?;
        let n = r.get::<_, i64>(1).map_err(err)? as u64;
        let stored: i64 = r.get(4).map_err(err)?;
        if analysis.bodies_analyzed as usize >= opts.max_bodies {
            analysis.capped = true;
            continue;
        }
        if stored != 1 {
            analysis.bodies_not_stored += 1;
            continue;
        }
        let raw = match db::read_blob(conn, &dir, &sha) {
            Ok(raw) => raw,
            Err(BlobError::BadName | BlobError::Missing | BlobError::Corrupt) => {
                analysis.bodies_unreadable += 1;
                continue;
            }
        };
        let first: String = r.get(2).map_err(err)?;
        let last: String = r.get(3).map_err(err)?;
        let info = body::analyze(&raw);
        analysis.bodies_analyzed += 1;
        analysis.emails_covered += n;
        for d in info.domains {
            *domains.entry(d).or_default() += n;
        }
        *languages.entry(info.language).or_default() += n;
        let (c, new) = clusterer.assign(&info.signature);
        if new {
            clusterer.clusters.push(Cluster {
                leader: info.signature,
                id: info.fingerprint,
                messages: 0,
                bodies: 0,
                first_seen: first.clone(),
                last_seen: last.clone(),
                subject: info.subject,
                language: info.language,
            });
        }
        let cl = &mut clusterer.clusters[c as usize];
        cl.messages += n;
        cl.bodies += 1;
        if first < cl.first_seen {
            cl.first_seen = first;
        }
        if last > cl.last_seen {
            cl.last_seen = last;
        }
        body_cluster.insert(sha, c);
        pb.set_position(analysis.emails_covered);
    }
    pb.finish_and_clear();
    drop(rows);

    let mut body_domains: Vec<BodyDomainRow> = domains
        .into_iter()
        .map(|(domain, n)| BodyDomainRow {
            domain,
            emails: n,
            percent: percent(n, emails),
        })
        .collect();
    body_domains.sort_by(|a, b| {
        b.emails
            .cmp(&a.emails)
            .then_with(|| a.domain.cmp(&b.domain))
    });
    body_domains.truncate(opts.top);

    let mut languages: Vec<LanguageRow> = languages
        .into_iter()
        .map(|(l, n)| LanguageRow {
            language: l.to_string(),
            emails: n,
            percent: percent(n, emails),
        })
        .collect();
    languages.sort_by(|a, b| {
        b.emails
            .cmp(&a.emails)
            .then_with(|| a.language.cmp(&b.language))
    });

    // Top campaigns, then their distinct sources in one pass over the messages.
    let mut order: Vec<u32> = (0..clusterer.clusters.len() as u32).collect();
    order.sort_by(|&a, &b| {
        let (ca, cb) = (
            &clusterer.clusters[a as usize],
            &clusterer.clusters[b as usize],
        );
        cb.messages
            .cmp(&ca.messages)
            .then_with(|| ca.first_seen.cmp(&cb.first_seen))
            .then(ca.id.cmp(&cb.id))
    });
    order.truncate(opts.top);
    let slot: HashMap<u32, usize> = order.iter().enumerate().map(|(i, &c)| (c, i)).collect();
    let mut sources: Vec<HashSet<String>> = vec![HashSet::new(); order.len()];
    if !order.is_empty() {
        let pb = progress.spinner("campaign sources");
        let mut stmt = conn
            .prepare(&format!("SELECT sha256, src_ip FROM messages {w}"))
            .map_err(err)?;
        let mut rows = stmt.query(params_from_iter(&params)).map_err(err)?;
        let mut i = 0u64;
        while let Some(r) = rows.next().map_err(err)? {
            i += 1;
            if i.is_multiple_of(TICK) {
                pb.set_position(i);
            }
            let Some(sha) = r.get_ref(0).map_err(err)?.as_str_or_null().ok().flatten() else {
                continue;
            };
            let Some(s) = body_cluster.get(sha).and_then(|c| slot.get(c)) else {
                continue;
            };
            if let Some(ip) = r.get_ref(1).map_err(err)?.as_str_or_null().ok().flatten()
                && !sources[*s].contains(ip)
            {
                sources[*s].insert(ip.to_string());
            }
        }
        pb.finish_and_clear();
    }
    let campaigns = order
        .iter()
        .zip(sources)
        .map(|(&c, src)| {
            let cl = &clusterer.clusters[c as usize];
            Campaign {
                id: format!("{:016x}", cl.id),
                messages: cl.messages,
                percent: percent(cl.messages, emails),
                bodies: cl.bodies,
                first_seen: cl.first_seen.clone(),
                last_seen: cl.last_seen.clone(),
                sources: src.len() as u64,
                subject: cl.subject.clone(),
                language: cl.language.to_string(),
            }
        })
        .collect();
    Ok(BodyTables {
        domains: body_domains,
        campaigns,
        languages,
        analysis,
    })
}
