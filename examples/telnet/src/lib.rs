//! An example spampot plugin, written only against `spampot-sdk`: a Telnet
//! login prompt that records the user names and passwords bots try, then
//! says "Login incorrect" like a real `login(1)`. Copy this crate to start a
//! new emulator.
//!
//! Config (`[plugins.telnet]`): `hostname` (shown in the banner) and
//! `max_attempts` (tries before the connection is closed).

use spampot_sdk::{
    Config, ConnInfo, Context, Emulator, Event, LineBuffer, PluginInfo, export_emulator,
};

/// Longest line a client may type; bots send short ones, scanners may not.
const MAX_LINE: usize = 512;

/// Where the dialogue stands.
enum Prompt {
    Login,
    Password { username: String },
}

pub struct Telnet {
    hostname: String,
    max_attempts: u32,
    attempts: u32,
    prompt: Prompt,
    lines: LineBuffer,
}

impl Emulator for Telnet {
    fn describe() -> PluginInfo {
        PluginInfo::new("telnet", env!("CARGO_PKG_VERSION"))
            .protocols(["telnet"])
            .ports(&[23, 2323])
    }

    fn start(_conn: &ConnInfo, config: &Config) -> Self {
        Telnet {
            hostname: config.get("hostname").unwrap_or("router").to_owned(),
            max_attempts: config.get_or("max_attempts", 3),
            attempts: 0,
            prompt: Prompt::Login,
            lines: LineBuffer::new(MAX_LINE),
        }
    }

    fn on_open(&mut self, cx: &mut Context) {
        cx.send(format!("\r\n{} login: ", self.hostname));
    }

    fn on_data(&mut self, data: &[u8], cx: &mut Context) {
        self.lines.push(data);
        while let Some(line) = self.lines.next_line() {
            if cx.is_ending() {
                return;
            }
            let Ok(line) = line else {
                cx.send("\r\nLogin incorrect\r\n");
                cx.close();
                return;
            };
            let text = String::from_utf8_lossy(strip_telnet_commands(&line)).into_owned();
            self.answer(text, cx);
        }
    }
}

impl Telnet {
    fn answer(&mut self, text: String, cx: &mut Context) {
        match std::mem::replace(&mut self.prompt, Prompt::Login) {
            Prompt::Login => {
                self.prompt = Prompt::Password { username: text };
                cx.send("Password: ");
            }
            Prompt::Password { username } => {
                cx.emit(
                    Event::new("credential")
                        .text("protocol", "telnet")
                        .text("username", username)
                        .text("password", text),
                );
                self.attempts += 1;
                cx.send("\r\nLogin incorrect\r\n");
                if self.attempts >= self.max_attempts {
                    cx.close();
                } else {
                    cx.send(format!("{} login: ", self.hostname));
                }
            }
        }
    }
}

/// Drop Telnet option negotiation (IAC sequences) that clients prefix to
/// their first line.
fn strip_telnet_commands(line: &[u8]) -> &[u8] {
    let mut rest = line;
    while let [0xff, _, _, tail @ ..] = rest {
        rest = tail;
    }
    rest
}

export_emulator!(Telnet);

/// Logins bots try, with and without option negotiation: what the fuzz
/// tests mutate, natively and (in the sensor's tests) as a component.
pub const CONVERSATIONS: &[&[u8]] = &[
    b"admin\r\n1234\r\nroot\r\nroot\r\nuser\r\npass\r\n",
    b"\xff\xfd\x01\xff\xfb\x1fguest\npw\n\xff\xfe\x03support\r\x00support\r\n",
];

/// Telnet's own fragments for the fuzzer to insert: IAC commands, an
/// unfinished subnegotiation, an escaped 0xff.
pub const TOKENS: &[&[u8]] = &[
    b"\xff\xfb\x01",
    b"\xff\xfa\x18\x00",
    b"\xff\xf0",
    b"\xff\xff",
];

#[cfg(test)]
mod tests {
    use super::*;
    use spampot_sdk::testing::Harness;

    #[test]
    fn records_credentials_and_closes_after_max_attempts() {
        let config = Config::default()
            .with("hostname", "gw")
            .with("max_attempts", "2");
        let mut h = Harness::<Telnet>::with_config(ConnInfo::test(23), config);
        h.open();
        assert_eq!(h.take_text(), "\r\ngw login: ");
        h.feed(b"admin\r\n");
        assert_eq!(h.take_text(), "Password: ");
        h.feed(b"1234\r\nroot\r\nroot\r\n");
        assert_eq!(
            h.take_text(),
            "\r\nLogin incorrect\r\ngw login: Password: \r\nLogin incorrect\r\n"
        );
        assert!(h.closed());
        let creds = h.events("credential");
        assert_eq!(creds.len(), 2);
        assert_eq!(
            creds[0].get("username").and_then(|v| v.as_text()),
            Some("admin")
        );
        assert_eq!(
            creds[0].get("password").and_then(|v| v.as_text()),
            Some("1234")
        );
    }

    #[test]
    fn strips_option_negotiation_before_the_user_name() {
        let mut h = Harness::<Telnet>::new(ConnInfo::test(23));
        h.open();
        h.feed(b"\xff\xfd\x01\xff\xfb\x1fguest\n");
        h.feed(b"pw\n");
        let creds = h.events("credential");
        assert_eq!(
            creds[0].get("username").and_then(|v| v.as_text()),
            Some("guest")
        );
    }

    /// Mutated logins: no panic, and TCP's cuts do not change the answer
    /// (option negotiation split from the name, a CR apart from its LF).
    #[test]
    fn mutated_logins_hold() {
        let summary = spampot_sdk::testing::Fuzz::new(CONVERSATIONS)
            .tokens(TOKENS)
            .conn(ConnInfo::test(23))
            .run::<Telnet>();
        assert!(summary.closed > summary.cases / 10, "{summary:?}");
    }

    #[test]
    fn an_overlong_line_ends_the_session() {
        let mut h = Harness::<Telnet>::new(ConnInfo::test(23));
        h.open();
        h.feed(&[b'a'; 2 * MAX_LINE]);
        assert!(h.closed());
    }
}
