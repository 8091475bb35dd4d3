//! Greeting, personas, commands and their errors.

use super::*;
use smtp::Persona;
use spampot_sdk::{Action, Emulator};

fn conn_from(ip: &str) -> ConnInfo {
    let mut conn = ConnInfo::test(25);
    conn.peer_addr = ip.into();
    conn
}

fn banner(config: Config, conn: ConnInfo) -> String {
    let mut h = Harness::<Smtp>::with_config(conn, config);
    h.open();
    h.take_text()
}

#[test]
fn describes_itself() {
    let info = Smtp::describe();
    assert_eq!(info.name, "smtp");
    assert_eq!(info.protocols, ["smtp"]);
    assert_eq!(info.default_ports, [25, 587, 2525]);
}

#[test]
fn postfix_greeting() {
    let config = Config::default()
        .with("persona", "postfix")
        .with("hostname", HOST);
    let text = banner(config, ConnInfo::test(25));
    assert!(
        text.starts_with("220 mail.example.com.br ESMTP Postfix"),
        "{text}"
    );
    assert!(
        text.ends_with("\r\n") && text.matches("\r\n").count() == 1,
        "{text}"
    );
}

#[test]
fn sendmail_greeting_has_version_and_rfc2822_date() {
    let config = Config::default()
        .with("persona", "sendmail")
        .with("hostname", HOST);
    let text = banner(config, ConnInfo::test(25));
    let rest = text
        .strip_prefix("220 mail.example.com.br ESMTP Sendmail 8.14.")
        .unwrap_or_else(|| panic!("{text}"));
    let (version, date) = rest.split_once("; ").expect("date after version");
    let (a, b) = version.split_once('/').expect("x/y version");
    assert_eq!(format!("8.14.{a}"), b, "{text}");
    // "Sat, 21 Mar 2009 11:19:07 -0300\r\n"
    let date = date.strip_suffix("\r\n").unwrap();
    let parts: Vec<&str> = date.split(' ').collect();
    assert_eq!(parts.len(), 6, "{date}");
    assert!(["Sun,", "Mon,", "Tue,", "Wed,", "Thu,", "Fri,", "Sat,"].contains(&parts[0]));
    assert_eq!(parts[1].len(), 2);
    assert_eq!(parts[3].len(), 4);
    assert_eq!(parts[4].len(), 8);
    assert_eq!(parts[5], "-0300", "a .br host keeps Brasília time");
}

#[test]
fn same_client_same_server_and_clients_differ() {
    let mut seen_postfix = false;
    let mut seen_sendmail = false;
    let mut names = std::collections::HashSet::new();
    for n in 1..=60 {
        let ip = format!("203.0.113.{n}");
        let a = Harness::<Smtp>::new(conn_from(&ip));
        let b = Harness::<Smtp>::new(conn_from(&ip));
        assert_eq!(a.emulator().persona(), b.emulator().persona());
        assert_eq!(a.emulator().hostname(), b.emulator().hostname());
        let first = banner(Config::default(), conn_from(&ip));
        let second = banner(Config::default(), conn_from(&ip));
        // Sendmail's banner carries the time: compare up to it.
        let stable = |s: &str| s.split(';').next().unwrap().to_owned();
        assert_eq!(stable(&first), stable(&second));
        assert!(first.contains(a.emulator().hostname()));
        let name = a.emulator().hostname().to_owned();
        assert!(
            name.ends_with(".br") && name.split('.').count() == 4,
            "{name}"
        );
        names.insert(name);
        match a.emulator().persona() {
            Persona::Postfix => seen_postfix = true,
            Persona::Sendmail => seen_sendmail = true,
        }
    }
    assert!(seen_postfix && seen_sendmail);
    assert!(names.len() > 10, "{names:?}");
}

