//! The sensor's configuration file (TOML): listeners, limits, store and
//! per-plugin settings. Every default says why it is what it is.
//!
//! ```toml
//! sensor = "sensor-01"
//! plugin_dir = "target/plugins"
//! data_dir = "data"
//!
//! [[listener]]
//! port = 2525
//! plugin = "smtp"
//! bind = "127.0.0.1"   # default 0.0.0.0
//! enabled = true       # default true
//!
//! [limits]
//! idle_timeout_secs = 60
//!
//! [plugins.smtp]
//! hostname = "mail.example.com.br"
//! ```

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

/// Why a config was refused. The message names the key, and the line where
/// the TOML parser or a span can tell it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("invalid config {path}, line {line}: {key}: {message}")]
    Invalid {
        path: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
}

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The sensor's name in every event; a collector tells sensors apart by it.
    #[serde(default = "default_sensor")]
    pub sensor: String,
    /// Where plugin `.wasm` files live; a plugin is found by its file stem.
    #[serde(default = "default_plugin_dir")]
    pub plugin_dir: PathBuf,
    /// Where captures, the database and events go.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// Added to every listener port, so the seed's ports (25, 80, 1080, ...)
    /// can run unprivileged as 10025, 10080, ... Splices still name the
    /// logical port (an abuser asks for port 25, whatever we listen on).
    #[serde(default)]
    pub port_offset: u16,
    /// Refuse to start if any listener cannot be bound. By default a port
    /// that fails is reported and the others still serve: a sensor that
    /// keeps most of its ports beats one that is down.
    #[serde(default)]
    pub require_all_listeners: bool,
    /// How often the plugin directory is checked for new, changed or
    /// removed `.wasm` files (0 = never). A second is quick enough for an
    /// operator and costs one `readdir` and a `stat` per plugin.
    #[serde(default = "default_plugin_poll_ms")]
    pub plugin_poll_ms: u64,
    /// Where compiled plugins are cached, keyed by the engine's
    /// compatibility hash and the `.wasm` hash, so a restart does not
    /// recompile them. Default: `compile-cache` in the data directory.
    #[serde(default)]
    pub compile_cache: Option<PathBuf>,
    #[serde(default, rename = "listener")]
    pub listeners: Vec<Listener>,
    /// Extra splice routes: target port → plugin, for ports no listener
    /// names (e.g. `587 = "smtp"`).
    #[serde(default)]
    pub splice: BTreeMap<String, String>,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub store: StoreSettings,
    #[serde(default)]
    pub admin: Admin,
    /// `[plugins.NAME]`: settings handed to that plugin's sessions as text.
    #[serde(default)]
    pub plugins: BTreeMap<String, toml::Table>,
    /// Where the file was read from, for error messages.
    #[serde(skip)]
    pub path: PathBuf,
}

/// One `[[listener]]`: a port served by a plugin.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listener {
    pub port: Spanned<u16>,
    pub plugin: Spanned<String>,
    #[serde(default = "default_bind")]
    pub bind: IpAddr,
    #[serde(default = "default_true")]
    pub enabled: bool,
}

/// `[limits]`: what a client or a plugin may cost the sensor.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Concurrent sessions on the whole sensor. 10,000 idle sessions cost
    /// ~0.5 GiB (see docs/performance.md) and fit `vm.max_map_count`'s
    /// default; raise both together.
    pub max_sessions: u32,
    /// Concurrent sessions from one source address: spam software opens
    /// tens of parallel connections; thousands from one IP is a flood.
    pub max_sessions_per_ip: u32,
    /// New connections one source address may open per minute (0 = no
    /// limit). Off by default: the study wants every abuser's full rate.
    pub max_connections_per_ip_per_minute: u32,
    /// Bytes per second one session may move in each direction (0 = no
    /// limit). A tarpit for heavy senders when set.
    pub session_bytes_per_sec: u64,
    /// Bytes per second all sessions together may move (0 = no limit): set
    /// it below the line's capacity so the sensor never saturates its uplink.
    pub sensor_bytes_per_sec: u64,
    /// A client silent this long gets the plugin's idle reply (SMTP 421);
    /// silent as long again, it is disconnected. Real MTAs wait minutes;
    /// a minute keeps slow bots while freeing slots from dead ones.
    pub idle_timeout_secs: u64,
    /// Hard cap on one session's life, so a trickling client cannot hold a
    /// slot for ever. Ten minutes is ample for hundreds of messages.
    pub session_timeout_secs: u64,
    /// Bytes a client may send in one session: several large spams fit,
    /// an endless stream does not.
    pub max_bytes_in: u64,
    /// Bytes a plugin may send to one client. Emulators answer in short
    /// lines; a plugin that floods is broken or abused.
    pub max_bytes_out: u64,
    /// Linear memory of one plugin instance. A message is held in memory
    /// until stored; 64 MiB holds the largest (10 MiB by default) several
    /// times over while bounding a memory bomb.
    pub max_plugin_memory: u64,
    /// Wall time one plugin call may run, host calls excluded. Parsing a
    /// packet takes microseconds; 100 ms is a runaway.
    pub call_deadline_ms: u64,
    /// Largest single artifact. MyDoom uploads are capped at 15 MiB in the
    /// seed's spirit; emails are smaller.
    pub max_artifact_bytes: u64,
    /// Artifacts one session may store (many messages per connection is
    /// normal for spam; unbounded is not).
    pub max_artifacts_per_session: u32,
    /// Events one session may emit before further ones are dropped (and
    /// counted in `session.close`).
    pub max_events_per_session: u32,
    /// How many times one connection may be spliced (proxy → proxy → smtp).
    pub max_splice_depth: u32,
    /// Largest tarpit delay a plugin may ask for in one action.
    pub max_delay_ms: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_sessions: 10_000,
            max_sessions_per_ip: 256,
            max_connections_per_ip_per_minute: 0,
            session_bytes_per_sec: 0,
            sensor_bytes_per_sec: 0,
            idle_timeout_secs: 60,
            session_timeout_secs: 600,
            max_bytes_in: 64 << 20,
            max_bytes_out: 1 << 20,
            max_plugin_memory: 64 << 20,
            call_deadline_ms: 100,
            max_artifact_bytes: 15 << 20,
            max_artifacts_per_session: 10_000,
            max_events_per_session: 100_000,
            max_splice_depth: 4,
            max_delay_ms: 30_000,
        }
    }
}

