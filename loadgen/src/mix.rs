//! Scenarios and their mix (`--mix name=weight,...`).

use rand::Rng;

/// Which listener a scenario talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Smtp,
    Http,
    Socks,
    Mydoom,
    Sobig,
}

impl Target {
    pub fn flag(self) -> &'static str {
        match self {
            Target::Smtp => "--smtp",
            Target::Http => "--http",
            Target::Socks => "--socks",
            Target::Mydoom => "--mydoom",
            Target::Sobig => "--sobig",
        }
    }
}

/// One kind of abuser session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scenario {
    /// HTTP proxy: `CONNECT mx:25`, `200`, then SMTP on the same socket.
    HttpConnect,
    /// SOCKS 4 CONNECT to an IPv4 literal, port 25, then SMTP.
    Socks4,
    /// SOCKS 4A CONNECT to a host name, port 25, then SMTP.
    Socks4a,
    /// SOCKS 5, no authentication, CONNECT to port 25, then SMTP.
    Socks5,
    /// SOCKS 5 offering methods 00 and 02, username/password, then SMTP.
    Socks5Auth,
    /// Direct SMTP to the relay.
    Smtp,
    /// Proxy-judge `GET http://judge.example/azenv.php` through the HTTP proxy.
    Judge,
    /// HTTP `CONNECT` to 443 or 6667: a refusal is expected.
    ConnectOther,
    /// SOCKS 5 / 4 CONNECT to 6667 or 443: a refusal is expected.
    SocksOther,
    /// Random garbage to the HTTP proxy (`400` expected).
    Malformed,
    /// Random garbage to the SOCKS proxy (closed without a reply expected).
    SocksMalformed,
    /// MyDoom's SOCKS 4 on 3127 (reply `VN` 0 or 4), then SMTP.
    MydoomSocks4,
    /// MyDoom upload: `85 13 3C 9E A2`, N KiB, close.
    Mydoom,
    /// Sobig.F's HTTP proxy on 3382: `CONNECT mx:25`, then SMTP.
    Sobig,
}

pub const N_SCENARIOS: usize = 14;

impl Scenario {
    pub const ALL: [Scenario; N_SCENARIOS] = [
        Scenario::HttpConnect,
        Scenario::Socks4,
        Scenario::Socks4a,
        Scenario::Socks5,
        Scenario::Socks5Auth,
        Scenario::Smtp,
        Scenario::Judge,
        Scenario::ConnectOther,
        Scenario::SocksOther,
        Scenario::Malformed,
        Scenario::SocksMalformed,
        Scenario::MydoomSocks4,
        Scenario::Mydoom,
        Scenario::Sobig,
    ];

    pub fn index(self) -> usize {
        Scenario::ALL.iter().position(|&s| s == self).unwrap_or(0)
    }

