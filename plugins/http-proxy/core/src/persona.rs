//! Who the proxy claims to be: the `module` its requests are counted under,
//! its banner headers, and how its own responses (errors, CONNECT's `200`)
//! look. A [`Flavor`] picks the persona and the plugin's description; the
//! `http-proxy` plugin is [`Squid`], the `sobig` plugin brings its own.

use spampot_sdk::{ConnInfo, PluginInfo};

use crate::text::{html_escape, http_date, push_decimal};

/// How the proxy's own pages look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageStyle {
    /// Squid 3.x: `HTTP/1.1`, `X-Squid-Error`, its HTML error template.
    Squid,
    /// A bare proxy: `HTTP/1.0`, a one-line HTML body, no banner.
    Minimal,
}

/// The persona of one HTTP proxy session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persona {
    /// The `module` of every `proxy.request` (`http`, `sobig`).
    pub module: &'static str,
    /// `Server` of the proxy's own responses and `Proxy-Agent` of a
    /// CONNECT's `200`; `None` sends neither.
    pub server: Option<String>,
    /// The proxy's host name in its error pages (Squid's `visible_hostname`).
    pub hostname: String,
    pub style: PageStyle,
}

/// A persona and a plugin description: what makes an [`HttpProxy`](crate::HttpProxy)
/// one plugin or another.
pub trait Flavor: 'static {
    /// The plugin's name, version, protocols and ports.
    fn describe() -> PluginInfo;
    /// The persona before config overrides (`server_header`, `via_name`).
    fn persona(conn: &ConnInfo) -> Persona;
}

/// The Squid version the default persona claims: the one Ubuntu 18.04
/// shipped, still the most common banner among open Squids.
pub const SQUID_SERVER: &str = "squid/3.5.27";

/// The `http-proxy` plugin: an open Squid on the SpamPots HTTP ports.
pub struct Squid;

impl Flavor for Squid {
    fn describe() -> PluginInfo {
        PluginInfo::new("http-proxy", env!("CARGO_PKG_VERSION"))
            .protocols(["http-proxy"])
            .ports(&[8080, 80, 3128, 8000, 6588, 4480, 81])
    }

    fn persona(_conn: &ConnInfo) -> Persona {
        Persona {
            module: "http",
            server: Some(SQUID_SERVER.into()),
            // Squid's visible_hostname when the machine's name is unset.
            hostname: "localhost".into(),
            style: PageStyle::Squid,
        }
    }
}

/// Why the proxy answers a request itself, with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal<'a> {
    /// The request line is not HTTP/1.x (`line` as received).
    InvalidRequest { line: &'a str },
    /// The request head is larger than the proxy reads.
    TooBig,
    /// The URL or CONNECT authority cannot be parsed.
    InvalidUrl { url: &'a str },
    /// The destination is one the proxy's rules forbid (private addresses).
    AccessDenied { url: &'a str },
    /// The destination "refused the connection" (ports the proxy does not serve).
    ConnectFail { url: &'a str, host: &'a str },
}

impl Refusal<'_> {
    pub fn status(&self) -> (u16, &'static str) {
        match self {
            Refusal::InvalidRequest { .. } | Refusal::TooBig | Refusal::InvalidUrl { .. } => {
                (400, "Bad Request")
            }
            Refusal::AccessDenied { .. } => (403, "Forbidden"),
            Refusal::ConnectFail { .. } => (503, "Service Unavailable"),
        }
    }

    /// Squid's error template name (and errno, for connect failures).
    fn squid_code(&self) -> &'static str {
        match self {
            Refusal::InvalidRequest { .. } => "ERR_INVALID_REQ 0",
            Refusal::TooBig => "ERR_TOO_BIG 0",
            Refusal::InvalidUrl { .. } => "ERR_INVALID_URL 0",
            Refusal::AccessDenied { .. } => "ERR_ACCESS_DENIED 0",
            Refusal::ConnectFail { .. } => "ERR_CONNECT_FAIL 111",
        }
    }

    /// The content of Squid's page for this error.
    fn squid_content(&self) -> String {
        let retrieving = |url: &str| {
            let url = html_escape(url);
            format!(
                "<p>The following error was encountered while trying to retrieve the URL: \
                 <a href=\"{url}\">{url}</a></p>\n"
            )
        };
        match self {
            Refusal::InvalidRequest { line } => format!(
                "<p><b>Invalid Request</b> error was encountered while trying to process the request:</p>\n\
                 <blockquote id=\"data\">\n<pre>{}</pre>\n</blockquote>\n\
                 <p>Some possible problems are:</p>\n<ul>\n\
                 <li><p>Missing or unknown request method.</p></li>\n\
                 <li><p>Missing URL.</p></li>\n\
                 <li><p>Missing HTTP Identifier (HTTP/1.0).</p></li>\n\
                 <li><p>Request is too large.</p></li>\n</ul>\n",
                html_escape(line)
            ),
            Refusal::TooBig => "<blockquote id=\"error\">\n<p><b>The request or reply is too large.</b></p>\n</blockquote>\n\
                 <p>If you are making a POST or PUT request, then the item you are trying to upload is too large.</p>\n"
                .into(),
            Refusal::InvalidUrl { url } => format!(
                "{}<blockquote id=\"error\">\n<p><b>Invalid URL</b></p>\n</blockquote>\n\
                 <p>Some aspect of the requested URL is incorrect.</p>\n",
                retrieving(url)
            ),
            Refusal::AccessDenied { url } => format!(
                "{}<blockquote id=\"error\">\n<p><b>Access Denied.</b></p>\n</blockquote>\n\
                 <p>Access control configuration prevents your request from being allowed at this time. \
                 Please contact your service provider if you feel this is incorrect.</p>\n",
                retrieving(url)
            ),
            Refusal::ConnectFail { url, host } => format!(
                "{}<blockquote id=\"error\">\n<p><b>Connection to {} failed.</b></p>\n</blockquote>\n\
                 <p id=\"sysmsg\">The system returned: <i>(111) Connection refused</i></p>\n\
                 <p>The remote host or network may be down. Please try the request again.</p>\n",
                retrieving(url),
                html_escape(host)
            ),
        }
    }
}

