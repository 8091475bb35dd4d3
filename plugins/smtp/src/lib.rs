//! The spampot SMTP plugin: an open relay, as spammers hope to find one.
//!
//! It speaks the server side of RFC 5321 well enough for spam software and
//! relay testers, accepts every recipient, and keeps every message it is
//! asked to deliver as an [`ArtifactKind::Email`](spampot_sdk::ArtifactKind)
//! artifact. It delivers nothing. The same plugin serves direct connections
//! (ports 25, 587, 2525) and streams that a proxy emulator spliced to an
//! SMTP target, where it plays the destination the abuser asked for.
//!
//! # The server the client sees
//! - **Persona**: Postfix or Sendmail, each with its own banner, EHLO
//!   keywords, reply texts and queue-id shape. Chosen by an FNV-1a hash of
//!   the client's address, so one client always meets the same server.
//! - **Host name**: when spliced (`conn.target` set) the target host the
//!   abuser asked for, as that destination would call itself (unless it is
//!   an address literal); otherwise the `hostname` config key; otherwise a
//!   plausible small-business name (`mail.<company>.com.br`) by the same hash.
//! - **No STARTTLS**: not advertised, and answered `502` if sent anyway. The
//!   plugin cannot terminate TLS without the host providing it, and a server
//!   that advertises STARTTLS and then fails the handshake looks less like a
//!   real open relay than one that never offered it; spam software falls
//!   back to plaintext (and keeps the content readable to us).
//! - **AUTH PLAIN and LOGIN** are advertised and always succeed (`235`);
//!   every credential is recorded as a `credential` event.
//!
//! # Dialogue choices
//! - `MAIL` before `HELO`/`EHLO` is accepted, as Postfix
//!   (`smtpd_helo_required = no`) and Sendmail do by default; the `helo`
//!   field is then empty. `RCPT` before `MAIL` and `DATA` before `RCPT` are
//!   `503`. Addresses may come with or without a space after the colon, and
//!   without brackets.
//! - Command lines longer than 512 octets of text get `500 ... line too long`;
//!   DATA lines of any length are kept (spam ignores the 1000-octet limit).
//! - Every `4xx`/`5xx` answer to a command counts as an error; at
//!   `max_errors` the server says `421` and hangs up (Postfix's
//!   `smtpd_hard_error_limit`). Recipients over the cap are answered `452`
//!   without counting as errors (Postfix's recipient overshoot).
//! - Lines may end in a bare LF anywhere, DATA's terminator included.
//!   Pipelined commands are answered in order, in one write per packet.
//! - An idle client gets `421 4.4.2 <host> Error: timeout exceeded`.
//!
//! # Config (`[plugins.smtp]`)
//! | key | default | meaning |
//! | --- | --- | --- |
//! | `hostname` | from a list, by client hash | the server's name in banner and replies (a spliced target's name wins) |
//! | `persona` | by client hash | force `postfix` or `sendmail` |
//! | `max_message_bytes` | 10485760 | size cap: `SIZE=` above it is `552`; content past it is read to the end, answered `552` and not stored (advertised in EHLO `SIZE`; at least 1024) |
//! | `max_recipients` | 1000 | recipients per message; more get `452` |
//! | `max_errors` | 20 | error replies before `421` and close |
//! | `probe_addrs` | none | comma-separated extra addresses of this sensor (e.g. its public address behind NAT), for probe detection |
//!
//! # What is recorded
//! Each message that reaches the end of DATA, and is within the cap, is
//! stored *before* it is acknowledged: an artifact of kind `email` whose data
//! is exactly what the client sent between `354` and the end-of-data line,
//! dot-unstuffed, line ends as received, no header added. Its meta entries,
//! in this order:
//! `helo`, `mail_from`, `rcpt_to` (once per recipient), `target_host` (only
//! when spliced), `via` (comma-joined, only when non-empty), `probe`
//! (`true`/`false`), `queue_id`, `persona`. Addresses are without brackets;
//! the null sender is empty.
//!
//! The answer depends on the store: `Ok` → `250 ... queued as <id>`;
//! `QuotaExceeded` → `250` too (the host counted it; the sensor must not
//! reveal itself); `TooLarge` → `552`; any other error → `451 4.3.0`.
//!
//! Events:
//! - `smtp.message` for every message that reached the end of DATA (stored
//!   or not): `helo` (text), `mail_from` (text), `rcpt_count` (int),
//!   `rcpt_to` (texts), `rcpt_refused` (int, over the cap), `size` (int,
//!   content bytes after unstuffing, counting bytes past the cap), `sha256`
//!   (text, empty if not stored), `stored` (flag), `reply_code` (int: 250,
//!   451 or 552), `queue_id` (text), `target_host` (text, only when
//!   spliced), `via` (texts), `probe` (flag), `probe_form` (text: `dotted`,
//!   `hex`, `decimal` or `ipv6`; only for probes).
//! - `credential`: `protocol` = `smtp`, `mechanism` (`PLAIN`/`LOGIN`),
//!   `username`, `password`.
//! - `smtp.aborted`: the connection ended inside DATA: `stage` = `data`,
//!   `size` (int), `rcpt_count` (int).
//!
//! Probe detection (relay tests that name this sensor) is described in
//! [`probe`].
//!
//! # Layout
//! [`session`] holds the dialogue, [`data`] the DATA scanner, [`persona`]
//! the banners and reply texts, [`auth`] AUTH and base64, [`probe`] the probe
//! heuristic.

