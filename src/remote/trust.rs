//! Which certificate authorities a TLS server (`https://`, `grpcs://`) must chain to. By
//! default the public web's (webpki-roots, compiled in: a board's own store may be missing
//! or stale). A site's own server usually has a certificate from the site's own CA, which
//! no public root signs: `--ca-cert FILE` names that CA instead, as curl's `--cacert` does
//! (it replaces the public roots rather than adding to them, so a board trusts exactly
//! what its operator named).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, Result};

/// The root certificates of a PEM file: the only roots a server's certificate may chain to.
/// Read and checked once; cheap to clone (every client of the process shares them).
#[derive(Clone)]
pub struct TrustRoots {
    /// Where they came from, for messages.
    path: PathBuf,
    /// Each certificate, DER-encoded (ureq's TLS configuration takes these).
    certs: Arc<Vec<ureq::tls::Certificate<'static>>>,
    /// The file as read (tonic's TLS configuration parses PEM itself).
    pem: Arc<Vec<u8>>,
}

impl TrustRoots {
    /// The certificates of the PEM file at `path`: at least one, every PEM section readable
    /// (a private key in the file is ignored).
    pub fn from_pem_file(path: &Path) -> Result<TrustRoots> {
        let pem = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        let bad = |what: String| {
            Error::InvalidArgument(format!("CA certificates {}: {what}", path.display()))
        };
        let mut certs = Vec::new();
        for item in ureq::tls::parse_pem(&pem) {
            match item.map_err(|e| bad(format!("not PEM ({e})")))? {
                ureq::tls::PemItem::Certificate(c) => certs.push(c),
                _ => continue,
            }
        }
        if certs.is_empty() {
            return Err(bad(
                "no certificate in it (a PEM file with `-----BEGIN CERTIFICATE-----`)".into(),
            ));
        }
        Ok(TrustRoots {
            path: path.to_path_buf(),
            certs: Arc::new(certs),
            pem: Arc::new(pem),
        })
    }

    /// How many certificates the file holds.
    pub fn len(&self) -> usize {
        self.certs.len()
    }

    /// Never true: a `TrustRoots` holds at least one certificate.
    pub fn is_empty(&self) -> bool {
        self.certs.is_empty()
    }

    /// ureq's TLS settings trusting exactly these roots.
    pub(crate) fn rest(&self) -> ureq::tls::TlsConfig {
        ureq::tls::TlsConfig::builder()
            .root_certs(ureq::tls::RootCerts::new_with_certs(&self.certs))
            .build()
    }

    /// tonic's TLS settings trusting exactly these roots.
    pub(crate) fn grpc(&self) -> tonic::transport::ClientTlsConfig {
        tonic::transport::ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(self.pem.as_slice()))
    }
}

impl PartialEq for TrustRoots {
    fn eq(&self, other: &Self) -> bool {
        self.pem == other.pem
    }
}

impl Eq for TrustRoots {}

impl std::fmt::Debug for TrustRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TrustRoots({} certificate(s) from {})",
            self.certs.len(),
            self.path.display()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/tls")
            .join(name)
    }

    #[test]
    fn roots_are_read_from_pem_and_a_file_without_one_is_refused() {
        let roots = TrustRoots::from_pem_file(&fixture("ca.pem")).unwrap();
        assert_eq!(roots.len(), 1);
        assert!(format!("{roots:?}").contains("1 certificate(s) from"));
        // The server's chain file holds the leaf and the CA: two certificates.
        assert_eq!(
            TrustRoots::from_pem_file(&fixture("server-chain.pem"))
                .unwrap()
                .len(),
            2
        );
        // A key alone is no root.
        let e = TrustRoots::from_pem_file(&fixture("server.key"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no certificate in it"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "just words\n").unwrap();
        let e = TrustRoots::from_pem_file(&text).unwrap_err().to_string();
        assert!(e.contains("no certificate in it"), "{e}");
        let broken = dir.path().join("broken.pem");
        std::fs::write(
            &broken,
            "-----BEGIN CERTIFICATE-----\nnot base64 at all!\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let e = TrustRoots::from_pem_file(&broken).unwrap_err().to_string();
        assert!(e.contains("not PEM"), "{e}");
        let e = TrustRoots::from_pem_file(&dir.path().join("missing.pem")).unwrap_err();
        assert!(e.to_string().contains("missing.pem"), "{e}");
    }
}
