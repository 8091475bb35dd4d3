//! The MyDoom backdoor driven through the SDK's native harness.

use mydoom::{MAGIC, MyDoom};
use spampot_sdk::testing::Harness;
use spampot_sdk::testing::{flag, int, text};
use spampot_sdk::{ArtifactKind, Config, ConnInfo, Event, StoreError};

fn session_with(config: Config) -> Harness<MyDoom> {
    let mut h = Harness::<MyDoom>::with_config(ConnInfo::test(3127), config);
    h.open();
    h
}

fn session() -> Harness<MyDoom> {
    session_with(Config::default())
}

fn upload_event(h: &Harness<MyDoom>) -> Event {
    let events = h.events("mydoom.upload");
    assert_eq!(events.len(), 1, "{events:?}");
    events[0].clone()
}

fn request(h: &Harness<MyDoom>) -> Event {
    let events = h.events("proxy.request");
    assert_eq!(events.len(), 1, "{events:?}");
    events[0].clone()
}

fn assert_request(event: &Event, kind: &str, host: &str, port: i64) {
    assert_eq!(text(event, "module"), "mydoom");
    assert_eq!(text(event, "kind"), kind, "{event:?}");
    assert_eq!(text(event, "target_host"), host);
    assert_eq!(int(event, "target_port"), port);
}

/// A payload whose SHA-256 was computed independently (Python's hashlib).
fn payload() -> (Vec<u8>, &'static str) {
    let mut data: Vec<u8> = (0..=255u8).cycle().take(1024).collect();
    data.extend_from_slice(b"MZ");
    (
        data,
        "1c4bf387e0826eddd961af9b65bd3258581c751c72020b543d52bf5ecb2093fa",
    )
}

#[test]
fn upload_is_stored_on_close_and_never_answered() {
    let (data, sha) = payload();
    let mut stream = MAGIC.to_vec();
    stream.extend_from_slice(&data);
    let mut h = session();
    h.feed_chunked(&stream, 100);
    assert!(h.sent().is_empty());
    assert!(!h.closed());
    assert!(
        h.artifacts().is_empty(),
        "stored only when the client is done"
    );
    h.close();
    assert!(h.sent().is_empty());
    let artifacts = h.artifacts();
    assert_eq!(artifacts.len(), 1);
    assert_eq!(artifacts[0].kind, ArtifactKind::UploadedFile);
    assert_eq!(artifacts[0].data, data);
    assert_eq!(artifacts[0].get("magic"), Some("85133c9ea2"));
    assert_eq!(artifacts[0].get("truncated"), Some("false"));
    assert_eq!(artifacts[0].get("size"), Some("1026"));
    let e = upload_event(&h);
    assert_eq!(text(&e, "sha256"), sha);
    assert_eq!(int(&e, "size"), 1026);
    assert_eq!(int(&e, "stored_size"), 1026);
    assert!(!flag(&e, "truncated"));
    assert!(flag(&e, "stored"));
    assert!(h.events("proxy.request").is_empty());
}

