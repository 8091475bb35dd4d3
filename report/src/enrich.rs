//! Offline enrichment: source IP → AS number, AS name, country code.
//!
//! Two sources, both optional:
//!
//! * iptoasn-style TSV files (`ip2asn-v4.tsv`, `ip2asn-v6.tsv`, also the
//!   combined file): `range_start \t range_end \t AS_number \t country_code
//!   \t AS_description`, ranges inclusive, addresses in text form (v4 rows
//!   may also give the start and end as decimal integers, as in
//!   `ip2asn-v4-u32.tsv`). AS 0 means "Not routed"; a country of `None`,
//!   `Unknown` or empty means unknown. Loaded once into sorted vectors
//!   (`u32` for IPv4, `u128` for IPv6) searched by binary search: a lookup is
//!   ~20 comparisons and allocates nothing.
//! * MaxMind DB files: GeoLite2-ASN (or any database with
//!   `autonomous_system_number` / `autonomous_system_organization`) and
//!   GeoLite2-Country or -City (`country.iso_code`, else
//!   `registered_country.iso_code`).
//!
//! [`Enricher::lookup`] takes each field from the first source that knows
//! it: the TSV, then the MaxMind files. An address nobody knows is AS 0 with
//! an empty name and country [`UNKNOWN_CC`] (`--`).

use std::collections::HashMap;
use std::io::BufRead;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};

use maxminddb::{PathElement, Reader};
use serde::Serialize;

use crate::ReportError;

/// Country code of an address no source knows (also for "None" in the TSV).
pub const UNKNOWN_CC: &str = "--";

/// What enrichment says about one address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct AsInfo {
    /// AS number; 0 = not routed or unknown.
    pub asn: u32,
    /// AS name (`AS_description` / `autonomous_system_organization`); may be empty.
    pub name: String,
    /// ISO 3166 alpha-2 country code, upper case, or [`UNKNOWN_CC`].
    pub cc: String,
}

impl AsInfo {
    /// The answer for an address no source knows.
    pub fn unknown() -> AsInfo {
        AsInfo {
            asn: 0,
            name: String::new(),
            cc: UNKNOWN_CC.to_string(),
        }
    }
}

/// Sorted, non-overlapping inclusive ranges, as a struct of arrays so that
/// the binary search touches only `starts`.
#[derive(Debug, Default)]
struct Ranges<T> {
    starts: Vec<T>,
    ends: Vec<T>,
    records: Vec<u32>,
}

impl<T: Copy + Ord> Ranges<T> {
    fn build(mut rows: Vec<(T, T, u32)>) -> Self {
        rows.sort_unstable_by_key(|r| r.0);
        let mut out = Ranges {
            starts: Vec::with_capacity(rows.len()),
            ends: Vec::with_capacity(rows.len()),
            records: Vec::with_capacity(rows.len()),
        };
        for (s, e, r) in rows {
            out.starts.push(s);
            out.ends.push(e);
            out.records.push(r);
        }
        out
    }

    #[inline]
    fn lookup(&self, ip: T) -> Option<u32> {
        let i = self.starts.partition_point(|&s| s <= ip);
        (i > 0 && self.ends[i - 1] >= ip).then(|| self.records[i - 1])
    }
}

/// An iptoasn-style table: IPv4 and IPv6 ranges → AS records.
#[derive(Debug, Default)]
pub struct Ip2Asn {
    v4_rows: Vec<(u32, u32, u32)>,
    v6_rows: Vec<(u128, u128, u32)>,
    v4: Ranges<u32>,
    v6: Ranges<u128>,
    records: Vec<AsInfo>,
    interned: HashMap<AsInfo, u32>,
}

fn parse_v4(s: &str) -> Option<u32> {
    s.parse::<Ipv4Addr>()
        .map(u32::from)
        .ok()
        .or_else(|| s.parse::<u32>().ok())
}

fn normalize_cc(cc: &str) -> String {
    let cc = cc.trim();
    if cc.is_empty() || cc.eq_ignore_ascii_case("none") || cc.eq_ignore_ascii_case("unknown") {
        UNKNOWN_CC.to_string()
    } else {
        cc.to_ascii_uppercase()
    }
}

impl Ip2Asn {
    /// An empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Load a TSV file (IPv4, IPv6 or both) into the table; returns the rows read.
    pub fn load(&mut self, path: &Path) -> Result<usize, ReportError> {
        let file = std::fs::File::open(path).map_err(ReportError::io(path))?;
        let n = self.read(std::io::BufReader::with_capacity(1 << 20, file), path)?;
        self.finish();
        Ok(n)
    }

