//! One listening port: bind, accept, admit or refuse each connection, and
//! switch on and off while the sensor runs.
//!
//! Disabling stops accepting; sessions already running finish (or are ended
//! at once with `now`). The plugin a port maps to can change at run time:
//! each connection looks it up when it is accepted, so running sessions keep
//! the plugin they started with.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;

use crate::events::Origin;
use crate::server::Sensor;
use crate::session;

/// A configured port and what it is doing now.
pub struct Listener {
    /// The configured (logical) port; reports and splices use this one.
    pub port: u16,
    pub bind: IpAddr,
    plugin: RwLock<String>,
    enabled: AtomicBool,
    bound: Mutex<Option<SocketAddr>>,
    error: Mutex<Option<String>>,
    /// Stops the accept loop.
    accepting: Mutex<Option<(watch::Sender<bool>, JoinHandle<()>)>>,
    /// Ends this port's running sessions (`disable --now`, shutdown).
    end_sessions: watch::Sender<bool>,
    pub sessions_now: AtomicU64,
    pub sessions_total: AtomicU64,
}

/// A listener as `/status` and `spampot ctl list` show it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ListenerStatus {
    pub port: u16,
    pub bind: IpAddr,
    /// The address actually bound (`port + port_offset`), when bound.
    pub bound: Option<SocketAddr>,
    pub plugin: String,
    pub enabled: bool,
    pub error: Option<String>,
    pub sessions_now: u64,
    pub sessions_total: u64,
}

impl Listener {
    pub fn new(port: u16, bind: IpAddr, plugin: &str, enabled: bool) -> Arc<Listener> {
        let (end_sessions, _) = watch::channel(false);
        Arc::new(Listener {
            port,
            bind,
            plugin: RwLock::new(plugin.to_owned()),
            enabled: AtomicBool::new(enabled),
            bound: Mutex::new(None),
            error: Mutex::new(None),
            accepting: Mutex::new(None),
            end_sessions,
            sessions_now: AtomicU64::new(0),
            sessions_total: AtomicU64::new(0),
        })
    }

    pub fn plugin(&self) -> String {
        self.plugin.read().expect("plugin lock").clone()
    }

    /// Serve another plugin on this port, from the next connection on.
    pub fn set_plugin(&self, plugin: &str) {
        *self.plugin.write().expect("plugin lock") = plugin.to_owned();
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled.load(Relaxed)
    }

    pub fn bound(&self) -> Option<SocketAddr> {
        *self.bound.lock().expect("bound lock")
    }

    pub fn status(&self) -> ListenerStatus {
        ListenerStatus {
            port: self.port,
            bind: self.bind,
            bound: self.bound(),
            plugin: self.plugin(),
            enabled: self.is_enabled(),
            error: self.error.lock().expect("error lock").clone(),
            sessions_now: self.sessions_now.load(Relaxed),
            sessions_total: self.sessions_total.load(Relaxed),
        }
    }

    /// Bind `port + offset` and start accepting. Idempotent: a bound
    /// listener stays as it is. The error says why, for the operator.
    pub async fn start(
        self: &Arc<Self>,
        sensor: &Arc<Sensor>,
        offset: u16,
        sessions: &Arc<Semaphore>,
    ) -> Result<SocketAddr, String> {
        self.enabled.store(true, Relaxed);
        if let Some(addr) = self.bound() {
            return Ok(addr);
        }
        let result = self.bind_and_spawn(sensor, offset, sessions).await;
        *self.error.lock().expect("error lock") = result.as_ref().err().cloned();
        result
    }

    async fn bind_and_spawn(
        self: &Arc<Self>,
        sensor: &Arc<Sensor>,
        offset: u16,
        sessions: &Arc<Semaphore>,
    ) -> Result<SocketAddr, String> {
        let plugin = self.plugin();
        if sensor.plugin(&plugin).is_none() {
            return Err(format!(
                "listener {}: no plugin {plugin:?} in {} (loaded: {})",
                self.port,
                sensor.registry.dir().display(),
                sensor.registry.names().join(", ")
            ));
        }
        let bound_port = self.port.checked_add(offset).ok_or_else(|| {
            format!(
                "listener {}: port + offset {offset} exceeds 65535",
                self.port
            )
        })?;
        let addr = SocketAddr::new(self.bind, bound_port);
        let listener = listen(addr).map_err(|e| {
            let hint = if e.kind() == std::io::ErrorKind::PermissionDenied && bound_port < 1024 {
                " (ports below 1024 need root or CAP_NET_BIND_SERVICE; try --port-offset 10000)"
            } else {
                ""
            };
            format!("listener {}: cannot bind {addr}: {e}{hint}", self.port)
        })?;
        let local = listener.local_addr().map_err(|e| e.to_string())?;
        tracing::info!(%local, plugin = %plugin, "listening");
        sensor.events.emit(
            &Origin::sensor(),
            "listener.enabled",
            [
                ("port".to_string(), self.port.into()),
                ("bound".to_string(), local.to_string().into()),
                ("listener_plugin".to_string(), plugin.into()),
            ],
        );
        let _ = self.end_sessions.send(false);
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(
            self.clone(),
            sensor.clone(),
            listener,
            sessions.clone(),
            stop_rx,
        ));
        *self.accepting.lock().expect("accepting lock") = Some((stop, task));
        *self.bound.lock().expect("bound lock") = Some(local);
        Ok(local)
    }

    /// Stop accepting. Running sessions finish unless `now`, which ends them.
    pub async fn stop(&self, sensor: &Sensor, now: bool) {
        self.enabled.store(false, Relaxed);
        let accepting = self.accepting.lock().expect("accepting lock").take();
        if let Some((stop, task)) = accepting {
            let _ = stop.send(true);
            let _ = task.await;
            if let Some(addr) = self.bound.lock().expect("bound lock").take() {
                tracing::info!(%addr, "listener disabled");
                sensor.events.emit(
                    &Origin::sensor(),
                    "listener.disabled",
                    [
                        ("port".to_string(), self.port.into()),
                        ("bound".to_string(), addr.to_string().into()),
                        ("now".to_string(), now.into()),
                    ],
                );
            }
        }
        if now {
            self.end_sessions_now();
        }
    }

    /// Ask every running session of this port to end.
    pub fn end_sessions_now(&self) {
        let _ = self.end_sessions.send(true);
    }
}

