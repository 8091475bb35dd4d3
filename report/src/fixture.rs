//! Synthetic data directories: a low-level [`FixtureWriter`] (rows and
//! bodies through the store's documented schema) and [`generate`], which
//! fills one with a realistic mix (the shapes of CERT.br's SpamPots
//! figures) for tests and benchmarks. Hidden CLI: `spampot gen-fixture`.
//!
//! The writer works on an existing database (created by the host's
//! migrations: the `CREATE … IF NOT EXISTS` statements are then no-ops and
//! the schema version is left alone) or creates the schema itself
//! ([`crate::db::SCHEMA_SQL`] and the rest, application_id and
//! `user_version` 4). Bodies are written as the host would for that schema
//! version: into pack files (version 3 on; a new pack per writer, rolled at
//! the host's size) or, on a version 2 database, as legacy
//! `blobs/ab/cd/<sha256>.zst` files; zstd level 3, without fsync: fixtures
//! are not captures.

use std::collections::HashMap;
use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rusqlite::{Connection, params};
use sha2::{Digest, Sha256};

use crate::db::{
    self, APPLICATION_ID, INDEXES_SQL, JOURNAL_SQL, PACKS_SQL, SCHEMA_SQL, SCHEMA_VERSION,
};
use crate::{ReportError, Result};

/// One `sessions` row.
#[derive(Debug, Clone, Default)]
pub struct SessionRow {
    pub session: String,
    pub sensor: String,
    pub src_ip: String,
    pub src_port: u16,
    pub dst_port: u16,
    pub plugin: String,
    /// RFC 3339 with milliseconds (`2026-11-27T04:40:21.123Z`).
    pub started_at: String,
    pub ended_at: String,
    pub duration_ms: i64,
    pub bytes_in: i64,
    pub bytes_out: i64,
    pub reason: String,
}

/// One `requests` row (a `proxy.request` event).
#[derive(Debug, Clone, Default)]
pub struct RequestRow {
    pub session: String,
    pub ts: String,
    pub sensor: String,
    pub src_ip: String,
    pub dst_port: u16,
    pub plugin: String,
    pub module: String,
    pub kind: String,
    pub target_host: Option<String>,
    pub target_port: Option<u16>,
}

/// One `messages` row with its `recipients`; `sha256`, `size` and `stored`
/// come from the body given to [`FixtureWriter::message`].
#[derive(Debug, Clone, Default)]
pub struct MessageRow {
    pub session: String,
    pub ts: String,
    pub sensor: String,
    pub src_ip: String,
    pub src_port: u16,
    pub dst_port: u16,
    pub plugin: String,
    pub helo: String,
    pub mail_from: String,
    pub recipients: Vec<String>,
    pub via: String,
    pub target_host: Option<String>,
    pub probe: Option<bool>,
    pub queue_id: String,
    pub persona: String,
}

struct ArtifactAgg {
    size: usize,
    stored_size: usize,
    stored: bool,
    first_seen: String,
    last_seen: String,
    seen: u64,
}

/// Writes rows and bodies into a data directory. Call [`FixtureWriter::finish`].
pub struct FixtureWriter {
    dir: PathBuf,
    conn: Connection,
    created_schema: bool,
    pending: u64,
    artifacts: HashMap<String, ArtifactAgg>,
    /// Bodies by content, so a repeated body is hashed once.
    known: HashMap<u64, Vec<(Vec<u8>, String)>>,
    store_bodies: bool,
    /// The pack bodies go to; `None` on a pre-pack (version 2) database.
    pack: Option<FixturePack>,
}

/// The pack a [`FixtureWriter`] appends to.
struct FixturePack {
    id: i64,
    file: std::io::BufWriter<std::fs::File>,
    len: u64,
}

/// Rows per transaction.
const BATCH: u64 = 100_000;

