//! Plain requests: judge pages, default pages, keep-alive, bodies.

use http_proxy::addr::is_reserved_host;
use http_proxy::{DEFAULT_BODY, default_egress};
use spampot_sdk::Config;

use crate::*;

const JUDGE: &[u8] = b"GET http://judge.example.com/azenv.php?x=1 HTTP/1.1\r\n\
Host: judge.example.com\r\n\
User-Agent: ProxyChecker/2.0\r\n\
Accept: */*\r\n\
X-Check-Id: abc-123\r\n\
Accept: text/html\r\n\
Proxy-Connection: keep-alive\r\n\
Proxy-Authorization: Basic Ym90OmJvdA==\r\n\r\n";

fn assert_judge(h: &Harness<HttpProxy>, egress: &str) {
    let sent = h.sent_text();
    assert!(sent.starts_with("HTTP/1.1 200 OK\r\n"), "{sent}");
    let page = body(&sent);
    for line in [
        "HTTP_HOST = judge.example.com\n",
        "HTTP_USER_AGENT = ProxyChecker/2.0\n",
        "HTTP_ACCEPT = */*, text/html\n",
        "HTTP_X_CHECK_ID = abc-123\n",
        &format!("REMOTE_ADDR = {egress}\n"),
        "REQUEST_METHOD = GET\n",
        "REQUEST_URI = /azenv.php?x=1\n",
    ] {
        assert!(page.contains(line), "{line:?} missing from\n{page}");
    }
    let time = page
        .lines()
        .find_map(|l| l.strip_prefix("REQUEST_TIME = "))
        .expect("REQUEST_TIME");
    assert!(time.parse::<u64>().unwrap() > 1_600_000_000);
    // PHP's microtime-style float: the same second, four decimals.
    let float = page
        .lines()
        .find_map(|l| l.strip_prefix("REQUEST_TIME_FLOAT = "))
        .expect("REQUEST_TIME_FLOAT");
    let (secs, frac) = float.split_once('.').expect("a decimal point");
    assert_eq!(secs, time, "{page}");
    assert!(
        frac.len() == 4 && frac.bytes().all(|b| b.is_ascii_digit()),
        "{float}"
    );
    let port: u16 = page
        .lines()
        .find_map(|l| l.strip_prefix("REMOTE_PORT = "))
        .expect("REMOTE_PORT")
        .parse()
        .expect("a port number");
    assert!((32768..61000).contains(&port), "{port}");
    // Elite: nothing betrays the proxy or the client.
    for absent in [
        "HTTP_VIA",
        "HTTP_X_FORWARDED_FOR",
        "HTTP_PROXY_AUTHORIZATION",
        "HTTP_PROXY_CONNECTION",
        "192.0.2.10",
    ] {
        assert!(!page.contains(absent), "{absent} in\n{page}");
    }
    assert!(!sent.contains("Via:") && !sent.contains("X-Cache"));
    let e = requests(h).pop().unwrap();
    assert_request(&e, "get", "judge.example.com", 80);
    assert!(flag(&e, "judge"));
    assert_eq!(text(&e, "user_agent"), "ProxyChecker/2.0");
    assert_eq!(text(&e, "form"), "absolute");
    assert_eq!(int(&e, "status"), 200);
}

#[test]
fn judge_page_echoes_the_forwarded_headers_as_an_elite_proxy() {
    let mut h = session();
    h.feed(JUDGE);
    assert_judge(&h, &default_egress("198.51.100.1"));
    assert!(!h.closed(), "keep-alive");
    let creds = h.events("credential");
    assert_eq!(
        (text(creds[0], "username"), text(creds[0], "password")),
        ("bot", "bot")
    );
}

#[test]
fn judge_head_split_at_every_offset() {
    let config = Config::default().with("egress_addr", "200.160.2.3");
    for offset in 0..=JUDGE.len() {
        let mut h = session_with(config.clone());
        h.feed_split(JUDGE, offset);
        assert_judge(&h, "200.160.2.3");
    }
    let mut h = session_with(config);
    h.feed_chunked(JUDGE, 1);
    assert_judge(&h, "200.160.2.3");
}

#[test]
fn default_egress_is_public_and_never_the_client() {
    // ConnInfo::test's sensor address is a documentation address: derive one.
    let derived = default_egress("198.51.100.1");
    assert_eq!(derived, default_egress("198.51.100.1"), "stable");
    assert!(!is_reserved_host(&derived), "{derived}");
    assert_ne!(derived, "192.0.2.10");
    // A public sensor address is its own egress.
    assert_eq!(default_egress("200.160.2.3"), "200.160.2.3");
    assert_eq!(default_egress("2001:12ff::1"), "2001:12ff::1");
    let octets: Vec<u8> = derived
        .split('.')
        .map(|o| o.parse().expect("decimal octets"))
        .collect();
    assert_eq!(octets.len(), 4, "{derived}");
    assert_ne!(octets[3], 0, "{derived}");
    assert!(!is_reserved_host(&default_egress("10.0.0.7")));
}

#[test]
fn judge_paths_are_configurable() {
    let mut h = session_with(Config::default().with("judge_paths", "check.cgi, PROXYCHECK"));
    h.feed(b"GET http://a.example/proxycheck/ HTTP/1.0\r\n\r\n");
    assert!(body(&h.sent_text()).contains("REQUEST_URI = /proxycheck/"));
    assert!(flag(&request(&h), "judge"));
    let mut h = session_with(Config::default().with("judge_paths", "check.cgi"));
    h.feed(b"GET http://a.example/azenv.php HTTP/1.0\r\n\r\n");
    assert_eq!(body(&h.sent_text()), DEFAULT_BODY);
    assert!(!flag(&request(&h), "judge"));
}

