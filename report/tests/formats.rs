//! Output formats over the known mix: the JSON shape (keys exactly as
//! documented in docs/report.md), CSV, text tables, and the HTML page with
//! its inline SVG charts.

mod common;

use std::collections::BTreeSet;

use serde_json::Value;
use spampot_report::{Format, Report, ReportOptions, TABLE_NAMES, build_report, render};

fn report() -> (tempfile::TempDir, Report) {
    let d = common::mix::dir();
    let r = build_report(&ReportOptions::new(d.path())).unwrap();
    (d, r)
}

fn out(r: &Report, f: Format, table: Option<&str>) -> String {
    let mut buf = Vec::new();
    render(r, f, table, &mut buf).unwrap();
    String::from_utf8(buf).unwrap()
}

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

fn set<'a>(k: &[&'a str]) -> BTreeSet<&'a str> {
    k.iter().copied().collect()
}

/// Every row of array `name` has exactly `k`.
fn rows_have(v: &Value, name: &str, k: &[&str]) {
    let rows = v[name]
        .as_array()
        .unwrap_or_else(|| panic!("{name} is an array"));
    assert!(!rows.is_empty(), "{name} has rows in the known mix");
    for row in rows {
        assert_eq!(keys(row), set(k), "{name}");
    }
}

#[test]
fn json_shape_is_exactly_documented() {
    let (_d, r) = report();
    let v: Value = serde_json::from_str(&out(&r, Format::Json, None)).unwrap();
    let mut top = vec!["filters"];
    top.extend(TABLE_NAMES);
    assert_eq!(keys(&v), set(&top));
    assert_eq!(
        keys(&v["filters"]),
        set(&[
            "since",
            "until",
            "sensor",
            "top",
            "max_bodies",
            "enrichment"
        ])
    );
    assert_eq!(
        keys(&v["summary"]),
        set(&[
            "period_start",
            "period_end",
            "days",
            "emails",
            "emails_per_day",
            "recipients",
            "recipients_per_email",
            "unique_ips",
            "unique_asns",
            "unique_ccs",
        ])
    );
    rows_have(
        &v,
        "sensors",
        &[
            "sensor",
            "emails",
            "recipients",
            "unique_ips",
            "sessions",
            "first_email",
            "last_email",
            "percent",
        ],
    );
    assert_eq!(keys(&v["probes"]), set(&["messages", "percent"]));
    rows_have(&v, "top_asns", &["asn", "name", "cc", "emails", "percent"]);
    rows_have(&v, "top_ccs", &["cc", "emails", "percent"]);
    rows_have(
        &v,
        "ports",
        &[
            "port", "protocol", "plugin", "used_by", "sessions", "percent",
        ],
    );
    rows_have(&v, "request_types", &["module", "kind", "count", "percent"]);
    rows_have(&v, "monthly", &["month", "emails"]);
    rows_have(&v, "daily", &["day", "emails"]);
    rows_have(&v, "sender_domains", &["domain", "emails", "percent"]);
    rows_have(
        &v,
        "recipient_domains",
        &["domain", "recipients", "percent"],
    );
    rows_have(&v, "body_domains", &["domain", "emails", "percent"]);
    rows_have(
        &v,
        "campaigns",
        &[
            "id",
            "messages",
            "percent",
            "bodies",
            "first_seen",
            "last_seen",
            "sources",
            "subject",
            "language",
        ],
    );
    rows_have(&v, "languages", &["language", "emails", "percent"]);
    assert_eq!(
        keys(&v["body_analysis"]),
        set(&[
            "bodies_total",
            "bodies_analyzed",
            "bodies_not_stored",
            "bodies_unreadable",
            "emails_covered",
            "capped",
        ])
    );
    // Types: numbers are numbers, percentages rounded to 2 decimals.
    assert_eq!(v["summary"]["emails"], 25);
    assert_eq!(v["summary"]["emails_per_day"], 0.78);
    assert_eq!(v["top_asns"][0]["percent"], 64.0);
    assert_eq!(v["recipient_domains"][0]["percent"], 57.14);
    assert_eq!(v["filters"]["since"], Value::Null);
    // --table picks one section.
    let t: Value = serde_json::from_str(&out(&r, Format::Json, Some("top_ccs"))).unwrap();
    assert_eq!(t, v["top_ccs"]);
    // Keys come in the documented order, the report's own, not sorted.
    let text = out(&r, Format::Json, None);
    let at = |key: &str| text.find(&format!("\"{key}\":")).unwrap();
    let mut order = vec!["filters"];
    order.extend(TABLE_NAMES);
    assert!(order.windows(2).all(|w| at(w[0]) < at(w[1])), "{text}");
    let summary = out(&r, Format::Json, Some("summary"));
    assert!(
        summary.find("period_start") < summary.find("emails"),
        "{summary}"
    );
}