impl Persona {
    /// The status-line version of the proxy's responses.
    fn version(&self) -> &'static str {
        match self.style {
            PageStyle::Squid => "HTTP/1.1",
            PageStyle::Minimal => "HTTP/1.0",
        }
    }

    /// The answer to a CONNECT the proxy pretends to have made.
    pub fn connect_established(&self) -> Vec<u8> {
        let mut out = String::from("HTTP/1.0 200 Connection established\r\n");
        if let Some(agent) = &self.server {
            out.push_str(&format!("Proxy-Agent: {agent}\r\n"));
        }
        out.push_str("\r\n");
        out.into_bytes()
    }

    /// The proxy's own error response; the connection closes after it.
    pub fn error_page(&self, refusal: Refusal, unix_secs: u64) -> Vec<u8> {
        let (status, reason) = refusal.status();
        let date = http_date(unix_secs);
        match self.style {
            PageStyle::Minimal => {
                let body = format!(
                    "<html><head><title>{status} {reason}</title></head>\
                     <body><h1>{status} {reason}</h1></body></html>\r\n"
                );
                format!(
                    "HTTP/1.0 {status} {reason}\r\nContent-Type: text/html\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .into_bytes()
            }
            PageStyle::Squid => {
                let code = refusal.squid_code();
                let name = code.split(' ').next().unwrap_or(code);
                let generator = match &self.server {
                    Some(server) => format!("{} ({server})", html_escape(&self.hostname)),
                    None => html_escape(&self.hostname),
                };
                let body = format!(
                    "<!DOCTYPE html PUBLIC \"-//W3C//DTD HTML 4.01//EN\" \"http://www.w3.org/TR/html4/strict.dtd\">\n\
                     <html><head>\n\
                     <meta type=\"copyright\" content=\"Copyright (C) 1996-2017 The Squid Software Foundation and contributors\">\n\
                     <meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\">\n\
                     <title>ERROR: The requested URL could not be retrieved</title>\n\
                     </head><body id={name}>\n\
                     <div id=\"titles\">\n<h1>ERROR</h1>\n<h2>The requested URL could not be retrieved</h2>\n</div>\n<hr>\n\n\
                     <div id=\"content\">\n{}\
                     <p>Your cache administrator is <a href=\"mailto:webmaster?subject=CacheErrorInfo%20-%20{name}\">webmaster</a>.</p>\n\
                     <br>\n</div>\n\n<hr>\n\
                     <div id=\"footer\">\n<p>Generated {date} by {generator}</p>\n<!-- {name} -->\n</div>\n\
                     </body></html>\n",
                    refusal.squid_content()
                );
                let mut head = format!("{} {status} {reason}\r\n", self.version());
                if let Some(server) = &self.server {
                    head.push_str(&format!("Server: {server}\r\n"));
                }
                head.push_str(&format!(
                    "Mime-Version: 1.0\r\nDate: {date}\r\n\
                     Content-Type: text/html;charset=utf-8\r\nContent-Length: {}\r\n\
                     X-Squid-Error: {code}\r\nVary: Accept-Language\r\nContent-Language: en\r\n\
                     Connection: close\r\n\r\n",
                    body.len()
                ));
                let mut out = head.into_bytes();
                out.extend_from_slice(body.as_bytes());
                out
            }
        }
    }

    /// A `200 OK` as the origin server sent it (the proxy adds no `Via`:
    /// it is an elite proxy). `head_only` for HEAD requests.
    pub fn origin_page(
        &self,
        body: &str,
        keep_alive: bool,
        head_only: bool,
        unix_secs: u64,
    ) -> Vec<u8> {
        let connection = if keep_alive { "keep-alive" } else { "close" };
        // Pushed piece by piece: core::fmt is slow in a component.
        let mut out = String::with_capacity(160 + body.len());
        out.push_str(self.version());
        out.push_str(" 200 OK\r\nDate: ");
        out.push_str(&http_date(unix_secs));
        out.push_str("\r\nServer: Apache\r\nContent-Length: ");
        push_decimal(&mut out, body.len() as u64, 1);
        out.push_str("\r\nContent-Type: text/html; charset=UTF-8\r\nConnection: ");
        out.push_str(connection);
        out.push_str("\r\n\r\n");
        if !head_only {
            out.push_str(body);
        }
        out.into_bytes()
    }
}