    /// Read TSV rows from `input` (`path` only names it in errors). Call
    /// [`Ip2Asn::finish`] after the last input ([`Ip2Asn::load`] does).
    pub fn read(&mut self, input: impl BufRead, path: &Path) -> Result<usize, ReportError> {
        let mut n = 0;
        for (i, line) in input.lines().enumerate() {
            let line = line.map_err(ReportError::io(path))?;
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |msg: &str| ReportError::Parse {
                path: path.to_path_buf(),
                line: i + 1,
                msg: msg.to_string(),
            };
            let mut f = line.splitn(5, '\t');
            let (Some(start), Some(end), Some(asn)) = (f.next(), f.next(), f.next()) else {
                return Err(bad(
                    "expected range_start, range_end, AS_number, country_code, AS_description",
                ));
            };
            let cc = normalize_cc(f.next().unwrap_or(""));
            let name = f.next().unwrap_or("").trim().to_string();
            let asn: u32 = asn
                .trim()
                .trim_start_matches("AS")
                .parse()
                .map_err(|_| bad("AS_number is not a number"))?;
            let rec = self.intern(AsInfo { asn, name, cc });
            if let (Some(s), Some(e)) = (parse_v4(start.trim()), parse_v4(end.trim())) {
                if s > e {
                    return Err(bad("range_start after range_end"));
                }
                self.v4_rows.push((s, e, rec));
            } else if let (Ok(s), Ok(e)) = (
                start.trim().parse::<Ipv6Addr>(),
                end.trim().parse::<Ipv6Addr>(),
            ) {
                let (s, e) = (u128::from(s), u128::from(e));
                if s > e {
                    return Err(bad("range_start after range_end"));
                }
                self.v6_rows.push((s, e, rec));
            } else {
                return Err(bad("range_start/range_end are not addresses of one family"));
            }
            n += 1;
        }
        Ok(n)
    }

    /// Sort what was read into the lookup vectors.
    pub fn finish(&mut self) {
        self.v4 = Ranges::build(self.v4_rows.clone());
        self.v6 = Ranges::build(self.v6_rows.clone());
        self.interned.shrink_to_fit();
    }

    fn intern(&mut self, info: AsInfo) -> u32 {
        if let Some(&i) = self.interned.get(&info) {
            return i;
        }
        let i = self.records.len() as u32;
        self.records.push(info.clone());
        self.interned.insert(info, i);
        i
    }

    /// Number of IPv4 and IPv6 ranges.
    pub fn len(&self) -> (usize, usize) {
        (self.v4.starts.len(), self.v6.starts.len())
    }

    /// True if no range is loaded.
    pub fn is_empty(&self) -> bool {
        self.v4.starts.is_empty() && self.v6.starts.is_empty()
    }

    /// The range record holding an IPv4 address (as `u32`).
    #[inline]
    pub fn lookup_v4(&self, ip: u32) -> Option<&AsInfo> {
        self.v4.lookup(ip).map(|r| &self.records[r as usize])
    }

    /// The range record holding an IPv6 address (as `u128`).
    #[inline]
    pub fn lookup_v6(&self, ip: u128) -> Option<&AsInfo> {
        self.v6.lookup(ip).map(|r| &self.records[r as usize])
    }

    /// The range record holding `ip` (IPv4-mapped IPv6 is looked up as IPv4).
    #[inline]
    pub fn lookup(&self, ip: IpAddr) -> Option<&AsInfo> {
        match canonical(ip) {
            IpAddr::V4(v4) => self.lookup_v4(u32::from(v4)),
            IpAddr::V6(v6) => self.lookup_v6(u128::from(v6)),
        }
    }
}

/// `::ffff:a.b.c.d` → `a.b.c.d` (dual-stack listeners report IPv4 clients so).
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Files to enrich with. `None` fields are looked for in the data directory
/// by [`EnrichmentPaths::discover`].
#[derive(Debug, Clone, Default)]
pub struct EnrichmentPaths {
    /// iptoasn IPv4 TSV (`ip2asn-v4.tsv`).
    pub ip2asn_v4: Option<PathBuf>,
    /// iptoasn IPv6 TSV (`ip2asn-v6.tsv`).
    pub ip2asn_v6: Option<PathBuf>,
    /// MaxMind ASN database (`GeoLite2-ASN.mmdb`).
    pub mmdb_asn: Option<PathBuf>,
    /// MaxMind Country or City database (`GeoLite2-Country.mmdb`, `GeoLite2-City.mmdb`).
    pub mmdb_country: Option<PathBuf>,
}

impl EnrichmentPaths {
    /// Fill every unset path with the file of the conventional name in
    /// `dir`, if it exists: `ip2asn-v4.tsv`, `ip2asn-v6.tsv`,
    /// `GeoLite2-ASN.mmdb`, `GeoLite2-Country.mmdb` (else `GeoLite2-City.mmdb`).
    pub fn discover(mut self, dir: &Path) -> Self {
        let found = |name: &str| {
            let p = dir.join(name);
            p.is_file().then_some(p)
        };
        self.ip2asn_v4 = self.ip2asn_v4.or_else(|| found("ip2asn-v4.tsv"));
        self.ip2asn_v6 = self.ip2asn_v6.or_else(|| found("ip2asn-v6.tsv"));
        self.mmdb_asn = self.mmdb_asn.or_else(|| found("GeoLite2-ASN.mmdb"));
        self.mmdb_country = self
            .mmdb_country
            .or_else(|| found("GeoLite2-Country.mmdb"))
            .or_else(|| found("GeoLite2-City.mmdb"));
        self
    }

