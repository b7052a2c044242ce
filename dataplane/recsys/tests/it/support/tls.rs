//! Test certificates and HTTPS clients: a CA with one leaf it signed (rcgen), a GET that
//! verifies the server as a careful client would, and one that does not, as the kubelet's
//! HTTPS probes do not.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A CA and a leaf certificate it signed for some DNS names, as PEM.
pub struct Pki {
    pub ca: String,
    pub cert: String,
    pub key: String,
}

/// A CA called after `name` and a leaf for `names`.
pub fn pki_for(name: &str, names: &[&str]) -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{name} test CA"));
    let ca = params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    Pki {
        ca: ca.pem(),
        cert: leaf.pem(),
        key: key.serialize_pem(),
    }
}

/// A CA and a `localhost` certificate.
pub fn pki(name: &str) -> Pki {
    pki_for(name, &["localhost"])
}

/// Accepts any certificate (signatures still checked): the kubelet's HTTPS probe skips
/// verification, so the stand-in kubelet must as well.
#[derive(Debug)]
struct AnyCertificate;

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
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
            &recsys_serving::serving::tls::provider().signature_verification_algorithms,
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
            &recsys_serving::serving::tls::provider().signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        recsys_serving::serving::tls::provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Whom a client trusts.
pub enum Trust<'a> {
    /// Only this CA (PEM), and the server must be `domain`.
    Ca { pem: &'a str, domain: &'a str },
    /// Anyone (the kubelet's probes).
    Anyone,
}

/// GET `path` over HTTPS/1.1 (offering h2 too, as Go's client does): (status, body), or the
/// reason the connection or handshake failed.
pub async fn https_get(
    addr: SocketAddr,
    trust: Trust<'_>,
    path: &str,
) -> Result<(u16, String), String> {
    let builder =
        rustls::ClientConfig::builder_with_provider(recsys_serving::serving::tls::provider())
            .with_safe_default_protocol_versions()
            .unwrap();
    let (mut config, domain) = match trust {
        Trust::Ca { pem, domain } => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_pki_types::pem::PemObject::pem_slice_iter(pem.as_bytes()) {
                roots.add(cert.unwrap()).unwrap();
            }
            (
                builder.with_root_certificates(roots).with_no_client_auth(),
                domain.to_owned(),
            )
        }
        Trust::Anyone => (
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate))
                .with_no_client_auth(),
            // The kubelet dials the pod IP.
            addr.ip().to_string(),
        ),
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let name = ServerName::try_from(domain.clone()).map_err(|e| e.to_string())?;
    let mut tls = connector
        .connect(name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {domain}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .map_err(|e| format!("write: {e}"))?;
    let mut text = String::new();
    let _ = tls.read_to_string(&mut text).await;
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("no HTTP status in {text:?}"))?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or(String::new(), |(_, b)| b.to_owned());
    Ok((status, body))
}
