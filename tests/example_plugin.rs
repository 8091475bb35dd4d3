//! The example plugin, built as a component and loaded by the host,
//! answers a real TCP client, and what it captured lands in the event log.

use spampot_blackbox::{Client, TestSensor};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telnet_example_answers_over_tcp_and_logs_credentials() {
    let sensor = TestSensor::start(
        &["telnet"],
        &[(23, "telnet")],
        "[plugins.telnet]\nhostname = \"gw-test\"\nmax_attempts = 1\n",
    )
    .await;
    let mut c = Client::connect(sensor.addr(23)).await;
    assert_eq!(c.read_until("login: ").await, "\r\ngw-test login: ");
    c.send("admin\r\n").await;
    c.read_until("Password: ").await;
    c.send("hunter2\r\n").await;
    let rest = c.read_to_close().await;
    assert_eq!(rest, b"\r\nLogin incorrect\r\n");

    let cred = sensor.wait_event("credential", |_| true).await;
    assert_eq!(cred["username"], "admin");
    assert_eq!(cred["password"], "hunter2");
    assert_eq!(cred["plugin"], "telnet");
    assert_eq!(cred["dst_port"], 23);
    assert_eq!(cred["sensor"], "test");
    let close = sensor
        .wait_event("session.close", |e| e["session"] == cred["session"])
        .await;
    assert_eq!(close["reason"], "plugin-closed");
    assert_eq!(close["bytes_in"], 16); // "admin\r\n" + "hunter2\r\n"
    sensor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telnet_example_answers_ncat() {
    spampot_blackbox::require("ncat");
    let sensor = TestSensor::start(
        &["telnet"],
        &[(23, "telnet")],
        "[plugins.telnet]\nmax_attempts = 1\n",
    )
    .await;
    let addr = sensor.addr(23);
    let out = tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let mut child = std::process::Command::new("ncat")
            .args([
                "--wait",
                "5",
                &addr.ip().to_string(),
                &addr.port().to_string(),
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("run ncat");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"guest\r\nguest\r\n")
            .unwrap();
        child.wait_with_output().expect("ncat output")
    })
    .await
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(text, "\r\nrouter login: Password: \r\nLogin incorrect\r\n");
    sensor.stop().await;
}
