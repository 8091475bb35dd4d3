//! The sensor: listeners from config, one task per connection, a cap on
//! concurrent sessions (overall and per source address), and a graceful
//! shutdown that stops accepting, lets sessions finish, then flushes the store.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use crate::config::{Config, Limits};
use crate::events::{EventLog, Origin};
use crate::plugin::{Plugin, Runtime};
use crate::registry::Registry;
use crate::session;
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
    pub listeners: Mutex<Vec<ListenerStatus>>,
}

/// One configured listener as it runs.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ListenerStatus {
    /// The configured (logical) port.
    pub port: u16,
    /// The port actually bound (`port + port_offset`).
    pub bound_port: u16,
    pub bind: IpAddr,
    pub plugin: String,
    pub enabled: bool,
    pub bound: bool,
    pub error: Option<String>,
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

    /// Count a session from `ip`, or refuse it past the per-address cap.
    fn admit(&self, ip: IpAddr) -> bool {
        let mut per_ip = self.per_ip.lock().expect("per-ip lock");
        let n = per_ip.entry(ip).or_insert(0);
        if *n >= self.limits.max_sessions_per_ip {
            return false;
        }
        *n += 1;
        true
    }

    fn release(&self, ip: IpAddr) {
        let mut per_ip = self.per_ip.lock().expect("per-ip lock");
        if let Some(n) = per_ip.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                per_ip.remove(&ip);
            }
        }
    }

    fn refuse(&self, peer: SocketAddr, port: u16, plugin: &str, reason: &str) {
        self.stats.refused.fetch_add(1, Relaxed);
        let origin = Origin::new(String::new(), peer, port, plugin);
        self.events.emit(
            &origin,
            "limit.refused",
            [("reason".to_string(), Value::from(reason))],
        );
    }
}

/// A running sensor.
pub struct Server {
    pub sensor: Arc<Sensor>,
    /// Tells listeners to stop accepting.
    stop_accepting: watch::Sender<bool>,
    /// Tells sessions to end now.
    end_sessions: watch::Sender<bool>,
    sessions: Arc<Semaphore>,
    accept_tasks: Vec<JoinHandle<()>>,
    /// Addresses actually bound, in listener order (for tests and logs).
    pub bound: Vec<SocketAddr>,
}

