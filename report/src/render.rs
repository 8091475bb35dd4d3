//! Output formats: `table` (aligned text like the SpamPots slides), `json`,
//! `csv`, and `html` (one self-contained page with inline SVG charts).

use std::fmt::Write as _;
use std::io::Write;

use crate::report::{Report, percent};
use crate::{ReportError, Result};

mod charts;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Csv,
    Html,
}

impl std::str::FromStr for Format {
    type Err = ReportError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "table" => Ok(Format::Table),
            "json" => Ok(Format::Json),
            "csv" => Ok(Format::Csv),
            "html" => Ok(Format::Html),
            _ => Err(ReportError::Invalid(format!(
                "unknown format {s:?}; one of: table, json, csv, html"
            ))),
        }
    }
}

/// The sections of a report, in output order; the JSON keys, and the names
/// `--table` accepts.
pub const TABLE_NAMES: &[&str] = &[
    "summary",
    "sensors",
    "probes",
    "top_asns",
    "top_ccs",
    "ports",
    "request_types",
    "monthly",
    "daily",
    "sender_domains",
    "recipient_domains",
    "body_domains",
    "campaigns",
    "languages",
    "body_analysis",
];

enum Cell {
    Text(String),
    Int(i64),
    /// A number that is a name (ASN, port): no thousands separators.
    Id(i64),
    /// A float shown with 2 decimals.
    Num(f64),
}

struct Column {
    key: &'static str,
    label: &'static str,
}

const fn col(key: &'static str, label: &'static str) -> Column {
    Column { key, label }
}

/// A section as rows: `record` sections (summary, probes, body_analysis)
/// are one row shown as label/value pairs in text.
struct Table {
    name: &'static str,
    title: String,
    columns: Vec<Column>,
    rows: Vec<Vec<Cell>>,
    record: bool,
    numbered: bool,
}

fn text(s: impl Into<String>) -> Cell {
    Cell::Text(s.into())
}

fn int(n: impl TryInto<i64>) -> Cell {
    Cell::Int(n.try_into().unwrap_or(i64::MAX))
}

fn opt_text(s: &Option<String>) -> Cell {
    text(s.clone().unwrap_or_default())
}

fn period(r: &Report) -> String {
    let mut p = String::new();
    if let Some(s) = &r.filters.since {
        let _ = write!(p, " since {s}");
    }
    if let Some(u) = &r.filters.until {
        let _ = write!(p, " until {u}");
    }
    if let Some(s) = &r.filters.sensor {
        let _ = write!(p, " sensor {s}");
    }
    p
}

