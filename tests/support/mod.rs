//! Shared by the black-box tests: start a real sensor on loopback with a
//! chosen set of plugins, talk to it over TCP, read its event log.
//!
//! Plugins come from `target/plugins/`, as `just plugins` installs them (the
//! sensor's plugins built without WASI), and the test guests from
//! `target/wasm32-wasip2/wasm/` — `just plugins` (or the README's test
//! command) builds both first.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;
use spampot::{Config, Server};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long any single wait in a test may take before the test fails:
/// tests end by themselves, even against a broken sensor.
pub const WAIT: Duration = Duration::from_secs(10);

/// The workspace's `target/` (or `CARGO_TARGET_DIR`).
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"))
}

/// Where `cargo build --target wasm32-wasip2 --profile wasm` puts the test
/// guests (and the example plugin).
pub fn wasm_dir() -> PathBuf {
    target_dir().join("wasm32-wasip2/wasm")
}

/// The built `.wasm` of a plugin — the installed one the sensor ships
/// (`target/plugins/`, `-` in its name), else a test guest — or a panic that
/// says how to build it.
pub fn wasm(name: &str) -> PathBuf {
    let installed = target_dir()
        .join("plugins")
        .join(format!("{}.wasm", name.replace('_', "-")));
    if installed.exists() {
        return installed;
    }
    let path = wasm_dir().join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: build the plugins first with `just plugins`",
        path.display()
    );
    path
}

/// A sensor running in this process, with its own plugin and data folders.
pub struct TestSensor {
    pub server: std::sync::Arc<Server>,
    pub plugins: TempDir,
    pub data: TempDir,
    pub config: Config,
}

/// A test sensor's admin API; it stops when this is dropped.
pub struct AdminServer {
    pub addr: SocketAddr,
    _stop: tokio::sync::watch::Sender<bool>,
}

impl TestSensor {
    /// Start a sensor serving `listeners` (logical port, plugin) on
    /// 127.0.0.1 with the named plugins installed; `extra` is appended to
    /// the config (limits, plugin settings).
    pub async fn start(plugins: &[&str], listeners: &[(u16, &str)], extra: &str) -> TestSensor {
        Self::start_with(plugins, Vec::new(), listeners, extra).await
    }

    /// Like [`start`](Self::start), with plugins linked in natively.
    pub async fn start_with(
        plugins: &[&str],
        natives: Vec<std::sync::Arc<dyn spampot::native::NativeFactory>>,
        listeners: &[(u16, &str)],
        extra: &str,
    ) -> TestSensor {
        Self::start_named("test", plugins, natives, listeners, extra).await
    }

    /// Like [`start_with`](Self::start_with), under the sensor name `name`
    /// (the others are all "test").
    pub async fn start_named(
        name: &str,
        plugins: &[&str],
        natives: Vec<std::sync::Arc<dyn spampot::native::NativeFactory>>,
        listeners: &[(u16, &str)],
        extra: &str,
    ) -> TestSensor {
        let plugin_dir = TempDir::new().expect("temp plugin dir");
        for name in plugins {
            std::fs::copy(wasm(name), plugin_dir.path().join(format!("{name}.wasm")))
                .expect("copy plugin");
        }
        let data = TempDir::new().expect("temp data dir");
        let mut last_err = String::new();
        // Ports are shared with every other test running now: pick a random
        // offset and try again if a port is taken.
        for _ in 0..20 {
            let offset: u16 = rand::random_range(20_000..40_000);
            let mut text = format!(
                "sensor = {name:?}\nplugin_dir = {:?}\ndata_dir = {:?}\nport_offset = {offset}\nrequire_all_listeners = true\n[admin]\nenabled = false\n",
                plugin_dir.path(),
                data.path()
            );
            for (port, plugin) in listeners {
                text.push_str(&format!(
                    "[[listener]]\nport = {port}\nplugin = \"{plugin}\"\nbind = \"127.0.0.1\"\n"
                ));
            }
            text.push_str(extra);
            let config = Config::parse(&text, std::path::Path::new("test.toml"))
                .unwrap_or_else(|e| panic!("test config invalid: {e}\n{text}"));
            match Server::start_native(config.clone(), natives.clone()).await {
                Ok(server) => {
                    return TestSensor {
                        server,
                        plugins: plugin_dir,
                        data,
                        config,
                    };
                }
                Err(e) => last_err = e.to_string(),
            }
        }
        panic!("could not start a test sensor: {last_err}");
    }

