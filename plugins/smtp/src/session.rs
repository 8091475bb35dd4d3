//! The server side of one SMTP connection (RFC 5321): command dialogue,
//! envelope, DATA, AUTH, and what is recorded about each message.

use spampot_sdk::{
    Artifact, ArtifactKind, Config, ConnInfo, Context, Event, LineBuffer, LineTooLong, StoreError,
};

use crate::auth::{self, LOGIN_PASSWORD, LOGIN_USERNAME, Mechanism};
use crate::data::{DataReader, Feed};
use crate::persona::{self, Persona, Reply, Server};
use crate::probe::ProbeDetector;

/// Longest command line: RFC 5321 §4.5.3.1.4 allows 512 octets of text;
/// plus the CRLF, which [`LineBuffer`] counts.
pub const MAX_COMMAND_LINE: usize = 512 + 2;

/// Defaults for the config keys (see the crate docs).
pub const DEFAULT_MAX_MESSAGE_BYTES: usize = 10 * 1024 * 1024;
pub const DEFAULT_MAX_RECIPIENTS: usize = 1000;
pub const DEFAULT_MAX_ERRORS: u32 = 20;

/// Limits from the config.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_message_bytes: usize,
    pub max_recipients: usize,
    pub max_errors: u32,
}

impl Limits {
    fn from_config(config: &Config) -> Self {
        Limits {
            // SIZE 0 would advertise "no limit"; a tiny cap is a typo.
            max_message_bytes: config
                .get_or("max_message_bytes", DEFAULT_MAX_MESSAGE_BYTES)
                .max(1024),
            max_recipients: config
                .get_or("max_recipients", DEFAULT_MAX_RECIPIENTS)
                .max(1),
            max_errors: config.get_or("max_errors", DEFAULT_MAX_ERRORS).max(1),
        }
    }
}

/// What the next line (or bytes) from the client is.
#[derive(Debug)]
enum Phase {
    Command,
    /// Between `354` and the end-of-data line.
    Data(DataReader),
    /// `AUTH PLAIN` without an initial response: waiting for it.
    AuthPlain,
    /// `AUTH LOGIN`: waiting for the user name.
    AuthLoginUser,
    /// `AUTH LOGIN`: waiting for the password.
    AuthLoginPass(String),
}

/// The mail transaction opened by `MAIL FROM`.
#[derive(Debug, Default)]
struct Envelope {
    /// The reverse path without angle brackets; empty for `<>`.
    from: String,
    /// Accepted forward paths, without angle brackets.
    rcpts: Vec<String>,
    /// `RCPT`s refused for exceeding the recipient cap.
    refused: u32,
    /// The client's `SIZE=`, 0 if none.
    size_hint: u64,
}

/// One SMTP connection. See the crate docs for the behaviour.
pub struct Smtp {
    server: Server,
    limits: Limits,
    probe: ProbeDetector,
    /// The host the abuser asked a proxy for, when spliced.
    target_host: Option<String>,
    via: Vec<String>,
    lines: LineBuffer,
    phase: Phase,
    helo: Option<String>,
    envelope: Option<Envelope>,
    authenticated: bool,
    errors: u32,
    /// Messages that reached the end of DATA; numbers the queue ids.
    messages: u32,
    /// Closing: ignore anything else the client sends.
    done: bool,
    /// Replies of the current callback, sent in one piece at its end.
    out: String,
}

