//! One client connection: bytes from the socket go to the plugin, the
//! plugin's actions go back to the socket. The host parses nothing the
//! client sends; it only moves bytes and enforces the session's caps.
//!
//! A `splice` ends the current plugin's leg and starts the plugin that the
//! port table names for the target port on the same socket, with the same
//! session id and a longer `via` chain. Nothing ever connects outward.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::watch;

use crate::events::{Origin, new_session_id};
use crate::host_api::{HostState, SessionCounters, SessionLink};
use crate::plugin::{Call, Plugin, PluginSession, Trap, wit};
use crate::ratelimit::Bandwidth;
use crate::server::Sensor;

/// Bytes read from the socket at a time: a whole pipelined SMTP batch or a
/// typical message fits, and 10,000 idle sessions do not hold 10,000
/// buffers (the buffer lives only while a read is being handled).
const READ_CHUNK: usize = 16 << 10;

/// Why a session ended (the `reason` of `session.close`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    ClientClosed,
    PluginClosed,
    Idle,
    SessionTimeout,
    BytesInLimit,
    BytesOutLimit,
    SpliceDepth,
    NoRoute(u16),
    NoPlugin(String),
    Trap(Trap),
    Io,
    Shutdown,
}

impl End {
    pub fn reason(&self) -> &'static str {
        match self {
            End::ClientClosed => "client-closed",
            End::PluginClosed => "plugin-closed",
            End::Idle => "idle",
            End::SessionTimeout => "session-timeout",
            End::BytesInLimit => "bytes-in-limit",
            End::BytesOutLimit => "bytes-out-limit",
            End::SpliceDepth => "splice-depth",
            End::NoRoute(_) => "splice-no-route",
            End::NoPlugin(_) => "no-plugin",
            End::Trap(t) => t.reason(),
            End::Io => "io-error",
            End::Shutdown => "shutdown",
        }
    }
}

/// What carrying out a batch of actions led to.
enum Flow {
    Continue,
    Close,
    Splice(wit::SpliceRequest),
}

/// The connection as the session loop tracks it.
struct Connection {
    writer: OwnedWriteHalf,
    /// This session's own byte budget (`limits.session_bytes_per_sec`).
    bandwidth: Bandwidth,
    peer: SocketAddr,
    /// The address the client connected to.
    local: IpAddr,
    /// The port the client connected to, before `port_offset`.
    port: u16,
    session_id: String,
    via: Vec<String>,
    target: Option<wit::Target>,
    bytes_in: u64,
    bytes_out: u64,
}

impl Connection {
    /// Spend `bytes` of the session's and the sensor's byte budgets.
    async fn throttle(&self, sensor: &Sensor, bytes: usize) {
        self.bandwidth.take(bytes).await;
        sensor.bandwidth.take(bytes).await;
    }
}

