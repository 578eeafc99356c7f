//! TLS to PostgreSQL with libpq's `sslmode` semantics, on rustls (the stack ureq already uses).
//!
//! The driver (tokio-postgres) knows only `disable`, `prefer` and `require`, and rejects
//! `verify-ca`, `verify-full` and `sslrootcert`. So [`split`] takes `sslmode` and `sslrootcert`
//! out of the connection string, hands the rest to the driver, and [`connector`] builds the rustls
//! configuration that gives each mode its libpq meaning:
//!
//! | sslmode | encrypted | server certificate checked |
//! |---|---|---|
//! | `disable` | never | - |
//! | `prefer` (default) | when the server offers it | no |
//! | `require` | always | no; with `sslrootcert`, as `verify-ca` (libpq does the same) |
//! | `verify-ca` | always | chain to `sslrootcert` |
//! | `verify-full` | always | chain to `sslrootcert`, and the host name or IP |
//!
//! `sslrootcert` is a PEM file of CA certificates, or `system` for the system trust store.
//! Without it, `verify-ca` and `verify-full` read `~/.postgresql/root.crt` as libpq does.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::tls_roots::PemError;

/// The connector every connection of the process is made with.
pub type Connector = MakeRustlsConnect;

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it, unverified (libpq's default).
    #[default]
    Prefer,
    /// Always TLS, unverified unless `sslrootcert` is given.
    Require,
    /// Always TLS; the certificate must chain to a trusted CA.
    VerifyCa,
    /// Always TLS; the certificate must chain to a trusted CA and name the host.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Option<SslMode> {
        Some(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// What the driver is told: it only needs to know whether TLS is optional.
    pub fn driver_mode(self) -> postgres::config::SslMode {
        match self {
            SslMode::Disable => postgres::config::SslMode::Disable,
            SslMode::Prefer => postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                postgres::config::SslMode::Require
            }
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        })
    }
}

/// Where trusted CA certificates come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// A PEM file.
    File(PathBuf),
    /// The system trust store (`sslrootcert=system`).
    System,
}

/// The TLS options of a connection string, and the string without them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Split {
    /// The connection string the driver parses: the original minus `sslmode` and `sslrootcert`.
    pub rest: String,
    /// `sslmode`, `prefer` when absent.
    pub mode: SslMode,
    /// `sslrootcert`, when given.
    pub root_cert: Option<RootCert>,
}

/// Why the TLS options cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionError {
    /// `sslmode` is not one of libpq's five values.
    UnknownMode(String),
    /// The CA file cannot be read or holds no certificate.
    RootCert {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// `verify-ca`/`verify-full` without any CA to verify against.
    NoRootCert(SslMode),
}

impl fmt::Display for OptionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OptionError::UnknownMode(mode) => write!(
                f,
                "sslmode={mode} is not one of disable, prefer, require, verify-ca, verify-full"
            ),
            OptionError::RootCert { path, reason } => {
                write!(f, "sslrootcert={}: {reason}", path.display())
            }
            OptionError::NoRootCert(mode) => write!(
                f,
                "sslmode={mode} needs the CA to verify against: add sslrootcert=<PEM file> \
                 (or sslrootcert=system), or create ~/.postgresql/root.crt"
            ),
        }
    }
}

impl std::error::Error for OptionError {}

/// Takes `sslmode` and `sslrootcert` out of a URL (`postgres://...?sslmode=...`) or a key=value
/// DSN (`host=... sslmode=...`). The last occurrence of a key wins, as in libpq.
pub fn split(connection_string: &str) -> Result<Split, OptionError> {
    let is_url = connection_string.starts_with("postgres://")
        || connection_string.starts_with("postgresql://");
    let (rest, options) = if is_url {
        split_url(connection_string)
    } else {
        split_dsn(connection_string)
    };
    let mut mode = SslMode::default();
    let mut root_cert = None;
    for (key, value) in options {
        if key == "sslmode" {
            mode = SslMode::parse(&value).ok_or(OptionError::UnknownMode(value))?;
        } else if value == "system" {
            root_cert = Some(RootCert::System);
        } else {
            root_cert = Some(RootCert::File(PathBuf::from(value)));
        }
    }
    Ok(Split {
        rest,
        mode,
        root_cert,
    })
}

fn is_tls_option(key: &str) -> bool {
    key == "sslmode" || key == "sslrootcert"
}

