//! One abuser session per scenario: connect, talk, validate every reply.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use rand::Rng;
use rand::rngs::SmallRng;

use crate::campaign::{self, Campaigns, RCPT_DOMAINS};
use crate::conn::{self, Buffers, Conn, Fail};
use crate::dist::{Discrete, Recipients};
use crate::mix::{Scenario, Target};
use crate::stats::{SessionReport, Stage};
use crate::wire;

/// The listeners under test (each checked by the loopback rule).
#[derive(Clone, Debug, Default)]
pub struct Targets {
    pub smtp: Option<SocketAddr>,
    pub http: Option<SocketAddr>,
    pub socks: Option<SocketAddr>,
    pub mydoom: Option<SocketAddr>,
    pub sobig: Option<SocketAddr>,
}

impl Targets {
    pub fn get(&self, t: Target) -> Option<SocketAddr> {
        match t {
            Target::Smtp => self.smtp,
            Target::Http => self.http,
            Target::Socks => self.socks,
            Target::Mydoom => self.mydoom,
            Target::Sobig => self.sobig,
        }
    }
}

/// What every session shares (read-only).
pub struct Ctx {
    pub targets: Targets,
    pub timeout: Duration,
    pub campaigns: Campaigns,
    pub rcpts: Recipients,
    pub messages: Discrete,
    /// Share of messages sent as their campaign's canonical copy.
    pub repeat_share: f64,
    /// MyDoom uploads (magic included): a few variants, so that the
    /// sensor's deduplication sees repeats.
    pub uploads: Vec<Vec<u8>>,
    /// Random bytes that garbage is cut from.
    pub garbage: Vec<u8>,
    /// Spread IPv4 connections over this many source addresses
    /// 127.0.x.y (1 = let the kernel choose).
    pub source_ips: u32,
}

type Step = Result<(), (Stage, Fail)>;

trait At<T> {
    fn at(self, stage: Stage) -> Result<T, (Stage, Fail)>;
}

impl<T> At<T> for Result<T, Fail> {
    fn at(self, stage: Stage) -> Result<T, (Stage, Fail)> {
        self.map_err(|f| (stage, f))
    }
}

fn expect(ok: bool, stage: Stage) -> Step {
    if ok {
        Ok(())
    } else {
        Err((stage, Fail::Unexpected))
    }
}

fn set_hex_sample(sample: &mut Vec<u8>, bytes: &[u8]) {
    use std::io::Write;
    sample.clear();
    for b in bytes {
        let _ = write!(sample, "{b:02x} ");
    }
    sample.pop();
}

/// Scratch space of one session, borrowed from the worker's [`Buffers`].
struct Scratch<'a> {
    w: &'a mut Vec<u8>,
    msg: &'a mut Vec<u8>,
    host: &'a mut String,
    sender: &'a mut String,
    local: &'a mut String,
}

/// Runs one session of `rep.scenario` and fills `rep`.
pub async fn run(ctx: &Ctx, rng: &mut SmallRng, bufs: &mut Buffers, rep: &mut SessionReport) {
    let t0 = Instant::now();
    let scenario = rep.scenario;
    let Some(addr) = ctx.targets.get(scenario.target()) else {
        rep.error = Some((Stage::Connect, Fail::Refused));
        rep.sample = Some(format!("no {} target", scenario.target().flag()));
        return;
    };
    let source = (ctx.source_ips > 1 && addr.is_ipv4()).then(|| {
        let k = rng.random_range(0..ctx.source_ips);
        SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(127, 0, (k / 254) as u8, (k % 254 + 1) as u8)),
            0,
        )
    });
    let stream = match conn::connect(addr, source, ctx.timeout).await {
        Ok(s) => s,
        Err(f) => {
            rep.error = Some((Stage::Connect, f));
            rep.duration = t0.elapsed();
            return;
        }
    };
    let Buffers {
        rbuf,
        wbuf,
        msg,
        sample,
        s1,
        s2,
        s3,
    } = bufs;
    let mut c = Conn::new(stream, rbuf, sample, ctx.timeout);
    let mut s = Scratch {
        w: wbuf,
        msg,
        host: s1,
        sender: s2,
        local: s3,
    };
    let res = play(ctx, rng, &mut c, &mut s, t0, rep).await;
    rep.bytes_in = c.bytes_in;
    rep.bytes_out = c.bytes_out;
    if let Err((stage, mut fail)) = res {
        if matches!(fail, Fail::Closed | Fail::Reset)
            && c.bytes_in == 0
            && rep.scenario.expects_reply()
        {
            fail = Fail::Dropped;
        }
        rep.error = Some((stage, fail));
        if fail == Fail::Unexpected && !c.sample.is_empty() {
            rep.sample = Some(c.sample_text());
        }
    }
    drop(c);
    rep.duration = t0.elapsed();
}

