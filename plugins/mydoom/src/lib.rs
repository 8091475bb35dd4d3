//! The spampot MyDoom plugin: the backdoor that the MyDoom worm (2004)
//! opened on TCP 3127 (and, in later variants, the next free port up to
//! 3198). Spammers used infected machines as SOCKS 4 proxies; the worm's
//! authors and others used the same port to upload and run programs.
//!
//! # Behaviour
//! The first bytes pick the service:
//! - `85 13 3C 9E A2` (the `0x85` command byte and the worm's 4-byte magic):
//!   **upload**. Every following byte is the file. Nothing is ever sent back
//!   (the worm does not answer either; it runs the file once the client
//!   closes). Up to `max_upload_bytes` are kept; past the cap the stream is
//!   still read and counted, not stored. When the client closes (or idles
//!   out, which also closes) the file is stored as an `uploaded-file`
//!   artifact and a `mydoom.upload` event is recorded. An upload is not a
//!   proxy request, so it has no `proxy.request` event.
//! - `04`: the worm's **SOCKS 4 proxy**, parsed by the `socks` plugin's
//!   library ([`socks_core`]) with `module = mydoom`: CONNECT to an SMTP
//!   port is granted and spliced to the SMTP emulator, anything else is
//!   rejected (`5B`) and closed. SOCKS 4A names are understood, as the
//!   library understands them. The worm speaks no SOCKS 5.
//! - Anything else (including `85` with the wrong magic, and SOCKS 5): a
//!   `proxy.request` of kind `error` with a `hex_preview` of the first ≤ 16
//!   bytes, and the connection is closed without a reply.
//!
//! ## The reply-version quirk
//! MyDoom's proxy is reported to answer SOCKS 4 requests with `VN` = `04`
//! (an echo of the request's version) where the protocol says `00`. By
//! default this plugin mimics it (`reply_version = 4`): whoever targets port
//! 3127 is looking for MyDoom infections, and their tools were built against
//! the real worm, so a protocol-correct `00` would be a fingerprint that
//! tells the honeypot apart from an infected machine. The cost is generic
//! SOCKS clients: curl, for one, refuses a reply whose first byte is not 0,
//! so a checker built on such a client fails here exactly as it fails
//! against the real worm. Set `reply_version = 0` to trade fidelity for
//! compatibility.
//!
//! # Config (`[plugins.mydoom]`)
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `max_upload_bytes` | 15728640 (15 MiB) | bytes of an upload kept; more is read and counted, not stored |
//! | `reply_version` | 4 | `VN` byte of SOCKS 4 replies (0 for the protocol's value) |
//! | `smtp_ports` | `25,587` | CONNECTs to these ports are granted and spliced |
//! | `bound_addr` | the sensor's address | as in the `socks` plugin (unused by SOCKS 4) |
//!
//! The default port is 3127; to cover the variants that move up to 3198,
//! add listeners for 3128–3198 with `plugin = "mydoom"` (3128 is usually
//! the HTTP proxy's; choose one).
//!
//! # Events
//! - `mydoom.upload`: `size` (int, bytes received after the magic,
//!   including those past the cap), `stored_size` (int), `truncated`
//!   (flag: more than the cap was sent), `sha256` (text, of the stored
//!   bytes; `""` if nothing was stored), `stored` (flag), `store_error`
//!   (text, only when the store refused). Artifact meta: `magic`
//!   (`85133c9ea2`), `truncated` (`true`/`false`), `size`.
//! - `proxy.request` for the SOCKS 4 path and for garbage, as in the
//!   `socks` plugin, with `module` = `mydoom`; kinds `connect-smtp`,
//!   `connect-other`, `error`.

use socks_core::wire::hex_preview;
use socks_core::{Kind, Options, Socks, request_event};
use spampot_sdk::{
    Artifact, ArtifactKind, Config, ConnInfo, Context, Emulator, Event, PluginInfo, export_emulator,
};

/// The upload command byte and the worm's magic.
pub const MAGIC: [u8; 5] = [0x85, 0x13, 0x3C, 0x9E, 0xA2];

/// An upload (the magic, then an executable's first bytes), proxy requests
/// and a stray HTTP request: the corpus the fuzz tests mutate, natively and
/// through the component.
pub const CONVERSATIONS: &[&[u8]] = &[
    b"\x85\x13\x3c\x9e\xa2\x4d\x5a\x90\x00\x03\x00\x00\x00payload bytes",
    b"\x04\x01\x00\x19\xc8\xa0\x02\x03\x00",
    b"\x04\x01\x00\x19\xc8\xa0\x02\x03\x00HELO x\r\n",
    b"\x05\x01\x00\x05\x01\x00\x03\x0emx.example.com\x00\x19",
    b"GET / HTTP/1.0\r\n\r\n",
];

/// Default cap on the bytes of one upload that are kept.
pub const DEFAULT_MAX_UPLOAD_BYTES: usize = 15 * 1024 * 1024;

/// The worm's SOCKS 4 `VN` byte (see the crate docs).
pub const DEFAULT_REPLY_VERSION: u8 = 4;