    /// The files in use, for the report's `filters.enrichment`.
    pub fn describe(&self) -> Vec<String> {
        [
            &self.ip2asn_v4,
            &self.ip2asn_v6,
            &self.mmdb_asn,
            &self.mmdb_country,
        ]
        .into_iter()
        .flatten()
        .map(|p| p.display().to_string())
        .collect()
    }
}

/// TSV first, then MaxMind; see the module documentation.
#[derive(Default)]
pub struct Enricher {
    tsv: Ip2Asn,
    mmdb_asn: Option<Reader<Vec<u8>>>,
    mmdb_country: Option<Reader<Vec<u8>>>,
}

impl std::fmt::Debug for Enricher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Enricher")
            .field("tsv_ranges", &self.tsv.len())
            .field("mmdb_asn", &self.mmdb_asn.is_some())
            .field("mmdb_country", &self.mmdb_country.is_some())
            .finish()
    }
}

fn open_mmdb(path: &Path) -> Result<Reader<Vec<u8>>, ReportError> {
    Reader::open_readfile(path).map_err(|source| ReportError::Mmdb {
        path: path.to_path_buf(),
        source,
    })
}

impl Enricher {
    /// An enricher that knows nothing (every address is unknown).
    pub fn empty() -> Self {
        Self::default()
    }

    /// Load every file named in `paths`.
    pub fn open(paths: &EnrichmentPaths) -> Result<Self, ReportError> {
        let mut tsv = Ip2Asn::new();
        for p in [&paths.ip2asn_v4, &paths.ip2asn_v6].into_iter().flatten() {
            let file = std::fs::File::open(p).map_err(ReportError::io(p))?;
            tsv.read(std::io::BufReader::with_capacity(1 << 20, file), p)?;
        }
        tsv.finish();
        Ok(Enricher {
            tsv,
            mmdb_asn: paths.mmdb_asn.as_deref().map(open_mmdb).transpose()?,
            mmdb_country: paths.mmdb_country.as_deref().map(open_mmdb).transpose()?,
        })
    }

    /// An enricher over an already loaded TSV table.
    pub fn from_tsv(tsv: Ip2Asn) -> Self {
        Enricher {
            tsv,
            ..Self::default()
        }
    }

    /// The TSV table (for allocation-free bulk lookups).
    pub fn tsv(&self) -> &Ip2Asn {
        &self.tsv
    }

    /// Whether any source is loaded.
    pub fn has_sources(&self) -> bool {
        !self.tsv.is_empty() || self.mmdb_asn.is_some() || self.mmdb_country.is_some()
    }

    fn mmdb_as(&self, ip: IpAddr) -> Option<(u32, String)> {
        let reader = self.mmdb_asn.as_ref()?;
        let hit = reader.lookup(ip).ok()?;
        let asn: maxminddb::geoip2::Asn = hit.decode().ok()??;
        Some((
            asn.autonomous_system_number?,
            asn.autonomous_system_organization
                .unwrap_or_default()
                .to_string(),
        ))
    }

    fn mmdb_cc(&self, ip: IpAddr) -> Option<String> {
        let reader = self.mmdb_country.as_ref()?;
        let hit = reader.lookup(ip).ok()?;
        for key in ["country", "registered_country"] {
            let path = [PathElement::Key(key), PathElement::Key("iso_code")];
            if let Ok(Some(cc)) = hit.decode_path::<&str>(&path)
                && !cc.is_empty()
            {
                return Some(cc.to_ascii_uppercase());
            }
        }
        None
    }

    /// Everything known about `ip`: each field from the first source that
    /// knows it (TSV, then MaxMind). The TSV's "not routed" (AS 0) counts as
    /// not knowing the AS, so MaxMind may still name one; if none does, the
    /// TSV's AS 0 row (name "Not routed") is kept.
    pub fn lookup(&self, ip: IpAddr) -> AsInfo {
        let ip = canonical(ip);
        let mut out = AsInfo::unknown();
        let tsv = self.tsv.lookup(ip);
        if let Some(t) = tsv {
            out = t.clone();
        }
        if out.asn == 0
            && let Some((asn, name)) = self.mmdb_as(ip)
        {
            out.asn = asn;
            out.name = name;
        }
        if out.cc == UNKNOWN_CC
            && let Some(cc) = self.mmdb_cc(ip)
        {
            out.cc = cc;
        }
        out
    }

    /// [`Enricher::lookup`] of an address in text form; text that is not an
    /// address is unknown.
    pub fn lookup_str(&self, ip: &str) -> AsInfo {
        match ip.trim().parse::<IpAddr>() {
            Ok(ip) => self.lookup(ip),
            Err(_) => AsInfo::unknown(),
        }
    }
}
