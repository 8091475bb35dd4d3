//! A data directory with a known mix (built from a spec by the helper), and
//! every number of every table checked against values worked out by hand.

mod common;

use std::path::Path;

use spampot_report::report::*;
use spampot_report::{ReportOptions, build_report};

use common::mix::{A1, B, E, F, c_body, d_body, dir};

fn report(dir: &Path, f: impl FnOnce(&mut ReportOptions)) -> Report {
    let mut o = ReportOptions::new(dir);
    f(&mut o);
    build_report(&o).unwrap()
}

fn asn(asn: u32, name: &str, cc: &str, emails: u64, percent: f64) -> AsnRow {
    AsnRow {
        asn,
        name: name.into(),
        cc: cc.into(),
        emails,
        percent,
    }
}
fn cc(cc: &str, emails: u64, percent: f64) -> CcRow {
    CcRow {
        cc: cc.into(),
        emails,
        percent,
    }
}
fn port(
    port: i64,
    protocol: &str,
    plugin: &str,
    used_by: &str,
    sessions: u64,
    percent: f64,
) -> PortRow {
    PortRow {
        port,
        protocol: protocol.into(),
        plugin: plugin.into(),
        used_by: used_by.into(),
        sessions,
        percent,
    }
}
fn rt(module: &str, kind: &str, count: u64, percent: f64) -> RequestTypeRow {
    RequestTypeRow {
        module: module.into(),
        kind: kind.into(),
        count,
        percent,
    }
}
fn month(m: &str, emails: u64) -> MonthRow {
    MonthRow {
        month: m.into(),
        emails,
    }
}
fn lang(l: &str, emails: u64, percent: f64) -> LanguageRow {
    LanguageRow {
        language: l.into(),
        emails,
        percent,
    }
}

/// Every day from `first` to `last` with the given non-zero counts.
fn days(first: &str, last: &str, nonzero: &[(&str, u64)]) -> Vec<DayRow> {
    let mut d = chrono::NaiveDate::parse_from_str(first, "%Y-%m-%d").unwrap();
    let last = chrono::NaiveDate::parse_from_str(last, "%Y-%m-%d").unwrap();
    let mut out = Vec::new();
    while d <= last {
        let day = d.format("%Y-%m-%d").to_string();
        let emails = nonzero.iter().find(|n| n.0 == day).map_or(0, |n| n.1);
        out.push(DayRow { day, emails });
        d = d.succ_opt().unwrap();
    }
    out
}

fn campaign_id(body: &str) -> String {
    format!(
        "{:016x}",
        spampot_report::body::analyze(body.as_bytes()).fingerprint
    )
}

