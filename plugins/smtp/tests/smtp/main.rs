//! The SMTP plugin driven through the SDK's native harness, as the host
//! would drive it: byte streams in, replies, artifacts and events out.

mod auth;
mod data;
mod dialogue;
mod fuzz;
mod probe;
mod store;

use smtp::Smtp;
use spampot_sdk::testing::Harness;
pub use spampot_sdk::testing::{flag, int, text, texts};
use spampot_sdk::{Config, ConnInfo, Target};

/// The host name the tests configure, so replies can be compared exactly.
pub const HOST: &str = "mail.example.com.br";

/// An opened session with this persona and extra config; the banner is taken.
pub fn session_with(persona: &str, config: Config, conn: ConnInfo) -> Harness<Smtp> {
    let config = config.with("persona", persona).with("hostname", HOST);
    let mut h = Harness::<Smtp>::with_config(conn, config);
    h.open();
    h.take_sent();
    h
}

pub fn postfix() -> Harness<Smtp> {
    session_with("postfix", Config::default(), ConnInfo::test(25))
}

pub fn sendmail() -> Harness<Smtp> {
    session_with("sendmail", Config::default(), ConnInfo::test(25))
}

/// A connection that the `http-proxy` plugin spliced to `mx.example.com:25`.
pub fn spliced_conn() -> ConnInfo {
    ConnInfo::test(8080).spliced("http-proxy", Target::new("mx.example.com", 25))
}

/// Feed `EHLO`, `MAIL`, one `RCPT` per recipient and `DATA`; assert the
/// Postfix-style answers and take them.
pub fn start_message(h: &mut Harness<Smtp>, rcpts: &[&str]) {
    let mut cmds = String::from("EHLO client.example\r\nMAIL FROM:<spammer@example.net>\r\n");
    for r in rcpts {
        cmds.push_str(&format!("RCPT TO:<{r}>\r\n"));
    }
    cmds.push_str("DATA\r\n");
    h.feed(cmds.as_bytes());
    let text = h.take_text();
    assert!(
        text.ends_with("354 End data with <CR><LF>.<CR><LF>\r\n"),
        "{text}"
    );
}

/// The queue id in a Postfix `250 2.0.0 Ok: queued as ID` reply.
pub fn postfix_queue_id(reply: &str) -> String {
    let id = reply
        .lines()
        .find_map(|l| l.strip_prefix("250 2.0.0 Ok: queued as "))
        .unwrap_or_else(|| panic!("no queued reply in {reply:?}"));
    assert!((10..=12).contains(&id.len()), "{id}");
    assert!(
        id.bytes()
            .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)),
        "{id}"
    );
    id.to_owned()
}
