//! The `poolgate` command line: serve, check, demo, whoami, certs.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

use poolgate::cli;

/// mimalloc: Pingora allocates per request across threads; glibc's allocator costs it
/// measurably more CPU per request (see benches/load and the README).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use poolgate::config::Config;

#[derive(Parser)]
#[command(
    name = "poolgate",
    version,
    about = "A federation gateway: host → user pool → signed-in upstream"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve {
        #[arg(long, short, default_value = "poolgate.toml")]
        config: PathBuf,
    },
    /// Validate a config file and print every error with its line.
    Check {
        #[arg(long, short, default_value = "poolgate.toml")]
        config: PathBuf,
    },
    /// Run the demo: two pools, a whoami upstream, on *.localhost names.
    Demo {
        #[arg(long, short, default_value = "config/demo.toml")]
        config: PathBuf,
    },
    /// An upstream that answers with what it received (method, path, headers).
    Whoami {
        #[arg(long, default_value = "127.0.0.1:9001")]
        listen: std::net::SocketAddr,
    },
    /// The store's pools.
    Pool {
        #[arg(long, short, global = true, default_value = "poolgate.toml")]
        config: PathBuf,
        #[command(subcommand)]
        command: cli::PoolCommand,
    },
    /// Users of a pool: add, list, disable, enable, unlock, passwd, import.
    User {
        #[arg(long, short, global = true, default_value = "poolgate.toml")]
        config: PathBuf,
        #[command(subcommand)]
        command: cli::UserCommand,
    },
    /// A pool's signing keys.
    Keys {
        #[arg(long, short, global = true, default_value = "poolgate.toml")]
        config: PathBuf,
        #[command(subcommand)]
        command: cli::KeysCommand,
    },
    /// Certificates.
    Certs {
        #[command(subcommand)]
        command: CertsCommand,
    },
}

#[derive(Subcommand)]
enum CertsCommand {
    /// Make a development CA and a certificate for every host of a config.
    Dev {
        #[arg(long, short, default_value = "config/demo.toml")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A running gateway logs JSON lines (the access log among them) to stdout; the
    // one-shot commands keep stdout for their output and only warn on stderr.
    let serving = matches!(
        cli.command,
        Command::Serve { .. } | Command::Demo { .. } | Command::Whoami { .. }
    );
    init_logging(serving);
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("poolgate: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Serve { config } => {
            poolgate::server::serve(&config)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { config } => {
            let loaded = Config::load(&config).map_err(|e| e.to_string()).and_then(|c| {
                poolgate::tls::CertStore::load(&c)
                    .map(|_| c)
                    .map_err(|e| format!("{}: TLS: {e}", config.display()))
            });
            match loaded {
                Ok(c) => {
                    let apps: usize = c.pools.iter().map(|p| p.apps.len()).sum();
                    println!("{}: ok ({} pools, {} apps)", config.display(), c.pools.len(), apps);
                    Ok(ExitCode::SUCCESS)
                }
                Err(report) => {
                    eprintln!("{report}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Command::Demo { config } => {
            poolgate::demo::run(&config)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Whoami { listen } => {
            let rt = tokio::runtime::Runtime::new()?;
            rt.block_on(async {
                let listener = tokio::net::TcpListener::bind(listen)
                    .await
                    .with_context(|| format!("binding {listen}"))?;
                eprintln!("whoami listening on http://{}", listener.local_addr()?);
                poolgate::whoami::serve(listener).await?;
                anyhow::Ok(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Pool { config, command } => {
            runtime()?.block_on(cli::pool(&config, command))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::User { config, command } => {
            runtime()?.block_on(cli::user(&config, command))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Keys { config, command } => {
            runtime()?.block_on(cli::keys(&config, command))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Certs {
            command: CertsCommand::Dev { config },
        } => {
            let config = Config::load(&config)?;
            let made = poolgate::tls::dev::issue(&config)?;
            println!(
                "{} host certificates under {}; trust {} to use them",
                made.hosts,
                config.certs_dir.display(),
                made.ca_cert.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build()
}

/// `RUST_LOG` filters either way.
fn init_logging(serving: bool) {
    if serving {
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_current_span(false)
            .init();
    } else {
        let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
}
