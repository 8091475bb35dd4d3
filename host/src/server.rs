//! The sensor: its listeners, the caps on concurrent sessions (overall and
//! per source address) and on connection rate, run-time control (enable,
//! disable, remap, reload), and a graceful shutdown that stops accepting,
//! lets sessions finish, then flushes the store.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::sync::Semaphore;

use crate::config::{Config, Limits};
use crate::events::{EventLog, Origin};
use crate::listener::{Listener, ListenerStatus};
use crate::plugin::{Plugin, Runtime};
use crate::ratelimit::{Bandwidth, RateLimiter};
use crate::registry::Registry;
use crate::stats::Stats;
use crate::store::{CaptureStore, StoreConfig};

/// Why the sensor could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot open the store in {path}: {message}")]
    Store { path: String, message: String },
    #[error("cannot create the wasm engine: {0}")]
    Engine(String),
    #[error("cannot read the plugin directory {path}")]
    PluginDir {
        path: String,
        source: std::io::Error,
    },
    #[error("{0} (require_all_listeners is set)")]
    Listener(String),
    #[error("no listener could be started; see the errors above")]
    NoListener,
}

/// Why a run-time control request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no listener on port {0}")]
    NoListener(u16),
    #[error("no plugin named {0:?} is loaded")]
    NoPlugin(String),
    #[error("{0}")]
    Bind(String),
    #[error("reload: {0}")]
    Reload(String),
}

/// Refusal events logged per second before they are only counted.
const MAX_REFUSAL_EVENTS_PER_SEC: u32 = 20;

/// The current second's refusal logging.
struct RefusalLog {
    window: Instant,
    logged: u32,
    suppressed: HashMap<&'static str, u64>,
}

/// State shared by every session of the sensor.
pub struct Sensor {
    pub events: EventLog,
    pub store: CaptureStore,
    pub stats: Arc<Stats>,
    pub registry: Registry,
    config: RwLock<Arc<Config>>,
    /// Fixed at start: the engine's pool is sized from them.
    limits: Arc<Limits>,
    pub started: Instant,
    pub started_at: String,
    per_ip: Mutex<HashMap<IpAddr, u32>>,
    rate: RateLimiter,
    /// The sensor-wide byte budget shared by every session (0 = unlimited).
    pub bandwidth: Bandwidth,
    listeners: Mutex<Vec<Arc<Listener>>>,
    refusals: Mutex<RefusalLog>,
}

impl Sensor {
    pub fn limits(&self) -> Arc<Limits> {
        self.limits.clone()
    }

    pub fn config(&self) -> Arc<Config> {
        self.config.read().expect("config lock").clone()
    }

    /// The plugin a splice to `port` goes to.
    pub fn splice_route(&self, port: u16) -> Option<String> {
        self.config().splice_route(port).map(str::to_owned)
    }

    pub fn plugin(&self, name: &str) -> Option<Arc<Plugin>> {
        self.registry.get(name)
    }

    pub fn plugin_settings(&self, name: &str) -> Vec<(String, String)> {
        self.config().plugin_settings(name)
    }

    /// Every listener, as it stands.
    pub fn listeners(&self) -> Vec<ListenerStatus> {
        self.listeners
            .lock()
            .expect("listeners lock")
            .iter()
            .map(|l| l.status())
            .collect()
    }

    /// Every listener's handle, as they stand.
    fn listener_handles(&self) -> Vec<Arc<Listener>> {
        self.listeners.lock().expect("listeners lock").clone()
    }

    fn listeners_on(&self, port: u16) -> Vec<Arc<Listener>> {
        self.listeners
            .lock()
            .expect("listeners lock")
            .iter()
            .filter(|l| l.port == port)
            .cloned()
            .collect()
    }