    pub fn name(self) -> &'static str {
        match self {
            Scenario::HttpConnect => "http-connect",
            Scenario::Socks4 => "socks4",
            Scenario::Socks4a => "socks4a",
            Scenario::Socks5 => "socks5",
            Scenario::Socks5Auth => "socks5-auth",
            Scenario::Smtp => "smtp",
            Scenario::Judge => "judge",
            Scenario::ConnectOther => "connect-other",
            Scenario::SocksOther => "socks-other",
            Scenario::Malformed => "malformed",
            Scenario::SocksMalformed => "socks-malformed",
            Scenario::MydoomSocks4 => "mydoom-socks4",
            Scenario::Mydoom => "mydoom",
            Scenario::Sobig => "sobig",
        }
    }

    pub fn from_name(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Whether the server speaks first or answers the first request (all
    /// but the silent ones: garbage on SOCKS and MyDoom uploads).
    pub fn expects_reply(self) -> bool {
        !matches!(self, Scenario::SocksMalformed | Scenario::Mydoom)
    }

    pub fn target(self) -> Target {
        match self {
            Scenario::HttpConnect
            | Scenario::Judge
            | Scenario::ConnectOther
            | Scenario::Malformed => Target::Http,
            Scenario::Socks4
            | Scenario::Socks4a
            | Scenario::Socks5
            | Scenario::Socks5Auth
            | Scenario::SocksOther
            | Scenario::SocksMalformed => Target::Socks,
            Scenario::Smtp => Target::Smtp,
            Scenario::MydoomSocks4 | Scenario::Mydoom => Target::Mydoom,
            Scenario::Sobig => Target::Sobig,
        }
    }
}

/// Relative weights, one per scenario (any scale; zero means never).
#[derive(Clone, Debug, PartialEq)]
pub struct Mix {
    weights: [f64; N_SCENARIOS],
}

/// The default mix, in percent of sessions, from the SpamPots slides
/// (2006-06 to 2007-09): ports 1080 SOCKS 37.3 %, the HTTP proxy ports 59.3 %,
/// 25 SMTP 1.5 %, 3127 MyDoom 1.0 %, 3382 Sobig.F 1.0 %; of the HTTP requests
/// 97.6 % CONNECT to 25, 0.12 % to other ports, 0.25 % GET, 2.0 % errors; of
/// the SOCKS requests 87.3 % CONNECT to 25, 2.0 % other ports, 10.7 % errors.
pub const DEFAULT_MIX: &str = "http-connect=57.9,socks5=18,socks4=6,socks4a=6,socks5-auth=2.6,\
socks-other=0.7,socks-malformed=4,smtp=1.5,judge=0.15,connect-other=0.1,malformed=1.2,\
mydoom-socks4=0.9,mydoom=0.1,sobig=1";

impl Default for Mix {
    fn default() -> Self {
        Mix::parse(DEFAULT_MIX).expect("the default mix parses")
    }
}

impl Mix {
    /// Parses `name=weight,...`. Scenarios not named get weight 0.
    pub fn parse(spec: &str) -> Result<Mix, String> {
        let mut weights = [f64::NAN; N_SCENARIOS];
        let mut any = false;
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            any = true;
            let (name, w) = item
                .split_once('=')
                .ok_or_else(|| format!("mix entry `{item}` is not name=weight"))?;
            let name = name.trim();
            let scenario = Scenario::from_name(name).ok_or_else(|| {
                let names: Vec<_> = Scenario::ALL.iter().map(|s| s.name()).collect();
                format!(
                    "unknown scenario `{name}` in the mix (known: {})",
                    names.join(", ")
                )
            })?;
            let w: f64 = w
                .trim()
                .parse()
                .map_err(|_| format!("weight of `{name}` is not a number: `{}`", w.trim()))?;
            if !w.is_finite() || w < 0.0 {
                return Err(format!(
                    "weight of `{name}` must be a finite number >= 0, got {w}"
                ));
            }
            let slot = &mut weights[scenario.index()];
            if !slot.is_nan() {
                return Err(format!("scenario `{name}` appears twice in the mix"));
            }
            *slot = w;
        }
        if !any {
            return Err("the mix is empty".into());
        }
        for w in &mut weights {
            if w.is_nan() {
                *w = 0.0;
            }
        }
        let mix = Mix { weights };
        if mix.total() <= 0.0 {
            return Err("every weight in the mix is zero".into());
        }
        Ok(mix)
    }

    pub fn weight(&self, s: Scenario) -> f64 {
        self.weights[s.index()]
    }

    pub fn total(&self) -> f64 {
        self.weights.iter().sum()
    }

    /// Share of `s` in percent.
    pub fn percent(&self, s: Scenario) -> f64 {
        let t = self.total();
        if t > 0.0 {
            100.0 * self.weight(s) / t
        } else {
            0.0
        }
    }

    /// Zeroes the scenarios whose target is not available and returns them
    /// (those that had a weight).
    pub fn restrict(&mut self, available: impl Fn(Target) -> bool) -> Vec<Scenario> {
        let mut skipped = Vec::new();
        for s in Scenario::ALL {
            if self.weights[s.index()] > 0.0 && !available(s.target()) {
                self.weights[s.index()] = 0.0;
                skipped.push(s);
            }
        }
        skipped
    }

    /// Draws one scenario in proportion to the weights.
    pub fn pick<R: Rng + ?Sized>(&self, rng: &mut R) -> Scenario {
        let mut x = rng.random::<f64>() * self.total();
        let mut last = Scenario::ALL[0];
        for s in Scenario::ALL {
            let w = self.weights[s.index()];
            if w > 0.0 {
                last = s;
                if x < w {
                    return s;
                }
                x -= w;
            }
        }
        last
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::SmallRng;

    #[test]
    fn default_mix_is_close_to_the_slides() {
        let m = Mix::default();
        assert!((m.total() - 100.15).abs() < 1e-9);
        assert!(m.percent(Scenario::HttpConnect) > 50.0);
        let socks: f64 = [
            Scenario::Socks4,
            Scenario::Socks4a,
            Scenario::Socks5,
            Scenario::Socks5Auth,
            Scenario::SocksOther,
            Scenario::SocksMalformed,
        ]
        .iter()
        .map(|&s| m.percent(s))
        .sum();
        assert!((socks - 37.3).abs() < 0.5, "{socks}");
        assert!((m.percent(Scenario::Smtp) - 1.5).abs() < 0.1);
        let errors = m.percent(Scenario::Malformed) + m.percent(Scenario::SocksMalformed);
        assert!((2.0..10.0).contains(&errors), "{errors}");
    }

    #[test]
    fn parse_and_pick() {
        let m = Mix::parse(" http-connect=3 , smtp=1,mydoom=0").unwrap();
        assert_eq!(m.weight(Scenario::HttpConnect), 3.0);
        assert_eq!(m.weight(Scenario::Socks5), 0.0);
        let mut rng = SmallRng::seed_from_u64(7);
        let mut n = [0u32; N_SCENARIOS];
        for _ in 0..40_000 {
            n[m.pick(&mut rng).index()] += 1;
        }
        assert_eq!(n[Scenario::Mydoom.index()], 0);
        assert_eq!(n[Scenario::Socks5.index()], 0);
        let share = n[Scenario::Smtp.index()] as f64 / 40_000.0;
        assert!((share - 0.25).abs() < 0.01, "{share}");
    }

    #[test]
    fn bad_mixes_are_refused_clearly() {
        let cases = [
            ("", "empty"),
            ("smtp", "not name=weight"),
            ("smtp=abc", "not a number"),
            ("smtp=-1", ">= 0"),
            ("smtp=inf", "finite"),
            ("smtp=NaN", "finite"),
            ("smtp=1,smtp=2", "twice"),
            ("smpt=1", "unknown scenario `smpt`"),
            ("smtp=0,judge=0", "zero"),
        ];
        for (spec, want) in cases {
            let e = Mix::parse(spec).unwrap_err();
            assert!(e.contains(want), "{spec:?}: {e}");
        }
    }

    #[test]
    fn restrict_drops_missing_targets() {
        let mut m = Mix::default();
        let skipped = m.restrict(|t| t == Target::Smtp);
        assert!(skipped.contains(&Scenario::HttpConnect));
        assert!(!skipped.contains(&Scenario::Smtp));
        assert_eq!(m.total(), m.weight(Scenario::Smtp));
    }
}
