//! The SOCKS wire format: incremental parsers over the bytes buffered so far,
//! and reply builders. Every parser looks only at a prefix of its input and
//! says whether the message is complete, needs more bytes, or can never be
//! valid; none keeps state, so a message split at any byte offset parses the
//! same as one that arrived whole.
//!
//! References: the SOCKS 4 and 4A protocol notes (NEC, Ying-Da Lee),
//! RFC 1928 (SOCKS 5) and RFC 1929 (username/password authentication).

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Longest SOCKS 4 user id or 4A host name we accept (without the NUL). The
/// protocol sets no limit; 255 matches SOCKS 5's length bytes.
pub const MAX_FIELD: usize = 255;

/// SOCKS 4 reply codes (`CD`).
pub const V4_GRANTED: u8 = 0x5A;
pub const V4_REJECTED: u8 = 0x5B;

/// SOCKS commands, shared by versions 4 and 5.
pub const CMD_CONNECT: u8 = 0x01;
pub const CMD_BIND: u8 = 0x02;
pub const CMD_UDP_ASSOCIATE: u8 = 0x03;

/// SOCKS 5 authentication methods.
pub const METHOD_NONE: u8 = 0x00;
pub const METHOD_USERPASS: u8 = 0x02;
pub const METHOD_UNACCEPTABLE: u8 = 0xFF;

/// SOCKS 5 reply codes (`REP`).
pub const REP_SUCCEEDED: u8 = 0x00;
pub const REP_GENERAL_FAILURE: u8 = 0x01;
pub const REP_NOT_ALLOWED: u8 = 0x02;
pub const REP_COMMAND_NOT_SUPPORTED: u8 = 0x07;
pub const REP_ADDRESS_NOT_SUPPORTED: u8 = 0x08;

/// The outcome of parsing a buffered prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parse<T> {
    /// Not enough bytes yet.
    Incomplete,
    /// A complete message and the number of bytes it took.
    Done(T, usize),
    /// No continuation of these bytes can be valid.
    Invalid(Malformed),
}

/// Why a message can never be valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    /// The version byte is not the one this message needs.
    Version(u8),
    /// A NUL-terminated field ran past [`MAX_FIELD`].
    Oversized(&'static str),
    /// The RFC 1929 sub-negotiation version is not 1.
    AuthVersion(u8),
    /// A SOCKS 5 address type other than 1, 3 or 4.
    AddressType(u8),
    /// A SOCKS 5 domain name of length 0.
    EmptyDomain,
}

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Malformed::Version(v) => write!(f, "bad version byte 0x{v:02x}"),
            Malformed::Oversized(field) => write!(f, "{field} longer than {MAX_FIELD} bytes"),
            Malformed::AuthVersion(v) => write!(f, "bad auth sub-negotiation version 0x{v:02x}"),
            Malformed::AddressType(t) => write!(f, "unknown address type 0x{t:02x}"),
            Malformed::EmptyDomain => f.write_str("empty domain name"),
        }
    }
}

/// A command byte by name, for events.
pub fn command_name(command: u8) -> String {
    match command {
        CMD_CONNECT => "connect".into(),
        CMD_BIND => "bind".into(),
        CMD_UDP_ASSOCIATE => "udp-associate".into(),
        other => format!("0x{other:02x}"),
    }
}

/// A NUL-terminated field of at most [`MAX_FIELD`] bytes at the start of
/// `buf`: its bytes and the length including the NUL.
fn nul_field(buf: &[u8], name: &'static str) -> Parse<Vec<u8>> {
    match buf.iter().take(MAX_FIELD + 1).position(|&b| b == 0) {
        Some(i) => Parse::Done(buf[..i].to_vec(), i + 1),
        None if buf.len() > MAX_FIELD => Parse::Invalid(Malformed::Oversized(name)),
        None => Parse::Incomplete,
    }
}

