//! Who the relay pretends to be: a Postfix or a Sendmail, with a plausible
//! host name, and every reply worded the way that MTA words it.
//!
//! The choice is a stable hash of the client's address, so one client always
//! meets the same server across connections, as it would on the Internet,
//! while different clients see a mix.

use std::fmt::Write as _;
use std::net::IpAddr;

/// FNV-1a, 64 bits: tiny, stable across builds and platforms (unlike
/// `std`'s `DefaultHasher`), and good enough to spread addresses over a few
/// personas and names.
pub fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The MTA being imitated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Persona {
    Postfix,
    Sendmail,
}

impl Persona {
    /// The name used in config and artifact metadata.
    pub fn name(self) -> &'static str {
        match self {
            Persona::Postfix => "postfix",
            Persona::Sendmail => "sendmail",
        }
    }

    /// Parse a config value (`postfix` or `sendmail`, any case).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "postfix" => Some(Persona::Postfix),
            "sendmail" => Some(Persona::Sendmail),
            _ => None,
        }
    }
}

// Small businesses in Brazil, where CERT.br's SpamPots sensors ran: the kind
// of host that ends up running a forgotten open relay.
const HOST_PREFIXES: &[&str] = &["mail", "smtp", "mx", "mx1", "correio", "webmail", "mail2"];
const HOST_DOMAINS: &[&str] = &[
    "agrovale",
    "construsul",
    "transportesrio",
    "imobiliariacentral",
    "contabilpaulista",
    "graficaexpress",
    "metalurgicasaojose",
    "clinicavidasaude",
    "autopecasnorte",
    "escolaaprender",
    "distribuidoraleste",
    "hotelmirante",
    "advocaciasilva",
    "moveisplanalto",
    "informaticanet",
    "padariaestrela",
];
const HOST_SUFFIXES: &[&str] = &[".com.br", ".com.br", ".com.br", ".net.br", ".ind.br"];

