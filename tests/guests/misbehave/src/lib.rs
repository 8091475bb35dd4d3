//! A plugin that misbehaves on request, for the host's containment tests.
//! The client's first line names the misdeed; anything else is echoed.
//!
//! | line    | what the plugin does                                  |
//! |---------|-------------------------------------------------------|
//! | `loop`  | spins forever                                         |
//! | `alloc` | allocates without bound                               |
//! | `panic` | panics                                                |
//! | `stack` | recurses without bound                                |
//! | `flood N` | sends N MiB in one call (default 4)                 |
//! | `file`  | tries to read `/etc/passwd`, reports the error        |
//! | `net`   | tries to connect to the address given, reports the error |
//! | `store` | stores a 1 KiB artifact, reports the outcome          |
//! | `version` | reports the plugin version (set at build time)      |
//! | `splice H P` | splices to target H:P, passing on what follows      |

use spampot_sdk::{
    Artifact, ArtifactKind, Config, ConnInfo, Context, Emulator, LineBuffer, PluginInfo, Target,
    export_emulator,
};

pub struct Misbehave {
    lines: LineBuffer,
}

/// Lets tests build two versions of the plugin from one source.
const VERSION: &str = match option_env!("MISBEHAVE_VERSION") {
    Some(v) => v,
    None => env!("CARGO_PKG_VERSION"),
};

impl Emulator for Misbehave {
    fn describe() -> PluginInfo {
        PluginInfo::new("misbehave", VERSION).protocols(["test"])
    }

    fn start(_conn: &ConnInfo, _config: &Config) -> Self {
        Misbehave {
            lines: LineBuffer::new(1024),
        }
    }

    fn on_open(&mut self, cx: &mut Context) {
        cx.send("ready\n");
    }

    fn on_data(&mut self, data: &[u8], cx: &mut Context) {
        self.lines.push(data);
        while let Some(Ok(line)) = self.lines.next_line() {
            let line = String::from_utf8_lossy(&line).into_owned();
            let (verb, arg) = line.split_once(' ').unwrap_or((&line, ""));
            match verb {
                "loop" => spin(),
                "alloc" => hoard(),
                "panic" => panic!("asked to panic"),
                "stack" => {
                    cx.send(format!("{}\n", recurse(1)));
                }
                "flood" => {
                    // Far more than any client needs; the host's byte cap
                    // must end the session, not the client's patience.
                    let mebibytes: usize = arg.parse().unwrap_or(4);
                    for _ in 0..mebibytes * 16 {
                        cx.send(vec![b'x'; 64 << 10]);
                    }
                }
                "file" => match std::fs::read("/etc/passwd") {
                    Ok(bytes) => cx.send(format!("LEAK {} bytes\n", bytes.len())),
                    Err(e) => cx.send(format!("ERR {e}\n")),
                },
                "net" => match std::net::TcpStream::connect(arg) {
                    Ok(_) => cx.send("LEAK connected\n"),
                    Err(e) => cx.send(format!("ERR {e}\n")),
                },
                "store" => {
                    let artifact = Artifact::new(ArtifactKind::Other, vec![7; 1024]);
                    match cx.store_artifact(artifact) {
                        Ok(sha) => cx.send(format!("STORED {sha}\n")),
                        Err(e) => cx.send(format!("ERR {e}\n")),
                    }
                }
                "version" => cx.send(format!("{VERSION}\n")),
                "splice" => {
                    // `splice HOST PORT`: pretend to connect, as a proxy does,
                    // handing over whatever the client sent after this line.
                    let (host, port) = arg.split_once(' ').unwrap_or((arg, "25"));
                    let target = Target::new(host, port.parse().unwrap_or(25));
                    cx.splice(target, self.lines.take_rest());
                    return;
                }
                "quit" => cx.close(),
                _ => cx.send(format!("{line}\n")),
            }
        }
    }
}

#[inline(never)]
fn spin() {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

#[inline(never)]
fn hoard() {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1; 1 << 20]);
        std::hint::black_box(&hoard);
    }
}

// Unbounded on purpose: the host must stop it.
#[allow(unconditional_recursion)]
#[inline(never)]
fn recurse(n: u64) -> u64 {
    let frame = std::hint::black_box([n; 64]);
    frame[0] + recurse(n + 1)
}

export_emulator!(Misbehave);
