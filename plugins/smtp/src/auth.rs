//! SMTP AUTH (RFC 4954) for the PLAIN and LOGIN mechanisms: just enough to
//! take the credentials a spammer tries (often stolen ones) and say yes.

/// A mechanism the personas offer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Login,
}

impl Mechanism {
    /// Parse the mechanism word of an `AUTH` command.
    pub fn parse(word: &str) -> Option<Self> {
        if word.eq_ignore_ascii_case("PLAIN") {
            Some(Mechanism::Plain)
        } else if word.eq_ignore_ascii_case("LOGIN") {
            Some(Mechanism::Login)
        } else {
            None
        }
    }

    /// The name in `credential` events.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
        }
    }
}

/// `Username:` and `Password:`, base64-encoded, as every server prompts.
pub const LOGIN_USERNAME: &str = "VXNlcm5hbWU6";
pub const LOGIN_PASSWORD: &str = "UGFzc3dvcmQ6";

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

/// The user name and password of a PLAIN response
/// (`authzid NUL authcid NUL passwd`). Tolerates clients that drop the
/// authorization id (`authcid NUL passwd`); `None` without any NUL.
pub fn parse_plain(decoded: &[u8]) -> Option<(String, String)> {
    let parts: Vec<&[u8]> = decoded.splitn(3, |&b| b == 0).collect();
    let (user, pass) = match parts.as_slice() {
        [authzid, authcid, pass] => {
            // Some clients put the user in the authorization id only.
            let user = if authcid.is_empty() { authzid } else { authcid };
            (*user, *pass)
        }
        [user, pass] => (*user, *pass),
        _ => return None,
    };
    Some((text(user), text(pass)))
}

/// Credentials as text for the event log; not UTF-8 is kept lossily.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
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

    #[test]
    fn plain_forms() {
        assert_eq!(
            parse_plain(b"\0user\0pw"),
            Some(("user".into(), "pw".into()))
        );
        assert_eq!(
            parse_plain(b"admin\0user\0pw"),
            Some(("user".into(), "pw".into()))
        );
        assert_eq!(
            parse_plain(b"user\0\0pw"),
            Some(("user".into(), "pw".into()))
        );
        assert_eq!(parse_plain(b"user\0pw"), Some(("user".into(), "pw".into())));
        assert_eq!(parse_plain(b"userpw"), None);
    }
}
