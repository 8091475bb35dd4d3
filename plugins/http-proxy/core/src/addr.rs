//! Destinations: `host[:port]` authorities, IP literals in every form a
//! resolver accepts, and which addresses no public proxy would reach.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Parse `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 literal.
/// Returns the host (IPv6 without brackets) and the port if one was given.
/// `None` for an empty or malformed host, or a port outside 1–65535.
pub fn parse_authority(text: &str) -> Option<(String, Option<u16>)> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        inside.parse::<Ipv6Addr>().ok()?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':')?),
        };
        (inside, port)
    } else if text.matches(':').count() > 1 {
        text.parse::<Ipv6Addr>().ok()?;
        (text, None)
    } else {
        match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let valid_name = |h: &str| {
        !h.is_empty()
            && h.len() <= 255
            && h.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b':'))
    };
    if !valid_name(host) {
        return None;
    }
    let port = match port {
        // `host:` means the default port (RFC 3986 §3.2.3).
        None | Some("") => None,
        Some(p) if p.bytes().all(|b| b.is_ascii_digit()) && p.len() <= 5 => {
            match p.parse::<u16>() {
                Ok(0) | Err(_) => return None,
                Ok(n) => Some(n),
            }
        }
        Some(_) => return None,
    };
    Some((host.to_owned(), port))
}

/// An IPv4 address in any form `inet_aton` accepts, as resolvers (and so
/// proxies) do: one to four parts, each decimal, octal (`0` prefix) or hex
/// (`0x`), the last filling the remaining bytes — `127.1`, `0x7f000001`,
/// `2130706433`, `0177.0.0.1`.
pub fn parse_ipv4_loose(text: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = text.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut values = Vec::with_capacity(4);
    for part in &parts {
        let (digits, radix) =
            if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
                (hex, 16)
            } else if part.len() > 1 && part.starts_with('0') {
                (&part[1..], 8)
            } else {
                (*part, 10)
            };
        if digits.is_empty() && radix != 16 {
            return None;
        }
        let value = if digits.is_empty() {
            0
        } else {
            u32::from_str_radix(digits, radix).ok()?
        };
        values.push(value);
    }
    let (last, init) = values.split_last()?;
    let mut addr: u32 = 0;
    for (i, &v) in init.iter().enumerate() {
        if v > 255 {
            return None;
        }
        addr |= v << (24 - 8 * i);
    }
    let rest_bits = 32 - 8 * init.len() as u32;
    if rest_bits < 32 && *last >= (1u32 << rest_bits) {
        return None;
    }
    Some(Ipv4Addr::from(addr | last))
}

/// The host as an IP address, if it is a literal (IPv6 without brackets, or
/// IPv4 in any `inet_aton` form).
pub fn parse_ip(host: &str) -> Option<IpAddr> {
    if let Ok(v6) = host.parse::<Ipv6Addr>() {
        return Some(IpAddr::V6(v6));
    }
    parse_ipv4_loose(host).map(IpAddr::V4)
}

/// Whether a public proxy could not (or must not) reach `ip`: private,
/// shared (CGN), loopback, link-local, multicast, unspecified, broadcast,
/// documentation, benchmarking and other special-purpose ranges (RFC 6890).
pub fn is_reserved_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_reserved_v4(v4),
        IpAddr::V6(v6) => is_reserved_v6(v6),
    }
}

fn is_reserved_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    a == 0                                  // "this network"
        || a == 10                          // RFC 1918
        || (a == 100 && (64..128).contains(&b)) // shared address space (RFC 6598)
        || a == 127                         // loopback
        || (a == 169 && b == 254)           // link-local
        || (a == 172 && (16..32).contains(&b)) // RFC 1918
        || (a == 192 && b == 0 && c == 0)   // IETF protocol assignments
        || (a == 192 && b == 0 && c == 2)   // TEST-NET-1
        || (a == 192 && b == 168)           // RFC 1918
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || (a == 198 && b == 51 && c == 100) // TEST-NET-2
        || (a == 203 && b == 0 && c == 113) // TEST-NET-3
        || a >= 224 // multicast, reserved, broadcast
}

fn is_reserved_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_reserved_v4(v4);
    }
    let s = ip.segments();
    // NAT64 (64:ff9b::/96) reaches the embedded IPv4 address.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let o = ip.octets();
        return is_reserved_v4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    // Only global unicast (2000::/3) is routable; within it, documentation.
    s[0] & 0xe000 != 0x2000 || (s[0] == 0x2001 && s[1] == 0x0db8)
}

/// Whether `host` names a destination no public proxy would connect to: a
/// reserved IP literal, or `localhost` (which every resolver maps to the
/// loopback address). Other names are not resolved, so they pass.
pub fn is_reserved_host(host: &str) -> bool {
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    if name == "localhost" || name.ends_with(".localhost") {
        return true;
    }
    parse_ip(host).is_some_and(is_reserved_ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authorities() {
        let p = |s| parse_authority(s);
        assert_eq!(
            p("mx.example.com:25"),
            Some(("mx.example.com".into(), Some(25)))
        );
        assert_eq!(p("mx.example.com"), Some(("mx.example.com".into(), None)));
        assert_eq!(p("mx.example.com:"), Some(("mx.example.com".into(), None)));
        assert_eq!(p("[::1]:25"), Some(("::1".into(), Some(25))));
        assert_eq!(p("[2001:db8::1]"), Some(("2001:db8::1".into(), None)));
        assert_eq!(p("2001:db8::1"), Some(("2001:db8::1".into(), None)));
        for bad in [
            "", ":25", "a:0", "a:65536", "a:2x", "[::1", "[zz]:25", "a b:25", "a/b", "x@y:25",
        ] {
            assert_eq!(p(bad), None, "{bad}");
        }
    }

    #[test]
    fn loose_ipv4_forms() {
        let lo = Some(Ipv4Addr::new(127, 0, 0, 1));
        for form in [
            "127.0.0.1",
            "127.1",
            "0x7f000001",
            "2130706433",
            "0177.0.0.1",
            "0x7f.1",
        ] {
            assert_eq!(parse_ipv4_loose(form), lo, "{form}");
        }
        for bad in [
            "256.1.1.1",
            "1.2.3.4.5",
            "example",
            "1..2",
            "08.1.1.1",
            "4294967296",
        ] {
            assert_eq!(parse_ipv4_loose(bad), None, "{bad}");
        }
    }

    #[test]
    fn reserved_destinations() {
        for host in [
            "10.1.2.3",
            "172.20.0.1",
            "192.168.0.1",
            "100.64.0.1",
            "127.0.0.1",
            "127.1",
            "169.254.1.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "ff02::1",
            "::ffff:10.0.0.1",
            "2001:db8::25",
            "localhost",
            "LOCALHOST.",
            "mail.localhost",
            "2130706433",
        ] {
            assert!(is_reserved_host(host), "{host}");
        }
        for host in [
            "200.160.2.3",
            "8.8.8.8",
            "2a00:1450:4001:80c::1a",
            "mx.example.com",
            "100.128.0.1",
        ] {
            assert!(!is_reserved_host(host), "{host}");
        }
    }
}
