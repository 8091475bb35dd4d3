//! The proxy emulators behind a real sensor, driven by the clients abusers
//! and proxy checkers use: curl, ncat, OpenBSD netcat, swaks under
//! proxychains4. A CONNECT to port 25 through the HTTP proxy,
//! SOCKS 4/4A/5 or Sobig ends as a message in the store whose `via` names
//! the proxy; a judge page echoes what the client sent and never the
//! client's address; a MyDoom upload is kept byte for byte; and the
//! `proxy.request` events count exactly the requests that were sent.
//!
//! Targets are names (`mx.example.com`) or documentation addresses
//! (203.0.113.5): nothing is resolved or contacted, the proxy hands the
//! stream to the SMTP emulator on the same socket. Every client runs under
//! `timeout`, so a hung client fails its test instead of hanging it.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};
use spampot_blackbox::{Client, TestSensor, WAIT, require};
use tempfile::TempDir;

const SMTP: u16 = 25;
const HTTP: u16 = 8080;
const SOCKS: u16 = 1080;
const MYDOOM: u16 = 3127;
const SOBIG: u16 = 3382;

/// Hard limit on one client run: `timeout` sends TERM, then KILL 2 s later.
const CLIENT_SECS: u64 = 20;

/// The abuser's destination: never resolved, never contacted.
const MX: &str = "mx.example.com";
/// For clients that insist on an address (SOCKS 4 without 4A): TEST-NET-3.
const MX_IP: &str = "203.0.113.5";

/// A sensor with the SMTP emulator on 25 (so splices route) and `proxy`
/// (plugin file name, config name) on `port`.
async fn sensor_with(file: &str, name: &str, port: u16) -> TestSensor {
    TestSensor::start(&["smtp", file], &[(SMTP, "smtp"), (port, name)], "").await
}