#[test]
fn known_digest_of_a_small_upload() {
    let mut h = session();
    h.feed(&[&MAGIC[..], b"abc"].concat());
    h.close();
    assert_eq!(
        text(&upload_event(&h), "sha256"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn magic_split_at_every_offset() {
    let stream = [&MAGIC[..], b"\x4d\x5a\x90\x00payload"].concat();
    for offset in 0..=stream.len() {
        let mut h = session();
        h.feed_split(&stream, offset);
        h.close();
        assert_eq!(
            h.artifacts()[0].data,
            b"\x4d\x5a\x90\x00payload",
            "offset {offset}"
        );
        assert!(h.sent().is_empty());
    }
    let mut h = session();
    h.feed_chunked(&stream, 1);
    h.close();
    assert_eq!(h.artifacts()[0].data, b"\x4d\x5a\x90\x00payload");
}

#[test]
fn upload_past_the_cap_is_drained_and_marked_truncated() {
    let mut h = session_with(Config::default().with("max_upload_bytes", "10"));
    h.feed(&MAGIC);
    h.feed(b"0123456789abcdef");
    h.feed(b"ghijklmnop");
    assert!(!h.closed(), "still drained");
    h.close();
    assert_eq!(h.artifacts()[0].data, b"0123456789");
    assert_eq!(h.artifacts()[0].get("truncated"), Some("true"));
    let e = upload_event(&h);
    assert_eq!(int(&e, "size"), 26);
    assert_eq!(int(&e, "stored_size"), 10);
    assert!(flag(&e, "truncated"));
}

#[test]
fn idle_upload_is_stored_once_and_closed_silently() {
    let mut h = session();
    h.feed(&[&MAGIC[..], b"abc"].concat());
    h.timeout();
    assert!(h.closed());
    assert!(h.sent().is_empty());
    h.close();
    assert_eq!(h.artifacts().len(), 1);
    assert_eq!(h.events("mydoom.upload").len(), 1);
}

#[test]
fn empty_upload_stores_nothing() {
    let mut h = session();
    h.feed(&MAGIC);
    h.close();
    assert!(h.artifacts().is_empty());
    let e = upload_event(&h);
    assert_eq!(int(&e, "size"), 0);
    assert!(!flag(&e, "stored"));
    assert_eq!(text(&e, "sha256"), "");
}

#[test]
fn a_refused_store_is_recorded() {
    let mut h = session();
    h.recorder.fail_store = Some(StoreError::QuotaExceeded);
    h.feed(&[&MAGIC[..], b"abc"].concat());
    h.close();
    let e = upload_event(&h);
    assert!(!flag(&e, "stored"));
    assert_eq!(text(&e, "store_error"), "disk quota reached");
    assert!(h.sent().is_empty());
}

#[test]
fn wrong_magic_is_garbage() {
    let mut h = session();
    h.feed(b"\x85\x13\x00\x01");
    assert!(h.closed());
    assert!(h.sent().is_empty());
    let e = request(&h);
    assert_request(&e, "error", "", 0);
    assert_eq!(text(&e, "hex_preview"), "85 13 00 01");
}

#[test]
fn a_magic_cut_short_is_an_error_at_close() {
    let mut h = session();
    h.feed(b"\x85\x13\x3c");
    h.close();
    let e = request(&h);
    assert_request(&e, "error", "", 0);
    assert_eq!(text(&e, "hex_preview"), "85 13 3c");
    assert!(h.artifacts().is_empty());
}

const CONNECT_25: &[u8] = b"\x04\x01\x00\x19\xc8\xa0\x02\x03\x00";

#[test]
fn socks4_connect_to_25_is_spliced_with_the_worms_reply() {
    for offset in 0..=CONNECT_25.len() {
        let mut h = session();
        h.feed_split(&[CONNECT_25, b"HELO x\r\n"].concat(), offset);
        // VN 04: the worm's quirk, mimicked by default.
        assert_eq!(
            h.sent(),
            b"\x04\x5a\x00\x19\xc8\xa0\x02\x03",
            "offset {offset}"
        );
        let splice = h.spliced().expect("spliced");
        assert_eq!(
            (splice.target.host.as_str(), splice.target.port),
            ("200.160.2.3", 25)
        );
        // The piece that completes the request carries the client's first
        // SMTP line, unless the split fell right after the request.
        let pending: &[u8] = if offset < CONNECT_25.len() {
            b"HELO x\r\n"
        } else {
            b""
        };
        assert_eq!(splice.pending, pending);
        let e = request(&h);
        assert_request(&e, "connect-smtp", "200.160.2.3", 25);
        assert!(!flag(&e, "socks4a"));
    }
    let mut h = session();
    h.feed_chunked(CONNECT_25, 1);
    assert_eq!(h.sent(), b"\x04\x5a\x00\x19\xc8\xa0\x02\x03");
    assert!(h.spliced().is_some());
}

#[test]
fn reply_version_can_follow_the_protocol() {
    let mut h = session_with(Config::default().with("reply_version", "0"));
    h.feed(CONNECT_25);
    assert_eq!(h.sent(), b"\x00\x5a\x00\x19\xc8\xa0\x02\x03");
    assert_eq!(h.emulator().socks_options().reply_version4, 0);
}

#[test]
fn socks4_connect_elsewhere_is_rejected() {
    let mut h = session();
    h.feed(b"\x04\x01\x00\x50\x5d\xb8\xd8\x22\x00");
    assert_eq!(h.sent(), b"\x04\x5b\x00\x50\x5d\xb8\xd8\x22");
    assert!(h.closed());
    assert_request(&request(&h), "connect-other", "93.184.216.34", 80);
}

#[test]
fn socks4a_by_name_is_spliced() {
    let mut h = session();
    h.feed(b"\x04\x01\x00\x19\x00\x00\x00\x01\x00mx.example.com\x00");
    assert_eq!(h.sent(), b"\x04\x5a\x00\x19\x00\x00\x00\x01");
    assert_eq!(h.spliced().unwrap().target.host, "mx.example.com");
    let e = request(&h);
    assert_request(&e, "connect-smtp", "mx.example.com", 25);
    assert!(flag(&e, "socks4a"));
}

#[test]
fn socks5_and_other_garbage_are_errors_with_a_hex_preview() {
    for (bytes, preview) in [
        (&b"\x05\x01\x00"[..], "05 01 00"),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            "47 45 54 20 2f 20 48 54 54 50 2f 31 2e 31 0d 0a",
        ),
    ] {
        let mut h = session();
        h.feed(bytes);
        assert!(h.closed());
        assert!(h.sent().is_empty());
        let e = request(&h);
        assert_request(&e, "error", "", 0);
        assert_eq!(text(&e, "hex_preview"), preview);
    }
}

#[test]
fn a_socks_request_cut_short_is_an_error() {
    let mut h = session();
    h.feed(&CONNECT_25[..4]);
    h.close();
    let e = request(&h);
    assert_request(&e, "error", "", 0);
    assert!(text(&e, "detail").starts_with("truncated"));
}

#[test]
fn describes_itself() {
    use spampot_sdk::Emulator;
    let info = MyDoom::describe();
    assert_eq!(info.name, "mydoom");
    assert_eq!(info.default_ports, [3127]);
}

/// Mutated uploads and proxy requests: no panic, and TCP's cuts do not
/// change the answer.
#[test]
fn mutated_streams_never_panic_and_do_not_depend_on_cuts() {
    assert!(mydoom::CONVERSATIONS[0].starts_with(&MAGIC));
    let summary = spampot_sdk::testing::Fuzz::new(mydoom::CONVERSATIONS)
        .conn(ConnInfo::test(3127))
        .run::<MyDoom>();
    assert!(summary.stored > summary.cases / 100, "{summary:?}");
    assert!(summary.spliced > 0, "{summary:?}");
}
