//! Operating a sensor while it runs: plugins dropped in and swapped without
//! a restart, ports switched off and on with `spampot ctl`, the config
//! reloaded on SIGHUP, caps that refuse and count, status and metrics, the
//! compile cache, and a graceful SIGTERM.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use spampot_blackbox::{
    Client, SensorProcess, TestSensor, WAIT, free_port, test_plugin, wait_listening, wasm,
};

const PORT: u16 = 7777;

/// Ask the misbehaving guest which version it is.
async fn version(c: &mut Client) -> String {
    c.send("version\n").await;
    c.read_until("\n").await.trim().to_owned()
}

/// Replace a plugin file the way an operator should: write aside, rename.
fn install(dir: &std::path::Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(name)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_plugin_serves_new_connections_while_old_sessions_finish_on_the_old_one() {
    let sensor = TestSensor::start(&["misbehave"], &[(PORT, "misbehave")], "").await;
    // TestSensor's config sets no plugin_poll_ms: the default second applies.
    let mut old = Client::connect(sensor.addr(PORT)).await;
    old.read_until("ready\n").await;
    assert_eq!(version(&mut old).await, "0.1.0");

    let v2 = std::fs::read(test_plugin("misbehave-v2.wasm")).unwrap();
    install(sensor.plugins.path(), "misbehave.wasm", &v2);
    sensor
        .wait_event("plugin.loaded", |e| e["version"] == "2.0.0")
        .await;

    let mut new = Client::connect(sensor.addr(PORT)).await;
    new.read_until("ready\n").await;
    assert_eq!(version(&mut new).await, "2.0.0");
    // The session that was open keeps the instance it started with.
    assert_eq!(version(&mut old).await, "0.1.0");

    // A corrupt file is refused; the version that works keeps serving.
    install(
        sensor.plugins.path(),
        "misbehave.wasm",
        b"\0asm this is not a component",
    );
    let rejected = sensor.wait_event("plugin.rejected", |_| true).await;
    assert!(
        rejected["error"]
            .as_str()
            .unwrap()
            .contains("misbehave.wasm"),
        "{rejected}"
    );
    let mut after = Client::connect(sensor.addr(PORT)).await;
    after.read_until("ready\n").await;
    assert_eq!(version(&mut after).await, "2.0.0");

    // A removed file unloads the plugin: new connections are refused.
    std::fs::remove_file(sensor.plugins.path().join("misbehave.wasm")).unwrap();
    sensor.wait_event("plugin.unloaded", |_| true).await;
    let mut refused = Client::connect(sensor.addr(PORT)).await;
    assert!(refused.read_to_close().await.is_empty());
    sensor
        .wait_event("limit.refused", |e| e["reason"] == "no-plugin")
        .await;
    sensor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nth_plus_one_session_from_one_address_is_refused_and_counted() {
    let sensor = TestSensor::start(
        &["telnet"],
        &[(23, "telnet")],
        "[limits]\nmax_sessions_per_ip = 2\n",
    )
    .await;
    let mut a = Client::connect(sensor.addr(23)).await;
    a.read_until("login: ").await;
    let mut b = Client::connect(sensor.addr(23)).await;
    b.read_until("login: ").await;
    let mut c = Client::connect(sensor.addr(23)).await;
    assert!(
        c.read_to_close().await.is_empty(),
        "the third session was served"
    );
    let refused = sensor
        .wait_event("limit.refused", |e| e["reason"] == "max-sessions-per-ip")
        .await;
    assert_eq!(refused["src_ip"], "127.0.0.1");
    assert_eq!(refused["dst_port"], 23);
    assert_eq!(sensor.server.sensor.stats.snapshot().refused, 1);
    // When one leaves, the address may come back.
    drop(a);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut d = Client::connect(sensor.addr(23)).await;
    d.read_until("login: ").await;
    sensor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_rate_cap_refuses_the_excess() {
    let sensor = TestSensor::start(
        &["telnet"],
        &[(23, "telnet")],
        "[limits]\nmax_connections_per_ip_per_minute = 3\n",
    )
    .await;
    for _ in 0..3 {
        let mut c = Client::connect(sensor.addr(23)).await;
        c.read_until("login: ").await;
    }
    let mut fourth = Client::connect(sensor.addr(23)).await;
    assert!(fourth.read_to_close().await.is_empty());
    sensor
        .wait_event("limit.refused", |e| e["reason"] == "rate-per-ip")
        .await;
    sensor.stop().await;
}

fn sensor_config(admin: u16, listeners: &[(u16, &str)], extra: &str) -> String {
    let mut text = format!(
        "sensor = \"op\"\nplugin_dir = \"plugins\"\ndata_dir = \"data\"\nplugin_poll_ms = 200\n[admin]\nbind = \"127.0.0.1:{admin}\"\n{extra}"
    );
    for (port, plugin) in listeners {
        text.push_str(&format!(
            "[[listener]]\nport = {port}\nplugin = \"{plugin}\"\nbind = \"127.0.0.1\"\n"
        ));
    }
    text
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctl_disables_and_enables_a_port_while_the_others_serve() {
    let (admin, telnet, smtp) = (free_port(), free_port(), free_port());
    let config = sensor_config(admin, &[(telnet, "telnet"), (smtp, "smtp")], "");
    let sensor = SensorProcess::start(&["telnet", "smtp"], &config, addr(telnet)).await;
    wait_listening(addr(admin)).await;
    let admin_arg = format!("127.0.0.1:{admin}");

    let (ok, out) = sensor.cli(&["ctl", "--admin", &admin_arg, "disable", &telnet.to_string()]);
    assert!(ok, "{out}");
    assert!(
        tokio::net::TcpStream::connect(addr(telnet)).await.is_err(),
        "a disabled port still accepts"
    );
    let mut c = Client::connect(addr(smtp)).await;
    assert!(c.read_until("\r\n").await.starts_with("220 "));

    let (ok, out) = sensor.cli(&["ctl", "--admin", &admin_arg, "list"]);
    assert!(ok, "{out}");
    assert!(out.contains("disabled"), "{out}");

    let (ok, out) = sensor.cli(&["ctl", "--admin", &admin_arg, "enable", &telnet.to_string()]);
    assert!(ok, "{out}");
    let mut t = Client::connect(addr(telnet)).await;
    t.read_until("login: ").await;

    // Remap the port to another loaded plugin: the next connection gets it.
    let (ok, out) = sensor.cli(&[
        "ctl",
        "--admin",
        &admin_arg,
        "map",
        &telnet.to_string(),
        "smtp",
    ]);
    assert!(ok, "{out}");
    let mut m = Client::connect(addr(telnet)).await;
    assert!(m.read_until("\r\n").await.starts_with("220 "));

    // Mistakes are clear errors.
    let (ok, out) = sensor.cli(&["ctl", "--admin", &admin_arg, "enable", "1"]);
    assert!(!ok && out.contains("no listener on port 1"), "{out}");
    let (ok, out) = sensor.cli(&[
        "ctl",
        "--admin",
        &admin_arg,
        "map",
        &telnet.to_string(),
        "nosuch",
    ]);
    assert!(!ok && out.contains("no plugin named \"nosuch\""), "{out}");
    let (ok, out) = sensor.cli(&["ctl", "--admin", "127.0.0.1:1", "list"]);
    assert!(!ok && out.contains("cannot reach the admin API"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_an_edited_config_binds_the_new_listener() {
    let (admin, telnet, added) = (free_port(), free_port(), free_port());
    let sensor = SensorProcess::start(
        &["telnet", "smtp"],
        &sensor_config(admin, &[(telnet, "telnet")], ""),
        addr(telnet),
    )
    .await;
    assert!(tokio::net::TcpStream::connect(addr(added)).await.is_err());
    std::fs::write(
        &sensor.config_path,
        sensor_config(admin, &[(telnet, "telnet"), (added, "smtp")], ""),
    )
    .unwrap();
    sensor.signal("HUP");
    wait_listening(addr(added)).await;
    let mut c = Client::connect(addr(added)).await;
    assert!(c.read_until("\r\n").await.starts_with("220 "));
    // A broken edit is refused and the running config stays.
    std::fs::write(&sensor.config_path, "[[listener]]\nport = \"x\"\n").unwrap();
    sensor.signal("HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut t = Client::connect(addr(telnet)).await;
    t.read_until("login: ").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_metrics_answer_every_field_and_a_token_guards_them() {
    let sensor = TestSensor::start(&["smtp"], &[(25, "smtp")], "").await;
    let admin_server = sensor.serve_admin(Some("s3cret")).await;
    let admin = spampot::ctl::Endpoint::plain(admin_server.addr);
    let get = |path: &'static str, token: Option<&'static str>| {
        spampot::ctl::request(admin, "GET", path, token)
    };
    let mut c = Client::connect(sensor.addr(25)).await;
    c.read_until("\r\n").await;

    let denied = get("/status", None).await;
    assert!(
        matches!(
            denied,
            Err(spampot::ctl::CtlError::Refused { status: 401, .. })
        ),
        "{denied:?}"
    );
    let status = get("/status", Some("s3cret")).await.unwrap();
    for key in [
        "version",
        "sensor",
        "started_at",
        "uptime_secs",
        "clock",
        "listeners",
        "plugins",
        "store",
        "load_average",
        "counters",
    ] {
        assert!(!status[key].is_null(), "status lacks {key}: {status}");
    }
    let l = &status["listeners"][0];
    for key in [
        "port",
        "plugin",
        "enabled",
        "bound",
        "sessions_now",
        "sessions_total",
    ] {
        assert!(!l[key].is_null(), "listener lacks {key}: {l}");
    }
    assert_eq!(l["sessions_now"], 1);
    let p = &status["plugins"][0];
    for key in ["name", "version", "sha256", "loaded_at"] {
        assert!(!p[key].is_null(), "plugin lacks {key}: {p}");
    }
    for key in ["size_bytes", "quota_bytes", "free_disk_bytes"] {
        assert!(
            status["store"][key].is_u64(),
            "store lacks {key}: {}",
            status["store"]
        );
    }
    for key in [
        "sessions",
        "messages",
        "recipients",
        "bytes_in",
        "bytes_out",
        "traps",
        "refused",
    ] {
        assert!(status["counters"][key].is_u64(), "counters lack {key}");
    }
    assert!(status["clock"]["unix_ms"].as_i64().unwrap() > 1_700_000_000_000);

    let metrics = get("/metrics", Some("s3cret")).await.unwrap();
    let metrics = metrics.as_str().unwrap();
    for name in [
        "spampot_sessions_total 1",
        "spampot_sessions_active 1",
        "spampot_messages_total 0",
        "spampot_traps_total 0",
        "spampot_refused_total 0",
        "spampot_store_blob_bytes",
        "spampot_store_commits_total 0",
        "spampot_store_unindexed_artifacts 0",
        "spampot_store_index_failing 0",
        "spampot_listener_sessions{port=\"25\",plugin=\"smtp\",enabled=\"true\"} 1",
    ] {
        assert!(metrics.contains(name), "metrics lack {name}:\n{metrics}");
    }
    sensor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compiled_plugins_are_cached_and_a_bad_cache_entry_is_ignored() {
    let sensor = TestSensor::start(&["telnet"], &[(23, "telnet")], "").await;
    sensor.stop().await;
    let cache = sensor.data.path().join("compile-cache");
    let entries: Vec<_> = walk(&cache)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "cwasm"))
        .collect();
    assert_eq!(entries.len(), 1, "{entries:?}");
    // Entries live under the engine's compatibility hash.
    assert_eq!(entries[0].parent().unwrap().parent().unwrap(), cache);

    // A damaged entry must not be loaded: the plugin is compiled again.
    std::fs::write(&entries[0], b"not a compiled component").unwrap();
    let text = format!(
        "plugin_dir = {:?}\ndata_dir = {:?}\n[admin]\nenabled = false\n[[listener]]\nport = {}\nplugin = \"telnet\"\nbind = \"127.0.0.1\"\n",
        sensor.plugins.path(),
        sensor.data.path(),
        free_port()
    );
    let config = spampot::Config::parse(&text, std::path::Path::new("t.toml")).unwrap();
    let server = spampot::Server::start(config).await.expect("restart");
    let mut c = Client::connect(server.bound()[0]).await;
    c.read_until("login: ").await;
    server.shutdown(Duration::from_secs(1)).await;
    let _ = wasm("telnet");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_a_session_finish_then_flushes_and_exits() {
    let (admin, smtp) = (free_port(), free_port());
    let mut sensor = SensorProcess::start(
        &["smtp"],
        &sensor_config(admin, &[(smtp, "smtp")], ""),
        addr(smtp),
    )
    .await;
    let mut c = Client::connect(addr(smtp)).await;
    c.read_until("\r\n").await;
    sensor.signal("TERM");
    // Stopped accepting, but the open session is still served.
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.send("HELO late.example\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.com>\r\nDATA\r\nSubject: last\r\n\r\nbye\r\n.\r\nQUIT\r\n")
        .await;
    let rest = String::from_utf8(c.read_to_close().await).unwrap();
    assert!(rest.contains("221"), "{rest}");
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = sensor.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the sensor did not exit");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(status.success(), "{status}");
    let events = std::fs::read_to_string(sensor.data().join("events.jsonl")).unwrap();
    assert!(events.contains("\"eventid\":\"session.close\""), "{events}");
    assert_eq!(spampot_blackbox::messages(&sensor.data()).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_refusals_is_counted_in_full_but_logged_at_a_bounded_rate() {
    let sensor = TestSensor::start(
        &["telnet"],
        &[(23, "telnet")],
        "[limits]\nmax_sessions_per_ip = 1\n",
    )
    .await;
    let mut held = Client::connect(sensor.addr(23)).await;
    held.read_until("login: ").await;
    for _ in 0..60 {
        let mut c = Client::connect(sensor.addr(23)).await;
        assert!(c.read_to_close().await.is_empty());
    }
    assert_eq!(sensor.server.sensor.stats.snapshot().refused, 60);
    drop(held);
    sensor.stop().await;
    let text = std::fs::read_to_string(sensor.data.path().join("events.jsonl")).unwrap();
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let logged = events
        .iter()
        .filter(|e| e["eventid"] == "limit.refused")
        .count() as u64;
    let suppressed: u64 = events
        .iter()
        .filter(|e| e["eventid"] == "limit.suppressed")
        .map(|e| e["count"].as_u64().unwrap())
        .sum();
    assert!(
        logged <= 40,
        "{logged} refusal events for 60 refusals in ~1 s"
    );
    assert_eq!(logged + suppressed, 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_lets_sessions_finish_and_disable_now_ends_them() {
    let sensor = TestSensor::start(&["telnet"], &[(23, "telnet")], "").await;
    let mut first = Client::connect(sensor.addr(23)).await;
    first.read_until("login: ").await;
    sensor.server.disable(23, false).await.unwrap();
    // Running sessions go on after a plain disable.
    first.send("root\r\n").await;
    first.read_until("Password: ").await;

    sensor.server.enable(23).await.unwrap();
    let mut second = Client::connect(sensor.addr(23)).await;
    second.read_until("login: ").await;
    let statuses = sensor.server.disable(23, true).await.unwrap();
    assert!(!statuses[0].enabled && statuses[0].bound.is_none());
    // --now ends them.
    assert!(second.read_to_close().await.is_empty());
    let close = sensor
        .wait_event("session.close", |e| e["reason"] == "shutdown")
        .await;
    assert_eq!(close["dst_port"], 23);
    sensor.stop().await;
}

/// `spampot fleet`: every sensor of the file asked at once; one that
/// answers under another name and one that does not answer at all are
/// named, and the exit status says whether anything needs attention.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fleet_names_a_down_sensor_and_a_misnamed_one() {
    let mut admins = Vec::new();
    let mut sensors = Vec::new();
    for _ in 0..2 {
        let sensor = TestSensor::start(&["smtp"], &[(25, "smtp")], "").await;
        admins.push(sensor.serve_admin(Some("s3cret")).await);
        sensors.push(sensor);
    }
    let down = free_port();
    let dir = tempfile::tempdir().unwrap();
    let file = |entries: &[(&str, String)]| {
        let mut text = String::from("min_free_disk_bytes = 0\n");
        for (name, admin) in entries {
            text.push_str(&format!(
                "[[sensor]]\nname = \"{name}\"\nadmin = \"{admin}\"\ntoken = \"s3cret\"\n"
            ));
        }
        let path = dir.path().join(format!("fleet-{}.toml", entries.len()));
        std::fs::write(&path, text).unwrap();
        path
    };
    let fleet = |path: &std::path::Path, json: bool| {
        let args: &[&std::ffi::OsStr] = if json { &["--json".as_ref()] } else { &[] };
        over_fleet("fleet", path, args)
    };

    // Healthy: exit 0. (Test sensors all call themselves "test".)
    let (code, out, err) = fleet(&file(&[("test", admins[0].addr.to_string())]), false);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains(" ok "), "{out}");

    let three = file(&[
        ("test", admins[0].addr.to_string()),
        ("sensor-02", admins[1].addr.to_string()),
        ("sensor-03", format!("127.0.0.1:{down}")),
    ]);
    let (code, out, err) = fleet(&three, false);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(err.contains("2 of 3 sensors need attention"), "{err}");
    assert!(
        out.contains("reports itself as \"test\", not \"sensor-02\""),
        "{out}"
    );
    assert!(out.contains("DOWN") && out.contains("unreachable"), "{out}");

    let (code, out, _) = fleet(&three, true);
    assert_eq!(code, Some(1));
    let health: serde_json::Value = serde_json::from_str(&out).unwrap();
    let problems = |i: usize| health[i]["problems"].as_array().unwrap().len();
    assert_eq!((problems(0), problems(1), problems(2)), (0, 1, 1), "{out}");
    assert!(health[0]["clock_skew_secs"].as_f64().unwrap().abs() < 5.0);
    assert!(health[2]["status"].is_null());
    for sensor in sensors {
        sensor.stop().await;
    }
}

/// One SMTP message of `rcpts` recipients through `addr` (direct SMTP).
async fn send_message(addr: SocketAddr, subject: &str, rcpts: usize) {
    let mut c = Client::connect(addr).await;
    c.read_until("\r\n").await;
    let mut script = String::from("EHLO bot.example\r\nMAIL FROM:<s@spam.example>\r\n");
    for i in 0..rcpts {
        script.push_str(&format!("RCPT TO:<v{i}@victim.example>\r\n"));
    }
    script.push_str(&format!(
        "DATA\r\nSubject: {subject}\r\n\r\nbuy now\r\n.\r\nQUIT\r\n"
    ));
    c.send(script).await;
    let answer = String::from_utf8(c.read_to_close().await).unwrap();
    assert!(answer.contains("250 2.0.0"), "{answer}");
}

/// Message rows without their ids (the local commit order), in a stable
/// order.
fn without_ids(rows: Vec<serde_json::Value>) -> Vec<serde_json::Value> {
    let mut rows: Vec<_> = rows
        .into_iter()
        .map(|mut m| {
            m.as_object_mut().unwrap().remove("id");
            m
        })
        .collect();
    rows.sort_by_key(|m| m.to_string());
    rows
}

fn message_rows(data: &std::path::Path) -> Vec<serde_json::Value> {
    without_ids(spampot_blackbox::messages(data))
}

/// `spampot COMMAND --sensors FLEET ARGS…`: its exit status, standard
/// output and standard error.
fn over_fleet(
    command: &str,
    fleet: &std::path::Path,
    args: &[&std::ffi::OsStr],
) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(spampot_blackbox::spampot_bin())
        .arg(command)
        .arg("--sensors")
        .arg(fleet)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `spampot collect`: its exit status and all it printed.
fn collect(
    fleet: &std::path::Path,
    central: &std::path::Path,
    extra: &[&std::ffi::OsStr],
) -> (Option<i32>, String) {
    let args = [&["--data".as_ref(), central.as_os_str()][..], extra].concat();
    let (code, stdout, stderr) = over_fleet("collect", fleet, &args);
    (code, stdout + &stderr)
}

/// `spampot fleet --collector`: its exit status and what it printed.
fn fleet_with_collector(
    fleet: &std::path::Path,
    central: &std::path::Path,
) -> (Option<i32>, String) {
    let (code, stdout, _) = over_fleet(
        "fleet",
        fleet,
        &["--collector".as_ref(), central.as_os_str()],
    );
    (code, stdout)
}

/// A scratch directory for a collector: its central data directory (made
/// by the first pass) and a fleet file holding `fleet`.
fn collector_scratch(fleet: &str) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let central = dir.path().join("central");
    let file = dir.path().join("fleet.toml");
    std::fs::write(&file, fleet).unwrap();
    (dir, central, file)
}

/// `spampot collect`: two sensors' captures pulled into one data directory.
/// Its `messages` rows are the sensors' rows, an upload's body arrives byte
/// for byte, a report over it counts both sensors' proxy requests, a second
/// pull brings nothing twice, and a new capture arrives with the next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collect_pulls_two_sensors_into_one_store_exactly_once() {
    let one = TestSensor::start_named(
        "spampot-01",
        &["smtp", "http-proxy"],
        Vec::new(),
        &[(25, "smtp"), (8080, "http-proxy")],
        "",
    )
    .await;
    let two = TestSensor::start_named(
        "spampot-02",
        &["smtp", "mydoom"],
        Vec::new(),
        &[(25, "smtp"), (3127, "mydoom")],
        "",
    )
    .await;
    let admins = [
        one.serve_admin(Some("s3cret")).await,
        two.serve_admin(Some("s3cret")).await,
    ];

    // The same campaign on both sensors (one body), a distinct message
    // each, one through the HTTP proxy, and a MyDoom upload.
    for (i, sensor) in [&one, &two].into_iter().enumerate() {
        send_message(sensor.addr(25), "campaign", 9).await;
        send_message(sensor.addr(25), &format!("only on {i}"), 2).await;
    }
    let mut c = Client::connect(one.addr(8080)).await;
    c.send("CONNECT mx.victim.example:25 HTTP/1.1\r\n\r\n")
        .await;
    c.read_until("220 ").await;
    c.send("HELO bot\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\nvia proxy\r\n.\r\nQUIT\r\n").await;
    c.read_to_close().await;
    let upload: Vec<u8> = (0..100_000u32)
        .flat_map(|i| (i * 7919).to_le_bytes())
        .collect();
    let mut c = Client::connect(two.addr(3127)).await;
    c.send([&b"\x85\x13\x3c\x9e\xa2"[..], &upload].concat())
        .await;
    drop(c);
    two.wait_event("mydoom.upload", |_| true).await;
    // Every session closed (its last event written) before the pull, so
    // the event logs can be compared whole.
    for sensor in [&one, &two] {
        let deadline = Instant::now() + WAIT;
        while sensor.events_of("session.close").await.len() < 3 {
            assert!(Instant::now() < deadline, "sessions did not close");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // Free disk depends on the machine the tests run on, not on this test.
    let mut text = String::from("min_free_disk_bytes = 0\n");
    for (name, admin) in [("spampot-01", &admins[0]), ("spampot-02", &admins[1])] {
        text.push_str(&format!(
            "[[sensor]]\nname = \"{name}\"\nadmin = \"{}\"\ntoken = \"s3cret\"\n",
            admin.addr
        ));
    }
    let (dir, central, fleet) = collector_scratch(&text);

    // The rows are indexed behind the acknowledgement: flush both first.
    let mut expected = one.messages().await;
    expected.extend(two.messages().await);
    assert_eq!(expected.len(), 5);
    let (code, out) = collect(&fleet, &central, &[]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(message_rows(&central), without_ids(expected), "{out}");
    let sha = spampot::store::sha256_hex(&upload);
    assert!(spampot::store::read_blob(&central, &sha).unwrap() == upload);
    let events_of = |data: &std::path::Path| spampot_blackbox::events(data).len();
    let events = events_of(&central);
    assert_eq!(
        events,
        events_of(one.data.path()) + events_of(two.data.path()),
        "{out}"
    );
    let report = std::process::Command::new(spampot_blackbox::spampot_bin())
        .args([
            "report",
            "--format",
            "json",
            "--table",
            "request_types",
            "--data",
        ])
        .arg(&central)
        .output()
        .unwrap();
    let (report, err) = (
        String::from_utf8_lossy(&report.stdout),
        String::from_utf8_lossy(&report.stderr),
    );
    let types: serde_json::Value =
        serde_json::from_str(&report).unwrap_or_else(|e| panic!("{e}: {report}{err}"));
    assert_eq!(types[0]["kind"], "connect-smtp", "{report}");
    assert_eq!(types[0]["count"], 1, "{report}");

    // `fleet --collector` sees both pulled, just now.
    let (code, said) = fleet_with_collector(&fleet, &central);
    assert_eq!(code, Some(0), "{said}");
    assert_eq!(said.matches("s ago").count(), 2, "{said}");

    // Nothing twice.
    let (code, out) = collect(&fleet, &central, &[]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(message_rows(&central).len(), 5, "{out}");
    assert_eq!(events_of(&central), events, "{out}");

    // A new message on one sensor arrives, and only it; the HTML report
    // written after the pass counts it.
    send_message(two.addr(25), "later", 1).await;
    two.messages().await;
    let html = dir.path().join("report.html");
    let (code, out) = collect(&fleet, &central, &["--html".as_ref(), html.as_os_str()]);
    assert_eq!(code, Some(0), "{out}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(
        page.contains("<th>emails</th><td class=\"num\">6</td>"),
        "{page}"
    );
    let rows = message_rows(&central);
    assert_eq!(rows.len(), 6, "{out}");
    assert_eq!(
        rows.iter().filter(|m| m["sensor"] == "spampot-02").count(),
        3
    );
    one.stop().await;
    two.stop().await;
}

/// The feed hands out credentials and bodies: a sensor without an admin
/// token refuses it, and `collect` says why and exits 1; a fleet entry
/// naming the wrong sensor is refused before anything is stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collect_refuses_a_sensor_without_a_token_and_a_misnamed_one() {
    let open = TestSensor::start(&["smtp"], &[(25, "smtp")], "").await;
    let open_admin = open.serve_admin(None).await;
    let guarded = TestSensor::start(&["smtp"], &[(25, "smtp")], "").await;
    let guarded_admin = guarded.serve_admin(Some("s3cret")).await;
    send_message(guarded.addr(25), "x", 1).await;
    let (_dir, central, fleet) = collector_scratch(&format!(
        "[[sensor]]\nname = \"test\"\nadmin = \"{}\"\n[[sensor]]\nname = \"other\"\nadmin = \"{}\"\ntoken = \"s3cret\"\n",
        open_admin.addr, guarded_admin.addr
    ));
    let (code, out) = collect(&fleet, &central, &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("set [admin] token"), "{out}");
    assert!(
        out.contains("reports itself as \"test\", not \"other\""),
        "{out}"
    );
    assert!(out.contains("2 of 2 sensors could not be pulled"), "{out}");
    assert!(message_rows(&central).is_empty());
    // `fleet --collector` names the failed pulls.
    let (code, said) = fleet_with_collector(&fleet, &central);
    assert_eq!(code, Some(1), "{said}");
    assert!(said.contains("the collector's last pull"), "{said}");
    assert!(said.contains("set [admin] token"), "{said}");

    // The bodies endpoint: a stored body comes back whole, an unknown one
    // is named lost, and a request past 256 digests or with a digest that
    // is not one is refused.
    let stored = guarded.messages().await[0]["sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    let unknown = "0".repeat(64);
    let addr = guarded_admin.addr;
    let bodies = |query: String| async move {
        let path = format!("/feed/bodies?sha256={query}");
        spampot::ctl::request(
            spampot::ctl::Endpoint::plain(addr),
            "GET",
            &path,
            Some("s3cret"),
        )
        .await
    };
    let answer = bodies(format!("{stored},{unknown}")).await.unwrap();
    assert!(answer["bodies"][&stored].is_string(), "{answer}");
    assert!(answer["lost"][&unknown].is_string(), "{answer}");
    let too_many = vec![unknown.as_str(); 257].join(",");
    for bad in [too_many, "../etc/passwd".to_owned()] {
        match bodies(bad).await {
            Err(spampot::ctl::CtlError::Refused { status: 400, .. }) => {}
            other => panic!("{other:?}"),
        }
    }
    open.stop().await;
    guarded.stop().await;
}

/// A sensor reinstalled with a new data directory: the collector's cursor
/// was made on another store (its identity differs), so the pass fails
/// (410, naming `--start-over`) and stores nothing; `--start-over` forgets
/// the cursor and pulls the new sensor from its beginning. A name outside
/// the fleet is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collect_start_over_pulls_a_reinstalled_sensor_from_its_beginning() {
    let old = TestSensor::start(&["smtp"], &[(25, "smtp")], "").await;
    let old_admin = old.serve_admin(Some("s3cret")).await;
    send_message(old.addr(25), "before", 1).await;
    send_message(old.addr(25), "before too", 1).await;
    let dir = tempfile::tempdir().unwrap();
    let central = dir.path().join("central");
    let fleet = dir.path().join("fleet.toml");
    let fleet_for = |admin: SocketAddr| {
        let text = format!(
            "min_free_disk_bytes = 0\n[[sensor]]\nname = \"test\"\nadmin = \"{admin}\"\ntoken = \"s3cret\"\n"
        );
        std::fs::write(&fleet, text).unwrap();
    };
    fleet_for(old_admin.addr);
    assert_eq!(old.messages().await.len(), 2);
    let (code, out) = collect(&fleet, &central, &[]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(message_rows(&central).len(), 2);

    // Gone before the new one starts: its files' inodes may be reused by
    // the new ones, which the store's identity tells apart.
    old.stop().await;
    drop(old_admin);
    drop(old);
    let new = TestSensor::start(&["smtp"], &[(25, "smtp")], "").await;
    let new_admin = new.serve_admin(Some("s3cret")).await;
    send_message(new.addr(25), "after", 3).await;
    assert_eq!(new.messages().await.len(), 1);
    fleet_for(new_admin.addr);
    let (code, out) = collect(&fleet, &central, &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("410: this sensor's store is not the one"),
        "{out}"
    );
    assert!(out.contains("--start-over"), "{out}");
    assert_eq!(message_rows(&central).len(), 2);

    let (code, out) = collect(
        &fleet,
        &central,
        &["--start-over".as_ref(), "nope".as_ref()],
    );
    assert_ne!(code, Some(0), "{out}");
    assert!(
        out.contains("no sensor \"nope\" in the fleet file"),
        "{out}"
    );
    let (code, out) = collect(
        &fleet,
        &central,
        &["--start-over".as_ref(), "test".as_ref()],
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("test: cursor forgotten"), "{out}");
    let rows = message_rows(&central);
    assert_eq!(rows.len(), 3, "{rows:?}");
    // Once: the next pass goes on from the new cursor.
    let (code, out) = collect(&fleet, &central, &[]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(message_rows(&central).len(), 3);
    new.stop().await;
}

/// `[admin] tls`: the sensor makes its key pair at first start and speaks
/// HTTPS only. `status`, `ctl`, `fleet` and `collect` reach it given its
/// certificate's fingerprint; another fingerprint is refused before the
/// token is sent, and plain HTTP gets a hint instead of a garbled answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_over_tls_answers_only_to_the_pinned_certificate() {
    let (admin, smtp) = (free_port(), free_port());
    let config = sensor_config(admin, &[(smtp, "smtp")], "token = \"s3cret\"\ntls = true\n");
    let sensor = SensorProcess::start(&["smtp"], &config, addr(smtp)).await;
    wait_listening(addr(admin)).await;
    send_message(addr(smtp), "pulled over tls", 2).await;
    // Read back from the pair the sensor made (both files exist: nothing
    // new is made here).
    let pin = spampot::tls::server_identity(&sensor.data(), None)
        .unwrap()
        .fingerprint
        .to_string();
    let admin_arg = format!("127.0.0.1:{admin}");
    let status = |fingerprint: Option<&str>| {
        let mut args = vec!["status", "--admin", &admin_arg, "--token", "s3cret"];
        if let Some(fp) = fingerprint {
            args.extend(["--tls-fingerprint", fp]);
        }
        sensor.cli(&args)
    };
    let (ok, out) = status(Some(&pin));
    assert!(ok && out.contains("messages 1"), "{out}");
    let other = format!("sha256:{}", "0".repeat(64));
    let (ok, out) = status(Some(&other));
    assert!(!ok && out.contains("not the pinned"), "{out}");
    let (ok, out) = status(None);
    assert!(!ok && out.contains("--tls-fingerprint"), "{out}");
    let (ok, out) = status(Some("sha256:abc"));
    assert!(
        !ok && out.contains("not a certificate fingerprint"),
        "{out}"
    );
    let (ok, out) = sensor.cli(&[
        "ctl",
        "--admin",
        &admin_arg,
        "--token",
        "s3cret",
        "--tls-fingerprint",
        &pin,
        "list",
    ]);
    assert!(ok && out.contains("smtp"), "{out}");

    let (_dir, central, fleet) = collector_scratch(&format!(
        "min_free_disk_bytes = 0\n[[sensor]]\nname = \"op\"\nadmin = \"{admin_arg}\"\ntoken = \"s3cret\"\ntls_fingerprint = \"{pin}\"\n"
    ));
    let (code, out, err) = over_fleet("fleet", &fleet, &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    // The feed serves what the sensor has indexed (within 250 ms).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while message_rows(&sensor.data()).is_empty() && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, out) = collect(&fleet, &central, &[]);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(message_rows(&central), message_rows(&sensor.data()));
    assert_eq!(message_rows(&central).len(), 1);
}

/// The dashboard in a real browser: headless Chromium loads `/`, its
/// script fetches `/status`, and the DOM it leaves shows the sensor, its
/// counters and its listeners; over plain HTTP and over `[admin] tls`'s
/// HTTPS. Only loopback is reached: the page has no
/// external resources, Chromium's own background traffic is off, and
/// anything else would go to a closed proxy port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_renders_the_status_in_a_browser() {
    spampot_blackbox::require("chromium");
    let sensor = TestSensor::start(&["smtp"], &[(25, "smtp")], "").await;
    let keys = tempfile::tempdir().unwrap();
    let identity = spampot::tls::server_identity(keys.path(), None).unwrap();
    let plain = sensor.serve_admin(None).await;
    let tls = sensor.serve_admin_with(None, Some(&identity)).await;
    let mut c = Client::connect(sensor.addr(25)).await;
    c.read_until("\r\n").await;
    c.send("QUIT\r\n").await;
    c.read_to_close().await;

    // Over HTTPS the page's script fetches /status the same way; the
    // browser is told to accept the self-signed certificate.
    for (url, extra) in [
        (format!("http://{}/", plain.addr), None),
        (
            format!("https://{}/", tls.addr),
            Some("--ignore-certificate-errors"),
        ),
    ] {
        let dom = dashboard_dom(url, extra).await;
        for expected in [
            "test · v",             // the sensor's name and version
            "<b>1</b>sessions<",    // the counters
            "<td>25</td>",          // the listener, by its configured port
            "class=\"ok\">serving", // and its state
            "<td>smtp</td>",        // the plugin
            "\"quota_bytes\"",      // the store
        ] {
            assert!(dom.contains(expected), "{expected:?} missing from:\n{dom}");
        }
        // Not the error line the script writes when /status fails.
        assert!(dom.contains("id=\"meta\">up "), "{dom}");
    }
    sensor.stop().await;
}

/// The DOM headless Chromium leaves after loading `url`.
async fn dashboard_dom(url: String, extra: Option<&'static str>) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--virtual-time-budget=3000",
                // Anything not loopback (which Chromium never proxies) goes
                // to a closed port: the test cannot reach out.
                "--proxy-server=127.0.0.1:9",
            ])
            .args(extra)
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("--dump-dom")
            .arg(&url)
            .output()
            .expect("chromium runs")
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