#[test]
fn csv_sections_and_single_table() {
    let (_d, r) = report();
    let all = out(&r, Format::Csv, None);
    for name in TABLE_NAMES {
        assert!(all.contains(&format!("# {name}\r\n")), "section {name}");
    }
    assert!(
        all.contains("# top_asns\r\nasn,name,cc,emails,percent\r\n9924,TFN-TW,TW,16,64.00\r\n"),
        "{all}"
    );
    let one = out(&r, Format::Csv, Some("request_types"));
    assert!(
        one.starts_with("module,kind,count,percent\r\nhttp,connect-smtp,90,90.00\r\n"),
        "{one}"
    );
    assert!(one.contains("http,total,100,100.00\r\n"));
    assert!(!one.contains('#'));
    assert_eq!(one.lines().count(), 1 + 12);
    let summary = out(&r, Format::Csv, Some("summary"));
    assert_eq!(
        summary,
        "period_start,period_end,days,emails,emails_per_day,recipients,recipients_per_email,unique_ips,unique_asns,unique_ccs\r\n\
         2026-01-30,2026-03-02,32,25,0.78,140,5.60,7,4,3\r\n"
    );
    // Quoting: the AS 0 name has a space and a slash only; subjects with commas are quoted.
    let asns = out(&r, Format::Csv, Some("top_asns"));
    assert!(
        asns.contains("0,(not routed / unknown),--,2,8.00\r\n"),
        "{asns}"
    );
    let err = render(&r, Format::Csv, Some("nope"), &mut Vec::new()).unwrap_err();
    assert!(err.to_string().contains("unknown table \"nope\""), "{err}");
}

#[test]
fn text_tables_like_the_slides() {
    let (_d, r) = report();
    let t = out(&r, Format::Table, None);
    assert!(t.contains("  avg. recpts/email  5.60\n"), "{t}");
    assert!(
        t.contains("  01   9924  TFN-TW                  TW      16  64.00\n"),
        "{t}"
    );
    assert!(
        t.contains("  01      1080  SOCKS     socks       socks           40  40.00\n"),
        "{t}"
    );
    assert!(
        t.contains("  http    connect to smtp          90   90.00\n"),
        "{t}"
    );
    assert!(
        t.contains("          total                   100  100.00\n"),
        "{t}"
    );
    let only = out(&r, Format::Table, Some("top_ccs"));
    assert!(only.starts_with("Top 10 emails/CC\n"), "{only}");
    assert!(!only.contains("Summary"));
}

#[test]
fn thousands_separators() {
    assert_eq!(
        spampot_report::render::thousands(524_585_779),
        "524,585,779"
    );
    assert_eq!(spampot_report::render::thousands(0), "0");
    assert_eq!(spampot_report::render::thousands(999), "999");
    assert_eq!(spampot_report::render::thousands(1000), "1,000");
}

/// The `<svg id="…">…</svg>` element of a chart.
fn svg<'a>(html: &'a str, id: &str) -> &'a str {
    let start = html
        .find(&format!("<svg id=\"{id}\""))
        .unwrap_or_else(|| panic!("chart {id} present"));
    let end = html[start..].find("</svg>").unwrap() + start;
    &html[start..end]
}

