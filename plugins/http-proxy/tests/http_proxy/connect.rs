//! CONNECT: SMTP targets are spliced, everything else refused.

use spampot_sdk::Config;
use spampot_sdk::testing::Harness;

use crate::*;

const CONNECT_25: &[u8] =
    b"CONNECT mx.example.com:25 HTTP/1.1\r\nHost: mx.example.com:25\r\nUser-Agent: Mailer/1.0\r\n\r\n";
const ESTABLISHED: &[u8] =
    b"HTTP/1.0 200 Connection established\r\nProxy-Agent: squid/3.5.27\r\n\r\n";

fn assert_spliced_25(h: &Harness<HttpProxy>) {
    assert_eq!(h.sent(), ESTABLISHED);
    let splice = h.spliced().expect("spliced");
    assert_eq!(
        (splice.target.host.as_str(), splice.target.port),
        ("mx.example.com", 25)
    );
    let e = request(h);
    assert_request(&e, "connect-smtp", "mx.example.com", 25);
    assert_eq!(text(&e, "method"), "CONNECT");
    assert_eq!(text(&e, "url"), "mx.example.com:25");
    assert_eq!(text(&e, "user_agent"), "Mailer/1.0");
    assert_eq!(int(&e, "status"), 200);
    assert!(!h.closed());
}

#[test]
fn connect_to_25_is_established_and_spliced() {
    let mut h = session();
    h.feed(CONNECT_25);
    assert_spliced_25(&h);
    assert!(h.spliced().unwrap().pending.is_empty());
}

#[test]
fn connect_split_at_every_offset_with_crlf_and_bare_lf() {
    let bare_lf: Vec<u8> = String::from_utf8_lossy(CONNECT_25)
        .replace("\r\n", "\n")
        .into_bytes();
    for bytes in [CONNECT_25, &bare_lf[..]] {
        for offset in 0..=bytes.len() {
            let mut h = session();
            h.feed_split(bytes, offset);
            assert_spliced_25(&h);
        }
        let mut h = session();
        h.feed_chunked(bytes, 1);
        assert_spliced_25(&h);
    }
}

#[test]
fn bytes_after_the_head_are_pending_for_smtp() {
    let conversation = [CONNECT_25, b"EHLO spammer\r\nMAIL FROM:<a@b.example>\r\n"].concat();
    let end = CONNECT_25.len();
    for offset in 0..=conversation.len() {
        let mut h = session();
        h.feed_split(&conversation, offset);
        let pending_end = if offset < end {
            conversation.len()
        } else {
            offset
        };
        assert_eq!(
            h.spliced().expect("spliced").pending,
            &conversation[end..pending_end],
            "offset {offset}"
        );
        assert_eq!(h.sent(), ESTABLISHED);
    }
}

#[test]
fn method_is_case_insensitive_and_587_is_smtp() {
    let mut h = session();
    h.feed(b"connect 200.160.2.3:587 HTTP/1.0\r\n\r\n");
    assert_eq!(h.sent(), ESTABLISHED);
    assert_eq!(h.spliced().unwrap().target.port, 587);
    assert_request(&request(&h), "connect-smtp", "200.160.2.3", 587);
}

#[test]
fn ipv6_targets_lose_their_brackets() {
    let mut h = session();
    h.feed(b"CONNECT [2a00:1450:4001:80c::1a]:25 HTTP/1.1\r\n\r\n");
    assert_eq!(h.spliced().unwrap().target.host, "2a00:1450:4001:80c::1a");
    assert_request(&request(&h), "connect-smtp", "2a00:1450:4001:80c::1a", 25);
}

#[test]
fn connect_to_other_ports_is_a_squid_503() {
    for (line, port) in [
        ("CONNECT www.example.com:443", 443),
        ("CONNECT www.example.com", 443),
        ("CONNECT irc.example.net:6667", 6667),
    ] {
        let mut h = session();
        h.feed(format!("{line} HTTP/1.1\r\n\r\n").as_bytes());
        let text_sent = h.sent_text();
        assert!(
            text_sent.starts_with("HTTP/1.1 503 Service Unavailable\r\nServer: squid/3.5.27\r\n"),
            "{text_sent}"
        );
        assert!(text_sent.contains("X-Squid-Error: ERR_CONNECT_FAIL 111\r\n"));
        assert!(text_sent.contains("(111) Connection refused"));
        body(&text_sent);
        assert!(h.closed());
        assert!(h.spliced().is_none());
        let e = request(&h);
        let host = if port == 6667 {
            "irc.example.net"
        } else {
            "www.example.com"
        };
        assert_request(&e, "connect-other", host, port);
        assert_eq!(int(&e, "status"), 503);
    }
}

