//! Every sensor plugin's fuzz cases (`spampot_sdk::testing::Fuzz`, the
//! corpus its own tests mutate) played through its compiled component, in
//! the pieces the case cuts: hostile bytes never trap the sandbox (a trap
//! loses the session and tells the abuser the port is not what it claims),
//! and the component ends each session as the same code linked natively
//! does, closed or spliced to the same target.
//!
//! The replies are not compared byte for byte: the two runs read the
//! host's clock at different moments, and banners and pages carry it. The
//! SDK's native fuzz tests compare replies under a fixed clock.

use std::sync::Arc;

use spampot::config::Limits;
use spampot::harness::Harness;
use spampot::host_api::HostState;
use spampot::native::Native;
use spampot::plugin::{Call, Plugin, Runtime, wit};
use spampot_blackbox::wasm;
use spampot_sdk::testing::{Fuzz, FuzzCase};

/// Cases per plugin: each is two sessions, component and native. The
/// plugins' native tests run 400 with reply comparison; here what is new
/// is the sandbox, and 150 keep this test to seconds in a debug build.
const CASES: u32 = 150;

/// A sensor plugin's native build, its port and its fuzz corpus.
type PluginUnderTest = (Arc<Plugin>, u16, &'static [&'static [u8]]);

/// How a session ended.
#[derive(Debug, PartialEq, Eq)]
struct End {
    closed: bool,
    splice: Option<(String, u16)>,
    sent_anything: bool,
}

async fn play(
    plugin: &Arc<Plugin>,
    host: &Harness,
    session: usize,
    port: u16,
    case: &FuzzCase,
) -> Result<End, String> {
    let (link, conn) = host.session(session, port, plugin.name());
    let mut s = plugin
        .start_session(HostState::new(link), conn, Vec::new())
        .await
        .map_err(|t| format!("start: {t:?}"))?;
    let mut end = End {
        closed: false,
        splice: None,
        sent_anything: false,
    };
    let take = |actions: Vec<wit::Action>, end: &mut End| {
        for action in actions {
            if end.closed || end.splice.is_some() {
                break;
            }
            match action {
                wit::Action::Send(bytes) => end.sent_anything |= !bytes.is_empty(),
                wit::Action::Close => end.closed = true,
                wit::Action::Splice(req) => end.splice = Some((req.target.host, req.target.port)),
                wit::Action::DelayMs(_) => {}
            }
        }
    };
    let actions = s
        .call(Call::Open)
        .await
        .map_err(|t| format!("open: {t:?}"))?;
    take(actions, &mut end);
    for piece in case.pieces() {
        if end.closed || end.splice.is_some() {
            break;
        }
        let actions = s
            .call(Call::Data(piece))
            .await
            .map_err(|t| format!("data: {t:?}"))?;
        take(actions, &mut end);
    }
    if !end.closed && end.splice.is_none() {
        let actions = s
            .call(Call::Timeout)
            .await
            .map_err(|t| format!("timeout: {t:?}"))?;
        take(actions, &mut end);
    }
    s.close().await.map_err(|t| format!("close: {t:?}"))?;
    Ok(end)
}

async fn fuzz_component(runtime: &Arc<Runtime>, native: Arc<Plugin>, port: u16, corpus: &[&[u8]]) {
    let name = native.name().to_owned();
    let component = runtime
        .load(&wasm(&name))
        .await
        .unwrap_or_else(|e| panic!("load {name}: {e:?}"));
    let data = tempfile::tempdir().unwrap();
    let host = Harness::open(Limits::default(), data.path()).unwrap();
    let mut ends = 0;
    for (i, case) in Fuzz::new(corpus).cases(CASES).inputs().enumerate() {
        let describe = || {
            format!(
                "{name}, fuzz case {i}: input b\"{}\", pieces {:?}",
                case.input.escape_ascii(),
                case.cuts
            )
        };
        let sandboxed = play(&component, &host, 2 * i, port, &case)
            .await
            .unwrap_or_else(|trap| panic!("the component trapped in {trap}; {}", describe()));
        let linked = play(&native, &host, 2 * i + 1, port, &case)
            .await
            .unwrap_or_else(|e| panic!("the native build failed in {e}; {}", describe()));
        assert_eq!(sandboxed, linked, "component vs native; {}", describe());
        ends += usize::from(sandboxed.closed || sandboxed.splice.is_some());
    }
    assert!(ends > 0, "{name}: no case reached a close or a splice");
    host.store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bytes_never_trap_a_sensor_plugin() {
    let runtime = Runtime::new(&Limits::default(), None).expect("engine");
    let plugins: [PluginUnderTest; 5] = [
        (
            Plugin::native(Native::<smtp::Smtp>::factory()),
            25,
            smtp::CONVERSATIONS,
        ),
        (
            Plugin::native(Native::<http_proxy::HttpProxy>::factory()),
            8080,
            http_proxy::CONVERSATIONS,
        ),
        (
            Plugin::native(Native::<socks::SocksProxy>::factory()),
            1080,
            socks::CONVERSATIONS,
        ),
        (
            Plugin::native(Native::<mydoom::MyDoom>::factory()),
            3127,
            mydoom::CONVERSATIONS,
        ),
        (
            Plugin::native(Native::<sobig::Sobig>::factory()),
            3382,
            sobig::CONVERSATIONS,
        ),
    ];
    for (native, port, corpus) in plugins {
        fuzz_component(&runtime, native, port, corpus).await;
    }
}