    /// Serve this sensor's admin API (dashboard, `/status`, control) on a
    /// free loopback port, with `token` if given, for as long as the
    /// returned handle lives.
    pub async fn serve_admin(&self, token: Option<&str>) -> AdminServer {
        self.serve_admin_with(token, None).await
    }

    /// [`serve_admin`](Self::serve_admin), over TLS with `identity`'s pair.
    pub async fn serve_admin_with(
        &self,
        token: Option<&str>,
        identity: Option<&spampot::tls::ServerIdentity>,
    ) -> AdminServer {
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let addr = spampot::admin::serve(
            self.server.clone(),
            "127.0.0.1:0".parse().unwrap(),
            token.map(str::to_owned),
            identity.map(|i| i.config.clone()),
            stop_rx,
        )
        .await
        .expect("serve the admin API");
        AdminServer { addr, _stop: stop }
    }

    /// The loopback address serving logical `port`.
    pub fn addr(&self, port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port + self.config.port_offset))
    }

    /// Every event written so far (the store is flushed first).
    pub async fn events(&self) -> Vec<Value> {
        self.server.sensor.store.flush().await.expect("flush store");
        let text =
            std::fs::read_to_string(self.data.path().join("events.jsonl")).unwrap_or_default();
        text.lines()
            .map(|l| serde_json::from_str(l).expect("events.jsonl line is JSON"))
            .collect()
    }

    /// Every message stored so far (the store is flushed first: rows are
    /// indexed shortly after the client's `250`, not before it).
    pub async fn messages(&self) -> Vec<Value> {
        self.server.sensor.store.flush().await.expect("flush store");
        messages(self.data.path())
    }

    /// Events of one kind.
    pub async fn events_of(&self, kind: &str) -> Vec<Value> {
        self.events()
            .await
            .into_iter()
            .filter(|e| e["eventid"] == kind)
            .collect()
    }

    /// Wait until an event matching `pred` is logged (sessions end
    /// asynchronously after the client sees the socket close).
    pub async fn wait_event(&self, kind: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(e) = self.events_of(kind).await.into_iter().find(|e| pred(e)) {
                return e;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no {kind} event matched within {WAIT:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn stop(&self) {
        self.server.shutdown(Duration::from_secs(2)).await;
    }
}

/// A client connection with bounded waits.
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = tokio::time::timeout(WAIT, TcpStream::connect(addr))
            .await
            .expect("connect timed out")
            .expect("connect");
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    /// A client over an already connected stream.
    pub fn new(stream: TcpStream) -> Client {
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    /// Like `send`, but a dead connection is `false`, not a panic.
    pub async fn try_send(&mut self, bytes: &[u8]) -> bool {
        self.stream.write_all(bytes).await.is_ok()
    }

    /// Like `read_until`, but a closed connection or a timeout is `None`.
    pub async fn try_read_until(&mut self, needle: &str) -> Option<String> {
        let fut = async {
            loop {
                if let Some(i) = find(&self.buf, needle.as_bytes()) {
                    let rest = self.buf.split_off(i + needle.len());
                    let got = std::mem::replace(&mut self.buf, rest);
                    return Some(String::from_utf8_lossy(&got).into_owned());
                }
                let mut chunk = [0u8; 8192];
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                }
            }
        };
        tokio::time::timeout(WAIT, fut).await.ok().flatten()
    }

    pub async fn send(&mut self, bytes: impl AsRef<[u8]>) {
        self.stream.write_all(bytes.as_ref()).await.expect("write");
    }

    /// Read until `needle` has arrived; returns everything up to and
    /// including it.
    pub async fn read_until(&mut self, needle: &str) -> String {
        let fut = async {
            loop {
                if let Some(i) = find(&self.buf, needle.as_bytes()) {
                    let rest = self.buf.split_off(i + needle.len());
                    let got = std::mem::replace(&mut self.buf, rest);
                    return String::from_utf8_lossy(&got).into_owned();
                }
                let mut chunk = [0u8; 8192];
                let n = self.stream.read(&mut chunk).await.expect("read");
                assert!(
                    n > 0,
                    "connection closed before {needle:?}; got {:?}",
                    String::from_utf8_lossy(&self.buf)
                );
                self.buf.extend_from_slice(&chunk[..n]);
            }
        };
        tokio::time::timeout(WAIT, fut)
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {needle:?}"))
    }

    /// Read until the server closes; returns what arrived.
    pub async fn read_to_close(&mut self) -> Vec<u8> {
        let fut = async {
            let mut all = std::mem::take(&mut self.buf);
            let mut chunk = vec![0u8; 64 << 10];
            loop {
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return all,
                    Ok(n) => all.extend_from_slice(&chunk[..n]),
                }
            }
        };
        tokio::time::timeout(WAIT, fut)
            .await
            .expect("server did not close the connection")
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The debug `spampot` binary, built on first use (tests that kill the
/// sensor need a separate process).
pub fn spampot_bin() -> PathBuf {
    static BUILT: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
            let status = std::process::Command::new(env!("CARGO"))
                .args(["build", "--quiet", "-p", "spampot", "--bin", "spampot"])
                .current_dir(&root)
                .status()
                .expect("run cargo build");
            assert!(status.success(), "cargo build -p spampot failed");
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| root.join("target"));
            target.join("debug/spampot")
        })
        .clone()
}

