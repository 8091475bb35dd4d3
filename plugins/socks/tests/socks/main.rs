//! The SOCKS plugin driven through the SDK's native harness: every reply
//! byte, every split of the request, every `proxy.request` kind.

mod fuzz;
mod v4;
mod v5;

use socks::SocksProxy;
use spampot_sdk::testing::Harness;
pub use spampot_sdk::testing::{flag, int, text};
use spampot_sdk::{Config, ConnInfo, Event};

pub fn session() -> Harness<SocksProxy> {
    session_with(Config::default())
}

pub fn session_with(config: Config) -> Harness<SocksProxy> {
    let mut h = Harness::<SocksProxy>::with_config(ConnInfo::test(1080), config);
    h.open();
    assert!(h.sent().is_empty(), "SOCKS servers do not speak first");
    h
}

/// The one `proxy.request` the session emitted.
pub fn request(h: &Harness<SocksProxy>) -> Event {
    let events = h.events("proxy.request");
    assert_eq!(events.len(), 1, "{events:?}");
    events[0].clone()
}

/// Assert the four common fields of a `proxy.request`.
pub fn assert_request(event: &Event, module: &str, kind: &str, host: &str, port: i64) {
    assert_eq!(event.kind, "proxy.request");
    assert_eq!(text(event, "module"), module, "{event:?}");
    assert_eq!(text(event, "kind"), kind, "{event:?}");
    assert_eq!(text(event, "target_host"), host, "{event:?}");
    assert_eq!(int(event, "target_port"), port, "{event:?}");
}

#[test]
fn garbage_is_an_error_with_a_hex_preview_and_no_reply() {
    let mut h = session();
    h.feed(b"GET http://example.com/ HTTP/1.0\r\n\r\n");
    assert!(h.closed());
    assert!(h.sent().is_empty());
    let e = request(&h);
    assert_request(&e, "socks5", "error", "", 0);
    assert_eq!(
        text(&e, "hex_preview"),
        "47 45 54 20 68 74 74 70 3a 2f 2f 65 78 61 6d 70"
    );
    assert!(text(&e, "detail").contains("0x47"));
    h.close();
    assert_eq!(
        h.events("proxy.request").len(),
        1,
        "no second event at close"
    );
}

#[test]
fn a_connection_that_sends_nothing_records_nothing() {
    let mut h = session();
    h.close();
    assert!(h.recorder.events.is_empty());
}

#[test]
fn describes_itself() {
    use spampot_sdk::Emulator;
    let info = SocksProxy::describe();
    assert_eq!(info.name, "socks");
    assert_eq!(info.default_ports, [1080]);
}