#[test]
fn every_number_of_every_table() {
    let d = dir();
    let r = report(d.path(), |_| {});

    assert_eq!(
        r.summary,
        Summary {
            period_start: Some("2026-01-30".into()),
            period_end: Some("2026-03-02".into()),
            days: 32,
            emails: 25,
            emails_per_day: 0.78, // 25 / 32 = 0.78125
            recipients: 140,      // 10*10 + 6*5 + 4 + 2 + 2 + 1 + 1
            recipients_per_email: 5.6,
            unique_ips: 7,
            unique_asns: 4, // 9924, 3462, 4134, 64500 (AS 0 not counted)
            unique_ccs: 3,  // TW, CN, US ("--" not counted)
        }
    );
    assert_eq!(
        r.probes,
        Probes {
            messages: 1,
            percent: 4.0
        }
    );
    assert_eq!(
        r.top_asns,
        vec![
            asn(9924, "TFN-TW", "TW", 16, 64.0),
            asn(3462, "HINET", "TW", 4, 16.0),
            asn(0, UNKNOWN_AS_NAME, "--", 2, 8.0), // 4.0.0.9 not routed + 9.9.9.9 unknown
            asn(4134, "CHINANET", "CN", 2, 8.0),
            asn(64500, "EXAMPLE-V6", "US", 1, 4.0),
        ]
    );
    assert_eq!(
        r.top_ccs,
        vec![
            cc("TW", 20, 80.0),
            cc("--", 2, 8.0),
            cc("CN", 2, 8.0),
            cc("US", 1, 4.0)
        ]
    );
    assert_eq!(
        r.ports,
        vec![
            port(1080, "SOCKS", "socks", "socks", 40, 40.0),
            port(8080, "HTTP", "http-proxy", "alt http", 30, 30.0),
            port(3128, "HTTP", "http-proxy", "Squid", 15, 15.0),
            port(25, "SMTP", "smtp", "smtp", 10, 10.0),
            port(3127, "SOCKS", "mydoom", "MyDoom", 4, 4.0),
            port(9999, "TELNET", "telnet", "telnet", 1, 1.0),
        ]
    );
    assert_eq!(
        r.request_types,
        vec![
            rt("http", "connect-smtp", 90, 90.0),
            rt("http", "connect-other", 5, 5.0),
            rt("http", "get", 3, 3.0),
            rt("http", "error", 2, 2.0),
            rt("http", "total", 100, 100.0),
            rt("socks4", "connect-other", 1, 100.0),
            rt("socks4", "total", 1, 100.0),
            rt("socks5", "connect-smtp", 30, 75.0),
            rt("socks5", "error", 10, 25.0),
            rt("socks5", "total", 40, 100.0),
            rt("sobig", "connect-smtp", 3, 100.0),
            rt("sobig", "total", 3, 100.0),
        ]
    );
    assert_eq!(
        r.monthly,
        vec![
            month("2026-01", 16),
            month("2026-02", 6),
            month("2026-03", 3)
        ]
    );
    assert_eq!(
        r.daily,
        days(
            "2026-01-30",
            "2026-03-02",
            &[
                ("2026-01-30", 10),
                ("2026-01-31", 6),
                ("2026-02-01", 4),
                ("2026-02-15", 2),
                ("2026-03-02", 3)
            ]
        )
    );
    let sd: Vec<(&str, u64, f64)> = r
        .sender_domains
        .iter()
        .map(|d| (d.domain.as_str(), d.emails, d.percent))
        .collect();
    assert_eq!(
        sd,
        [
            ("spam1.example", 16, 64.0),
            ("spam2.example", 4, 16.0),
            ("(empty)", 2, 8.0),
            ("es.example", 1, 4.0),
            ("probe.example", 1, 4.0),
            ("ru.example", 1, 4.0),
        ]
    );
    let rd: Vec<(&str, u64, f64)> = r
        .recipient_domains
        .iter()
        .map(|d| (d.domain.as_str(), d.recipients, d.percent))
        .collect();
    assert_eq!(
        rd,
        [
            ("hotmail.com", 80, 57.14),
            ("yahoo.com.tw", 50, 35.71),
            ("gmail.com", 6, 4.29),
            ("mail.ru", 2, 1.43),
            ("correo.es", 1, 0.71),
            ("probe.example", 1, 0.71),
        ]
    );
    let bd: Vec<(&str, u64, f64)> = r
        .body_domains
        .iter()
        .map(|d| (d.domain.as_str(), d.emails, d.percent))
        .collect();
    assert_eq!(
        bd,
        [
            ("pills-a.example", 17, 68.0), // A1 + A2 + D
            ("ofertas.example.br", 4, 16.0),
            ("cn-shop.example", 2, 8.0),
            ("promo.example.es", 1, 4.0), // only in the HTML part
        ]
    );
    // A1 and A2 are one campaign; D shares A's domain but not its text.
    #[allow(clippy::type_complexity)]
    let camp: Vec<(String, u64, f64, u64, &str, &str, u64, &str, &str)> = r
        .campaigns
        .iter()
        .map(|c| {
            (
                c.id.clone(),
                c.messages,
                c.percent,
                c.bodies,
                c.first_seen.as_str(),
                c.last_seen.as_str(),
                c.sources,
                c.subject.as_str(),
                c.language.as_str(),
            )
        })
        .collect();
    assert_eq!(
        camp,
        [
            (
                campaign_id(A1),
                16,
                64.0,
                2,
                "2026-01-30T00:00:00.000Z",
                "2026-01-31T00:00:05.000Z",
                2,
                "Cheap meds for John",
                "en"
            ),
            (
                campaign_id(B),
                4,
                16.0,
                1,
                "2026-02-01T00:00:00.000Z",
                "2026-02-01T00:00:03.000Z",
                1,
                "Oferta para voce",
                "pt"
            ),
            (
                campaign_id(c_body()),
                2,
                8.0,
                1,
                "2026-02-15T00:00:00.000Z",
                "2026-02-15T00:00:01.000Z",
                1,
                "最新優惠",
                "zh"
            ),
            (
                campaign_id(d_body()),
                1,
                4.0,
                1,
                "2026-03-02T00:00:00.000Z",
                "2026-03-02T00:00:00.000Z",
                1,
                "Предложение",
                "ru"
            ),
            (
                campaign_id(E),
                1,
                4.0,
                1,
                "2026-03-02T01:00:00.000Z",
                "2026-03-02T01:00:00.000Z",
                1,
                "test",
                "und"
            ),
            (
                campaign_id(F),
                1,
                4.0,
                1,
                "2026-03-02T02:00:00.000Z",
                "2026-03-02T02:00:00.000Z",
                1,
                "Hola",
                "es"
            ),
        ]
    );
    assert_eq!(
        r.languages,
        vec![
            lang("en", 16, 64.0),
            lang("pt", 4, 16.0),
            lang("zh", 2, 8.0),
            lang("es", 1, 4.0),
            lang("ru", 1, 4.0),
            lang("und", 1, 4.0),
        ]
    );
    assert_eq!(
        r.body_analysis,
        BodyAnalysis {
            bodies_total: 7,
            bodies_analyzed: 7,
            bodies_not_stored: 0,
            bodies_unreadable: 0,
            emails_covered: 25,
            capped: false,
        }
    );
    assert_eq!(r.filters.top, 10);
    assert_eq!(r.filters.enrichment.len(), 2, "{:?}", r.filters.enrichment);
}

