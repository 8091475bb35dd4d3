//! DATA: terminator anywhere in the stream, unstuffing, size cap, pipelining.

use super::*;
use spampot_sdk::Action;

/// The DATA stream of the split tests: stuffed dots, a dot inside a line, a
/// line of only two dots, an over-long line, then the end and a QUIT.
fn message_stream() -> (Vec<u8>, Vec<u8>) {
    let long = "x".repeat(1500);
    let wire = format!(
        "From: a@b\r\nSubject: .hi\r\n\r\n..leading dot\r\nmid.dot\r\n..\r\n...\r\n{long}\r\nend\r\n.\r\nQUIT\r\n"
    );
    let stored = format!(
        "From: a@b\r\nSubject: .hi\r\n\r\n.leading dot\r\nmid.dot\r\n.\r\n..\r\n{long}\r\nend\r\n"
    );
    (wire.into_bytes(), stored.into_bytes())
}

fn assert_delivered(h: &Harness<Smtp>, tail: &str, stored: &[u8]) {
    assert!(h.closed());
    assert_eq!(h.artifacts().len(), 1);
    assert_eq!(h.artifacts()[0].data, stored);
    assert!(tail.ends_with("\r\n221 2.0.0 Bye\r\n"), "{tail}");
    postfix_queue_id(tail);
}

#[test]
fn dot_unstuffing_and_long_lines() {
    let (wire, stored) = message_stream();
    let mut h = postfix();
    start_message(&mut h, &["r@example.org"]);
    h.feed(&wire);
    let tail = h.take_text();
    assert_delivered(&h, &tail, &stored);
    assert_eq!(
        int(h.events("smtp.message")[0], "size"),
        stored.len() as i64
    );
}

#[test]
fn terminator_split_at_every_offset() {
    let (wire, stored) = message_stream();
    for offset in 0..=wire.len() {
        let mut h = postfix();
        start_message(&mut h, &["r@example.org"]);
        h.feed_split(&wire, offset);
        let tail = h.take_text();
        assert!(
            tail.starts_with("250 2.0.0 Ok: queued as "),
            "offset {offset}: {tail}"
        );
        assert_delivered(&h, &tail, &stored);
    }
}

#[test]
fn whole_session_split_at_every_offset() {
    let (wire, stored) = message_stream();
    let mut session = b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n".to_vec();
    session.extend_from_slice(&wire);
    let mut expected = None;
    for offset in 0..=session.len() {
        let mut h = postfix();
        h.feed_split(&session, offset);
        let text = h.take_text();
        assert_delivered(&h, &text, &stored);
        // Same replies wherever the split falls (queue ids are per session).
        let expected = expected.get_or_insert_with(|| text.clone());
        assert_eq!(&text, expected, "offset {offset}");
    }
}

#[test]
fn byte_by_byte() {
    let (wire, stored) = message_stream();
    let mut h = postfix();
    start_message(&mut h, &["r@example.org"]);
    h.feed_chunked(&wire, 1);
    let tail = h.take_text();
    assert_delivered(&h, &tail, &stored);

    let mut h = postfix();
    let mut session = b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n".to_vec();
    session.extend_from_slice(&wire);
    for chunk in [1, 2, 3, 7, 64] {
        let mut h2 = postfix();
        h2.feed_chunked(&session, chunk);
        let text = h2.take_text();
        assert_delivered(&h2, &text, &stored);
    }
    h.feed_chunked(&session, 1);
    assert_delivered(&h, &h.sent_text(), &stored);
}

#[test]
fn bare_lf_terminators() {
    for (wire, stored) in [
        (&b"one\ntwo\n.\nQUIT\n"[..], &b"one\ntwo\n"[..]),
        (b"one\r\ntwo\r\n.\nQUIT\r\n", b"one\r\ntwo\r\n"),
        (b"one\ntwo\n.\r\nQUIT\r\n", b"one\ntwo\n"),
        (b"..x\n.\nQUIT\n", b".x\n"),
    ] {
        for offset in 0..=wire.len() {
            let mut h = postfix();
            start_message(&mut h, &["r@example.org"]);
            h.feed_split(wire, offset);
            let tail = h.take_text();
            assert_delivered(&h, &tail, stored);
        }
    }
}

#[test]
fn empty_message_and_dot_cr_lines() {
    let mut h = postfix();
    start_message(&mut h, &["r@example.org"]);
    h.feed(b".\r\n");
    postfix_queue_id(&h.take_text());
    assert_eq!(h.artifacts()[0].data, b"");

    let mut h = postfix();
    start_message(&mut h, &["r@example.org"]);
    h.feed(b"a\r\n.\rb\r\n.\r\n");
    assert_eq!(h.artifacts()[0].data, b"a\r\n\rb\r\n");
}