/// Serve one accepted connection to its end. Never panics on client input;
/// every way out is an [`End`] recorded in `session.close`.
///
/// `bind` is the listener's address: the client's destination, unless it is
/// a wildcard, when only the socket can say (one `getsockname` less per
/// session otherwise). The socket comes with `TCP_NODELAY` set (see
/// `listener::listen`).
pub async fn run(
    sensor: Arc<Sensor>,
    socket: TcpStream,
    peer: SocketAddr,
    bind: IpAddr,
    port: u16,
    plugin: Arc<Plugin>,
    mut shutdown: watch::Receiver<bool>,
) {
    let started = Instant::now();
    let local = if bind.is_unspecified() {
        socket.local_addr().map_or(bind, |a| a.ip())
    } else {
        bind
    };
    let (mut reader, writer) = socket.into_split();
    let mut conn = Connection {
        writer,
        bandwidth: Bandwidth::new(sensor.limits().session_bytes_per_sec),
        peer,
        local,
        port,
        session_id: new_session_id(),
        via: Vec::new(),
        target: None,
        bytes_in: 0,
        bytes_out: 0,
    };
    let first_origin = Origin::new(conn.session_id.clone(), peer, port, plugin.name());
    sensor.events.emit(
        &first_origin,
        "session.open",
        [
            (
                "dst_ip".to_string(),
                Value::from(local.to_canonical().to_string()),
            ),
            (
                "plugin_version".to_string(),
                plugin.info.version.clone().into(),
            ),
        ],
    );
    sensor.stats.sessions.fetch_add(1, Relaxed);
    sensor.stats.sessions_active.fetch_add(1, Relaxed);

    let limits = sensor.limits();
    let link = SessionLink {
        events: sensor.events.clone(),
        store: sensor.store.clone(),
        stats: sensor.stats.clone(),
        limits: limits.clone(),
        origin: first_origin.clone(),
        counters: SessionCounters::default(),
    };
    let mut last_plugin = plugin.name().to_owned();
    let mut counters = SessionCounters::default();
    let session_timeout = Duration::from_secs(limits.session_timeout_secs);
    let drive = drive(
        &sensor,
        &mut conn,
        &mut reader,
        plugin,
        link,
        &mut last_plugin,
        &mut counters,
    );
    let end = tokio::select! {
        end = tokio::time::timeout(session_timeout, drive) => end.unwrap_or(End::SessionTimeout),
        _ = wait_for_shutdown(&mut shutdown) => End::Shutdown,
    };
    // No shutdown(2): closing the socket sends the same FIN (or the same
    // RST, if the client left bytes unread), one system call less.
    conn.writer.forget();

    if let End::Trap(trap) = &end {
        sensor.stats.traps.fetch_add(1, Relaxed);
        let origin = Origin::new(conn.session_id.clone(), peer, port, &last_plugin);
        sensor.events.emit(
            &origin,
            "plugin.trap",
            [
                ("reason".to_string(), trap.reason().into()),
                ("detail".to_string(), trap.detail().into()),
            ],
        );
        tracing::warn!(session = %conn.session_id, plugin = %last_plugin, reason = trap.reason(), detail = %trap.detail(), "plugin stopped");
    }
    let mut fields = vec![
        (
            "duration_ms".to_string(),
            Value::from(started.elapsed().as_millis() as u64),
        ),
        ("bytes_in".to_string(), conn.bytes_in.into()),
        ("bytes_out".to_string(), conn.bytes_out.into()),
        ("reason".to_string(), end.reason().into()),
        ("via".to_string(), conn.via.clone().into()),
        ("messages".to_string(), counters.messages.into()),
    ];
    if counters.events_dropped > 0 {
        fields.push(("events_dropped".to_string(), counters.events_dropped.into()));
    }
    match &end {
        End::NoRoute(p) => fields.push(("target_port".to_string(), (*p).into())),
        End::NoPlugin(name) => fields.push(("missing_plugin".to_string(), name.clone().into())),
        _ => {}
    }
    // session.close names the first plugin, so a session's rows share one
    // plugin; the legs are in `via` and in the events of each leg.
    sensor.events.emit(&first_origin, "session.close", fields);
    sensor.stats.bytes_in.fetch_add(conn.bytes_in, Relaxed);
    sensor.stats.bytes_out.fetch_add(conn.bytes_out, Relaxed);
    sensor.stats.sessions_active.fetch_sub(1, Relaxed);
}

async fn wait_for_shutdown(shutdown: &mut watch::Receiver<bool>) {
    while !*shutdown.borrow_and_update() {
        if shutdown.changed().await.is_err() {
            // The server is gone without saying: never end sessions for that.
            std::future::pending::<()>().await;
        }
    }
}

/// The loop: start a leg, carry out actions, read, feed, until an end.
async fn drive(
    sensor: &Sensor,
    conn: &mut Connection,
    reader: &mut tokio::net::tcp::OwnedReadHalf,
    plugin: Arc<Plugin>,
    link: SessionLink,
    last_plugin: &mut String,
    counters: &mut SessionCounters,
) -> End {
    let limits = sensor.limits();
    let idle = Duration::from_secs(limits.idle_timeout_secs);
    let mut leg = match start_leg(sensor, conn, &plugin, link).await {
        Ok(leg) => leg,
        Err(trap) => return End::Trap(trap),
    };
    let mut actions = leg.call(Call::Open).await;
    let mut pending: Option<Vec<u8>> = None;
    let mut idle_strikes = 0u8;
    let mut buf = Vec::new();

    let end = loop {
        let batch = match actions {
            Ok(batch) => batch,
            Err(trap) => break End::Trap(trap),
        };
        match carry_out(sensor, conn, batch, idle).await {
            Ok(Flow::Continue) => {}
            Ok(Flow::Close) => break End::PluginClosed,
            Ok(Flow::Splice(request)) => {
                match splice(sensor, conn, &mut leg, request, last_plugin).await {
                    Ok((next, rest)) => {
                        leg = next;
                        actions = leg.call(Call::Open).await;
                        pending = (!rest.is_empty()).then_some(rest);
                        continue;
                    }
                    Err(end) => break end,
                }
            }
            Err(end) => break end,
        }
        if let Some(bytes) = pending.take() {
            actions = leg.call(Call::Data(&bytes)).await;
            continue;
        }

        // Wait for bytes before taking a buffer: an idle session then holds
        // no read buffer at all (10,000 idle sessions × 16 KiB adds up).
        let read = tokio::time::timeout(idle, async {
            loop {
                reader.readable().await?;
                // Read into spare capacity: no 16 KiB memset per read.
                buf.clear();
                buf.reserve(READ_CHUNK);
                match reader.try_read_buf(&mut buf) {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        buf = Vec::new();
                        continue;
                    }
                    other => return other,
                }
            }
        })
        .await;
        actions = match read {
            Err(_) => {
                idle_strikes += 1;
                if idle_strikes >= 2 {
                    break End::Idle;
                }
                leg.call(Call::Timeout).await
            }
            Ok(Ok(0)) => break End::ClientClosed,
            Ok(Ok(n)) => {
                idle_strikes = 0;
                conn.bytes_in += n as u64;
                if conn.bytes_in > limits.max_bytes_in {
                    break End::BytesInLimit;
                }
                conn.throttle(sensor, n).await;
                let result = leg.call(Call::Data(&buf[..n])).await;
                // Free the read buffer while the session waits again.
                buf = Vec::new();
                result
            }
            Ok(Err(_)) => break End::ClientClosed,
        };
    };
    if !matches!(end, End::Trap(_)) {
        let _ = leg.close().await;
    }
    if let Some(link) = leg.state_mut().take_link() {
        *counters = link.counters;
    }
    end
}

