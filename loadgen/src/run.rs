//! The two load modes: closed loop (N workers, sessions back to back) and
//! open loop (sessions started at a fixed rate, bounded in flight).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::campaign::Campaigns;
use crate::conn::Buffers;
use crate::dist::{Discrete, Recipients};
use crate::mix::{Mix, Scenario};
use crate::session::{self, Ctx, Targets};
use crate::stats::{Report, SessionReport, Stats};
use crate::wire::MYDOOM_MAGIC;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Mode {
    /// `concurrency` workers, each running sessions back to back.
    Closed { concurrency: usize },
    /// A session starts every 1/`rate` s; at most `max_inflight` run at once
    /// (arrivals past that are skipped and counted, not queued).
    Open { rate: f64, max_inflight: usize },
}

/// Everything a run needs (the CLI builds it; tests may too).
#[derive(Clone, Debug)]
pub struct Config {
    pub targets: Targets,
    pub mix: Mix,
    pub mode: Mode,
    /// No session starts after this; the hard bound of the run.
    pub duration: Duration,
    /// Stop after starting this many sessions (if it comes first).
    pub sessions: Option<u64>,
    /// Sessions still running `grace` after `duration` are cut off.
    pub grace: Duration,
    pub timeout: Duration,
    pub messages: Discrete,
    pub rcpts: Recipients,
    pub campaigns: usize,
    /// Share (0..=1) of messages that are exact repeats of their campaign's
    /// canonical copy.
    pub repeat_share: f64,
    pub body_bytes: usize,
    pub upload_bytes: usize,
    pub seed: u64,
    pub source_ips: u32,
}

impl Config {
    /// The scenarios whose target is missing are dropped from the mix
    /// (returned, for a warning); an empty result is an error.
    pub fn restrict_mix(&mut self) -> anyhow::Result<Vec<Scenario>> {
        let targets = self.targets.clone();
        let skipped = self.mix.restrict(|t| targets.get(t).is_some());
        if self.mix.total() <= 0.0 {
            anyhow::bail!(
                "no scenario of the mix has a target: give at least one of --smtp, --http, \
                 --socks, --mydoom, --sobig for the scenarios you weighted"
            );
        }
        Ok(skipped)
    }
}

fn build_ctx(cfg: &Config) -> Ctx {
    let mut rng = SmallRng::seed_from_u64(cfg.seed ^ 0x5EED);
    let uploads = (0..4)
        .map(|_| {
            let mut v = Vec::with_capacity(MYDOOM_MAGIC.len() + cfg.upload_bytes);
            v.extend_from_slice(&MYDOOM_MAGIC);
            v.resize(MYDOOM_MAGIC.len() + cfg.upload_bytes, 0);
            rng.fill(&mut v[MYDOOM_MAGIC.len()..]);
            v
        })
        .collect();
    let mut garbage = vec![0u8; 8192];
    rng.fill(&mut garbage[..]);
    Ctx {
        targets: cfg.targets.clone(),
        timeout: cfg.timeout,
        campaigns: Campaigns::new(cfg.campaigns, cfg.body_bytes, cfg.seed),
        rcpts: cfg.rcpts,
        messages: cfg.messages.clone(),
        repeat_share: cfg.repeat_share,
        uploads,
        garbage,
        source_ips: cfg.source_ips,
    }
}

