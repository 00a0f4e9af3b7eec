//! TLS termination with rustls: one certificate per host, chosen by SNI from the live
//! snapshot (so a reload can bring new certificates), and the SNI kept for the proxy to
//! check against `Host`.

pub mod dev;

use std::any::Any;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use pingora::listeners::TlsAccept;
use pingora::listeners::tls::TlsSettings;
use pingora::protocols::tls::TlsRef;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use crate::config::Config;
use crate::ids::Host;

/// Certificates of every host of a snapshot, loaded from `<certs>/<host>/{cert,key}.pem`,
/// or else from the wildcard directory of its parent domain, `<certs>/*.<parent>/`.
#[derive(Default)]
pub struct CertStore {
    by_host: HashMap<Host, Arc<CertifiedKey>>,
}

/// A host of the config with no usable certificate: it is not served over HTTPS.
#[derive(Debug, Clone)]
pub struct MissingCert {
    pub host: Host,
    pub reason: String,
}

impl std::fmt::Display for MissingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "host {}: {}", self.host, self.reason)
    }
}

impl CertStore {
    /// Loads a certificate for every host when an HTTPS listener is configured. A host
    /// whose certificate is missing or unreadable does not stop the others: it keeps the
    /// one `previous` served (a reload never takes a working certificate away), or else
    /// goes without, and is reported.
    pub fn load(config: &Config, previous: Option<&CertStore>) -> (CertStore, Vec<MissingCert>) {
        let mut by_host = HashMap::new();
        let mut missing = Vec::new();
        if config.listen.https.is_none() {
            return (CertStore { by_host }, missing);
        }
        let provider = rustls::crypto::ring::default_provider();
        for host in config.hosts() {
            let exact = config.cert_paths(host);
            let paths = match config.wildcard_cert_paths(host) {
                Some(wild) if !exact.0.exists() && wild.0.exists() => wild,
                _ => exact,
            };
            match load_pair(&paths.0, &paths.1, &provider) {
                Ok(ck) => {
                    by_host.insert(host.clone(), Arc::new(ck));
                }
                Err(reason) => {
                    if let Some(kept) = previous.and_then(|p| p.get(host.as_str())) {
                        by_host.insert(host.clone(), kept);
                    }
                    missing.push(MissingCert {
                        host: host.clone(),
                        reason,
                    });
                }
            }
        }
        (CertStore { by_host }, missing)
    }

    /// The certificate for a normalised host name, if one covers it.
    pub fn get(&self, host: &str) -> Option<Arc<CertifiedKey>> {
        self.by_host.get(host).cloned()
    }
}

fn load_pair(
    cert_path: &Path,
    key_path: &Path,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<CertifiedKey, String> {
    let chain = CertificateDer::pem_file_iter(cert_path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", cert_path.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in the file", cert_path.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key_path).map_err(|e| format!("{}: {e}", key_path.display()))?;
    CertifiedKey::from_der(chain, key, provider).map_err(|e| format!("{}: {e}", cert_path.display()))
}

/// The certificate for a normalised host name, from the certificates in force (they
/// change with every reload, so the listener asks each time).
pub type CertLookup = dyn Fn(&str) -> Option<Arc<CertifiedKey>> + Send + Sync;

/// Picks the certificate by SNI. No SNI, or an unknown name, gets no certificate: there is
/// no default host, as there is no default pool.
struct SniResolver(Box<CertLookup>);

impl std::fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SniResolver")
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let host = Host::parse(hello.server_name()?).ok()?;
        (self.0)(host.as_str())
    }
}

/// The SNI a TLS connection was opened with, as the proxy reads it from the session.
pub struct Sni(pub String);

struct CaptureSni;

#[async_trait]
impl TlsAccept for CaptureSni {
    async fn handshake_complete_callback(&self, tls: &TlsRef) -> Option<Arc<dyn Any + Send + Sync>> {
        let name = tls.server_name()?.to_owned();
        Some(Arc::new(Sni(name)))
    }
}

/// Listener settings: certificates by SNI from `certs`, h2 and HTTP/1.1 by ALPN.
pub fn listener_settings(certs: Box<CertLookup>) -> pingora::Result<TlsSettings> {
    let mut settings = TlsSettings::with_callbacks(Box::new(CaptureSni))?;
    settings.set_cert_resolver(Arc::new(SniResolver(certs)));
    settings.enable_h2();
    Ok(settings)
}