/// A host name from the lists above, chosen by `hash`.
pub fn plausible_hostname(hash: u64) -> String {
    let pick =
        |list: &[&'static str], shift: u32| list[((hash >> shift) % list.len() as u64) as usize];
    format!(
        "{}.{}{}",
        pick(HOST_PREFIXES, 8),
        pick(HOST_DOMAINS, 16),
        pick(HOST_SUFFIXES, 32)
    )
}

/// Whether `host` is an address rather than a name (a real server would not
/// call itself `1.2.3.4`).
pub fn is_ip_literal(host: &str) -> bool {
    host.trim_matches(|c| c == '[' || c == ']')
        .parse::<IpAddr>()
        .is_ok()
}

/// Replies that [`Server::reply`] words per persona.
#[derive(Debug, Clone, Copy)]
pub enum Reply<'a> {
    /// Answer to HELO; the argument is the client's name.
    Helo(&'a str),
    /// Answer to EHLO, with the keyword list.
    Ehlo(&'a str),
    /// HELO/EHLO without a name; the argument is the verb as sent.
    HeloSyntax(&'a str),
    MailOk(&'a str),
    MailSyntax,
    NestedMail,
    BadSizeSyntax,
    BadBody,
    /// `SIZE=` above the cap, or content that outgrew it.
    SizeExceeded,
    RcptOk(&'a str),
    RcptSyntax,
    NeedMail,
    TooManyRecipients,
    NeedRcpt,
    DataSyntax,
    StartData,
    Queued(&'a str),
    QueueWriteError,
    Reset,
    Noop,
    Vrfy(&'a str),
    VrfySyntax,
    Expn,
    Etrn(&'a str),
    EtrnSyntax,
    Help,
    Quit,
    /// A command we do not know; the argument is the verb as sent.
    Unknown(&'a str),
    EmptyLine,
    LineTooLong,
    /// STARTTLS (never advertised; see the crate docs).
    NotImplemented,
    AuthContinue(&'a str),
    AuthOk,
    AuthMechanism,
    AuthDecode,
    AuthAborted,
    AuthAlready,
    AuthInTransaction,
    TooManyErrors,
    Timeout,
}

/// The server a client talks to: persona, name and limits.
#[derive(Debug, Clone)]
pub struct Server {
    pub persona: Persona,
    pub hostname: String,
    /// The client's address, for Sendmail's `Hello name [addr]`.
    pub peer: String,
    /// The advertised and enforced message size cap.
    pub max_size: usize,
    /// Sendmail's version string, Postfix's distribution tag in the banner.
    flavour: &'static str,
    /// The time-zone offset in minutes east of UTC, for dates and ids.
    utc_offset_min: i64,
    /// Seeds queue ids; stable for the session.
    id_seed: u64,
}

const SENDMAIL_VERSIONS: &[&str] = &[
    "8.14.4/8.14.4",
    "8.14.5/8.14.5",
    "8.14.7/8.14.7",
    "8.14.9/8.14.9",
];
const POSTFIX_TAGS: &[&str] = &["", "", " (Debian/GNU)", " (Ubuntu)"];

impl Server {
    /// A server with a persona and name; `peer_hash` picks the cosmetic
    /// details, `session_id` seeds the queue ids.
    pub fn new(
        persona: Persona,
        hostname: String,
        peer: &str,
        peer_hash: u64,
        max_size: usize,
        session_id: &str,
    ) -> Self {
        let flavour = match persona {
            Persona::Postfix => POSTFIX_TAGS[(peer_hash >> 40) as usize % POSTFIX_TAGS.len()],
            Persona::Sendmail => {
                SENDMAIL_VERSIONS[(peer_hash >> 40) as usize % SENDMAIL_VERSIONS.len()]
            }
        };
        // Brazilian names get Brasília time, anything else UTC.
        let utc_offset_min = if hostname.ends_with(".br") { -180 } else { 0 };
        Server {
            persona,
            hostname,
            peer: peer.to_owned(),
            max_size,
            flavour,
            utc_offset_min,
            id_seed: fnv1a64(session_id.as_bytes()),
        }
    }

    /// The 220 greeting, CRLF included.
    pub fn banner(&self, now: u64) -> String {
        match self.persona {
            Persona::Postfix => format!("220 {} ESMTP Postfix{}\r\n", self.hostname, self.flavour),
            Persona::Sendmail => format!(
                "220 {} ESMTP Sendmail {}; {}\r\n",
                self.hostname,
                self.flavour,
                rfc2822_date(now, self.utc_offset_min)
            ),
        }
    }

    /// A queue id for the `counter`th message of the session, shaped like
    /// the persona's: Postfix's 10–12 hex digits, Sendmail's
    /// date-coded `YMDhmsSSPPPPP`. Derived from the session and counter, so
    /// no randomness is needed and ids do not repeat within a session.
    pub fn queue_id(&self, counter: u32, now: u64) -> String {
        let h = fnv1a64(&[self.id_seed.to_le_bytes(), u64::from(counter).to_le_bytes()].concat());
        match self.persona {
            Persona::Postfix => {
                let len = 10 + (h % 3) as usize;
                let mut id = format!("{h:016X}");
                id.truncate(len);
                id
            }
            Persona::Sendmail => {
                // sendmail/queue.c: QueueIdChars, 60 of them.
                const CHARS: &[u8; 60] =
                    b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwx";
                let t = civil(now as i64 + self.utc_offset_min * 60);
                let seq = (self.id_seed % 3000 + u64::from(counter)) % 3600;
                let pid = 1000 + (self.id_seed >> 20) % 64000;
                let c = |n: u64| CHARS[(n % 60) as usize] as char;
                let mut id = String::with_capacity(14);
                for n in [
                    t.year as u64 - 1900,
                    t.month as u64 - 1,
                    t.day as u64,
                    t.hour as u64,
                ] {
                    id.push(c(n));
                }
                id.push(c(t.minute as u64));
                id.push(c(t.second as u64));
                id.push(c(seq / 60));
                id.push(c(seq % 60));
                let _ = write!(id, "{pid:06}");
                id
            }
        }
    }

    /// Append the reply, CRLF included, to `out`.
    pub fn reply(&self, r: Reply<'_>, out: &mut String) {
        let host = &self.hostname;
        let pf = self.persona == Persona::Postfix;
        let _ = match r {
            Reply::Helo(_) if pf => write!(out, "250 {host}\r\n"),
            Reply::Helo(name) => write!(
                out,
                "250 {host} Hello {} [{}], pleased to meet you\r\n",
                printable(name),
                self.peer
            ),
            Reply::Ehlo(name) => {
                // STARTTLS is deliberately absent: see the crate docs.
                let size = self.max_size;
                if pf {
                    write!(
                        out,
                        "250-{host}\r\n250-PIPELINING\r\n250-SIZE {size}\r\n250-VRFY\r\n\
                         250-ETRN\r\n250-AUTH PLAIN LOGIN\r\n250-ENHANCEDSTATUSCODES\r\n\
                         250-8BITMIME\r\n250 DSN\r\n"
                    )
                } else {
                    write!(
                        out,
                        "250-{host} Hello {} [{}], pleased to meet you\r\n\
                         250-ENHANCEDSTATUSCODES\r\n250-PIPELINING\r\n250-8BITMIME\r\n\
                         250-SIZE {size}\r\n250-DSN\r\n250-ETRN\r\n250-AUTH LOGIN PLAIN\r\n\
                         250-DELIVERBY\r\n250 HELP\r\n",
                        printable(name),
                        self.peer
                    )
                }
            }
            Reply::HeloSyntax(verb) if pf => {
                write!(
                    out,
                    "501 Syntax: {} hostname\r\n",
                    verb.to_ascii_uppercase()
                )
            }
            Reply::HeloSyntax(verb) => write!(
                out,
                "501 5.0.0 {} requires domain address\r\n",
                verb.to_ascii_uppercase()
            ),
            Reply::MailOk(_) if pf => write!(out, "250 2.1.0 Ok\r\n"),
            Reply::MailOk(addr) => write!(out, "250 2.1.0 <{}>... Sender ok\r\n", clean(addr)),
            Reply::MailSyntax if pf => write!(out, "501 5.5.4 Syntax: MAIL FROM:<address>\r\n"),
            Reply::MailSyntax => {
                write!(
                    out,
                    "501 5.5.2 Syntax error in parameters scanning \"from\"\r\n"
                )
            }
            Reply::NestedMail if pf => write!(out, "503 5.5.1 Error: nested MAIL command\r\n"),
            Reply::NestedMail => write!(out, "503 5.5.0 Sender already specified\r\n"),
            Reply::BadSizeSyntax if pf => write!(out, "501 5.5.4 Bad message size syntax\r\n"),
            Reply::BadSizeSyntax => write!(out, "501 5.5.4 Syntax error in SIZE parameter\r\n"),
            Reply::BadBody if pf => write!(out, "501 5.5.4 Unsupported BODY parameter\r\n"),
            Reply::BadBody => write!(out, "501 5.5.4 Unknown BODY type\r\n"),
            Reply::SizeExceeded if pf => {
                write!(out, "552 5.3.4 Message size exceeds fixed limit\r\n")
            }
            Reply::SizeExceeded => write!(
                out,
                "552 5.2.3 Message size exceeds fixed maximum message size ({})\r\n",
                self.max_size
            ),
            Reply::RcptOk(_) if pf => write!(out, "250 2.1.5 Ok\r\n"),
            Reply::RcptOk(addr) => write!(out, "250 2.1.5 <{}>... Recipient ok\r\n", clean(addr)),
            Reply::RcptSyntax if pf => write!(out, "501 5.5.4 Syntax: RCPT TO:<address>\r\n"),
            Reply::RcptSyntax => {
                write!(
                    out,
                    "501 5.5.2 Syntax error in parameters scanning \"to\"\r\n"
                )
            }
            Reply::NeedMail if pf => write!(out, "503 5.5.1 Error: need MAIL command\r\n"),
            Reply::NeedMail => write!(out, "503 5.0.0 Need MAIL before RCPT\r\n"),
            Reply::TooManyRecipients if pf => {
                write!(out, "452 4.5.3 Error: too many recipients\r\n")
            }
            Reply::TooManyRecipients => write!(out, "452 4.5.3 Too many recipients\r\n"),
            Reply::NeedRcpt if pf => write!(out, "503 5.5.1 Error: need RCPT command\r\n"),
            Reply::NeedRcpt => write!(out, "503 5.0.0 Need RCPT (recipient)\r\n"),
            Reply::DataSyntax if pf => write!(out, "501 5.5.4 Syntax: DATA\r\n"),
            Reply::DataSyntax => write!(out, "501 5.5.4 Syntax error in parameters\r\n"),
            Reply::StartData if pf => write!(out, "354 End data with <CR><LF>.<CR><LF>\r\n"),
            Reply::StartData => {
                write!(
                    out,
                    "354 Enter mail, end with \".\" on a line by itself\r\n"
                )
            }
            Reply::Queued(id) if pf => write!(out, "250 2.0.0 Ok: queued as {id}\r\n"),
            Reply::Queued(id) => write!(out, "250 2.0.0 {id} Message accepted for delivery\r\n"),
            Reply::QueueWriteError if pf => {
                write!(out, "451 4.3.0 Error: queue file write error\r\n")
            }
            Reply::QueueWriteError => {
                write!(
                    out,
                    "451 4.3.0 Temporary system failure. Please try again later.\r\n"
                )
            }
            Reply::Reset if pf => write!(out, "250 2.0.0 Ok\r\n"),
            Reply::Reset => write!(out, "250 2.0.0 Reset state\r\n"),
            Reply::Noop if pf => write!(out, "250 2.0.0 Ok\r\n"),
            Reply::Noop => write!(out, "250 2.0.0 OK\r\n"),
            Reply::Vrfy(arg) if pf => write!(out, "252 2.0.0 {}\r\n", printable(arg)),
            Reply::Vrfy(_) => write!(
                out,
                "252 2.5.2 Cannot VRFY user; try RCPT to attempt delivery (or try finger)\r\n"
            ),
            Reply::VrfySyntax if pf => write!(out, "501 5.5.4 Syntax: VRFY address\r\n"),
            Reply::VrfySyntax => write!(out, "501 5.5.2 Argument required\r\n"),
            Reply::Expn if pf => write!(out, "502 5.5.2 Error: command not recognized\r\n"),
            Reply::Expn => write!(out, "502 5.7.0 Sorry, we do not allow this operation\r\n"),
            Reply::Etrn(_) if pf => write!(out, "458 Unable to queue messages\r\n"),
            Reply::Etrn(node) => {
                write!(
                    out,
                    "250 2.0.0 Queuing for node {} started\r\n",
                    printable(node)
                )
            }
            Reply::EtrnSyntax if pf => write!(out, "500 Syntax: ETRN domain\r\n"),
            Reply::EtrnSyntax => write!(out, "501 5.5.2 Parameter required\r\n"),
            Reply::Help if pf => write!(
                out,
                "214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP VRFY ETRN AUTH QUIT\r\n"
            ),
            Reply::Help => write!(
                out,
                "214-2.0.0 This is sendmail version {v}\r\n\
                 214-2.0.0 Topics:\r\n\
                 214-2.0.0 \tHELO\tEHLO\tMAIL\tRCPT\tDATA\r\n\
                 214-2.0.0 \tRSET\tNOOP\tQUIT\tHELP\tVRFY\r\n\
                 214-2.0.0 \tEXPN\tVERB\tETRN\tDSN\tAUTH\r\n\
                 214-2.0.0 For more info use \"HELP <topic>\".\r\n\
                 214-2.0.0 To report bugs in the implementation see\r\n\
                 214-2.0.0 \thttp://www.sendmail.org/email-addresses.html\r\n\
                 214-2.0.0 For local information send email to Postmaster at your site.\r\n\
                 214 2.0.0 End of HELP info\r\n",
                v = self.flavour.split('/').next().unwrap_or(self.flavour)
            ),
            Reply::Quit if pf => write!(out, "221 2.0.0 Bye\r\n"),
            Reply::Quit => write!(out, "221 2.0.0 {host} closing connection\r\n"),
            Reply::Unknown(_) if pf => write!(out, "500 5.5.2 Error: command not recognized\r\n"),
            Reply::Unknown(verb) => {
                write!(
                    out,
                    "500 5.5.1 Command unrecognized: \"{}\"\r\n",
                    printable(verb)
                )
            }
            Reply::EmptyLine if pf => write!(out, "500 5.5.2 Error: bad syntax\r\n"),
            Reply::EmptyLine => write!(out, "500 5.5.1 Command unrecognized: \"\"\r\n"),
            Reply::LineTooLong if pf => write!(out, "500 5.5.0 Error: line too long\r\n"),
            Reply::LineTooLong => write!(out, "500 5.5.0 Line too long\r\n"),
            Reply::NotImplemented if pf => {
                write!(out, "502 5.5.1 Error: command not implemented\r\n")
            }
            Reply::NotImplemented => write!(out, "502 5.5.1 Command not implemented\r\n"),
            Reply::AuthContinue(challenge) => write!(out, "334 {challenge}\r\n"),
            Reply::AuthOk => write!(out, "235 2.7.0 Authentication successful\r\n"),
            Reply::AuthMechanism if pf => write!(
                out,
                "535 5.7.8 Error: authentication failed: Invalid authentication mechanism\r\n"
            ),
            Reply::AuthMechanism => write!(out, "504 5.3.3 AUTH mechanism not available\r\n"),
            Reply::AuthDecode if pf => write!(out, "501 5.5.2 Cannot decode response\r\n"),
            Reply::AuthDecode => write!(out, "501 5.5.4 cannot decode AUTH parameter\r\n"),
            Reply::AuthAborted if pf => write!(out, "501 5.7.0 Authentication aborted\r\n"),
            Reply::AuthAborted => write!(out, "501 5.0.0 AUTH aborted\r\n"),
            Reply::AuthAlready if pf => write!(out, "503 5.5.1 Error: already authenticated\r\n"),
            Reply::AuthAlready => write!(out, "503 5.5.0 Already Authenticated\r\n"),
            Reply::AuthInTransaction if pf => {
                write!(out, "503 5.5.1 Error: MAIL transaction in progress\r\n")
            }
            Reply::AuthInTransaction => write!(
                out,
                "503 5.5.0 AUTH not permitted during a mail transaction\r\n"
            ),
            Reply::TooManyErrors if pf => {
                write!(out, "421 4.7.0 {host} Error: too many errors\r\n")
            }
            Reply::TooManyErrors => {
                write!(
                    out,
                    "421 4.7.0 {host} Too many errors; closing connection\r\n"
                )
            }
            Reply::Timeout => write!(out, "421 4.4.2 {host} Error: timeout exceeded\r\n"),
        };
    }
}

/// A client-supplied address made safe to echo: control bytes dropped.
fn clean(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).collect()
}

/// A client-supplied token made safe to echo: control bytes dropped, at most
/// 64 characters.
fn printable(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(64).collect()
}

/// A broken-down UTC time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// 0 = Sunday.
    pub weekday: u32,
}

/// Split seconds since the epoch into a date and time (Howard Hinnant's
/// `civil_from_days`).
pub fn civil(secs: i64) -> Civil {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month,
        day,
        hour: (rem / 3600) as u32,
        minute: (rem % 3600 / 60) as u32,
        second: (rem % 60) as u32,
        weekday: (days + 4).rem_euclid(7) as u32,
    }
}

/// An RFC 2822 date, as in Sendmail's banner: `Sat, 21 Mar 2009 11:19:07 -0300`.
pub fn rfc2822_date(secs: u64, utc_offset_min: i64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = civil(secs as i64 + utc_offset_min * 60);
    let sign = if utc_offset_min < 0 { '-' } else { '+' };
    let off = utc_offset_min.abs();
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} {}{:02}{:02}",
        DAYS[t.weekday as usize],
        t.day,
        MONTHS[t.month as usize - 1],
        t.year,
        t.hour,
        t.minute,
        t.second,
        sign,
        off / 60,
        off % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_reference_values() {
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn dates() {
        assert_eq!(rfc2822_date(0, 0), "Thu, 01 Jan 1970 00:00:00 +0000");
        // 2009-03-21 14:19:07 UTC, shown in Brasília time.
        assert_eq!(
            rfc2822_date(1_237_645_147, -180),
            "Sat, 21 Mar 2009 11:19:07 -0300"
        );
        assert_eq!(
            rfc2822_date(951_782_400, 0),
            "Tue, 29 Feb 2000 00:00:00 +0000"
        );
    }

    #[test]
    fn hostnames_look_like_names() {
        for h in [0u64, 1, u64::MAX, 0xdead_beef_cafe] {
            let name = plausible_hostname(h);
            assert!(name.ends_with(".br"), "{name}");
            assert_eq!(name.split('.').count(), 4, "{name}");
        }
        assert!(is_ip_literal("192.0.2.1"));
        assert!(is_ip_literal("2001:db8::1"));
        assert!(!is_ip_literal("mx.example.com"));
    }

    #[test]
    fn queue_ids_have_the_persona_shape_and_differ() {
        let pf = Server::new(Persona::Postfix, "h".into(), "192.0.2.1", 7, 100, "s1");
        let ids: Vec<String> = (0..50).map(|n| pf.queue_id(n, 0)).collect();
        for id in &ids {
            assert!((10..=12).contains(&id.len()), "{id}");
            assert!(
                id.chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
            );
        }
        let mut uniq = ids.clone();
        uniq.sort();
        uniq.dedup();
        assert_eq!(uniq.len(), ids.len());

        let sm = Server::new(
            Persona::Sendmail,
            "mx.a.com.br".into(),
            "192.0.2.1",
            7,
            100,
            "s1",
        );
        let id = sm.queue_id(0, 1_237_645_147);
        assert_eq!(id.len(), 14, "{id}");
        // 2009 → 109 % 60 = 49 = 'n'; March → '2'; 21st → 'L'; 11h (-0300) → 'B'.
        assert!(id.starts_with("n2LBJ7"), "{id}");
        assert!(id[8..].chars().all(|c| c.is_ascii_digit()));
        assert_ne!(sm.queue_id(1, 1_237_645_147), id);
    }
}