pub mod auth;
pub mod data;
pub mod persona;
pub mod probe;
pub mod session;

pub use persona::Persona;
pub use session::Smtp;

/// Whole dialogues a spam tool, a relay tester and a broken client send:
/// the corpus the fuzz tests mutate, natively and through the component.
pub const CONVERSATIONS: &[&[u8]] = &[
    b"EHLO client.example\r\nMAIL FROM:<spammer@example.net>\r\nRCPT TO:<a@example.com>\r\n\
      RCPT TO:<b@example.com>\r\nRCPT TO:<c@example.org>\r\nDATA\r\nSubject: cheap pills\r\n\
      From: <spammer@example.net>\r\n\r\nBuy now.\r\n..a dot-stuffed line\r\n.\r\nQUIT\r\n",
    b"HELO x\r\nMAIL FROM: <a@b>\r\nRCPT TO: <victim@example.com>\r\nDATA\r\nhi\r\n.\r\n\
      MAIL FROM:<a@b>\r\nRCPT TO:<second@example.com>\r\nDATA\r\nagain\r\n.\r\nRSET\r\nQUIT\r\n",
    b"EHLO x\r\nAUTH LOGIN\r\ndXNlcg==\r\ncGFzcw==\r\nAUTH PLAIN AHVzZXIAcGFzcw==\r\n\
      MAIL FROM:<a@b> SIZE=100 BODY=8BITMIME\r\nRCPT TO:<c@d> NOTIFY=NEVER\r\nDATA\r\n.\r\nQUIT\r\n",
    b"EHLO x\nMAIL FROM:<a@b>\nRCPT TO:<c@d>\nDATA\nbare line ends\n.\nQUIT\n",
    b"EHLO x\r\nVRFY root\r\nEXPN staff\r\nHELP\r\nNOOP\r\nSTARTTLS\r\nBDAT 5 LAST\r\nhello\
      TURN\r\nETRN x\r\nGET / HTTP/1.0\r\n\r\n",
];

use spampot_sdk::{Config, ConnInfo, Context, Emulator, PluginInfo, export_emulator};

impl Emulator for Smtp {
    fn describe() -> PluginInfo {
        PluginInfo::new("smtp", env!("CARGO_PKG_VERSION"))
            .protocols(["smtp"])
            .ports(&[25, 587, 2525])
    }

    fn start(conn: &ConnInfo, config: &Config) -> Self {
        Smtp::new(conn, config)
    }

    fn on_open(&mut self, cx: &mut Context) {
        self.open(cx);
    }

    fn on_data(&mut self, data: &[u8], cx: &mut Context) {
        self.data(data, cx);
    }

    fn on_timeout(&mut self, cx: &mut Context) {
        self.timeout(cx);
    }

    fn on_close(&mut self, cx: &mut Context) {
        self.closed(cx);
    }
}

export_emulator!(Smtp);
