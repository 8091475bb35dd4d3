//! The random quantities of a session: recipients per message (1 + Poisson,
//! mean 9.2 by default, as in the SpamPots data) and messages per session (a
//! small discrete distribution).

use rand::Rng;

/// A Poisson draw (Knuth's method below 30, a rounded normal above).
pub fn poisson<R: Rng + ?Sized>(rng: &mut R, lambda: f64) -> u32 {
    if lambda <= 0.0 {
        return 0;
    }
    if lambda < 30.0 {
        let l = (-lambda).exp();
        let mut k = 0u32;
        let mut p = rng.random::<f64>();
        while p > l {
            k += 1;
            p *= rng.random::<f64>();
        }
        k
    } else {
        // Box-Muller; the normal approximation is fine at this size.
        let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = rng.random();
        let z = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
        (lambda + z * lambda.sqrt()).round().max(0.0) as u32
    }
}

/// Recipients per message: `1 + Poisson(mean - 1)`, so at least one, with
/// the given mean, capped at `max`.
#[derive(Clone, Copy, Debug)]
pub struct Recipients {
    pub mean: f64,
    pub max: u32,
}

impl Recipients {
    pub fn new(mean: f64, max: u32) -> Result<Self, String> {
        if !mean.is_finite() || !(1.0..=1000.0).contains(&mean) {
            return Err(format!("--rcpt-mean must be in 1..=1000, got {mean}"));
        }
        if max == 0 {
            return Err("--rcpt-max must be at least 1".into());
        }
        Ok(Recipients { mean, max })
    }

    pub fn draw<R: Rng + ?Sized>(&self, rng: &mut R) -> u32 {
        (1 + poisson(rng, self.mean - 1.0)).min(self.max)
    }
}

/// A discrete distribution over small counts: `3` (always 3) or
/// `1=80,2=10,5=1` (value=weight).
#[derive(Clone, Debug, PartialEq)]
pub struct Discrete {
    items: Vec<(u32, f64)>,
    total: f64,
}

impl Discrete {
    pub fn parse(spec: &str) -> Result<Self, String> {
        let spec = spec.trim();
        if let Ok(v) = spec.parse::<u32>() {
            if v == 0 {
                return Err("messages per session must be at least 1".into());
            }
            return Ok(Discrete {
                items: vec![(v, 1.0)],
                total: 1.0,
            });
        }
        let mut items = Vec::new();
        for part in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (v, w) = part
                .split_once('=')
                .ok_or_else(|| format!("`{part}` is not count=weight"))?;
            let v: u32 = v
                .trim()
                .parse()
                .map_err(|_| format!("`{}` is not a count", v.trim()))?;
            if v == 0 || v > 1000 {
                return Err(format!("count {v} is outside 1..=1000"));
            }
            let w: f64 = w
                .trim()
                .parse()
                .map_err(|_| format!("weight `{}` is not a number", w.trim()))?;
            if !w.is_finite() || w < 0.0 {
                return Err(format!("weight of {v} must be a finite number >= 0"));
            }
            items.push((v, w));
        }
        let total: f64 = items.iter().map(|i| i.1).sum();
        if total <= 0.0 {
            return Err(format!("`{spec}` has no positive weight"));
        }
        Ok(Discrete { items, total })
    }

    pub fn mean(&self) -> f64 {
        self.items.iter().map(|&(v, w)| v as f64 * w).sum::<f64>() / self.total
    }

    pub fn draw<R: Rng + ?Sized>(&self, rng: &mut R) -> u32 {
        let mut x = rng.random::<f64>() * self.total;
        for &(v, w) in &self.items {
            if x < w {
                return v;
            }
            x -= w;
        }
        self.items
            .iter()
            .rev()
            .find(|i| i.1 > 0.0)
            .map_or(1, |i| i.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn recipients_mean_is_9_2() {
        let r = Recipients::new(9.2, 1000).unwrap();
        let mut rng = SmallRng::seed_from_u64(42);
        let n = 200_000;
        let mut sum = 0u64;
        let mut min = u32::MAX;
        for _ in 0..n {
            let k = r.draw(&mut rng);
            min = min.min(k);
            sum += k as u64;
        }
        let mean = sum as f64 / n as f64;
        // sd of the mean = sqrt(8.2 / 200000) ≈ 0.0064: 0.05 is ~8 sigma.
        assert!((mean - 9.2).abs() < 0.05, "mean {mean}");
        assert_eq!(min, 1);
    }

    #[test]
    fn large_poisson_mean() {
        let mut rng = SmallRng::seed_from_u64(1);
        let n = 50_000;
        let s: u64 = (0..n).map(|_| poisson(&mut rng, 100.0) as u64).sum();
        assert!((s as f64 / n as f64 - 100.0).abs() < 0.5);
    }

    #[test]
    fn recipients_bounds() {
        assert!(Recipients::new(0.5, 10).is_err());
        assert!(Recipients::new(f64::NAN, 10).is_err());
        let r = Recipients::new(50.0, 3).unwrap();
        let mut rng = SmallRng::seed_from_u64(3);
        assert!((0..1000).all(|_| (1..=3).contains(&r.draw(&mut rng))));
        let one = Recipients::new(1.0, 10).unwrap();
        assert!((0..100).all(|_| one.draw(&mut rng) == 1));
    }

    #[test]
    fn discrete() {
        let d = Discrete::parse("1=80,2=10,3=5,4=3,5=2").unwrap();
        assert!((d.mean() - 1.37).abs() < 1e-9);
        let mut rng = SmallRng::seed_from_u64(9);
        let n = 100_000;
        let s: u64 = (0..n).map(|_| d.draw(&mut rng) as u64).sum();
        assert!((s as f64 / n as f64 - 1.37).abs() < 0.02);
        assert_eq!(Discrete::parse("3").unwrap().draw(&mut rng), 3);
        for bad in ["0", "", "1=x", "x=1", "1=-1", "0=1", "1=0"] {
            assert!(Discrete::parse(bad).is_err(), "{bad}");
        }
    }
}
