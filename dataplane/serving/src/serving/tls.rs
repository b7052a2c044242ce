//! TLS for the gRPC and HTTP fronts (rustls). The certificate and key are files (a mounted
//! Secret, as cert-manager writes them); they are re-read when their bytes change, at most once
//! a second and only on a new handshake, so a rotation is picked up without a restart and a
//! half-written pair keeps the last good one serving.

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const RECHECK: Duration = Duration::from_secs(1);

/// The crypto provider every TLS endpoint and client of this process uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Makes ring the process default, for libraries that build their own client configs (the
/// Redis client). Idempotent.
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

struct Current {
    checked: Instant,
    raw: (Vec<u8>, Vec<u8>),
    key: Arc<CertifiedKey>,
}

/// A certificate chain and key read from PEM files, reloaded when they change.
#[derive(Debug)]
pub struct CertFiles {
    cert: PathBuf,
    key: PathBuf,
    current: Mutex<Current>,
}

impl std::fmt::Debug for Current {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Current").finish_non_exhaustive()
    }
}

fn certified(cert_pem: &[u8], key_pem: &[u8]) -> anyhow::Result<Arc<CertifiedKey>> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("certificate PEM: {e}"))?;
    if chain.is_empty() {
        anyhow::bail!("the certificate file holds no certificate");
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem)
        .map_err(|e| anyhow::anyhow!("private key PEM: {e}"))?;
    let signing = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| anyhow::anyhow!("private key: {e}"))?;
    let certified = CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| anyhow::anyhow!("the key does not belong to the certificate: {e}"))?;
    Ok(Arc::new(certified))
}

fn read_pair(cert: &Path, key: &Path) -> anyhow::Result<(Vec<u8>, Vec<u8>)> {
    let c = std::fs::read(cert).map_err(|e| anyhow::anyhow!("{}: {e}", cert.display()))?;
    let k = std::fs::read(key).map_err(|e| anyhow::anyhow!("{}: {e}", key.display()))?;
    Ok((c, k))
}

impl CertFiles {
    /// Reads and checks the pair now: a bad pair fails start-up.
    pub fn open(cert: &Path, key: &Path) -> anyhow::Result<Self> {
        let raw = read_pair(cert, key)?;
        let certified = certified(&raw.0, &raw.1)
            .map_err(|e| anyhow::anyhow!("{} / {}: {e:#}", cert.display(), key.display()))?;
        Ok(Self {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: Mutex::new(Current {
                checked: Instant::now(),
                raw,
                key: certified,
            }),
        })
    }

    fn current(&self) -> Arc<CertifiedKey> {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if current.checked.elapsed() >= RECHECK {
            current.checked = Instant::now();
            match read_pair(&self.cert, &self.key) {
                Ok(raw) if raw != current.raw => match certified(&raw.0, &raw.1) {
                    Ok(key) => {
                        tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
                        current.key = key;
                        current.raw = raw;
                    }
                    // Cert and key are written one after the other: the pair may not match
                    // for a moment. The next handshake looks again.
                    Err(e) => {
                        tracing::warn!(error = %format!("{e:#}"), "new TLS files refused; the previous certificate stays")
                    }
                },
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %format!("{e:#}"), "TLS files unreadable; the previous certificate stays")
                }
            }
        }
        Arc::clone(&current.key)
    }
}

impl ResolvesServerCert for CertFiles {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// A server config answering with `files`, offering `alpn` (`h2` for gRPC, `http/1.1`).
pub fn server_config(
    files: Arc<CertFiles>,
    alpn: &[&[u8]],
) -> anyhow::Result<Arc<rustls::ServerConfig>> {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(files);
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(name: &str) -> (String, String) {
        let c = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        (c.cert.pem(), c.key_pair.serialize_pem())
    }

    #[test]
    fn a_changed_pair_is_served_and_a_broken_one_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
        let (c1, k1) = pair("one.test");
        std::fs::write(&cert, &c1).unwrap();
        std::fs::write(&key, &k1).unwrap();
        let files = CertFiles::open(&cert, &key).unwrap();
        let first = files.current().cert[0].clone();
        // Half a rotation: the new certificate with the old key is refused.
        let (c2, k2) = pair("two.test");
        std::fs::write(&cert, &c2).unwrap();
        std::thread::sleep(RECHECK + Duration::from_millis(50));
        assert_eq!(files.current().cert[0], first);
        std::fs::write(&key, &k2).unwrap();
        std::thread::sleep(RECHECK + Duration::from_millis(50));
        assert_ne!(files.current().cert[0], first);
        // A mismatched pair fails start-up with a reason.
        std::fs::write(&key, &k1).unwrap();
        let e = CertFiles::open(&cert, &key).unwrap_err().to_string();
        assert!(e.contains("does not belong"), "{e}");
    }
}
