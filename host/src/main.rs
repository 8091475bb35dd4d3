//! The `spampot` command line: run a sensor, check a config, export and
//! show captures.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::{Parser, Subcommand, ValueEnum};
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
            eprintln!("spampot: {err:#}");
            ExitCode::FAILURE
        }
    }
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
            config,
            port_offset,
            plugin_dir,
            data,
            grace_secs,
        } => {
            let mut config = Config::load(&config)?;
            if let Some(offset) = port_offset {
                config.port_offset = offset;
            }
            if let Some(dir) = plugin_dir {
                config.plugin_dir = std::path::absolute(dir)?;
            }
            if let Some(dir) = data {
                config.data_dir = std::path::absolute(dir)?;
            }
            raise_fd_limit();
            let runtime = tokio::runtime::Runtime::new().context("start the async runtime")?;
            runtime.block_on(serve(config, Duration::from_secs(grace_secs)))
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
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            store::export(&data, what, format, &mut out)?;
            std::io::Write::flush(&mut out)?;
            Ok(())
        }
        Command::Show {
            item: ShowItem::Message { sha256, data },
        } => {
            let stdout = std::io::stdout();
            let mut out = stdout.lock();
            store::show_message(&data, &sha256, &mut out)?;
            Ok(())
        }
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

async fn serve(config: Config, grace: Duration) -> Result<()> {
    let admin = config.admin.clone();
    let server = Server::start(config).await?;
    let (stop_admin, stop_rx) = tokio::sync::watch::channel(false);
    if admin.enabled {
        match spampot::admin::serve(server.sensor.clone(), admin.bind, stop_rx).await {
            Ok(addr) => tracing::info!("dashboard on http://{addr}/"),
            Err(err) => {
                tracing::error!(bind = %admin.bind, error = %err, "admin server not started")
            }
        }
    }
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
    server.shutdown(grace).await;
    let _ = stop_admin.send(true);
    tracing::info!("stopped");
    Ok(())
}