/// Connections the kernel completes and queues for `accept` before it
/// drops new SYNs (the client retries after a second). tokio's `bind`
/// uses 128, std's value: 200 loopback connects at once overflowed it, and
/// a burst of real abusers would too. The kernel caps the value at
/// `net.core.somaxconn` (4096 by default since Linux 5.4).
const ACCEPT_BACKLOG: u32 = 4096;

/// Bind and listen like `TcpListener::bind` (SO_REUSEADDR, so a restarted
/// sensor gets its ports back at once), with [`ACCEPT_BACKLOG`].
///
/// `TCP_NODELAY` is set here, once: replies go out as the plugin writes
/// them, and accepted sockets inherit it from the listener (Linux does),
/// which saves a `setsockopt` per session. A test checks the inheritance.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_nodelay(true)?;
    socket.bind(addr)?;
    socket.listen(ACCEPT_BACKLOG)
}

async fn accept_loop(
    listener: Arc<Listener>,
    sensor: Arc<Sensor>,
    socket: TcpListener,
    sessions: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff = Duration::from_millis(10);
    loop {
        let accepted = tokio::select! {
            accepted = socket.accept() => accepted,
            _ = stop.changed() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(10);
                admit(&listener, &sensor, stream, peer, &sessions);
            }
            Err(err) => {
                // Out of file descriptors and the like: wait rather than spin.
                tracing::warn!(port = listener.port, error = %err, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Admit one connection (or refuse it, counted) and spawn its session.
fn admit(
    listener: &Arc<Listener>,
    sensor: &Arc<Sensor>,
    stream: TcpStream,
    peer: SocketAddr,
    sessions: &Arc<Semaphore>,
) {
    let plugin_name = listener.plugin();
    let port = listener.port;
    let bind = listener.bind;
    let Ok(permit) = sessions.clone().try_acquire_owned() else {
        sensor.refuse(peer, port, &plugin_name, "max-sessions");
        return;
    };
    let ip = peer.ip().to_canonical();
    if let Err(reason) = sensor.admit(ip) {
        sensor.refuse(peer, port, &plugin_name, reason);
        return;
    }
    // Resolve the plugin per connection: a reloaded plugin serves new
    // connections while running sessions keep the version they started on.
    let Some(plugin) = sensor.plugin(&plugin_name) else {
        sensor.release(ip);
        sensor.refuse(peer, port, &plugin_name, "no-plugin");
        return;
    };
    listener.sessions_now.fetch_add(1, Relaxed);
    listener.sessions_total.fetch_add(1, Relaxed);
    let sensor = sensor.clone();
    let listener = listener.clone();
    let end = listener.end_sessions.subscribe();
    tokio::spawn(async move {
        session::run(sensor.clone(), stream, peer, bind, port, plugin, end).await;
        sensor.release(ip);
        listener.sessions_now.fetch_sub(1, Relaxed);
        drop(permit);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A burst larger than tokio's default backlog (128) is queued by the
    /// kernel, not dropped: nothing accepts here, so every connect below
    /// completes only if the accept queue holds it. A dropped SYN would be
    /// retried after a second, far past the timeout.
    #[tokio::test]
    async fn a_burst_of_connects_waits_in_the_accept_queue() {
        // The kernel caps the backlog at net.core.somaxconn (128 before
        // Linux 5.4): stay under it.
        let somaxconn: usize = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(4096);
        let burst = 600.min(somaxconn.saturating_sub(8));
        let listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let connected = tokio::task::spawn_blocking(move || {
            (0..burst)
                .map(|_| std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(500)))
                .collect::<Result<Vec<_>, _>>()
                .map(|v| v.len())
        })
        .await
        .unwrap();
        assert_eq!(connected.unwrap(), burst);
        drop(listener);
    }

    /// Sessions no longer set `TCP_NODELAY` themselves: every accepted
    /// socket must have it from the listener, or each small reply would wait
    /// for the client's delayed ACK (Nagle).
    #[tokio::test]
    async fn accepted_sockets_inherit_nodelay() {
        let listener = listen("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = listener.local_addr().unwrap();
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (accepted, _) = listener.accept().await.unwrap();
        assert!(accepted.nodelay().unwrap());
    }
}
