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

pub use spampot_sdk::text::decode_base64;

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