    /// Count a session from `ip`, or say which cap refuses it.
    pub(crate) fn admit(&self, ip: IpAddr) -> Result<(), &'static str> {
        if !self.rate.allow(ip) {
            return Err("rate-per-ip");
        }
        let mut per_ip = self.per_ip.lock().expect("per-ip lock");
        let n = per_ip.entry(ip).or_insert(0);
        if *n >= self.limits.max_sessions_per_ip {
            return Err("max-sessions-per-ip");
        }
        *n += 1;
        Ok(())
    }

    pub(crate) fn release(&self, ip: IpAddr) {
        let mut per_ip = self.per_ip.lock().expect("per-ip lock");
        if let Some(n) = per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&ip);
            }
        }
    }

    /// Count a refused connection, and log it — up to a rate: a flood of
    /// refusals must not become a flood of log lines. Past the rate, each
    /// second's refusals are summed in one `limit.suppressed` event.
    pub(crate) fn refuse(&self, peer: SocketAddr, port: u16, plugin: &str, reason: &'static str) {
        self.stats.refused.fetch_add(1, Relaxed);
        let mut log = self.refusals.lock().expect("refusals lock");
        if log.window.elapsed() >= Duration::from_secs(1) {
            self.flush_refusals(&mut log);
        }
        if log.logged < MAX_REFUSAL_EVENTS_PER_SEC {
            log.logged += 1;
            let origin = Origin::new(String::new(), peer, port, plugin);
            self.events.emit(
                &origin,
                "limit.refused",
                [("reason".to_string(), Value::from(reason))],
            );
        } else {
            *log.suppressed.entry(reason).or_insert(0) += 1;
        }
    }

    fn flush_refusals(&self, log: &mut RefusalLog) {
        for (reason, count) in log.suppressed.drain() {
            self.events.emit(
                &Origin::sensor(),
                "limit.suppressed",
                [
                    ("reason".to_string(), Value::from(reason)),
                    ("count".to_string(), count.into()),
                    (
                        "window_ms".to_string(),
                        (log.window.elapsed().as_millis() as u64).into(),
                    ),
                ],
            );
        }
        log.window = Instant::now();
        log.logged = 0;
    }
}

/// What `reload` changed.
#[derive(Debug, Default, serde::Serialize)]
pub struct ReloadSummary {
    pub added: Vec<u16>,
    pub removed: Vec<u16>,
    pub enabled: Vec<u16>,
    pub disabled: Vec<u16>,
    pub remapped: Vec<u16>,
    pub errors: Vec<String>,
}

/// A running sensor. Shared (in an `Arc`) by the signal handler and the
/// admin API, which control it while it serves.
pub struct Server {
    pub sensor: Arc<Sensor>,
    sessions: Arc<Semaphore>,
    /// The port offset in force (from the config or `--port-offset`).
    port_offset: u16,
    /// Where `reload` reads the config again, and the command-line
    /// overrides to apply on top of it.
    reload_from: Option<(PathBuf, Overrides)>,
    watcher: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

/// Command-line settings that win over the config file, also on reload.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub port_offset: Option<u16>,
    pub plugin_dir: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
}

impl Overrides {
    pub fn apply(&self, config: &mut Config) {
        if let Some(offset) = self.port_offset {
            config.port_offset = offset;
        }
        if let Some(dir) = &self.plugin_dir {
            config.plugin_dir = dir.clone();
        }
        if let Some(dir) = &self.data_dir {
            config.data_dir = dir.clone();
        }
    }
}

impl Server {
    /// Open the store, load plugins, bind listeners and start serving.
    pub async fn start(config: Config) -> Result<Arc<Server>, StartError> {
        Self::start_with(config, None).await
    }

    /// Like [`start`](Self::start), remembering where the config came from
    /// so that `reload` (SIGHUP, `spampot ctl reload`) can read it again.
    pub async fn start_with(
        config: Config,
        reload_from: Option<(PathBuf, Overrides)>,
    ) -> Result<Arc<Server>, StartError> {
        Self::start_inner(config, reload_from, Vec::new()).await
    }

    /// Start with some plugins linked in natively instead of loaded as
    /// components (they win over a `.wasm` of the same name). For
    /// benchmarks that measure what the sandbox costs; never for serving.
    pub async fn start_native(
        config: Config,
        natives: Vec<Arc<dyn crate::native::NativeFactory>>,
    ) -> Result<Arc<Server>, StartError> {
        Self::start_inner(config, None, natives).await
    }

