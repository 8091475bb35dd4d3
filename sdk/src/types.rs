//! Plain Rust mirrors of the WIT types, used by plugins on every target.
//!
//! On `wasm32` the SDK converts these to and from the generated bindings; in
//! native tests they are used as they are, so a plugin never touches a
//! generated type.

use std::fmt;

/// A destination an abuser asked a proxy to connect to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Target {
    /// Host name or IP literal exactly as the client sent it (IPv6 without brackets).
    pub host: String,
    /// The TCP port.
    pub port: u16,
}

impl Target {
    /// A target of `host:port`.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Target {
            host: host.into(),
            port,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// What the host knows about a connection when a session starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfo {
    /// Stable for the whole connection, across splices.
    pub session_id: String,
    /// The sensor's configured name.
    pub sensor: String,
    /// The client's address as text.
    pub peer_addr: String,
    /// The client's port.
    pub peer_port: u16,
    /// The sensor address the client connected to.
    pub local_addr: String,
    /// The port the client connected to (not a spliced target's port).
    pub local_port: u16,
    /// Plugins that spliced to this one, oldest first; empty for a direct connection.
    pub via: Vec<String>,
    /// The destination the previous plugin was asked for, when spliced.
    pub target: Option<Target>,
}

impl ConnInfo {
    /// A plausible connection for tests: a client from a documentation
    /// range (RFC 5737) talking to `local_port`.
    pub fn test(local_port: u16) -> Self {
        ConnInfo {
            session_id: "0123456789ab".into(),
            sensor: "test-sensor".into(),
            peer_addr: "192.0.2.10".into(),
            peer_port: 40000,
            local_addr: "198.51.100.1".into(),
            local_port,
            via: Vec::new(),
            target: None,
        }
    }

    /// This connection as the next plugin sees it after `plugin` spliced it to `target`.
    pub fn spliced(mut self, plugin: impl Into<String>, target: Target) -> Self {
        self.via.push(plugin.into());
        self.target = Some(target);
        self
    }
}

/// A request to hand the rest of the stream to another emulator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpliceRequest {
    /// Where the client asked to go.
    pub target: Target,
    /// Bytes already received that belong to the new destination.
    pub pending: Vec<u8>,
}

/// Something for the host to do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Write these bytes to the client.
    Send(Vec<u8>),
    /// Flush what was sent, then close the connection.
    Close,
    /// Pretend to connect to a target; the rest of the stream goes to the
    /// emulator for its port. Actions after a splice are ignored by the host.
    Splice(SpliceRequest),
    /// Wait before carrying out the next action (tarpit).
    DelayMs(u32),
}

/// A typed event field value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue {
    /// Text.
    Text(String),
    /// A signed integer.
    Int(i64),
    /// A yes/no flag.
    Flag(bool),
    /// A list of texts (recipients, a `via` chain).
    Texts(Vec<String>),
}

impl FieldValue {
    /// The value as text, if it is text.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            FieldValue::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The value as an integer, if it is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            FieldValue::Int(n) => Some(*n),
            _ => None,
        }
    }

    /// The value as a flag, if it is one.
    pub fn as_flag(&self) -> Option<bool> {
        match self {
            FieldValue::Flag(b) => Some(*b),
            _ => None,
        }
    }

    /// The value as a list of texts, if it is one.
    pub fn as_texts(&self) -> Option<&[String]> {
        match self {
            FieldValue::Texts(v) => Some(v),
            _ => None,
        }
    }
}

/// One observation for the event log. The host adds the common fields
/// (timestamp, sensor, session, addresses, plugin).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// A dotted event id, such as `proxy.request`.
    pub kind: String,
    /// The fields, in order.
    pub fields: Vec<(String, FieldValue)>,
}

impl Event {
    /// Start an event of this kind; add fields with the builder methods.
    pub fn new(kind: impl Into<String>) -> Self {
        Event {
            kind: kind.into(),
            fields: Vec::new(),
        }
    }

    /// Add a text field.
    pub fn text(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.fields
            .push((key.into(), FieldValue::Text(value.into())));
        self
    }

