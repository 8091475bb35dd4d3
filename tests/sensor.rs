//! The sensor as an operator meets it: bad configs and flags are refused
//! with a message that says where, a port that cannot be bound is reported
//! while the others serve, and the status page tells the truth.

use std::process::Command;

use spampot::{Config, Server};
use spampot_blackbox::{Client, spampot_bin, wasm};

fn run_spampot(args: &[&str]) -> (bool, String) {
    let out = Command::new(spampot_bin())
        .args(args)
        .output()
        .expect("run spampot");
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    (out.status.success(), text)
}

#[test]
fn a_bad_config_is_refused_naming_the_key_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[[listener]]\nport = 25\nplugin = \"smtp\"\n\n[limits]\nidle_timeout_secs = \"soon\"\n",
    )
    .unwrap();
    let (ok, text) = run_spampot(&["check-config", path.to_str().unwrap()]);
    assert!(!ok);
    assert!(
        text.contains("line 6") && text.contains("idle_timeout_secs"),
        "{text}"
    );

    std::fs::write(&path, "[[listener]]\nport = 70000\nplugin = \"smtp\"\n").unwrap();
    let (ok, text) = run_spampot(&["run", "--config", path.to_str().unwrap()]);
    assert!(!ok);
    assert!(text.contains("line 2"), "{text}");
}

#[test]
fn a_missing_config_and_a_bad_flag_are_clear_errors() {
    let (ok, text) = run_spampot(&["run", "--config", "/nonexistent/spampot.toml"]);
    assert!(!ok);
    assert!(
        text.contains("cannot read config /nonexistent/spampot.toml"),
        "{text}"
    );
    let (ok, text) = run_spampot(&["run", "--port-offset", "lots"]);
    assert!(!ok);
    assert!(text.contains("--port-offset"), "{text}");
}

#[test]
fn the_default_config_is_valid_and_maps_the_seed_ports() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../spampot.toml");
    let config = Config::load(&path).expect("spampot.toml is valid");
    let ports: Vec<(u16, &str)> = config
        .listeners
        .iter()
        .map(|l| (*l.port.get_ref(), l.plugin.get_ref().as_str()))
        .collect();
    for expected in [
        (1080, "socks"),
        (8080, "http-proxy"),
        (80, "http-proxy"),
        (3128, "http-proxy"),
        (8000, "http-proxy"),
        (6588, "http-proxy"),
        (25, "smtp"),
        (4480, "http-proxy"),
        (3127, "mydoom"),
        (3382, "sobig"),
        (81, "http-proxy"),
    ] {
        assert!(
            ports.contains(&expected),
            "{expected:?} missing from {ports:?}"
        );
    }
    assert_eq!(config.splice_route(587), Some("smtp"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_that_cannot_be_bound_is_reported_and_the_others_serve() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port();
    let free_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let plugins = tempfile::tempdir().unwrap();
    std::fs::copy(wasm("telnet"), plugins.path().join("telnet.wasm")).unwrap();
    let data = tempfile::tempdir().unwrap();
    let text = format!(
        "plugin_dir = {:?}\ndata_dir = {:?}\n[admin]\nenabled = false\n\
         [[listener]]\nport = {busy_port}\nplugin = \"telnet\"\nbind = \"127.0.0.1\"\n\
         [[listener]]\nport = {free_port}\nplugin = \"telnet\"\nbind = \"127.0.0.1\"\n\
         [[listener]]\nport = 2323\nplugin = \"nosuch\"\nbind = \"127.0.0.1\"\n",
        plugins.path(),
        data.path()
    );
    let config = Config::parse(&text, std::path::Path::new("t.toml")).unwrap();
    let server = Server::start(config)
        .await
        .expect("starts with the ports it can bind");
    let listeners = server.sensor.listeners();
    let busy_status = listeners.iter().find(|l| l.port == busy_port).unwrap();
    assert!(busy_status.bound.is_none());
    let error = busy_status.error.as_deref().unwrap();
    assert!(
        error.contains(&format!("cannot bind 127.0.0.1:{busy_port}")),
        "{error}"
    );
    let missing = listeners.iter().find(|l| l.port == 2323).unwrap();
    assert!(
        missing
            .error
            .as_deref()
            .unwrap()
            .contains("no plugin \"nosuch\""),
        "{missing:?}"
    );

    let mut c = Client::connect(format!("127.0.0.1:{free_port}").parse().unwrap()).await;
    c.read_until("login: ").await;

    let status = spampot::admin::status_json(&server.sensor);
    assert_eq!(status["listeners"].as_array().unwrap().len(), 3);
    assert_eq!(status["plugins"][0]["name"], "telnet");
    assert!(status["clock"]["unix_ms"].as_i64().unwrap() > 0);
    drop(c);
    server.shutdown(std::time::Duration::from_secs(2)).await;
    drop(busy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_all_listeners_refuses_to_start_and_frees_the_data_directory() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy_port = busy.local_addr().unwrap().port();
    let free_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let plugins = tempfile::tempdir().unwrap();
    std::fs::copy(wasm("telnet"), plugins.path().join("telnet.wasm")).unwrap();
    let data = tempfile::tempdir().unwrap();
    let text = |first: u16| {
        format!(
            "plugin_dir = {:?}\ndata_dir = {:?}\nrequire_all_listeners = true\n[admin]\nenabled = false\n\
             [[listener]]\nport = {free_port}\nplugin = \"telnet\"\nbind = \"127.0.0.1\"\n\
             [[listener]]\nport = {first}\nplugin = \"telnet\"\nbind = \"127.0.0.1\"\n",
            plugins.path(),
            data.path()
        )
    };
    let config = Config::parse(&text(busy_port), std::path::Path::new("t.toml")).unwrap();
    let err = Server::start(config)
        .await
        .err()
        .expect("refused")
        .to_string();
    assert!(err.contains("require_all_listeners"), "{err}");
    // The partial start gave back its port and the data directory at once.
    drop(busy);
    let config = Config::parse(&text(busy_port), std::path::Path::new("t.toml")).unwrap();
    let server = Server::start(config).await.expect("a retry can start");
    server.shutdown(std::time::Duration::from_secs(1)).await;
}
