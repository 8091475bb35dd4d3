//! The admin HTTP server: a dashboard page, `/status` as JSON and
//! `/metrics` in Prometheus text format. Bound to loopback by default.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Json};
use axum::routing::get;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::server::Sensor;

/// Serve the admin API on `addr` until `stop` turns true.
pub async fn serve(
    sensor: Arc<Sensor>,
    addr: SocketAddr,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    let app = Router::new()
        .route("/", get(dashboard))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .with_state(sensor);
    tokio::spawn(async move {
        let stopped = async move {
            while !*stop.borrow_and_update() {
                if stop.changed().await.is_err() {
                    return;
                }
            }
        };
        if let Err(err) = axum::serve(listener, app)
            .with_graceful_shutdown(stopped)
            .await
        {
            tracing::error!(error = %err, "admin server failed");
        }
    });
    Ok(local)
}

async fn dashboard() -> Html<&'static str> {
    Html(include_str!("dashboard.html"))
}

async fn status(State(sensor): State<Arc<Sensor>>) -> Json<Value> {
    Json(status_json(&sensor))
}

/// Everything a collector or an operator checks: version, clock (for skew),
/// listeners, plugins, store, load, counters.
pub fn status_json(sensor: &Sensor) -> Value {
    let now = chrono::Utc::now();
    let config = sensor.config();
    let listeners = sensor.listeners.lock().expect("listeners lock").clone();
    let plugins: Vec<Value> = sensor
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
            })
        })
        .collect();
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
        "listeners": listeners,
        "plugins": plugins,
        "store": {
            "data_dir": data_dir.display().to_string(),
            "usage": usage,
            "free_disk_bytes": free_disk(&data_dir),
        },
        "load_average": load_average(),
        "counters": sensor.stats.snapshot(),
    })
}

async fn metrics(State(sensor): State<Arc<Sensor>>) -> impl IntoResponse {
    let s = sensor.stats.snapshot();
    let mut out = String::new();
    let mut counter = |name: &str, help: &str, kind: &str, value: u64| {
        let _ = writeln!(out, "# HELP spampot_{name} {help}");
        let _ = writeln!(out, "# TYPE spampot_{name} {kind}");
        let _ = writeln!(out, "spampot_{name} {value}");
    };
    counter(
        "sessions_total",
        "Sessions accepted since start.",
        "counter",
        s.sessions,
    );
    counter(
        "sessions_active",
        "Sessions open now.",
        "gauge",
        s.sessions_active,
    );
    counter(
        "messages_total",
        "Messages captured since start.",
        "counter",
        s.messages,
    );
    counter(
        "recipients_total",
        "Recipients of captured messages.",
        "counter",
        s.recipients,
    );
    counter(
        "bytes_in_total",
        "Bytes received from clients.",
        "counter",
        s.bytes_in,
    );
    counter(
        "bytes_out_total",
        "Bytes sent to clients.",
        "counter",
        s.bytes_out,
    );
    counter(
        "traps_total",
        "Plugin sessions stopped by a trap or cap.",
        "counter",
        s.traps,
    );
    counter(
        "refused_total",
        "Connections refused by a limit.",
        "counter",
        s.refused,
    );
    counter(
        "splices_total",
        "Streams handed from one plugin to another.",
        "counter",
        s.splices,
    );
    counter(
        "uptime_seconds",
        "Seconds since start.",
        "gauge",
        sensor.started.elapsed().as_secs(),
    );
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
