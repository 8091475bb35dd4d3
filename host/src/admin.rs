//! The admin HTTP server: a dashboard page, `/status` as JSON, `/metrics`
//! in Prometheus text format, and the control endpoints behind
//! `spampot ctl`. Bound to loopback by default; when a token is configured
//! every request must carry it (`Authorization: Bearer TOKEN`). With
//! `[admin] tls` it speaks HTTPS only (see [`crate::tls`]).
//!
//! | method and path | what |
//! | --- | --- |
//! | `GET /` | the dashboard |
//! | `GET /status` | everything a collector checks |
//! | `GET /metrics` | counters for Prometheus |
//! | `GET /listeners`, `GET /plugins` | the tables of `ctl list` |
//! | `POST /listeners/{port}/enable` | bind and accept again |
//! | `POST /listeners/{port}/disable[?now=true]` | stop accepting (`now`: end its sessions) |
//! | `POST /listeners/{port}/map?plugin=NAME` | serve another plugin on the port |
//! | `POST /reload` | read the config file again (as SIGHUP does) |
//! | `GET /feed?store=…&events_file=…&events_offset=…&message_id=…&sighting_id=…` | a page of the captures from a cursor, for `spampot collect` (needs a token) |
//! | `GET /feed/bodies?sha256=A,B,…` | stored bodies by digest, base64 (needs a token) |

use std::fmt::Write as _;
use std::future::Future as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Json, Response};
use axum::routing::{get, post};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_rustls::server::TlsStream;

use base64::Engine as _;

use crate::server::{ControlError, Sensor, Server};
use crate::store::{
    BlobReader, FeedCursor, FeedError, FeedLimits, StoreError, is_sha256_hex, read_page,
};

/// What the handlers share.
struct Admin {
    server: Arc<Server>,
    token: Option<String>,
}

type Shared = State<Arc<Admin>>;

/// Serve the admin API on `addr` until `stop` turns true; over TLS when
/// `tls` is given (see [`crate::tls`]).
pub async fn serve(
    server: Arc<Server>,
    addr: SocketAddr,
    token: Option<String>,
    tls: Option<Arc<rustls::ServerConfig>>,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let state = Arc::new(Admin { server, token });
    let app = Router::new()
        .route("/", get(dashboard))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .route("/listeners", get(listeners))
        .route("/plugins", get(plugins))
        .route("/listeners/{port}/enable", post(enable))
        .route("/listeners/{port}/disable", post(disable))
        .route("/listeners/{port}/map", post(map))
        .route("/reload", post(reload))
        .route("/feed", get(feed))
        .route("/feed/bodies", get(feed_bodies))
        .layer(middleware::from_fn_with_state(state.clone(), authorize))
        .with_state(state);
    tokio::spawn(async move {
        let stopped = async move {
            while !*stop.borrow_and_update() {
                if stop.changed().await.is_err() {
                    return;
                }
            }
        };
        let served = match tls {
            None => {
                axum::serve(Bounded::new(listener, MAX_CONNECTIONS), app)
                    .with_graceful_shutdown(stopped)
                    .await
            }
            Some(config) => {
                let listener = TlsListener::new(listener, config);
                axum::serve(Bounded::new(listener, MAX_CONNECTIONS), app)
                    .with_graceful_shutdown(stopped)
                    .await
            }
        };
        if let Err(err) = served {
            tracing::error!(error = %err, "admin server failed");
        }
    });
    Ok(local)
}

/// Admin connections open at once. An admin API bound off loopback must not
/// let whoever reaches it take the descriptors the honeypot's listeners
/// need; past this, connections wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 256;
/// A connection that moves no byte for this long is closed: hyper, as axum
/// runs it, has no header timeout, so a client that connects and sends
/// nothing (or a browser's idle keep-alive) would hold its slot for ever.
/// A feed page or a batch of bodies moves bytes all along.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// A listener whose connections count against [`MAX_CONNECTIONS`] and
/// close after [`IDLE_TIMEOUT`] without a byte either way.
struct Bounded<L> {
    inner: L,
    slots: Arc<Semaphore>,
}