impl Smtp {
    /// Set up the server this client will see.
    pub fn new(conn: &ConnInfo, config: &Config) -> Self {
        let limits = Limits::from_config(config);
        let peer_hash = persona::fnv1a64(conn.peer_addr.as_bytes());
        let persona = config
            .get("persona")
            .and_then(Persona::from_name)
            .unwrap_or(if peer_hash & 1 == 0 {
                Persona::Postfix
            } else {
                Persona::Sendmail
            });
        let target_host = conn.target.as_ref().map(|t| t.host.clone());
        // A real destination would call itself by the name the abuser asked
        // for; an address literal is no name, so fall back to ours.
        let hostname = target_host
            .as_deref()
            .filter(|h| !h.is_empty() && !persona::is_ip_literal(h))
            .map(str::to_owned)
            .or_else(|| {
                config
                    .get("hostname")
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| persona::plausible_hostname(peer_hash));
        let extra_addrs = config.get("probe_addrs").unwrap_or("");
        let probe = ProbeDetector::new(
            std::iter::once(conn.local_addr.as_str()).chain(extra_addrs.split(',')),
        );
        Smtp {
            server: Server::new(
                persona,
                hostname,
                &conn.peer_addr,
                peer_hash,
                limits.max_message_bytes,
                &conn.session_id,
            ),
            limits,
            probe,
            target_host,
            via: conn.via.clone(),
            lines: LineBuffer::new(MAX_COMMAND_LINE),
            phase: Phase::Command,
            helo: None,
            envelope: None,
            authenticated: false,
            errors: 0,
            messages: 0,
            done: false,
            out: String::new(),
        }
    }

    /// The persona this client sees.
    pub fn persona(&self) -> Persona {
        self.server.persona
    }

    /// The host name in the banner and replies.
    pub fn hostname(&self) -> &str {
        &self.server.hostname
    }

    pub(crate) fn open(&mut self, cx: &mut Context) {
        let now = cx.now().as_secs();
        cx.send(self.server.banner(now));
    }

    pub(crate) fn data(&mut self, data: &[u8], cx: &mut Context) {
        if self.done {
            return;
        }
        self.receive(data, cx);
        self.flush(cx);
    }

    pub(crate) fn timeout(&mut self, cx: &mut Context) {
        if self.done {
            return;
        }
        self.server.reply(Reply::Timeout, &mut self.out);
        self.close(cx);
    }

    pub(crate) fn closed(&mut self, cx: &mut Context) {
        // A message cut off in DATA was never acknowledged, so it is not
        // stored; its size still says something about the sender.
        if let Phase::Data(reader) = &self.phase {
            let rcpts = self.envelope.as_ref().map_or(0, |e| e.rcpts.len());
            cx.emit(
                Event::new("smtp.aborted")
                    .text("stage", "data")
                    .int("size", reader.size() as i64)
                    .int("rcpt_count", rcpts as i64),
            );
        }
    }

    fn receive(&mut self, data: &[u8], cx: &mut Context) {
        // In DATA, bytes go straight to the scanner, not through the line buffer.
        if let Phase::Data(reader) = &mut self.phase {
            match reader.feed(data) {
                Feed::More => return,
                Feed::Done(n) => {
                    self.finish_message(cx);
                    self.lines.push(&data[n..]);
                }
            }
        } else {
            self.lines.push(data);
        }
        while !self.done {
            let Some(line) = self.lines.next_line() else {
                break;
            };
            match line {
                Ok(line) => self.line(&line, cx),
                Err(LineTooLong) => {
                    // Also ends an AUTH exchange: the response is garbage.
                    self.phase = Phase::Command;
                    self.error(Reply::LineTooLong);
                }
            }
            if self.errors >= self.limits.max_errors && !self.done {
                // Postfix's smtpd_hard_error_limit.
                self.server.reply(Reply::TooManyErrors, &mut self.out);
                self.close(cx);
            }
            if let Phase::Data(reader) = &mut self.phase {
                // The message may have come in the same packet as DATA.
                let rest = self.lines.take_rest();
                match reader.feed(&rest) {
                    Feed::More => break,
                    Feed::Done(n) => {
                        self.finish_message(cx);
                        self.lines.push(&rest[n..]);
                    }
                }
            }
        }
    }

    /// One line of the dialogue.
    fn line(&mut self, line: &[u8], cx: &mut Context) {
        match std::mem::replace(&mut self.phase, Phase::Command) {
            Phase::Command => self.command(line, cx),
            Phase::AuthPlain => self.auth_plain(line, cx),
            Phase::AuthLoginUser => {
                if let Some(user) = self.auth_response(line) {
                    self.server
                        .reply(Reply::AuthContinue(LOGIN_PASSWORD), &mut self.out);
                    self.phase = Phase::AuthLoginPass(auth::text(&user));
                }
            }
            Phase::AuthLoginPass(user) => {
                if let Some(pass) = self.auth_response(line) {
                    self.credential(Mechanism::Login, user, auth::text(&pass), cx);
                }
            }
            Phase::Data(_) => unreachable!("DATA bytes never reach the line reader"),
        }
    }

    fn command(&mut self, line: &[u8], cx: &mut Context) {
        let line = String::from_utf8_lossy(line);
        let line = line.trim();
        let (verb, arg) = match line.split_once([' ', '\t']) {
            Some((verb, arg)) => (verb, arg.trim()),
            None => (line, ""),
        };
        let is = |name: &str| verb.eq_ignore_ascii_case(name);
        if verb.is_empty() {
            self.error(Reply::EmptyLine);
        } else if is("EHLO") || is("HELO") {
            if arg.is_empty() {
                self.error(Reply::HeloSyntax(verb));
                return;
            }
            // A new greeting resets the transaction (RFC 5321 §4.1.4).
            self.envelope = None;
            self.helo = Some(arg.to_owned());
            let reply = if is("EHLO") {
                Reply::Ehlo(arg)
            } else {
                Reply::Helo(arg)
            };
            self.server.reply(reply, &mut self.out);
        } else if is("MAIL") {
            self.mail(arg);
        } else if is("RCPT") {
            self.rcpt(arg);
        } else if is("DATA") {
            self.start_data(arg);
        } else if is("RSET") {
            self.envelope = None;
            self.server.reply(Reply::Reset, &mut self.out);
        } else if is("NOOP") {
            self.server.reply(Reply::Noop, &mut self.out);
        } else if is("QUIT") {
            self.server.reply(Reply::Quit, &mut self.out);
            self.close(cx);
        } else if is("VRFY") {
            if arg.is_empty() {
                self.error(Reply::VrfySyntax);
            } else {
                self.server.reply(Reply::Vrfy(arg), &mut self.out);
            }
        } else if is("EXPN") {
            self.error(Reply::Expn);
        } else if is("ETRN") {
            if arg.is_empty() {
                self.error(Reply::EtrnSyntax);
            } else {
                self.server.reply(Reply::Etrn(arg), &mut self.out);
            }
        } else if is("HELP") {
            self.server.reply(Reply::Help, &mut self.out);
        } else if is("AUTH") {
            self.auth(arg, cx);
        } else if is("STARTTLS") {
            // Not advertised; see the crate docs.
            self.error(Reply::NotImplemented);
        } else if self.server.persona == Persona::Postfix
            && ["CONNECT", "GET", "POST"].iter().any(|c| is(c))
        {
            // Postfix's smtpd_forbidden_commands: a proxy or web request sent
            // to an SMTP port; it answers and hangs up.
            self.server.reply(Reply::Unknown(verb), &mut self.out);
            self.close(cx);
        } else {
            self.error(Reply::Unknown(verb));
        }
    }

    /// `MAIL FROM:<path> [params]`. Accepted before HELO, as Postfix and
    /// Sendmail do by default (`smtpd_helo_required = no`): spamware that
    /// skips the greeting is still worth recording.
    fn mail(&mut self, arg: &str) {
        if self.envelope.is_some() {
            return self.error(Reply::NestedMail);
        }
        let Some((from, params)) = strip_keyword(arg, "FROM").and_then(parse_path) else {
            return self.error(Reply::MailSyntax);
        };
        let mut size_hint = 0;
        for param in params.split_ascii_whitespace() {
            let (key, value) = param.split_once('=').unwrap_or((param, ""));
            if key.eq_ignore_ascii_case("SIZE") {
                if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
                    return self.error(Reply::BadSizeSyntax);
                }
                // All digits: too many of them is just too big.
                size_hint = value.parse().unwrap_or(u64::MAX);
                if size_hint > self.limits.max_message_bytes as u64 {
                    return self.error(Reply::SizeExceeded);
                }
            } else if key.eq_ignore_ascii_case("BODY")
                && !value.eq_ignore_ascii_case("7BIT")
                && !value.eq_ignore_ascii_case("8BITMIME")
            {
                return self.error(Reply::BadBody);
            }
            // AUTH=, RET=, ENVID=, SMTPUTF8...: accepted and ignored.
        }
        self.server.reply(Reply::MailOk(from), &mut self.out);
        self.envelope = Some(Envelope {
            from: from.to_owned(),
            size_hint,
            ..Envelope::default()
        });
    }

