//! Token buckets: connections per source address, and bytes per session and
//! per sensor — the ALTQ queueing of the seed's sensors, so a honeypot on a
//! residential line never saturates it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A classic token bucket: `rate` tokens a second, at most `burst` saved.
#[derive(Debug, Clone)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    fn full(burst: f64) -> Bucket {
        Bucket {
            tokens: burst,
            last: Instant::now(),
        }
    }

    fn refill(&mut self, rate: f64, burst: f64) {
        let now = Instant::now();
        let elapsed = now.duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(burst);
        self.last = now;
    }
}

/// New connections per source address per minute (0 = unlimited).
pub struct RateLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<IpAddr, Bucket>>,
}

/// Addresses tracked before idle buckets are swept: bounds memory under a
/// scan from many sources.
const MAX_TRACKED: usize = 100_000;

impl RateLimiter {
    pub fn per_minute(per_minute: u32) -> RateLimiter {
        RateLimiter {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `ip` may open one more connection now.
    pub fn allow(&self, ip: IpAddr) -> bool {
        if self.per_minute == 0 {
            return true;
        }
        let burst = f64::from(self.per_minute);
        let rate = burst / 60.0;
        let mut buckets = self.buckets.lock().expect("rate lock");
        if buckets.len() >= MAX_TRACKED {
            // A full bucket holds no state worth keeping.
            buckets.retain(|_, b| {
                b.refill(rate, burst);
                b.tokens < burst
            });
        }
        let bucket = buckets.entry(ip).or_insert_with(|| Bucket::full(burst));
        bucket.refill(rate, burst);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// A byte budget shared by whoever holds it (0 bytes/s = unlimited).
pub struct Bandwidth {
    rate: f64,
    bucket: Option<Mutex<Bucket>>,
}

impl Bandwidth {
    pub fn new(bytes_per_sec: u64) -> Bandwidth {
        let rate = bytes_per_sec as f64;
        Bandwidth {
            rate,
            // One second's worth of burst: short bursts pass at line speed.
            bucket: (bytes_per_sec > 0).then(|| Mutex::new(Bucket::full(rate))),
        }
    }

    /// Spend `bytes`, waiting until the budget allows it.
    pub async fn take(&self, bytes: usize) {
        let Some(bucket) = &self.bucket else {
            return;
        };
        let wait = {
            let mut b = bucket.lock().expect("bandwidth lock");
            b.refill(self.rate, self.rate);
            // Go into debt and sleep it off: large writes are not starved.
            b.tokens -= bytes as f64;
            if b.tokens >= 0.0 {
                Duration::ZERO
            } else {
                Duration::from_secs_f64(-b.tokens / self.rate)
            }
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limiter_allows_the_burst_then_refuses() {
        let limiter = RateLimiter::per_minute(3);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(limiter.allow(ip) && limiter.allow(ip) && limiter.allow(ip));
        assert!(!limiter.allow(ip));
        // Another address has its own bucket.
        assert!(limiter.allow("192.0.2.2".parse().unwrap()));
        assert!(RateLimiter::per_minute(0).allow(ip));
    }

    #[tokio::test]
    async fn bandwidth_delays_past_the_budget() {
        let bw = Bandwidth::new(1000);
        let start = tokio::time::Instant::now();
        bw.take(1000).await; // the burst
        bw.take(500).await; // half a second of debt
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(450), "{waited:?}");
        let unlimited = Bandwidth::new(0);
        unlimited.take(1 << 30).await;
    }
}