async fn play(
    ctx: &Ctx,
    rng: &mut SmallRng,
    c: &mut Conn<'_>,
    s: &mut Scratch<'_>,
    t0: Instant,
    rep: &mut SessionReport,
) -> Step {
    let domain = campaign::pick(rng, RCPT_DOMAINS);
    match rep.scenario {
        Scenario::HttpConnect | Scenario::Sobig => {
            if rng.random_bool(0.3) {
                s.host.clear();
                use std::fmt::Write;
                let _ = write!(s.host, "{}", campaign::public_ipv4(rng));
            } else {
                campaign::mx_host(s.host, rng, domain);
            }
            s.w.clear();
            let ua = rng
                .random_bool(0.2)
                .then_some("Mozilla/4.0 (compatible; MSIE 6.0)");
            wire::http_connect(s.w, s.host, 25, ua);
            c.write_all(s.w).await.at(Stage::Proxy)?;
            let head = c.http_head().await.at(Stage::Proxy)?;
            expect(head.status == 200, Stage::Proxy)?;
            smtp(ctx, rng, c, s, t0, rep, Some(domain)).await
        }
        Scenario::Socks4 | Scenario::MydoomSocks4 => {
            let ip = campaign::public_ipv4(rng);
            s.w.clear();
            wire::socks4_connect(s.w, ip, 25, userid(rng));
            socks4_exchange(c, s, rep.scenario == Scenario::MydoomSocks4, true).await?;
            smtp(ctx, rng, c, s, t0, rep, Some(domain)).await
        }
        Scenario::Socks4a => {
            campaign::mx_host(s.host, rng, domain);
            s.w.clear();
            wire::socks4a_connect(s.w, s.host, 25, userid(rng));
            socks4_exchange(c, s, false, true).await?;
            smtp(ctx, rng, c, s, t0, rep, Some(domain)).await
        }
        Scenario::Socks5 | Scenario::Socks5Auth => {
            let auth = rep.scenario == Scenario::Socks5Auth;
            socks5_exchange(rng, c, s, auth, domain, 25, true).await?;
            smtp(ctx, rng, c, s, t0, rep, Some(domain)).await
        }
        Scenario::Smtp => smtp(ctx, rng, c, s, t0, rep, None).await,
        Scenario::Judge => {
            s.w.clear();
            wire::judge_get(s.w, "judge.example", "/azenv.php");
            c.write_all(s.w).await.at(Stage::Judge)?;
            let head = c.http_head().await.at(Stage::Judge)?;
            expect(head.status == 200, Stage::Judge)?;
            let found = match head.content_length {
                Some(n) => c.skip(n, b"REMOTE_ADDR").await.at(Stage::Judge)?,
                None => c.until_eof(b"REMOTE_ADDR").await.at(Stage::Judge)?.1,
            };
            if !found {
                c.sample.clear();
                c.sample
                    .extend_from_slice(b"judge page without REMOTE_ADDR");
            }
            expect(found, Stage::Judge)
        }
        Scenario::ConnectOther => {
            let port = if rng.random_bool(0.5) { 443 } else { 6667 };
            s.host.clear();
            s.host.push_str(if port == 443 {
                "www.paypal.com"
            } else {
                "irc.undernet.org"
            });
            s.w.clear();
            wire::http_connect(s.w, s.host, port, None);
            c.write_all(s.w).await.at(Stage::Refusal)?;
            let head = c.http_head().await.at(Stage::Refusal)?;
            expect(head.status >= 400, Stage::Refusal)
        }
        Scenario::SocksOther => {
            let port = if rng.random_bool(0.5) { 443 } else { 6667 };
            if rng.random_bool(0.5) {
                socks5_exchange(rng, c, s, false, "irc.undernet.org", port, false).await
            } else {
                s.w.clear();
                wire::socks4_connect(s.w, campaign::public_ipv4(rng), port, b"");
                socks4_exchange(c, s, false, false).await
            }
        }
        Scenario::Malformed | Scenario::SocksMalformed => {
            let len = rng.random_range(16..512usize);
            let at = rng.random_range(0..ctx.garbage.len() - len);
            s.w.clear();
            // A first byte that starts neither an HTTP method nor SOCKS.
            s.w.push(rng.random_range(0x80..=0xFFu8));
            s.w.extend_from_slice(&ctx.garbage[at..at + len]);
            c.write_all(s.w).await.at(Stage::Malformed)?;
            if rep.scenario == Scenario::Malformed {
                let head = c.http_head().await.at(Stage::Malformed)?;
                expect((400..500).contains(&head.status), Stage::Malformed)
            } else {
                let (n, _) = c.until_eof(b"").await.at(Stage::Malformed)?;
                expect(n == 0, Stage::Malformed)
            }
        }
        Scenario::Mydoom => {
            let up = &ctx.uploads[rng.random_range(0..ctx.uploads.len())];
            c.write_all(up).await.at(Stage::Upload)?;
            c.shutdown_write().await.at(Stage::Upload)?;
            let (n, _) = c.until_eof(b"").await.at(Stage::Upload)?;
            expect(n == 0, Stage::Upload)
        }
    }
}