#[test]
fn html_is_self_contained_with_charts() {
    let (_d, r) = report();
    let html = out(&r, Format::Html, None);
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.trim_end().ends_with("</html>"));
    // Pie: one slice per top ASN (5, no "others": all emails are in the top 10).
    let pie = svg(&html, "chart-asn-pie");
    assert_eq!(pie.matches("<polygon class=\"slice\"").count(), 5, "{pie}");
    assert!(pie.contains("TFN-TW"));
    let cc = svg(&html, "chart-cc-pie");
    assert_eq!(cc.matches("<polygon class=\"slice\"").count(), 4);
    // Bars: one per month, one per port.
    let monthly = svg(&html, "chart-monthly");
    assert_eq!(
        monthly.matches("<rect class=\"bar\"").count(),
        3,
        "{monthly}"
    );
    assert!(monthly.contains("2026-02"));
    let ports = svg(&html, "chart-ports");
    assert_eq!(ports.matches("<rect class=\"bar\"").count(), 6);
    // Every table is there.
    for name in TABLE_NAMES {
        assert!(
            html.contains(&format!("<section id=\"table-{name}\">")),
            "{name}"
        );
    }
    // Nothing is fetched: no src/href/url() to anywhere, no scripts.
    let lower = html.to_ascii_lowercase();
    for bad in [
        "src=", "href=", "url(", "<script", "<link", "@import", "<img", "<iframe",
    ] {
        assert!(!lower.contains(bad), "{bad} in the page");
    }
    // The only http:// is the SVG namespace (an identifier, never fetched).
    let without_ns = lower.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
    assert!(!without_ns.contains("http://") && !without_ns.contains("https://"));
    assert!(html.contains("Content-Security-Policy"));
}

#[test]
fn html_escapes_captured_text() {
    let (_d, mut r) = report();
    r.campaigns[0].subject = "<script>alert(1)</script> & \"x\"".into();
    r.top_asns[0].name = "<b>AS</b>".into();
    let html = out(&r, Format::Html, None);
    assert!(!html.contains("<script>"));
    assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;x&quot;"));
    assert!(!html.contains("<b>AS</b>"));
}

#[test]
fn html_with_one_month_and_one_port() {
    let d = common::mix::dir();
    let mut o = ReportOptions::new(d.path());
    o.since = Some("2026-02-15".into());
    o.until = Some("2026-02-15".into());
    let r = build_report(&o).unwrap();
    assert_eq!((r.monthly.len(), r.ports.len()), (1, 1));
    let html = out(&r, Format::Html, None);
    assert_eq!(
        svg(&html, "chart-monthly")
            .matches("<rect class=\"bar\"")
            .count(),
        1
    );
    assert_eq!(
        svg(&html, "chart-ports")
            .matches("<rect class=\"bar\"")
            .count(),
        1
    );
    assert_eq!(
        svg(&html, "chart-asn-pie")
            .matches("<polygon class=\"slice\"")
            .count(),
        1
    );
}

#[test]
fn html_with_no_data_still_renders() {
    let d = common::mix::dir();
    let mut o = ReportOptions::new(d.path());
    o.sensor = Some("none".into());
    let r = build_report(&o).unwrap();
    let html = out(&r, Format::Html, None);
    for id in [
        "chart-asn-pie",
        "chart-cc-pie",
        "chart-monthly",
        "chart-ports",
    ] {
        assert!(svg(&html, id).contains("no data"), "{id}");
    }
}

/// Renders the page in headless Chromium and checks the screenshot is not
/// blank: the charts are inline SVG, and a browser is what draws them.
/// Needs `chromium` on PATH (the Debian package; `.ci/run` installs it).
#[test]
fn chromium_renders_the_page() {
    let found = std::process::Command::new("sh")
        .args(["-c", "command -v chromium"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "chromium is not installed: `apt-get install chromium` (.ci/run does)"
    );
    let (d, r) = report();
    let page = d.path().join("report.html");
    std::fs::write(&page, out(&r, Format::Html, None)).unwrap();
    let png = d.path().join("shot.png");
    let status = std::process::Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            // A file:// page needs no network; anything else would go to
            // a closed port.
            "--proxy-server=127.0.0.1:9",
            &format!("--screenshot={}", png.display()),
            "--window-size=1200,2000",
            &format!("file://{}", page.display()),
        ])
        .status()
        .expect("chromium runs");
    assert!(status.success());
    let bytes = std::fs::read(&png).unwrap();
    assert!(bytes.starts_with(b"\x89PNG"), "a PNG");
    // A blank 1200x2000 white page compresses to a few KB; charts and
    // tables give far more entropy.
    assert!(
        bytes.len() > 30_000,
        "screenshot looks blank: {} bytes",
        bytes.len()
    );
}
