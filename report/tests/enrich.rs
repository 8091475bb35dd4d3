//! Enrichment: iptoasn TSV (v4, v6, range edges, AS 0, unknown) and MaxMind
//! DB files (ASN and Country, v4 and v6) written by a minimal test writer.

mod common;

use std::net::IpAddr;
use std::path::Path;

use common::mmdb::{self, V, s};
use spampot_report::enrich::{AsInfo, Enricher, EnrichmentPaths, Ip2Asn, UNKNOWN_CC};

const V4: &str = "\
# comment lines and blank lines are skipped

10.0.0.0\t10.0.0.255\t100\tUS\tALPHA-NET
10.0.1.0\t10.0.1.9\t200\tbr\tBETA Telecom, S.A.
11.0.0.0\t11.255.255.255\t0\tNone\tNot routed
167772672\t167772927\t300\tDE\tDECIMAL-FORM
1.2.3.0\t1.2.3.255\t0\tNone\tNot routed
5.6.0.0\t5.6.255.255\t555\tNone\tNO-COUNTRY
";
const V6: &str = "\
2001:db8::\t2001:db8::ffff\t64500\tJP\tV6-NET
2001:db8:2::\t2001:db8:2:ffff:ffff:ffff:ffff:ffff\t0\tNone\tNot routed
";

