//! Command-line options → [`Config`].

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

use crate::addr::parse_loopback;
use crate::dist::{Discrete, Recipients};
use crate::mix::{DEFAULT_MIX, Mix};
use crate::run::{Config, Mode};
use crate::session::Targets;

/// Loopback-only traffic generator that behaves like the open-proxy and
/// open-relay abusers of CERT.br's SpamPots data.
#[derive(Parser, Debug, Clone)]
#[command(name = "spampot-loadgen", version, about, long_about = None)]
pub struct Args {
    /// SMTP relay (direct `smtp` scenario), e.g. 127.0.0.1:20025
    #[arg(long, value_parser = parse_loopback)]
    pub smtp: Option<SocketAddr>,
    /// HTTP proxy (http-connect, judge, connect-other, malformed)
    #[arg(long, value_parser = parse_loopback)]
    pub http: Option<SocketAddr>,
    /// SOCKS 4/4a/5 proxy (socks4, socks4a, socks5, socks5-auth, socks-other, socks-malformed)
    #[arg(long, value_parser = parse_loopback)]
    pub socks: Option<SocketAddr>,
    /// MyDoom backdoor (mydoom upload, mydoom-socks4)
    #[arg(long, value_parser = parse_loopback)]
    pub mydoom: Option<SocketAddr>,
    /// Sobig.F HTTP proxy (sobig)
    #[arg(long, value_parser = parse_loopback)]
    pub sobig: Option<SocketAddr>,

    /// Scenario weights, name=weight,... (unnamed scenarios get 0).
    /// Default: the SpamPots traffic mix.
    #[arg(long, default_value = DEFAULT_MIX, hide_default_value = true)]
    pub mix: String,

    /// Closed loop: this many workers, each running sessions back to back
    #[arg(long, short = 'c', default_value_t = 32)]
    pub concurrency: usize,
    /// Open loop: start this many sessions per second (overrides --concurrency)
    #[arg(long, short = 'r')]
    pub rate: Option<f64>,
    /// Open loop: at most this many sessions at once (later arrivals are skipped and counted)
    #[arg(long, default_value_t = 200)]
    pub max_inflight: usize,

    /// Seconds during which sessions are started (the hard bound of every run)
    #[arg(long, short = 'd', default_value_t = 10.0)]
    pub duration: f64,
    /// Stop after this many sessions (within --duration)
    #[arg(long, short = 'n')]
    pub sessions: Option<u64>,
    /// Seconds that sessions in flight get after --duration before they are cut off
    #[arg(long, default_value_t = 2.0)]
    pub grace: f64,
    /// Seconds allowed for every connect, read and write
    #[arg(long, default_value_t = 10.0)]
    pub timeout: f64,

    /// Messages per SMTP session: N, or count=weight,...
    #[arg(long, default_value = "1=80,2=10,3=5,4=3,5=2")]
    pub messages_per_session: String,
    /// Mean recipients per message (1 + Poisson(mean - 1))
    #[arg(long, default_value_t = 9.2)]
    pub rcpt_mean: f64,
    /// Cap on recipients per message
    #[arg(long, default_value_t = 100)]
    pub rcpt_max: u32,
    /// Number of spam campaigns (message templates)
    #[arg(long, default_value_t = 8)]
    pub campaigns: usize,
    /// Share (0..=1) of messages sent as their campaign's canonical copy
    /// (exact repeats, for content deduplication); the others vary a little
    #[arg(long, default_value_t = 0.25)]
    pub repeat_share: f64,
    /// Approximate message size in bytes
    #[arg(long, default_value_t = 5000)]
    pub body_bytes: usize,
    /// MyDoom upload size in KiB
    #[arg(long, default_value_t = 32)]
    pub upload_kib: usize,

    /// Spread IPv4 connections over this many source addresses in 127.0.0.0/16
    /// (1: the kernel's choice, usually 127.0.0.1)
    #[arg(long, default_value_t = 1)]
    pub source_ips: u32,
    /// Runtime worker threads (default: one per core)
    #[arg(long)]
    pub threads: Option<usize>,
    /// Random seed (default: from the clock)
    #[arg(long)]
    pub seed: Option<u64>,
    /// Print the report as JSON instead of a table
    #[arg(long)]
    pub json: bool,
}

fn secs(name: &str, v: f64, max: f64) -> anyhow::Result<Duration> {
    if !v.is_finite() || v <= 0.0 || v > max {
        anyhow::bail!("--{name} must be in (0, {max}] seconds, got {v}");
    }
    Ok(Duration::from_secs_f64(v))
}

