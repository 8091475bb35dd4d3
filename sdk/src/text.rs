//! Decoding helpers protocols share (credentials arrive base64-encoded in
//! SMTP AUTH, HTTP `Proxy-Authorization`, ...).

/// Decode standard base64 (RFC 4648), padding optional, surrounding
/// whitespace ignored. A lone `=` is the empty string (RFC 4954's empty
/// initial response). `None` for anything else that is not base64.
pub fn decode_base64(input: &[u8]) -> Option<Vec<u8>> {
    let input = input.trim_ascii();
    if input == b"=" {
        return Some(Vec::new());
    }
    let data = input
        .strip_suffix(b"==")
        .or_else(|| input.strip_suffix(b"="))
        .unwrap_or(input);
    if data.len() % 4 == 1 || (data.len() != input.len() && !input.len().is_multiple_of(4)) {
        return None;
    }
    let mut out = Vec::with_capacity(data.len() * 3 / 4);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &c in data {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_round_trips_known_values() {
        assert_eq!(decode_base64(b"VXNlcm5hbWU6").unwrap(), b"Username:");
        assert_eq!(decode_base64(b"UGFzc3dvcmQ6").unwrap(), b"Password:");
        assert_eq!(decode_base64(b"Zg==").unwrap(), b"f");
        assert_eq!(decode_base64(b"Zg").unwrap(), b"f");
        assert_eq!(decode_base64(b"Zm8=").unwrap(), b"fo");
        assert_eq!(decode_base64(b"Zm9v").unwrap(), b"foo");
        assert_eq!(decode_base64(b" Zm9vYg== ").unwrap(), b"foob");
        assert_eq!(decode_base64(b"=").unwrap(), b"");
        assert_eq!(decode_base64(b"").unwrap(), b"");
        assert_eq!(decode_base64(b"+/+/").unwrap(), [0xfb, 0xff, 0xbf]);
    }

    #[test]
    fn base64_rejects_garbage() {
        for bad in [
            &b"!!!!"[..],
            b"Zm9v!",
            b"Z",
            b"Zm9vY",
            b"Z=g=",
            b"Zg=",
            b"Zm 9v",
            b"====",
        ] {
            assert_eq!(
                decode_base64(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