    /// `RCPT TO:<path> [params]`. Every recipient is accepted (an open
    /// relay) up to the cap.
    fn rcpt(&mut self, arg: &str) {
        if self.envelope.is_none() {
            return self.error(Reply::NeedMail);
        }
        let Some((to, _params)) = strip_keyword(arg, "TO")
            .and_then(parse_path)
            .filter(|(to, _)| !to.is_empty())
        else {
            return self.error(Reply::RcptSyntax);
        };
        let Some(envelope) = &mut self.envelope else {
            return;
        };
        if envelope.rcpts.len() >= self.limits.max_recipients {
            // Like Postfix's recipient overshoot: refused, not an error.
            envelope.refused += 1;
            self.server.reply(Reply::TooManyRecipients, &mut self.out);
            return;
        }
        envelope.rcpts.push(to.to_owned());
        self.server.reply(Reply::RcptOk(to), &mut self.out);
    }

    fn start_data(&mut self, arg: &str) {
        if !arg.is_empty() {
            return self.error(Reply::DataSyntax);
        }
        match &self.envelope {
            Some(e) if !e.rcpts.is_empty() => {
                self.phase =
                    Phase::Data(DataReader::new(self.limits.max_message_bytes, e.size_hint));
                self.server.reply(Reply::StartData, &mut self.out);
            }
            // Without MAIL or without RCPT: Postfix says "need RCPT" to both.
            _ => self.error(Reply::NeedRcpt),
        }
    }

