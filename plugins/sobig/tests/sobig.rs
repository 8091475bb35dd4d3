//! The Sobig.F persona: the HTTP proxy, counted as `module = sobig`, with
//! no banner and terse pages.

use sobig::Sobig;
use spampot_sdk::testing::Harness;
use spampot_sdk::testing::{int, text};
use spampot_sdk::{Config, ConnInfo, Emulator, Event};

fn session_with(config: Config) -> Harness<Sobig> {
    let mut h = Harness::<Sobig>::with_config(ConnInfo::test(3382), config);
    h.open();
    assert!(h.sent().is_empty());
    h
}

fn session() -> Harness<Sobig> {
    session_with(Config::default())
}

fn request(h: &Harness<Sobig>) -> Event {
    let events = h.events("proxy.request");
    assert_eq!(events.len(), 1, "{events:?}");
    events[0].clone()
}

fn assert_request(event: &Event, kind: &str, host: &str, port: i64) {
    assert_eq!(text(event, "module"), "sobig", "{event:?}");
    assert_eq!(text(event, "kind"), kind, "{event:?}");
    assert_eq!(text(event, "target_host"), host);
    assert_eq!(int(event, "target_port"), port);
}

const CONNECT_25: &[u8] = b"CONNECT mx.example.com:25 HTTP/1.0\r\n\r\nHELO spam\r\n";

#[test]
fn connect_to_25_is_spliced_without_a_banner() {
    let end = CONNECT_25.len() - 11;
    for offset in 0..=CONNECT_25.len() {
        let mut h = session();
        h.feed_split(CONNECT_25, offset);
        assert_eq!(h.sent(), b"HTTP/1.0 200 Connection established\r\n\r\n");
        let splice = h.spliced().expect("spliced");
        assert_eq!(
            (splice.target.host.as_str(), splice.target.port),
            ("mx.example.com", 25)
        );
        let pending_end = if offset < end {
            CONNECT_25.len()
        } else {
            offset
        };
        assert_eq!(
            splice.pending,
            &CONNECT_25[end..pending_end],
            "offset {offset}"
        );
        assert_request(&request(&h), "connect-smtp", "mx.example.com", 25);
    }
}

#[test]
fn connect_elsewhere_gets_a_terse_503() {
    let mut h = session();
    h.feed(b"CONNECT www.example.com:443 HTTP/1.0\r\n\r\n");
    let body = "<html><head><title>503 Service Unavailable</title></head>\
                <body><h1>503 Service Unavailable</h1></body></html>\r\n";
    let expected = format!(
        "HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    assert_eq!(h.sent_text(), expected);
    assert!(h.closed());
    assert_request(&request(&h), "connect-other", "www.example.com", 443);
}

#[test]
fn private_destinations_are_refused() {
    let mut h = session();
    h.feed(b"CONNECT 192.168.1.10:25 HTTP/1.0\r\n\r\n");
    assert!(h.sent_text().starts_with("HTTP/1.0 403 Forbidden\r\n"));
    assert!(h.spliced().is_none());
    assert_request(&request(&h), "connect-other", "192.168.1.10", 25);
}

#[test]
fn judge_requests_are_gets_from_an_elite_proxy() {
    let mut h = session_with(Config::default().with("egress_addr", "200.160.2.3"));
    h.feed(b"GET http://judge.example/azenv.php HTTP/1.0\r\nUser-Agent: checker\r\n\r\n");
    let sent = h.sent_text();
    assert!(sent.starts_with("HTTP/1.0 200 OK\r\n"));
    assert!(sent.contains("REMOTE_ADDR = 200.160.2.3\n"));
    assert!(sent.contains("HTTP_USER_AGENT = checker\n"));
    assert!(!sent.contains("squid"));
    assert_request(&request(&h), "get", "judge.example", 80);
}

#[test]
fn garbage_is_an_error() {
    let mut h = session();
    h.feed(b"\x04\x01\x00\x19\x01\x02\x03\x04\x00");
    assert!(h.sent_text().starts_with("HTTP/1.0 400 Bad Request\r\n"));
    assert!(h.closed());
    let e = request(&h);
    assert_request(&e, "error", "", 0);
    assert_eq!(text(&e, "hex_preview"), "04 01 00 19 01 02 03 04 00");
}

#[test]
fn credentials_are_recorded() {
    let mut h = session();
    h.feed(b"CONNECT mx.example.com:25 HTTP/1.0\r\nProxy-Authorization: Basic YTpi\r\n\r\n");
    let creds = h.events("credential");
    assert_eq!(creds.len(), 1);
    assert_eq!(text(creds[0], "protocol"), "http-proxy");
    assert_eq!(
        (text(creds[0], "username"), text(creds[0], "password")),
        ("a", "b")
    );
}

#[test]
fn a_banner_can_be_configured() {
    let mut h = session_with(Config::default().with("server_header", "WinGate Engine"));
    h.feed(b"CONNECT mx.example.com:25 HTTP/1.0\r\n\r\n");
    assert_eq!(
        h.sent(),
        b"HTTP/1.0 200 Connection established\r\nProxy-Agent: WinGate Engine\r\n\r\n"
    );
}

#[test]
fn describes_itself() {
    let info = <Sobig as Emulator>::describe();
    assert_eq!(info.name, "sobig");
    assert_eq!(info.default_ports, [3382]);
}

/// Mutated proxy requests: no panic, and TCP's cuts do not change the answer.
#[test]
fn mutated_requests_never_panic_and_do_not_depend_on_cuts() {
    let summary = spampot_sdk::testing::Fuzz::new(sobig::CONVERSATIONS)
        .conn(ConnInfo::test(3382))
        .run::<Sobig>();
    assert!(summary.spliced > 0, "{summary:?}");
    assert!(summary.closed > summary.cases / 2, "{summary:?}");
}