/// Run `program` with `args` and `stdin` under `timeout`, off the async
/// runtime. Proxy variables from the environment are removed so that only
/// the proxy a test names is used.
async fn run(program: &str, args: &[&str], stdin: &[u8]) -> Output {
    let program = program.to_owned();
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let stdin = stdin.to_vec();
    let shown = format!("{program} {}", args.join(" "));
    let job = tokio::task::spawn_blocking(move || {
        let mut cmd = Command::new("timeout");
        cmd.arg("--kill-after=2")
            .arg(CLIENT_SECS.to_string())
            .arg(&program)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for var in [
            "http_proxy",
            "https_proxy",
            "all_proxy",
            "no_proxy",
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "NO_PROXY",
            "PROXYCHAINS_CONF_FILE",
        ] {
            cmd.env_remove(var);
        }
        let mut child = cmd.spawn().expect("run timeout");
        let mut input = child.stdin.take().expect("child stdin");
        // A client that stops reading stdin must not block the test.
        let writer = std::thread::spawn(move || {
            let _ = input.write_all(&stdin);
        });
        let out = child.wait_with_output().expect("wait for client");
        let _ = writer.join();
        out
    });
    let out = tokio::time::timeout(Duration::from_secs(CLIENT_SECS + 10), job)
        .await
        .unwrap_or_else(|_| panic!("{shown} outlived its timeout"))
        .expect("client task");
    assert_ne!(
        out.status.code(),
        Some(124),
        "{shown} timed out after {CLIENT_SECS}s\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `run`, and fail unless the client exited 0.
async fn run_ok(program: &str, args: &[&str], stdin: &[u8]) -> Output {
    let out = run(program, args, stdin).await;
    assert!(
        out.status.success(),
        "{program} {} failed: {}\nstdout: {}\nstderr: {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A mail file for curl's `-T`, in its own temporary folder.
fn mail_file(marker: &str) -> (TempDir, PathBuf) {
    let dir = TempDir::new().expect("temp dir");
    let path = dir.path().join("mail.eml");
    std::fs::write(
        &path,
        format!(
            "From: a@example.net\r\nTo: b@example.com\r\nSubject: {marker}\r\n\r\nCheap pills, {marker}.\r\n"
        ),
    )
    .expect("write mail");
    (dir, path)
}

/// The dialogue a bot pipes through nc or ncat: written at once, answered
/// in order (the SMTP emulator supports pipelining).
fn smtp_script(marker: &str) -> String {
    format!(
        "HELO bot.example\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<b@example.com>\r\nDATA\r\n\
         Subject: {marker}\r\n\r\nCheap pills, {marker}.\r\n.\r\nQUIT\r\n"
    )
}

/// curl's SMTP arguments after the proxy options.
fn curl_smtp_args(file: &Path) -> [&str; 7] {
    [
        "smtp://mx.example.com",
        "--mail-from",
        "a@example.net",
        "--mail-rcpt",
        "b@example.com",
        "-T",
        file.to_str().expect("utf-8 temp path"),
    ]
}

/// Base curl options: no ~/.curlrc, quiet but with errors, bounded.
const CURL: [&str; 4] = ["-q", "-sS", "--max-time", "15"];

/// The one stored message: its `via` and `target_host` as expected, its
/// body carrying `marker`.
async fn the_message(sensor: &TestSensor, via: &str, target_host: &str, marker: &str) -> Value {
    let rows = sensor.messages().await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    let m = rows[0].clone();
    assert_eq!(m["via"], via, "{m}");
    assert_eq!(m["target_host"], target_host, "{m}");
    assert_eq!(m["mail_from"], "a@example.net", "{m}");
    assert_eq!(m["rcpt_count"], 1, "{m}");
    let body = spampot::store::read_blob(sensor.data.path(), m["sha256"].as_str().unwrap())
        .expect("read the message body");
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains(marker), "{body}");
    m
}

/// The `proxy.request` of `module` and `kind` (waits for it).
async fn request(sensor: &TestSensor, module: &str, kind: &str) -> Value {
    sensor
        .wait_event("proxy.request", |e| {
            e["module"] == module && e["kind"] == kind
        })
        .await
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn s(addr: SocketAddr) -> String {
    addr.to_string()
}

// ---------------------------------------------------------------- curl ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_connect_tunnel_through_the_http_proxy_is_stored() {
    require("curl");
    let sensor = sensor_with("http_proxy", "http-proxy", HTTP).await;
    let proxy = format!("http://{}", sensor.addr(HTTP));
    let (_dir, file) = mail_file("curl-http-connect");
    let mut args = CURL.to_vec();
    args.extend(["-p", "-x", &proxy]);
    args.extend(curl_smtp_args(&file));
    run_ok("curl", &args, b"").await;

    let m = the_message(&sensor, "http-proxy", MX, "curl-http-connect").await;
    assert_eq!(m["dst_port"], HTTP, "{m}");
    let req = request(&sensor, "http", "connect-smtp").await;
    assert_eq!(req["target_host"], MX);
    assert_eq!(req["target_port"], 25);
    assert_eq!(req["method"], "CONNECT");
    assert_eq!(req["status"], 200);
    sensor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_socks4a_is_stored() {
    require("curl");
    let sensor = sensor_with("socks", "socks", SOCKS).await;
    let proxy = s(sensor.addr(SOCKS));
    let (_dir, file) = mail_file("curl-socks4a");
    let mut args = CURL.to_vec();
    args.extend(["--socks4a", &proxy]);
    args.extend(curl_smtp_args(&file));
    run_ok("curl", &args, b"").await;

    the_message(&sensor, "socks", MX, "curl-socks4a").await;
    let req = request(&sensor, "socks4", "connect-smtp").await;
    assert_eq!(req["target_host"], MX);
    assert_eq!(req["target_port"], 25);
    assert_eq!(req["socks4a"], true, "{req}");
    sensor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_socks5_hostname_without_auth_is_stored() {
    require("curl");
    let sensor = sensor_with("socks", "socks", SOCKS).await;
    let proxy = s(sensor.addr(SOCKS));
    let (_dir, file) = mail_file("curl-socks5");
    let mut args = CURL.to_vec();
    args.extend(["--socks5-hostname", &proxy]);
    args.extend(curl_smtp_args(&file));
    run_ok("curl", &args, b"").await;

    the_message(&sensor, "socks", MX, "curl-socks5").await;
    let req = request(&sensor, "socks5", "connect-smtp").await;
    assert_eq!(req["target_host"], MX);
    assert_eq!(req["target_port"], 25);
    assert_eq!(req["atyp"], "domain", "{req}");
    assert_eq!(req["auth"], "none", "{req}");
    assert!(sensor.events_of("credential").await.is_empty());
    sensor.stop().await;
}

/// curl (like ncat and proxychains) offers "no authentication" beside
/// username/password — greeting `05 02 00 02` — so the plugin must pick `02`
/// for the credential it was given to arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_socks5_hostname_with_a_password_is_stored_and_the_credential_recorded() {
    require("curl");
    let sensor = sensor_with("socks", "socks", SOCKS).await;
    let proxy = s(sensor.addr(SOCKS));
    let (_dir, file) = mail_file("curl-socks5-auth");
    let mut args = CURL.to_vec();
    args.extend([
        "--socks5-hostname",
        &proxy,
        "--proxy-user",
        "spammer:hunter2",
    ]);
    args.extend(curl_smtp_args(&file));
    run_ok("curl", &args, b"").await;

    the_message(&sensor, "socks", MX, "curl-socks5-auth").await;
    let req = request(&sensor, "socks5", "connect-smtp").await;
    assert_eq!(req["auth"], "username-password", "{req}");
    assert_eq!(req["username"], "spammer", "{req}");
    let cred = sensor.wait_event("credential", |_| true).await;
    assert_eq!(cred["protocol"], "socks5", "{cred}");
    assert_eq!(cred["mechanism"], "username-password", "{cred}");
    assert_eq!(cred["username"], "spammer", "{cred}");
    assert_eq!(cred["password"], "hunter2", "{cred}");
    sensor.stop().await;
}

// ---------------------------------------------------------------- ncat ---

/// `ncat --proxy` of `proxy_type` to `target` port 25 with the SMTP script
/// on stdin; the message is stored with `via` = `plugin`.
async fn ncat_through(proxy_type: &str, port: u16, file: &str, plugin: &str, target: &str) {
    require("ncat");
    let sensor = sensor_with(file, plugin, port).await;
    let proxy = s(sensor.addr(port));
    let marker = format!("ncat-{proxy_type}");
    let mut args = vec!["--proxy", &proxy, "--proxy-type", proxy_type];
    if proxy_type != "socks4" {
        // Let the proxy resolve the name (ncat's default resolves locally).
        args.extend(["--proxy-dns", "remote"]);
    }
    args.extend([target, "25"]);
    let out = run_ok("ncat", &args, smtp_script(&marker).as_bytes()).await;
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(transcript.starts_with("220 "), "{transcript}");
    assert!(transcript.contains("\r\n221 "), "{transcript}");

    let target_host = target;
    the_message(&sensor, plugin, target_host, &marker).await;
    // ncat's proxy types are the plugins' module names.
    let req = request(&sensor, proxy_type, "connect-smtp").await;
    assert_eq!(req["target_host"], target_host);
    assert_eq!(req["target_port"], 25);
    sensor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ncat_socks4_is_stored() {
    // ncat speaks SOCKS 4 without 4A: the target must be an address.
    ncat_through("socks4", SOCKS, "socks", "socks", MX_IP).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ncat_socks5_is_stored() {
    ncat_through("socks5", SOCKS, "socks", "socks", MX).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ncat_http_connect_is_stored() {
    ncat_through("http", HTTP, "http_proxy", "http-proxy", MX).await;
}

// ------------------------------------------------------------------ nc ---

/// OpenBSD netcat `-X version -x proxy target 25` with the SMTP script on
/// stdin; `-N` half-closes after the script so nc ends when the server
/// answers QUIT, `-q` and `-w` bound it otherwise.
async fn nc_through(version: &str, port: u16, file: &str, plugin: &str, target: &str) {
    require("nc");
    let sensor = sensor_with(file, plugin, port).await;
    let proxy = s(sensor.addr(port));
    let marker = format!("nc-{version}");
    let args = [
        "-N", "-q", "5", "-w", "10", "-X", version, "-x", &proxy, target, "25",
    ];
    let out = run_ok("nc", &args, smtp_script(&marker).as_bytes()).await;
    let transcript = String::from_utf8_lossy(&out.stdout);
    assert!(transcript.starts_with("220 "), "{transcript}");
    assert!(transcript.contains("\r\n221 "), "{transcript}");

    the_message(&sensor, plugin, target, &marker).await;
    let module = match version {
        "connect" => "http",
        "4" => "socks4",
        _ => "socks5",
    };
    let req = request(&sensor, module, "connect-smtp").await;
    assert_eq!(req["target_host"], target);
    assert_eq!(req["target_port"], 25);
    sensor.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nc_http_connect_is_stored() {
    nc_through("connect", HTTP, "http_proxy", "http-proxy", MX).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nc_socks4_is_stored() {
    // nc resolves a SOCKS 4 target itself: give it an address.
    nc_through("4", SOCKS, "socks", "socks", MX_IP).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nc_socks5_is_stored() {
    nc_through("5", SOCKS, "socks", "socks", MX).await;
}

// --------------------------------------------------------- proxychains ---

/// proxychains4 with `proxy_dns` hands the name to the SOCKS 5 proxy.
///
/// The client is swaks, not Postfix's smtp-source: smtp-source registers
/// its socket with epoll before `connect`, and proxychains replaces that
/// socket with its own (`dup2`) inside the hooked `connect`, so the epoll
/// registration dies with the old socket and smtp-source waits forever
/// (rofl0r/proxychains-ng#151). Clients with blocking sockets work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxychains_swaks_through_socks5_stores_every_message() {
    require("proxychains4");
    require("swaks");
    let sensor = sensor_with("socks", "socks", SOCKS).await;
    let dir = TempDir::new().expect("temp dir");
    let conf = dir.path().join("proxychains.conf");
    std::fs::write(
        &conf,
        format!(
            "strict_chain\nproxy_dns\nquiet_mode\ntcp_read_time_out 15000\ntcp_connect_time_out 8000\n\
             [ProxyList]\nsocks5 127.0.0.1 {}\n",
            sensor.addr(SOCKS).port()
        ),
    )
    .expect("write proxychains.conf");
    let conf = conf.to_str().unwrap();
    for n in 0..3 {
        let marker = format!("proxychains-{n}");
        let header = format!("Subject: {marker}");
        let args = [
            "-q",
            "-f",
            conf,
            "swaks",
            "--server",
            "mx.example.com:25",
            "--helo",
            "bot.example",
            "--from",
            "a@example.net",
            "--to",
            "b@example.com,c@example.com",
            "--header",
            &header,
        ];
        let out = run_ok("proxychains4", &args, b"").await;
        let transcript = String::from_utf8_lossy(&out.stdout);
        assert!(
            transcript.contains("queued as") || transcript.contains("Message accepted"),
            "{transcript}"
        );
    }

    let rows = sensor.messages().await;
    assert_eq!(rows.len(), 3, "{rows:?}");
    for m in &rows {
        assert_eq!(m["via"], "socks", "{m}");
        assert_eq!(m["target_host"], MX, "{m}");
        assert_eq!(m["rcpt_count"], 2, "{m}");
        assert_eq!(m["helo"], "bot.example", "{m}");
    }
    // One connection, one request per run; the name went to the proxy.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let reqs = sensor.events_of("proxy.request").await;
        if reqs.len() >= 3 {
            assert_eq!(reqs.len(), 3, "{reqs:?}");
            for r in &reqs {
                assert_eq!(r["module"], "socks5", "{r}");
                assert_eq!(r["kind"], "connect-smtp", "{r}");
                assert_eq!(r["target_host"], MX, "{r}");
                assert_eq!(r["atyp"], "domain", "{r}");
            }
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{reqs:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sensor.stop().await;
}

// -------------------------------------------------------------- mydoom ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mydoom_upload_through_ncat_is_stored_byte_for_byte() {
    require("ncat");
    let sensor = TestSensor::start(&["mydoom"], &[(MYDOOM, "mydoom")], "").await;
    let dir = TempDir::new().expect("temp dir");
    let file = dir.path().join("payload.exe");
    // 300 KiB that compress poorly: more than one read, more than one packet.
    let mut payload = b"MZ\x90\x00".to_vec();
    let mut x: u32 = 0x1234_5678;
    while payload.len() < 300 << 10 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        payload.extend_from_slice(&x.to_le_bytes());
    }
    std::fs::write(&file, &payload).expect("write payload");
    let sha = hex(&Sha256::digest(&payload));

    let port = sensor.addr(MYDOOM).port().to_string();
    let pipeline = format!(
        "printf '\\205\\023\\074\\236\\242' | cat - '{}' | ncat --send-only 127.0.0.1 {port}",
        file.display()
    );
    run_ok("sh", &["-c", &pipeline], b"").await;

    let upload = sensor.wait_event("mydoom.upload", |_| true).await;
    assert_eq!(upload["size"], payload.len(), "{upload}");
    assert_eq!(upload["stored_size"], payload.len(), "{upload}");
    assert_eq!(upload["truncated"], false, "{upload}");
    assert_eq!(upload["stored"], true, "{upload}");
    assert_eq!(upload["sha256"], sha.as_str(), "{upload}");
    let stored = spampot::store::read_blob(sensor.data.path(), &sha).expect("read the upload");
    assert!(stored == payload, "stored upload differs from the file");
    // An upload is not a proxy request.
    assert!(sensor.events_of("proxy.request").await.is_empty());
    sensor.stop().await;
}

// --------------------------------------------------------------- judge ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_judge_get_echoes_the_headers_sent_and_hides_the_client() {
    require("curl");
    let sensor = sensor_with("http_proxy", "http-proxy", HTTP).await;
    let proxy = format!("http://{}", sensor.addr(HTTP));
    let mut args = CURL.to_vec();
    args.extend([
        "-x",
        &proxy,
        "http://judge.example/azenv.php",
        "-H",
        "X-Test: 42",
    ]);
    let out = run_ok("curl", &args, b"").await;
    let page = String::from_utf8_lossy(&out.stdout);
    assert!(page.contains("HTTP_X_TEST = 42"), "{page}");
    assert!(page.contains("HTTP_USER_AGENT = curl/"), "{page}");
    assert!(page.contains("HTTP_HOST = judge.example"), "{page}");
    assert!(page.contains("REQUEST_METHOD = GET"), "{page}");
    assert!(page.contains("REMOTE_ADDR = "), "{page}");
    assert!(
        !page.contains("127.0.0.1"),
        "the client's address leaked: {page}"
    );
    // The time comes from the host's clock (the plugin imports no WASI).
    let request_time: u64 = page
        .lines()
        .find_map(|l| l.strip_prefix("REQUEST_TIME = "))
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or_else(|| panic!("no REQUEST_TIME in {page}"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(now.abs_diff(request_time) < 60, "{request_time} vs {now}");
    // Elite: nothing that tells the origin a proxy was in the way.
    assert!(!page.contains("HTTP_VIA"), "{page}");
    assert!(!page.contains("HTTP_X_FORWARDED_FOR"), "{page}");
    assert!(!page.contains("HTTP_PROXY_CONNECTION"), "{page}");

    let req = request(&sensor, "http", "get").await;
    assert_eq!(req["judge"], true, "{req}");
    assert_eq!(req["form"], "absolute", "{req}");
    assert_eq!(req["target_host"], "judge.example", "{req}");
    assert_eq!(req["target_port"], 80, "{req}");
    assert_eq!(req["status"], 200, "{req}");
    assert!(
        req["user_agent"]
            .as_str()
            .is_some_and(|ua| ua.starts_with("curl/")),
        "{req}"
    );
    sensor.stop().await;
}

// --------------------------------------------------------------- sobig ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_connect_tunnel_through_sobig_is_stored() {
    require("curl");
    let sensor = sensor_with("sobig", "sobig", SOBIG).await;
    let proxy = format!("http://{}", sensor.addr(SOBIG));
    let (_dir, file) = mail_file("curl-sobig");
    let mut args = CURL.to_vec();
    args.extend(["-v", "-p", "-x", &proxy]);
    args.extend(curl_smtp_args(&file));
    let out = run_ok("curl", &args, b"").await;
    // The worm's proxy has no banner.
    let trace = String::from_utf8_lossy(&out.stderr);
    assert!(trace.contains("200 Connection established"), "{trace}");
    assert!(
        !trace.to_ascii_lowercase().contains("proxy-agent"),
        "{trace}"
    );

    let m = the_message(&sensor, "sobig", MX, "curl-sobig").await;
    assert_eq!(m["dst_port"], SOBIG, "{m}");
    let req = request(&sensor, "sobig", "connect-smtp").await;
    assert_eq!(req["target_host"], MX);
    assert_eq!(req["target_port"], 25);
    sensor.stop().await;
}

// --------------------------------------------------------------- mixed ---

/// Bytes that are no request of the protocol on the port: the client
/// sends them and the proxy closes.
async fn garbage(addr: SocketAddr, bytes: &[u8]) {
    let mut c = Client::connect(addr).await;
    c.send(bytes).await;
    c.read_to_close().await;
}

/// A batch of curl runs: proxy options, URL (`None`: the SMTP upload),
/// how many runs, and the (module, kind) each one is recorded as.
type Step<'a> = (&'a [&'a str], Option<&'a str>, usize, (&'a str, &'a str));

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mixed_requests_are_counted_exactly_by_module_and_kind() {
    require("curl");
    let sensor = TestSensor::start(
        &["smtp", "http_proxy", "socks"],
        &[(SMTP, "smtp"), (HTTP, "http-proxy"), (SOCKS, "socks")],
        "",
    )
    .await;
    let http = format!("http://{}", sensor.addr(HTTP));
    let socks = s(sensor.addr(SOCKS));
    let (_dir, file) = mail_file("mixed");
    let smtp = curl_smtp_args(&file);
    let mut connections = 0;
    let mut expected: BTreeMap<(&str, &str), usize> = BTreeMap::new();

    // Every curl run is one connection and one request; connects to 443
    // are refused, so curl fails them.
    #[rustfmt::skip]
    let plan: [Step; 8] = [
        (&["-p", "-x", &http], None, 2, ("http", "connect-smtp")),
        (&["-x", &http], Some("https://www.example.com/"), 2, ("http", "connect-other")),
        (&["-x", &http], Some("http://www.example.com/"), 2, ("http", "get")),
        (&["-x", &http], Some("http://judge.example/azenv.php"), 1, ("http", "get")),
        (&["--socks5-hostname", &socks], None, 2, ("socks5", "connect-smtp")),
        (&["--socks4a", &socks], None, 1, ("socks4", "connect-smtp")),
        (&["--socks5-hostname", &socks], Some("https://www.example.com/"), 2, ("socks5", "connect-other")),
        (&["--socks4a", &socks], Some("https://www.example.com/"), 1, ("socks4", "connect-other")),
    ];
    for (opts, url, runs, key) in plan {
        for _ in 0..runs {
            let mut args = CURL.to_vec();
            args.extend(opts);
            match url {
                Some(url) => args.push(url),
                None => args.extend(smtp),
            }
            if key.1 == "connect-other" {
                let out = run("curl", &args, b"").await;
                assert!(
                    !out.status.success(),
                    "a refused connect succeeded: {args:?}"
                );
            } else {
                run_ok("curl", &args, b"").await;
            }
            connections += 1;
            *expected.entry(key).or_default() += 1;
        }
    }

    // Garbage: TLS on the HTTP proxy, a binary blob; HTTP and TLS on SOCKS.
    let tls_hello = b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03";
    garbage(sensor.addr(HTTP), tls_hello).await;
    garbage(sensor.addr(HTTP), b"\x00\xff\xfe\x01junk\r\n\r\n").await;
    *expected.entry(("http", "error")).or_default() += 2;
    garbage(sensor.addr(SOCKS), b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    garbage(sensor.addr(SOCKS), tls_hello).await;
    garbage(sensor.addr(SOCKS), b"\x07\x01\x00\x19").await;
    // Unrecognised first bytes are recorded as module socks5.
    *expected.entry(("socks5", "error")).or_default() += 3;
    connections += 5;

    // Count once every session has ended.
    let deadline = tokio::time::Instant::now() + WAIT;
    while sensor.events_of("session.close").await.len() < connections {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not every session closed"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut counted: BTreeMap<(String, String), usize> = BTreeMap::new();
    for e in sensor.events_of("proxy.request").await {
        let key = (
            e["module"].as_str().unwrap_or("?").to_owned(),
            e["kind"].as_str().unwrap_or("?").to_owned(),
        );
        *counted.entry(key).or_default() += 1;
    }
    let expected: BTreeMap<(String, String), usize> = expected
        .into_iter()
        .map(|((m, k), n)| ((m.to_owned(), k.to_owned()), n))
        .collect();
    assert_eq!(counted, expected);
    let granted = expected
        .iter()
        .filter(|((_, k), _)| k == "connect-smtp")
        .map(|(_, n)| n)
        .sum::<usize>();
    let rows = sensor.messages().await;
    assert_eq!(rows.len(), granted, "{rows:?}");
    let via_http = rows.iter().filter(|m| m["via"] == "http-proxy").count();
    let via_socks = rows.iter().filter(|m| m["via"] == "socks").count();
    assert_eq!((via_http, via_socks), (2, 3), "{rows:?}");

    // The same run through `spampot report`: the seed's Request Types table,
    // counts and percentages per module, with each module's total.
    sensor.server.sensor.store.flush().await.unwrap();
    let report = spampot_report::build_report(&spampot_report::ReportOptions::new(
        sensor.data.path().to_owned(),
    ))
    .unwrap();
    let table = serde_json::to_value(&report).unwrap()["request_types"].clone();
    let row = |module: &str, kind: &str| {
        table
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["module"] == module && r["kind"] == kind)
            .unwrap_or_else(|| panic!("no {module}/{kind} row in {table}"))
            .clone()
    };
    for module in ["http", "socks5"] {
        let total: usize = expected
            .iter()
            .filter(|((m, _), _)| m == module)
            .map(|(_, n)| n)
            .sum();
        assert_eq!(row(module, "total")["count"], total as u64, "{table}");
        for ((m, kind), n) in expected.iter().filter(|((m, _), _)| m == module) {
            let r = row(m, kind);
            assert_eq!(r["count"], *n as u64, "{table}");
            let percent = (*n as f64 * 10_000.0 / total as f64).round() / 100.0;
            assert_eq!(r["percent"].as_f64().unwrap(), percent, "{table}");
        }
    }
    sensor.stop().await;
}
