//! What is stored and emitted per message, and how store failures are answered.

use super::*;
use spampot_sdk::{ArtifactKind, StoreError};

fn meta(h: &Harness<Smtp>) -> Vec<(String, String)> {
    h.artifacts()[0].meta.clone()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn artifact_meta_direct() {
    let mut h = postfix();
    start_message(&mut h, &["a@example.org", "b@example.org", "c@example.org"]);
    h.feed(b"Subject: hi\r\n\r\nx\r\n.\r\n");
    let id = postfix_queue_id(&h.take_text());
    assert_eq!(h.artifacts()[0].kind, ArtifactKind::Email);
    assert_eq!(
        meta(&h),
        pairs(&[
            ("helo", "client.example"),
            ("mail_from", "spammer@example.net"),
            ("rcpt_to", "a@example.org"),
            ("rcpt_to", "b@example.org"),
            ("rcpt_to", "c@example.org"),
            ("probe", "false"),
            ("queue_id", id.as_str()),
            ("persona", "postfix"),
        ])
    );
}

#[test]
fn artifact_meta_and_event_when_spliced() {
    let mut conn = spliced_conn();
    conn.via.insert(0, "socks5".into());
    let mut h = session_with("sendmail", Config::default(), conn);
    h.feed(b"HELO bot\r\nMAIL FROM:<a@b>\r\nRCPT TO:<victim@example.org>\r\nDATA\r\nspam\r\n.\r\n");
    let text_sent = h.take_text();
    let id_line = text_sent.lines().last().unwrap();
    let id = id_line.split(' ').nth(2).unwrap();
    assert_eq!(
        meta(&h),
        pairs(&[
            ("helo", "bot"),
            ("mail_from", "a@b"),
            ("rcpt_to", "victim@example.org"),
            ("target_host", "mx.example.com"),
            ("via", "socks5,http-proxy"),
            ("probe", "false"),
            ("queue_id", id),
            ("persona", "sendmail"),
        ])
    );
    let event = h.events("smtp.message")[0];
    assert_eq!(text(event, "target_host"), "mx.example.com");
    assert_eq!(texts(event, "via"), ["socks5", "http-proxy"]);
}

#[test]
fn message_event_fields() {
    let mut h = postfix();
    start_message(&mut h, &["a@example.org", "b@example.org", "c@example.org"]);
    h.feed(b"Subject: hi\r\n\r\nx\r\n.\r\n");
    let id = postfix_queue_id(&h.take_text());
    let events = h.events("smtp.message");
    assert_eq!(events.len(), 1);
    let e = events[0];
    let keys: Vec<&str> = e.fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "helo",
            "mail_from",
            "rcpt_count",
            "rcpt_to",
            "rcpt_refused",
            "size",
            "sha256",
            "stored",
            "reply_code",
            "queue_id",
            "via",
            "probe"
        ]
    );
    assert_eq!(text(e, "helo"), "client.example");
    assert_eq!(text(e, "mail_from"), "spammer@example.net");
    assert_eq!(
        texts(e, "rcpt_to"),
        ["a@example.org", "b@example.org", "c@example.org"]
    );
    assert_eq!(int(e, "rcpt_count"), 3);
    assert_eq!(int(e, "rcpt_refused"), 0);
    assert_eq!(int(e, "size"), 18);
    let sha = text(e, "sha256");
    assert_eq!(sha.len(), 64);
    assert!(sha.bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(flag(e, "stored"));
    assert_eq!(int(e, "reply_code"), 250);
    assert_eq!(text(e, "queue_id"), id);
    assert!(texts(e, "via").is_empty());
    assert!(!flag(e, "probe"));
}

fn with_store_error(err: StoreError) -> (Harness<Smtp>, String) {
    let mut h = postfix();
    h.recorder.fail_store = Some(err);
    start_message(&mut h, &["r@example.org"]);
    h.feed(b"x\r\n.\r\n");
    let reply = h.take_text();
    (h, reply)
}

#[test]
fn io_error_is_451_never_250() {
    let (h, reply) = with_store_error(StoreError::Io("disk on fire".into()));
    assert_eq!(reply, "451 4.3.0 Error: queue file write error\r\n");
    let e = h.events("smtp.message")[0];
    assert!(!flag(e, "stored"));
    assert_eq!(text(e, "sha256"), "");
    assert_eq!(int(e, "reply_code"), 451);
    assert!(h.recorder.logs.iter().any(|l| l.contains("disk on fire")));

    let (_, reply) = with_store_error(StoreError::SessionLimit);
    assert_eq!(reply, "451 4.3.0 Error: queue file write error\r\n");
}

#[test]
fn quota_exceeded_still_says_250() {
    let (h, reply) = with_store_error(StoreError::QuotaExceeded);
    let id = postfix_queue_id(&reply);
    let e = h.events("smtp.message")[0];
    assert!(!flag(e, "stored"));
    assert_eq!(text(e, "sha256"), "");
    assert_eq!(int(e, "reply_code"), 250);
    assert_eq!(text(e, "queue_id"), id);
}

#[test]
fn too_large_for_the_host_is_552() {
    let (h, reply) = with_store_error(StoreError::TooLarge(1));
    assert_eq!(reply, "552 5.3.4 Message size exceeds fixed limit\r\n");
    assert_eq!(int(h.events("smtp.message")[0], "reply_code"), 552);
}

#[test]
fn sendmail_store_error_text() {
    let mut h = sendmail();
    h.recorder.fail_store = Some(StoreError::Io("x".into()));
    h.feed(b"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\nx\r\n.\r\n");
    assert!(
        h.take_text()
            .ends_with("\r\n451 4.3.0 Temporary system failure. Please try again later.\r\n")
    );
}