fn userid(rng: &mut SmallRng) -> &'static [u8] {
    if rng.random_bool(0.5) {
        b""
    } else {
        b"anonymous"
    }
}

/// Sends the SOCKS 4 request in `s.w`, reads the 8-byte reply. `granted`:
/// whether a grant (`5A`) is expected, else a refusal.
async fn socks4_exchange(
    c: &mut Conn<'_>,
    s: &mut Scratch<'_>,
    mydoom: bool,
    granted: bool,
) -> Step {
    let stage = if granted {
        Stage::Proxy
    } else {
        Stage::Refusal
    };
    c.write_all(s.w).await.at(stage)?;
    let mut r = [0u8; 8];
    r.copy_from_slice(c.exact(8).await.at(stage)?);
    set_hex_sample(c.sample, &r);
    // MyDoom's worm answers VN 4 (an echo); the protocol says 0.
    let vn_ok = r[0] == 0 || (mydoom && r[0] == 4);
    expect(vn_ok && (r[1] == 0x5A) == granted, stage)
}

/// The SOCKS 5 handshake up to the CONNECT reply. `granted` as above.
async fn socks5_exchange(
    rng: &mut SmallRng,
    c: &mut Conn<'_>,
    s: &mut Scratch<'_>,
    offer_auth: bool,
    domain: &str,
    port: u16,
    granted: bool,
) -> Step {
    let stage = Stage::Proxy;
    s.w.clear();
    wire::socks5_greeting(s.w, offer_auth);
    c.write_all(s.w).await.at(stage)?;
    let mut r = [0u8; 4];
    r[..2].copy_from_slice(c.exact(2).await.at(stage)?);
    set_hex_sample(c.sample, &r[..2]);
    expect(r[0] == 5, stage)?;
    match r[1] {
        0 => {}
        2 if offer_auth => {
            s.w.clear();
            campaign::write_local(s.local, rng);
            wire::socks5_userpass(s.w, s.local.as_bytes(), b"123456");
            c.write_all(s.w).await.at(stage)?;
            r[..2].copy_from_slice(c.exact(2).await.at(stage)?);
            set_hex_sample(c.sample, &r[..2]);
            expect(r[1] == 0, stage)?;
        }
        _ => return Err((stage, Fail::Unexpected)),
    }
    s.w.clear();
    if rng.random_bool(0.5) || !granted {
        if granted {
            campaign::mx_host(s.host, rng, domain);
        } else {
            s.host.clear();
            s.host.push_str(domain);
        }
        wire::socks5_connect_domain(s.w, s.host, port);
    } else {
        wire::socks5_connect_ipv4(s.w, campaign::public_ipv4(rng), port);
    }
    let stage = if granted {
        Stage::Proxy
    } else {
        Stage::Refusal
    };
    c.write_all(s.w).await.at(stage)?;
    r.copy_from_slice(c.exact(4).await.at(stage)?);
    set_hex_sample(c.sample, &r);
    expect(r[0] == 5 && (r[1] == 0) == granted, stage)?;
    if !granted {
        return Ok(());
    }
    let rest = match r[3] {
        1 => 6,
        4 => 18,
        3 => c.exact(1).await.at(stage)?[0] as usize + 2,
        _ => return Err((stage, Fail::Unexpected)),
    };
    c.exact(rest).await.at(stage)?;
    Ok(())
}