fn worker_rng(seed: u64, i: u64) -> SmallRng {
    SmallRng::seed_from_u64(seed ^ i.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// Runs the load and returns the report. The mix must have been restricted
/// to the available targets ([`Config::restrict_mix`]).
pub async fn run(cfg: Config, skipped: Vec<Scenario>) -> anyhow::Result<Report> {
    let ctx = Arc::new(build_ctx(&cfg));
    let mix = Arc::new(cfg.mix.clone());
    let start = Instant::now();
    let deadline = start + cfg.duration;
    let hard = deadline + cfg.grace;
    let started = Arc::new(AtomicU64::new(0));
    let limit = cfg.sessions.unwrap_or(u64::MAX);
    let seed = cfg.seed;
    let mut total = Stats::default();
    let mut aborted = 0u64;
    let mut arrivals_skipped = 0u64;

    let mode_text = match cfg.mode {
        Mode::Closed { concurrency } => {
            let mut set = JoinSet::new();
            for w in 0..concurrency as u64 {
                let (ctx, mix, started) = (ctx.clone(), mix.clone(), started.clone());
                set.spawn(async move {
                    let mut rng = worker_rng(seed, w);
                    let mut bufs = Buffers::new();
                    let mut stats = Stats::default();
                    let mut rep = SessionReport::new(Scenario::Smtp);
                    while Instant::now() < deadline
                        && started.fetch_add(1, Ordering::Relaxed) < limit
                    {
                        rep.reset(mix.pick(&mut rng));
                        let fut = session::run(&ctx, &mut rng, &mut bufs, &mut rep);
                        if tokio::time::timeout_at(hard.into(), fut).await.is_err() {
                            return (stats, 1u64);
                        }
                        stats.record(&mut rep);
                    }
                    (stats, 0)
                });
            }
            while let Some(r) = set.join_next().await {
                let (s, a) = r?;
                total.merge(&s);
                aborted += a;
            }
            format!("closed loop, concurrency {concurrency}")
        }
        Mode::Open { rate, max_inflight } => {
            const SHARDS: usize = 8;
            let shards: Arc<Vec<Mutex<Stats>>> =
                Arc::new((0..SHARDS).map(|_| Mutex::new(Stats::default())).collect());
            let pool: Arc<Mutex<Vec<Buffers>>> = Arc::new(Mutex::new(Vec::new()));
            let sem = Arc::new(Semaphore::new(max_inflight));
            let mut set = JoinSet::new();
            let mut launched = 0u64;
            let tick = Duration::from_micros(((1e6 / rate) as u64).clamp(200, 1000));
            'arrivals: loop {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                let due = ((now - start).as_secs_f64() * rate) as u64 + 1;
                while launched < due {
                    if launched >= limit {
                        break 'arrivals;
                    }
                    launched += 1;
                    let Ok(permit) = sem.clone().try_acquire_owned() else {
                        arrivals_skipped += 1;
                        continue;
                    };
                    let i = launched;
                    let (ctx, mix, shards, pool) =
                        (ctx.clone(), mix.clone(), shards.clone(), pool.clone());
                    set.spawn(async move {
                        let mut rng = worker_rng(seed, i);
                        let mut bufs = pool
                            .lock()
                            .ok()
                            .and_then(|mut p| p.pop())
                            .unwrap_or_else(Buffers::new);
                        let mut rep = SessionReport::new(mix.pick(&mut rng));
                        session::run(&ctx, &mut rng, &mut bufs, &mut rep).await;
                        if let Ok(mut s) = shards[i as usize % SHARDS].lock() {
                            s.record(&mut rep);
                        }
                        if let Ok(mut p) = pool.lock() {
                            p.push(bufs);
                        }
                        drop(permit);
                    });
                }
                while set.try_join_next().is_some() {}
                tokio::time::sleep(tick).await;
            }
            // Let the sessions in flight finish, up to the hard deadline.
            loop {
                match tokio::time::timeout_at(hard.into(), set.join_next()).await {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(_) => {
                        aborted = set.len() as u64;
                        set.abort_all();
                        while set.join_next().await.is_some() {}
                        break;
                    }
                }
            }
            for s in shards.iter() {
                if let Ok(s) = s.lock() {
                    total.merge(&s);
                }
            }
            format!("open loop, {rate}/s, max in flight {max_inflight}")
        }
    };
    let elapsed = start.elapsed();
    Ok(Report::build(
        mode_text,
        elapsed,
        &total,
        &mix,
        arrivals_skipped,
        aborted,
        skipped.iter().map(|s| s.name()).collect(),
    ))
}