    /// Add an integer field.
    pub fn int(mut self, key: impl Into<String>, value: i64) -> Self {
        self.fields.push((key.into(), FieldValue::Int(value)));
        self
    }

    /// Add a flag field.
    pub fn flag(mut self, key: impl Into<String>, value: bool) -> Self {
        self.fields.push((key.into(), FieldValue::Flag(value)));
        self
    }

    /// Add a list-of-text field.
    pub fn texts<I, S>(mut self, key: impl Into<String>, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let values = values.into_iter().map(Into::into).collect();
        self.fields.push((key.into(), FieldValue::Texts(values)));
        self
    }

    /// The first field with this key.
    pub fn get(&self, key: &str) -> Option<&FieldValue> {
        self.fields.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// What kind of content an artifact holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArtifactKind {
    /// A complete message received over SMTP.
    Email,
    /// A file a client uploaded.
    UploadedFile,
    /// Captured authentication material.
    Credential,
    /// Anything else.
    Other,
}

impl ArtifactKind {
    /// The name used in events and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactKind::Email => "email",
            ArtifactKind::UploadedFile => "uploaded-file",
            ArtifactKind::Credential => "credential",
            ArtifactKind::Other => "other",
        }
    }
}

/// Captured content the host must keep durably.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    /// What the content is.
    pub kind: ArtifactKind,
    /// Envelope and metadata; never used to build a path.
    pub meta: Vec<(String, String)>,
    /// The content.
    pub data: Vec<u8>,
}

impl Artifact {
    /// An artifact of `kind` holding `data`, without metadata.
    pub fn new(kind: ArtifactKind, data: Vec<u8>) -> Self {
        Artifact {
            kind,
            meta: Vec::new(),
            data,
        }
    }

    /// Add a metadata entry (keys may repeat, e.g. one `rcpt_to` per recipient).
    pub fn meta(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.meta.push((key.into(), value.into()));
        self
    }

    /// The first metadata value with this key.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.meta
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Why the host refused to store an artifact. The plugin decides what to
/// tell the client; it must not acknowledge what was not stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// The sensor's disk quota is reached; the artifact was counted, not kept.
    QuotaExceeded,
    /// Larger than one artifact may be (the limit, in bytes).
    TooLarge(u64),
    /// This session stored as much as it may.
    SessionLimit,
    /// The store failed; the data is not durable.
    Io(String),
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::QuotaExceeded => f.write_str("disk quota reached"),
            StoreError::TooLarge(max) => write!(f, "artifact larger than {max} bytes"),
            StoreError::SessionLimit => f.write_str("session artifact limit reached"),
            StoreError::Io(e) => write!(f, "store failed: {e}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// What a plugin says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    /// The name operators use in config.
    pub name: String,
    /// The plugin's own version.
    pub version: String,
    /// Protocols it emulates, e.g. `["smtp"]`.
    pub protocols: Vec<String>,
    /// Ports it is usually found on.
    pub default_ports: Vec<u16>,
}

impl PluginInfo {
    /// Name and version; add protocols and ports with the builder methods.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        PluginInfo {
            name: name.into(),
            version: version.into(),
            protocols: Vec::new(),
            default_ports: Vec::new(),
        }
    }

    /// Set the protocols.
    pub fn protocols<I: IntoIterator<Item = S>, S: Into<String>>(mut self, protocols: I) -> Self {
        self.protocols = protocols.into_iter().map(Into::into).collect();
        self
    }

    /// Set the usual ports.
    pub fn ports(mut self, ports: &[u16]) -> Self {
        self.default_ports = ports.to_vec();
        self
    }
}

/// The `[plugins.NAME]` table of the sensor's config, flattened to text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Config(pub Vec<(String, String)>);

impl Config {
    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The value of `key` parsed as `T`, or `default` when unset or unparsable.
    pub fn get_or<T: std::str::FromStr>(&self, key: &str, default: T) -> T {
        self.get(key)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    }

    /// A config with one more setting (for tests).
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.push((key.into(), value.into()));
        self
    }
}