#[test]
fn connect_to_reserved_addresses_is_forbidden_even_on_25() {
    for (authority, host) in [
        ("10.0.0.5:25", "10.0.0.5"),
        ("192.168.1.1:25", "192.168.1.1"),
        ("100.64.1.1:25", "100.64.1.1"),
        ("127.1:25", "127.1"),
        ("0x7f000001:25", "0x7f000001"),
        ("localhost:25", "localhost"),
        ("[::1]:25", "::1"),
        ("[fe80::1]:587", "fe80::1"),
        ("224.0.0.1:25", "224.0.0.1"),
        ("0.0.0.0:25", "0.0.0.0"),
        ("169.254.169.254:80", "169.254.169.254"),
    ] {
        let mut h = session();
        h.feed(format!("CONNECT {authority} HTTP/1.1\r\n\r\n").as_bytes());
        let sent = h.sent_text();
        assert!(
            sent.starts_with("HTTP/1.1 403 Forbidden\r\n"),
            "{authority}: {sent}"
        );
        assert!(sent.contains("ERR_ACCESS_DENIED"));
        assert!(h.closed());
        assert!(h.spliced().is_none(), "{authority}");
        let e = request(&h);
        assert_eq!(text(&e, "kind"), "connect-other");
        assert_eq!(text(&e, "target_host"), host);
        assert_eq!(text(&e, "detail"), "reserved destination address");
    }
}

#[test]
fn invalid_authority_is_a_400_error() {
    for line in [
        "CONNECT :25",
        "CONNECT mx.example.com:0",
        "CONNECT mx.example.com:99999",
        "CONNECT [::1:25",
        "CONNECT a@b:25",
    ] {
        let mut h = session();
        h.feed(format!("{line} HTTP/1.1\r\n\r\n").as_bytes());
        assert!(
            h.sent_text().starts_with("HTTP/1.1 400 Bad Request\r\n"),
            "{line}"
        );
        assert!(h.sent_text().contains("ERR_INVALID_URL"));
        assert!(h.closed());
        let e = request(&h);
        assert_request(&e, "error", "", 0);
        assert_eq!(text(&e, "detail"), "invalid CONNECT authority");
    }
}

#[test]
fn proxy_credentials_are_recorded_and_the_connect_still_served() {
    let mut h = session();
    h.feed(b"CONNECT mx.example.com:25 HTTP/1.1\r\nProxy-Authorization: Basic dXNlcjpwYTpzcw==\r\n\r\n");
    assert!(h.spliced().is_some());
    let creds = h.events("credential");
    assert_eq!(creds.len(), 1);
    assert_eq!(text(creds[0], "protocol"), "http-proxy");
    assert_eq!(text(creds[0], "mechanism"), "Basic");
    assert_eq!(text(creds[0], "username"), "user");
    assert_eq!(text(creds[0], "password"), "pa:ss");
    assert!(flag(creds[0], "decoded"));
}

#[test]
fn server_header_sets_the_proxy_agent() {
    let mut h = session_with(Config::default().with("server_header", "Proxy+ 3.00"));
    h.feed(CONNECT_25);
    assert_eq!(
        h.sent(),
        b"HTTP/1.0 200 Connection established\r\nProxy-Agent: Proxy+ 3.00\r\n\r\n"
    );
    let mut h = session_with(Config::default().with("server_header", ""));
    h.feed(CONNECT_25);
    assert_eq!(h.sent(), b"HTTP/1.0 200 Connection established\r\n\r\n");
}

#[test]
fn smtp_ports_are_configurable() {
    let mut h = session_with(Config::default().with("smtp_ports", "2525"));
    h.feed(b"CONNECT mx.example.com:2525 HTTP/1.1\r\n\r\n");
    assert_request(&request(&h), "connect-smtp", "mx.example.com", 2525);
    let mut h = session_with(Config::default().with("smtp_ports", "2525"));
    h.feed(CONNECT_25);
    assert_request(&request(&h), "connect-other", "mx.example.com", 25);
}
