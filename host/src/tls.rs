//! TLS for the admin API: the sensor's key pair and the client's pin.
//!
//! The collector pulls captured bodies and credentials, and `ctl` turns
//! listeners on and off, with a bearer token: across a network both must be
//! encrypted, and the client must know it talks to its own sensor. A sensor
//! has no name a public CA would vouch for, so, as with SSH host keys, the
//! client pins the SHA-256 of the sensor's certificate instead of checking a
//! chain. The sensor makes a self-signed key pair on its first start with
//! `[admin] tls = true`, or serves the operator's own (`tls_cert`,
//! `tls_key`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::Digest;

/// The folder under the data directory that holds a generated key pair.
pub const GENERATED_DIR: &str = "admin-tls";

/// Why the admin API's TLS could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Pem { path: PathBuf, message: String },
    #[error(
        "{present} exists but {missing} does not: restore it, or remove both to make a new key pair (clients must then pin the new fingerprint)"
    )]
    HalfPair { present: PathBuf, missing: PathBuf },
    #[error("cannot make a key pair: {0}")]
    Generate(String),
    #[error("the certificate and key do not go together: {0}")]
    Mismatch(String),
}

/// The SHA-256 of a certificate (DER), as clients pin it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    pub fn of(cert: &CertificateDer<'_>) -> Fingerprint {
        Fingerprint(sha2::Sha256::digest(cert.as_ref()).into())
    }

    /// `sha256:` and 64 hex digits; the prefix, the case and colons between
    /// bytes (as `openssl x509 -fingerprint -sha256` prints) are optional.
    pub fn parse(text: &str) -> Result<Fingerprint, String> {
        let text = text.trim();
        let hex_digits: String = text
            .strip_prefix("sha256:")
            .or_else(|| text.strip_prefix("SHA256:"))
            .unwrap_or(text)
            .chars()
            .filter(|c| *c != ':')
            .collect();
        let mut bytes = [0u8; 32];
        match hex::decode_to_slice(&hex_digits, &mut bytes) {
            Ok(()) => Ok(Fingerprint(bytes)),
            Err(_) => Err(format!(
                "{text:?} is not a certificate fingerprint (sha256: and 64 hex digits)"
            )),
        }
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl std::str::FromStr for Fingerprint {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Fingerprint::parse(s)
    }
}

impl<'de> serde::Deserialize<'de> for Fingerprint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Fingerprint::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// ring: pure Rust and assembly, nothing to install on a sensor.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The admin API's server side: its TLS config and the fingerprint
/// clients pin.
pub struct ServerIdentity {
    pub config: Arc<rustls::ServerConfig>,
    pub fingerprint: Fingerprint,
}

/// The operator's own pair when `cert` and `key` are given, else the pair
/// in `data_dir/admin-tls/`, made on first use.
pub fn server_identity(
    data_dir: &Path,
    cert_and_key: Option<(&Path, &Path)>,
) -> Result<ServerIdentity, TlsError> {
    let (cert_path, key_path) = match cert_and_key {
        Some((cert, key)) => (cert.to_owned(), key.to_owned()),
        None => generated_pair(&data_dir.join(GENERATED_DIR))?,
    };
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let pem = |path: &Path, message: String| TlsError::Pem {
        path: path.to_owned(),
        message,
    };
    let certs = CertificateDer::pem_slice_iter(&read(&cert_path)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(&cert_path, e.to_string()))?;
    let Some(leaf) = certs.first() else {
        return Err(pem(&cert_path, "no CERTIFICATE block".into()));
    };
    let fingerprint = Fingerprint::of(leaf);
    let key = PrivateKeyDer::from_pem_slice(&read(&key_path)?)
        .map_err(|e| pem(&key_path, format!("no usable private key: {e}")))?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Mismatch(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| TlsError::Mismatch(e.to_string()))?;
    Ok(ServerIdentity {
        config: Arc::new(config),
        fingerprint,
    })
}

