//! Everything that is not a proper request, and credentials that are not
//! proper either.

use http_proxy::MAX_HEAD;

use crate::*;

#[test]
fn binary_garbage_is_a_400_error_with_a_hex_preview() {
    let mut h = session();
    h.feed(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x00\x01\x02\x03\x04\x05\x06");
    assert!(h.sent_text().starts_with("HTTP/1.1 400 Bad Request\r\n"));
    assert!(h.closed());
    let e = request(&h);
    assert_request(&e, "error", "", 0);
    assert_eq!(
        text(&e, "hex_preview"),
        "16 03 01 02 00 01 00 01 fc 03 03 00 01 02 03 04"
    );
    assert_eq!(text(&e, "detail"), "not an HTTP request");
    // SOCKS on the HTTP port is garbage too.
    let mut h = session();
    h.feed(b"\x05\x01\x00");
    assert_eq!(text(&request(&h), "hex_preview"), "05 01 00");
}

#[test]
fn malformed_request_lines_are_400_errors() {
    for (bytes, detail) in [
        (&b"GET /\r\n\r\n"[..], "malformed request line"),
        (
            b"GET http://a.example/ HTTP/2.0\r\n\r\n",
            "unsupported version",
        ),
        (
            b"GET http://a.example/ FOO/1.1\r\n\r\n",
            "unsupported version",
        ),
        (
            b"GE(T http://a.example/ HTTP/1.1\r\n\r\n",
            "malformed method",
        ),
        (
            b"CONNECT a.example:25 b HTTP/1.1\r\n\r\n",
            "malformed request line",
        ),
    ] {
        let mut h = session();
        h.feed(bytes);
        let sent = h.sent_text();
        assert!(sent.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{sent}");
        assert!(sent.contains("X-Squid-Error: ERR_INVALID_REQ 0\r\n"));
        body(&sent);
        assert!(h.closed());
        let e = request(&h);
        assert_request(&e, "error", "", 0);
        assert!(text(&e, "detail").starts_with(detail), "{e:?}");
    }
}

#[test]
fn invalid_urls_are_400_errors() {
    for target in ["http://:80/", "http://a%20b/", "www.example.com/"] {
        let mut h = session();
        h.feed(format!("GET {target} HTTP/1.1\r\n\r\n").as_bytes());
        assert!(h.sent_text().contains("ERR_INVALID_URL"), "{target}");
        assert_request(&request(&h), "error", "", 0);
    }
}

#[test]
fn invalid_content_length_is_an_error() {
    let mut h = session();
    h.feed(b"POST http://a.example/ HTTP/1.1\r\nContent-Length: 1x\r\n\r\n");
    assert!(h.sent_text().starts_with("HTTP/1.1 400 Bad Request\r\n"));
    assert!(h.closed());
    let e = request(&h);
    assert_request(&e, "error", "a.example", 80);
    assert_eq!(text(&e, "detail"), "invalid Content-Length");
}

#[test]
fn oversized_heads_are_refused() {
    // A head that never ends.
    let mut h = session();
    let mut bytes = b"GET http://a.example/ HTTP/1.1\r\nX-Pad: ".to_vec();
    bytes.resize(MAX_HEAD + 10, b'a');
    h.feed_chunked(&bytes, 1000);
    assert!(h.closed());
    let sent = h.sent_text();
    assert!(sent.starts_with("HTTP/1.1 400 Bad Request\r\n"));
    assert!(sent.contains("ERR_TOO_BIG"));
    let e = request(&h);
    assert_request(&e, "error", "", 0);
    assert!(text(&e, "detail").contains("larger than"));
    // A head that ends, too late.
    let mut h = session();
    bytes.extend_from_slice(b"\r\n\r\n");
    h.feed(&bytes);
    assert!(h.closed());
    assert_request(&request(&h), "error", "", 0);
}

#[test]
fn a_head_cut_short_is_an_error_at_close() {
    let mut h = session();
    h.feed(b"CONNECT mx.example.com:25 HTTP/1.1\r\nHost: mx");
    assert!(h.recorder.events.is_empty());
    h.close();
    let e = request(&h);
    assert_request(&e, "error", "", 0);
    assert!(text(&e, "detail").starts_with("truncated"));
    assert_eq!(
        text(&e, "hex_preview"),
        "43 4f 4e 4e 45 43 54 20 6d 78 2e 65 78 61 6d 70"
    );
}

#[test]
fn an_idle_head_is_an_error_and_closed() {
    let mut h = session();
    h.feed(b"GET http://a.example/ HTTP/1.1\r\n");
    h.timeout();
    assert!(h.closed());
    h.close();
    let e = request(&h);
    assert_request(&e, "error", "", 0);
    assert!(text(&e, "detail").starts_with("idle timeout"));
}

#[test]
fn unusual_credentials_are_kept_raw() {
    for (value, mechanism, username) in [
        ("Basic !!notbase64!!", "Basic", "!!notbase64!!"),
        (
            "Digest username=\"bob\", realm=\"x\"",
            "Digest",
            "username=\"bob\", realm=\"x\"",
        ),
        ("NTLM TlRMTVNTUAABAAAA", "NTLM", "TlRMTVNTUAABAAAA"),
    ] {
        let mut h = session();
        h.feed(
            format!("GET http://a.example/ HTTP/1.1\r\nProxy-Authorization: {value}\r\n\r\n")
                .as_bytes(),
        );
        let creds = h.events("credential");
        assert_eq!(creds.len(), 1);
        assert_eq!(text(creds[0], "mechanism"), mechanism);
        assert_eq!(text(creds[0], "username"), username);
        assert_eq!(text(creds[0], "password"), "");
        assert!(!flag(creds[0], "decoded"));
        assert_request(&request(&h), "get", "a.example", 80);
    }
    // Basic without a colon: all of it is the user name.
    let mut h = session();
    h.feed(b"GET http://a.example/ HTTP/1.1\r\nProxy-Authorization: basic Ym9i\r\n\r\n");
    let creds = h.events("credential");
    assert_eq!(
        (text(creds[0], "username"), text(creds[0], "password")),
        ("bob", "")
    );
}

#[test]
fn error_pages_escape_what_the_client_sent() {
    let mut h = session();
    h.feed(b"CONNECT <script>:443 HTTP/1.1\r\n\r\n");
    let sent = h.sent_text();
    assert!(!sent.contains("<script>"));
    assert!(sent.contains("&lt;script&gt;"));
}