#[test]
fn hostname_and_persona_config_override_the_hash() {
    for ip in ["203.0.113.1", "203.0.113.2", "203.0.113.3"] {
        let config = Config::default()
            .with("hostname", "relay.test")
            .with("persona", "Sendmail");
        let h = Harness::<Smtp>::with_config(conn_from(ip), config);
        assert_eq!(h.emulator().hostname(), "relay.test");
        assert_eq!(h.emulator().persona(), Persona::Sendmail);
    }
}

#[test]
fn spliced_banner_names_the_target() {
    let mut h = Harness::<Smtp>::with_config(
        spliced_conn(),
        Config::default()
            .with("hostname", HOST)
            .with("persona", "postfix"),
    );
    h.open();
    let text = h.take_text();
    // The distribution tag, e.g. " (Debian/GNU)", depends on the client.
    assert!(
        text.starts_with("220 mx.example.com ESMTP Postfix"),
        "{text}"
    );
    assert!(!text.contains(HOST));
    // An address literal is no name: the usual name is used instead.
    let conn = ConnInfo::test(1080).spliced("socks5", Target::new("192.0.2.77", 25));
    let h = Harness::<Smtp>::with_config(conn, Config::default().with("hostname", HOST));
    assert_eq!(h.emulator().hostname(), HOST);
}

#[test]
fn ehlo_lists() {
    let mut h = postfix();
    h.feed(b"EHLO client.example\r\n");
    assert_eq!(
        h.take_text(),
        "250-mail.example.com.br\r\n250-PIPELINING\r\n250-SIZE 10485760\r\n250-VRFY\r\n\
         250-ETRN\r\n250-AUTH PLAIN LOGIN\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n\
         250 DSN\r\n"
    );
    let mut h = sendmail();
    h.feed(b"EHLO client.example\r\n");
    assert_eq!(
        h.take_text(),
        "250-mail.example.com.br Hello client.example [192.0.2.10], pleased to meet you\r\n\
         250-ENHANCEDSTATUSCODES\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 10485760\r\n\
         250-DSN\r\n250-ETRN\r\n250-AUTH LOGIN PLAIN\r\n250-DELIVERBY\r\n250 HELP\r\n"
    );
}

#[test]
fn ehlo_size_follows_the_cap() {
    let mut h = session_with(
        "postfix",
        Config::default().with("max_message_bytes", "5000"),
        ConnInfo::test(25),
    );
    h.feed(b"EHLO x\r\n");
    assert!(h.take_text().contains("250-SIZE 5000\r\n"));
}

#[test]
fn starttls_is_not_offered_nor_done() {
    for mut h in [postfix(), sendmail()] {
        h.feed(b"EHLO x\r\n");
        assert!(!h.take_text().contains("STARTTLS"));
        h.feed(b"STARTTLS\r\n");
        assert!(h.take_text().starts_with("502 5.5.1 "));
        assert!(!h.closed());
    }
}

#[test]
fn helo_replies() {
    let mut h = postfix();
    h.feed(b"HELO client\r\nHELO\r\n");
    assert_eq!(
        h.take_text(),
        "250 mail.example.com.br\r\n501 Syntax: HELO hostname\r\n"
    );
    let mut h = sendmail();
    h.feed(b"helo client\r\nEHLO\r\n");
    assert_eq!(
        h.take_text(),
        "250 mail.example.com.br Hello client [192.0.2.10], pleased to meet you\r\n\
         501 5.0.0 EHLO requires domain address\r\n"
    );
}

#[test]
fn mail_from_variants() {
    let cases = [
        "MAIL FROM:<a@b.example>",
        "MAIL FROM: <a@b.example>",
        "mail from:<a@b.example> SIZE=1000",
        "MAIL FROM:<a@b.example> BODY=8BITMIME SIZE=1000",
        "MAIL FROM: <a@b.example> BODY=7BIT",
        "MAIL FROM:a@b.example",
        "MAIL FROM : <a@b.example> AUTH=<> RET=HDRS ENVID=x",
    ];
    for cmd in cases {
        let mut h = postfix();
        h.feed(
            format!("EHLO x\r\n{cmd}\r\nRCPT TO:<r@example.org>\r\nDATA\r\nhi\r\n.\r\n").as_bytes(),
        );
        let text = h.take_text();
        assert!(
            text.contains("250 DSN\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 "),
            "{cmd}: {text}"
        );
        assert_eq!(
            h.artifacts()[0].get("mail_from"),
            Some("a@b.example"),
            "{cmd}"
        );
    }
    let mut h = sendmail();
    h.feed(b"MAIL FROM:<>\r\n");
    assert_eq!(h.take_text(), "250 2.1.0 <>... Sender ok\r\n");
}