/// `cert.pem` and `key.pem` in `dir`, made if neither exists. One without
/// the other is refused: making a new key would silently change the
/// fingerprint every client pinned.
fn generated_pair(dir: &Path) -> Result<(PathBuf, PathBuf), TlsError> {
    let cert = dir.join("cert.pem");
    let key = dir.join("key.pem");
    match (cert.exists(), key.exists()) {
        (true, true) => return Ok((cert, key)),
        (true, false) => {
            return Err(TlsError::HalfPair {
                present: cert,
                missing: key,
            });
        }
        (false, true) => {
            return Err(TlsError::HalfPair {
                present: key,
                missing: cert,
            });
        }
        (false, false) => {}
    }
    // The certificate names nothing a client checks (clients pin it); the
    // name only tells a person who reads it what it is.
    let made = rcgen::generate_simple_self_signed(vec!["spampot-admin".to_string()])
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source| TlsError::Write { path, source }
    };
    std::fs::create_dir_all(dir).map_err(write_err(dir))?;
    // The key first and only readable by the sensor's user; each file
    // appears whole (written aside, then renamed).
    write_private(&key, made.signing_key.serialize_pem().as_bytes()).map_err(write_err(&key))?;
    let tmp = dir.join("cert.pem.tmp");
    std::fs::write(&tmp, made.cert.pem()).map_err(write_err(&tmp))?;
    std::fs::rename(&tmp, &cert).map_err(write_err(&cert))?;
    Ok((cert, key))
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("pem.tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// A client config that accepts exactly the certificate with this
/// fingerprint (and checks that the server holds its key).
pub fn client_config(pin: Fingerprint) -> Arc<rustls::ClientConfig> {
    let provider = provider();
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned { pin, provider }))
        .with_no_client_auth();
    Arc::new(config)
}

/// The server's certificate is not the pinned one.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("presented certificate {presented}, not the pinned {pinned}")]
pub struct PinMismatch {
    pub presented: Fingerprint,
    pub pinned: Fingerprint,
}

impl PinMismatch {
    /// The mismatch behind a failed handshake, if that is what failed it.
    pub fn within(err: &std::io::Error) -> Option<&PinMismatch> {
        match err.get_ref()?.downcast_ref::<rustls::Error>()? {
            rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => {
                other.0.downcast_ref::<PinMismatch>()
            }
            _ => None,
        }
    }
}

/// Trusts one certificate by its digest instead of by a chain to a CA.
#[derive(Debug)]
struct Pinned {
    pin: Fingerprint,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let presented = Fingerprint::of(end_entity);
        if presented == self.pin {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::Other(rustls::OtherError(Arc::new(PinMismatch {
                    presented,
                    pinned: self.pin,
                }))),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_parse_in_the_forms_operators_paste() {
        let hex64 = "ab".repeat(32);
        let ours = Fingerprint::parse(&format!("sha256:{hex64}")).unwrap();
        assert_eq!(ours.to_string(), format!("sha256:{hex64}"));
        assert_eq!(Fingerprint::parse(&hex64.to_uppercase()).unwrap(), ours);
        let openssl = vec!["AB"; 32].join(":");
        assert_eq!(Fingerprint::parse(&openssl).unwrap(), ours);
        assert!(Fingerprint::parse("sha256:abcd").is_err());
        assert!(Fingerprint::parse(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn a_generated_pair_is_kept_across_starts() {
        let dir = tempfile::tempdir().unwrap();
        let first = server_identity(dir.path(), None).unwrap().fingerprint;
        let second = server_identity(dir.path(), None).unwrap().fingerprint;
        assert_eq!(first, second);
        let key = dir.path().join(GENERATED_DIR).join("key.pem");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key is readable by others: {mode:o}");
    }

    #[test]
    fn a_lone_certificate_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        server_identity(dir.path(), None).unwrap();
        std::fs::remove_file(dir.path().join(GENERATED_DIR).join("key.pem")).unwrap();
        let err = server_identity(dir.path(), None).err().unwrap().to_string();
        assert!(err.contains("key.pem does not"), "{err}");
    }

    #[test]
    fn a_file_that_is_not_pem_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.pem");
        let key = dir.path().join("k.pem");
        std::fs::write(&cert, "not a certificate").unwrap();
        std::fs::write(&key, "not a key").unwrap();
        let err = server_identity(dir.path(), Some((&cert, &key)))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("c.pem") && err.contains("no CERTIFICATE"),
            "{err}"
        );
    }
}