    /// The end-of-data line arrived: store, answer, record.
    fn finish_message(&mut self, cx: &mut Context) {
        let Phase::Data(reader) = std::mem::replace(&mut self.phase, Phase::Command) else {
            return;
        };
        let envelope = self.envelope.take().unwrap_or_default();
        let queue_id = self.server.queue_id(self.messages, cx.now().as_secs());
        self.messages += 1;
        let size = reader.size();
        let helo = self.helo.clone().unwrap_or_default();
        let via = self.via.join(",");

        let mut probe = None;
        let mut sha256 = String::new();
        let mut stored = false;
        let reply_code;
        if reader.overflowed() {
            // Read to the end, refuse, keep nothing.
            self.server.reply(Reply::SizeExceeded, &mut self.out);
            reply_code = 552;
        } else {
            let body = reader.into_body();
            let mut envelope_text: Vec<&str> = Vec::with_capacity(envelope.rcpts.len() + 1);
            envelope_text.push(&envelope.from);
            envelope_text.extend(envelope.rcpts.iter().map(String::as_str));
            probe = self
                .probe
                .detect(envelope.rcpts.len(), &envelope_text, &body);

            let mut artifact = Artifact::new(ArtifactKind::Email, body)
                .meta("helo", helo.as_str())
                .meta("mail_from", envelope.from.as_str());
            for rcpt in &envelope.rcpts {
                artifact = artifact.meta("rcpt_to", rcpt.as_str());
            }
            if let Some(target) = &self.target_host {
                artifact = artifact.meta("target_host", target.as_str());
            }
            if !via.is_empty() {
                artifact = artifact.meta("via", via.as_str());
            }
            let artifact = artifact
                .meta("probe", if probe.is_some() { "true" } else { "false" })
                .meta("queue_id", queue_id.as_str())
                .meta("persona", self.server.persona.name());

            // Acknowledge only what is durable. A full disk still gets a 250:
            // the host counted the message, and a sensor that starts
            // refusing mail gives itself away.
            reply_code = match cx.store_artifact(artifact) {
                Ok(sha) => {
                    sha256 = sha;
                    stored = true;
                    250
                }
                Err(StoreError::QuotaExceeded) => 250,
                // Larger than the host keeps: permanent, so the client does
                // not resend it forever.
                Err(StoreError::TooLarge(_)) => 552,
                Err(err) => {
                    cx.log(&format!("smtp: message {queue_id} not stored: {err}"));
                    451
                }
            };
            let reply = match reply_code {
                250 => Reply::Queued(&queue_id),
                552 => Reply::SizeExceeded,
                _ => Reply::QueueWriteError,
            };
            self.server.reply(reply, &mut self.out);
        }

        let mut event = Event::new("smtp.message")
            .text("helo", helo)
            .text("mail_from", envelope.from)
            .int("rcpt_count", envelope.rcpts.len() as i64)
            .texts("rcpt_to", envelope.rcpts)
            .int("rcpt_refused", i64::from(envelope.refused))
            .int("size", size as i64)
            .text("sha256", sha256)
            .flag("stored", stored)
            .int("reply_code", reply_code)
            .text("queue_id", queue_id);
        if let Some(target) = &self.target_host {
            event = event.text("target_host", target.as_str());
        }
        event = event
            .texts("via", self.via.iter().cloned())
            .flag("probe", probe.is_some());
        if let Some(form) = probe {
            event = event.text("probe_form", form.name());
        }
        cx.emit(event);
    }

