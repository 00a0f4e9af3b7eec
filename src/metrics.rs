//! Prometheus metrics, labelled by pool and app. Label values come from the config only
//! (never from requests), so their number is bounded by what the operator wrote.

use std::time::Duration;

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

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

    /// One app's handles. Resolving labels hashes them and takes a lock; a request does
    /// neither once its route holds these.
    pub fn for_app(&self, pool: &str, app: &str) -> AppMetrics {
        AppMetrics {
            active: self.active.with_label_values(&[pool, app]),
            requests: CLASSES.map(|class| self.requests.with_label_values(&[pool, app, class])),
            upstream_seconds: self.upstream_seconds.with_label_values(&[pool, app]),
        }
    }

    /// A request that reached no app (a portal page, an unknown host).
    pub fn request_finished(&self, pool: &str, app: &str, status: u16, upstream: Option<Duration>) {
        self.requests
            .with_label_values(&[pool, app, CLASSES[class(status)]])
            .inc();
        if let Some(d) = upstream {
            self.upstream_seconds
                .with_label_values(&[pool, app])
                .observe(d.as_secs_f64());
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

/// Status classes, as the `status` label spells them.
const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];

fn class(status: u16) -> usize {
    match status {
        100..=599 => usize::from(status / 100 - 1),
        _ => 5,
    }
}

/// The metrics of one app, labels resolved.
pub struct AppMetrics {
    active: IntGauge,
    requests: [IntCounter; 6],
    upstream_seconds: Histogram,
}

impl AppMetrics {
    pub fn started(&self) {
        self.active.inc();
    }

    pub fn finished(&self, status: u16, upstream: Option<Duration>, was_active: bool) {
        self.requests[class(status)].inc();
        if let Some(d) = upstream {
            self.upstream_seconds.observe(d.as_secs_f64());
        }
        if was_active {
            self.active.dec();
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_apps_handles_count_under_its_labels() {
        let metrics = Metrics::new();
        let app = metrics.for_app("employees", "wiki");
        app.started();
        app.finished(204, Some(Duration::from_millis(2)), true);
        app.finished(503, None, false);
        app.finished(0, None, false);
        metrics.request_finished(NONE, NONE, 421, None);
        let text = metrics.render();
        for line in [
            r#"poolgate_requests_total{app="wiki",pool="employees",status="2xx"} 1"#,
            r#"poolgate_requests_total{app="wiki",pool="employees",status="5xx"} 1"#,
            r#"poolgate_requests_total{app="wiki",pool="employees",status="none"} 1"#,
            r#"poolgate_requests_total{app="-",pool="-",status="4xx"} 1"#,
            r#"poolgate_active_requests{app="wiki",pool="employees"} 0"#,
            r#"poolgate_upstream_seconds_count{app="wiki",pool="employees"} 1"#,
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
    }
}