fn tables(r: &Report) -> Vec<Table> {
    let s = &r.summary;
    let ba = &r.body_analysis;
    let covered = if ba.capped {
        format!(
            " (capped: the {} most frequent bodies, {:.2}% of emails)",
            ba.bodies_analyzed,
            percent(ba.emails_covered, s.emails)
        )
    } else {
        String::new()
    };
    vec![
        Table {
            name: "summary",
            title: format!("Summary{}", period(r)),
            columns: vec![
                col("period_start", "period start"),
                col("period_end", "period end"),
                col("days", "days"),
                col("emails", "emails"),
                col("emails_per_day", "avg. emails/day"),
                col("recipients", "recipients"),
                col("recipients_per_email", "avg. recpts/email"),
                col("unique_ips", "unique IPs"),
                col("unique_asns", "unique ASNs"),
                col("unique_ccs", "unique CCs"),
            ],
            rows: vec![vec![
                opt_text(&s.period_start),
                opt_text(&s.period_end),
                int(s.days),
                int(s.emails),
                Cell::Num(s.emails_per_day),
                int(s.recipients),
                Cell::Num(s.recipients_per_email),
                int(s.unique_ips),
                int(s.unique_asns),
                int(s.unique_ccs),
            ]],
            record: true,
            numbered: false,
        },
        Table {
            name: "sensors",
            title: "Sensors".into(),
            columns: vec![
                col("sensor", "Sensor"),
                col("emails", "Emails"),
                col("recipients", "Recipients"),
                col("unique_ips", "Unique IPs"),
                col("sessions", "Sessions"),
                col("first_email", "First email"),
                col("last_email", "Last email"),
                col("percent", "% of emails"),
            ],
            rows: r
                .sensors
                .iter()
                .map(|x| {
                    vec![
                        text(&x.sensor),
                        int(x.emails),
                        int(x.recipients),
                        int(x.unique_ips),
                        int(x.sessions),
                        text(x.first_email.as_deref().unwrap_or("-")),
                        text(x.last_email.as_deref().unwrap_or("-")),
                        Cell::Num(x.percent),
                    ]
                })
                .collect(),
            record: false,
            numbered: false,
        },
        Table {
            name: "probes",
            title: "Probe messages (relay tests)".into(),
            columns: vec![col("messages", "messages"), col("percent", "% of emails")],
            rows: vec![vec![int(r.probes.messages), Cell::Num(r.probes.percent)]],
            record: true,
            numbered: false,
        },
        Table {
            name: "top_asns",
            title: format!("Top {} emails/ASN", r.filters.top),
            columns: vec![
                col("asn", "ASN"),
                col("name", "ASN Name"),
                col("cc", "CC"),
                col("emails", "Emails"),
                col("percent", "%"),
            ],
            rows: r
                .top_asns
                .iter()
                .map(|a| {
                    vec![
                        Cell::Id(a.asn.into()),
                        text(&a.name),
                        text(&a.cc),
                        int(a.emails),
                        Cell::Num(a.percent),
                    ]
                })
                .collect(),
            record: false,
            numbered: true,
        },
        Table {
            name: "top_ccs",
            title: format!("Top {} emails/CC", r.filters.top),
            columns: vec![
                col("cc", "CC"),
                col("emails", "Emails"),
                col("percent", "%"),
            ],
            rows: r
                .top_ccs
                .iter()
                .map(|c| vec![text(&c.cc), int(c.emails), Cell::Num(c.percent)])
                .collect(),
            record: false,
            numbered: true,
        },
        Table {
            name: "ports",
            title: "TCP ports used (sessions)".into(),
            columns: vec![
                col("port", "TCP Port"),
                col("protocol", "protocol"),
                col("plugin", "plugin"),
                col("used_by", "used by"),
                col("sessions", "sessions"),
                col("percent", "%"),
            ],
            rows: r
                .ports
                .iter()
                .map(|p| {
                    vec![
                        Cell::Id(p.port),
                        text(&p.protocol),
                        text(&p.plugin),
                        text(&p.used_by),
                        int(p.sessions),
                        Cell::Num(p.percent),
                    ]
                })
                .collect(),
            record: false,
            numbered: true,
        },
        Table {
            name: "request_types",
            title: "Request Types".into(),
            columns: vec![
                col("module", "Module"),
                col("kind", "Type"),
                col("count", "Requests"),
                col("percent", "%"),
            ],
            rows: r
                .request_types
                .iter()
                .map(|t| {
                    vec![
                        text(&t.module),
                        text(&t.kind),
                        int(t.count),
                        Cell::Num(t.percent),
                    ]
                })
                .collect(),
            record: false,
            numbered: false,
        },
        Table {
            name: "monthly",
            title: "Emails per month".into(),
            columns: vec![col("month", "month"), col("emails", "emails")],
            rows: r
                .monthly
                .iter()
                .map(|m| vec![text(&m.month), int(m.emails)])
                .collect(),
            record: false,
            numbered: false,
        },
        Table {
            name: "daily",
            title: "Emails per day".into(),
            columns: vec![col("day", "day"), col("emails", "emails")],
            rows: r
                .daily
                .iter()
                .map(|d| vec![text(&d.day), int(d.emails)])
                .collect(),
            record: false,
            numbered: false,
        },
        Table {
            name: "sender_domains",
            title: format!("Top {} sender domains (envelope MAIL FROM)", r.filters.top),
            columns: vec![
                col("domain", "domain"),
                col("emails", "emails"),
                col("percent", "%"),
            ],
            rows: r
                .sender_domains
                .iter()
                .map(|d| vec![text(&d.domain), int(d.emails), Cell::Num(d.percent)])
                .collect(),
            record: false,
            numbered: true,
        },
        Table {
            name: "recipient_domains",
            title: format!("Top {} recipient domains", r.filters.top),
            columns: vec![
                col("domain", "domain"),
                col("recipients", "recipients"),
                col("percent", "%"),
            ],
            rows: r
                .recipient_domains
                .iter()
                .map(|d| vec![text(&d.domain), int(d.recipients), Cell::Num(d.percent)])
                .collect(),
            record: false,
            numbered: true,
        },
        Table {
            name: "body_domains",
            title: format!("Top {} domains in message bodies{covered}", r.filters.top),
            columns: vec![
                col("domain", "domain"),
                col("emails", "emails"),
                col("percent", "%"),
            ],
            rows: r
                .body_domains
                .iter()
                .map(|d| vec![text(&d.domain), int(d.emails), Cell::Num(d.percent)])
                .collect(),
            record: false,
            numbered: true,
        },
        Table {
            name: "campaigns",
            title: format!(
                "Top {} campaigns (near-duplicate bodies){covered}",
                r.filters.top
            ),
            columns: vec![
                col("id", "id"),
                col("messages", "emails"),
                col("percent", "%"),
                col("bodies", "bodies"),
                col("first_seen", "first seen"),
                col("last_seen", "last seen"),
                col("sources", "sources"),
                col("language", "lang"),
                col("subject", "subject"),
            ],
            rows: r
                .campaigns
                .iter()
                .map(|c| {
                    vec![
                        text(&c.id),
                        int(c.messages),
                        Cell::Num(c.percent),
                        int(c.bodies),
                        text(&c.first_seen),
                        text(&c.last_seen),
                        int(c.sources),
                        text(&c.language),
                        text(&c.subject),
                    ]
                })
                .collect(),
            record: false,
            numbered: true,
        },
        Table {
            name: "languages",
            title: format!("Languages of message bodies{covered}"),
            columns: vec![
                col("language", "language"),
                col("emails", "emails"),
                col("percent", "%"),
            ],
            rows: r
                .languages
                .iter()
                .map(|l| vec![text(&l.language), int(l.emails), Cell::Num(l.percent)])
                .collect(),
            record: false,
            numbered: false,
        },
        Table {
            name: "body_analysis",
            title: "Body analysis coverage".into(),
            columns: vec![
                col("bodies_total", "distinct bodies"),
                col("bodies_analyzed", "analyzed"),
                col("bodies_not_stored", "not stored (quota)"),
                col("bodies_unreadable", "unreadable"),
                col("emails_covered", "emails covered"),
                col("capped", "capped by --max-bodies"),
            ],
            rows: vec![vec![
                int(ba.bodies_total),
                int(ba.bodies_analyzed),
                int(ba.bodies_not_stored),
                int(ba.bodies_unreadable),
                int(ba.emails_covered),
                text(if ba.capped { "true" } else { "false" }),
            ]],
            record: true,
            numbered: false,
        },
    ]
}