#[test]
fn mail_from_errors() {
    let mut h = postfix();
    h.feed(b"MAIL FROM:<a@b> SIZE=20000000\r\n");
    assert_eq!(
        h.take_text(),
        "552 5.3.4 Message size exceeds fixed limit\r\n"
    );
    h.feed(b"MAIL FROM:<a@b> SIZE=99999999999999999999999\r\n");
    assert_eq!(
        h.take_text(),
        "552 5.3.4 Message size exceeds fixed limit\r\n"
    );
    h.feed(b"MAIL FROM:<a@b> SIZE=lots\r\n");
    assert_eq!(h.take_text(), "501 5.5.4 Bad message size syntax\r\n");
    h.feed(b"MAIL FROM:<a@b> BODY=9BIT\r\n");
    assert_eq!(h.take_text(), "501 5.5.4 Unsupported BODY parameter\r\n");
    h.feed(b"MAIL TO:<a@b>\r\nMAIL FROM:\r\nMAIL FROM:<a@b\r\n");
    assert_eq!(
        h.take_text(),
        "501 5.5.4 Syntax: MAIL FROM:<address>\r\n".repeat(3)
    );
    // None of these opened a transaction.
    h.feed(b"RCPT TO:<r@x>\r\n");
    assert_eq!(h.take_text(), "503 5.5.1 Error: need MAIL command\r\n");

    let mut h = sendmail();
    h.feed(b"MAIL FROM:<a@b> SIZE=10485761\r\n");
    assert_eq!(
        h.take_text(),
        "552 5.2.3 Message size exceeds fixed maximum message size (10485760)\r\n"
    );
    h.feed(b"MAIL FROM:<a@b> SIZE=10485760\r\n");
    assert_eq!(h.take_text(), "250 2.1.0 <a@b>... Sender ok\r\n");
}

#[test]
fn out_of_order_commands() {
    let mut h = postfix();
    h.feed(b"RCPT TO:<a@b>\r\nDATA\r\nMAIL FROM:<a@b>\r\nDATA\r\nMAIL FROM:<c@d>\r\n");
    assert_eq!(
        h.take_text(),
        "503 5.5.1 Error: need MAIL command\r\n\
         503 5.5.1 Error: need RCPT command\r\n\
         250 2.1.0 Ok\r\n\
         503 5.5.1 Error: need RCPT command\r\n\
         503 5.5.1 Error: nested MAIL command\r\n"
    );
    let mut h = sendmail();
    h.feed(b"RCPT TO:<a@b>\r\nMAIL FROM:<a@b>\r\nDATA\r\nMAIL FROM:<a@b>\r\n");
    assert_eq!(
        h.take_text(),
        "503 5.0.0 Need MAIL before RCPT\r\n\
         250 2.1.0 <a@b>... Sender ok\r\n\
         503 5.0.0 Need RCPT (recipient)\r\n\
         503 5.5.0 Sender already specified\r\n"
    );
}