/// A SOCKS 4 or 4A request: `04 CD DSTPORT(2) DSTIP(4) USERID 00 [HOST 00]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request4 {
    pub command: u8,
    pub port: u16,
    pub ip: [u8; 4],
    pub userid: Vec<u8>,
    /// The 4A host name, when `ip` is `0.0.0.x` with `x` ≠ 0.
    pub hostname: Option<Vec<u8>>,
}

impl Request4 {
    /// Whether this is a SOCKS 4A request (the server resolves the name).
    pub fn is_4a(&self) -> bool {
        self.hostname.is_some()
    }

    /// The destination as text: the 4A host name, or the dotted address.
    pub fn host(&self) -> String {
        match &self.hostname {
            Some(name) => String::from_utf8_lossy(name).into_owned(),
            None => Ipv4Addr::from(self.ip).to_string(),
        }
    }
}

/// Whether `ip` is SOCKS 4A's marker `0.0.0.x`, `x` ≠ 0.
fn is_4a_marker(ip: [u8; 4]) -> bool {
    ip[..3] == [0, 0, 0] && ip[3] != 0
}

/// Parse a SOCKS 4/4A request at the start of `buf`.
pub fn parse_request4(buf: &[u8]) -> Parse<Request4> {
    match buf.first() {
        None => return Parse::Incomplete,
        Some(&4) => {}
        Some(&v) => return Parse::Invalid(Malformed::Version(v)),
    }
    if buf.len() < 8 {
        return Parse::Incomplete;
    }
    let command = buf[1];
    let port = u16::from_be_bytes([buf[2], buf[3]]);
    let ip = [buf[4], buf[5], buf[6], buf[7]];
    let (userid, userid_len) = match nul_field(&buf[8..], "userid") {
        Parse::Done(field, n) => (field, n),
        Parse::Incomplete => return Parse::Incomplete,
        Parse::Invalid(m) => return Parse::Invalid(m),
    };
    let mut len = 8 + userid_len;
    let hostname = if is_4a_marker(ip) {
        match nul_field(&buf[len..], "hostname") {
            Parse::Done(field, n) => {
                len += n;
                Some(field)
            }
            Parse::Incomplete => return Parse::Incomplete,
            Parse::Invalid(m) => return Parse::Invalid(m),
        }
    } else {
        None
    };
    let request = Request4 {
        command,
        port,
        ip,
        userid,
        hostname,
    };
    Parse::Done(request, len)
}

/// A SOCKS 4 reply: `VN CD DSTPORT(2) DSTIP(4)`. The protocol says `VN` is 0;
/// see the `mydoom` plugin for a server that says otherwise.
pub fn reply4(version: u8, code: u8, port: u16, ip: [u8; 4]) -> [u8; 8] {
    let p = port.to_be_bytes();
    [version, code, p[0], p[1], ip[0], ip[1], ip[2], ip[3]]
}

/// A SOCKS 5 greeting: `05 NMETHODS METHODS...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Greeting5 {
    pub methods: Vec<u8>,
}

impl Greeting5 {
    /// The method the honeypot picks: username/password whenever it is
    /// offered (real clients offer it beside "no authentication", and only
    /// this way do they send the credentials they were given), else no
    /// authentication, else none acceptable (`FF`). Either way every
    /// credential is accepted.
    pub fn choose(&self) -> u8 {
        if self.methods.contains(&METHOD_USERPASS) {
            METHOD_USERPASS
        } else if self.methods.contains(&METHOD_NONE) {
            METHOD_NONE
        } else {
            METHOD_UNACCEPTABLE
        }
    }
}

/// Parse a SOCKS 5 greeting at the start of `buf`.
pub fn parse_greeting5(buf: &[u8]) -> Parse<Greeting5> {
    match buf.first() {
        None => return Parse::Incomplete,
        Some(&5) => {}
        Some(&v) => return Parse::Invalid(Malformed::Version(v)),
    }
    let Some(&n) = buf.get(1) else {
        return Parse::Incomplete;
    };
    let len = 2 + usize::from(n);
    if buf.len() < len {
        return Parse::Incomplete;
    }
    let methods = buf[2..len].to_vec();
    Parse::Done(Greeting5 { methods }, len)
}