#[test]
fn size_cap_reads_to_the_end_then_552_and_stores_nothing() {
    let config = Config::default().with("max_message_bytes", "2048");
    let mut h = session_with("postfix", config, ConnInfo::test(25));
    start_message(&mut h, &["r@example.org"]);
    let body = "y".repeat(98) + "\r\n";
    for _ in 0..30 {
        h.feed(body.as_bytes());
        assert!(h.take_sent().is_empty(), "nothing said before the end");
    }
    h.feed(b".\r\n");
    assert_eq!(
        h.take_text(),
        "552 5.3.4 Message size exceeds fixed limit\r\n"
    );
    assert!(h.artifacts().is_empty());
    let event = h.events("smtp.message")[0];
    assert!(!flag(event, "stored"));
    assert_eq!(int(event, "size"), 3000);
    assert_eq!(int(event, "reply_code"), 552);
    assert_eq!(text(event, "sha256"), "");
    assert!(!h.closed());

    // Exactly at the cap is fine, and the session goes on.
    start_message(&mut h, &["r@example.org"]);
    let exact = "z".repeat(2046) + "\r\n.\r\n";
    h.feed(exact.as_bytes());
    postfix_queue_id(&h.take_text());
    assert_eq!(h.artifacts()[0].data.len(), 2048);
}

#[test]
fn sendmail_size_cap_text() {
    let config = Config::default().with("max_message_bytes", "1024");
    let mut h = session_with("sendmail", config, ConnInfo::test(25));
    h.feed(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n");
    h.take_sent();
    h.feed(&b"0123456789\r\n".repeat(100));
    h.feed(b".\r\n");
    assert_eq!(
        h.take_text(),
        "552 5.2.3 Message size exceeds fixed maximum message size (1024)\r\n"
    );
    assert!(h.artifacts().is_empty());
}

#[test]
fn pipelined_batches_are_answered_in_order_in_one_write() {
    let mut h = postfix();
    let actions =
        h.feed(b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nRCPT TO:<e@f>\r\nDATA\r\n");
    assert_eq!(actions.len(), 1, "one write for the batch");
    let text = h.take_text();
    assert!(
        text.ends_with("250 DSN\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"),
        "{text}"
    );
    let actions = h.feed(b"Subject: s\r\n\r\nbody\r\n.\r\nQUIT\r\n");
    assert_eq!(actions.len(), 2);
    assert_eq!(actions[1], Action::Close);
    let text = h.take_text();
    postfix_queue_id(&text);
    assert!(text.starts_with("250 2.0.0 Ok: queued as "));
    assert!(text.ends_with("\r\n221 2.0.0 Bye\r\n"));
    assert_eq!(h.artifacts()[0].data, b"Subject: s\r\n\r\nbody\r\n");
    assert_eq!(
        texts(h.events("smtp.message")[0], "rcpt_to"),
        ["c@d", "e@f"]
    );
}

#[test]
fn a_whole_session_in_one_packet() {
    let mut h = sendmail();
    let actions = h.feed(
        b"EHLO x\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nhi\r\n.\r\nMAIL FROM:<a@b>\r\nRCPT TO:<e@f>\r\nDATA\r\nho\r\n.\r\nQUIT\r\n",
    );
    assert_eq!(actions.len(), 2);
    let text = h.take_text();
    let accepted: Vec<&str> = text
        .lines()
        .filter(|l| l.ends_with(" Message accepted for delivery"))
        .collect();
    assert_eq!(accepted.len(), 2, "{text}");
    for line in &accepted {
        let id = &line["250 2.0.0 ".len()..line.len() - " Message accepted for delivery".len()];
        assert_eq!(id.len(), 14, "{id}");
        assert!(id[8..].bytes().all(|b| b.is_ascii_digit()), "{id}");
    }
    assert_ne!(accepted[0], accepted[1]);
    assert!(text.ends_with("221 2.0.0 mail.example.com.br closing connection\r\n"));
    let data: Vec<&[u8]> = h.artifacts().iter().map(|a| a.data.as_slice()).collect();
    assert_eq!(data, [&b"hi\r\n"[..], b"ho\r\n"]);
}

#[test]
fn two_messages_in_one_connection() {
    let mut h = postfix();
    start_message(&mut h, &["one@example.org"]);
    h.feed(b"first\r\n.\r\n");
    let first = postfix_queue_id(&h.take_text());
    h.feed(b"MAIL FROM:<b@c>\r\nRCPT TO:<two@example.org>\r\nDATA\r\n");
    h.take_sent();
    h.feed(b"second\r\n.\r\n");
    let second = postfix_queue_id(&h.take_text());
    assert_ne!(first, second);
    let arts = h.artifacts();
    assert_eq!(arts.len(), 2);
    assert_eq!(arts[0].data, b"first\r\n");
    assert_eq!(arts[1].data, b"second\r\n");
    assert_eq!(arts[1].get("mail_from"), Some("b@c"));
    assert_eq!(
        arts[1].get("helo"),
        Some("client.example"),
        "HELO is kept across messages"
    );
    assert_eq!(arts[1].get("rcpt_to"), Some("two@example.org"));
    let events = h.events("smtp.message");
    assert_eq!(text(events[0], "queue_id"), first);
    assert_eq!(text(events[1], "queue_id"), second);
}

#[test]
fn cut_off_in_data_is_recorded_not_stored() {
    let mut h = postfix();
    start_message(&mut h, &["r@example.org"]);
    h.feed(b"Subject: half\r\n\r\nand then");
    h.timeout();
    assert!(h.closed());
    h.close();
    assert!(h.artifacts().is_empty());
    let aborted = h.events("smtp.aborted");
    assert_eq!(aborted.len(), 1);
    assert_eq!(text(aborted[0], "stage"), "data");
    assert_eq!(int(aborted[0], "size"), 25);
    assert_eq!(int(aborted[0], "rcpt_count"), 1);
    assert!(h.events("smtp.message").is_empty());
}