/// `1234567` → `1,234,567`.
pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 + 1);
    if n < 0 {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn fmt_num(x: f64) -> String {
    let s = format!("{x:.2}");
    let (int_part, frac) = s.split_once('.').unwrap_or((&s, "00"));
    let n: i64 = int_part.parse().unwrap_or(0);
    let sign = if x < 0.0 && n == 0 { "-" } else { "" };
    format!("{sign}{}.{frac}", thousands(n))
}

/// Attacker-controlled text for a terminal: control characters escaped,
/// at most `max` characters.
fn terminal_safe(s: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if c.is_control() {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            out.push(c);
        }
    }
    out
}

impl Cell {
    fn display(&self) -> String {
        match self {
            Cell::Text(s) => terminal_safe(s, 60),
            Cell::Int(n) => thousands(*n),
            Cell::Id(n) => n.to_string(),
            Cell::Num(x) => fmt_num(*x),
        }
    }

    fn raw(&self) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            Cell::Int(n) | Cell::Id(n) => n.to_string(),
            Cell::Num(x) => format!("{x:.2}"),
        }
    }

    fn right_aligned(&self) -> bool {
        !matches!(self, Cell::Text(_))
    }
}

fn kind_label(kind: &str) -> &str {
    match kind {
        "connect-smtp" => "connect to smtp",
        "connect-other" => "connect to others",
        "get" => "get requests",
        "error" => "errors",
        other => other,
    }
}