/// `[store]`: the capture store.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSettings {
    /// Disk bytes that captured bodies may use. 0 means no quota; the
    /// default keeps a sensor on a small disk from filling it.
    pub quota_bytes: u64,
    /// Artifacts that may share one fsync (group commit). Larger batches
    /// raise throughput under load; a lone message is never held back.
    pub max_batch: usize,
    /// Rotate events.jsonl past this size so files stay easy to ship.
    pub events_rotate_bytes: u64,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            quota_bytes: 8 << 30,
            max_batch: 512,
            events_rotate_bytes: 256 << 20,
        }
    }
}

/// `[admin]`: the status page, dashboard and control API.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Admin {
    /// Loopback by default: the admin API changes what the sensor serves.
    pub bind: std::net::SocketAddr,
    pub enabled: bool,
    /// Bearer token for the control endpoints. Required when `bind` is not
    /// a loopback address (a collector pulling `/status` remotely).
    pub token: Option<String>,
    /// Serve HTTPS only. Off by default: loopback needs no encryption, and
    /// a remote API is often reached over SSH or a VPN already. Without
    /// `tls_cert`, the sensor makes a self-signed pair in
    /// `DATA/admin-tls/` on first start; clients pin its fingerprint.
    pub tls: bool,
    /// The operator's own certificate chain and key (PEM), instead.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            bind: "127.0.0.1:8025".parse().expect("valid literal"),
            enabled: true,
            token: None,
            tls: false,
            tls_cert: None,
            tls_key: None,
        }
    }
}

fn default_sensor() -> String {
    "spampot".into()
}
fn default_plugin_dir() -> PathBuf {
    "target/plugins".into()
}
fn default_data_dir() -> PathBuf {
    "data".into()
}
fn default_bind() -> IpAddr {
    IpAddr::from([0, 0, 0, 0])
}
fn default_true() -> bool {
    true
}
fn default_plugin_poll_ms() -> u64 {
    1000
}

