//! Spam campaigns: `--campaigns N` templates, each a fixed body of about
//! `--body-bytes` with small per-message variations (greeting, subject
//! number, tracking token, Message-ID), so that a sensor's deduplication and
//! campaign grouping have something to group.

use std::io::Write;
use std::net::Ipv4Addr;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Recipient domains (the data came mostly from TW and CN spammers sending
/// to webmail users).
pub const RCPT_DOMAINS: &[&str] = &[
    "yahoo.com.tw",
    "hotmail.com",
    "msa.hinet.net",
    "pchome.com.tw",
    "seed.net.tw",
    "gmail.com",
    "yahoo.com",
    "sina.com",
    "163.com",
    "uol.com.br",
    "terra.com.br",
    "bol.com.br",
];

const LOCALS: &[&str] = &[
    "amy", "ben", "chen", "david", "emily", "frank", "grace", "henry", "iris", "jack", "kevin",
    "lily", "mary", "nick", "peter", "sales", "service", "info", "wang", "lin",
];

const SUBJECTS: &[&str] = &[
    "Cheap meds online, save 80%",
    "Your account needs verification",
    "Re: your loan application",
    "Exclusive stock alert",
    "Replica watches from $99",
    "You have won a prize",
    "Lose 20 pounds in 3 weeks",
    "Discount software, instant download",
    "Meet singles in your area",
    "Important notice about your order",
];

const WORDS: &[&str] = &[
    "offer",
    "limited",
    "free",
    "discount",
    "price",
    "order",
    "today",
    "now",
    "best",
    "quality",
    "guaranteed",
    "online",
    "pharmacy",
    "shipping",
    "worldwide",
    "secure",
    "save",
    "money",
    "click",
    "here",
    "special",
    "deal",
    "exclusive",
    "member",
    "bonus",
    "cash",
    "fast",
    "approved",
    "credit",
    "stock",
    "market",
    "profit",
    "investment",
    "opportunity",
    "watch",
    "brand",
    "genuine",
    "delivery",
    "customer",
    "satisfaction",
    "risk",
    "trial",
    "unsubscribe",
    "remove",
    "list",
    "the",
    "and",
    "for",
    "with",
    "your",
    "our",
    "you",
    "this",
    "all",
];

/// One campaign: sender domain, subject template, landing domain, and the
/// fixed part of the body (CRLF lines, no line starting with `.`).
#[derive(Debug)]
pub struct Campaign {
    pub id: usize,
    pub sender_domain: String,
    pub subject: &'static str,
    pub url_domain: String,
    pub body: Vec<u8>,
}

#[derive(Debug)]
pub struct Campaigns {
    pub list: Vec<Campaign>,
}

impl Campaigns {
    /// `n` campaigns with bodies of about `body_bytes` (the whole message,
    /// headers included, lands near that size).
    pub fn new(n: usize, body_bytes: usize, seed: u64) -> Campaigns {
        let n = n.max(1);
        let list = (0..n)
            .map(|id| {
                let mut rng = SmallRng::seed_from_u64(seed ^ (0xC0FFEE + id as u64));
                let sender_domain = format!("{}{id}.com.tw", pick(&mut rng, WORDS));
                let url_domain = format!(
                    "{}-{}{id}.info",
                    pick(&mut rng, WORDS),
                    pick(&mut rng, WORDS)
                );
                let subject = SUBJECTS[id % SUBJECTS.len()];
                let target = body_bytes.saturating_sub(420).max(64);
                let mut body = Vec::with_capacity(target + 80);
                let mut line = String::new();
                while body.len() < target {
                    let w = pick(&mut rng, WORDS);
                    if line.len() + w.len() + 1 > 72 {
                        body.extend_from_slice(line.as_bytes());
                        body.extend_from_slice(b"\r\n");
                        line.clear();
                    }
                    if !line.is_empty() {
                        line.push(' ');
                    }
                    line.push_str(w);
                }
                if !line.is_empty() {
                    body.extend_from_slice(line.as_bytes());
                    body.extend_from_slice(b"\r\n");
                }
                Campaign {
                    id,
                    sender_domain,
                    subject,
                    url_domain,
                    body,
                }
            })
            .collect();
        Campaigns { list }
    }

    pub fn pick<R: Rng + ?Sized>(&self, rng: &mut R) -> &Campaign {
        &self.list[rng.random_range(0..self.list.len())]
    }
}

impl Campaign {
    /// A sender address of this campaign.
    pub fn write_sender<R: Rng + ?Sized>(&self, out: &mut String, rng: &mut R) {
        out.clear();
        let _ = std::fmt::Write::write_fmt(
            out,
            format_args!(
                "{}{}@{}",
                pick(rng, LOCALS),
                rng.random_range(1..1000u32),
                self.sender_domain
            ),
        );
    }

    /// The campaign's canonical copy: the same bytes every time (fixed
    /// headers, greeting and link), so that a store that deduplicates by
    /// content sees exact repeats.
    pub fn write_canonical(&self, buf: &mut Vec<u8>) {
        let mut fixed = SmallRng::seed_from_u64(self.id as u64);
        let sender = format!("newsletter@{}", self.sender_domain);
        self.write_message(
            buf,
            &mut fixed,
            &sender,
            "friend",
            "undisclosed-recipients.invalid",
        );
    }

    /// The message as sent after `354`: headers, a varied greeting, the
    /// campaign body, a varied link, and the `.` line.
    pub fn write_message<R: Rng + ?Sized>(
        &self,
        buf: &mut Vec<u8>,
        rng: &mut R,
        sender: &str,
        rcpt_local: &str,
        rcpt_domain: &str,
    ) {
        buf.clear();
        let token: u64 = rng.random();
        let _ = write!(
            buf,
            "From: \"{name}\" <{sender}>\r\nTo: <{rcpt_local}@{rcpt_domain}>\r\n",
            name = pick(rng, LOCALS)
        );
        if rng.random_bool(0.5) {
            let _ = write!(
                buf,
                "Subject: {} #{}\r\n",
                self.subject,
                rng.random_range(100..10000u32)
            );
        } else {
            let _ = write!(buf, "Subject: {}\r\n", self.subject);
        }
        let _ = write!(
            buf,
            "Date: Tue, 12 Jun 2007 {:02}:{:02}:{:02} +0800\r\n\
             Message-ID: <{token:016x}.{}@{}>\r\nMIME-Version: 1.0\r\n\
             Content-Type: text/plain; charset=us-ascii\r\nX-Mailer: Microsoft Outlook Express 6.00.2600.0000\r\n\r\n\
             Dear {rcpt_local},\r\n\r\n",
            rng.random_range(0..24u32),
            rng.random_range(0..60u32),
            rng.random_range(0..60u32),
            self.id,
            self.sender_domain,
        );
        buf.extend_from_slice(&self.body);
        let _ = write!(
            buf,
            "\r\nhttp://www.{}/?r={:08x}\r\n.\r\n",
            self.url_domain, token as u32
        );
    }
}

pub fn pick<'a, R: Rng + ?Sized>(rng: &mut R, list: &[&'a str]) -> &'a str {
    list[rng.random_range(0..list.len())]
}