impl Args {
    pub fn to_config(&self) -> anyhow::Result<Config> {
        let mix = Mix::parse(&self.mix).map_err(|e| anyhow::anyhow!("--mix: {e}"))?;
        let mode = match self.rate {
            Some(rate) => {
                if !rate.is_finite() || rate <= 0.0 || rate > 1e6 {
                    anyhow::bail!("--rate must be in (0, 1000000] sessions/s, got {rate}");
                }
                if self.max_inflight == 0 || self.max_inflight > 100_000 {
                    anyhow::bail!("--max-inflight must be in 1..=100000");
                }
                Mode::Open {
                    rate,
                    max_inflight: self.max_inflight,
                }
            }
            None => {
                if self.concurrency == 0 || self.concurrency > 100_000 {
                    anyhow::bail!("--concurrency must be in 1..=100000");
                }
                Mode::Closed {
                    concurrency: self.concurrency,
                }
            }
        };
        if self.sessions == Some(0) {
            anyhow::bail!("--sessions must be at least 1");
        }
        if self.campaigns == 0 || self.campaigns > 10_000 {
            anyhow::bail!("--campaigns must be in 1..=10000");
        }
        if !(0.0..=1.0).contains(&self.repeat_share) {
            anyhow::bail!("--repeat-share must be in 0..=1, got {}", self.repeat_share);
        }
        if self.body_bytes > 64 << 20 {
            anyhow::bail!("--body-bytes must be at most 64 MiB");
        }
        if self.upload_kib > 64 << 10 {
            anyhow::bail!("--upload-kib must be at most 65536");
        }
        if self.source_ips == 0 || self.source_ips > 60_000 {
            anyhow::bail!("--source-ips must be in 1..=60000");
        }
        let seed = self.seed.unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
        Ok(Config {
            targets: Targets {
                smtp: self.smtp,
                http: self.http,
                socks: self.socks,
                mydoom: self.mydoom,
                sobig: self.sobig,
            },
            mix,
            mode,
            duration: secs("duration", self.duration, 86_400.0)?,
            sessions: self.sessions,
            grace: Duration::from_secs_f64(if self.grace.is_finite() {
                self.grace.clamp(0.0, 600.0)
            } else {
                2.0
            }),
            timeout: secs("timeout", self.timeout, 3600.0)?,
            messages: Discrete::parse(&self.messages_per_session)
                .map_err(|e| anyhow::anyhow!("--messages-per-session: {e}"))?,
            rcpts: Recipients::new(self.rcpt_mean, self.rcpt_max).map_err(anyhow::Error::msg)?,
            campaigns: self.campaigns,
            repeat_share: self.repeat_share,
            body_bytes: self.body_bytes,
            upload_bytes: self.upload_kib * 1024,
            seed,
            source_ips: self.source_ips,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("spampot-loadgen").chain(args.iter().copied()))
    }

    #[test]
    fn refuses_non_loopback_targets() {
        let e = parse(&["--smtp", "10.0.0.1:25"]).unwrap_err().to_string();
        assert!(e.contains("not a loopback address"), "{e}");
        let e = parse(&["--http", "proxy.example:8080"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("hostnames are refused"), "{e}");
        assert!(parse(&["--socks", "[::1]:1080"]).is_ok());
    }

    #[test]
    fn config_checks() {
        let a = parse(&["--smtp", "127.0.0.1:25", "--mix", "smtp=1,bogus=2"]).unwrap();
        let e = a.to_config().unwrap_err().to_string();
        assert!(e.contains("--mix: unknown scenario `bogus`"), "{e}");
        let a = parse(&["--smtp", "127.0.0.1:25", "--rate", "0"]).unwrap();
        assert!(a.to_config().is_err());
        let a = parse(&["--smtp", "127.0.0.1:25", "--duration", "0"]).unwrap();
        assert!(a.to_config().is_err());
        let a = parse(&["--smtp", "127.0.0.1:25", "--rate", "50", "-n", "10"]).unwrap();
        let c = a.to_config().unwrap();
        assert!(matches!(c.mode, Mode::Open { rate, .. } if rate == 50.0));
        assert_eq!(c.sessions, Some(10));
    }

    #[test]
    fn missing_targets_are_dropped_from_the_mix() {
        let a = parse(&["--smtp", "127.0.0.1:25"]).unwrap();
        let mut c = a.to_config().unwrap();
        let skipped = c.restrict_mix().unwrap();
        assert!(skipped.contains(&crate::mix::Scenario::HttpConnect));
        let a = parse(&["--smtp", "127.0.0.1:25", "--mix", "socks5=1"]).unwrap();
        let mut c = a.to_config().unwrap();
        assert!(c.restrict_mix().is_err());
    }
}
