//! The `spampot` command line: run a sensor, check a config, export and
//! show captures.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand, ValueEnum};
use spampot::server::Overrides;
use spampot::store::{self, ExportFormat, ExportWhat};
use spampot::{Config, Server};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Parser)]
#[command(
    name = "spampot",
    version,
    about = "A honeypot for open proxy and open relay abuse"
)]
struct Cli {
    /// Log format on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Human, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the sensor: listeners, plugins, store and the admin dashboard.
    Run {
        /// The sensor's config file.
        #[arg(long, short, default_value = "spampot.toml")]
        config: PathBuf,
        /// Add this to every listener port (run unprivileged: 25 → 10025).
        #[arg(long)]
        port_offset: Option<u16>,
        /// Override the config's plugin directory.
        #[arg(long)]
        plugin_dir: Option<PathBuf>,
        /// Override the config's data directory.
        #[arg(long)]
        data: Option<PathBuf>,
        /// Seconds that running sessions get to finish on SIGTERM.
        #[arg(long, default_value_t = 10)]
        grace_secs: u64,
    },
    /// Show a running sensor's status (from its admin API).
    Status {
        #[command(flatten)]
        admin: AdminArgs,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check several sensors at once (from a fleet file): which are down,
    /// which ports do not listen, whose clock or disk needs attention.
    /// Exits 1 if any sensor has a problem, so a cron job can alert.
    Fleet {
        /// The fleet file: a [[sensor]] table per sensor (name, admin, token).
        #[arg(long)]
        sensors: PathBuf,
        /// Print every sensor's health and status as JSON.
        #[arg(long)]
        json: bool,
        /// The collector's data directory (`spampot collect --data`): also
        /// check when each sensor was last pulled, and whether that failed.
        #[arg(long)]
        collector: Option<PathBuf>,
    },
    /// Pull the captures of several sensors (from a fleet file) into one
    /// data directory, so one `spampot report` covers them all. Each sensor
    /// needs an [admin] token; the cursors are kept in DATA/collector.json.
    /// Exits 1 if a sensor could not be pulled.
    Collect {
        /// The fleet file: a [[sensor]] table per sensor (name, admin, token).
        #[arg(long)]
        sensors: PathBuf,
        /// The collector's own data directory (created if missing).
        #[arg(long)]
        data: PathBuf,
        /// Pull again every this many seconds until SIGINT or SIGTERM,
        /// instead of once.
        #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
        every: Option<u64>,
        /// After each pass, write the HTML report over every sensor to this
        /// file (replaced whole, so a web server can serve it as it is).
        #[arg(long)]
        html: Option<PathBuf>,
        /// Pull this sensor from its beginning: forget the collector's cursor
        /// for it first. For a sensor whose data directory is new; the rows
        /// of one that still has its old data would be stored twice.
        /// Repeatable.
        #[arg(long = "start-over", value_name = "SENSOR")]
        start_over: Vec<String>,
    },
    /// Control a running sensor: listeners, plugins, config.
    Ctl {
        #[command(flatten)]
        admin: AdminArgs,
        #[command(subcommand)]
        action: CtlAction,
    },
    /// Report on a data directory: the SpamPots tables (summary, emails per
    /// ASN and country, TCP ports, request types, months), enrichment, and
    /// an analysis of the captured bodies. See docs/report.md.
    Report {
        #[arg(long, default_value = "data")]
        data: PathBuf,
        #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
        format: ReportFormat,
        /// Only this section (table, csv and json formats): summary, probes,
        /// top_asns, top_ccs, ports, request_types, monthly, daily,
        /// sender_domains, recipient_domains, body_domains, campaigns,
        /// languages, body_analysis.
        #[arg(long)]
        table: Option<String>,
        /// From this time on (inclusive): RFC 3339 or YYYY-MM-DD (00:00 UTC).
        #[arg(long)]
        since: Option<String>,
        /// Up to this time: RFC 3339 (exclusive) or YYYY-MM-DD (that day included).
        #[arg(long)]
        until: Option<String>,
        /// Only this sensor's captures.
        #[arg(long)]
        sensor: Option<String>,
        /// Rows of the top-N tables.
        #[arg(long, default_value_t = 10)]
        top: usize,
        /// iptoasn IPv4 TSV [default: <data>/ip2asn-v4.tsv if present].
        #[arg(long)]
        ip2asn_v4: Option<PathBuf>,
        /// iptoasn IPv6 TSV [default: <data>/ip2asn-v6.tsv if present].
        #[arg(long)]
        ip2asn_v6: Option<PathBuf>,
        /// MaxMind ASN database [default: <data>/GeoLite2-ASN.mmdb if present].
        #[arg(long)]
        mmdb_asn: Option<PathBuf>,
        /// MaxMind Country or City database [default: <data>/GeoLite2-Country.mmdb
        /// or GeoLite2-City.mmdb if present].
        #[arg(long)]
        mmdb_country: Option<PathBuf>,
        /// Analyze at most this many distinct bodies (the most frequent).
        #[arg(long, default_value_t = 200_000)]
        max_bodies: usize,
        /// Write the report to this file instead of stdout.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Write a synthetic data directory (tests and benchmarks).
    #[command(hide = true)]
    GenFixture {
        #[arg(long)]
        data: PathBuf,
        #[arg(long)]
        sessions: u64,
        #[arg(long)]
        messages: u64,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// First day of the period (YYYY-MM-DD).
        #[arg(long, default_value = "2026-01-01")]
        start: String,
        /// Length of the period in days.
        #[arg(long, default_value_t = 180)]
        days: u32,
        /// Distinct source addresses [default: messages / 20, 50..=200000].
        #[arg(long)]
        ips: Option<usize>,
    },
    /// Check a config file and print the listeners it defines.
    CheckConfig { config: PathBuf },
    /// Stream captured events or messages out of a data directory.
    Export {
        #[arg(long)]
        data: PathBuf,
        #[arg(long, value_enum, default_value_t = What::Events)]
        what: What,
        #[arg(long, value_enum, default_value_t = Format::Jsonl)]
        format: Format,
    },
    /// Print one captured item.
    Show {
        #[command(subcommand)]
        item: ShowItem,
    },
    /// Read back every stored body and check it against its SHA-256; the
    /// exit status is 1 if any is missing or damaged.
    Verify {
        #[arg(long)]
        data: PathBuf,
    },
}

/// Where the sensor's admin API is.
#[derive(clap::Args)]
struct AdminArgs {
    /// The admin API's address ([admin] bind of the sensor's config).
    #[arg(long, default_value = "127.0.0.1:8025")]
    admin: std::net::SocketAddr,
    /// Bearer token ([admin] token), if the sensor has one.
    #[arg(long, env = "SPAMPOT_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// The SHA-256 of the sensor's certificate, when it serves [admin] tls
    /// (the sensor logs it at start): speak HTTPS and trust only that one.
    #[arg(long, env = "SPAMPOT_ADMIN_FINGERPRINT")]
    tls_fingerprint: Option<spampot::tls::Fingerprint>,
}

#[derive(Subcommand)]
enum CtlAction {
    /// List listeners and plugins.
    List,
    /// Start accepting on a port again.
    Enable { port: u16 },
    /// Stop accepting on a port; running sessions finish.
    Disable {
        port: u16,
        /// End the port's running sessions too.
        #[arg(long)]
        now: bool,
    },
    /// Serve another (loaded) plugin on a port, from the next connection on.
    Map { port: u16, plugin: String },
    /// Read the config file again (same as SIGHUP).
    Reload,
}

#[derive(Subcommand)]
enum ShowItem {
    /// A captured message: envelope, then the raw message.
    Message {
        /// SHA-256 of the message (or a unique prefix of at least 8 hex digits).
        sha256: String,
        #[arg(long, default_value = "data")]
        data: PathBuf,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum ReportFormat {
    Table,
    Json,
    Csv,
    Html,
}

#[derive(Clone, Copy, ValueEnum)]
enum What {
    Events,
    Messages,
}

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    Jsonl,
    Csv,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("spampot: {}", describe(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes, `: `-joined, each said once: the library's
/// errors name their cause in their own message already.
fn describe(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,wasmtime=warn,cranelift=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn run(command: Command) -> Result<()> {
    match command {
        Command::Run {
            config: path,
            port_offset,
            plugin_dir,
            data,
            grace_secs,
        } => {
            let overrides = Overrides {
                port_offset,
                plugin_dir: plugin_dir.map(std::path::absolute).transpose()?,
                data_dir: data.map(std::path::absolute).transpose()?,
            };
            let mut config = Config::load(&path)?;
            overrides.apply(&mut config);
            raise_fd_limit();
            let runtime = tokio::runtime::Runtime::new().context("start the async runtime")?;
            runtime.block_on(serve(
                config,
                (path, overrides),
                Duration::from_secs(grace_secs),
            ))
        }
        Command::Status { admin, json } => {
            let status = admin_request(&admin, "GET", "/status")?;
            if json {
                println!("{}", serde_json::to_string_pretty(&status)?);
            } else {
                print_status(&status);
            }
            Ok(())
        }
        Command::Fleet {
            sensors,
            json,
            collector,
        } => {
            let fleet = spampot::fleet::Fleet::load(&sensors)?;
            let passes = collector
                .as_deref()
                .map(spampot::collector::read_passes)
                .transpose()?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let mut health = runtime.block_on(spampot::fleet::check(&fleet));
            if let Some(passes) = &passes {
                spampot::fleet::assess_pulls(&fleet, &mut health, passes, chrono::Utc::now());
            }
            if json {
                println!("{}", serde_json::to_string_pretty(&health)?);
            } else {
                print_fleet(&health);
            }
            let sick = health.iter().filter(|h| !h.healthy()).count();
            if sick > 0 {
                anyhow::bail!("{sick} of {} sensors need attention", health.len());
            }
            Ok(())
        }
        Command::Collect {
            sensors,
            data,
            every,
            html,
            start_over,
        } => {
            let fleet = spampot::fleet::Fleet::load(&sensors)?;
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(collect(&fleet, &data, every, html.as_deref(), &start_over))
        }
        Command::Ctl { admin, action } => {
            let (method, path) = match &action {
                CtlAction::List => ("GET", "/status".to_string()),
                CtlAction::Enable { port } => ("POST", format!("/listeners/{port}/enable")),
                CtlAction::Disable { port, now } => {
                    ("POST", format!("/listeners/{port}/disable?now={now}"))
                }
                CtlAction::Map { port, plugin } => {
                    if !spampot::config::is_plugin_name(plugin) {
                        anyhow::bail!(
                            "{plugin:?} is not a plugin name (letters, digits, '-' and '_')"
                        );
                    }
                    ("POST", format!("/listeners/{port}/map?plugin={plugin}"))
                }
                CtlAction::Reload => ("POST", "/reload".to_string()),
            };
            let answer = admin_request(&admin, method, &path)?;
            match action {
                CtlAction::List => print_status(&answer),
                _ => println!("{}", serde_json::to_string_pretty(&answer)?),
            }
            Ok(())
        }
        Command::Report {
            data,
            format,
            table,
            since,
            until,
            sensor,
            top,
            ip2asn_v4,
            ip2asn_v6,
            mmdb_asn,
            mmdb_country,
            max_bodies,
            output,
        } => {
            catch_up(&data);
            let mut opts = spampot_report::ReportOptions::new(data);
            opts.since = since;
            opts.until = until;
            opts.sensor = sensor;
            opts.top = top;
            opts.max_bodies = max_bodies;
            opts.progress = true;
            opts.enrichment = spampot_report::EnrichmentPaths {
                ip2asn_v4,
                ip2asn_v6,
                mmdb_asn,
                mmdb_country,
            };
            let format = match format {
                ReportFormat::Table => spampot_report::Format::Table,
                ReportFormat::Json => spampot_report::Format::Json,
                ReportFormat::Csv => spampot_report::Format::Csv,
                ReportFormat::Html => spampot_report::Format::Html,
            };
            if format == spampot_report::Format::Html && table.is_some() {
                anyhow::bail!("--table does not apply to --format html");
            }
            let report = spampot_report::build_report(&opts)?;
            match output {
                Some(path) => {
                    let file = std::fs::File::create(&path)
                        .with_context(|| format!("create {}", path.display()))?;
                    let mut out = std::io::BufWriter::new(file);
                    spampot_report::render(&report, format, table.as_deref(), &mut out)?;
                    std::io::Write::flush(&mut out)?;
                }
                None => {
                    let stdout = std::io::stdout();
                    let mut out = std::io::BufWriter::new(stdout.lock());
                    spampot_report::render(&report, format, table.as_deref(), &mut out)?;
                    std::io::Write::flush(&mut out)?;
                }
            }
            Ok(())
        }
        Command::GenFixture {
            data,
            sessions,
            messages,
            seed,
            start,
            days,
            ips,
        } => {
            let mut opts = spampot_report::fixture::FixtureOptions::new(sessions, messages);
            opts.seed = seed;
            opts.start = chrono::NaiveDate::parse_from_str(&start, "%Y-%m-%d")
                .with_context(|| format!("--start {start:?}: expected YYYY-MM-DD"))?;
            opts.days = days;
            opts.ips = ips;
            opts.progress = true;
            let summary = spampot_report::fixture::generate(&data, &opts)?;
            println!("{}", serde_json::to_string_pretty(&summary)?);
            Ok(())
        }
        Command::CheckConfig { config } => {
            let config = Config::load(&config)?;
            for l in &config.listeners {
                println!(
                    "{}:{} -> {}{}",
                    l.bind,
                    l.port.get_ref() + config.port_offset,
                    l.plugin.get_ref(),
                    if l.enabled { "" } else { " (disabled)" }
                );
            }
            println!("config ok");
            Ok(())
        }
        Command::Export { data, what, format } => {
            let what = match what {
                What::Events => ExportWhat::Events,
                What::Messages => ExportWhat::Messages,
            };
            let format = match format {
                Format::Jsonl => ExportFormat::Jsonl,
                Format::Csv => ExportFormat::Csv,
            };
            catch_up(&data);
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            store::export(&data, what, format, &mut out)?;
            std::io::Write::flush(&mut out)?;
            Ok(())
        }
        Command::Verify { data } => verify(&data),
        Command::Show {
            item: ShowItem::Message { sha256, data },
        } => {
            catch_up(&data);
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            store::show_message(&data, &sha256, &mut out)?;
            Ok(())
        }
    }
}

/// `spampot verify`: every failure on stdout as it is found, then a summary;
/// an error (exit status 1) if anything failed.
fn verify(data: &std::path::Path) -> Result<()> {
    catch_up(data);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let found = store::verify(data, &mut out)?;
    let checked = found.intact + found.failed;
    println!(
        "{checked} stored bodies checked: {} intact ({:.1} MiB as received), {} missing or damaged; {} recorded over quota (no body)",
        found.intact,
        found.bytes as f64 / (1 << 20) as f64,
        found.failed,
        found.not_stored
    );
    if found.failed > 0 {
        anyhow::bail!(
            "{} of {checked} stored bodies in {} failed verification (listed above)",
            found.failed,
            data.display()
        );
    }
    Ok(())
}

/// Before an offline command reads `data`: replay what a sensor that
/// stopped without indexing it left in the journal. Reading goes on either
/// way; without the replay the last batches before the stop are missing.
fn catch_up(data: &std::path::Path) {
    let replay = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(store::StoreError::Thread)
        .and_then(|rt| rt.block_on(store::catch_up(data)));
    match replay {
        Ok(store::CatchUp::Replayed) => tracing::info!(
            data = %data.display(),
            "replayed the journal: artifacts acknowledged before the sensor stopped are in the database now"
        ),
        Ok(store::CatchUp::UpToDate | store::CatchUp::SensorRunning) => {}
        Err(e) => tracing::warn!(
            data = %data.display(),
            "cannot replay the journal ({e}); artifacts acknowledged just before the sensor stopped are missing until it starts again"
        ),
    }
}

/// Each session holds a socket: lift the soft descriptor limit to the hard
/// one, so `limits.max_sessions` (10,000 by default) is reachable.
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit on a local struct.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// One request to a running sensor's admin API.
fn admin_request(admin: &AdminArgs, method: &str, path: &str) -> Result<serde_json::Value> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let endpoint = spampot::ctl::Endpoint {
        addr: admin.admin,
        tls: admin.tls_fingerprint,
    };
    Ok(runtime.block_on(spampot::ctl::request(
        endpoint,
        method,
        path,
        admin.token.as_deref(),
    ))?)
}

/// `spampot collect`: one pass, or one every `every` seconds until a signal.
async fn collect(
    fleet: &spampot::fleet::Fleet,
    data: &Path,
    every: Option<u64>,
    html: Option<&Path>,
    start_over: &[String],
) -> Result<()> {
    let mut collector = spampot::collector::Collector::open(data).with_context(|| {
        format!(
            "cannot open the collector's data directory {}",
            data.display()
        )
    })?;
    // With the data directory locked: no running collector moves the
    // cursor back after this.
    for name in start_over {
        match collector.start_over(fleet, name) {
            Ok(true) => println!("{name}: cursor forgotten, pulled from its beginning"),
            Ok(false) => println!("{name}: no cursor yet, pulled from its beginning"),
            Err(e) => {
                collector.close().await;
                return Err(e).context("--start-over");
            }
        }
    }
    let mut term = signal(SignalKind::terminate())?;
    let failed = loop {
        let pulled = collector.pull_all(fleet).await;
        print_pulled(&pulled);
        let failed = pulled.iter().filter(|p| p.error.is_some()).count();
        // Everything pulled is indexed by now (each page ends with a flush).
        if let Some(path) = html {
            match write_html_report(data, path) {
                Ok(()) => tracing::info!(path = %path.display(), "report written"),
                Err(e) if every.is_some() => tracing::warn!("report not written: {e:#}"),
                Err(e) => {
                    collector.close().await;
                    return Err(e);
                }
            }
        }
        let Some(secs) = every else { break failed };
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(secs)) => {}
            _ = tokio::signal::ctrl_c() => break 0,
            _ = term.recv() => break 0,
        }
    };
    collector.close().await;
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {} sensors could not be pulled",
            fleet.sensors.len()
        );
    }
    Ok(())
}

/// The HTML report over a data directory, written to a temporary file and
/// renamed over `path`, so a reader never sees half a page.
fn write_html_report(data: &Path, path: &Path) -> Result<()> {
    let report =
        spampot_report::build_report(&spampot_report::ReportOptions::new(data.to_path_buf()))?;
    let tmp = path.with_extension("html.tmp");
    let file = std::fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
    let mut out = std::io::BufWriter::new(file);
    spampot_report::render(&report, spampot_report::Format::Html, None, &mut out)?;
    std::io::Write::flush(&mut out)?;
    std::fs::rename(&tmp, path).with_context(|| format!("rename to {}", path.display()))?;
    Ok(())
}

/// A line per sensor: what came in, or why it stopped.
fn print_pulled(pulled: &[spampot::collector::Pulled]) {
    println!(
        "{:<16} {:>10} {:>10} {:>8} {:>8}  state",
        "sensor", "events", "messages", "uploads", "bodies"
    );
    for p in pulled {
        let mut state = match &p.error {
            Some(e) => format!("FAILED: {e}"),
            None => "ok".into(),
        };
        if p.without_body > 0 {
            state += &format!(
                "; {} without a body (over the sensor's quota)",
                p.without_body
            );
        }
        if p.bodies_lost > 0 {
            state += &format!(
                "; {} bodies lost on the sensor (see its `spampot verify`)",
                p.bodies_lost
            );
        }
        if p.behind {
            let left = spampot::collector::left_to_pull(p.messages_left);
            state += &format!("; {left} (page limit of a pass)");
        }
        println!(
            "{:<16} {:>10} {:>10} {:>8} {:>8}  {state}",
            p.name, p.events, p.messages, p.sightings, p.bodies_fetched
        );
    }
}

/// A line per sensor, then its problems.
fn print_fleet(health: &[spampot::fleet::SensorHealth]) {
    println!(
        "{:<16} {:<22} {:<5} {:>10} {:>8} {:>10} {:>10} {:>10} {:>10}",
        "sensor", "admin", "state", "uptime", "skew", "sessions", "messages", "free disk", "pulled"
    );
    for h in health {
        let state = match (&h.status, h.healthy()) {
            (None, _) => "DOWN",
            (Some(_), true) => "ok",
            (Some(_), false) => "WARN",
        };
        let s = h.status.as_ref();
        let field = |f: &dyn Fn(&serde_json::Value) -> Option<String>| {
            s.and_then(f).unwrap_or_else(|| "-".into())
        };
        println!(
            "{:<16} {:<22} {:<5} {:>10} {:>8} {:>10} {:>10} {:>10} {:>10}",
            h.name,
            h.admin.to_string(),
            state,
            field(&|s| s["uptime_secs"].as_u64().map(|u| format!(
                "{}h{:02}m",
                u / 3600,
                u % 3600 / 60
            ))),
            h.clock_skew_secs
                // No "-0.0s" for a clock that agrees.
                .map(|k| format!("{:+.1}s", if k.abs() < 0.05 { 0.0 } else { k }))
                .unwrap_or_else(|| "-".into()),
            field(&|s| s["counters"]["sessions"].as_u64().map(|n| n.to_string())),
            field(&|s| s["counters"]["messages"].as_u64().map(|n| n.to_string())),
            field(&|s| s["store"]["free_disk_bytes"]
                .as_u64()
                .map(|b| format!("{} GiB", b >> 30))),
            // How long ago the collector last pulled it whole (--collector).
            h.pulled_secs_ago
                .map(|a| format!("{} ago", spampot::fleet::human_age(a)))
                .unwrap_or_else(|| "-".into()),
        );
        for p in &h.problems {
            println!("    - {p}");
        }
    }
}

/// A human summary of `/status`.
fn print_status(s: &serde_json::Value) {
    let text = |v: &serde_json::Value| v.as_str().unwrap_or("?").to_owned();
    println!(
        "spampot {} · sensor {} · up {} s · clock {}",
        text(&s["version"]),
        text(&s["sensor"]),
        s["uptime_secs"],
        text(&s["clock"]["utc"])
    );
    println!("\nlisteners:");
    for l in s["listeners"].as_array().into_iter().flatten() {
        let state = if l["bound"].is_string() {
            format!("serving on {}", text(&l["bound"]))
        } else if l["enabled"] == true {
            format!("NOT BOUND: {}", text(&l["error"]))
        } else {
            "disabled".into()
        };
        println!(
            "  {:>5}  {:<12} {:<36} {} now, {} total",
            l["port"],
            text(&l["plugin"]),
            state,
            l["sessions_now"],
            l["sessions_total"]
        );
    }
    println!("\nplugins:");
    for p in s["plugins"].as_array().into_iter().flatten() {
        let sha = text(&p["sha256"]);
        println!(
            "  {:<12} {:<8} {}  loaded {}",
            text(&p["name"]),
            text(&p["version"]),
            &sha[..sha.len().min(12)],
            text(&p["loaded_at"])
        );
    }
    let c = &s["counters"];
    println!(
        "\nsessions {} ({} now) · messages {} · recipients {} · traps {} · refused {}",
        c["sessions"],
        c["sessions_active"],
        c["messages"],
        c["recipients"],
        c["traps"],
        c["refused"]
    );
    println!(
        "store {} bytes (quota {}) · {} bytes free on disk",
        s["store"]["size_bytes"], s["store"]["quota_bytes"], s["store"]["free_disk_bytes"]
    );
}

async fn serve(config: Config, source: (PathBuf, Overrides), grace: Duration) -> Result<()> {
    let admin = config.admin.clone();
    // Before the first listener: a key pair that cannot be read is a
    // config error, not a sensor that serves without its admin API.
    let tls = if admin.enabled && admin.tls {
        let cert = admin.tls_cert.as_ref().map(|p| config.resolve(p));
        let key = admin.tls_key.as_ref().map(|p| config.resolve(p));
        let pair = cert.as_deref().zip(key.as_deref());
        let data_dir = config.resolve(&config.data_dir);
        Some(spampot::tls::server_identity(&data_dir, pair).context("[admin] tls")?)
    } else {
        if admin.enabled && !admin.bind.ip().is_loopback() {
            tracing::warn!(bind = %admin.bind, "the admin API is reachable from the network without [admin] tls: its token and the captures it serves cross the network in clear");
        }
        None
    };
    let server = Server::start_with(config, Some(source)).await?;
    let (stop_admin, stop_rx) = tokio::sync::watch::channel(false);
    if admin.enabled {
        let token = admin.token.clone();
        let fingerprint = tls.as_ref().map(|t| t.fingerprint);
        let config = tls.map(|t| t.config);
        match spampot::admin::serve(server.clone(), admin.bind, token, config, stop_rx).await {
            Ok(addr) => match fingerprint {
                Some(fp) => tracing::info!("dashboard on https://{addr}/ (certificate {fp})"),
                None => tracing::info!("dashboard on http://{addr}/"),
            },
            Err(err) => {
                tracing::error!(bind = %admin.bind, error = %err, "admin server not started")
            }
        }
    }
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    loop {
        tokio::select! {
            _ = term.recv() => {
                tracing::info!("SIGTERM: shutting down");
                break;
            }
            _ = int.recv() => {
                tracing::info!("SIGINT: shutting down");
                break;
            }
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the config");
                if let Err(err) = server.reload().await {
                    tracing::error!(error = %err, "reload failed; the running config stays");
                }
            }
        }
    }
    server.shutdown(grace).await;
    let _ = stop_admin.send(true);
    tracing::info!("stopped");
    Ok(())
}