impl Config {
    /// Read, parse and validate a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parse and validate config text; `path` is only used in messages and
    /// to resolve relative directories.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })?;
        config.path = path.to_owned();
        config.validate(text)?;
        Ok(config)
    }

    fn validate(&self, text: &str) -> Result<(), ConfigError> {
        let invalid = |offset: usize, key: String, message: String| ConfigError::Invalid {
            path: self.path.clone(),
            line: line_of(text, offset),
            key,
            message,
        };
        let mut seen: BTreeMap<(IpAddr, u16), usize> = BTreeMap::new();
        for (i, listener) in self.listeners.iter().enumerate() {
            let port = *listener.port.get_ref();
            let key = format!("listener[{i}].port");
            if port == 0 {
                return Err(invalid(
                    listener.port.span().start,
                    key,
                    "port 0 is not a port".into(),
                ));
            }
            if port.checked_add(self.port_offset).is_none() {
                return Err(invalid(
                    listener.port.span().start,
                    key,
                    format!(
                        "port {port} + port_offset {} exceeds 65535",
                        self.port_offset
                    ),
                ));
            }
            if let Some(first) = seen.insert((listener.bind, port), i) {
                return Err(invalid(
                    listener.port.span().start,
                    key,
                    format!(
                        "port {port} on {} is already listed by listener[{first}]",
                        listener.bind
                    ),
                ));
            }
            if !is_plugin_name(listener.plugin.get_ref()) {
                return Err(invalid(
                    listener.plugin.span().start,
                    format!("listener[{i}].plugin"),
                    format!(
                        "{:?} is not a plugin name (letters, digits, '-' and '_')",
                        listener.plugin.get_ref()
                    ),
                ));
            }
        }
        for (port, plugin) in &self.splice {
            let key = format!("splice.{port}");
            let find = text.find(&format!("{port} ")).unwrap_or(0);
            if port.parse::<u16>().map_or(true, |p| p == 0) {
                return Err(invalid(
                    find,
                    key,
                    "splice keys are TCP ports (1-65535)".into(),
                ));
            }
            if !is_plugin_name(plugin) {
                return Err(invalid(
                    find,
                    key,
                    format!("{plugin:?} is not a plugin name"),
                ));
            }
        }
        let l = &self.limits;
        for (key, value) in [
            ("limits.max_sessions", l.max_sessions as u64),
            ("limits.max_sessions_per_ip", l.max_sessions_per_ip as u64),
            ("limits.idle_timeout_secs", l.idle_timeout_secs),
            ("limits.session_timeout_secs", l.session_timeout_secs),
            ("limits.max_bytes_in", l.max_bytes_in),
            ("limits.max_bytes_out", l.max_bytes_out),
            ("limits.call_deadline_ms", l.call_deadline_ms),
            ("limits.max_artifact_bytes", l.max_artifact_bytes),
            ("store.max_batch", self.store.max_batch as u64),
        ] {
            if value == 0 {
                let field = key.rsplit('.').next().unwrap_or(key);
                let offset = text.find(field).unwrap_or(0);
                return Err(invalid(offset, key.into(), "must be greater than 0".into()));
            }
        }
        if self.admin.enabled && !self.admin.bind.ip().is_loopback() && self.admin.token.is_none() {
            let offset = text.find("[admin]").unwrap_or(0);
            return Err(invalid(
                offset,
                "admin.token".into(),
                format!(
                    "the admin API on {} is reachable from the network: set a token",
                    self.admin.bind
                ),
            ));
        }
        match (&self.admin.tls_cert, &self.admin.tls_key, self.admin.tls) {
            (Some(_), Some(_), true) | (None, None, _) => {}
            (Some(_), Some(_), false) => {
                let offset = text.find("tls_cert").unwrap_or(0);
                return Err(invalid(
                    offset,
                    "admin.tls".into(),
                    "tls_cert and tls_key are set but tls is not: add tls = true".into(),
                ));
            }
            (Some(_), None, _) | (None, Some(_), _) => {
                let offset = text.find("tls_").unwrap_or(0);
                return Err(invalid(
                    offset,
                    "admin.tls_cert".into(),
                    "tls_cert and tls_key go together: set both, or neither for a generated pair"
                        .into(),
                ));
            }
        }
        if l.max_plugin_memory < 1 << 20 {
            let offset = text.find("max_plugin_memory").unwrap_or(0);
            return Err(invalid(
                offset,
                "limits.max_plugin_memory".into(),
                "must be at least 1 MiB (1048576): a component needs a few pages to start".into(),
            ));
        }
        Ok(())
    }

    /// A directory from the config, relative to the config file's folder.
    pub fn resolve(&self, dir: &Path) -> PathBuf {
        if dir.is_absolute() {
            dir.to_owned()
        } else {
            self.path
                .parent()
                .map(|p| p.join(dir))
                .unwrap_or_else(|| dir.to_owned())
        }
    }

    /// Where compiled plugins are cached.
    pub fn compile_cache_dir(&self) -> PathBuf {
        match &self.compile_cache {
            Some(dir) => self.resolve(dir),
            None => self.resolve(&self.data_dir).join("compile-cache"),
        }
    }

    /// The plugin that a splice to `port` goes to: listeners first (enabled
    /// or not: an abuser asking for port 25 reaches the SMTP emulator even
    /// when the sensor's own port 25 is off), then `[splice]`.
    pub fn splice_route(&self, port: u16) -> Option<&str> {
        self.listeners
            .iter()
            .find(|l| *l.port.get_ref() == port)
            .map(|l| l.plugin.get_ref().as_str())
            .or_else(|| self.splice.get(&port.to_string()).map(String::as_str))
    }

    /// The `[plugins.NAME]` table flattened to text pairs for the plugin.
    pub fn plugin_settings(&self, name: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if let Some(table) = self.plugins.get(name) {
            flatten("", table, &mut out);
        }
        out
    }
}

