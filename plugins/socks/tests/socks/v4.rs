//! SOCKS 4 and 4A.

use spampot_sdk::Config;
use spampot_sdk::testing::Harness;

use crate::*;

/// CONNECT 200.160.2.3:25, user id "spam".
const CONNECT_25: &[u8] = b"\x04\x01\x00\x19\xc8\xa0\x02\x03spam\x00";
/// SOCKS 4A CONNECT mx.example.com:25, empty user id.
const CONNECT_4A: &[u8] = b"\x04\x01\x00\x19\x00\x00\x00\x01\x00mx.example.com\x00";

fn assert_granted_25(h: &Harness<SocksProxy>) {
    assert_eq!(h.sent(), b"\x00\x5a\x00\x19\xc8\xa0\x02\x03");
    let splice = h.spliced().expect("spliced");
    assert_eq!(splice.target.host, "200.160.2.3");
    assert_eq!(splice.target.port, 25);
    assert!(splice.pending.is_empty());
    let e = request(h);
    assert_request(&e, "socks4", "connect-smtp", "200.160.2.3", 25);
    assert_eq!(text(&e, "command"), "connect");
    assert_eq!(text(&e, "userid"), "spam");
    assert_eq!(int(&e, "version"), 4);
    assert!(!flag(&e, "socks4a"));
}

#[test]
fn connect_to_25_is_granted_and_spliced() {
    let mut h = session();
    h.feed(CONNECT_25);
    assert_granted_25(&h);
    assert!(!h.closed());
}

#[test]
fn connect_split_at_every_offset() {
    for offset in 0..=CONNECT_25.len() {
        let mut h = session();
        h.feed_split(CONNECT_25, offset);
        assert_granted_25(&h);
    }
    let mut h = session();
    h.feed_chunked(CONNECT_25, 1);
    assert_granted_25(&h);
}

#[test]
fn bytes_after_the_request_are_pending_for_smtp() {
    let mut conversation = CONNECT_25.to_vec();
    conversation.extend_from_slice(b"EHLO spammer\r\nMAIL FROM:<a@b.example>\r\n");
    // Wherever the network splits it, the SMTP emulator gets every byte
    // that came with the piece that completed the request.
    for offset in 0..=conversation.len() {
        let mut h = session();
        h.feed_split(&conversation, offset);
        let end = CONNECT_25.len();
        let pending_end = if offset < end {
            conversation.len()
        } else {
            offset
        };
        let pending = &h.spliced().expect("spliced").pending;
        assert_eq!(pending, &conversation[end..pending_end], "offset {offset}");
    }
}

#[test]
fn submission_port_is_smtp_too() {
    let mut h = session();
    h.feed(b"\x04\x01\x02\x4b\xc8\xa0\x02\x03\x00");
    assert_eq!(h.sent(), b"\x00\x5a\x02\x4b\xc8\xa0\x02\x03");
    assert_eq!(h.spliced().unwrap().target.port, 587);
    assert_request(&request(&h), "socks4", "connect-smtp", "200.160.2.3", 587);
}

#[test]
fn connect_elsewhere_is_rejected_and_closed() {
    let mut h = session();
    h.feed(b"\x04\x01\x01\xbb\x5d\xb8\xd8\x22\x00");
    assert_eq!(h.sent(), b"\x00\x5b\x01\xbb\x5d\xb8\xd8\x22");
    assert!(h.closed());
    assert!(h.spliced().is_none());
    assert_request(
        &request(&h),
        "socks4",
        "connect-other",
        "93.184.216.34",
        443,
    );
}

#[test]
fn bind_is_rejected_as_an_error() {
    let mut h = session();
    h.feed(b"\x04\x02\x00\x19\xc8\xa0\x02\x03\x00");
    assert_eq!(h.sent(), b"\x00\x5b\x00\x19\xc8\xa0\x02\x03");
    assert!(h.closed());
    let e = request(&h);
    assert_request(&e, "socks4", "error", "200.160.2.3", 25);
    assert_eq!(text(&e, "command"), "bind");
    assert!(text(&e, "detail").contains("bind"));
}

