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

/// Past the store's quota a message is counted, not kept, and the SMTP
/// plugin still answers 250 (a full sensor must not reveal itself): as a
/// component, told `quota-exceeded`, and linked natively, where the host
/// learns it only after the call. Both record the row without its body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_quota_both_paths_answer_250_and_count_the_message() {
    for native in [false, true] {
        let natives = if native {
            vec![Native::<smtp::Smtp>::factory()]
        } else {
            Vec::new()
        };
        let components: &[&str] = if native { &[] } else { &["smtp"] };
        let sensor = TestSensor::start_with(
            components,
            natives,
            &[(25, "smtp")],
            "[store]\nquota_bytes = 1\n",
        )
        .await;
        let mut c = Client::connect(sensor.addr(25)).await;
        assert!(c.read_until("\r\n").await.starts_with("220 "));
        c.send("HELO n.example\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.com>\r\nDATA\r\nSubject: full\r\n\r\nhi\r\n.\r\nQUIT\r\n")
            .await;
        let rest = String::from_utf8(c.read_to_close().await).unwrap();
        assert!(
            rest.contains("250 2.0.0") && rest.contains("221"),
            "native {native}: {rest}"
        );
        let rows = sensor.messages().await;
        assert_eq!(rows.len(), 1, "native {native}");
        assert_eq!(rows[0]["stored"], false, "native {native}: {}", rows[0]);
        sensor.stop().await;
    }
}