    async fn start_inner(
        config: Config,
        reload_from: Option<(PathBuf, Overrides)>,
        natives: Vec<Arc<dyn crate::native::NativeFactory>>,
    ) -> Result<Arc<Server>, StartError> {
        let data_dir = config.resolve(&config.data_dir);
        let store = CaptureStore::open(StoreConfig {
            data_dir: data_dir.clone(),
            quota_bytes: config.store.quota_bytes,
            max_batch: config.store.max_batch,
            events_rotate_bytes: config.store.events_rotate_bytes,
            ..StoreConfig::default()
        })
        .map_err(|e| StartError::Store {
            path: data_dir.display().to_string(),
            message: e.to_string(),
        })?;
        let cache_dir = config.compile_cache_dir();
        let runtime = Runtime::new(&config.limits, Some(cache_dir))
            .map_err(|e| StartError::Engine(format!("{e:#}")))?;
        let plugin_dir = config.resolve(&config.plugin_dir);
        let registry = Registry::new(runtime.clone(), plugin_dir.clone());
        let events = EventLog::new(&config.sensor, store.clone());
        let limits = Arc::new(config.limits.clone());
        let sensor = Arc::new(Sensor {
            events,
            store,
            stats: Arc::new(Stats::default()),
            registry,
            config: RwLock::new(Arc::new(config.clone())),
            limits: limits.clone(),
            started: Instant::now(),
            started_at: crate::events::now_rfc3339(),
            per_ip: Mutex::new(HashMap::new()),
            rate: RateLimiter::per_minute(limits.max_connections_per_ip_per_minute),
            bandwidth: Bandwidth::new(limits.sensor_bytes_per_sec),
            listeners: Mutex::new(Vec::new()),
            refusals: Mutex::new(RefusalLog {
                window: Instant::now(),
                logged: 0,
                suppressed: HashMap::new(),
            }),
        });
        tracing::info!(pooling = runtime.pooling, "wasm engine ready");

        let server = Arc::new(Server {
            sensor: sensor.clone(),
            sessions: Arc::new(Semaphore::new(limits.max_sessions as usize)),
            port_offset: config.port_offset,
            reload_from,
            watcher: Mutex::new(None),
        });
        let started = Instant::now();
        let before_load = crate::registry::snapshot(&plugin_dir)
            .await
            .unwrap_or_default();
        let loaded = sensor
            .registry
            .load_dir()
            .await
            .map_err(|source| StartError::PluginDir {
                path: plugin_dir.display().to_string(),
                source,
            });
        let loaded = match loaded {
            Ok(loaded) => loaded,
            Err(err) => {
                server.abort().await;
                return Err(err);
            }
        };
        for result in &loaded {
            crate::registry::report_load(&sensor.events, result);
        }
        for factory in natives {
            let plugin = Plugin::native(factory);
            tracing::warn!(
                plugin = plugin.name(),
                "native plugin: not sandboxed (benchmarks only)"
            );
            sensor.registry.insert(plugin);
        }
        tracing::info!(
            plugins = loaded.iter().filter(|r| r.is_ok()).count(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "plugins loaded"
        );
        match server.bind_listeners(&config).await {
            Ok(()) => {}
            Err(err) => {
                // Give back what was taken: bound ports and the data
                // directory's lock, so a retry (or another sensor) can have them.
                server.abort().await;
                return Err(err);
            }
        }
        if config.plugin_poll_ms > 0 {
            let task = crate::registry::watch(
                sensor.clone(),
                Duration::from_millis(config.plugin_poll_ms),
                before_load,
            );
            *server.watcher.lock().expect("watcher lock") = Some(task);
        }
        Ok(server)
    }

    /// Create and bind every listener of the config, recording each status.
    async fn bind_listeners(&self, config: &Config) -> Result<(), StartError> {
        let mut any_bound = false;
        for l in &config.listeners {
            let listener = Listener::new(*l.port.get_ref(), l.bind, l.plugin.get_ref(), l.enabled);
            self.sensor
                .listeners
                .lock()
                .expect("listeners lock")
                .push(listener.clone());
            if !l.enabled {
                continue;
            }
            match listener
                .start(&self.sensor, self.port_offset, &self.sessions)
                .await
            {
                Ok(_) => any_bound = true,
                Err(message) => {
                    tracing::error!(port = listener.port, "{message}");
                    if config.require_all_listeners {
                        return Err(StartError::Listener(message));
                    }
                }
            }
        }
        if config.listeners.iter().any(|l| l.enabled) && !any_bound {
            return Err(StartError::NoListener);
        }
        Ok(())
    }

    /// The addresses bound now, in listener order.
    pub fn bound(&self) -> Vec<SocketAddr> {
        self.sensor
            .listeners()
            .iter()
            .filter_map(|l| l.bound)
            .collect()
    }

    /// Start accepting on `port` again.
    pub async fn enable(&self, port: u16) -> Result<Vec<ListenerStatus>, ControlError> {
        let listeners = self.sensor.listeners_on(port);
        if listeners.is_empty() {
            return Err(ControlError::NoListener(port));
        }
        for l in &listeners {
            l.start(&self.sensor, self.port_offset, &self.sessions)
                .await
                .map_err(ControlError::Bind)?;
        }
        Ok(listeners.iter().map(|l| l.status()).collect())
    }

    /// Stop accepting on `port`; running sessions finish unless `now`.
    pub async fn disable(&self, port: u16, now: bool) -> Result<Vec<ListenerStatus>, ControlError> {
        let listeners = self.sensor.listeners_on(port);
        if listeners.is_empty() {
            return Err(ControlError::NoListener(port));
        }
        for l in &listeners {
            l.stop(&self.sensor, now).await;
        }
        Ok(listeners.iter().map(|l| l.status()).collect())
    }

    /// Serve `plugin` on `port` from the next connection on.
    pub fn map(&self, port: u16, plugin: &str) -> Result<Vec<ListenerStatus>, ControlError> {
        let listeners = self.sensor.listeners_on(port);
        if listeners.is_empty() {
            return Err(ControlError::NoListener(port));
        }
        if self.sensor.plugin(plugin).is_none() {
            return Err(ControlError::NoPlugin(plugin.to_owned()));
        }
        for l in &listeners {
            l.set_plugin(plugin);
        }
        tracing::info!(port, plugin, "listener remapped");
        Ok(listeners.iter().map(|l| l.status()).collect())
    }

    /// Read the config file again and apply it: listeners added, removed,
    /// switched or remapped; splice routes and plugin settings replaced.
    /// Limits and the store are fixed at start (the engine's pool is sized
    /// from them); a change to them is reported, not applied.
    pub async fn reload(&self) -> Result<ReloadSummary, ControlError> {
        let Some((path, overrides)) = &self.reload_from else {
            return Err(ControlError::Reload(
                "this sensor was not started from a config file".into(),
            ));
        };
        let mut config = Config::load(path).map_err(|e| ControlError::Reload(e.to_string()))?;
        overrides.apply(&mut config);
        let mut summary = ReloadSummary::default();
        let old = self.sensor.config();
        if format!("{:?}", old.limits) != format!("{:?}", config.limits) {
            summary
                .errors
                .push("[limits] changed: restart the sensor to apply".into());
        }
        if config.port_offset != self.port_offset {
            summary
                .errors
                .push("port_offset changed: restart the sensor to apply".into());
        }
        *self.sensor.config.write().expect("config lock") = Arc::new(config.clone());

        let current = self.sensor.listener_handles();
        let mut keep = Vec::new();
        for l in &config.listeners {
            let port = *l.port.get_ref();
            let plugin = l.plugin.get_ref();
            let listener = match current.iter().find(|c| c.port == port && c.bind == l.bind) {
                Some(existing) => {
                    if existing.plugin() != *plugin {
                        existing.set_plugin(plugin);
                        summary.remapped.push(port);
                    }
                    existing.clone()
                }
                None => {
                    summary.added.push(port);
                    Listener::new(port, l.bind, plugin, l.enabled)
                }
            };
            if l.enabled && listener.bound().is_none() {
                match listener
                    .start(&self.sensor, self.port_offset, &self.sessions)
                    .await
                {
                    Ok(_) => {
                        if !summary.added.contains(&port) {
                            summary.enabled.push(port);
                        }
                    }
                    Err(message) => summary.errors.push(message),
                }
            } else if !l.enabled && listener.bound().is_some() {
                listener.stop(&self.sensor, false).await;
                summary.disabled.push(port);
            }
            keep.push(listener);
        }
        for old in &current {
            if !keep.iter().any(|k| Arc::ptr_eq(k, old)) {
                old.stop(&self.sensor, false).await;
                summary.removed.push(old.port);
            }
        }
        *self.sensor.listeners.lock().expect("listeners lock") = keep;
        self.sensor.events.emit(
            &Origin::sensor(),
            "config.reloaded",
            [(
                "summary".to_string(),
                serde_json::to_value(&summary).unwrap_or_default(),
            )],
        );
        tracing::info!(?summary, "config reloaded");
        Ok(summary)
    }

    /// Stop accepting, give sessions `grace` to finish, end the rest, and
    /// flush the store. Every acknowledged message is already durable; this
    /// makes the event log complete too.
    pub async fn shutdown(&self, grace: Duration) {
        if let Some(task) = self.watcher.lock().expect("watcher lock").take() {
            task.abort();
        }
        let listeners = self.sensor.listener_handles();
        for l in &listeners {
            l.stop(&self.sensor, false).await;
        }
        let max = self.sensor.limits.max_sessions;
        if tokio::time::timeout(grace, self.sessions.acquire_many(max))
            .await
            .is_err()
        {
            tracing::info!("grace period over; ending the remaining sessions");
            for l in &listeners {
                l.end_sessions_now();
            }
            let _ =
                tokio::time::timeout(Duration::from_secs(5), self.sessions.acquire_many(max)).await;
        }
        {
            let mut log = self.sensor.refusals.lock().expect("refusals lock");
            self.sensor.flush_refusals(&mut log);
        }
        self.sensor.store.close().await;
    }

    /// Undo a partial start: stop what was bound, close the store.
    async fn abort(&self) {
        let listeners = self.sensor.listener_handles();
        for l in &listeners {
            l.stop(&self.sensor, true).await;
        }
        self.sensor.store.close().await;
    }
}
