//! Probe detection: is this message a test the abuser sends to itself to
//! learn whether the relay (or the proxy in front of it) works?
//!
//! CERT.br's SpamPots found that spammers verify each open proxy or relay
//! before using it, by sending a message through it to a mailbox they read,
//! with the relay's identity in the message so they can tell which one
//! worked. A real relay would deliver such a probe; a sensor that delivered
//! nothing would then be struck off the spammer's list, so probes matter
//! (the host may choose to treat them differently) and are flagged.
//!
//! The heuristic, kept principled: a message is a probe when
//! - it has at most two recipients (probes go to the abuser's own
//!   mailbox, not to a list), and
//! - its content (headers and body) or envelope (`MAIL FROM`, `RCPT TO`)
//!   names **this** sensor's address, in one of the forms probe tools use:
//!   dotted quad (`198.51.100.1`), eight hex digits of the IPv4 address in
//!   network order (`C6336401`, any case, `0x` prefix allowed), the address
//!   as one decimal number (`3325256705`), or the IPv6 text form. A `:port`
//!   may follow; it is not required, since a port alone says nothing.
//!
//! Each form must stand alone: `198.51.100.10` does not name `198.51.100.1`,
//! a longer hex or digit run does not name it either. The HELO name is not
//! looked at: bots commonly greet with the address they connected to, which
//! says nothing about the message.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Which form of the address a probe used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeForm {
    Dotted,
    Hex,
    Decimal,
    Ipv6,
}

impl ProbeForm {
    /// The name in `smtp.message` events.
    pub fn name(self) -> &'static str {
        match self {
            ProbeForm::Dotted => "dotted",
            ProbeForm::Hex => "hex",
            ProbeForm::Decimal => "decimal",
            ProbeForm::Ipv6 => "ipv6",
        }
    }
}

/// The most recipients a probe has.
pub const MAX_PROBE_RECIPIENTS: usize = 2;

/// Finds the sensor's own addresses in message text.
#[derive(Debug, Clone, Default)]
pub struct ProbeDetector {
    v4: Vec<V4Forms>,
    /// Lowercase IPv6 text forms.
    v6: Vec<String>,
}

#[derive(Debug, Clone)]
struct V4Forms {
    dotted: String,
    /// Uppercase.
    hex: String,
    decimal: String,
}

impl ProbeDetector {
    /// A detector for these addresses (text; unparsable and unspecified
    /// ones are skipped).
    pub fn new<'a>(addrs: impl IntoIterator<Item = &'a str>) -> Self {
        let mut d = ProbeDetector::default();
        for addr in addrs {
            let addr = addr.trim().trim_matches(|c| c == '[' || c == ']');
            match addr.parse::<IpAddr>() {
                Ok(IpAddr::V4(v4)) => d.add_v4(v4),
                Ok(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                    Some(v4) => d.add_v4(v4),
                    None => d.add_v6(v6),
                },
                Err(_) => {}
            }
        }
        d
    }

    fn add_v4(&mut self, ip: Ipv4Addr) {
        if ip.is_unspecified() {
            return;
        }
        let n = u32::from(ip);
        self.v4.push(V4Forms {
            dotted: ip.to_string(),
            hex: format!("{n:08X}"),
            decimal: n.to_string(),
        });
    }

    fn add_v6(&mut self, ip: Ipv6Addr) {
        if !ip.is_unspecified() {
            self.v6.push(ip.to_string().to_ascii_lowercase());
        }
    }

    /// Whether a message to `rcpt_count` recipients, with these envelope
    /// strings and content, is a probe; and if so, the form that gave it away.
    pub fn detect(
        &self,
        rcpt_count: usize,
        envelope: &[&str],
        content: &[u8],
    ) -> Option<ProbeForm> {
        if rcpt_count > MAX_PROBE_RECIPIENTS || (self.v4.is_empty() && self.v6.is_empty()) {
            return None;
        }
        envelope
            .iter()
            .map(|s| s.as_bytes())
            .chain(std::iter::once(content))
            .find_map(|text| self.find(text))
    }

    /// The first form of a sensor address standing alone in `text`.
    pub fn find(&self, text: &[u8]) -> Option<ProbeForm> {
        if !self.v4.is_empty() {
            // Runs of digits and dots: dotted quads and decimal numbers.
            for run in runs(text, |b| b.is_ascii_digit() || b == b'.') {
                let run = trim_dots(run);
                let form = if run.contains(&b'.') {
                    ProbeForm::Dotted
                } else {
                    ProbeForm::Decimal
                };
                if self.v4.iter().any(|f| match form {
                    ProbeForm::Dotted => run == f.dotted.as_bytes(),
                    _ => run == f.decimal.as_bytes(),
                }) {
                    return Some(form);
                }
            }
            // Runs of hex digits, exactly eight long.
            for run in runs(text, |b| b.is_ascii_hexdigit()) {
                if run.len() == 8
                    && self
                        .v4
                        .iter()
                        .any(|f| run.eq_ignore_ascii_case(f.hex.as_bytes()))
                {
                    return Some(ProbeForm::Hex);
                }
            }
        }
        for v6 in &self.v6 {
            for run in runs(text, |b| b.is_ascii_hexdigit() || b == b':') {
                if run.eq_ignore_ascii_case(v6.as_bytes()) {
                    return Some(ProbeForm::Ipv6);
                }
            }
        }
        None
    }
}

