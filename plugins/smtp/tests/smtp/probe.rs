//! Relay tests that name this sensor (ConnInfo::test: local 198.51.100.1,
//! which is C6336401 in hex and 3325256705 in decimal).

use super::*;

fn deliver(h: &mut Harness<Smtp>, rcpts: &[&str], body: &str) -> (bool, Option<String>) {
    start_message(h, rcpts);
    h.feed(format!("{body}\r\n.\r\n").as_bytes());
    postfix_queue_id(&h.take_text());
    let e = *h.events("smtp.message").last().unwrap();
    let probe = flag(e, "probe");
    let form = e
        .get("probe_form")
        .and_then(|v| v.as_text())
        .map(str::to_owned);
    let art = h.artifacts().last().unwrap();
    assert_eq!(art.get("probe"), Some(if probe { "true" } else { "false" }));
    (probe, form)
}

fn check(rcpts: &[&str], body: &str) -> (bool, Option<String>) {
    deliver(&mut postfix(), rcpts, body)
}

#[test]
fn probes_in_each_form_are_flagged() {
    for (body, form) in [
        ("Subject: test 198.51.100.1:25\r\n\r\nok", "dotted"),
        ("Subject: proxy check\r\n\r\nrelay=198.51.100.1", "dotted"),
        ("Subject: C6336401\r\n\r\n", "hex"),
        ("Subject: x\r\n\r\nid 0xc6336401:8080", "hex"),
        ("Subject: x\r\n\r\n3325256705", "decimal"),
    ] {
        let (probe, got) = check(&["me@checker.example"], body);
        assert!(probe, "{body}");
        assert_eq!(got.as_deref(), Some(form), "{body}");
    }
    // Two recipients are still a probe; so is an address in the envelope.
    assert!(check(&["a@x.example", "b@x.example"], "198.51.100.1").0);
    assert!(check(&["check-198.51.100.1@x.example"], "Subject: hi").0);
}

#[test]
fn other_messages_are_not_probes() {
    for (rcpts, body) in [
        (&["a@x.example"][..], "Subject: buy now\r\n\r\ncheap"),
        (&["a@x.example"], "Received: from 198.51.100.10 by 10.0.0.1"),
        (&["a@x.example"], "token AC63364012 and 33252567051"),
        (&["a@x", "b@x", "c@x"], "Subject: 198.51.100.1"),
    ] {
        assert!(!check(rcpts, body).0, "{body}");
    }
}

#[test]
fn probe_addrs_config_adds_public_addresses() {
    let config = Config::default().with("probe_addrs", "203.0.113.9, 2001:db8::9");
    let mut h = session_with("postfix", config, ConnInfo::test(25));
    assert!(deliver(&mut h, &["x@y"], "relay 203.0.113.9 works").0);
    assert!(deliver(&mut h, &["x@y"], "relay [2001:db8::9]:25 works").0);
    assert!(deliver(&mut h, &["x@y"], "relay 198.51.100.1 works").0);
    assert!(!deliver(&mut h, &["x@y"], "relay 203.0.113.8 works").0);
}

#[test]
fn spliced_probes_name_the_proxy() {
    // Through a proxy, the probe names the proxy (this sensor's address).
    let mut h = session_with("postfix", Config::default(), spliced_conn());
    assert!(deliver(&mut h, &["x@y"], "Subject: 198.51.100.1:8080").0);
    assert!(!deliver(&mut h, &["x@y"], "Subject: hello").0);
}