#[test]
fn mail_before_helo_is_accepted() {
    let mut h = postfix();
    h.feed(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r\n.\r\n");
    let text = h.take_text();
    assert!(
        text.starts_with("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 "),
        "{text}"
    );
    postfix_queue_id(&text);
    assert_eq!(h.artifacts()[0].get("helo"), Some(""));
}

#[test]
fn many_recipients_are_counted() {
    let mut h = postfix();
    let rcpts: Vec<String> = (0..300).map(|n| format!("user{n}@example.org")).collect();
    let refs: Vec<&str> = rcpts.iter().map(String::as_str).collect();
    start_message(&mut h, &refs);
    h.feed(b"Subject: x\r\n\r\nbuy\r\n.\r\n");
    let event = h.events("smtp.message")[0];
    assert_eq!(int(event, "rcpt_count"), 300);
    assert_eq!(texts(event, "rcpt_to"), rcpts.as_slice());
    let meta: Vec<&str> = h.artifacts()[0]
        .meta
        .iter()
        .filter(|(k, _)| k == "rcpt_to")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(meta, refs);
}

#[test]
fn recipient_cap_answers_452() {
    let mut h = session_with(
        "postfix",
        Config::default()
            .with("max_recipients", "3")
            .with("max_errors", "2"),
        ConnInfo::test(25),
    );
    h.feed(b"MAIL FROM:<a@b>\r\n");
    h.take_sent();
    h.feed(&b"RCPT TO:<r@x>\r\n".repeat(6));
    assert_eq!(
        h.take_text(),
        format!(
            "{}{}",
            "250 2.1.5 Ok\r\n".repeat(3),
            "452 4.5.3 Error: too many recipients\r\n".repeat(3)
        )
    );
    assert!(!h.closed(), "overshoot is not an error");
    h.feed(b"DATA\r\n.\r\n");
    let event = h.events("smtp.message")[0];
    assert_eq!(int(event, "rcpt_count"), 3);
    assert_eq!(int(event, "rcpt_refused"), 3);

    let mut h = sendmail();
    h.feed(b"RCPT TO:<>\r\n");
    assert_eq!(h.take_text(), "503 5.0.0 Need MAIL before RCPT\r\n");
    h.feed(b"MAIL FROM:<a@b>\r\nRCPT TO:<>\r\nRCPT TO: <r@x>\r\nRCPT TO:r2@x NOTIFY=NEVER\r\n");
    assert_eq!(
        h.take_text(),
        "250 2.1.0 <a@b>... Sender ok\r\n\
         501 5.5.2 Syntax error in parameters scanning \"to\"\r\n\
         250 2.1.5 <r@x>... Recipient ok\r\n\
         250 2.1.5 <r2@x>... Recipient ok\r\n"
    );
}

#[test]
fn rset_noop_vrfy_help_expn_etrn() {
    let mut h = postfix();
    h.feed(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRSET\r\nDATA\r\nNOOP\r\nVRFY root\r\nVRFY\r\nHELP\r\nEXPN staff\r\nETRN example.org\r\n");
    assert_eq!(
        h.take_text(),
        "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok\r\n\
         503 5.5.1 Error: need RCPT command\r\n250 2.0.0 Ok\r\n\
         252 2.0.0 root\r\n501 5.5.4 Syntax: VRFY address\r\n\
         214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP VRFY ETRN AUTH QUIT\r\n\
         502 5.5.2 Error: command not recognized\r\n\
         458 Unable to queue messages\r\n"
    );
    let mut h = sendmail();
    h.feed(b"RSET\r\nNOOP\r\nVRFY root\r\nHELP\r\n");
    let text = h.take_text();
    assert!(
        text.starts_with(
            "250 2.0.0 Reset state\r\n250 2.0.0 OK\r\n\
         252 2.5.2 Cannot VRFY user; try RCPT to attempt delivery (or try finger)\r\n\
         214-2.0.0 This is sendmail version 8.14."
        ),
        "{text}"
    );
    assert!(text.ends_with("214 2.0.0 End of HELP info\r\n"), "{text}");
}

#[test]
fn quit_closes_and_ignores_the_rest() {
    let mut h = postfix();
    let actions = h.feed(b"NOOP\r\nQUIT\r\nNOOP\r\n");
    assert_eq!(
        actions,
        vec![
            Action::Send(b"250 2.0.0 Ok\r\n221 2.0.0 Bye\r\n".to_vec()),
            Action::Close
        ]
    );
    assert!(h.closed());
    let mut h = sendmail();
    h.feed(b"quit\n");
    assert_eq!(
        h.take_text(),
        "221 2.0.0 mail.example.com.br closing connection\r\n"
    );
    assert!(h.closed());
}

#[test]
fn unknown_and_empty_commands() {
    let mut h = postfix();
    h.feed(b"XYZZY now\r\n\r\nBDAT 10 LAST\r\n");
    assert_eq!(
        h.take_text(),
        "500 5.5.2 Error: command not recognized\r\n500 5.5.2 Error: bad syntax\r\n\
         500 5.5.2 Error: command not recognized\r\n"
    );
    let mut h = sendmail();
    h.feed(b"XYZZY now\r\n");
    assert_eq!(
        h.take_text(),
        "500 5.5.1 Command unrecognized: \"XYZZY\"\r\n"
    );
}

#[test]
fn postfix_hangs_up_on_web_and_proxy_requests() {
    let mut h = postfix();
    h.feed(b"CONNECT mx.example.com:25 HTTP/1.0\r\n\r\n");
    assert_eq!(h.take_text(), "500 5.5.2 Error: command not recognized\r\n");
    assert!(h.closed());
}

#[test]
fn overlong_command_line_is_refused_and_the_next_works() {
    let mut h = postfix();
    let ok = format!("VRFY {}\r\n", "a".repeat(512 - 5));
    h.feed(ok.as_bytes());
    assert!(h.take_text().starts_with("252 "), "512 octets are fine");
    let long = format!("VRFY {}\r\nNOOP\r\n", "a".repeat(600));
    h.feed(long.as_bytes());
    assert_eq!(
        h.take_text(),
        "500 5.5.0 Error: line too long\r\n250 2.0.0 Ok\r\n"
    );
    // Split across packets, reported once.
    h.feed(&[b'b'; 700]);
    h.feed(&[b'b'; 700]);
    h.feed(b"bbb\r\nNOOP\r\n");
    assert_eq!(
        h.take_text(),
        "500 5.5.0 Error: line too long\r\n250 2.0.0 Ok\r\n"
    );
}

#[test]
fn too_many_errors_ends_the_session() {
    let mut h = postfix();
    h.feed(&b"BOGUS\r\n".repeat(19));
    assert!(!h.closed());
    h.take_sent();
    h.feed(b"BOGUS\r\nNOOP\r\n");
    assert_eq!(
        h.take_text(),
        "500 5.5.2 Error: command not recognized\r\n\
         421 4.7.0 mail.example.com.br Error: too many errors\r\n"
    );
    assert!(h.closed());

    let mut h = session_with(
        "sendmail",
        Config::default().with("max_errors", "2"),
        ConnInfo::test(25),
    );
    h.feed(b"MAIL FROM:<a@b>\r\nMAIL FROM:<a@b>\r\nNOOP\r\nXX\r\n");
    assert!(
        h.take_text()
            .ends_with("421 4.7.0 mail.example.com.br Too many errors; closing connection\r\n")
    );
    assert!(h.closed());
}

#[test]
fn idle_timeout_says_421_and_closes() {
    for mut h in [postfix(), sendmail()] {
        h.feed(b"EHLO x\r\n");
        h.take_sent();
        let actions = h.timeout();
        assert_eq!(
            actions,
            vec![
                Action::Send(b"421 4.4.2 mail.example.com.br Error: timeout exceeded\r\n".to_vec()),
                Action::Close
            ]
        );
        assert!(h.closed());
    }
}

#[test]
fn bare_lf_commands() {
    let mut h = postfix();
    h.feed(b"HELO x\nMAIL FROM:<a@b>\nRCPT TO:<c@d>\nDATA\nhello\n.\nQUIT\n");
    let text = h.take_text();
    assert!(text.starts_with("250 mail.example.com.br\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 "));
    assert!(text.ends_with("\r\n221 2.0.0 Bye\r\n"), "{text}");
    assert_eq!(h.artifacts()[0].data, b"hello\n");
}