fn split_url(url: &str) -> (String, Vec<(String, String)>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), Vec::new());
    };
    let mut kept = Vec::new();
    let mut options = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let key = percent_decode(key);
        if is_tls_option(&key) {
            options.push((key, percent_decode(value)));
        } else {
            kept.push(pair);
        }
    }
    let rest = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (rest, options)
}

/// Decodes `%XX` escapes (and nothing else: a URL's `+` is a plus in libpq's parser too).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(byte)) => {
                out.push(byte);
                i += 3;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits a libpq key=value string: `key = value` pairs separated by spaces, a value either
/// bare or single-quoted, with `\` escaping the next character in both. Anything it cannot read
/// is left in place for the driver's parser to report.
fn split_dsn(dsn: &str) -> (String, Vec<(String, String)>) {
    let mut rest = String::with_capacity(dsn.len());
    let mut options = Vec::new();
    let mut chars = dsn.char_indices().peekable();
    let mut copied_to = 0;
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut key = String::new();
        while let Some(&(_, c)) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.next_if(|&(_, c)| c.is_whitespace()).is_some() {}
        if chars.next_if(|&(_, c)| c == '=').is_none() {
            break;
        }
        while chars.next_if(|&(_, c)| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        let quoted = chars.next_if(|&(_, c)| c == '\'').is_some();
        while let Some((_, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(escaped);
                    }
                }
                '\'' if quoted => break,
                c if !quoted && c.is_whitespace() => break,
                c => value.push(c),
            }
        }
        let end = chars.peek().map_or(dsn.len(), |&(i, _)| i);
        if is_tls_option(&key) {
            rest.push_str(&dsn[copied_to..start]);
            copied_to = end;
            options.push((key, value));
        }
    }
    rest.push_str(&dsn[copied_to..]);
    (rest.trim().to_string(), options)
}

/// The rustls connector for `split`'s mode and CA: reads the CA file now, so a missing or empty
/// one is reported at start-up.
pub fn connector(split: &Split) -> Result<Connector, OptionError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let root_cert = match (&split.root_cert, split.mode) {
        (Some(root_cert), _) => Some(root_cert.clone()),
        (None, SslMode::VerifyCa | SslMode::VerifyFull) => Some(
            libpq_default_root_cert()
                .map(RootCert::File)
                .ok_or(OptionError::NoRootCert(split.mode))?,
        ),
        (None, _) => None,
    };
    let algorithms = provider.signature_verification_algorithms;
    let verifier: Arc<dyn ServerCertVerifier> = match (split.mode, root_cert) {
        (SslMode::Disable | SslMode::Prefer, _) | (SslMode::Require, None) => {
            Arc::new(NameUnchecked {
                chain: None,
                algorithms,
            })
        }
        (mode, Some(root_cert)) => {
            let roots = Arc::new(load_roots(&root_cert)?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| OptionError::RootCert {
                    path: root_path(&root_cert),
                    reason: e.to_string(),
                })?;
            if mode == SslMode::VerifyFull {
                webpki
            } else {
                Arc::new(NameUnchecked {
                    chain: Some(webpki),
                    algorithms,
                })
            }
        }
        (mode, None) => return Err(OptionError::NoRootCert(mode)),
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| OptionError::RootCert {
            path: PathBuf::new(),
            reason: e.to_string(),
        })?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

fn libpq_default_root_cert() -> Option<PathBuf> {
    let path = Path::new(&std::env::var_os("HOME")?).join(".postgresql/root.crt");
    path.is_file().then_some(path)
}

fn root_path(root_cert: &RootCert) -> PathBuf {
    match root_cert {
        RootCert::File(path) => path.clone(),
        RootCert::System => PathBuf::from("system"),
    }
}

fn load_roots(root_cert: &RootCert) -> Result<RootCertStore, OptionError> {
    let path = root_path(root_cert);
    let failed = |reason: String| OptionError::RootCert {
        path: path.clone(),
        reason,
    };
    let certificates: Vec<CertificateDer<'static>> = match root_cert {
        RootCert::File(file) => crate::tls_roots::read_pem(file).map_err(|e| {
            failed(match e {
                PemError::Read(e) => e.to_string(),
                PemError::NoCertificate => "holds no usable CA certificate".into(),
                other => other.to_string(),
            })
        })?,
        RootCert::System => {
            // Honours SSL_CERT_FILE and SSL_CERT_DIR, like libpq's `sslrootcert=system`.
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty()
                && let Some(e) = found.errors.first()
            {
                return Err(failed(format!("cannot read the system trust store: {e}")));
            }
            found.certs
        }
    };
    let mut roots = RootCertStore::empty();
    let (added, _ignored) = roots.add_parsable_certificates(certificates);
    if added == 0 {
        return Err(failed("holds no usable CA certificate".into()));
    }
    Ok(roots)
}