/// The SMTP client: banner, EHLO, one or more messages (pipelined when
/// PIPELINING is advertised), QUIT. `domain`: the recipients' domain when
/// a proxy was asked for its MX; random per message otherwise.
async fn smtp(
    ctx: &Ctx,
    rng: &mut SmallRng,
    c: &mut Conn<'_>,
    s: &mut Scratch<'_>,
    t0: Instant,
    rep: &mut SessionReport,
    domain: Option<&'static str>,
) -> Step {
    let r = c.smtp_reply(None).await.at(Stage::Banner)?;
    expect(r.code == 220, Stage::Banner)?;
    rep.banner = Some(t0.elapsed());

    s.w.clear();
    campaign::write_local(s.local, rng);
    wire::smtp_ehlo(s.w, s.local);
    c.write_all(s.w).await.at(Stage::Ehlo)?;
    let r = c.smtp_reply(Some(b"PIPELINING")).await.at(Stage::Ehlo)?;
    expect(r.code == 250, Stage::Ehlo)?;
    let pipelining = r.has_keyword;

    for _ in 0..ctx.messages.draw(rng) {
        let camp = ctx.campaigns.pick(rng);
        camp.write_sender(s.sender, rng);
        let dom = domain.unwrap_or_else(|| campaign::pick(rng, RCPT_DOMAINS));
        let k = ctx.rcpts.draw(rng);
        s.w.clear();
        wire::smtp_mail_from(s.w, s.sender);
        if pipelining {
            for _ in 0..k {
                campaign::write_local(s.local, rng);
                wire::smtp_rcpt_to(s.w, s.local, dom);
            }
            s.w.extend_from_slice(b"DATA\r\n");
            c.write_all(s.w).await.at(Stage::Mail)?;
            let r = c.smtp_reply(None).await.at(Stage::Mail)?;
            expect(r.code == 250, Stage::Mail)?;
            for _ in 0..k {
                let r = c.smtp_reply(None).await.at(Stage::Rcpt)?;
                expect(r.code == 250, Stage::Rcpt)?;
            }
        } else {
            c.write_all(s.w).await.at(Stage::Mail)?;
            let r = c.smtp_reply(None).await.at(Stage::Mail)?;
            expect(r.code == 250, Stage::Mail)?;
            for _ in 0..k {
                s.w.clear();
                campaign::write_local(s.local, rng);
                wire::smtp_rcpt_to(s.w, s.local, dom);
                c.write_all(s.w).await.at(Stage::Rcpt)?;
                let r = c.smtp_reply(None).await.at(Stage::Rcpt)?;
                expect(r.code == 250, Stage::Rcpt)?;
            }
            c.write_all(b"DATA\r\n").await.at(Stage::Data)?;
        }
        let r = c.smtp_reply(None).await.at(Stage::Data)?;
        expect(r.code == 354, Stage::Data)?;
        if rng.random_bool(ctx.repeat_share) {
            camp.write_canonical(s.msg);
        } else {
            camp.write_message(s.msg, rng, s.sender, s.local, dom);
        }
        c.write_all(s.msg).await.at(Stage::Message)?;
        let t = Instant::now();
        let r = c.smtp_reply(None).await.at(Stage::Message)?;
        expect(r.code == 250, Stage::Message)?;
        rep.message_latency.push(t.elapsed());
        rep.messages += 1;
        rep.rcpts += k as u64;
    }

    c.write_all(b"QUIT\r\n").await.at(Stage::Quit)?;
    let r = c.smtp_reply(None).await.at(Stage::Quit)?;
    expect(r.code == 221, Stage::Quit)
}
