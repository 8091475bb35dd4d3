//! End to end: the generator against tiny in-test servers on 127.0.0.1.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use clap::Parser;
use spampot_loadgen::{Args, run_args};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

#[derive(Default)]
struct Counts {
    sessions: AtomicU64,
    messages: AtomicU64,
    rcpts: AtomicU64,
    bytes: AtomicU64,
}

/// Minimal SMTP: every command accepted, messages counted.
async fn smtp(stream: &mut BufReader<TcpStream>, c: &Counts, pipelining: bool) {
    c.sessions.fetch_add(1, Ordering::Relaxed);
    let ehlo: &[u8] = if pipelining {
        b"250-fake.test\r\n250-SIZE 10240000\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
    } else {
        b"250-fake.test\r\n250 8BITMIME\r\n"
    };
    if stream
        .get_mut()
        .write_all(b"220 fake.test ESMTP\r\n")
        .await
        .is_err()
    {
        return;
    }
    let mut line = String::new();
    let mut rcpts = 0;
    loop {
        line.clear();
        if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
            return;
        }
        let cmd = line.get(..4).unwrap_or("").to_ascii_uppercase();
        let reply: &[u8] = match cmd.as_str() {
            "EHLO" => ehlo,
            "MAIL" => {
                rcpts = 0;
                b"250 2.1.0 Ok\r\n"
            }
            "RCPT" => {
                rcpts += 1;
                b"250 2.1.5 Ok\r\n"
            }
            "DATA" => {
                stream
                    .get_mut()
                    .write_all(b"354 go ahead\r\n")
                    .await
                    .unwrap();
                let mut size = 0;
                loop {
                    line.clear();
                    if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    if line == ".\r\n" {
                        break;
                    }
                    size += line.len();
                }
                c.messages.fetch_add(1, Ordering::Relaxed);
                c.rcpts.fetch_add(rcpts, Ordering::Relaxed);
                c.bytes.fetch_add(size as u64, Ordering::Relaxed);
                b"250 2.0.0 Ok: queued as ABC\r\n"
            }
            "QUIT" => {
                let _ = stream.get_mut().write_all(b"221 2.0.0 Bye\r\n").await;
                return;
            }
            _ => b"502 5.5.2 Error: command not recognized\r\n",
        };
        if stream.get_mut().write_all(reply).await.is_err() {
            return;
        }
    }
}

async fn listen<F, Fut>(handler: F) -> String
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let _ = s.set_nodelay(true);
            tokio::spawn(handler(s));
        }
    });
    addr
}

fn args(extra: &[&str]) -> Args {
    Args::try_parse_from(
        [
            "spampot-loadgen",
            "--seed",
            "11",
            "--timeout",
            "5",
            "--duration",
            "30",
        ]
        .iter()
        .chain(extra.iter())
        .copied(),
    )
    .unwrap()
}