impl<L> Bounded<L> {
    fn new(inner: L, max: usize) -> Bounded<L> {
        Bounded {
            inner,
            slots: Arc::new(Semaphore::new(max)),
        }
    }
}

impl<L> axum::serve::Listener for Bounded<L>
where
    L: axum::serve::Listener,
    L::Io: Unpin,
{
    type Io = Guarded<L::Io>;
    type Addr = L::Addr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        // The semaphore is never closed: an error cannot happen, and
        // waiting is all there would be to do.
        let Ok(slot) = self.slots.clone().acquire_owned().await else {
            return std::future::pending().await;
        };
        let (io, addr) = self.inner.accept().await;
        (Guarded::new(io, slot, IDLE_TIMEOUT), addr)
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

/// One admin connection: its slot, and the time it may stay idle.
struct Guarded<S> {
    inner: S,
    idle: Duration,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl<S> Guarded<S> {
    fn new(inner: S, slot: tokio::sync::OwnedSemaphorePermit, idle: Duration) -> Guarded<S> {
        Guarded {
            inner,
            idle,
            deadline: Box::pin(tokio::time::sleep(idle)),
            _slot: slot,
        }
    }

    /// An I/O's outcome as the connection sees it: bytes moved (ready)
    /// restart the idle clock; not ready is still waiting, or, once the
    /// clock has run out, the end of the connection.
    fn watch<T>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        polled: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        if polled.is_ready() {
            let next = tokio::time::Instant::now() + self.idle;
            self.deadline.as_mut().reset(next);
            return polled;
        }
        match self.deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "admin connection idle",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let polled = std::pin::Pin::new(&mut this.inner).poll_read(cx, buf);
        this.watch(cx, polled)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = std::pin::Pin::new(&mut this.inner).poll_write(cx, data);
        this.watch(cx, polled)
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let polled = std::pin::Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(cx, polled)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

/// A client gets this long to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes under way at once: a flood of half-open handshakes costs a
/// bounded amount of memory and leaves the served connections alone.
const MAX_HANDSHAKES: usize = 64;

/// Accepted connections after their TLS handshake. Handshakes run in their
/// own tasks, so that one slow client does not hold up the next accept.
struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    fn new(listener: TcpListener, config: Arc<rustls::ServerConfig>) -> TlsListener {
        let local = listener
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (tx, ready) = mpsc::channel(MAX_HANDSHAKES);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let slots = Arc::new(Semaphore::new(MAX_HANDSHAKES));
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    // axum dropped the listener: the server has stopped.
                    _ = tx.closed() => return,
                    accepted = listener.accept() => accepted,
                };
                let (tcp, peer) = match accepted {
                    Ok(pair) => pair,
                    Err(err) => {
                        // Out of descriptors, most likely: wait, do not spin.
                        tracing::warn!(error = %err, "admin accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((stream, peer)).await;
                        }
                        Ok(Err(err)) => {
                            tracing::debug!(%peer, error = %err, "admin TLS handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "admin TLS handshake timed out"),
                    }
                });
            }
        });
        TlsListener { ready, local }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(ready) => ready,
            // The accept task ended; axum stops calling once shut down.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// With a token configured, every request must present it.
async fn authorize(State(admin): Shared, request: Request, next: Next) -> Response {
    if let Some(token) = &admin.token {
        let presented = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !presented.is_some_and(|p| same_secret(p.as_bytes(), token.as_bytes())) {
            return error(StatusCode::UNAUTHORIZED, "missing or wrong bearer token");
        }
    }
    next.run(request).await
}

/// Equal, in a time that does not depend on where they differ: the token
/// guards captured credentials, and the API may face the network.
fn same_secret(presented: &[u8], token: &[u8]) -> bool {
    presented.len() == token.len()
        && presented
            .iter()
            .zip(token)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0
}

async fn dashboard() -> Html<&'static str> {
    Html(include_str!("dashboard.html"))
}

async fn status(State(admin): Shared) -> Json<Value> {
    Json(status_json(&admin.server.sensor))
}

async fn listeners(State(admin): Shared) -> Json<Value> {
    Json(json!(admin.server.sensor.listeners()))
}

async fn plugins(State(admin): Shared) -> Json<Value> {
    Json(plugins_json(&admin.server.sensor))
}

