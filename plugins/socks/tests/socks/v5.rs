//! SOCKS 5 (RFC 1928) and username/password authentication (RFC 1929).

use spampot_sdk::Config;
use spampot_sdk::testing::Harness;

use crate::*;

const GREET_NOAUTH: &[u8] = b"\x05\x01\x00";
/// CONNECT 200.160.2.3:25 by address.
const CONNECT_V4_25: &[u8] = b"\x05\x01\x00\x01\xc8\xa0\x02\x03\x00\x19";
/// CONNECT mx.example.com:25 by name.
const CONNECT_NAME_25: &[u8] = b"\x05\x01\x00\x03\x0emx.example.com\x00\x19";

/// The success reply this session sends: the sensor's address
/// (198.51.100.1 in `ConnInfo::test`) and the session's ephemeral port.
fn success(h: &Harness<SocksProxy>) -> Vec<u8> {
    let port = h.emulator().session().options().bound_port;
    assert!((32768..=60999).contains(&port), "{port}");
    let mut reply = b"\x05\x00\x00\x01\xc6\x33\x64\x01".to_vec();
    reply.extend(port.to_be_bytes());
    reply
}

fn concat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn no_auth_connect_to_25_is_granted_and_spliced() {
    let mut h = session();
    h.feed(GREET_NOAUTH);
    assert_eq!(h.take_sent(), b"\x05\x00");
    h.feed(CONNECT_V4_25);
    assert_eq!(h.sent(), success(&h));
    let splice = h.spliced().expect("spliced");
    assert_eq!(
        (splice.target.host.as_str(), splice.target.port),
        ("200.160.2.3", 25)
    );
    let e = request(&h);
    assert_request(&e, "socks5", "connect-smtp", "200.160.2.3", 25);
    assert_eq!(text(&e, "atyp"), "ipv4");
    assert_eq!(text(&e, "auth"), "none");
    assert_eq!(text(&e, "command"), "connect");
    assert_eq!(int(&e, "version"), 5);
    assert!(!h.closed());
}

#[test]
fn bound_address_is_configurable() {
    let mut h = session_with(Config::default().with("bound_addr", "203.0.113.9"));
    h.feed(&concat(&[GREET_NOAUTH, CONNECT_V4_25]));
    let port = h.emulator().session().options().bound_port.to_be_bytes();
    let mut expected = b"\x05\x00\x05\x00\x00\x01\xcb\x00\x71\x09".to_vec();
    expected.extend(port);
    assert_eq!(h.sent(), expected);
}

#[test]
fn connect_by_domain_and_by_ipv6() {
    let mut h = session();
    h.feed(&concat(&[GREET_NOAUTH, CONNECT_NAME_25]));
    let mut expected = b"\x05\x00".to_vec();
    expected.extend(success(&h));
    assert_eq!(h.sent(), expected);
    assert_eq!(h.spliced().unwrap().target.host, "mx.example.com");
    let e = request(&h);
    assert_request(&e, "socks5", "connect-smtp", "mx.example.com", 25);
    assert_eq!(text(&e, "atyp"), "domain");

    let mut h = session();
    h.feed(GREET_NOAUTH);
    h.feed(b"\x05\x01\x00\x04\x2a\x00\x14\x50\x40\x01\x08\x0c\0\0\0\0\0\0\0\x1a\x02\x4b");
    assert_eq!(h.spliced().unwrap().target.host, "2a00:1450:4001:80c::1a");
    let e = request(&h);
    assert_request(&e, "socks5", "connect-smtp", "2a00:1450:4001:80c::1a", 587);
    assert_eq!(text(&e, "atyp"), "ipv6");
}

/// Greeting offering only username/password, the credentials, the request
/// and the client's first SMTP line, as a pipelining client sends them.
fn auth_conversation() -> (Vec<u8>, usize) {
    let request_end = 3 + 13 + CONNECT_NAME_25.len();
    let bytes = concat(&[
        b"\x05\x01\x02",
        b"\x01\x04user\x06secret",
        CONNECT_NAME_25,
        b"EHLO x\r\n",
    ]);
    (bytes, request_end)
}

#[test]
fn username_password_is_recorded_and_accepted() {
    let (bytes, end) = auth_conversation();
    let mut h = session();
    h.feed(&bytes[..3]);
    assert_eq!(h.take_sent(), b"\x05\x02");
    h.feed(&bytes[3..16]);
    assert_eq!(h.take_sent(), b"\x01\x00");
    let creds = h.events("credential");
    assert_eq!(creds.len(), 1);
    assert_eq!(text(creds[0], "protocol"), "socks5");
    assert_eq!(text(creds[0], "mechanism"), "username-password");
    assert_eq!(text(creds[0], "username"), "user");
    assert_eq!(text(creds[0], "password"), "secret");
    h.feed(&bytes[16..]);
    assert_eq!(h.sent(), success(&h));
    assert_eq!(h.spliced().unwrap().pending, &bytes[end..]);
    let e = request(&h);
    assert_request(&e, "socks5", "connect-smtp", "mx.example.com", 25);
    assert_eq!(text(&e, "auth"), "username-password");
    assert_eq!(text(&e, "username"), "user");
}

