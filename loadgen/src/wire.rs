//! Request encoders: the bytes an abuser's tool sends. Each appends to a
//! reused buffer.

use std::io::Write;
use std::net::Ipv4Addr;

/// MyDoom's upload command byte and magic.
pub const MYDOOM_MAGIC: [u8; 5] = [0x85, 0x13, 0x3C, 0x9E, 0xA2];

/// `CONNECT host:port HTTP/1.0`, as spam tools send it: no headers, or a
/// `User-Agent` only.
pub fn http_connect(buf: &mut Vec<u8>, host: &str, port: u16, user_agent: Option<&str>) {
    let _ = write!(buf, "CONNECT {host}:{port} HTTP/1.0\r\n");
    if let Some(ua) = user_agent {
        let _ = write!(buf, "User-Agent: {ua}\r\n");
    }
    buf.extend_from_slice(b"\r\n");
}

/// A proxy-judge check: `GET http://host/path HTTP/1.1` in absolute form.
pub fn judge_get(buf: &mut Vec<u8>, host: &str, path: &str) {
    let _ = write!(
        buf,
        "GET http://{host}{path} HTTP/1.1\r\nHost: {host}\r\n\
         User-Agent: Mozilla/4.0 (compatible; MSIE 6.0; Windows NT 5.1)\r\n\
         Accept: */*\r\nConnection: close\r\n\r\n"
    );
}

/// SOCKS 4 CONNECT: `04 01 PORT IP USERID 00`.
pub fn socks4_connect(buf: &mut Vec<u8>, ip: Ipv4Addr, port: u16, userid: &[u8]) {
    buf.extend_from_slice(&[4, 1]);
    buf.extend_from_slice(&port.to_be_bytes());
    buf.extend_from_slice(&ip.octets());
    buf.extend_from_slice(userid);
    buf.push(0);
}

/// SOCKS 4A CONNECT: `04 01 PORT 0.0.0.1 USERID 00 HOST 00`.
pub fn socks4a_connect(buf: &mut Vec<u8>, host: &str, port: u16, userid: &[u8]) {
    socks4_connect(buf, Ipv4Addr::new(0, 0, 0, 1), port, userid);
    buf.extend_from_slice(host.as_bytes());
    buf.push(0);
}

/// SOCKS 5 greeting: `05 01 00`, or `05 02 00 02` when offering
/// username/password beside no authentication.
pub fn socks5_greeting(buf: &mut Vec<u8>, offer_userpass: bool) {
    if offer_userpass {
        buf.extend_from_slice(&[5, 2, 0, 2]);
    } else {
        buf.extend_from_slice(&[5, 1, 0]);
    }
}

/// RFC 1929: `01 ULEN USER PLEN PASS` (each at most 255 bytes).
pub fn socks5_userpass(buf: &mut Vec<u8>, user: &[u8], pass: &[u8]) {
    let user = &user[..user.len().min(255)];
    let pass = &pass[..pass.len().min(255)];
    buf.push(1);
    buf.push(user.len() as u8);
    buf.extend_from_slice(user);
    buf.push(pass.len() as u8);
    buf.extend_from_slice(pass);
}

/// SOCKS 5 CONNECT to a domain name: `05 01 00 03 LEN HOST PORT`.
pub fn socks5_connect_domain(buf: &mut Vec<u8>, host: &str, port: u16) {
    let host = &host.as_bytes()[..host.len().min(255)];
    buf.extend_from_slice(&[5, 1, 0, 3, host.len() as u8]);
    buf.extend_from_slice(host);
    buf.extend_from_slice(&port.to_be_bytes());
}

/// SOCKS 5 CONNECT to an IPv4 address: `05 01 00 01 IP PORT`.
pub fn socks5_connect_ipv4(buf: &mut Vec<u8>, ip: Ipv4Addr, port: u16) {
    buf.extend_from_slice(&[5, 1, 0, 1]);
    buf.extend_from_slice(&ip.octets());
    buf.extend_from_slice(&port.to_be_bytes());
}

pub fn smtp_ehlo(buf: &mut Vec<u8>, name: &str) {
    let _ = write!(buf, "EHLO {name}\r\n");
}

pub fn smtp_mail_from(buf: &mut Vec<u8>, addr: &str) {
    let _ = write!(buf, "MAIL FROM:<{addr}>\r\n");
}

/// `RCPT TO:<local@domain>`.
pub fn smtp_rcpt_to(buf: &mut Vec<u8>, local: &str, domain: &str) {
    let _ = write!(buf, "RCPT TO:<{local}@{domain}>\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http() {
        let mut b = Vec::new();
        http_connect(&mut b, "mx.example.com", 25, None);
        assert_eq!(b, b"CONNECT mx.example.com:25 HTTP/1.0\r\n\r\n");
        b.clear();
        http_connect(&mut b, "203.0.113.7", 6667, Some("x"));
        assert_eq!(
            b,
            b"CONNECT 203.0.113.7:6667 HTTP/1.0\r\nUser-Agent: x\r\n\r\n"
        );
        b.clear();
        judge_get(&mut b, "judge.example", "/azenv.php");
        assert!(b.starts_with(
            b"GET http://judge.example/azenv.php HTTP/1.1\r\nHost: judge.example\r\n"
        ));
        assert!(b.ends_with(b"Connection: close\r\n\r\n"));
    }

    #[test]
    fn socks4() {
        let mut b = Vec::new();
        socks4_connect(&mut b, Ipv4Addr::new(200, 1, 2, 3), 25, b"bob");
        assert_eq!(b, [4, 1, 0, 25, 200, 1, 2, 3, b'b', b'o', b'b', 0]);
        b.clear();
        socks4a_connect(&mut b, "mx.a.br", 587, b"");
        let mut want = vec![4, 1, 0x02, 0x4B, 0, 0, 0, 1, 0];
        want.extend_from_slice(b"mx.a.br\0");
        assert_eq!(b, want);
    }

    #[test]
    fn socks5() {
        let mut b = Vec::new();
        socks5_greeting(&mut b, false);
        assert_eq!(b, [5, 1, 0]);
        b.clear();
        socks5_greeting(&mut b, true);
        assert_eq!(b, [5, 2, 0, 2]);
        b.clear();
        socks5_userpass(&mut b, b"user", b"pw");
        assert_eq!(b, [1, 4, b'u', b's', b'e', b'r', 2, b'p', b'w']);
        b.clear();
        socks5_connect_domain(&mut b, "mx.b", 25);
        assert_eq!(b, [5, 1, 0, 3, 4, b'm', b'x', b'.', b'b', 0, 25]);
        b.clear();
        socks5_connect_ipv4(&mut b, Ipv4Addr::new(61, 2, 3, 4), 6667);
        assert_eq!(b, [5, 1, 0, 1, 61, 2, 3, 4, 0x1A, 0x0B]);
    }

    #[test]
    fn smtp() {
        let mut b = Vec::new();
        smtp_ehlo(&mut b, "pc1");
        smtp_mail_from(&mut b, "a@b.tw");
        smtp_rcpt_to(&mut b, "c", "d.br");
        assert_eq!(b, b"EHLO pc1\r\nMAIL FROM:<a@b.tw>\r\nRCPT TO:<c@d.br>\r\n");
    }
}
