//! `poolgate demo`: the gateway on `config/demo.toml` with a whoami upstream in the same
//! process, development certificates made on first run. Nothing to install.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;

use crate::config::Config;
use crate::{server, tls, whoami};

/// Where the demo's apps expect their upstream (see `config/demo.toml`).
pub const WHOAMI_ADDR: &str = "127.0.0.1:9001";

pub fn run(config_path: &Path) -> anyhow::Result<()> {
    let config = Config::load(config_path)?;
    if config.listen.https.is_some() && !tls::dev::present(&config) {
        let made = tls::dev::issue(&config)?;
        println!(
            "Made development certificates for {} hosts, signed by {}",
            made.hosts,
            made.ca_cert.display()
        );
    }

    let addr: SocketAddr = WHOAMI_ADDR.parse()?;
    let listener =
        std::net::TcpListener::bind(addr).with_context(|| format!("the demo's whoami upstream needs {addr}"))?;
    listener.set_nonblocking(true)?;
    std::thread::Builder::new().name("whoami".into()).spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
        match rt {
            Ok(rt) => rt.block_on(async move {
                match tokio::net::TcpListener::from_std(listener) {
                    Ok(l) => {
                        if let Err(e) = whoami::serve(l).await {
                            tracing::error!(error = %e, "whoami stopped");
                        }
                    }
                    Err(e) => tracing::error!(error = %e, "whoami could not listen"),
                }
            }),
            Err(e) => tracing::error!(error = %e, "whoami could not start"),
        }
    })?;

    print_welcome(&config);
    server::serve(config_path)
}

fn print_welcome(config: &Config) {
    let http_port = config.listen.http.map(|a| a.port());
    let https_port = config.listen.https.map(|a| a.port());
    println!("\npoolgate demo — two pools, one app each, a whoami upstream on {WHOAMI_ADDR}\n");
    for pool in &config.pools {
        println!("pool {} ({})", pool.id, pool.name);
        let mut hosts = vec![("portal", &pool.portal)];
        hosts.extend(
            pool.apps
                .iter()
                .flat_map(|a| a.hosts.iter().map(move |h| (a.id.as_str(), h))),
        );
        for (what, host) in hosts {
            if let Some(p) = http_port {
                println!("  {what:<8} http://{host}:{p}/");
            }
            if let Some(p) = https_port {
                println!("  {what:<8} https://{host}:{p}/");
            }
        }
    }
    println!(
        "\nFor https, trust {}/dev-ca.pem (or pass it to curl with --cacert).\nAdmin: http://{}/metrics   Stop: Ctrl-C\n",
        config.certs_dir.display(),
        config.admin.listen
    );
}