#[test]
fn top_n_truncates() {
    let d = dir();
    let r = report(d.path(), |o| o.top = 2);
    assert_eq!(
        r.top_asns,
        vec![
            asn(9924, "TFN-TW", "TW", 16, 64.0),
            asn(3462, "HINET", "TW", 4, 16.0)
        ]
    );
    assert_eq!(r.top_ccs, vec![cc("TW", 20, 80.0), cc("--", 2, 8.0)]);
    assert_eq!(r.sender_domains.len(), 2);
    assert_eq!(r.recipient_domains.len(), 2);
    assert_eq!(r.body_domains.len(), 2);
    assert_eq!(r.campaigns.len(), 2);
    // Not top-N tables keep every row.
    assert_eq!(r.ports.len(), 6);
    assert_eq!(r.languages.len(), 6);
    // Totals do not depend on top.
    assert_eq!(r.summary.unique_asns, 4);
}

#[test]
fn since_until_dates() {
    let d = dir();
    let r = report(d.path(), |o| {
        o.since = Some("2026-02-01".into());
        o.until = Some("2026-02-15".into()); // the whole 15th included
    });
    assert_eq!(
        r.summary,
        Summary {
            period_start: Some("2026-02-01".into()),
            period_end: Some("2026-02-15".into()),
            days: 15,
            emails: 6,
            emails_per_day: 0.4,
            recipients: 6,
            recipients_per_email: 1.0,
            unique_ips: 2,
            unique_asns: 2,
            unique_ccs: 2,
        }
    );
    assert_eq!(
        r.probes,
        Probes {
            messages: 0,
            percent: 0.0
        }
    );
    assert_eq!(
        r.top_asns,
        vec![
            asn(3462, "HINET", "TW", 4, 66.67),
            asn(4134, "CHINANET", "CN", 2, 33.33)
        ]
    );
    assert_eq!(r.top_ccs, vec![cc("TW", 4, 66.67), cc("CN", 2, 33.33)]);
    assert_eq!(
        r.ports,
        vec![
            port(3128, "HTTP", "http-proxy", "Squid", 15, 60.0),
            port(25, "SMTP", "smtp", "smtp", 10, 40.0)
        ]
    );
    assert_eq!(
        r.request_types,
        vec![
            rt("sobig", "connect-smtp", 3, 100.0),
            rt("sobig", "total", 3, 100.0)
        ]
    );
    assert_eq!(r.monthly, vec![month("2026-02", 6)]);
    assert_eq!(
        r.daily,
        days(
            "2026-02-01",
            "2026-02-15",
            &[("2026-02-01", 4), ("2026-02-15", 2)]
        )
    );
    let rd: Vec<(&str, u64, f64)> = r
        .recipient_domains
        .iter()
        .map(|d| (d.domain.as_str(), d.recipients, d.percent))
        .collect();
    assert_eq!(rd, [("gmail.com", 6, 100.0)]);
    let sd: Vec<(&str, u64)> = r
        .sender_domains
        .iter()
        .map(|d| (d.domain.as_str(), d.emails))
        .collect();
    assert_eq!(sd, [("spam2.example", 4), ("(empty)", 2)]);
    assert_eq!(
        r.languages,
        vec![lang("pt", 4, 66.67), lang("zh", 2, 33.33)]
    );
    assert_eq!(r.campaigns.len(), 2);
    assert_eq!(r.body_analysis.bodies_total, 2);
    assert_eq!(r.filters.since.as_deref(), Some("2026-02-01"));
}