impl Server {
    /// Open the store, load plugins, bind listeners and start serving.
    pub async fn start(config: Config) -> Result<Server, StartError> {
        let data_dir = config.resolve(&config.data_dir);
        let store = CaptureStore::open(StoreConfig {
            data_dir: data_dir.clone(),
            quota_bytes: config.store.quota_bytes,
            max_batch: config.store.max_batch,
            events_rotate_bytes: config.store.events_rotate_bytes,
        })
        .map_err(|e| StartError::Store {
            path: data_dir.display().to_string(),
            message: e.to_string(),
        })?;
        let runtime =
            Runtime::new(&config.limits).map_err(|e| StartError::Engine(format!("{e:#}")))?;
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
            listeners: Mutex::new(Vec::new()),
        });
        tracing::info!(pooling = runtime.pooling, "wasm engine ready");

        let loaded = sensor
            .registry
            .load_dir()
            .await
            .map_err(|source| StartError::PluginDir {
                path: plugin_dir.display().to_string(),
                source,
            })?;
        for result in loaded {
            match result {
                Ok(plugin) => {
                    tracing::info!(plugin = plugin.name(), version = %plugin.info.version, path = %plugin.path.display(), "plugin loaded");
                    sensor.events.emit(
                        &Origin::sensor(),
                        "plugin.loaded",
                        [
                            ("name".to_string(), Value::from(plugin.name())),
                            ("version".to_string(), plugin.info.version.clone().into()),
                            ("sha256".to_string(), plugin.sha256.clone().into()),
                        ],
                    );
                }
                Err(err) => {
                    tracing::error!(error = %err, "plugin rejected");
                    sensor.events.emit(
                        &Origin::sensor(),
                        "plugin.rejected",
                        [("error".to_string(), Value::from(err.to_string()))],
                    );
                }
            }
        }

        let (stop_accepting, _) = watch::channel(false);
        let (end_sessions, _) = watch::channel(false);
        let sessions = Arc::new(Semaphore::new(limits.max_sessions as usize));
        let mut server = Server {
            sensor,
            stop_accepting,
            end_sessions,
            sessions,
            accept_tasks: Vec::new(),
            bound: Vec::new(),
        };
        match server.bind_listeners(&config).await {
            Ok(()) => Ok(server),
            Err(err) => {
                // Give back what was taken: bound ports and the data
                // directory's lock, so a retry (or another sensor) can have them.
                server.abort().await;
                Err(err)
            }
        }
    }

    /// Bind every enabled listener of the config, recording each one's status.
    async fn bind_listeners(&mut self, config: &Config) -> Result<(), StartError> {
        let mut statuses = Vec::new();
        for l in &config.listeners {
            let port = *l.port.get_ref();
            let plugin_name = l.plugin.get_ref().clone();
            let bound_port = port + config.port_offset;
            let mut status = ListenerStatus {
                port,
                bound_port,
                bind: l.bind,
                plugin: plugin_name.clone(),
                enabled: l.enabled,
                bound: false,
                error: None,
            };
            if l.enabled {
                match self.bind(l.bind, bound_port, port, &plugin_name).await {
                    Ok(addr) => {
                        status.bound = true;
                        status.bound_port = addr.port();
                        self.bound.push(addr);
                    }
                    Err(message) => {
                        tracing::error!(port = bound_port, plugin = %plugin_name, "{message}");
                        if config.require_all_listeners {
                            return Err(StartError::Listener(message));
                        }
                        status.error = Some(message);
                    }
                }
            }
            statuses.push(status);
        }
        let any_enabled = config.listeners.iter().any(|l| l.enabled);
        *self.sensor.listeners.lock().expect("listeners lock") = statuses;
        if any_enabled && self.bound.is_empty() {
            return Err(StartError::NoListener);
        }
        Ok(())
    }

    /// Undo a partial start: stop the listeners already bound, close the store.
    async fn abort(self) {
        let _ = self.stop_accepting.send(true);
        for task in self.accept_tasks {
            let _ = task.await;
        }
        self.sensor.store.close().await;
    }

    /// Bind one listener and start its accept loop.
    async fn bind(
        &mut self,
        ip: IpAddr,
        bound_port: u16,
        port: u16,
        plugin_name: &str,
    ) -> Result<SocketAddr, String> {
        if self.sensor.plugin(plugin_name).is_none() {
            return Err(format!(
                "listener {port}: no plugin {plugin_name:?} in {} (loaded: {})",
                self.sensor.registry.dir().display(),
                self.sensor.registry.names().join(", ")
            ));
        }
        let addr = SocketAddr::new(ip, bound_port);
        let listener = TcpListener::bind(addr).await.map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::PermissionDenied && bound_port < 1024 {
                " (ports below 1024 need root or CAP_NET_BIND_SERVICE; try --port-offset 10000)"
            } else {
                ""
            };
            format!("listener {port}: cannot bind {addr}: {e}{hint}")
        })?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        tracing::info!(%local, plugin = plugin_name, "listening");
        self.sensor.events.emit(
            &Origin::sensor(),
            "listener.enabled",
            [
                ("port".to_string(), Value::from(port)),
                ("bound".to_string(), local.to_string().into()),
                ("listener_plugin".to_string(), plugin_name.into()),
            ],
        );
        let task = tokio::spawn(accept_loop(
            self.sensor.clone(),
            listener,
            port,
            plugin_name.to_owned(),
            self.sessions.clone(),
            self.stop_accepting.subscribe(),
            self.end_sessions.subscribe(),
        ));
        self.accept_tasks.push(task);
        Ok(local)
    }

    /// Stop accepting, give sessions `grace` to finish, end the rest, and
    /// flush the store. Every acknowledged message is already durable; this
    /// makes the event log complete too.
    pub async fn shutdown(self, grace: Duration) {
        let _ = self.stop_accepting.send(true);
        for task in self.accept_tasks {
            let _ = task.await;
        }
        let max = self.sensor.limits.max_sessions;
        let all_done = self.sessions.acquire_many(max);
        if tokio::time::timeout(grace, all_done).await.is_err() {
            tracing::info!("grace period over; ending the remaining sessions");
            let _ = self.end_sessions.send(true);
            let _ =
                tokio::time::timeout(Duration::from_secs(5), self.sessions.acquire_many(max)).await;
        }
        self.sensor.store.close().await;
    }
}

async fn accept_loop(
    sensor: Arc<Sensor>,
    listener: TcpListener,
    port: u16,
    plugin_name: String,
    sessions: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
    end_sessions: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => return,
        };
        let (socket, peer) = match accepted {
            Ok(pair) => {
                backoff = Duration::from_millis(10);
                pair
            }
            Err(err) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(port, error = %err, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
                continue;
            }
        };
        serve(
            &sensor,
            socket,
            peer,
            port,
            &plugin_name,
            &sessions,
            &end_sessions,
        );
    }
}

/// Admit one connection (or refuse it, counted) and spawn its session.
fn serve(
    sensor: &Arc<Sensor>,
    socket: TcpStream,
    peer: SocketAddr,
    port: u16,
    plugin_name: &str,
    sessions: &Arc<Semaphore>,
    end_sessions: &watch::Receiver<bool>,
) {
    let Ok(permit) = sessions.clone().try_acquire_owned() else {
        sensor.refuse(peer, port, plugin_name, "max-sessions");
        return;
    };
    let ip = peer.ip().to_canonical();
    if !sensor.admit(ip) {
        sensor.refuse(peer, port, plugin_name, "max-sessions-per-ip");
        return;
    }
    // Resolve the plugin per connection: a reloaded plugin serves new
    // connections while running sessions keep the version they started on.
    let Some(plugin) = sensor.plugin(plugin_name) else {
        sensor.release(ip);
        sensor.refuse(peer, port, plugin_name, "no-plugin");
        return;
    };
    let sensor = sensor.clone();
    let end = end_sessions.clone();
    tokio::spawn(async move {
        session::run(sensor.clone(), socket, peer, port, plugin, end).await;
        sensor.release(ip);
        drop(permit);
    });
}