/// A recipient local part such as `lily1234`.
pub fn write_local<R: Rng + ?Sized>(out: &mut String, rng: &mut R) {
    out.clear();
    out.push_str(pick(rng, LOCALS));
    let _ = std::fmt::Write::write_fmt(out, format_args!("{}", rng.random_range(1..100_000u32)));
}

/// A public-looking IPv4 address (first octets of TW, CN and BR networks;
/// never a reserved range, which an HTTP proxy persona would refuse).
pub fn public_ipv4<R: Rng + ?Sized>(rng: &mut R) -> Ipv4Addr {
    const FIRST: [u8; 12] = [59, 60, 61, 114, 118, 122, 125, 168, 201, 210, 211, 218];
    Ipv4Addr::new(
        FIRST[rng.random_range(0..FIRST.len())],
        rng.random_range(1..255),
        rng.random_range(0..256u32) as u8,
        rng.random_range(1..255),
    )
}

/// The MX host a proxy is asked to reach for `domain`.
pub fn mx_host(out: &mut String, rng: &mut impl Rng, domain: &str) {
    out.clear();
    let _ = std::fmt::Write::write_fmt(
        out,
        format_args!("mx{}.{domain}", rng.random_range(1..4u32)),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_vary_a_little() {
        let c = Campaigns::new(3, 5000, 1);
        assert_eq!(c.list.len(), 3);
        let mut rng = SmallRng::seed_from_u64(5);
        let mut a = Vec::new();
        let mut b = Vec::new();
        let camp = &c.list[0];
        camp.write_message(&mut a, &mut rng, "x@y", "amy1", "hotmail.com");
        camp.write_message(&mut b, &mut rng, "x@y", "amy1", "hotmail.com");
        assert_ne!(a, b);
        assert!((4500..5500).contains(&a.len()), "{}", a.len());
        assert!(a.ends_with(b"\r\n.\r\n"));
        // no line of the content starts with a dot (no stuffing needed)
        let content = &a[..a.len() - 3];
        assert!(!content.windows(3).any(|w| w == b"\n.\r" || w == b"\n.."));
        assert!(
            a.windows(camp.body.len())
                .any(|w| w == camp.body.as_slice())
        );
        assert!(a.iter().all(|&c| c.is_ascii()));
        camp.write_canonical(&mut a);
        camp.write_canonical(&mut b);
        assert_eq!(a, b);
        c.list[1].write_canonical(&mut b);
        assert_ne!(a, b);
    }

    #[test]
    fn public_addresses_are_public() {
        let mut rng = SmallRng::seed_from_u64(2);
        for _ in 0..1000 {
            let ip = public_ipv4(&mut rng);
            assert!(!ip.is_private() && !ip.is_loopback() && !ip.is_documentation());
        }
    }
}
