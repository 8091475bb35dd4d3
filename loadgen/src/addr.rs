//! The loopback rule: every target must be an IP literal in 127.0.0.0/8 or
//! `::1` (an IPv4-mapped `::ffff:127.x.y.z` is loopback too). Hostnames are
//! refused rather than resolved, so no resolver answer can send traffic off
//! the machine.

use std::net::{IpAddr, SocketAddr};

/// Whether `ip` is a loopback address this tool may talk to.
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// Parses `IP:PORT` (`[::1]:PORT` for IPv6) and checks the loopback rule.
/// The error says why in a sentence fit for the command line.
pub fn parse_loopback(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    let addr: SocketAddr = s.parse().map_err(|_| {
        format!(
            "`{s}` is not an IP literal with a port (hostnames are refused, never resolved: \
             write 127.0.0.1:PORT or [::1]:PORT)"
        )
    })?;
    if !is_loopback(addr.ip()) {
        return Err(format!(
            "`{s}` is not a loopback address: spampot-loadgen only sends to 127.0.0.0/8 and ::1"
        ));
    }
    if addr.port() == 0 {
        return Err(format!("`{s}`: port 0 is not a listener"));
    }
    Ok(addr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_accepted() {
        for s in [
            "127.0.0.1:25",
            "127.255.255.254:1080",
            "127.1.2.3:8080",
            "[::1]:25",
            "[::ffff:127.0.0.1]:25",
            " 127.0.0.1:25 ",
        ] {
            assert!(parse_loopback(s).is_ok(), "{s}");
        }
        assert_eq!(parse_loopback("127.0.0.1:2525").unwrap().port(), 2525);
    }

    #[test]
    fn others_refused() {
        for s in [
            "10.0.0.1:25",
            "192.168.1.1:25",
            "0.0.0.0:25",
            "8.8.8.8:53",
            "[::ffff:1.2.3.4]:25",
            "[::]:25",
            "[fe80::1]:25",
            "[2001:db8::1]:25",
        ] {
            let e = parse_loopback(s).unwrap_err();
            assert!(e.contains("not a loopback"), "{s}: {e}");
        }
    }

    #[test]
    fn hostnames_and_junk_refused() {
        for s in [
            "localhost:25",
            "mx.example.com:25",
            "127.0.0.1",
            "::1",
            "",
            "127.0.0.1:99999",
        ] {
            let e = parse_loopback(s).unwrap_err();
            assert!(e.contains("not an IP literal"), "{s}: {e}");
        }
        assert!(
            parse_loopback("127.0.0.1:0")
                .unwrap_err()
                .contains("port 0")
        );
    }
}