fn control_result<T: serde::Serialize>(result: Result<T, ControlError>) -> Response {
    match result {
        Ok(value) => Json(json!(value)).into_response(),
        Err(err) => {
            let status = match err {
                ControlError::NoListener(_) | ControlError::NoPlugin(_) => StatusCode::NOT_FOUND,
                ControlError::Bind(_) | ControlError::Reload(_) => StatusCode::CONFLICT,
            };
            error(status, err)
        }
    }
}

async fn enable(State(admin): Shared, Path(port): Path<u16>) -> Response {
    control_result(admin.server.enable(port).await)
}

#[derive(serde::Deserialize)]
struct DisableQuery {
    #[serde(default)]
    now: bool,
}

async fn disable(
    State(admin): Shared,
    Path(port): Path<u16>,
    Query(q): Query<DisableQuery>,
) -> Response {
    control_result(admin.server.disable(port, q.now).await)
}

#[derive(serde::Deserialize)]
struct MapQuery {
    plugin: String,
}

async fn map(State(admin): Shared, Path(port): Path<u16>, Query(q): Query<MapQuery>) -> Response {
    control_result(admin.server.map(port, &q.plugin))
}

async fn reload(State(admin): Shared) -> Response {
    control_result(admin.server.reload().await)
}

/// An error answer: `{"error": message}`, what `ctl` shows.
fn error(status: StatusCode, message: impl std::fmt::Display) -> Response {
    (status, Json(json!({"error": message.to_string()}))).into_response()
}

/// The feed hands out captured credentials and bodies: never without a
/// token, even on loopback.
fn feed_refusal(admin: &Admin) -> Option<Response> {
    admin.token.is_none().then(|| {
        error(
            StatusCode::FORBIDDEN,
            "the feed serves captured credentials and bodies: set [admin] token on this sensor to allow it",
        )
    })
}

async fn feed(State(admin): Shared, Query(cursor): Query<FeedCursor>) -> Response {
    if let Some(refused) = feed_refusal(&admin) {
        return refused;
    }
    let data_dir = admin.server.sensor.store.data_dir().to_path_buf();
    let sensor = admin.server.sensor.events.sensor().to_owned();
    let read =
        tokio::task::spawn_blocking(move || read_page(&data_dir, &cursor, FeedLimits::default()))
            .await;
    match read {
        Ok(Ok(page)) => {
            let mut body = json!(page);
            body["sensor"] = json!(sensor);
            Json(body).into_response()
        }
        Ok(Err(
            e @ (FeedError::CursorGone(_)
            | FeedError::BadOffset { .. }
            | FeedError::StoreReplaced { .. }),
        )) => error(StatusCode::GONE, e),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

#[derive(serde::Deserialize)]
struct BodiesQuery {
    /// Comma-separated digests.
    sha256: String,
}

/// Digests one `/feed/bodies` request may name: a page's distinct bodies
/// in a few requests, not one round trip each, and a URI of ~17 KB.
const MAX_BODIES_PER_REQUEST: usize = 256;

/// Raw body bytes one answer carries (a third more in base64); the
/// digests past it are named in `unsent`, to be asked for again. A body
/// larger than this still goes, alone.
const MAX_BODY_BYTES_PER_ANSWER: usize = 24 << 20;

/// Stored bodies by digest, base64: `bodies` (digest → data), `lost`
/// (digest → why: missing or damaged here, for good) and `unsent`.
async fn feed_bodies(State(admin): Shared, Query(q): Query<BodiesQuery>) -> Response {
    if let Some(refused) = feed_refusal(&admin) {
        return refused;
    }
    let digests: Vec<String> = q.sha256.split(',').map(str::to_owned).collect();
    if digests.len() > MAX_BODIES_PER_REQUEST {
        return error(
            StatusCode::BAD_REQUEST,
            format!("at most {MAX_BODIES_PER_REQUEST} digests per request"),
        );
    }
    if let Some(bad) = digests.iter().find(|d| !is_sha256_hex(d)) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("{bad:?} is not a SHA-256: 64 lowercase hex digits"),
        );
    }
    let data_dir = admin.server.sensor.store.data_dir().to_path_buf();
    let read = tokio::task::spawn_blocking(move || {
        let reader = BlobReader::open(&data_dir)?;
        let mut answer = json!({"bodies": {}, "lost": {}, "unsent": []});
        let mut bytes = 0;
        for (i, sha256) in digests.iter().enumerate() {
            if bytes >= MAX_BODY_BYTES_PER_ANSWER {
                answer["unsent"] = json!(digests[i..]);
                break;
            }
            match reader.read(sha256) {
                Ok(data) => {
                    bytes += data.len();
                    answer["bodies"][sha256] =
                        json!(base64::engine::general_purpose::STANDARD.encode(data));
                }
                // Missing or damaged for good: the collector records the
                // row without it.
                Err(e @ (StoreError::NotFound { .. } | StoreError::Corrupt { .. })) => {
                    answer["lost"][sha256] = json!(e.to_string());
                }
                Err(e) => return Err(e),
            }
        }
        Ok(answer)
    })
    .await;
    match read {
        Ok(Ok(answer)) => Json(answer).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e),
    }
}