/// A file arriving after the magic.
struct Upload {
    data: Vec<u8>,
    /// Every byte received, kept or not.
    received: u64,
    cap: usize,
}

impl Upload {
    fn push(&mut self, bytes: &[u8]) {
        self.received += bytes.len() as u64;
        let room = self.cap.saturating_sub(self.data.len());
        self.data.extend_from_slice(&bytes[..bytes.len().min(room)]);
    }

    /// Store the file and record it.
    fn finish(self, cx: &mut Context) {
        let truncated = self.received > self.data.len() as u64;
        let stored_size = self.data.len() as i64;
        let mut event = Event::new("mydoom.upload")
            .int("size", self.received as i64)
            .int("stored_size", stored_size)
            .flag("truncated", truncated);
        if self.data.is_empty() {
            event = event.text("sha256", "").flag("stored", false);
        } else {
            let artifact = Artifact::new(ArtifactKind::UploadedFile, self.data)
                .meta("magic", "85133c9ea2")
                .meta("truncated", truncated.to_string())
                .meta("size", self.received.to_string());
            event = match cx.store_artifact(artifact) {
                Ok(sha) => event.text("sha256", sha).flag("stored", true),
                Err(e) => event
                    .text("sha256", "")
                    .flag("stored", false)
                    .text("store_error", e.to_string()),
            };
        }
        cx.emit(event);
    }
}

/// What the connection turned out to be.
enum Mode {
    /// Fewer bytes than tell the services apart.
    Sniff(Vec<u8>),
    Upload(Upload),
    Proxy(Socks),
    /// Recorded and closed.
    Done,
}

/// One connection to the backdoor.
pub struct MyDoom {
    mode: Mode,
    socks: Options,
    max_upload: usize,
}

impl MyDoom {
    /// The SOCKS options this session uses (for assertions).
    pub fn socks_options(&self) -> &Options {
        &self.socks
    }

    fn garbage(&mut self, bytes: &[u8], detail: &str, cx: &mut Context) {
        cx.emit(
            request_event("mydoom", Kind::Error, "", 0)
                .text("detail", detail)
                .text("hex_preview", hex_preview(bytes)),
        );
        self.mode = Mode::Done;
        cx.close();
    }

    /// Decide the service once the first bytes allow it.
    fn sniff(&mut self, buf: Vec<u8>, cx: &mut Context) {
        if buf.first() != Some(&MAGIC[0]) {
            let mut socks = Socks::new(self.socks.clone());
            socks.data(&buf, cx);
            self.mode = Mode::Proxy(socks);
            return;
        }
        let n = buf.len().min(MAGIC.len());
        if buf[..n] != MAGIC[..n] {
            self.garbage(&buf, "upload command with a wrong magic", cx);
        } else if buf.len() < MAGIC.len() {
            self.mode = Mode::Sniff(buf);
        } else {
            let mut upload = Upload {
                data: Vec::new(),
                received: 0,
                cap: self.max_upload,
            };
            upload.push(&buf[MAGIC.len()..]);
            self.mode = Mode::Upload(upload);
        }
    }

    /// The connection ends (closed or idle): finish what was under way.
    fn end(&mut self, why: &str, cx: &mut Context) {
        match std::mem::replace(&mut self.mode, Mode::Done) {
            Mode::Sniff(buf) if !buf.is_empty() => {
                self.garbage(&buf, &format!("{why} during the upload magic"), cx);
            }
            Mode::Upload(upload) => upload.finish(cx),
            other => self.mode = other,
        }
    }
}

impl Emulator for MyDoom {
    fn describe() -> PluginInfo {
        PluginInfo::new("mydoom", env!("CARGO_PKG_VERSION"))
            .protocols(["mydoom", "socks4"])
            .ports(&[3127])
    }

    fn start(conn: &ConnInfo, config: &Config) -> Self {
        let mut socks = Options::from_config(conn, config);
        socks.module = Some("mydoom");
        socks.socks5 = false;
        socks.reply_version4 = config.get_or("reply_version", DEFAULT_REPLY_VERSION);
        MyDoom {
            mode: Mode::Sniff(Vec::new()),
            socks,
            max_upload: config.get_or("max_upload_bytes", DEFAULT_MAX_UPLOAD_BYTES),
        }
    }

    fn on_data(&mut self, data: &[u8], cx: &mut Context) {
        match &mut self.mode {
            Mode::Sniff(buf) => {
                let mut buf = std::mem::take(buf);
                buf.extend_from_slice(data);
                self.sniff(buf, cx);
            }
            Mode::Upload(upload) => upload.push(data),
            Mode::Proxy(socks) => socks.data(data, cx),
            Mode::Done => {}
        }
    }

    fn on_timeout(&mut self, cx: &mut Context) {
        match &mut self.mode {
            Mode::Proxy(socks) => socks.timeout(cx),
            _ => {
                self.end("idle timeout", cx);
                cx.close();
            }
        }
    }

    fn on_close(&mut self, cx: &mut Context) {
        match &mut self.mode {
            Mode::Proxy(socks) => socks.closed(cx),
            _ => self.end("truncated", cx),
        }
    }
}

export_emulator!(MyDoom);