async fn direct_smtp(pipelining: bool) {
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    let addr = listen(move |s| {
        let c = c.clone();
        async move { smtp(&mut BufReader::new(s), &c, pipelining).await }
    })
    .await;
    let a = args(&[
        "--smtp",
        &addr,
        "--mix",
        "smtp=1",
        "-c",
        "4",
        "--sessions",
        "20",
    ]);
    let r = run_args(&a).await.unwrap();
    assert_eq!(r.sessions, 20, "{}", r.table());
    assert_eq!(r.sessions_ok, 20, "{}", r.table());
    assert!(r.errors.is_empty(), "{}", r.table());
    assert_eq!(counts.sessions.load(Ordering::Relaxed), 20);
    assert_eq!(r.messages, counts.messages.load(Ordering::Relaxed));
    assert_eq!(r.recipients, counts.rcpts.load(Ordering::Relaxed));
    assert!(r.messages >= 20);
    assert_eq!(r.latency_banner.count, 20);
    assert_eq!(r.latency_message.count, r.messages);
    assert!(r.bytes_out > counts.bytes.load(Ordering::Relaxed));
    let smtp = r.scenarios.iter().find(|s| s.scenario == "smtp").unwrap();
    assert_eq!((smtp.sessions, smtp.ok, smtp.failed), (20, 20, 0));
    assert!(r.recipients as f64 / r.messages as f64 > 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_against_fake_smtp_pipelining() {
    direct_smtp(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_loop_against_fake_smtp_without_pipelining() {
    direct_smtp(false).await;
}

/// A fake HTTP proxy (CONNECT :25 → 200 then SMTP; else 503; garbage → 400)
/// and a fake SOCKS 5 (grants 25, refuses others).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_loop_through_fake_proxies() {
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    let http = listen(move |s| {
        let c = c.clone();
        async move {
            let mut s = BufReader::new(s);
            let is_connect = matches!(s.fill_buf().await, Ok(b) if b.first() == Some(&b'C'));
            let mut first = String::new();
            if !is_connect || s.read_line(&mut first).await.unwrap_or(0) == 0 {
                let _ = s
                    .get_mut()
                    .write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n")
                    .await;
                return;
            }
            let mut line = String::new();
            loop {
                line.clear();
                if s.read_line(&mut line).await.unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            if first.contains(":25 ") {
                s.get_mut()
                    .write_all(b"HTTP/1.0 200 Connection established\r\n\r\n")
                    .await
                    .unwrap();
                smtp(&mut s, &c, true).await;
            } else {
                let _ = s
                    .get_mut()
                    .write_all(b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n")
                    .await;
            }
        }
    })
    .await;
    let c = counts.clone();
    let socks = listen(move |s| {
        let c = c.clone();
        async move {
            let mut s = BufReader::new(s);
            let mut g = [0u8; 2];
            s.read_exact(&mut g).await.unwrap();
            assert_eq!(g[0], 5);
            let mut m = vec![0u8; g[1] as usize];
            s.read_exact(&mut m).await.unwrap();
            if m.contains(&2) {
                s.get_mut().write_all(&[5, 2]).await.unwrap();
                let mut h = [0u8; 2];
                s.read_exact(&mut h).await.unwrap();
                let mut u = vec![0u8; h[1] as usize + 1];
                s.read_exact(&mut u).await.unwrap();
                let mut p = vec![0u8; *u.last().unwrap() as usize];
                s.read_exact(&mut p).await.unwrap();
                s.get_mut().write_all(&[1, 0]).await.unwrap();
            } else {
                s.get_mut().write_all(&[5, 0]).await.unwrap();
            }
            let mut r = [0u8; 4];
            s.read_exact(&mut r).await.unwrap();
            let alen = match r[3] {
                1 => 4,
                3 => s.read_u8().await.unwrap() as usize,
                _ => panic!("atyp"),
            };
            let mut a = vec![0u8; alen];
            s.read_exact(&mut a).await.unwrap();
            let port = s.read_u16().await.unwrap();
            if port == 25 {
                s.get_mut()
                    .write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0x9c, 0x40])
                    .await
                    .unwrap();
                smtp(&mut s, &c, true).await;
            } else {
                let _ = s.get_mut().write_all(&[5, 2, 0, 1, 0, 0, 0, 0, 0, 0]).await;
            }
        }
    })
    .await;
    let a = args(&[
        "--http",
        &http,
        "--socks",
        &socks,
        "--mix",
        "http-connect=4,socks5=2,socks5-auth=1,connect-other=1,malformed=1,smtp=1",
        "--rate",
        "400",
        "--sessions",
        "60",
        "--messages-per-session",
        "2",
    ]);
    let r = run_args(&a).await.unwrap();
    assert_eq!(r.sessions, 60, "{}", r.table());
    // `smtp` has no target: dropped with a warning, never run.
    assert_eq!(r.skipped_scenarios, vec!["smtp"]);
    assert!(r.scenarios.iter().all(|s| s.scenario != "smtp"));
    assert!(r.errors.is_empty(), "{}", r.table());
    let n = |name: &str| r.scenarios.iter().find(|s| s.scenario == name).unwrap().ok;
    let mail_sessions = n("http-connect") + n("socks5") + n("socks5-auth");
    assert_eq!(counts.sessions.load(Ordering::Relaxed), mail_sessions);
    assert_eq!(r.messages, 2 * mail_sessions);
    assert_eq!(r.messages, counts.messages.load(Ordering::Relaxed));
    assert_eq!(r.recipients, counts.rcpts.load(Ordering::Relaxed));
    assert_eq!(r.latency_banner.count, mail_sessions);
    assert!(n("connect-other") > 0 && n("malformed") > 0 && n("socks5-auth") > 0);
}

/// Unexpected replies are counted by stage, with a sample.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unexpected_replies_are_counted() {
    let addr = listen(|mut s| async move {
        let _ = s.write_all(b"554 5.7.1 go away\r\n").await;
    })
    .await;
    let a = args(&["--smtp", &addr, "--mix", "smtp=1", "-c", "2", "-n", "10"]);
    let r = run_args(&a).await.unwrap();
    assert_eq!((r.sessions, r.sessions_failed), (10, 10));
    assert_eq!(r.errors.len(), 1);
    let e = &r.errors[0];
    assert_eq!((e.stage, e.kind, e.count), ("banner", "unexpected", 10));
    assert_eq!(e.sample.as_deref(), Some("554 5.7.1 go away"));

    // accepted and closed at once (a listener cap): dropped
    let addr = listen(|s| async move { drop(s) }).await;
    let a = args(&[
        "--http",
        &addr,
        "--mix",
        "http-connect=1",
        "-c",
        "2",
        "-n",
        "6",
    ]);
    let r = run_args(&a).await.unwrap();
    assert_eq!(r.sessions_failed, 6);
    assert_eq!((r.errors[0].stage, r.errors[0].kind), ("proxy", "dropped"));

    // nothing listening: connect refused
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = l.local_addr().unwrap().to_string();
    drop(l);
    let a = args(&["--smtp", &dead, "--mix", "smtp=1", "-c", "2", "-n", "5"]);
    let r = run_args(&a).await.unwrap();
    assert_eq!(r.errors[0].stage, "connect");
    assert_eq!(r.errors[0].kind, "refused");
    assert_eq!(r.errors[0].count, 5);
}