fn plugins_json(sensor: &Sensor) -> Value {
    sensor
        .registry
        .all()
        .iter()
        .map(|p| {
            json!({
                "name": p.info.name,
                "version": p.info.version,
                "protocols": p.info.protocols,
                "sha256": p.sha256,
                "path": p.path.display().to_string(),
                "loaded_at": p.loaded_at,
            })
        })
        .collect()
}

/// Everything a collector or an operator checks: version, clock (for skew),
/// listeners, plugins, store, load, counters.
pub fn status_json(sensor: &Sensor) -> Value {
    let now = chrono::Utc::now();
    let config = sensor.config();
    let data_dir = config.resolve(&config.data_dir);
    let usage = sensor.store.usage();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "sensor": sensor.events.sensor(),
        "started_at": sensor.started_at,
        "uptime_secs": sensor.started.elapsed().as_secs(),
        "clock": {
            "utc": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "unix_ms": now.timestamp_millis(),
        },
        "listeners": sensor.listeners(),
        "plugins": plugins_json(sensor),
        "store": {
            "data_dir": data_dir.display().to_string(),
            "size_bytes": usage.blob_bytes,
            "quota_bytes": usage.quota_bytes,
            "free_disk_bytes": free_disk(&data_dir),
            "usage": usage,
        },
        "load_average": load_average(),
        "counters": sensor.stats.snapshot(),
    })
}

