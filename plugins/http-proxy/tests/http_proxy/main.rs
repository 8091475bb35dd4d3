//! The HTTP proxy plugin driven through the SDK's native harness: CONNECT,
//! judge and plain requests, keep-alive, credentials and errors.

mod connect;
mod errors;
mod fuzz;
mod get;

use http_proxy::HttpProxy;
use spampot_sdk::testing::Harness;
pub use spampot_sdk::testing::{flag, int, text};
use spampot_sdk::{Config, ConnInfo, Event};

pub fn session_with(config: Config) -> Harness<HttpProxy> {
    let mut h = Harness::<HttpProxy>::with_config(ConnInfo::test(8080), config);
    h.open();
    assert!(h.sent().is_empty(), "HTTP proxies do not speak first");
    h
}

pub fn session() -> Harness<HttpProxy> {
    session_with(Config::default())
}

/// Every `proxy.request`, in order.
pub fn requests(h: &Harness<HttpProxy>) -> Vec<Event> {
    h.events("proxy.request").into_iter().cloned().collect()
}

/// The one `proxy.request` the session emitted.
pub fn request(h: &Harness<HttpProxy>) -> Event {
    let events = requests(h);
    assert_eq!(events.len(), 1, "{events:?}");
    events[0].clone()
}

/// Assert the four common fields of a `proxy.request` with `module = http`.
pub fn assert_request(event: &Event, kind: &str, host: &str, port: i64) {
    assert_eq!(event.kind, "proxy.request");
    assert_eq!(text(event, "module"), "http", "{event:?}");
    assert_eq!(text(event, "kind"), kind, "{event:?}");
    assert_eq!(text(event, "target_host"), host, "{event:?}");
    assert_eq!(int(event, "target_port"), port, "{event:?}");
}

/// The body of the single response in `text`, checked against its
/// `Content-Length`.
pub fn body(text: &str) -> &str {
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete response");
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .expect("Content-Length")
        .parse()
        .unwrap();
    assert_eq!(body.len(), len, "Content-Length matches the body");
    body
}

#[test]
fn describes_itself() {
    use spampot_sdk::Emulator;
    let info = <HttpProxy as Emulator>::describe();
    assert_eq!(info.name, "http-proxy");
    assert_eq!(info.default_ports, [8080, 80, 3128, 8000, 6588, 4480, 81]);
}