/// RFC 1929 credentials: `01 ULEN UNAME PLEN PASSWD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPass {
    pub username: Vec<u8>,
    pub password: Vec<u8>,
}

/// Parse an RFC 1929 request at the start of `buf`.
pub fn parse_userpass(buf: &[u8]) -> Parse<UserPass> {
    match buf.first() {
        None => return Parse::Incomplete,
        Some(&1) => {}
        Some(&v) => return Parse::Invalid(Malformed::AuthVersion(v)),
    }
    let Some(&ulen) = buf.get(1) else {
        return Parse::Incomplete;
    };
    let user_end = 2 + usize::from(ulen);
    let Some(&plen) = buf.get(user_end) else {
        return Parse::Incomplete;
    };
    let len = user_end + 1 + usize::from(plen);
    if buf.len() < len {
        return Parse::Incomplete;
    }
    let creds = UserPass {
        username: buf[2..user_end].to_vec(),
        password: buf[user_end + 1..len].to_vec(),
    };
    Parse::Done(creds, len)
}

/// A SOCKS 5 destination address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addr {
    V4([u8; 4]),
    Domain(Vec<u8>),
    V6([u8; 16]),
}

impl Addr {
    /// The address as text: dotted IPv4, the name, or compressed IPv6
    /// without brackets.
    pub fn host(&self) -> String {
        match self {
            Addr::V4(ip) => Ipv4Addr::from(*ip).to_string(),
            Addr::Domain(name) => String::from_utf8_lossy(name).into_owned(),
            Addr::V6(ip) => Ipv6Addr::from(*ip).to_string(),
        }
    }

    /// The address type by name, for events.
    pub fn type_name(&self) -> &'static str {
        match self {
            Addr::V4(_) => "ipv4",
            Addr::Domain(_) => "domain",
            Addr::V6(_) => "ipv6",
        }
    }
}

/// A SOCKS 5 request: `05 CMD RSV ATYP DST.ADDR DST.PORT(2)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request5 {
    pub command: u8,
    pub addr: Addr,
    pub port: u16,
}

/// Parse a SOCKS 5 request at the start of `buf`. The reserved byte is not
/// checked: servers ignore it and so do clients' bugs.
pub fn parse_request5(buf: &[u8]) -> Parse<Request5> {
    match buf.first() {
        None => return Parse::Incomplete,
        Some(&5) => {}
        Some(&v) => return Parse::Invalid(Malformed::Version(v)),
    }
    if buf.len() < 4 {
        return Parse::Incomplete;
    }
    let (addr_start, addr_len) = match buf[3] {
        0x01 => (4, 4),
        0x04 => (4, 16),
        0x03 => match buf.get(4) {
            None => return Parse::Incomplete,
            Some(0) => return Parse::Invalid(Malformed::EmptyDomain),
            Some(&n) => (5, usize::from(n)),
        },
        other => return Parse::Invalid(Malformed::AddressType(other)),
    };
    let addr_end = addr_start + addr_len;
    let len = addr_end + 2;
    if buf.len() < len {
        return Parse::Incomplete;
    }
    let raw = &buf[addr_start..addr_end];
    let addr = match buf[3] {
        0x01 => Addr::V4(raw.try_into().expect("4 bytes")),
        0x04 => Addr::V6(raw.try_into().expect("16 bytes")),
        _ => Addr::Domain(raw.to_vec()),
    };
    let port = u16::from_be_bytes([buf[addr_end], buf[addr_end + 1]]);
    let request = Request5 {
        command: buf[1],
        addr,
        port,
    };
    Parse::Done(request, len)
}