/// Maximal runs of bytes for which `keep` holds.
fn runs(text: &[u8], keep: impl Fn(u8) -> bool + Copy) -> impl Iterator<Item = &[u8]> {
    text.split(move |&b| !keep(b)).filter(|r| !r.is_empty())
}

/// A sentence may end right after an address: `... via 198.51.100.1.`
fn trim_dots(run: &[u8]) -> &[u8] {
    let start = run.iter().position(|&b| b != b'.').unwrap_or(run.len());
    let end = run
        .iter()
        .rposition(|&b| b != b'.')
        .map_or(start, |e| e + 1);
    &run[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det() -> ProbeDetector {
        ProbeDetector::new(["198.51.100.1"])
    }

    #[test]
    fn forms_of_the_address_are_found() {
        let d = det();
        assert_eq!(
            d.find(b"Subject: 198.51.100.1:25 ok"),
            Some(ProbeForm::Dotted)
        );
        assert_eq!(d.find(b"proxy 198.51.100.1."), Some(ProbeForm::Dotted));
        assert_eq!(d.find(b"id=C6336401"), Some(ProbeForm::Hex));
        assert_eq!(d.find(b"id=0xc6336401:3128"), Some(ProbeForm::Hex));
        assert_eq!(d.find(b"n 3325256705\r\n"), Some(ProbeForm::Decimal));
    }

    #[test]
    fn lookalikes_are_not() {
        let d = det();
        for text in [
            &b"198.51.100.10"[..],
            b"2198.51.100.1",
            b"1.198.51.100.1",
            b"AC6336401",
            b"C63364012",
            b"33252567050",
            b"nothing here",
        ] {
            assert_eq!(d.find(text), None, "{}", String::from_utf8_lossy(text));
        }
    }

    #[test]
    fn recipients_and_envelope() {
        let d = det();
        assert_eq!(
            d.detect(1, &["x@[198.51.100.1]"], b""),
            Some(ProbeForm::Dotted)
        );
        assert_eq!(d.detect(3, &[], b"198.51.100.1"), None);
        assert_eq!(
            ProbeDetector::new(["not an ip"]).detect(1, &[], b"198.51.100.1"),
            None
        );
    }

    #[test]
    fn ipv6_and_mapped() {
        let d = ProbeDetector::new(["2001:db8::25"]);
        assert_eq!(d.find(b"via [2001:DB8::25]:25"), Some(ProbeForm::Ipv6));
        assert_eq!(d.find(b"via 2001:db8::250"), None);
        let d = ProbeDetector::new(["::ffff:198.51.100.1"]);
        assert_eq!(d.find(b"198.51.100.1"), Some(ProbeForm::Dotted));
    }
}
