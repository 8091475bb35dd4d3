//! Containment: a plugin that loops, hoards memory, panics, overflows its
//! stack, floods the client or reaches for files and sockets is stopped (or
//! refused) with the right reason, and a well-behaved session on another
//! port completes meanwhile. The pattern is Spin's core integration tests:
//! real guest components, real traps.

use serde_json::Value;
use spampot_blackbox::{Client, TestSensor};

const TELNET: u16 = 2323;
const BAD: u16 = 7777;

/// Caps small enough to hit quickly, large enough for the guest to start.
/// The deadline leaves room for a busy CI machine: only the endless loop
/// should ever reach it.
const LIMITS: &str =
    "[limits]\ncall_deadline_ms = 1000\nmax_plugin_memory = 16777216\nmax_bytes_out = 1048576\n";

async fn sensor() -> TestSensor {
    TestSensor::start(
        &["telnet", "misbehave"],
        &[(TELNET, "telnet"), (BAD, "misbehave")],
        LIMITS,
    )
    .await
}

/// A complete Telnet login exchange on the good port.
async fn well_behaved_session(sensor: &TestSensor) {
    let mut c = Client::connect(sensor.addr(TELNET)).await;
    c.read_until("login: ").await;
    c.send("root\r\n").await;
    c.read_until("Password: ").await;
    c.send("toor\r\n").await;
    c.read_until("Login incorrect\r\n").await;
}

/// Ask the misbehaving plugin for `verb` while a good session runs, and
/// return the bad session's `session.close` event.
async fn misbehave(sensor: &TestSensor, verb: &str) -> Value {
    let mut bad = Client::connect(sensor.addr(BAD)).await;
    let port = bad.stream.local_addr().unwrap().port();
    bad.read_until("ready\n").await;
    bad.send(format!("{verb}\n")).await;
    let (_, ()) = tokio::join!(bad.read_to_close(), well_behaved_session(sensor));
    // The good session also finished while the bad one was being stopped.
    sensor
        .wait_event("session.close", |e| e["src_port"] == port)
        .await
}

async fn trap_of(sensor: &TestSensor, close: &Value) -> Value {
    let session = close["session"].clone();
    sensor
        .wait_event("plugin.trap", |e| e["session"] == session)
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_loop_hits_the_deadline() {
    let sensor = sensor().await;
    let close = misbehave(&sensor, "loop").await;
    assert_eq!(close["reason"], "deadline");
    let trap = trap_of(&sensor, &close).await;
    assert_eq!(trap["reason"], "deadline");
    assert_eq!(trap["plugin"], "misbehave");
    // The host survived: the good port still answers.
    well_behaved_session(&sensor).await;
    sensor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unbounded_allocation_hits_the_memory_cap() {
    let sensor = sensor().await;
    let close = misbehave(&sensor, "alloc").await;
    assert_eq!(close["reason"], "memory-limit", "{close}");
    let trap = trap_of(&sensor, &close).await;
    assert_eq!(trap["reason"], "memory-limit");
    sensor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_traps_only_its_session() {
    let sensor = sensor().await;
    let close = misbehave(&sensor, "panic").await;
    assert_eq!(close["reason"], "trap", "{close}");
    let trap = trap_of(&sensor, &close).await;
    assert!(
        trap["detail"].as_str().unwrap().contains("unreachable"),
        "{trap}"
    );
    well_behaved_session(&sensor).await;
    sensor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stack_overflow_traps() {
    let sensor = sensor().await;
    let close = misbehave(&sensor, "stack").await;
    assert_eq!(close["reason"], "trap", "{close}");
    let trap = trap_of(&sensor, &close).await;
    // Rust keeps its frames in linear memory below the data segment, so
    // overrunning them is an out-of-bounds access; the wasm call stack's own
    // limit reports "call stack exhausted". Either way: stopped.
    let detail = trap["detail"].as_str().unwrap();
    assert!(
        detail.contains("stack") || detail.contains("out of bounds"),
        "{trap}"
    );
    well_behaved_session(&sensor).await;
    sensor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flooding_the_client_hits_the_byte_cap() {
    // Building 4 MiB of output takes a few ms, more on a loaded CI box: give
    // the call time, so that the byte cap is what stops it.
    let sensor = TestSensor::start(
        &["telnet", "misbehave"],
        &[(TELNET, "telnet"), (BAD, "misbehave")],
        "[limits]\ncall_deadline_ms = 5000\nmax_plugin_memory = 16777216\nmax_bytes_out = 1048576\n",
    )
    .await;
    let close = misbehave(&sensor, "flood 4").await;
    assert_eq!(close["reason"], "bytes-out-limit", "{close}");
    // Nothing past the cap reached the client: only the banner went out.
    assert!(close["bytes_out"].as_u64().unwrap() <= 1 << 20, "{close}");
    sensor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_and_sockets_are_out_of_reach() {
    let sensor = sensor().await;
    let mut bad = Client::connect(sensor.addr(BAD)).await;
    bad.read_until("ready\n").await;

    bad.send("file\n").await;
    let answer = bad.read_until("\n").await;
    assert!(
        answer.starts_with("ERR "),
        "reading /etc/passwd: {answer:?}"
    );

    let opens_before = sensor.events_of("session.open").await.len();
    bad.send(format!("net {}\n", sensor.addr(TELNET))).await;
    let answer = bad.read_until("\n").await;
    assert!(answer.starts_with("ERR "), "connecting out: {answer:?}");
    // The sensor's own port saw no connection from the plugin.
    assert_eq!(sensor.events_of("session.open").await.len(), opens_before);

    // Denied, not crashed: the session goes on.
    bad.send("hello\n").await;
    assert_eq!(bad.read_until("\n").await, "hello\n");
    sensor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn artifacts_past_the_size_cap_are_refused_not_stored() {
    let sensor = TestSensor::start(
        &["misbehave"],
        &[(BAD, "misbehave")],
        "[limits]\nmax_artifact_bytes = 100\n",
    )
    .await;
    let mut bad = Client::connect(sensor.addr(BAD)).await;
    bad.read_until("ready\n").await;
    bad.send("store\n").await;
    let answer = bad.read_until("\n").await;
    assert_eq!(answer, "ERR artifact larger than 100 bytes\n");
    sensor.stop().await;
}