#[test]
fn pipelined_conversation_split_at_every_offset() {
    let (bytes, end) = auth_conversation();
    for offset in 0..=bytes.len() {
        let mut h = session();
        h.feed_split(&bytes, offset);
        let mut expected = b"\x05\x02\x01\x00".to_vec();
        expected.extend(success(&h));
        assert_eq!(h.sent(), expected, "offset {offset}");
        let pending_end = if offset < end { bytes.len() } else { offset };
        assert_eq!(
            h.spliced().expect("spliced").pending,
            &bytes[end..pending_end]
        );
        assert_eq!(h.events("credential").len(), 1);
        assert_request(&request(&h), "socks5", "connect-smtp", "mx.example.com", 25);
    }
    let mut h = session();
    h.feed_chunked(&bytes, 1);
    assert_eq!(&h.sent()[..4], b"\x05\x02\x01\x00");
    assert!(h.spliced().unwrap().pending.is_empty());
}

#[test]
fn username_password_is_preferred_when_both_are_offered() {
    // curl --proxy-user offers 00 01 02: choosing 02 is how its credentials arrive.
    let mut h = session();
    h.feed(b"\x05\x03\x00\x01\x02");
    assert_eq!(h.sent(), b"\x05\x02");
    h.feed(b"\x01\x04user\x04pass");
    assert_eq!(&h.sent()[2..], b"\x01\x00");
    let creds = h.events("credential");
    assert_eq!(creds.len(), 1);
    assert_eq!(
        creds[0].get("username").and_then(|v| v.as_text()),
        Some("user")
    );
    assert_eq!(
        creds[0].get("password").and_then(|v| v.as_text()),
        Some("pass")
    );
}

#[test]
fn no_auth_is_chosen_when_it_is_the_only_known_method() {
    let mut h = session();
    h.feed(b"\x05\x02\x01\x00");
    assert_eq!(h.sent(), b"\x05\x00");
}

#[test]
fn no_acceptable_method_is_refused_and_an_error() {
    let mut h = session();
    h.feed(b"\x05\x01\x01");
    assert_eq!(h.sent(), b"\x05\xff");
    assert!(h.closed());
    let e = request(&h);
    assert_request(&e, "socks5", "error", "", 0);
    assert!(text(&e, "detail").contains("authentication"));
    // No methods at all is the same.
    let mut h = session();
    h.feed(b"\x05\x00");
    assert_eq!(h.sent(), b"\x05\xff");
    assert_request(&request(&h), "socks5", "error", "", 0);
}

#[test]
fn connect_elsewhere_is_not_allowed_by_ruleset() {
    let mut h = session();
    h.feed(GREET_NOAUTH);
    h.take_sent();
    h.feed(b"\x05\x01\x00\x03\x0bexample.com\x01\xbb");
    assert_eq!(h.sent(), b"\x05\x02\x00\x01\x00\x00\x00\x00\x00\x00");
    assert!(h.closed());
    assert!(h.spliced().is_none());
    assert_request(&request(&h), "socks5", "connect-other", "example.com", 443);
}

#[test]
fn bind_and_udp_associate_are_not_supported() {
    for (cmd, name) in [(2u8, "bind"), (3, "udp-associate")] {
        let mut h = session();
        h.feed(GREET_NOAUTH);
        h.take_sent();
        h.feed(&[5, cmd, 0, 1, 200, 160, 2, 3, 0, 25]);
        assert_eq!(h.sent(), b"\x05\x07\x00\x01\x00\x00\x00\x00\x00\x00");
        assert!(h.closed());
        let e = request(&h);
        assert_request(&e, "socks5", "error", "200.160.2.3", 25);
        assert_eq!(text(&e, "command"), name);
        assert!(text(&e, "detail").contains(name));
    }
}

#[test]
fn unknown_address_type_is_not_supported() {
    let mut h = session();
    h.feed(GREET_NOAUTH);
    h.take_sent();
    h.feed(b"\x05\x01\x00\x07\x01\x02\x03\x04\x00\x19");
    assert_eq!(h.sent(), b"\x05\x08\x00\x01\x00\x00\x00\x00\x00\x00");
    assert!(h.closed());
    let e = request(&h);
    assert_request(&e, "socks5", "error", "", 0);
    assert!(text(&e, "detail").contains("address type"));
}

#[test]
fn bad_version_in_the_request_is_an_error() {
    let mut h = session();
    h.feed(GREET_NOAUTH);
    h.take_sent();
    h.feed(b"\x04\x01\x00\x19\xc8\xa0\x02\x03\x00");
    assert!(h.sent().is_empty());
    assert!(h.closed());
    assert_request(&request(&h), "socks5", "error", "", 0);
}

#[test]
fn bad_auth_version_is_an_error() {
    let mut h = session();
    h.feed(b"\x05\x01\x02\x05\x04user\x06secret");
    assert_eq!(h.sent(), b"\x05\x02");
    assert!(h.closed());
    assert!(h.events("credential").is_empty());
    let e = request(&h);
    assert_request(&e, "socks5", "error", "", 0);
    assert_eq!(text(&e, "stage"), "auth");
}

#[test]
fn closing_after_the_greeting_is_a_truncated_error() {
    let mut h = session();
    h.feed(GREET_NOAUTH);
    h.feed(b"\x05\x01");
    h.close();
    let e = request(&h);
    assert_request(&e, "socks5", "error", "", 0);
    assert_eq!(text(&e, "stage"), "request");
    assert_eq!(text(&e, "hex_preview"), "05 01");
    // Cut short inside the greeting.
    let mut h = session();
    h.feed(b"\x05\x02\x00");
    h.close();
    assert_eq!(text(&request(&h), "stage"), "greeting");
}