fn quick_hash(b: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &x in b {
        h = (h ^ u64::from(x)).wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// SHA-256 of `data`, lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

impl FixtureWriter {
    /// Open (creating) `<dir>/spampot.db`; create the schema if the database
    /// has none.
    pub fn open(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(ReportError::io(dir))?;
        let path = db::db_path(dir);
        let err = ReportError::db(&path);
        let conn = Connection::open(&path).map_err(&err)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(&err)?;
        let app: i64 = conn
            .pragma_query_value(None, "application_id", |r| r.get(0))
            .map_err(&err)?;
        if app != 0 && app != APPLICATION_ID {
            return Err(ReportError::NotSpampotDb { path });
        }
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(&err)?;
        let created_schema = version == 0;
        if created_schema {
            conn.execute_batch(SCHEMA_SQL).map_err(&err)?;
            conn.execute_batch(PACKS_SQL).map_err(&err)?;
            conn.execute_batch(JOURNAL_SQL).map_err(&err)?;
            conn.pragma_update(None, "application_id", APPLICATION_ID)
                .map_err(&err)?;
        }
        conn.execute_batch(
            "PRAGMA synchronous = OFF; PRAGMA cache_size = -262144; PRAGMA temp_store = FILE; BEGIN;",
        )
        .map_err(&err)?;
        let mut w = FixtureWriter {
            dir: dir.to_path_buf(),
            conn,
            created_schema,
            pending: 0,
            artifacts: HashMap::new(),
            known: HashMap::new(),
            store_bodies: true,
            pack: None,
        };
        if created_schema || version >= spampot_blobstore::PACK_SCHEMA_VERSION {
            w.new_pack()?;
        }
        Ok(w)
    }

    /// Start the next pack after the last one the database knows (never
    /// appending to a pack a host may have left a tail on).
    fn new_pack(&mut self) -> Result<()> {
        self.end_pack()?;
        let err = self.err();
        let last: i64 = self
            .conn
            .query_row("SELECT coalesce(max(id), 0) FROM packs", [], |r| r.get(0))
            .map_err(&err)?;
        let id = last + 1;
        let rel = spampot_blobstore::pack_rel_path(id).expect("id >= 1");
        let path = self.dir.join(&rel);
        let parent = path.parent().expect("blobs/");
        std::fs::create_dir_all(parent).map_err(ReportError::io(parent))?;
        let mut file =
            std::io::BufWriter::new(std::fs::File::create(&path).map_err(ReportError::io(&path))?);
        file.write_all(&spampot_blobstore::pack_header())
            .map_err(ReportError::io(&path))?;
        let len = spampot_blobstore::PACK_HEADER_LEN;
        self.conn
            .execute(
                "INSERT INTO packs (id, size, created_at) VALUES (?1, ?2, ?3)",
                params![
                    id,
                    len as i64,
                    ts(DateTime::<Utc>::from(std::time::SystemTime::now()))
                ],
            )
            .map_err(&err)?;
        self.pack = Some(FixturePack { id, file, len });
        Ok(())
    }

    /// Flush the current pack and record its size.
    fn end_pack(&mut self) -> Result<()> {
        let Some(mut p) = self.pack.take() else {
            return Ok(());
        };
        let rel = spampot_blobstore::pack_rel_path(p.id).expect("id >= 1");
        p.file
            .flush()
            .map_err(ReportError::io(&self.dir.join(rel)))?;
        self.conn
            .execute(
                "UPDATE packs SET size = ?2 WHERE id = ?1",
                params![p.id, p.len as i64],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// Record bodies as over quota (`stored = 0`, no blob) from now on, or not.
    pub fn set_store_bodies(&mut self, store: bool) {
        self.store_bodies = store;
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> ReportError + use<> {
        ReportError::db(&db::db_path(&self.dir))
    }

    fn tick(&mut self, rows: u64) -> Result<()> {
        self.pending += rows;
        if self.pending >= BATCH {
            self.pending = 0;
            self.conn
                .execute_batch("COMMIT; BEGIN;")
                .map_err(self.err())?;
        }
        Ok(())
    }

    /// Insert a session.
    pub fn session(&mut self, s: &SessionRow) -> Result<()> {
        let err = self.err();
        self.conn
            .prepare_cached(
                "INSERT INTO sessions (session, sensor, src_ip, src_port, dst_port, plugin, started_at, \
                 ended_at, duration_ms, bytes_in, bytes_out, reason) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12)",
            )
            .map_err(&err)?
            .execute(params![
                s.session, s.sensor, s.src_ip, s.src_port, s.dst_port, s.plugin, s.started_at,
                s.ended_at, s.duration_ms, s.bytes_in, s.bytes_out, s.reason
            ])
            .map_err(&err)?;
        self.tick(1)
    }

    /// Insert a proxy request.
    pub fn request(&mut self, r: &RequestRow) -> Result<()> {
        let err = self.err();
        self.conn
            .prepare_cached(
                "INSERT INTO requests (session, ts, sensor, src_ip, dst_port, plugin, module, kind, \
                 target_host, target_port) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10)",
            )
            .map_err(&err)?
            .execute(params![
                r.session, r.ts, r.sensor, r.src_ip, r.dst_port, r.plugin, r.module, r.kind,
                r.target_host, r.target_port
            ])
            .map_err(&err)?;
        self.tick(1)
    }

    /// The SHA-256 of `body`, writing its blob the first time it is seen.
    pub fn body(&mut self, body: &[u8], ts: &str) -> Result<String> {
        let qh = quick_hash(body);
        let found = self
            .known
            .get(&qh)
            .and_then(|v| v.iter().find(|(b, _)| b == body))
            .map(|(_, s)| s.clone());
        let sha = match found {
            Some(s) => s,
            None => {
                let s = sha256_hex(body);
                self.known
                    .entry(qh)
                    .or_default()
                    .push((body.to_vec(), s.clone()));
                s
            }
        };
        if let Some(a) = self.artifacts.get_mut(&sha) {
            a.seen += 1;
            if ts < a.first_seen.as_str() {
                a.first_seen = ts.to_string();
            }
            if ts > a.last_seen.as_str() {
                a.last_seen = ts.to_string();
            }
            return Ok(sha);
        }
        let mut stored_size = 0;
        let mut location: Option<(i64, i64)> = None;
        if self.store_bodies {
            let compressed = zstd::encode_all(body, spampot_blobstore::ZSTD_LEVEL)
                .map_err(ReportError::io(&self.dir))?;
            stored_size = compressed.len();
            if self
                .pack
                .as_ref()
                .is_some_and(|p| p.len >= spampot_blobstore::PACK_ROLL_BYTES)
            {
                self.new_pack()?;
            }
            if let Some(p) = self.pack.as_mut() {
                let mut rec = Vec::with_capacity(compressed.len() + 64);
                spampot_blobstore::append_record(&mut rec, &sha, body.len() as u64, &compressed)
                    .expect("a sha256");
                let rel = spampot_blobstore::pack_rel_path(p.id).expect("id >= 1");
                p.file
                    .write_all(&rec)
                    .map_err(ReportError::io(&self.dir.join(rel)))?;
                location = Some((p.id, p.len as i64));
                p.len += rec.len() as u64;
            } else {
                let rel = spampot_blobstore::legacy_rel_path(&sha).expect("a sha256");
                let path = self.dir.join(&rel);
                let parent = path.parent().expect("shard");
                std::fs::create_dir_all(parent).map_err(ReportError::io(parent))?;
                std::fs::write(&path, compressed).map_err(ReportError::io(&path))?;
            }
        }
        // The row exists before any message names it (foreign keys are on in
        // rusqlite's bundled SQLite); counts and times are set by `finish`.
        let err = self.err();
        if self.pack.is_some() {
            let (pack, offset) = location.unzip();
            self.conn
                .prepare_cached(
                    "INSERT INTO artifacts (sha256, kind, size, stored_size, stored, first_seen, last_seen, seen_count, \
                     pack, pack_offset) VALUES (?1, 'email', ?2, 0, 0, ?3, ?3, 0, ?4, ?5) ON CONFLICT(sha256) DO NOTHING",
                )
                .map_err(&err)?
                .execute(params![sha, body.len() as i64, ts, pack, offset])
                .map_err(&err)?;
        } else {
            self.conn
                .prepare_cached(
                    "INSERT INTO artifacts (sha256, kind, size, stored_size, stored, first_seen, last_seen, seen_count) \
                     VALUES (?1, 'email', ?2, 0, 0, ?3, ?3, 0) ON CONFLICT(sha256) DO NOTHING",
                )
                .map_err(&err)?
                .execute(params![sha, body.len() as i64, ts])
                .map_err(&err)?;
        }
        self.artifacts.insert(
            sha.clone(),
            ArtifactAgg {
                size: body.len(),
                stored_size,
                stored: self.store_bodies,
                first_seen: ts.to_string(),
                last_seen: ts.to_string(),
                seen: 1,
            },
        );
        Ok(sha)
    }

    /// Insert a message with `body` (blob written if new) and its recipients;
    /// returns its `messages.id`.
    pub fn message(&mut self, m: &MessageRow, body: &[u8]) -> Result<i64> {
        let sha = self.body(body, &m.ts)?;
        let stored = self.artifacts[&sha].stored;
        let err = self.err();
        self.conn
            .prepare_cached(
                "INSERT INTO messages (session, ts, sensor, src_ip, src_port, dst_port, plugin, helo, \
                 mail_from, rcpt_count, size, sha256, stored, via, target_host, probe, queue_id, persona, \
                 extra_meta) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16,?17,?18,NULL)",
            )
            .map_err(&err)?
            .execute(params![
                m.session,
                m.ts,
                m.sensor,
                m.src_ip,
                m.src_port,
                m.dst_port,
                m.plugin,
                m.helo,
                m.mail_from,
                m.recipients.len() as i64,
                body.len() as i64,
                sha,
                stored as i64,
                m.via,
                m.target_host,
                m.probe.map(i64::from),
                m.queue_id,
                m.persona
            ])
            .map_err(&err)?;
        let id = self.conn.last_insert_rowid();
        {
            let mut stmt = self
                .conn
                .prepare_cached(
                    "INSERT INTO recipients (message_id, position, address) VALUES (?1, ?2, ?3)",
                )
                .map_err(&err)?;
            for (i, a) in m.recipients.iter().enumerate() {
                stmt.execute(params![id, i as i64, a]).map_err(&err)?;
            }
        }
        self.tick(1 + m.recipients.len() as u64)?;
        Ok(id)
    }

    /// Write the `artifacts` rows, the indexes (when this writer created the
    /// schema) and commit.
    pub fn finish(mut self) -> Result<()> {
        self.end_pack()?;
        let err = self.err();
        {
            let mut stmt = self
                .conn
                .prepare(
                    "UPDATE artifacts SET seen_count = seen_count + ?7, first_seen = min(first_seen, ?5), \
                     last_seen = max(last_seen, ?6), stored = max(stored, ?4), stored_size = max(stored_size, ?3), \
                     size = ?2 WHERE sha256 = ?1",
                )
                .map_err(&err)?;
            for (sha, a) in &self.artifacts {
                stmt.execute(params![
                    sha,
                    a.size as i64,
                    a.stored_size as i64,
                    a.stored as i64,
                    a.first_seen,
                    a.last_seen,
                    a.seen as i64
                ])
                .map_err(&err)?;
            }
        }
        self.conn.execute_batch("COMMIT;").map_err(&err)?;
        if self.created_schema {
            self.conn.execute_batch(INDEXES_SQL).map_err(&err)?;
            self.conn
                .pragma_update(None, "user_version", SCHEMA_VERSION)
                .map_err(&err)?;
        }
        Ok(())
    }
}

/// Store-format timestamp.
pub fn ts(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// What [`generate`] makes.
#[derive(Debug, Clone)]
pub struct FixtureOptions {
    pub sessions: u64,
    pub messages: u64,
    pub seed: u64,
    /// First day of the period.
    pub start: NaiveDate,
    /// Length of the period in days.
    pub days: u32,
    /// Sensors `sensor-01` …
    pub sensors: u32,
    /// Distinct bodies (default: min(messages, 3000)).
    pub bodies: Option<usize>,
    /// Distinct source IPs (default: messages / 20, within 50..=200 000).
    pub ips: Option<usize>,
    /// Where to write the iptoasn TSV of the synthetic addresses
    /// (default `<data>/ip2asn-v4.tsv`, and `ip2asn-v6.tsv` beside it).
    pub ip2asn_v4: Option<PathBuf>,
    /// Progress bar on stderr (when it is a terminal).
    pub progress: bool,
}

impl FixtureOptions {
    pub fn new(sessions: u64, messages: u64) -> Self {
        FixtureOptions {
            sessions,
            messages,
            seed: 1,
            start: NaiveDate::from_ymd_opt(2026, 1, 1).expect("date"),
            days: 180,
            sensors: 3,
            bodies: None,
            ips: None,
            ip2asn_v4: None,
            progress: false,
        }
    }
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FixtureSummary {
    pub sessions: u64,
    pub requests: u64,
    pub messages: u64,
    pub recipients: u64,
    pub bodies: u64,
    pub source_ips: u64,
    pub ip2asn_v4: PathBuf,
    pub ip2asn_v6: PathBuf,
}

/// Synthetic ASes, shaped on the slides' top ASNs and countries.
/// (asn, name, cc, weight in % of emails). Each gets a /8 of its own
/// (`20 + index`.0.0.0/8); `38.0.0.0/8` is "Not routed" (AS 0); addresses in
/// `45.0.0.0/8` are in no range (unknown).
pub const FIXTURE_ASES: &[(u32, &str, &str, f64)] = &[
    (9924, "TFN-TW", "TW", 32.60),
    (3462, "HINET", "TW", 25.04),
    (17623, "CNCGROUP", "CN", 12.43),
    (4780, "SEEDNET", "TW", 10.38),
    (9919, "NCIC-TW", "TW", 1.75),
    (4837, "CHINA169", "CN", 1.72),
    (33322, "NDCHOST", "US", 1.59),
    (4134, "CHINANET", "CN", 1.39),
    (18429, "EXTRALAN", "TW", 1.29),
    (7271, "LOOKAS", "CA", 1.07),
    (7018, "ATT-INTERNET4", "US", 4.08),
    (2516, "KDDI", "JP", 1.03),
    (4760, "HKTIMS-AP", "HK", 0.84),
    (4766, "KIXS-AS-KR", "KR", 0.78),
    (6849, "UKRTELNET", "UA", 0.34),
    (3320, "DTAG", "DE", 0.18),
    (18881, "TELEFONICA-BR", "BR", 0.16),
    (64496, "EXAMPLE-V6", "US", 0.50),
];
const NOT_ROUTED_WEIGHT: f64 = 0.2;
const UNKNOWN_WEIGHT: f64 = 0.1;

/// (port, plugin, weight %) like the slides' port table.
const PORTS: &[(u16, &str, f64)] = &[
    (1080, "socks", 37.31),
    (8080, "http-proxy", 34.79),
    (80, "http-proxy", 10.92),
    (3128, "http-proxy", 6.17),
    (8000, "http-proxy", 2.76),
    (6588, "http-proxy", 2.29),
    (25, "smtp", 1.46),
    (4480, "http-proxy", 1.38),
    (3127, "mydoom", 1.00),
    (3382, "sobig", 0.96),
    (81, "http-proxy", 0.96),
];

/// Recipient domains, most frequent first.
const RCPT_DOMAINS: &[&str] = &[
    "hotmail.com",
    "yahoo.com.tw",
    "yahoo.com",
    "pchome.com.tw",
    "gmail.com",
    "msn.com",
    "163.com",
    "sina.com",
    "aol.com",
    "seed.net.tw",
    "uol.com.br",
    "mail.ru",
    "gmx.de",
    "orange.fr",
    "terra.com.br",
];
const SENDER_DOMAINS: &[&str] = &[
    "yahoo.com.tw",
    "hotmail.com",
    "msa.hinet.net",
    "ms1.hinet.net",
    "gmail.com",
    "sina.com",
    "pchome.com.tw",
    "163.com",
    "yahoo.com",
    "bestoffers.example",
];
const NAMES: &[&str] = &[
    "John", "Maria", "Chen", "Wang", "Ana", "Peter", "Yuki", "Olga", "Hans", "Pierre", "Lee",
    "Carlos", "Fatima", "Ivan", "Sofia", "Tom",
];

/// Campaign templates: (language, subject, body, transfer encoding, url host).
/// `{name}`, `{num}` and `{url}` vary between the bodies of one campaign.
const TEMPLATES: &[(&str, &str, &str, &str, &str)] = &[
    (
        "en",
        "Best prices on meds, {name}",
        "Dear {name},\n\nOur online pharmacy offers the best prices on all popular medications. Order today and get {num}% off your first purchase. Fast and discreet shipping worldwide, no prescription needed. Visit {url} to see the full catalogue of products we offer and save money now.\n\nBest regards,\nThe Pharmacy Team",
        "7bit",
        "pharma-deals.example",
    ),
    (
        "en",
        "Stock alert: {name}, this one will explode",
        "Attention investors!\n\nThis small company is about to announce a major contract and the stock will rise fast. Current price only {num} cents, target price much higher within days. Do not miss this opportunity, read the full analysis at {url} before the market opens tomorrow morning.",
        "7bit",
        "hot-stocks.example",
    ),
    (
        "en",
        "Urgent business proposal",
        "Dear friend {name},\n\nI am a bank manager and I need your assistance to transfer the sum of {num} million dollars left by a deceased client who has no next of kin. You will receive a fair share for your help. Please reply with your full name and phone number, details at {url} and keep this strictly confidential.",
        "7bit",
        "trust-bank.example",
    ),
    (
        "zh",
        "最新優惠 {num}",
        "親愛的{name}您好，我們公司提供最優惠的產品和服務，現在訂購立即享有特別折扣，數量有限，欲購從速。詳情請瀏覽 {url} 或來電洽詢，我們的專人將竭誠為您服務，謝謝您的支持與愛護。",
        "base64",
        "tw-shop.example",
    ),
    (
        "zh",
        "发票代开 {num}",
        "尊敬的{name}，本公司常年代开各类发票，税点优惠，保证真票，可先验后付款。联系电话请见网站 {url} 欢迎来电咨询，我们将为您提供最好的服务，期待与您合作。",
        "base64",
        "cn-invoice.example",
    ),
    (
        "pt",
        "Oferta imperdível para você, {name}",
        "Olá {name},\n\nAproveite agora a nossa promoção com descontos de até {num}% em todos os produtos da loja. Não perca esta oportunidade única, a oferta é válida somente por tempo limitado. Acesse {url} e compre com frete grátis para todo o Brasil.",
        "quoted-printable",
        "ofertas-br.example",
    ),
    (
        "es",
        "Gana dinero desde casa, {name}",
        "Hola {name},\n\nDescubre cómo ganar hasta {num} dólares por semana trabajando desde casa con nuestro sistema. No necesitas experiencia previa y puedes empezar ahora mismo. Visita {url} para obtener más información y registrarte gratis hoy.",
        "quoted-printable",
        "dinero-facil.example",
    ),
    (
        "ru",
        "Выгодное предложение для {name}",
        "Здравствуйте, {name}!\n\nНаша компания предлагает лучшие цены на рекламу и рассылки по всей стране. Скидка {num} процентов для новых клиентов только в этом месяце. Подробности на сайте {url} звоните нам прямо сейчас и получите подарок.",
        "quoted-printable",
        "reklama-ru.example",
    ),
    (
        "de",
        "Jetzt sparen, {name}",
        "Hallo {name},\n\nnur heute erhalten Sie {num} Prozent Rabatt auf alle Uhren und Schmuck in unserem Shop. Die Angebote sind begrenzt und nicht mit anderen Aktionen kombinierbar. Besuchen Sie {url} und bestellen Sie jetzt, der Versand ist für Sie kostenlos.",
        "7bit",
        "uhren-shop.example",
    ),
    (
        "fr",
        "Votre cadeau vous attend, {name}",
        "Bonjour {name},\n\nvous avez été sélectionné pour recevoir un cadeau d'une valeur de {num} euros. Pour le réclamer, il suffit de remplir le formulaire sur {url} avant la fin de la semaine. Cette offre est réservée aux nouveaux membres et ne sera pas renouvelée.",
        "7bit",
        "cadeau-fr.example",
    ),
];

/// The probe body (relay tests): short, one recipient.
const PROBE_BODY: &str =
    "Subject: test {num}\r\nFrom: probe@relaytest.example\r\n\r\ntest {num}\r\n";

/// Body `variant` of template `t`: a full RFC 5322 message.
pub fn template_body(t: usize, variant: u64) -> Vec<u8> {
    let (_, subject, text, cte, host) = TEMPLATES[t % TEMPLATES.len()];
    let name = NAMES[(variant % NAMES.len() as u64) as usize];
    let num = 10 + (variant * 7919) % 89;
    let url = format!(
        "http://www.{host}/p/{:x}",
        variant.wrapping_mul(0x9E37_79B9) & 0xffff
    );
    let fill = |s: &str| {
        s.replace("{name}", name)
            .replace("{num}", &num.to_string())
            .replace("{url}", &url)
    };
    let subject = fill(subject);
    let text = fill(text);
    let subject_hdr = if subject.is_ascii() {
        subject
    } else {
        format!(
            "=?utf-8?B?{}?=",
            crate::body::base64_encode(subject.as_bytes()).replace("\r\n", "")
        )
    };
    let encoded = match cte {
        "base64" => crate::body::base64_encode(text.as_bytes()),
        "quoted-printable" => crate::body::qp_encode(&text),
        _ => text.replace('\n', "\r\n"),
    };
    format!(
        "From: \"{name}\" <offers@{host}>\r\nTo: undisclosed-recipients:;\r\nSubject: {subject_hdr}\r\n\
         MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: {cte}\r\n\r\n{encoded}\r\n"
    )
    .into_bytes()
}

/// Sample from a cumulative weight table.
fn pick(cdf: &[f64], rng: &mut StdRng) -> usize {
    let total = *cdf.last().expect("non-empty");
    let x = rng.random::<f64>() * total;
    cdf.partition_point(|&c| c <= x).min(cdf.len() - 1)
}

fn cdf(weights: impl IntoIterator<Item = f64>) -> Vec<f64> {
    let mut acc = 0.0;
    weights
        .into_iter()
        .map(|w| {
            acc += w;
            acc
        })
        .collect()
}

fn zipf_cdf(n: usize, s: f64) -> Vec<f64> {
    cdf((1..=n).map(|k| 1.0 / (k as f64).powf(s)))
}

/// A bijection of 48-bit integers, so session ids are unique and look random.
fn session_id(seed: u64, i: u64) -> String {
    const MASK: u64 = (1 << 48) - 1;
    let x =
        (i ^ (seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) & MASK)).wrapping_mul(0x5DEE_CE66D) & MASK;
    format!("{:012x}", x ^ (x >> 21))
}

struct SourcePool {
    /// Per AS (index into FIXTURE_ASES, then not-routed, then unknown): addresses and Zipf CDF.
    groups: Vec<(Vec<String>, Vec<f64>)>,
    group_cdf: Vec<f64>,
}

impl SourcePool {
    fn new(n_ips: usize, rng: &mut StdRng) -> Self {
        let weights: Vec<f64> = FIXTURE_ASES
            .iter()
            .map(|a| a.3)
            .chain([NOT_ROUTED_WEIGHT, UNKNOWN_WEIGHT])
            .collect();
        let total: f64 = weights.iter().sum();
        let mut groups = Vec::new();
        for (g, w) in weights.iter().enumerate() {
            let n = ((n_ips as f64 * w / total).round() as usize).max(1);
            let mut ips = Vec::with_capacity(n);
            let mut seen = std::collections::HashSet::new();
            while ips.len() < n {
                let off: u32 = rng.random_range(1..0x00FF_FFFE);
                if !seen.insert(off) {
                    continue;
                }
                let ip = if g < FIXTURE_ASES.len() && FIXTURE_ASES[g].0 == 64496 {
                    format!(
                        "2001:db8:{:x}:{:x}::{:x}",
                        off >> 16,
                        off & 0xffff,
                        off % 251 + 1
                    )
                } else {
                    let first = match g {
                        _ if g < FIXTURE_ASES.len() => 20 + g as u32,
                        _ if g == FIXTURE_ASES.len() => 38,
                        _ => 45,
                    };
                    std::net::Ipv4Addr::from(first << 24 | off).to_string()
                };
                ips.push(ip);
            }
            groups.push((ips, zipf_cdf(n, 1.1)));
        }
        SourcePool {
            groups,
            group_cdf: cdf(weights),
        }
    }

    fn pick(&self, rng: &mut StdRng) -> &str {
        let g = &self.groups[pick(&self.group_cdf, rng)];
        &g.0[pick(&g.1, rng)]
    }

    fn len(&self) -> usize {
        self.groups.iter().map(|g| g.0.len()).sum()
    }
}

/// Write the iptoasn TSV files of the synthetic address plan.
pub fn write_ip2asn(v4: &Path, v6: &Path) -> Result<()> {
    let mut s = String::new();
    s.push_str("1.0.0.0\t19.255.255.255\t0\tNone\tNot routed\n");
    for (i, (asn, name, cc, _)) in FIXTURE_ASES.iter().enumerate() {
        if *asn == 64496 {
            continue;
        }
        let first = 20 + i;
        s.push_str(&format!(
            "{first}.0.0.0\t{first}.255.255.255\t{asn}\t{cc}\t{name}\n"
        ));
    }
    s.push_str("38.0.0.0\t38.255.255.255\t0\tNone\tNot routed\n");
    std::fs::write(v4, s).map_err(ReportError::io(v4))?;
    let v6s = "2001:db8::\t2001:db8:ffff:ffff:ffff:ffff:ffff:ffff\t64496\tUS\tEXAMPLE-V6\n";
    std::fs::write(v6, v6s).map_err(ReportError::io(v6))
}

/// Fill `data_dir` with a synthetic, realistic capture (see docs/report.md).
pub fn generate(data_dir: &Path, opts: &FixtureOptions) -> Result<FixtureSummary> {
    if opts.sessions == 0 && opts.messages > 0 {
        return Err(ReportError::Invalid(
            "messages need sessions (--sessions must be > 0)".into(),
        ));
    }
    let mut rng = StdRng::seed_from_u64(opts.seed);
    let n_ips = opts
        .ips
        .unwrap_or((opts.messages / 20).clamp(50, 200_000) as usize)
        .max(1);
    let n_bodies = opts
        .bodies
        .unwrap_or(opts.messages.clamp(1, 3000) as usize)
        .max(1);
    let pool = SourcePool::new(n_ips, &mut rng);
    let port_cdf = cdf(PORTS.iter().map(|p| p.2));
    let body_cdf = zipf_cdf(n_bodies, 1.1);
    let sender_cdf = zipf_cdf(SENDER_DOMAINS.len(), 1.0);
    let rcpt_cdf = zipf_cdf(RCPT_DOMAINS.len(), 0.9);
    let start = opts.start.and_hms_opt(0, 0, 0).expect("midnight").and_utc();
    let period_ms = i64::from(opts.days.max(1)) * 86_400_000;
    // Share of sessions that carry a message: those are connect-smtp.
    let f = (opts.messages as f64 / opts.sessions.max(1) as f64).min(1.0);
    let adjust = |p: [f64; 4]| -> Vec<f64> {
        let smtp = ((p[0] / 100.0 - f) / (1.0 - f)).max(0.0);
        let rest = (p[1] + p[2] + p[3]) / 100.0;
        let scale = if rest > 0.0 { (1.0 - smtp) / rest } else { 0.0 };
        cdf([
            smtp,
            p[1] / 100.0 * scale,
            p[2] / 100.0 * scale,
            p[3] / 100.0 * scale,
        ])
    };
    let http_kinds = adjust([97.62, 0.12, 0.25, 2.01]);
    let socks_kinds = adjust([87.31, 1.97, 0.0, 10.72]);
    const KINDS: [&str; 4] = ["connect-smtp", "connect-other", "get", "error"];

    let v4 = opts
        .ip2asn_v4
        .clone()
        .unwrap_or_else(|| data_dir.join("ip2asn-v4.tsv"));
    let v6 = v4.with_file_name("ip2asn-v6.tsv");
    std::fs::create_dir_all(data_dir).map_err(ReportError::io(data_dir))?;
    write_ip2asn(&v4, &v6)?;

    let mut w = FixtureWriter::open(data_dir)?;
    let pb = if opts.progress && std::io::stderr().is_terminal() {
        let pb = ProgressBar::with_draw_target(Some(opts.sessions), ProgressDrawTarget::stderr());
        pb.set_style(
            ProgressStyle::with_template(
                "generating sessions [{bar:30}] {human_pos}/{human_len} ({elapsed}, eta {eta})",
            )
            .expect("template")
            .progress_chars("=> "),
        );
        pb
    } else {
        ProgressBar::hidden()
    };
    let mut summary = FixtureSummary {
        sessions: 0,
        requests: 0,
        messages: 0,
        recipients: 0,
        bodies: 0,
        source_ips: pool.len() as u64,
        ip2asn_v4: v4,
        ip2asn_v6: v6,
    };
    let sensors: Vec<String> = (1..=opts.sensors.max(1))
        .map(|i| format!("sensor-{i:02}"))
        .collect();
    let mut session = SessionRow {
        reason: "client closed".into(),
        ..Default::default()
    };
    let mut msg = MessageRow {
        plugin: "smtp".into(),
        persona: "postfix".into(),
        ..Default::default()
    };
    let mut req = RequestRow::default();
    let mut body_cache: HashMap<usize, Vec<u8>> = HashMap::new();
    for i in 0..opts.sessions {
        let at = start
            + chrono::Duration::milliseconds(
                (i as i128 * period_ms as i128 / opts.sessions as i128) as i64
                    + rng.random_range(0..1000),
            );
        let (port, plugin, _) = PORTS[pick(&port_cdf, &mut rng)];
        let n_msgs = (i + 1) * opts.messages / opts.sessions - i * opts.messages / opts.sessions;
        session.session = session_id(opts.seed, i);
        session
            .sensor
            .clone_from(&sensors[rng.random_range(0..sensors.len())]);
        session.src_ip = pool.pick(&mut rng).to_string();
        session.src_port = rng.random_range(1024..65535);
        session.dst_port = port;
        session.plugin = plugin.to_string();
        session.started_at = ts(at);
        let dur = rng.random_range(200..30_000) + n_msgs as i64 * 2_000;
        session.ended_at = ts(at + chrono::Duration::milliseconds(dur));
        session.duration_ms = dur;
        session.bytes_in = rng.random_range(20..400) + n_msgs as i64 * 3_000;
        session.bytes_out = rng.random_range(20..300);
        w.session(&session)?;
        summary.sessions += 1;

        if plugin != "smtp" {
            let module = match plugin {
                "socks" if rng.random_bool(0.25) => "socks4",
                "socks" => "socks5",
                "http-proxy" => "http",
                other => other,
            };
            let kinds = if matches!(module, "socks4" | "socks5" | "mydoom") {
                &socks_kinds
            } else {
                &http_kinds
            };
            let kind = if n_msgs > 0 { 0 } else { pick(kinds, &mut rng) };
            req.session.clone_from(&session.session);
            req.ts = ts(at + chrono::Duration::milliseconds(50));
            req.sensor.clone_from(&session.sensor);
            req.src_ip.clone_from(&session.src_ip);
            req.dst_port = port;
            req.plugin = plugin.to_string();
            req.module = module.to_string();
            req.kind = KINDS[kind].to_string();
            (req.target_host, req.target_port) = match kind {
                0 => (
                    Some(format!("mx{}.example.com", rng.random_range(1..50))),
                    Some(25),
                ),
                1 => (Some("www.example.com".into()), Some(443)),
                2 => (Some("www.example.com".into()), Some(80)),
                _ => (None, None),
            };
            w.request(&req)?;
            summary.requests += 1;
        }

        for k in 0..n_msgs {
            let probe = rng.random_bool(0.02);
            msg.session.clone_from(&session.session);
            msg.ts = ts(at + chrono::Duration::milliseconds(1_000 + k as i64 * 2_000));
            msg.sensor.clone_from(&session.sensor);
            msg.src_ip.clone_from(&session.src_ip);
            msg.src_port = session.src_port;
            msg.dst_port = port;
            msg.helo = format!(
                "{}.example",
                NAMES[rng.random_range(0..NAMES.len())].to_lowercase()
            );
            msg.mail_from = format!(
                "{}{}@{}",
                NAMES[rng.random_range(0..NAMES.len())].to_lowercase(),
                rng.random_range(1..999),
                SENDER_DOMAINS[pick(&sender_cdf, &mut rng)]
            );
            let n_rcpt = if probe {
                1
            } else {
                rng.random_range(1..=17) + usize::from(rng.random_bool(0.4))
            };
            msg.recipients.clear();
            for _ in 0..n_rcpt {
                msg.recipients.push(format!(
                    "user{}@{}",
                    rng.random_range(0..1_000_000),
                    RCPT_DOMAINS[pick(&rcpt_cdf, &mut rng)]
                ));
            }
            msg.via = match plugin {
                "smtp" => String::new(),
                other => other.to_string(),
            };
            msg.target_host = (plugin != "smtp").then(|| "mx.example.com".to_string());
            msg.probe = Some(probe);
            msg.queue_id = format!("{:010X}", rng.random::<u64>() & 0xFF_FFFF_FFFF);
            let body = if probe {
                PROBE_BODY
                    .replace("{num}", &rng.random_range(1..20).to_string())
                    .into_bytes()
            } else {
                let b = pick(&body_cdf, &mut rng);
                body_cache
                    .entry(b)
                    .or_insert_with(|| template_body(b, b as u64 / TEMPLATES.len() as u64))
                    .clone()
            };
            w.message(&msg, &body)?;
            summary.messages += 1;
            summary.recipients += n_rcpt as u64;
        }
        if i % 4096 == 0 {
            pb.set_position(i);
        }
    }
    pb.set_message("writing indexes");
    summary.bodies = w.artifacts.len() as u64;
    w.finish()?;
    pb.finish_and_clear();
    let _ = std::io::stderr().flush();
    Ok(summary)
}