    /// `AUTH mechanism [initial-response]`. Offered so that spammers hand
    /// over the (often stolen) credentials they try; always succeeds.
    /// Accepted before EHLO too: better a credential than realism here.
    fn auth(&mut self, arg: &str, cx: &mut Context) {
        if self.authenticated {
            return self.error(Reply::AuthAlready);
        }
        if self.envelope.is_some() {
            return self.error(Reply::AuthInTransaction);
        }
        let mut words = arg.split_ascii_whitespace();
        let Some(mechanism) = words.next().and_then(Mechanism::parse) else {
            return self.error(Reply::AuthMechanism);
        };
        let initial = words.next();
        match (mechanism, initial) {
            (Mechanism::Plain, Some(initial)) => self.auth_plain(initial.as_bytes(), cx),
            (Mechanism::Plain, None) => {
                self.server.reply(Reply::AuthContinue(""), &mut self.out);
                self.phase = Phase::AuthPlain;
            }
            (Mechanism::Login, Some(initial)) => {
                if let Some(user) = self.auth_response(initial.as_bytes()) {
                    self.server
                        .reply(Reply::AuthContinue(LOGIN_PASSWORD), &mut self.out);
                    self.phase = Phase::AuthLoginPass(auth::text(&user));
                }
            }
            (Mechanism::Login, None) => {
                self.server
                    .reply(Reply::AuthContinue(LOGIN_USERNAME), &mut self.out);
                self.phase = Phase::AuthLoginUser;
            }
        }
    }

    fn auth_plain(&mut self, response: &[u8], cx: &mut Context) {
        let Some(decoded) = self.auth_response(response) else {
            return;
        };
        match auth::parse_plain(&decoded) {
            Some((user, pass)) => self.credential(Mechanism::Plain, user, pass, cx),
            None => self.error(Reply::AuthDecode),
        }
    }

    /// Decode a base64 AUTH response; `None` (with the reply sent) when the
    /// client cancelled with `*` or sent garbage.
    fn auth_response(&mut self, response: &[u8]) -> Option<Vec<u8>> {
        if response.trim_ascii() == b"*" {
            self.error(Reply::AuthAborted);
            return None;
        }
        let decoded = auth::decode_base64(response);
        if decoded.is_none() {
            self.error(Reply::AuthDecode);
        }
        decoded
    }

    fn credential(&mut self, mechanism: Mechanism, user: String, pass: String, cx: &mut Context) {
        cx.emit(
            Event::new("credential")
                .text("protocol", "smtp")
                .text("mechanism", mechanism.name())
                .text("username", user)
                .text("password", pass),
        );
        self.authenticated = true;
        self.server.reply(Reply::AuthOk, &mut self.out);
    }

    /// An error reply, counted towards the error limit.
    fn error(&mut self, reply: Reply<'_>) {
        self.errors += 1;
        self.server.reply(reply, &mut self.out);
    }

    fn close(&mut self, cx: &mut Context) {
        self.flush(cx);
        cx.close();
        self.done = true;
    }

    fn flush(&mut self, cx: &mut Context) {
        if !self.out.is_empty() {
            cx.send(self.out.as_bytes());
            self.out.clear();
        }
    }
}

/// `FROM:rest` / `TO:rest`, any case, spaces allowed around the colon.
fn strip_keyword<'a>(arg: &'a str, keyword: &str) -> Option<&'a str> {
    let head = arg.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    arg[keyword.len()..].trim_start().strip_prefix(':')
}

/// A path and what follows it: `<a@b> SIZE=1`, ` <a@b>`, or a bare `a@b`
/// (spamware omits the brackets; Postfix accepts that by default).
fn parse_path(rest: &str) -> Option<(&str, &str)> {
    let rest = rest.trim_start();
    if let Some(inner) = rest.strip_prefix('<') {
        let end = inner.find('>')?;
        Some((inner[..end].trim(), &inner[end + 1..]))
    } else {
        let end = rest.find([' ', '\t']).unwrap_or(rest.len());
        (end > 0).then(|| (&rest[..end], &rest[end..]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(strip_keyword("FROM:<a@b>", "FROM"), Some("<a@b>"));
        assert_eq!(strip_keyword("from : <a@b>", "FROM"), Some(" <a@b>"));
        assert_eq!(strip_keyword("FRO", "FROM"), None);
        assert_eq!(strip_keyword("TO <a@b>", "TO"), None);
        assert_eq!(parse_path("<a@b> SIZE=1"), Some(("a@b", " SIZE=1")));
        assert_eq!(parse_path(" <>"), Some(("", "")));
        assert_eq!(
            parse_path("a@b BODY=8BITMIME"),
            Some(("a@b", " BODY=8BITMIME"))
        );
        assert_eq!(parse_path("<a@b"), None);
        assert_eq!(parse_path(""), None);
    }
}