/// A SOCKS 5 reply with an IPv4 bound address:
/// `05 REP 00 01 BND.ADDR(4) BND.PORT(2)`.
pub fn reply5(rep: u8, bound: [u8; 4], port: u16) -> [u8; 10] {
    let p = port.to_be_bytes();
    [
        5, rep, 0, 1, bound[0], bound[1], bound[2], bound[3], p[0], p[1],
    ]
}

/// The first bytes of `data` (at most 16) as space-separated lowercase hex,
/// to show what a client sent that no protocol here explains.
pub fn hex_preview(data: &[u8]) -> String {
    let mut out = String::with_capacity(48);
    for (i, b) in data.iter().take(16).enumerate() {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(&format!("{b:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socks4_prefixes_are_incomplete_until_the_nul() {
        let req = b"\x04\x01\x00\x19\x01\x02\x03\x04bob\x00";
        for n in 0..req.len() {
            assert_eq!(parse_request4(&req[..n]), Parse::Incomplete, "prefix {n}");
        }
        let Parse::Done(r, len) = parse_request4(req) else {
            panic!()
        };
        assert_eq!(
            (r.port, r.ip, r.userid.as_slice(), len),
            (25, [1, 2, 3, 4], &b"bob"[..], 12)
        );
    }

    #[test]
    fn socks4a_needs_the_host_name() {
        let req = b"\x04\x01\x00\x19\x00\x00\x00\x01\x00mx.example\x00";
        assert_eq!(parse_request4(&req[..9]), Parse::Incomplete);
        let Parse::Done(r, len) = parse_request4(req) else {
            panic!()
        };
        assert!(r.is_4a());
        assert_eq!((r.host().as_str(), len), ("mx.example", req.len()));
        // 0.0.0.0 is not the 4A marker.
        let Parse::Done(r, _) = parse_request4(b"\x04\x01\x00\x19\x00\x00\x00\x00\x00") else {
            panic!()
        };
        assert!(!r.is_4a());
    }

    #[test]
    fn oversized_fields_are_invalid() {
        let mut req = b"\x04\x01\x00\x19\x01\x02\x03\x04".to_vec();
        req.extend([b'a'; MAX_FIELD]);
        assert_eq!(parse_request4(&req), Parse::Incomplete);
        req.push(b'a');
        assert_eq!(
            parse_request4(&req),
            Parse::Invalid(Malformed::Oversized("userid"))
        );
    }

    #[test]
    fn socks5_messages() {
        assert_eq!(
            parse_greeting5(b"\x05\x02\x00\x02"),
            Parse::Done(
                Greeting5 {
                    methods: vec![0, 2]
                },
                4
            )
        );
        assert_eq!(parse_greeting5(b"\x05\x02\x00"), Parse::Incomplete);
        assert_eq!(
            parse_greeting5(b"\x04"),
            Parse::Invalid(Malformed::Version(4))
        );
        assert_eq!(
            parse_userpass(b"\x01\x01u\x02pw"),
            Parse::Done(
                UserPass {
                    username: b"u".to_vec(),
                    password: b"pw".to_vec()
                },
                6
            )
        );
        let v6 = b"\x05\x01\x00\x04\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01\x00\x19";
        let Parse::Done(r, len) = parse_request5(v6) else {
            panic!()
        };
        assert_eq!(
            (r.addr.host().as_str(), r.port, len),
            ("2001:db8::1", 25, v6.len())
        );
        assert_eq!(
            parse_request5(b"\x05\x01\x00\x09"),
            Parse::Invalid(Malformed::AddressType(9))
        );
        assert_eq!(
            parse_request5(b"\x05\x01\x00\x03\x00"),
            Parse::Invalid(Malformed::EmptyDomain)
        );
    }

    #[test]
    fn hex_preview_stops_at_sixteen_bytes() {
        assert_eq!(hex_preview(b"\x16\x03\x01"), "16 03 01");
        assert_eq!(hex_preview(&[0xab; 20]).len(), 16 * 3 - 1);
    }
}
