//! The native path: the same emulator code linked into the host, driven by
//! the same session loop and host services as its component. Benchmarks
//! compare the two; this checks they behave alike.

use spampot::native::Native;
use spampot_blackbox::{Client, TestSensor};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn native_plugins_serve_splice_and_store_like_their_components() {
    let sensor = TestSensor::start_with(
        &[],
        vec![
            Native::<smtp::Smtp>::factory(),
            Native::<http_proxy::HttpProxy>::factory(),
        ],
        &[(8080, "http-proxy"), (25, "smtp")],
        "",
    )
    .await;
    let mut c = Client::connect(sensor.addr(8080)).await;
    c.send("CONNECT mx.example.com:25 HTTP/1.1\r\nHost: mx.example.com:25\r\n\r\n")
        .await;
    assert!(c.read_until("\r\n\r\n").await.starts_with("HTTP/1.0 200"));
    assert!(c.read_until("\r\n").await.starts_with("220 "));
    c.send("HELO n.example\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.com>\r\nDATA\r\nSubject: native\r\n\r\nhi\r\n.\r\nQUIT\r\n")
        .await;
    let rest = String::from_utf8(c.read_to_close().await).unwrap();
    assert!(rest.contains("221"), "{rest}");
    let rows = sensor.messages().await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["via"], "http-proxy");
    let status = spampot::admin::status_json(&sensor.server.sensor);
    assert_eq!(status["plugins"][0]["sha256"], "native");
    sensor.stop().await;
}
