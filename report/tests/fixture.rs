//! The fixture generator: its schema against docs/store.md, writing on top of
//! an existing (host-migrated) database, and the shape of what it generates.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use rusqlite::Connection;
use spampot_report::db::{INDEXES_SQL, SCHEMA_SQL};
use spampot_report::fixture::{FixtureOptions, FixtureWriter, generate};
use spampot_report::{ReportOptions, build_report};

/// Tables and columns documented in docs/store.md ("### `table`" headings,
/// then table rows whose first cell lists `column`s).
fn documented() -> BTreeMap<String, BTreeSet<String>> {
    let md =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/store.md"))
            .unwrap();
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in md.lines() {
        if let Some(h) = line.strip_prefix("### `") {
            current = h.split('`').next().map(str::to_string);
            continue;
        }
        if line.starts_with("## ") || line.starts_with("### ") {
            current = None;
        }
        let Some(table) = &current else { continue };
        if let Some(cell) = line.strip_prefix("| `") {
            let first = format!("`{}", cell.split(" |").next().unwrap());
            for col in first.split(", ") {
                out.entry(table.clone())
                    .or_default()
                    .insert(col.trim_matches('`').to_string());
            }
        }
    }
    out
}

fn actual(conn: &Connection) -> BTreeMap<String, BTreeSet<String>> {
    let mut out = BTreeMap::new();
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for t in tables {
        let cols: BTreeSet<String> = conn
            .prepare(&format!("PRAGMA table_info({t})"))
            .unwrap()
            .query_map([], |r| r.get(1))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        out.insert(t, cols);
    }
    out
}

#[test]
fn schema_matches_store_md() {
    let doc = documented();
    assert_eq!(doc.len(), 9, "{doc:?}");
    let d = tempfile::tempdir().unwrap();
    FixtureWriter::open(d.path()).unwrap().finish().unwrap();
    let conn = Connection::open(d.path().join("spampot.db")).unwrap();
    assert_eq!(actual(&conn), doc);
    let v: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    let app: i64 = conn
        .pragma_query_value(None, "application_id", |r| r.get(0))
        .unwrap();
    assert_eq!((v, app), (4, 0x5350_5054));
    let indexes: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(indexes, 17, "the host's 17 indexes of migration 2");
}

#[test]
fn writes_on_an_existing_schema_without_touching_it() {
    let d = tempfile::tempdir().unwrap();
    {
        // What the host's migrations leave: tables, indexes, version 2.
        let conn = Connection::open(d.path().join("spampot.db")).unwrap();
        conn.execute_batch(SCHEMA_SQL).unwrap();
        conn.execute_batch(INDEXES_SQL).unwrap();
        conn.execute_batch("PRAGMA application_id = 1397772372; PRAGMA user_version = 2;")
            .unwrap();
    }
    let before = actual(&Connection::open(d.path().join("spampot.db")).unwrap());
    let s = generate(d.path(), &FixtureOptions::new(300, 60)).unwrap();
    assert_eq!(s.messages, 60);
    let conn = Connection::open(d.path().join("spampot.db")).unwrap();
    assert_eq!(actual(&conn), before);
    let v: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, 2);
    let r = build_report(&ReportOptions::new(d.path())).unwrap();
    assert_eq!(r.summary.emails, 60);
    // A version 2 database gets legacy per-body files, read back as such.
    assert!(!d.path().join("blobs").read_dir().unwrap().any(|e| {
        let name = e.unwrap().file_name();
        name.to_string_lossy().ends_with(".pack")
    }));
    assert!(r.body_analysis.bodies_analyzed > 0);
    assert_eq!(r.body_analysis.bodies_unreadable, 0);
}

#[test]
fn refuses_a_foreign_database() {
    let d = tempfile::tempdir().unwrap();
    let conn = Connection::open(d.path().join("spampot.db")).unwrap();
    conn.execute_batch("PRAGMA application_id = 42; CREATE TABLE t(x);")
        .unwrap();
    drop(conn);
    assert!(FixtureWriter::open(d.path()).is_err());
    let err = build_report(&ReportOptions::new(d.path())).unwrap_err();
    assert!(err.to_string().contains("not a spampot database"), "{err}");
    let empty = tempfile::tempdir().unwrap();
    let err = build_report(&ReportOptions::new(empty.path())).unwrap_err();
    assert!(err.to_string().contains("no spampot database"), "{err}");
}

#[test]
fn generated_mix_has_the_slides_shape() {
    let d = tempfile::tempdir().unwrap();
    let mut o = FixtureOptions::new(20_000, 4_000);
    o.seed = 7;
    o.days = 90;
    let s = generate(d.path(), &o).unwrap();
    assert_eq!((s.sessions, s.messages), (20_000, 4_000));
    assert!(s.bodies > 100, "{s:?}");
    let r = build_report(&ReportOptions::new(d.path())).unwrap();
    assert_eq!(r.summary.emails, 4_000);
    assert_eq!(r.summary.recipients, s.recipients);
    assert!(
        (8.5..10.0).contains(&r.summary.recipients_per_email),
        "{:?}",
        r.summary
    );
    assert_eq!(r.summary.days, 90);
    assert_eq!(r.monthly.len(), 3);
    assert_eq!(r.ports.iter().map(|p| p.sessions).sum::<u64>(), 20_000);
    assert_eq!(r.ports[0].port, 1080);
    assert_eq!(r.ports.len(), 11);
    let totals: u64 = r
        .request_types
        .iter()
        .filter(|t| t.kind == "total")
        .map(|t| t.count)
        .sum();
    assert_eq!(totals, s.requests);
    let http_smtp = r
        .request_types
        .iter()
        .find(|t| t.module == "http" && t.kind == "connect-smtp")
        .unwrap();
    assert!((96.0..99.0).contains(&http_smtp.percent), "{http_smtp:?}");
    // Countries like the slides: TW first (~73%), then CN (~16%), then US.
    let ccs: Vec<&str> = r.top_ccs.iter().take(3).map(|c| c.cc.as_str()).collect();
    assert_eq!(ccs, ["TW", "CN", "US"], "{:?}", r.top_ccs);
    assert!(
        (60.0..85.0).contains(&r.top_ccs[0].percent),
        "{:?}",
        r.top_ccs
    );
    assert!(r.summary.unique_asns >= 15);
    assert!((1.0..3.5).contains(&r.probes.percent), "{:?}", r.probes);
    // Templates become campaigns; bodies of one template group together.
    assert!(r.campaigns[0].bodies > 10, "{:?}", r.campaigns[0]);
    assert!(!r.body_analysis.capped && r.body_analysis.bodies_analyzed == s.bodies);
    let langs: BTreeSet<&str> = r.languages.iter().map(|l| l.language.as_str()).collect();
    for l in ["en", "zh", "pt", "es", "ru", "de", "fr"] {
        assert!(langs.contains(l), "{l} in {langs:?}");
    }
    assert!(
        r.body_domains
            .iter()
            .any(|b| b.domain == "pharma-deals.example")
    );
}

#[test]
fn same_seed_same_data() {
    let report = |seed| {
        let d = tempfile::tempdir().unwrap();
        let mut o = FixtureOptions::new(2_000, 300);
        o.seed = seed;
        generate(d.path(), &o).unwrap();
        let mut r = build_report(&ReportOptions::new(d.path())).unwrap();
        r.filters.enrichment.clear();
        serde_json::to_string(&r).unwrap()
    };
    assert_eq!(report(3), report(3));
    assert_ne!(report(3), report(4));
}
