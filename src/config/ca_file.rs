//! `POSTMAND_CA_FILE`: PEM certificates that https endpoints may chain to, on top of the
//! system's roots. Read and checked once, while the configuration is built, so a file that is
//! missing, unreadable, holds no certificate, or holds one rustls cannot use as a root stops
//! the process at start-up (exit 2, the file named) instead of failing every https attempt
//! later with `UnknownIssuer`.

use std::path::{Path, PathBuf};

use super::Error;

/// The variable this module reads.
const NAME: &str = "POSTMAND_CA_FILE";

/// A CA file as read at start-up.
#[derive(Clone, PartialEq, Eq)]
pub struct CaFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// Its certificates, DER-encoded, in file order; at least one.
    pub certificates: Vec<Vec<u8>>,
}

impl std::fmt::Debug for CaFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:?} ({} certificates)",
            self.path,
            self.certificates.len()
        )
    }
}

/// Reads the PEM file at `path` (see [`crate::tls_roots::read_pem`]).
pub(super) fn read(path: &Path) -> Result<CaFile, Error> {
    let certificates = crate::tls_roots::read_pem(path).map_err(|e| Error::File {
        name: NAME,
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    Ok(CaFile {
        path: path.to_path_buf(),
        certificates: certificates.iter().map(|der| der.to_vec()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, contents: &[u8]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("postmand-ca-file-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    fn reason(path: &Path) -> String {
        match read(path) {
            Err(Error::File { name, reason, .. }) => {
                assert_eq!(name, NAME);
                reason
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn missing_file_is_an_error_naming_it() {
        let path = Path::new("/nonexistent/postmand-ca.pem");
        let e = read(path).unwrap_err();
        assert_eq!(
            e.to_string(),
            "POSTMAND_CA_FILE=\"/nonexistent/postmand-ca.pem\": cannot read it: \
             No such file or directory (os error 2)"
        );
    }

    #[test]
    fn file_without_certificates_is_an_error() {
        assert_eq!(
            reason(&file("empty.pem", b"")),
            "no PEM certificate (BEGIN CERTIFICATE) in it"
        );
        assert_eq!(
            reason(&file("text.pem", b"just some text\n")),
            "no PEM certificate (BEGIN CERTIFICATE) in it"
        );
        let key =
            b"-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n";
        assert_eq!(
            reason(&file("key.pem", key)),
            "no PEM certificate (BEGIN CERTIFICATE) in it"
        );
    }

    #[test]
    fn certificate_rustls_cannot_use_is_an_error() {
        let garbage = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let reason = reason(&file("garbage.pem", garbage));
        assert!(
            reason.starts_with("certificate 1 is not usable: "),
            "{reason}"
        );
    }

    #[test]
    fn every_certificate_is_read_and_other_blocks_skipped() {
        let ca = |name: &str| {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(Vec::new()).unwrap();
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, name);
            (params.self_signed(&key).unwrap(), key)
        };
        let (first, key) = ca("first");
        let (second, _) = ca("second");
        let pem = format!(
            "Bundle comment\n{}{}{}",
            first.pem(),
            key.serialize_pem(),
            second.pem()
        );
        let path = file("bundle.pem", pem.as_bytes());
        assert_eq!(
            read(&path).unwrap(),
            CaFile {
                path: path.clone(),
                certificates: vec![first.der().to_vec(), second.der().to_vec()],
            }
        );
    }
}