/// The check of every mode but `verify-full`: the chain to a trusted CA without the host's name
/// (`verify-ca`), or no check of the certificate at all (`prefer`, `require`: libpq's
/// semantics). The handshake's signatures are checked either way, so the session is bound to
/// the certificate shown.
#[derive(Debug)]
struct NameUnchecked {
    /// `None`: any certificate is accepted.
    chain: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for NameUnchecked {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Whether a connection error is the TLS layer's: a failed handshake or certificate check, or
/// a server that does not offer TLS when it is required. The driver's error kind is private, so
/// this reads its fixed text for that kind.
pub fn is_tls_failure(e: &postgres::Error) -> bool {
    e.to_string().starts_with("error performing TLS handshake")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(s: &str) -> (String, SslMode, Option<RootCert>) {
        let split = split(s).unwrap();
        (split.rest, split.mode, split.root_cert)
    }

    #[test]
    fn url_options_are_taken_out_and_the_rest_kept_in_order() {
        assert_eq!(
            options(
                "postgres://u:p@h:5432/db?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca.pem"
            ),
            (
                "postgres://u:p@h:5432/db?application_name=x".to_string(),
                SslMode::VerifyFull,
                Some(RootCert::File("/etc/ca.pem".into()))
            )
        );
        assert_eq!(
            options("postgresql://h/db?sslmode=disable"),
            ("postgresql://h/db".to_string(), SslMode::Disable, None)
        );
        assert_eq!(
            options("postgres://h/db"),
            ("postgres://h/db".to_string(), SslMode::Prefer, None)
        );
    }

    #[test]
    fn dsn_options_are_taken_out_with_quotes_and_escapes() {
        assert_eq!(
            options(
                "host=h sslmode = require  password='a b\\'c' sslrootcert='/my certs/ca.pem' dbname=d"
            ),
            (
                "host=h  password='a b\\'c'  dbname=d".to_string(),
                SslMode::Require,
                Some(RootCert::File("/my certs/ca.pem".into()))
            )
        );
        assert_eq!(
            options("host=h sslrootcert=system sslmode=verify-ca"),
            (
                "host=h".to_string(),
                SslMode::VerifyCa,
                Some(RootCert::System)
            )
        );
    }

    #[test]
    fn the_rest_is_what_the_driver_parses() {
        for s in [
            "postgres://u:p@h:5432/db?sslmode=verify-full&connect_timeout=3",
            "host=h port=5 sslmode=verify-ca sslrootcert=/x user=u",
        ] {
            let rest = split(s).unwrap().rest;
            assert!(rest.parse::<postgres::Config>().is_ok(), "{rest}");
        }
    }

    #[test]
    fn last_occurrence_wins_and_unknown_modes_are_refused() {
        assert_eq!(
            options("host=h sslmode=disable sslmode=require").1,
            SslMode::Require
        );
        assert_eq!(
            split("postgres://h/db?sslmode=verify_full"),
            Err(OptionError::UnknownMode("verify_full".into()))
        );
    }

    #[test]
    fn verify_modes_need_a_readable_ca_with_certificates() {
        let missing = split("host=h sslmode=verify-full sslrootcert=/nonexistent/ca.pem").unwrap();
        let e = connector(&missing).err().unwrap().to_string();
        assert!(e.starts_with("sslrootcert=/nonexistent/ca.pem: "), "{e}");
        let dir = std::env::temp_dir().join(format!("postmand-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        let split = split(&format!(
            "host=h sslmode=verify-ca sslrootcert={}",
            empty.display()
        ))
        .unwrap();
        let e = connector(&split).err().unwrap().to_string();
        assert!(e.contains("holds no usable CA certificate"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn unverified_modes_need_no_ca() {
        for mode in ["disable", "prefer", "require"] {
            let split = split(&format!("host=h sslmode={mode}")).unwrap();
            assert!(connector(&split).is_ok(), "{mode}");
        }
    }
}
