//! Where the log goes. A person at a terminal gets compact lines to read; anything else
//! (a file, journald, a log collector) gets JSON lines. The access log — one JSON line per
//! request — stays JSON wherever it goes. `RUST_LOG` filters either way; without it the
//! gateway logs at `info` and Pingora's own lines at `warn`.

use std::fs::OpenOptions;
use std::io::IsTerminal;
use std::sync::Mutex;

use anyhow::Context;
use tracing_subscriber::filter::{EnvFilter, FilterExt, Targets, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

use crate::config::{AccessLog, LogFormat};

/// The target of the access log's events.
pub const ACCESS: &str = "access";

const DEFAULT_FILTER: &str = "info,pingora=warn,pingora_core=warn,pingora_proxy=warn,pingora_pool=warn,\
pingora_runtime=warn,pingora_load_balancing=warn,pingora_http=warn,pingora_error=warn";

/// Whether lines are for a person: `auto` asks whether stdout is a terminal.
pub fn is_human(format: LogFormat) -> bool {
    match format {
        LogFormat::Auto => std::io::stdout().is_terminal(),
        LogFormat::Json => false,
        LogFormat::Human => true,
    }
}

/// Logging for a running gateway: its own lines on stdout (human or JSON), the access log
/// as JSON lines to `access`.
pub fn init_gateway(human: bool, access: &AccessLog) -> anyhow::Result<()> {
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let not_access = filter_fn(|m| m.target() != ACCESS);
    let own = if human {
        fmt::layer()
            .compact()
            .with_target(false)
            .with_filter(not_access.and(filter()))
            .boxed()
    } else {
        fmt::layer()
            .json()
            .with_current_span(false)
            .with_filter(not_access.and(filter()))
            .boxed()
    };
    let only_access = || Targets::new().with_target(ACCESS, tracing::Level::INFO);
    let access = match access {
        AccessLog::Off => None,
        AccessLog::Stdout => Some(
            fmt::layer()
                .json()
                .with_current_span(false)
                .with_filter(only_access().and(filter()))
                .boxed(),
        ),
        AccessLog::File(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            }
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("opening the access log {}", path.display()))?;
            Some(
                fmt::layer()
                    .json()
                    .with_current_span(false)
                    .with_ansi(false)
                    .with_writer(Mutex::new(file))
                    .with_filter(only_access().and(filter()))
                    .boxed(),
            )
        }
    };
    tracing_subscriber::registry()
        .with(own)
        .with(access)
        .try_init()
        .context("logging was already set up")
}

/// Logging for one-shot commands: stdout is kept for their output; warnings go to stderr.
pub fn init_command() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
