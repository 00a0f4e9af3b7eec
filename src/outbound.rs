//! The gateway's outbound HTTP client: back-channel logout to relying parties (and, with
//! federation, discovery, JWKS and token requests to identity providers). Names under
//! `.localhost` resolve to loopback (RFC 6761) whatever the system resolver does; short
//! timeouts; no redirects followed (a redirect is an answer, not an instruction).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(LoopbackFirst))
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .user_agent(concat!("poolgate/", env!("CARGO_PKG_VERSION")))
        .no_proxy()
        .build()
        .unwrap_or_default()
}

/// `localhost` and `*.localhost` are loopback (RFC 6761 §6.3); everything else goes to
/// the system resolver.
struct LoopbackFirst;

impl Resolve for LoopbackFirst {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().trim_end_matches('.').to_ascii_lowercase();
        Box::pin(async move {
            if host == "localhost" || host.ends_with(".localhost") {
                let addrs: Addrs = Box::new(
                    [
                        SocketAddr::from(([127, 0, 0, 1], 0)),
                        SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], 0)),
                    ]
                    .into_iter(),
                );
                return Ok(addrs);
            }
            let found: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let addrs: Addrs = Box::new(found.into_iter());
            Ok(addrs)
        })
    }
}