#[test]
fn unknown_command_is_rejected_as_an_error() {
    let mut h = session();
    h.feed(b"\x04\x09\x00\x19\xc8\xa0\x02\x03\x00");
    assert_eq!(h.sent(), b"\x00\x5b\x00\x19\xc8\xa0\x02\x03");
    assert_request(&request(&h), "socks4", "error", "200.160.2.3", 25);
}

fn assert_granted_4a(h: &Harness<SocksProxy>) {
    assert_eq!(h.sent(), b"\x00\x5a\x00\x19\x00\x00\x00\x01");
    let splice = h.spliced().expect("spliced");
    assert_eq!(splice.target.host, "mx.example.com");
    assert_eq!(splice.target.port, 25);
    let e = request(h);
    assert_request(&e, "socks4", "connect-smtp", "mx.example.com", 25);
    assert!(flag(&e, "socks4a"));
    assert_eq!(text(&e, "userid"), "");
}

#[test]
fn socks4a_connect_by_name_split_at_every_offset() {
    for offset in 0..=CONNECT_4A.len() {
        let mut h = session();
        h.feed_split(CONNECT_4A, offset);
        assert_granted_4a(&h);
    }
    let mut h = session();
    h.feed_chunked(CONNECT_4A, 1);
    assert_granted_4a(&h);
}

#[test]
fn socks4a_connect_elsewhere_is_rejected() {
    let mut h = session();
    h.feed(b"\x04\x01\x00\x50\x00\x00\x00\xff\x00www.example.com\x00");
    assert_eq!(h.sent(), b"\x00\x5b\x00\x50\x00\x00\x00\xff");
    assert!(h.closed());
    assert_request(
        &request(&h),
        "socks4",
        "connect-other",
        "www.example.com",
        80,
    );
}

#[test]
fn oversized_userid_is_an_error() {
    let mut req = b"\x04\x01\x00\x19\xc8\xa0\x02\x03".to_vec();
    req.extend([b'u'; 256]);
    let mut h = session();
    h.feed_chunked(&req, 7);
    assert!(h.closed());
    assert!(h.sent().is_empty());
    let e = request(&h);
    assert_request(&e, "socks4", "error", "", 0);
    assert!(text(&e, "detail").contains("userid"));
}

#[test]
fn oversized_4a_hostname_is_an_error() {
    let mut req = b"\x04\x01\x00\x19\x00\x00\x00\x01\x00".to_vec();
    req.extend([b'h'; 300]);
    let mut h = session();
    h.feed(&req);
    assert!(h.closed());
    let e = request(&h);
    assert_request(&e, "socks4", "error", "", 0);
    assert!(text(&e, "detail").contains("hostname"));
}

#[test]
fn a_request_cut_short_is_an_error_at_close() {
    let mut h = session();
    h.feed(&CONNECT_25[..6]);
    assert!(h.recorder.events.is_empty());
    h.close();
    let e = request(&h);
    assert_request(&e, "socks4", "error", "", 0);
    assert!(text(&e, "detail").starts_with("truncated"));
    assert_eq!(text(&e, "hex_preview"), "04 01 00 19 c8 a0");
}

#[test]
fn an_idle_client_mid_request_is_an_error_and_closed() {
    let mut h = session();
    h.feed(&CONNECT_25[..3]);
    h.timeout();
    assert!(h.closed());
    h.close();
    let e = request(&h);
    assert_request(&e, "socks4", "error", "", 0);
    assert!(text(&e, "detail").starts_with("idle timeout"));
}

#[test]
fn smtp_ports_are_configurable() {
    let mut h = session_with(Config::default().with("smtp_ports", "25,2525"));
    h.feed(b"\x04\x01\x09\xdd\xc8\xa0\x02\x03\x00");
    assert_eq!(h.sent(), b"\x00\x5a\x09\xdd\xc8\xa0\x02\x03");
    assert_request(&request(&h), "socks4", "connect-smtp", "200.160.2.3", 2525);
    let mut h = session_with(Config::default().with("smtp_ports", "25,2525"));
    h.feed(b"\x04\x01\x02\x4b\xc8\xa0\x02\x03\x00");
    assert_request(&request(&h), "socks4", "connect-other", "200.160.2.3", 587);
}