/// Plugin names become file stems: keep them to a safe alphabet.
pub fn is_plugin_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn flatten(prefix: &str, table: &toml::Table, out: &mut Vec<(String, String)>) {
    for (key, value) in table {
        let key = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(t) => flatten(&key, t, out),
            toml::Value::String(s) => out.push((key, s.clone())),
            toml::Value::Array(items) => {
                let text: Vec<String> = items
                    .iter()
                    .map(|v| match v {
                        toml::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect();
                out.push((key, text.join(",")));
            }
            other => out.push((key, other.to_string())),
        }
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    /// Mutations of the shipped config (typos, stray bytes, truncation,
    /// huge numbers, lines out of place) are refused with an error that
    /// names the file, and a line inside it when it names one; never a
    /// panic. Rule 4: a config file is operator input.
    #[test]
    fn mutated_configs_get_an_error_not_a_panic() {
        let shipped = include_bytes!("../../spampot.toml");
        assert!(parse(std::str::from_utf8(shipped).unwrap()).is_ok());
        let (mut refused, mut accepted) = (0, 0);
        for case in spampot_sdk::testing::Fuzz::new(&[shipped])
            .cases(300)
            .inputs()
        {
            let text = String::from_utf8_lossy(&case.input);
            let result = std::panic::catch_unwind(|| parse(&text))
                .unwrap_or_else(|_| panic!("parsing panicked on:\n{text}"));
            match result {
                Ok(_) => accepted += 1,
                Err(e) => {
                    refused += 1;
                    assert!(e.to_string().contains("test.toml"), "{e}");
                    if let ConfigError::Invalid { line, .. } = e {
                        assert!(
                            (1..=text.lines().count().max(1)).contains(&line),
                            "{line}: {text}"
                        );
                    }
                }
            }
        }
        // Both sides are reached: a fuzzer that broke every file, or none,
        // would prove little.
        assert!(
            refused > 0 && accepted > 0,
            "{refused} refused, {accepted} accepted"
        );
    }

    #[test]
    fn listener_defaults_and_plugin_settings() {
        let config = parse(
            "[[listener]]\nport = 2525\nplugin = \"smtp\"\n\n[plugins.smtp]\nhostname = \"mx\"\nmax = 5\nlist = [\"a\", \"b\"]\n",
        )
        .unwrap();
        let l = &config.listeners[0];
        assert_eq!(*l.port.get_ref(), 2525);
        assert!(l.enabled);
        assert_eq!(l.bind, IpAddr::from([0, 0, 0, 0]));
        assert_eq!(config.splice_route(2525), Some("smtp"));
        assert_eq!(
            config.plugin_settings("smtp"),
            vec![
                ("hostname".into(), "mx".into()),
                ("list".into(), "a,b".into()),
                ("max".into(), "5".into())
            ]
        );
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let err = parse("sensor = \"a\"\n[[listener]]\nport = 25\nplugin = \"smtp\"\nprot = 1\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 5"), "{err}");
        assert!(err.contains("prot"), "{err}");
    }

    #[test]
    fn wrong_type_names_line() {
        let err = parse("[[listener]]\nport = \"x\"\nplugin = \"smtp\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn duplicate_port_is_refused_with_its_line() {
        let err = parse(
            "[[listener]]\nport = 25\nplugin = \"smtp\"\n[[listener]]\nport = 25\nplugin = \"socks\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("line 5"), "{err}");
        assert!(err.contains("listener[1].port"), "{err}");
    }

    #[test]
    fn bad_plugin_name_and_zero_limits_are_refused() {
        let err = parse("[[listener]]\nport = 25\nplugin = \"../x\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("listener[0].plugin"), "{err}");
        let err = parse("[limits]\nidle_timeout_secs = 0\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("limits.idle_timeout_secs") && err.contains("line 2"),
            "{err}"
        );
    }

    #[test]
    fn a_remote_admin_api_needs_a_token() {
        let err = parse("[admin]\nbind = \"0.0.0.0:8025\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("admin.token") && err.contains("line 1"),
            "{err}"
        );
        assert!(parse("[admin]\nbind = \"0.0.0.0:8025\"\ntoken = \"s3cret\"\n").is_ok());
    }

    #[test]
    fn a_certificate_needs_its_key_and_tls_on() {
        let err = parse("[admin]\ntls = true\ntls_cert = \"a.pem\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("go together"), "{err}");
        let err = parse("[admin]\ntls_cert = \"a.pem\"\ntls_key = \"k.pem\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("add tls = true"), "{err}");
        assert!(parse("[admin]\ntls = true\n").is_ok());
    }

    #[test]
    fn splice_table_routes_extra_ports() {
        let config = parse("[splice]\n587 = \"smtp\"\n").unwrap();
        assert_eq!(config.splice_route(587), Some("smtp"));
        assert_eq!(config.splice_route(25), None);
        assert!(parse("[splice]\nabc = \"smtp\"\n").is_err());
    }
}
