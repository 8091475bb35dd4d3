//! Mutated SMTP dialogues: no panic, and TCP's cuts do not change the answer.

use smtp::Smtp;
use spampot_sdk::testing::Fuzz;
use spampot_sdk::{Config, ConnInfo};

use crate::{HOST, spliced_conn};

/// Whole dialogues a spam tool, a relay tester and a broken client send.
const DIALOGUES: &[&[u8]] = &[
    b"EHLO client.example\r\nMAIL FROM:<spammer@example.net>\r\nRCPT TO:<a@example.com>\r\n\
      RCPT TO:<b@example.com>\r\nRCPT TO:<c@example.org>\r\nDATA\r\nSubject: cheap pills\r\n\
      From: <spammer@example.net>\r\n\r\nBuy now.\r\n..a dot-stuffed line\r\n.\r\nQUIT\r\n",
    b"HELO x\r\nMAIL FROM: <a@b>\r\nRCPT TO: <victim@example.com>\r\nDATA\r\nhi\r\n.\r\n\
      MAIL FROM:<a@b>\r\nRCPT TO:<second@example.com>\r\nDATA\r\nagain\r\n.\r\nRSET\r\nQUIT\r\n",
    b"EHLO x\r\nAUTH LOGIN\r\ndXNlcg==\r\ncGFzcw==\r\nAUTH PLAIN AHVzZXIAcGFzcw==\r\n\
      MAIL FROM:<a@b> SIZE=100 BODY=8BITMIME\r\nRCPT TO:<c@d> NOTIFY=NEVER\r\nDATA\r\n.\r\nQUIT\r\n",
    b"EHLO x\nMAIL FROM:<a@b>\nRCPT TO:<c@d>\nDATA\nbare line ends\n.\nQUIT\n",
    b"EHLO x\r\nVRFY root\r\nEXPN staff\r\nHELP\r\nNOOP\r\nSTARTTLS\r\nBDAT 5 LAST\r\nhello\
      TURN\r\nETRN x\r\nGET / HTTP/1.0\r\n\r\n",
];

#[test]
fn mutated_dialogues_never_panic_and_do_not_depend_on_cuts() {
    for persona in ["postfix", "sendmail"] {
        let config = Config::default()
            .with("persona", persona)
            .with("hostname", HOST);
        let summary = Fuzz::new(DIALOGUES)
            .conn(ConnInfo::test(25))
            .config(config)
            .run::<Smtp>();
        // The mutations leave many messages whole: the deep states are reached.
        assert!(
            summary.stored > summary.cases / 50,
            "{persona}: {summary:?}"
        );
        assert!(summary.closed > 0, "{persona}: {summary:?}");
    }
}

#[test]
fn mutated_dialogues_after_a_splice_hold_too() {
    let summary = Fuzz::new(DIALOGUES)
        .conn(spliced_conn())
        .config(Config::default().with("hostname", HOST))
        .run::<Smtp>();
    assert!(summary.stored > 0, "{summary:?}");
}