#[test]
fn until_timestamp_is_exclusive() {
    let d = dir();
    let r = report(d.path(), |o| o.until = Some("2026-01-30T00:00:04Z".into()));
    // G1's messages at :00 … :03; the one at :04 is excluded.
    assert_eq!(r.summary.emails, 4);
    assert_eq!(r.summary.recipients, 40);
    assert_eq!(r.summary.days, 1);
    assert_eq!(r.summary.emails_per_day, 4.0);
    let r = report(d.path(), |o| {
        o.since = Some("2026-03-02T01:00:00.000Z".into())
    });
    assert_eq!(r.summary.emails, 2); // E at 01:00 (inclusive) and F at 02:00
    assert_eq!(
        r.probes,
        Probes {
            messages: 1,
            percent: 50.0
        }
    );
}

#[test]
fn sensor_filter() {
    let d = dir();
    let r = report(d.path(), |o| o.sensor = Some("s2".into()));
    assert_eq!(
        r.summary,
        Summary {
            period_start: Some("2026-02-01".into()),
            period_end: Some("2026-03-02".into()),
            days: 30,
            emails: 7,
            emails_per_day: 0.23,
            recipients: 7,
            recipients_per_email: 1.0,
            unique_ips: 3,
            unique_asns: 3,
            unique_ccs: 3,
        }
    );
    assert_eq!(
        r.top_asns,
        vec![
            asn(3462, "HINET", "TW", 4, 57.14),
            asn(4134, "CHINANET", "CN", 2, 28.57),
            asn(64500, "EXAMPLE-V6", "US", 1, 14.29),
        ]
    );
    assert_eq!(
        r.ports,
        vec![
            port(3128, "HTTP", "http-proxy", "Squid", 15, 60.0),
            port(25, "SMTP", "smtp", "smtp", 10, 40.0)
        ]
    );
    assert_eq!(
        r.request_types,
        vec![
            rt("socks4", "connect-other", 1, 100.0),
            rt("socks4", "total", 1, 100.0),
            rt("sobig", "connect-smtp", 3, 100.0),
            rt("sobig", "total", 3, 100.0),
        ]
    );
    assert_eq!(r.monthly, vec![month("2026-02", 6), month("2026-03", 1)]);
    let bd: Vec<(&str, u64)> = r
        .body_domains
        .iter()
        .map(|d| (d.domain.as_str(), d.emails))
        .collect();
    assert_eq!(
        bd,
        [
            ("ofertas.example.br", 4),
            ("cn-shop.example", 2),
            ("promo.example.es", 1)
        ]
    );
    assert_eq!(
        r.languages,
        vec![
            lang("pt", 4, 57.14),
            lang("zh", 2, 28.57),
            lang("es", 1, 14.29)
        ]
    );
    // Unknown sensor: everything empty, nothing divides by zero.
    let r = report(d.path(), |o| o.sensor = Some("nope".into()));
    assert_eq!(r.summary.emails, 0);
    assert_eq!(r.summary.days, 0);
    assert_eq!(r.summary.period_start, None);
    assert_eq!(r.summary.emails_per_day, 0.0);
    assert!(r.top_asns.is_empty() && r.ports.is_empty() && r.campaigns.is_empty());
}

