//! The `poolgate` command line: serve, check, demo, whoami, certs.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use poolgate::config::{AccessLog, LogFormat};
use poolgate::{cli, logging};

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
        /// Log lines for a person or JSON; overrides `[log] format` (default: human on a
        /// terminal, JSON otherwise).
        #[arg(long, value_enum)]
        log_format: Option<LogFormat>,
        /// Take over from the running gateway (`[server] pid_file`) without dropping a
        /// request: it hands over its listening sockets, drains and exits.
        #[arg(long)]
        upgrade: bool,
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
        /// As for `serve`.
        #[arg(long, value_enum)]
        log_format: Option<LogFormat>,
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
    /// A pool's registered OAuth clients and their secrets.
    Client {
        #[arg(long, short, global = true, default_value = "poolgate.toml")]
        config: PathBuf,
        #[command(subcommand)]
        command: cli::ClientCommand,
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
    // A running gateway sets up its log once its config is read (`[log]`); the one-shot
    // commands keep stdout for their output and only warn on stderr.
    match &cli.command {
        Command::Serve { .. } | Command::Demo { .. } => {}
        Command::Whoami { .. } => {
            if let Err(e) = logging::init_gateway(logging::is_human(LogFormat::Auto), &AccessLog::Stdout) {
                eprintln!("poolgate: {e:#}");
            }
        }
        _ => logging::init_command(),
    }
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
        Command::Serve {
            config,
            log_format,
            upgrade,
        } => {
            let loaded = Config::load(&config)?;
            let human = logging::is_human(log_format.unwrap_or(loaded.log.format));
            let access = loaded.log.access.clone().unwrap_or(AccessLog::Stdout);
            logging::init_gateway(human, &access)?;
            poolgate::server::serve(&config, upgrade)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Check { config } => {
            // A host without a certificate is served over plain HTTP only, so `check`
            // reports it (the gateway itself starts and logs it with PG0104).
            let loaded = Config::load(&config).map_err(|e| e.to_string()).and_then(|c| {
                let (_, missing) = poolgate::tls::CertStore::load(&c, None);
                if missing.is_empty() {
                    Ok(c)
                } else {
                    Err(missing
                        .iter()
                        .map(|m| format!("{}: TLS: {m}", config.display()))
                        .collect::<Vec<_>>()
                        .join("\n"))
                }
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
        Command::Demo { config, log_format } => {
            poolgate::demo::run(&config, log_format)?;
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
        Command::Client { config, command } => {
            runtime()?.block_on(cli::client(&config, command))?;
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