/// Instantiate `plugin` for this connection as it stands (via, target).
async fn start_leg(
    sensor: &Sensor,
    conn: &Connection,
    plugin: &Arc<Plugin>,
    link: SessionLink,
) -> Result<PluginSession, Trap> {
    let info = wit::ConnInfo {
        session_id: conn.session_id.clone(),
        sensor: sensor.events.sensor().to_owned(),
        peer_addr: conn.peer.ip().to_canonical().to_string(),
        peer_port: conn.peer.port(),
        local_addr: conn.local.to_canonical().to_string(),
        local_port: conn.port,
        via: conn.via.clone(),
        target: conn.target.clone(),
    };
    let settings = sensor.plugin_settings(plugin.name());
    plugin
        .start_session(HostState::new(link), info, settings)
        .await
}

/// Hand the stream to the plugin routed for the target's port.
async fn splice(
    sensor: &Sensor,
    conn: &mut Connection,
    leg: &mut PluginSession,
    request: wit::SpliceRequest,
    last_plugin: &mut String,
) -> Result<(PluginSession, Vec<u8>), End> {
    let limits = sensor.limits();
    if conn.via.len() as u32 >= limits.max_splice_depth {
        return Err(End::SpliceDepth);
    }
    let port = request.target.port;
    let name = sensor.splice_route(port).ok_or(End::NoRoute(port))?;
    let next = sensor.plugin(&name).ok_or(End::NoPlugin(name.clone()))?;

    // The old leg is done: let it say goodbye, carry its caps over.
    let _ = leg.close().await;
    let mut link = leg.state_mut().take_link().ok_or(End::Io)?;
    let from = std::mem::replace(last_plugin, next.name().to_owned());
    conn.via.push(from.clone());
    conn.target = Some(request.target.clone());
    sensor.stats.splices.fetch_add(1, Relaxed);
    link.origin.plugin = next.name().to_owned();
    sensor.events.emit(
        &link.origin,
        "session.splice",
        [
            ("from_plugin".to_string(), Value::from(from)),
            (
                "target_host".to_string(),
                request.target.host.clone().into(),
            ),
            ("target_port".to_string(), port.into()),
            ("via".to_string(), conn.via.clone().into()),
        ],
    );
    let leg = start_leg(sensor, conn, &next, link)
        .await
        .map_err(End::Trap)?;
    Ok((leg, request.pending))
}

/// Carry out one batch of actions in order; stop at close or splice.
async fn carry_out(
    sensor: &Sensor,
    conn: &mut Connection,
    actions: Vec<wit::Action>,
    idle: Duration,
) -> Result<Flow, End> {
    let limits = sensor.limits();
    for action in actions {
        match action {
            wit::Action::Send(bytes) => {
                if conn.bytes_out + bytes.len() as u64 > limits.max_bytes_out {
                    return Err(End::BytesOutLimit);
                }
                conn.bytes_out += bytes.len() as u64;
                conn.throttle(sensor, bytes.len()).await;
                // A client that stops reading must not pin the session.
                match tokio::time::timeout(idle, conn.writer.write_all(&bytes)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return Err(End::ClientClosed),
                    Err(_) => return Err(End::Idle),
                }
            }
            wit::Action::Close => return Ok(Flow::Close),
            wit::Action::Splice(request) => return Ok(Flow::Splice(request)),
            wit::Action::DelayMs(ms) => {
                let ms = ms.min(limits.max_delay_ms);
                tokio::time::sleep(Duration::from_millis(u64::from(ms))).await;
            }
        }
    }
    Ok(Flow::Continue)
}
