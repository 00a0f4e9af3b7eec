//! An app's upstream servers: round-robin selection over the healthy ones, with active
//! health checks that the [`HealthChecker`](crate::server) drives on each app's interval.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use pingora::lb::LoadBalancer;
use pingora::lb::health_check::{HttpHealthCheck, TcpHealthCheck};
use pingora::lb::selection::RoundRobin;

use crate::config::{App, HealthCheck};

pub struct Upstream {
    lb: LoadBalancer<RoundRobin>,
    addrs: Vec<String>,
    health: HealthCheck,
    last_check: Mutex<Option<Instant>>,
}

impl Upstream {
    /// Resolves the app's addresses (names are looked up once, here).
    pub fn new(app: &App) -> std::io::Result<Upstream> {
        let mut lb = LoadBalancer::<RoundRobin>::try_from_iter(app.upstreams.iter().map(String::as_str))?;
        let check: Box<dyn pingora::lb::health_check::HealthCheck + Send + Sync> = match &app.health_check.http_path {
            None => TcpHealthCheck::new(),
            Some(path) => {
                let mut hc = HttpHealthCheck::new("localhost", false);
                hc.req.set_uri(path.parse().map_err(std::io::Error::other)?);
                Box::new(hc)
            }
        };
        lb.set_health_check(check);
        lb.health_check_frequency = Some(app.health_check.interval);
        Ok(Upstream {
            lb,
            addrs: app.upstreams.clone(),
            health: app.health_check.clone(),
            last_check: Mutex::new(None),
        })
    }

    /// The next healthy server, round-robin; `None` when every one is down.
    pub fn select(&self) -> Option<SocketAddr> {
        let backend = self.lb.select(b"", 256)?;
        backend.addr.as_inet().copied()
    }

    /// What makes two apps' upstreams the same: servers and checks.
    pub fn key(&self) -> (Vec<String>, HealthCheck) {
        (self.addrs.clone(), self.health.clone())
    }

    /// Runs the health check if its interval has passed since the last one.
    pub async fn check_if_due(&self, now: Instant) {
        let due = {
            let Ok(mut last) = self.last_check.lock() else {
                return;
            };
            let due = last.is_none_or(|t| now.duration_since(t) >= self.health.interval);
            if due {
                *last = Some(now);
            }
            due
        };
        if due {
            self.lb.backends().run_health_check(true).await;
        }
    }

    /// Each server, and whether the last health check found it up (one not checked yet
    /// counts as up, as the proxy treats it).
    pub fn health(&self) -> Vec<(String, bool)> {
        let backends = self.lb.backends();
        let servers = backends.get_backend();
        servers
            .iter()
            .map(|b| (b.addr.to_string(), backends.ready(b)))
            .collect()
    }

    pub fn interval(&self) -> Duration {
        self.health.interval
    }
}