async fn metrics(State(admin): Shared) -> impl IntoResponse {
    let sensor = &admin.server.sensor;
    let s = sensor.stats.snapshot();
    let usage = sensor.store.usage();
    let mut out = String::new();
    let mut metric = |name: &str, help: &str, kind: &str, value: u64| {
        let _ = writeln!(out, "# HELP spampot_{name} {help}");
        let _ = writeln!(out, "# TYPE spampot_{name} {kind}");
        let _ = writeln!(out, "spampot_{name} {value}");
    };
    metric(
        "sessions_total",
        "Sessions accepted since start.",
        "counter",
        s.sessions,
    );
    metric(
        "sessions_active",
        "Sessions open now.",
        "gauge",
        s.sessions_active,
    );
    metric(
        "messages_total",
        "Messages captured since start.",
        "counter",
        s.messages,
    );
    metric(
        "recipients_total",
        "Recipients of captured messages.",
        "counter",
        s.recipients,
    );
    metric(
        "bytes_in_total",
        "Bytes received from clients.",
        "counter",
        s.bytes_in,
    );
    metric(
        "bytes_out_total",
        "Bytes sent to clients.",
        "counter",
        s.bytes_out,
    );
    metric(
        "traps_total",
        "Plugin sessions stopped by a trap or cap.",
        "counter",
        s.traps,
    );
    metric(
        "refused_total",
        "Connections refused by a limit.",
        "counter",
        s.refused,
    );
    metric(
        "splices_total",
        "Streams handed from one plugin to another.",
        "counter",
        s.splices,
    );
    metric(
        "uptime_seconds",
        "Seconds since start.",
        "gauge",
        sensor.started.elapsed().as_secs(),
    );
    metric(
        "store_blob_bytes",
        "Compressed bytes of stored bodies.",
        "gauge",
        usage.blob_bytes,
    );
    metric(
        "store_quota_bytes",
        "Disk quota for stored bodies (0 = none).",
        "gauge",
        usage.quota_bytes,
    );
    metric(
        "store_commits_total",
        "Durable commits of captured artifacts (group commit: several per commit).",
        "counter",
        usage.commits,
    );
    metric(
        "store_unindexed_artifacts",
        "Acknowledged artifacts, durable in the journal, whose rows are not in the database yet.",
        "gauge",
        usage.unindexed_artifacts,
    );
    metric(
        "store_index_failing",
        "1 while the database refuses the rows of acknowledged artifacts.",
        "gauge",
        u64::from(usage.index_failing),
    );
    metric(
        "events_dropped_total",
        "Events the store could not queue.",
        "counter",
        usage.events_dropped,
    );
    let _ = writeln!(
        out,
        "# HELP spampot_listener_sessions Sessions open now, per listener."
    );
    let _ = writeln!(out, "# TYPE spampot_listener_sessions gauge");
    for l in sensor.listeners() {
        let _ = writeln!(
            out,
            "spampot_listener_sessions{{port=\"{}\",plugin=\"{}\",enabled=\"{}\"}} {}",
            l.port, l.plugin, l.enabled, l.sessions_now
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}

fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let mut it = text.split_whitespace().map(|v| v.parse::<f64>().ok());
    Some([it.next()??, it.next()??, it.next()??])
}

fn free_disk(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c_path is a valid NUL-terminated string and stat a valid out-pointer.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) };
    (rc == 0).then(|| stat.f_bavail as u64 * stat.f_frsize as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncReadExt;

    /// A connection that sends nothing is closed once idle for the
    /// timeout, and one that keeps moving bytes is not.
    #[tokio::test(start_paused = true)]
    async fn an_idle_admin_connection_is_closed() {
        let slots = Arc::new(Semaphore::new(1));
        let (client, server) = tokio::io::duplex(64);
        let mut guarded = Guarded::new(
            server,
            slots.clone().acquire_owned().await.unwrap(),
            Duration::from_secs(60),
        );
        let mut client = client;
        let mut byte = [0u8; 1];
        for _ in 0..3 {
            tokio::time::advance(Duration::from_secs(45)).await;
            tokio::io::AsyncWriteExt::write_all(&mut client, b"x")
                .await
                .unwrap();
            guarded.read_exact(&mut byte).await.unwrap();
        }
        let started = tokio::time::Instant::now();
        // Bounded, so that a guard that never fires fails instead of hanging.
        let err = tokio::time::timeout(Duration::from_secs(600), guarded.read_exact(&mut byte))
            .await
            .expect("the idle connection was not closed")
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert_eq!(started.elapsed(), Duration::from_secs(60));
        drop(guarded);
        assert_eq!(slots.available_permits(), 1, "the slot is given back");
    }

    /// Past the cap, a connection waits in the backlog until one closes.
    #[tokio::test]
    async fn connections_past_the_cap_wait_for_a_slot() {
        use axum::serve::Listener as _;
        let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = tcp.local_addr().unwrap();
        let mut bounded = Bounded::new(tcp, 2);
        let _clients: Vec<_> = connect_n(addr, 3).await;
        let first = bounded.accept().await;
        let second = bounded.accept().await;
        let third = tokio::time::timeout(Duration::from_millis(300), bounded.accept()).await;
        assert!(third.is_err(), "a third connection got a slot");
        drop(first);
        let third = tokio::time::timeout(Duration::from_secs(10), bounded.accept()).await;
        assert!(third.is_ok(), "a freed slot was not reused");
        drop(second);
    }

    async fn connect_n(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(TcpStream::connect(addr).await.unwrap());
        }
        out
    }

    #[test]
    fn secrets_match_only_whole() {
        assert!(same_secret(b"s3cret", b"s3cret"));
        for other in [&b"s3cre"[..], b"s3cret!", b"S3cret", b"s3creT", b""] {
            assert!(!same_secret(other, b"s3cret"), "{other:?}");
        }
    }
}
