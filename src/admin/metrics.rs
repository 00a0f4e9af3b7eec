//! Prometheus metrics, labelled by pool and app. Label values come from the config only
//! (never from requests), so their number is bounded by what the operator wrote.

use std::time::Duration;

use prometheus::{Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

/// Label value for requests that matched no pool or app.
pub const NONE: &str = "-";

pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    upstream_seconds: HistogramVec,
    active: IntGaugeVec,
    reloads: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "poolgate_requests_total",
                "Requests answered, by pool, app and status class",
            ),
            &["pool", "app", "status"],
        )
        .expect("static metric definition");
        let upstream_seconds = HistogramVec::new(
            HistogramOpts::new(
                "poolgate_upstream_seconds",
                "Time from choosing an upstream server to its response headers",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["pool", "app"],
        )
        .expect("static metric definition");
        let active = IntGaugeVec::new(
            Opts::new("poolgate_active_requests", "Requests in flight, by pool and app"),
            &["pool", "app"],
        )
        .expect("static metric definition");
        let reloads = IntCounterVec::new(
            Opts::new("poolgate_config_reloads_total", "Configuration reloads, by outcome"),
            &["outcome"],
        )
        .expect("static metric definition");
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(upstream_seconds.clone()),
            Box::new(active.clone()),
            Box::new(reloads.clone()),
        ] {
            registry.register(c).expect("metric names are distinct");
        }
        Metrics {
            registry,
            requests,
            upstream_seconds,
            active,
            reloads,
        }
    }

    pub fn request_started(&self, pool: &str, app: &str) {
        self.active.with_label_values(&[pool, app]).inc();
    }

    pub fn request_finished(&self, pool: &str, app: &str, status: u16, upstream: Option<Duration>, was_active: bool) {
        let class = match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            500..=599 => "5xx",
            _ => "none",
        };
        self.requests.with_label_values(&[pool, app, class]).inc();
        if let Some(d) = upstream {
            self.upstream_seconds
                .with_label_values(&[pool, app])
                .observe(d.as_secs_f64());
        }
        if was_active {
            self.active.with_label_values(&[pool, app]).dec();
        }
    }

    pub fn reloaded(&self, ok: bool) {
        self.reloads
            .with_label_values(&[if ok { "ok" } else { "refused" }])
            .inc();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
