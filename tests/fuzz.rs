//! Every plugin's fuzz cases (`spampot_sdk::testing::Fuzz`, the corpus
//! its own tests mutate) played through its compiled component, in
//! the pieces the case cuts: hostile bytes never trap the sandbox (a trap
//! loses the session and tells the abuser the port is not what it claims),
//! and the component answers exactly as the same code linked natively:
//! the same bytes, then closed or spliced to the same target, the same
//! events and the same stored messages. Both see one
//! fixed clock, and a wasm32 build that differs from the native one (a
//! 32-bit `usize` overflowing, say) shows as a different answer.

use std::sync::Arc;
use std::time::Duration;

use spampot::config::Limits;
use spampot::harness::Harness;
use spampot::host_api::HostState;
use spampot::native::Native;
use spampot::plugin::{Call, Plugin, Runtime, wit};
use spampot_blackbox::wasm;
use spampot_sdk::testing::{Fuzz, FuzzCase};

/// Cases per plugin: each is two sessions, component and native. The
/// plugins' own tests run 400 natively; here what is new is the sandbox,
/// and 150 keep this test to seconds in a debug build.
const CASES: u32 = 150;

/// A plugin's native build, its port, its fuzz corpus and its own tokens.
type PluginUnderTest = (
    Arc<Plugin>,
    u16,
    &'static [&'static [u8]],
    &'static [&'static [u8]],
);

/// The wall clock both builds see.
const CLOCK: Duration = Duration::from_secs(1_795_000_000);

/// What a session sent and how it ended.
#[derive(Debug, PartialEq, Eq)]
struct End {
    sent: Vec<u8>,
    closed: bool,
    splice: Option<(String, u16)>,
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
        .start_session(
            HostState::new(link).with_fixed_clock(CLOCK),
            conn,
            Vec::new(),
        )
        .await
        .map_err(|t| format!("start: {t:?}"))?;
    let mut end = End {
        sent: Vec::new(),
        closed: false,
        splice: None,
    };
    let take = |actions: Vec<wit::Action>, end: &mut End| {
        for action in actions {
            if end.closed || end.splice.is_some() {
                break;
            }
            match action {
                wit::Action::Send(bytes) => end.sent.extend_from_slice(&bytes),
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

async fn fuzz_component(runtime: &Arc<Runtime>, (native, port, corpus, tokens): PluginUnderTest) {
    let name = native.name().to_owned();
    let component = runtime
        .load(&wasm(&name))
        .await
        .unwrap_or_else(|e| panic!("load {name}: {e:?}"));
    // One store each, so both sessions can have the same id: the SMTP
    // plugin's queue ids grow from it.
    let (data_c, data_n) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let host_c = Harness::open(Limits::default(), data_c.path()).unwrap();
    let host_n = Harness::open(Limits::default(), data_n.path()).unwrap();
    let mut ends = 0;
    let fuzz = Fuzz::new(corpus).tokens(tokens).cases(CASES);
    for (i, case) in fuzz.inputs().enumerate() {
        let describe = || {
            format!(
                "{name}, fuzz case {i}: input b\"{}\", pieces {:?}",
                case.input.escape_ascii(),
                case.cuts
            )
        };
        let sandboxed = play(&component, &host_c, i, port, &case)
            .await
            .unwrap_or_else(|trap| panic!("the component trapped in {trap}; {}", describe()));
        let linked = play(&native, &host_n, i, port, &case)
            .await
            .unwrap_or_else(|e| panic!("the native build failed in {e}; {}", describe()));
        if sandboxed != linked {
            panic!(
                "the component answered b\"{}\" (closed {}, splice {:?}), the native build \
                 b\"{}\" (closed {}, splice {:?}); {}",
                sandboxed.sent.escape_ascii(),
                sandboxed.closed,
                sandboxed.splice,
                linked.sent.escape_ascii(),
                linked.closed,
                linked.splice,
                describe()
            );
        }
        ends += usize::from(sandboxed.closed || sandboxed.splice.is_some());
    }
    assert!(ends > 0, "{name}: no case reached a close or a splice");
    host_c.store.close().await;
    host_n.store.close().await;
    // What each build recorded: the same events (the host stamps them
    // with its own wall clock: left out) and the same stored artifacts.
    // The native path stores a call's artifacts after the call returns
    // (`native.rs`), so the host's `artifact.stored` follows the plugin's
    // events of that call there: those are compared apart.
    let stored = |events: &mut Vec<serde_json::Value>| {
        let (stored, rest) = events
            .drain(..)
            .partition(|e: &serde_json::Value| e["eventid"] == "artifact.stored");
        *events = rest;
        stored
    };
    let (mut events_c, mut events_n) = (recorded(data_c.path()), recorded(data_n.path()));
    let (stored_c, stored_n): (Vec<_>, Vec<_>) = (stored(&mut events_c), stored(&mut events_n));
    assert_eq!(stored_c, stored_n, "{name}: artifact.stored events differ");
    if let Some(at) =
        (0..events_c.len().max(events_n.len())).find(|&k| events_c.get(k) != events_n.get(k))
    {
        let session = events_c
            .get(at)
            .or(events_n.get(at))
            .map(|e| e["session"].clone());
        panic!(
            "{name}: event {at} differs (session {session:?}, the fuzz case of that number): \
             component {:?}, native {:?}",
            events_c.get(at),
            events_n.get(at)
        );
    }
    assert!(!events_c.is_empty(), "{name}: no events recorded");
    let rows = |dir: &std::path::Path| -> Vec<serde_json::Value> {
        spampot_blackbox::messages(dir)
            .into_iter()
            .map(|mut m| {
                m.as_object_mut().unwrap().remove("ts");
                m
            })
            .collect()
    };
    assert_eq!(
        rows(data_c.path()),
        rows(data_n.path()),
        "{name}: stored messages differ"
    );
}

/// A data directory's events, without their host timestamps.
fn recorded(data: &std::path::Path) -> Vec<serde_json::Value> {
    spampot_blackbox::events(data)
        .into_iter()
        .map(|mut e| {
            e.as_object_mut().unwrap().remove("timestamp");
            e
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_bytes_never_trap_a_plugin() {
    let runtime = Runtime::new(&Limits::default(), None).expect("engine");
    let plugins: [PluginUnderTest; 6] = [
        (
            Plugin::native(Native::<smtp::Smtp>::factory()),
            25,
            smtp::CONVERSATIONS,
            &[],
        ),
        (
            Plugin::native(Native::<http_proxy::HttpProxy>::factory()),
            8080,
            http_proxy::CONVERSATIONS,
            &[],
        ),
        (
            Plugin::native(Native::<socks::SocksProxy>::factory()),
            1080,
            socks::CONVERSATIONS,
            &[],
        ),
        (
            Plugin::native(Native::<mydoom::MyDoom>::factory()),
            3127,
            mydoom::CONVERSATIONS,
            &[],
        ),
        (
            Plugin::native(Native::<sobig::Sobig>::factory()),
            3382,
            sobig::CONVERSATIONS,
            &[],
        ),
        // The example, built for wasm32-wasip2 as a plugin author builds:
        // its WASI context is the sealed one.
        (
            Plugin::native(Native::<telnet::Telnet>::factory()),
            23,
            telnet::CONVERSATIONS,
            telnet::TOKENS,
        ),
    ];
    for plugin in plugins {
        fuzz_component(&runtime, plugin).await;
    }
}