fn write_text_table(t: &Table, out: &mut String) {
    let _ = writeln!(out, "{}", t.title);
    if t.record {
        let row = &t.rows[0];
        let w = t
            .columns
            .iter()
            .map(|c| c.label.chars().count())
            .max()
            .unwrap_or(0);
        for (c, cell) in t.columns.iter().zip(row) {
            let _ = writeln!(out, "  {:<w$}  {}", c.label, cell.display());
        }
        out.push('\n');
        return;
    }
    let mut header: Vec<String> = t.columns.iter().map(|c| c.label.to_string()).collect();
    let mut rows: Vec<Vec<(String, bool)>> = Vec::new();
    let mut last_module = String::new();
    for (i, row) in t.rows.iter().enumerate() {
        let mut cells: Vec<(String, bool)> = row
            .iter()
            .map(|c| (c.display(), c.right_aligned()))
            .collect();
        if t.name == "request_types" {
            // The slide's layout: the module once, then its kinds.
            let module = cells[0].0.clone();
            if module == last_module {
                cells[0].0.clear();
            }
            cells[1].0 = kind_label(&cells[1].0).to_string();
            last_module = module;
        }
        if t.numbered {
            cells.insert(0, (format!("{:02}", i + 1), false));
        }
        rows.push(cells);
    }
    if t.numbered {
        header.insert(0, "#".to_string());
    }
    if rows.is_empty() {
        let _ = writeln!(out, "  (none)\n");
        return;
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].0.chars().count())
                .chain([header[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let right: Vec<bool> = (0..header.len()).map(|i| rows[0][i].1).collect();
    let line = |cells: Vec<&str>, out: &mut String| {
        let mut s = String::from(" ");
        for (i, c) in cells.iter().enumerate() {
            let pad = widths[i].saturating_sub(c.chars().count());
            s.push(' ');
            if right[i] {
                s.push_str(&" ".repeat(pad));
                s.push_str(c);
            } else {
                s.push_str(c);
                s.push_str(&" ".repeat(pad));
            }
            s.push(' ');
        }
        let _ = writeln!(out, "{}", s.trim_end());
    };
    line(header.iter().map(String::as_str).collect(), out);
    for r in &rows {
        line(r.iter().map(|c| c.0.as_str()).collect(), out);
    }
    out.push('\n');
}

/// RFC 4180 quoting: quote when needed, double the quotes.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) || s.starts_with(' ') || s.ends_with(' ') {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn write_csv_table(t: &Table, out: &mut String) {
    let header: Vec<String> = t.columns.iter().map(|c| csv_field(c.key)).collect();
    out.push_str(&header.join(","));
    out.push_str("\r\n");
    for row in &t.rows {
        let cells: Vec<String> = row.iter().map(|c| csv_field(&c.raw())).collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
}

/// One section of the report as JSON, by its name in [`TABLE_NAMES`].
fn section_json(r: &Report, name: &str) -> serde_json::Result<String> {
    use serde_json::to_string_pretty as json;
    match name {
        "summary" => json(&r.summary),
        "sensors" => json(&r.sensors),
        "probes" => json(&r.probes),
        "top_asns" => json(&r.top_asns),
        "top_ccs" => json(&r.top_ccs),
        "ports" => json(&r.ports),
        "request_types" => json(&r.request_types),
        "monthly" => json(&r.monthly),
        "daily" => json(&r.daily),
        "sender_domains" => json(&r.sender_domains),
        "recipient_domains" => json(&r.recipient_domains),
        "body_domains" => json(&r.body_domains),
        "campaigns" => json(&r.campaigns),
        "languages" => json(&r.languages),
        "body_analysis" => json(&r.body_analysis),
        // render() checked the name against TABLE_NAMES.
        other => unreachable!("no section {other:?}"),
    }
}

/// Write `report` in `format`. `table` selects one section (a name of
/// [`TABLE_NAMES`]) for `table`, `csv` and `json`; `html` is always whole.
pub fn render(
    report: &Report,
    format: Format,
    table: Option<&str>,
    out: &mut dyn Write,
) -> Result<()> {
    if let Some(t) = table
        && !TABLE_NAMES.contains(&t)
    {
        return Err(ReportError::UnknownTable(t.to_string()));
    }
    let doc = match format {
        Format::Json => {
            // Straight from the structs: keys in their documented order (a
            // `serde_json::Value` would sort them).
            let mut s = match table {
                Some(t) => section_json(report, t),
                None => serde_json::to_string_pretty(report),
            }
            .map_err(|e| ReportError::Invalid(format!("serializing the report: {e}")))?;
            s.push('\n');
            s
        }
        Format::Table => {
            let mut s = String::new();
            for t in tables(report) {
                if table.is_none_or(|n| n == t.name) {
                    write_text_table(&t, &mut s);
                }
            }
            s
        }
        Format::Csv => {
            let mut s = String::new();
            for t in tables(report) {
                match table {
                    Some(n) if n == t.name => write_csv_table(&t, &mut s),
                    Some(_) => {}
                    None => {
                        if !s.is_empty() {
                            s.push_str("\r\n");
                        }
                        let _ = write!(s, "# {}\r\n", t.name);
                        write_csv_table(&t, &mut s);
                    }
                }
            }
            s
        }
        Format::Html => {
            if table.is_some() {
                return Err(ReportError::Invalid(
                    "--table does not apply to --format html (the page has every table)".into(),
                ));
            }
            html(report)?
        }
    };
    out.write_all(doc.as_bytes()).map_err(ReportError::Output)?;
    out.flush().map_err(ReportError::Output)
}

/// Escape for HTML text and attribute values.
pub fn escape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() && c != '\n' && c != '\t' => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

fn html_table(t: &Table, out: &mut String) {
    let _ = writeln!(
        out,
        "<section id=\"table-{}\"><h2>{}</h2>",
        t.name,
        escape_html(&t.title)
    );
    let _ = writeln!(
        out,
        "<table class=\"{}\">",
        if t.record { "record" } else { "rows" }
    );
    if t.record {
        for (c, cell) in t.columns.iter().zip(&t.rows[0]) {
            let _ = writeln!(
                out,
                "<tr><th>{}</th><td class=\"num\">{}</td></tr>",
                escape_html(c.label),
                escape_html(&cell.display_full())
            );
        }
    } else {
        out.push_str("<thead><tr>");
        if t.numbered {
            out.push_str("<th>#</th>");
        }
        for c in &t.columns {
            let _ = write!(out, "<th>{}</th>", escape_html(c.label));
        }
        out.push_str("</tr></thead>\n<tbody>\n");
        for (i, row) in t.rows.iter().enumerate() {
            out.push_str("<tr>");
            if t.numbered {
                let _ = write!(out, "<td class=\"num\">{:02}</td>", i + 1);
            }
            for (j, cell) in row.iter().enumerate() {
                let mut shown = cell.display_full();
                if t.name == "request_types" && j == 1 {
                    shown = kind_label(&shown).to_string();
                }
                let class = if cell.right_aligned() {
                    " class=\"num\""
                } else {
                    ""
                };
                let _ = write!(out, "<td{class}>{}</td>", escape_html(&shown));
            }
            out.push_str("</tr>\n");
        }
        if t.rows.is_empty() {
            let _ = writeln!(
                out,
                "<tr><td colspan=\"{}\">(none)</td></tr>",
                t.columns.len() + usize::from(t.numbered)
            );
        }
        out.push_str("</tbody>\n");
    }
    out.push_str("</table></section>\n");
}

impl Cell {
    fn display_full(&self) -> String {
        match self {
            Cell::Text(s) => s.clone(),
            other => other.display(),
        }
    }
}

const CSS: &str = "body{font-family:sans-serif;margin:2em;color:#222;max-width:1200px}\
h1{font-size:1.5em}h2{font-size:1.15em;margin-top:1.6em}\
table{border-collapse:collapse;margin:.4em 0}th,td{border:1px solid #ccc;padding:.2em .6em;text-align:left}\
td.num{text-align:right;font-variant-numeric:tabular-nums}thead th{background:#eef}\
.charts{display:flex;flex-wrap:wrap;gap:1em}.chart{border:1px solid #ddd}\
footer{margin-top:2em;color:#666;font-size:.9em}";

fn html(r: &Report) -> Result<String> {
    let mut out = String::new();
    out.push_str("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    // No network, no scripts: captured text is attacker-controlled.
    out.push_str("<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">\n");
    let _ = writeln!(
        out,
        "<title>spampot report{}</title>\n<style>{CSS}</style>\n</head>\n<body>",
        escape_html(&period(r))
    );
    let s = &r.summary;
    let _ = writeln!(
        out,
        "<h1>spampot report: {} to {}{}</h1>",
        escape_html(s.period_start.as_deref().unwrap_or("-")),
        escape_html(s.period_end.as_deref().unwrap_or("-")),
        escape_html(&period(r))
    );
    let all = tables(r);
    let by_name = |n: &str| all.iter().find(|t| t.name == n).expect("table");
    html_table(by_name("summary"), &mut out);

    out.push_str("<section id=\"charts\"><h2>Charts</h2><div class=\"charts\">\n");
    out.push_str(&charts::asn_pie(r)?);
    out.push_str(&charts::cc_pie(r)?);
    out.push_str(&charts::monthly_bars(r)?);
    out.push_str(&charts::port_bars(r)?);
    out.push_str("</div></section>\n");

    for t in &all {
        match t.name {
            "summary" => {}
            "daily" => {
                out.push_str("<details><summary>Emails per day</summary>\n");
                html_table(t, &mut out);
                out.push_str("</details>\n");
            }
            _ => html_table(t, &mut out),
        }
    }
    let _ = writeln!(
        out,
        "<footer>Generated by spampot report. Enrichment: {}.</footer>\n</body>\n</html>",
        escape_html(&if r.filters.enrichment.is_empty() {
            "none".to_string()
        } else {
            r.filters.enrichment.join(", ")
        })
    );
    Ok(out)
}