/// Whether an external client program is installed; tests that need one
/// fail with a clear message when it is not (CI installs them).
pub fn require(program: &str) {
    let found = std::process::Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        found,
        "{program} is not installed; `.ci/run` installs the clients the tests drive (apt-get install ncat swaks curl postfix ...)"
    );
}

/// Messages in a data directory, as `spampot export --what messages` gives them
/// (of a running sensor: use [`TestSensor::messages`], which flushes first).
pub fn messages(data: &std::path::Path) -> Vec<Value> {
    exported(data, spampot::store::ExportWhat::Messages)
}

/// Events in a data directory, rotated logs first, as `spampot export
/// --what events` gives them.
pub fn events(data: &std::path::Path) -> Vec<Value> {
    exported(data, spampot::store::ExportWhat::Events)
}

fn exported(data: &std::path::Path, what: spampot::store::ExportWhat) -> Vec<Value> {
    let mut out = Vec::new();
    spampot::store::export(data, what, spampot::store::ExportFormat::Jsonl, &mut out)
        .expect("export");
    String::from_utf8(out)
        .expect("utf-8 export")
        .lines()
        .map(|l| serde_json::from_str(l).expect("export line is JSON"))
        .collect()
}

/// A test-only plugin build kept apart from the regular outputs (e.g. the
/// second version of the misbehaving guest).
pub fn test_plugin(file: &str) -> PathBuf {
    let path = target_dir().join("test-plugins").join(file);
    assert!(
        path.exists(),
        "{} is missing: build the plugins first with `just plugins`",
        path.display()
    );
    path
}

/// A `spampot run` process with its own folders, killed when dropped.
pub struct SensorProcess {
    pub child: std::process::Child,
    pub dir: TempDir,
    pub config_path: PathBuf,
}

impl SensorProcess {
    /// Start the binary with `config` (written to `sensor.toml` in a temp
    /// folder that also holds `plugins/` with the named plugins) and wait
    /// until `ready` accepts connections.
    pub async fn start(plugins: &[&str], config: &str, ready: SocketAddr) -> SensorProcess {
        let dir = TempDir::new().expect("temp dir");
        let plugin_dir = dir.path().join("plugins");
        std::fs::create_dir(&plugin_dir).unwrap();
        for name in plugins {
            std::fs::copy(wasm(name), plugin_dir.join(format!("{name}.wasm"))).unwrap();
        }
        let config_path = dir.path().join("sensor.toml");
        std::fs::write(&config_path, config).unwrap();
        let child = std::process::Command::new(spampot_bin())
            .args(["run", "--config"])
            .arg(&config_path)
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start spampot");
        let process = SensorProcess {
            child,
            dir,
            config_path,
        };
        wait_listening(ready).await;
        process
    }

    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Send a signal (`HUP`, `TERM`).
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
    }

    /// Run `spampot ARGS` (e.g. `ctl`) and return (success, stdout+stderr).
    pub fn cli(&self, args: &[&str]) -> (bool, String) {
        let out = std::process::Command::new(spampot_bin())
            .args(args)
            .output()
            .expect("run spampot");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), text)
    }
}

impl Drop for SensorProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Wait until `addr` accepts a connection.
pub async fn wait_listening(addr: SocketAddr) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while TcpStream::connect(addr).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "nothing listening on {addr} after {WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