#[test]
fn max_bodies_caps_and_says_so() {
    let d = dir();
    let r = report(d.path(), |o| o.max_bodies = 2);
    assert_eq!(
        r.body_analysis,
        BodyAnalysis {
            bodies_total: 7,
            bodies_analyzed: 2, // the two most frequent: A1 (10), A2 (6)
            bodies_not_stored: 0,
            bodies_unreadable: 0,
            emails_covered: 16,
            capped: true,
        }
    );
    assert_eq!(r.languages, vec![lang("en", 16, 64.0)]);
    assert_eq!(r.campaigns.len(), 1);
    assert_eq!(r.campaigns[0].bodies, 2);
    let mut out = Vec::new();
    spampot_report::render(&r, spampot_report::Format::Table, None, &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(
        text.contains("capped: the 2 most frequent bodies, 64.00% of emails"),
        "{text}"
    );
}

#[test]
fn missing_or_corrupt_blobs_are_counted() {
    let d = dir();
    let sha = |body: &str| spampot_report::fixture::sha256_hex(body.as_bytes());
    let conn = rusqlite::Connection::open(d.path().join("spampot.db")).unwrap();
    // E's body points at a pack that is not there.
    let n = conn
        .execute("UPDATE artifacts SET pack = 99 WHERE sha256 = ?1", [sha(E)])
        .unwrap();
    assert_eq!(n, 1);
    // F's row points at a well-formed record that carries F's digest but
    // other bytes: only the check of the decompressed body catches it.
    let pack: i64 = conn
        .query_row(
            "SELECT pack FROM artifacts WHERE sha256 = ?1",
            [sha(F)],
            |r| r.get(0),
        )
        .unwrap();
    let pack_path = d
        .path()
        .join(spampot_blobstore::pack_rel_path(pack).unwrap());
    let offset = std::fs::metadata(&pack_path).unwrap().len();
    let tampered = zstd::encode_all(&b"tampered"[..], 3).unwrap();
    let mut rec = Vec::new();
    spampot_blobstore::append_record(&mut rec, &sha(F), 8, &tampered).unwrap();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&pack_path)
        .unwrap();
    std::io::Write::write_all(&mut f, &rec).unwrap();
    conn.execute(
        "UPDATE artifacts SET pack_offset = ?2, stored_size = ?3 WHERE sha256 = ?1",
        rusqlite::params![sha(F), offset as i64, tampered.len() as i64],
    )
    .unwrap();
    drop(conn);
    let r = report(d.path(), |_| {});
    assert_eq!(r.body_analysis.bodies_unreadable, 2);
    assert_eq!(r.body_analysis.bodies_analyzed, 5);
    assert_eq!(r.body_analysis.emails_covered, 23);
    assert!(
        !r.languages
            .iter()
            .any(|l| l.language == "und" || l.language == "es")
    );
    // The envelope tables do not depend on bodies.
    assert_eq!(r.summary.emails, 25);
}

/// Each sensor's share, from the mix's groups: s1 has 10 + 6 + 1 + 1
/// emails with 10·10 + 6·5 + 2 + 1 recipients from four addresses and
/// 40 + 30 + 4 + 1 sessions; s2 has 4 + 2 + 1 emails, one recipient each,
/// from three addresses, and 15 + 10 sessions. `--sensor` keeps one row.
#[test]
fn each_sensor_s_share() {
    let d = dir();
    let r = report(d.path(), |_| {});
    let got: Vec<_> = r
        .sensors
        .iter()
        .map(|s| {
            (
                s.sensor.as_str(),
                s.emails,
                s.recipients,
                s.unique_ips,
                s.sessions,
                s.percent,
            )
        })
        .collect();
    assert_eq!(
        got,
        [("s1", 18, 133, 4, 75, 72.0), ("s2", 7, 7, 3, 25, 28.0)]
    );
    let day = |t: &Option<String>| t.as_deref().unwrap_or("").get(..10).map(str::to_owned);
    assert_eq!(
        day(&r.sensors[0].first_email).as_deref(),
        Some("2026-01-30")
    );
    assert_eq!(day(&r.sensors[0].last_email).as_deref(), Some("2026-03-02"));
    assert_eq!(
        day(&r.sensors[1].first_email).as_deref(),
        Some("2026-02-01")
    );
    assert_eq!(day(&r.sensors[1].last_email).as_deref(), Some("2026-03-02"));

    let only = report(d.path(), |o| o.sensor = Some("s2".into()));
    assert_eq!(only.sensors.len(), 1);
    assert_eq!(
        (only.sensors[0].emails, only.sensors[0].percent),
        (7, 100.0)
    );
}