fn info(asn: u32, name: &str, cc: &str) -> AsInfo {
    AsInfo {
        asn,
        name: name.into(),
        cc: cc.into(),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn tsv_files(dir: &Path) -> EnrichmentPaths {
    std::fs::write(dir.join("ip2asn-v4.tsv"), V4).unwrap();
    std::fs::write(dir.join("ip2asn-v6.tsv"), V6).unwrap();
    EnrichmentPaths::default().discover(dir)
}

#[test]
fn tsv_v4_edges() {
    let d = tempfile::tempdir().unwrap();
    let e = Enricher::open(&tsv_files(d.path())).unwrap();
    let alpha = info(100, "ALPHA-NET", "US");
    assert_eq!(e.lookup(ip("10.0.0.0")), alpha, "first address");
    assert_eq!(e.lookup(ip("10.0.0.128")), alpha);
    assert_eq!(e.lookup(ip("10.0.0.255")), alpha, "last address");
    let beta = info(200, "BETA Telecom, S.A.", "BR");
    assert_eq!(e.lookup(ip("10.0.1.0")), beta, "next range's first");
    assert_eq!(e.lookup(ip("10.0.1.9")), beta);
    assert_eq!(
        e.lookup(ip("10.0.1.10")),
        AsInfo::unknown(),
        "one past the last"
    );
    assert_eq!(
        e.lookup(ip("9.255.255.255")),
        AsInfo::unknown(),
        "one before the first"
    );
    assert_eq!(e.lookup(ip("0.0.0.0")), AsInfo::unknown());
    assert_eq!(e.lookup(ip("255.255.255.255")), AsInfo::unknown());
    // Decimal (ip2asn-v4-u32) form: 167772672 = 10.0.2.0.
    assert_eq!(e.lookup(ip("10.0.2.0")), info(300, "DECIMAL-FORM", "DE"));
    assert_eq!(e.lookup(ip("10.0.2.255")), info(300, "DECIMAL-FORM", "DE"));
    assert_eq!(e.lookup(ip("10.0.3.0")), AsInfo::unknown());
    // Not routed.
    assert_eq!(e.lookup(ip("11.1.2.3")), info(0, "Not routed", UNKNOWN_CC));
    // IPv4-mapped IPv6 is looked up as IPv4.
    assert_eq!(e.lookup(ip("::ffff:10.0.0.5")), alpha);
    // Text forms.
    assert_eq!(e.lookup_str(" 10.0.1.3 "), beta);
    assert_eq!(e.lookup_str("not-an-ip"), AsInfo::unknown());
    assert_eq!(AsInfo::unknown(), info(0, "", "--"));
}

#[test]
fn tsv_v6_edges() {
    let d = tempfile::tempdir().unwrap();
    let e = Enricher::open(&tsv_files(d.path())).unwrap();
    let v6 = info(64500, "V6-NET", "JP");
    assert_eq!(e.lookup(ip("2001:db8::")), v6);
    assert_eq!(e.lookup(ip("2001:db8::ffff")), v6);
    assert_eq!(e.lookup(ip("2001:db8::1:0")), AsInfo::unknown());
    assert_eq!(
        e.lookup(ip("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff")),
        AsInfo::unknown()
    );
    assert_eq!(e.lookup(ip("2001:db8:2::42")), info(0, "Not routed", "--"));
    assert_eq!(e.lookup(ip("::1")), AsInfo::unknown());
}

#[test]
fn tsv_bulk_lookup_is_allocation_free_and_fast() {
    // 100k ranges, 2M lookups through the borrowed API.
    let mut t = Ip2Asn::new();
    let mut text = String::new();
    for i in 0..100_000u32 {
        let start = i * 256;
        text.push_str(&format!(
            "{}\t{}\t{}\tUS\tAS{}\n",
            start,
            start + 199,
            i + 1,
            i + 1
        ));
    }
    t.read(text.as_bytes(), Path::new("mem")).unwrap();
    t.finish();
    assert_eq!(t.len(), (100_000, 0));
    let started = std::time::Instant::now();
    let mut hits = 0u64;
    for i in 0..2_000_000u32 {
        let addr = (i.wrapping_mul(2_654_435_761)) % (100_000 * 256);
        if let Some(r) = t.lookup_v4(addr) {
            hits += 1;
            assert_eq!(r.asn, addr / 256 + 1);
        } else {
            assert!(addr % 256 >= 200);
        }
    }
    assert!(hits > 1_000_000);
    // Generous bound for unoptimized test builds on a loaded 2-core box.
    assert!(started.elapsed().as_secs() < 20, "{:?}", started.elapsed());
}

#[test]
fn tsv_errors_name_the_line() {
    let mut t = Ip2Asn::new();
    let err = t
        .read(
            "1.0.0.0\t1.0.0.255\t1\tUS\tX\n1.0.0.0\tgarbage\t2\tUS\tY\n".as_bytes(),
            Path::new("f.tsv"),
        )
        .unwrap_err();
    assert!(err.to_string().starts_with("f.tsv:2:"), "{err}");
    let err = t
        .read(
            "2.0.0.0\t1.0.0.0\t1\tUS\tX\n".as_bytes(),
            Path::new("g.tsv"),
        )
        .unwrap_err();
    assert!(err.to_string().contains("after range_end"), "{err}");
    let err = t
        .read("1.0.0.0\t::1\t1\tUS\tX\n".as_bytes(), Path::new("h.tsv"))
        .unwrap_err();
    assert!(err.to_string().contains("one family"), "{err}");
    let err = t
        .read(
            "1.0.0.0\t1.0.0.9\tASx\tUS\tX\n".as_bytes(),
            Path::new("i.tsv"),
        )
        .unwrap_err();
    assert!(err.to_string().contains("AS_number"), "{err}");
}

fn mmdb_files(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let asn = |n: u32, org: &str| {
        V::Map(vec![
            ("autonomous_system_number", V::U32(n)),
            ("autonomous_system_organization", s(org)),
        ])
    };
    let asn_db = mmdb::build(
        "GeoLite2-ASN",
        vec![
            (ip("1.2.3.0"), 24, asn(64501, "MM-NET")),
            (ip("10.0.0.0"), 24, asn(64999, "SHADOWED-BY-TSV")),
            (ip("2001:db8:1::"), 48, asn(64502, "MM-V6")),
        ],
    );
    let country = |cc: &str| V::Map(vec![("country", V::Map(vec![("iso_code", s(cc))]))]);
    let country_db = mmdb::build(
        "GeoLite2-Country",
        vec![
            (ip("1.2.3.0"), 24, country("BR")),
            (ip("2001:db8:1::"), 48, country("JP")),
            (ip("10.0.0.0"), 24, country("FR")),
            (
                ip("5.6.0.0"),
                16,
                V::Map(vec![(
                    "registered_country",
                    V::Map(vec![("iso_code", s("DE"))]),
                )]),
            ),
        ],
    );
    let a = dir.join("GeoLite2-ASN.mmdb");
    let c = dir.join("GeoLite2-Country.mmdb");
    std::fs::write(&a, asn_db).unwrap();
    std::fs::write(&c, country_db).unwrap();
    (a, c)
}

#[test]
fn mmdb_asn_and_country_v4_v6() {
    let d = tempfile::tempdir().unwrap();
    let (a, c) = mmdb_files(d.path());
    let e = Enricher::open(&EnrichmentPaths {
        mmdb_asn: Some(a),
        mmdb_country: Some(c),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(e.lookup(ip("1.2.3.0")), info(64501, "MM-NET", "BR"));
    assert_eq!(e.lookup(ip("1.2.3.255")), info(64501, "MM-NET", "BR"));
    assert_eq!(e.lookup(ip("1.2.4.0")), AsInfo::unknown());
    assert_eq!(e.lookup(ip("1.2.2.255")), AsInfo::unknown());
    assert_eq!(e.lookup(ip("2001:db8:1::")), info(64502, "MM-V6", "JP"));
    assert_eq!(
        e.lookup(ip("2001:db8:1:ffff:ffff:ffff:ffff:ffff")),
        info(64502, "MM-V6", "JP")
    );
    assert_eq!(e.lookup(ip("2001:db8:2::")), AsInfo::unknown());
    // Country only, from registered_country.
    assert_eq!(e.lookup(ip("5.6.7.8")), info(0, "", "DE"));
    assert_eq!(e.lookup(ip("::ffff:1.2.3.4")), info(64501, "MM-NET", "BR"));
}

#[test]
fn tsv_first_then_mmdb() {
    let d = tempfile::tempdir().unwrap();
    mmdb_files(d.path());
    let paths = tsv_files(d.path()); // discovers the TSVs and both .mmdb files
    assert_eq!(paths.describe().len(), 4);
    let e = Enricher::open(&paths).unwrap();
    // TSV knows 10.0.0.x entirely: MaxMind's answers are not used.
    assert_eq!(e.lookup(ip("10.0.0.1")), info(100, "ALPHA-NET", "US"));
    // TSV says not routed: MaxMind names the AS and the country.
    assert_eq!(e.lookup(ip("1.2.3.4")), info(64501, "MM-NET", "BR"));
    // TSV knows the AS but not the country: the country comes from MaxMind.
    assert_eq!(e.lookup(ip("5.6.7.8")), info(555, "NO-COUNTRY", "DE"));
    // Neither knows.
    assert_eq!(e.lookup(ip("8.8.8.8")), AsInfo::unknown());
}

#[test]
fn bad_mmdb_is_an_error() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("bad.mmdb");
    std::fs::write(&p, b"not a database").unwrap();
    let err = Enricher::open(&EnrichmentPaths {
        mmdb_asn: Some(p),
        ..Default::default()
    })
    .unwrap_err();
    assert!(err.to_string().contains("bad.mmdb"), "{err}");
}
