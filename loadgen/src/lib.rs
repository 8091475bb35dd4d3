//! `spampot-loadgen`: a bounded, loopback-only traffic generator that plays
//! the abusers of CERT.br's SpamPots data (2006–2007) against a spampot
//! sensor — or against any SMTP server, such as Postfix's `smtp-sink`, for
//! comparison.
//!
//! # Usage
//! ```text
//! # the seed's mix against a sensor run with --port-offset 20000
//! spampot-loadgen --smtp 127.0.0.1:20025 --http 127.0.0.1:28080 \
//!     --socks 127.0.0.1:21080 --mydoom 127.0.0.1:23127 --sobig 127.0.0.1:23382 \
//!     --concurrency 32 --duration 10
//!
//! # direct SMTP only, open loop at 200 sessions/s, JSON report
//! spampot-loadgen --smtp 127.0.0.1:2525 --mix smtp=1 --rate 200 --json
//!
//! # exactly 1000 sessions, deterministic
//! spampot-loadgen --http 127.0.0.1:28080 --mix http-connect=1,judge=1 -n 1000 --seed 7
//! ```
//!
//! # The loopback rule
//! Every target (`--smtp`, `--http`, `--socks`, `--mydoom`, `--sobig`) must
//! be an IP literal with a port in 127.0.0.0/8 or `::1` (`[::1]:25`; an
//! IPv4-mapped `::ffff:127.x.y.z` counts as loopback). Anything else —
//! another address, or a host name, which is never resolved — is refused
//! when the command line is parsed, before any socket is opened
//! ([`addr::parse_loopback`]). Proxy requests *name* public hosts and
//! addresses (`mx1.yahoo.com.tw:25`), but the bytes go only to the loopback
//! target: a spampot proxy never connects anywhere, it splices to its own
//! SMTP emulator.
//!
//! # Scenarios
//! | name | target | what the client does | success |
//! | --- | --- | --- | --- |
//! | `http-connect` | `--http` | `CONNECT mx:25 HTTP/1.0` (MX name, or a public IPv4 30 % of the time), then SMTP | `200`, then SMTP below |
//! | `sobig` | `--sobig` | the same on Sobig.F's proxy | same |
//! | `socks4` | `--socks` | `04 01 0019 IP userid 00`, then SMTP | `00 5A ...` |
//! | `socks4a` | `--socks` | SOCKS 4A with an MX name, then SMTP | `00 5A ...` |
//! | `socks5` | `--socks` | `05 01 00`, CONNECT (domain or IPv4) to 25, then SMTP | `05 00`, `05 00 00 ...` |
//! | `socks5-auth` | `--socks` | `05 02 00 02`, then RFC 1929 user/password when `02` is chosen | `05 02`, `01 00`, `05 00 ...` |
//! | `mydoom-socks4` | `--mydoom` | MyDoom's SOCKS 4, then SMTP | `VN` 0 or 4 (the worm's echo), `5A` |
//! | `smtp` | `--smtp` | direct SMTP | — |
//! | `judge` | `--http` | `GET http://judge.example/azenv.php HTTP/1.1` | `200` with `REMOTE_ADDR` in the body |
//! | `connect-other` | `--http` | `CONNECT` to 443 or 6667 | a `4xx`/`5xx` refusal |
//! | `socks-other` | `--socks` | SOCKS 5 or 4 CONNECT to 443 or 6667 | `REP` ≠ 0 / `CD` ≠ `5A` |
//! | `malformed` | `--http` | 17–528 random bytes, first byte ≥ `0x80` | a `4xx` |
//! | `socks-malformed` | `--socks` | the same on the SOCKS port | closed without a reply |
//! | `mydoom` | `--mydoom` | `85 13 3C 9E A2` + `--upload-kib` KiB (4 variants), half-close | closed without a reply |
//!
//! The SMTP part: banner `220`; `EHLO` `250` (PIPELINING noted); per
//! session `--messages-per-session` messages (default 1 most of the time,
//! up to 5); per message `MAIL FROM`, `1 + Poisson(--rcpt-mean - 1)`
//! recipients (mean 9.2, as in the data) all `250`, `DATA` `354`, a message
//! of about `--body-bytes` from one of `--campaigns` templates (fixed body,
//! varied greeting, subject number, link token and Message-ID; a
//! `--repeat-share` of 25 % are the campaign's canonical copy, byte for
//! byte, for content deduplication) and `250`;
//! then `QUIT` `221`. With PIPELINING, `MAIL`, the `RCPT`s and `DATA` go in
//! one write and the replies are read in order; without it, one at a time.
//!
//! The default mix ([`mix::DEFAULT_MIX`]) follows the slides: SOCKS 37 %,
//! HTTP proxy ports 59 % (of which 97.6 % CONNECT to 25, 0.12 % elsewhere,
//! 0.25 % GET, 2 % errors), SMTP 1.5 %, MyDoom 1 %, Sobig.F 1 %; SOCKS
//! errors are 10.7 % of the SOCKS requests. Scenarios whose target is not
//! given are dropped from the mix with a warning.
//!
//! # Modes and bounds
//! - Closed loop (`--concurrency N`, default 32): N workers run sessions
//!   back to back.
//! - Open loop (`--rate R`): a session starts every 1/R s; at most
//!   `--max-inflight` run at once, and arrivals past that are skipped and
//!   counted (not queued, so a slow server cannot hide behind the queue).
//!
//! No session starts after `--duration` seconds (default 10) or after
//! `--sessions` sessions; those in flight then get `--grace` seconds
//! (default 2) before they are cut off and counted as aborted. Every
//! connect, read and write has `--timeout` (default 10 s).
//!
//! # Report
//! Sessions/s, messages/s, recipients, bytes, the latency percentiles
//! (p50/p90/p99/max) of connect → SMTP banner line (through the proxy
//! reply for proxied sessions), end of DATA → `250`, and whole sessions;
//! errors by stage (`connect`, `proxy`, `banner`, `ehlo`, `mail`, `rcpt`,
//! `data`, `message`, `quit`, `judge`, `refusal`, `malformed`, `upload`)
//! and kind (`refused`, `timeout`, `closed`, `reset`, `dropped` — accepted
//! then closed before any byte came back, as spampot treats connections
//! past `max_sessions_per_ip` —, `io`, `unexpected`, with the first
//! unexpected reply as a sample), and counts per scenario.
//! A table by default, JSON with `--json`.

pub mod addr;
pub mod campaign;
pub mod cli;
pub mod conn;
pub mod dist;
pub mod mix;
pub mod run;
pub mod session;
pub mod stats;
pub mod wire;

pub use cli::Args;
pub use run::{Config, Mode, run};
pub use stats::Report;

/// Parses, checks, runs and returns the report (for the binary and tests).
pub async fn run_args(args: &Args) -> anyhow::Result<Report> {
    let mut cfg = args.to_config()?;
    let skipped = cfg.restrict_mix()?;
    for s in &skipped {
        eprintln!(
            "warning: scenario `{}` skipped: no {} target",
            s.name(),
            s.target().flag()
        );
    }
    run::run(cfg, skipped).await
}