#[test]
fn other_urls_get_the_default_body() {
    let mut h = session();
    h.feed(b"GET http://www.example.com:8081/index.html HTTP/1.0\r\nUser-Agent: x\r\n\r\n");
    let sent = h.sent_text();
    assert!(sent.starts_with("HTTP/1.1 200 OK\r\n"));
    assert!(sent.contains("Server: Apache\r\n"));
    assert!(sent.contains("Connection: close\r\n"));
    assert_eq!(body(&sent), DEFAULT_BODY);
    assert!(h.closed(), "HTTP/1.0 without keep-alive");
    let e = request(&h);
    assert_request(&e, "get", "www.example.com", 8081);
    assert!(!flag(&e, "judge"));

    let mut h = session_with(Config::default().with("default_body", "<p>hi</p>"));
    h.feed(b"POST https://[2a00:1450::1]/form HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(body(&h.sent_text()), "<p>hi</p>");
    let e = request(&h);
    assert_request(&e, "get", "2a00:1450::1", 443);
    assert_eq!(text(&e, "method"), "POST");
}

#[test]
fn head_requests_get_no_body() {
    let mut h = session();
    h.feed(b"HEAD http://www.example.com/ HTTP/1.1\r\n\r\n");
    let sent = h.sent_text();
    assert!(sent.ends_with("\r\n\r\n"));
    assert!(sent.contains(&format!("Content-Length: {}\r\n", DEFAULT_BODY.len())));
    assert_request(&request(&h), "get", "www.example.com", 80);
}

#[test]
fn keep_alive_serves_every_request_until_close() {
    let mut h = session();
    h.feed(
        b"GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n\
          GET http://b.example/azenv.php HTTP/1.1\r\nHost: b.example\r\n\r\n",
    );
    assert_eq!(h.take_text().matches("HTTP/1.1 200 OK").count(), 2);
    assert!(!h.closed());
    h.feed(b"\r\nGET http://c.example/ HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert!(h.take_text().contains("Connection: close\r\n"));
    assert!(h.closed());
    let events = requests(&h);
    assert_eq!(events.len(), 3);
    assert_request(&events[0], "get", "a.example", 80);
    assert_request(&events[1], "get", "b.example", 80);
    assert!(flag(&events[1], "judge"));
    assert_request(&events[2], "get", "c.example", 80);
    // Idle between requests is not an error.
    let mut h = session();
    h.feed(b"GET http://a.example/ HTTP/1.1\r\n\r\n");
    h.timeout();
    assert!(h.closed());
    h.close();
    assert_eq!(requests(&h).len(), 1);
}

#[test]
fn post_bodies_are_skipped_at_every_split() {
    let bytes = b"POST http://a.example/submit HTTP/1.1\r\nContent-Length: 28\r\n\r\n\
GET http://fake.example/ 123GET http://b.example/ HTTP/1.1\r\n\r\n";
    for offset in 0..=bytes.len() {
        let mut h = session();
        h.feed_split(bytes, offset);
        assert_eq!(
            h.sent_text().matches("HTTP/1.1 200 OK").count(),
            2,
            "offset {offset}"
        );
        let events = requests(&h);
        assert_eq!(events.len(), 2, "offset {offset}: {events:?}");
        assert_request(&events[0], "get", "a.example", 80);
        assert_eq!(text(&events[0], "method"), "POST");
        assert_request(&events[1], "get", "b.example", 80);
    }
}

#[test]
fn bodies_too_large_or_chunked_close_after_the_answer() {
    for extra in ["Content-Length: 2000000", "Transfer-Encoding: chunked"] {
        let mut h = session();
        h.feed(format!("POST http://a.example/ HTTP/1.1\r\n{extra}\r\n\r\n").as_bytes());
        let sent = h.sent_text();
        assert!(sent.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(sent.contains("Connection: close\r\n"));
        assert!(h.closed(), "{extra}");
        assert_request(&request(&h), "get", "a.example", 80);
    }
}

#[test]
fn origin_form_is_answered_like_a_web_server() {
    let mut h = session();
    h.feed(b"GET / HTTP/1.1\r\nHost: 198.51.100.1:8080\r\nUser-Agent: Mozilla/5.0\r\n\r\n");
    let sent = h.sent_text();
    assert!(sent.starts_with("HTTP/1.1 200 OK\r\n"));
    assert_eq!(body(&sent), DEFAULT_BODY);
    let e = request(&h);
    assert_request(&e, "get", "198.51.100.1", 8080);
    assert_eq!(text(&e, "form"), "origin");
    assert_eq!(text(&e, "url"), "/");
    // Without Host: no target host.
    let mut h = session();
    h.feed(b"GET /robots.txt HTTP/1.0\n\n");
    assert_request(&request(&h), "get", "", 8080);
}

#[test]
fn gets_to_reserved_addresses_are_forbidden() {
    let mut h = session();
    h.feed(b"GET http://192.168.0.1/admin HTTP/1.1\r\n\r\n");
    assert!(h.sent_text().starts_with("HTTP/1.1 403 Forbidden\r\n"));
    assert!(h.closed());
    let e = request(&h);
    assert_request(&e, "get", "192.168.0.1", 80);
    assert_eq!(int(&e, "status"), 403);
}
