//! `poolgate certs dev`: a local CA and one certificate per host of a config, for the demo
//! and for tests. Keys are written with mode 0600 and never committed.

use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};

use crate::config::Config;

const CA_NAME: &str = "poolgate development CA";

/// What `issue` wrote.
pub struct DevCerts {
    pub ca_cert: PathBuf,
    /// Certificates written (hosts and wildcards).
    pub hosts: usize,
}

/// Issues a certificate for every host of `config` under its certs directory, signed by a
/// development CA kept in the same directory (created on first use, reused after).
pub fn issue(config: &Config) -> anyhow::Result<DevCerts> {
    let dir = &config.certs_dir;
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let ca_cert = dir.join("dev-ca.pem");
    let ca_key_path = dir.join("dev-ca.key");

    let ca_params = ca_params()?;
    let ca_key = if ca_key_path.exists() && ca_cert.exists() {
        let pem = fs::read_to_string(&ca_key_path).with_context(|| format!("reading {}", ca_key_path.display()))?;
        KeyPair::from_pem(&pem).context("the dev CA key is not a valid PEM key")?
    } else {
        let key = KeyPair::generate()?;
        let cert = ca_params.self_signed(&key)?;
        write(&ca_cert, cert.pem().as_bytes(), 0o644)?;
        write(&ca_key_path, key.serialize_pem().as_bytes(), 0o600)?;
        key
    };
    let issuer = Issuer::new(ca_params, ca_key);

    let mut hosts = 0;
    for (name, (cert_path, key_path)) in names(config) {
        if let Some(parent) = cert_path.parent() {
            fs::create_dir_all(parent)?;
        }
        let mut params = CertificateParams::new(vec![name.clone()])?;
        params.distinguished_name.push(DnType::CommonName, name.as_str());
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &issuer)?;
        write(&cert_path, cert.pem().as_bytes(), 0o644)?;
        write(&key_path, key.serialize_pem().as_bytes(), 0o600)?;
        hosts += 1;
    }
    Ok(DevCerts { ca_cert, hosts })
}

/// Whether every certificate `issue` would write is already on disk.
pub fn present(config: &Config) -> bool {
    names(config).iter().all(|(_, (c, k))| c.exists() && k.exists())
}

/// Each host, and a wildcard for each parent domain, so hosts added at run time (through
/// the admin API) under the same domain are covered too; with where each one goes.
fn names(config: &Config) -> Vec<(String, (PathBuf, PathBuf))> {
    let mut names: Vec<(String, (PathBuf, PathBuf))> =
        config.hosts().map(|h| (h.to_string(), config.cert_paths(h))).collect();
    for host in config.hosts() {
        if let (Some(parent), Some(paths)) = (crate::config::wildcard_parent(host), config.wildcard_cert_paths(host)) {
            let name = format!("*.{parent}");
            if !names.iter().any(|(n, _)| *n == name) {
                names.push((name, paths));
            }
        }
    }
    names
}

fn ca_params() -> anyhow::Result<CertificateParams> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, CA_NAME);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    Ok(params)
}

fn write(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(bytes)?;
    Ok(())
}
