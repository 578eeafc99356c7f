//! CA certificates read from a PEM file, once, at start-up: PostgreSQL's `sslrootcert`
//! (`db::tls`) and the endpoints' `POSTMAND_CA_FILE` (`config`, `dispatch::egress`) read them
//! the same way, so a file one accepts the other accepts too.

use std::fmt;
use std::path::Path;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

/// Why a PEM file gives no trust anchors.
#[derive(Debug)]
pub enum PemError {
    /// The file cannot be read.
    Read(std::io::Error),
    /// A block is malformed.
    Malformed(String),
    /// No `CERTIFICATE` block.
    NoCertificate,
    /// A certificate rustls cannot use as a root (1-based, in file order).
    Unusable {
        /// Its position in the file.
        index: usize,
        /// rustls' reason.
        reason: String,
    },
}

impl fmt::Display for PemError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PemError::Read(e) => write!(f, "cannot read it: {e}"),
            PemError::Malformed(e) => write!(f, "not a PEM file: {e}"),
            PemError::NoCertificate => f.write_str("no PEM certificate (BEGIN CERTIFICATE) in it"),
            PemError::Unusable { index, reason } => {
                write!(f, "certificate {index} is not usable: {reason}")
            }
        }
    }
}

/// Every `CERTIFICATE` block of the PEM file at `path`, each checked to be usable as a trust
/// anchor (rustls would otherwise skip it quietly and fail every handshake later). Other blocks
/// (a private key, a CRL) and text outside blocks are ignored, as OpenSSL's bundles have them.
pub fn read_pem(path: &Path) -> Result<Vec<CertificateDer<'static>>, PemError> {
    let pem = std::fs::read(path).map_err(PemError::Read)?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PemError::Malformed(e.to_string()))?;
    if certificates.is_empty() {
        return Err(PemError::NoCertificate);
    }
    let mut roots = rustls::RootCertStore::empty();
    for (index, der) in certificates.iter().enumerate() {
        roots.add(der.clone()).map_err(|e| PemError::Unusable {
            index: index + 1,
            reason: e.to_string(),
        })?;
    }
    Ok(certificates)
}
