//! Splice: a plugin that "connects" to port 25 hands the rest of the stream
//! to the SMTP emulator on the same socket — same session, longer `via`,
//! bytes the client pipelined past the request carried over. Nothing
//! connects anywhere.

use spampot_blackbox::{Client, TestSensor};

const PROXY: u16 = 7777;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splice_to_port_25_reaches_the_smtp_emulator_with_pipelined_bytes() {
    let sensor = TestSensor::start(
        &["misbehave", "smtp"],
        &[(PROXY, "misbehave"), (25, "smtp")],
        "",
    )
    .await;
    let mut c = Client::connect(sensor.addr(PROXY)).await;
    c.read_until("ready\n").await;
    // The splice request and the first SMTP command in one packet.
    c.send("splice mx.victim.example 25\nHELO bot.example\r\n")
        .await;
    let banner = c.read_until("\r\n").await;
    assert!(banner.starts_with("220 "), "{banner}");
    // A real destination names itself as the host the abuser asked for.
    assert!(banner.contains("mx.victim.example"), "{banner}");
    let helo = c.read_until("\r\n").await;
    assert!(
        helo.starts_with("250 "),
        "the pipelined HELO was answered: {helo}"
    );
    c.send("MAIL FROM:<s@example.net>\r\nRCPT TO:<v@example.com>\r\nDATA\r\nSubject: via proxy\r\n\r\nhi\r\n.\r\nQUIT\r\n")
        .await;
    let rest = String::from_utf8(c.read_to_close().await).unwrap();
    assert!(
        rest.contains("\r\n250 2.0.0") || rest.contains("250 2.0.0"),
        "{rest}"
    );

    let rows = sensor.messages().await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["via"], "misbehave", "{}", rows[0]);
    assert_eq!(rows[0]["target_host"], "mx.victim.example");
    assert_eq!(rows[0]["dst_port"], PROXY);

    let splice = sensor.wait_event("session.splice", |_| true).await;
    assert_eq!(splice["from_plugin"], "misbehave");
    assert_eq!(splice["plugin"], "smtp");
    assert_eq!(splice["target_port"], 25);
    let close = sensor
        .wait_event("session.close", |e| e["session"] == splice["session"])
        .await;
    assert_eq!(close["via"], serde_json::json!(["misbehave"]));
    assert_eq!(close["messages"], 1);
    sensor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splice_to_a_port_with_no_route_ends_the_session() {
    let sensor = TestSensor::start(&["misbehave"], &[(PROXY, "misbehave")], "").await;
    let mut c = Client::connect(sensor.addr(PROXY)).await;
    c.read_until("ready\n").await;
    c.send("splice example.com 6667\n").await;
    assert!(c.read_to_close().await.is_empty());
    let close = sensor.wait_event("session.close", |_| true).await;
    assert_eq!(close["reason"], "splice-no-route");
    assert_eq!(close["target_port"], 6667);
    sensor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn splice_depth_is_capped() {
    // misbehave splices to 7777 → misbehave again, as deep as it is allowed.
    let sensor = TestSensor::start(
        &["misbehave"],
        &[(PROXY, "misbehave")],
        "[limits]\nmax_splice_depth = 2\n",
    )
    .await;
    let mut c = Client::connect(sensor.addr(PROXY)).await;
    c.read_until("ready\n").await;
    c.send(format!("splice self {PROXY}\n")).await;
    c.read_until("ready\n").await;
    c.send(format!("splice self {PROXY}\n")).await;
    c.read_until("ready\n").await;
    c.send(format!("splice self {PROXY}\n")).await;
    c.read_to_close().await;
    let close = sensor.wait_event("session.close", |_| true).await;
    assert_eq!(close["reason"], "splice-depth");
    assert_eq!(close["via"], serde_json::json!(["misbehave", "misbehave"]));
    sensor.stop().await;
}
