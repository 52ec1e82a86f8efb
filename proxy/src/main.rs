//! The `slotgate` binary: runs one node from a config file until SIGTERM/SIGINT.

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use slotgate_proxy::{Config, Node, Users};
use std::io::BufRead;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "slotgate", version, about = "A shard-aware MySQL routing proxy")]
struct Cli {
    /// Path of the node's config file (TOML).
    #[arg(long, short, global = true, env = "SLOTGATE_CONFIG", default_value = "config/slotgate.toml")]
    config: PathBuf,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Reads a password from stdin and prints its users-file hash (mysql_native_password).
    HashPassword,
    /// Checks the config and users files and exits.
    CheckConfig,
}

fn init_logs(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SLOTGATE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::HashPassword) = cli.command {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).context("reading the password from stdin")?;
        println!("{}", slotgate_proxy::config::users::native_password_hash(line.trim_end_matches(['\r', '\n'])));
        return Ok(());
    }
    init_logs(cli.log_format);
    let config = Config::load(&cli.config)?;
    let users = Users::load(&config.node.users_file)?;
    if let Some(Command::CheckConfig) = cli.command {
        config.check_meta()?;
        if let Some(t) = &config.tls {
            slotgate_proxy::admin::tls::server_config(&t.cert, &t.key, None).map_err(anyhow::Error::msg).context("[tls]")?;
        }
        if let Some(t) = &config.admin_tls {
            slotgate_proxy::admin::tls::admin_acceptor(t).map_err(anyhow::Error::msg).context("[admin_tls]")?;
            if config.meta.is_some() {
                slotgate_proxy::admin::tls::peer_tls(t).map_err(anyhow::Error::msg).context("[admin_tls]")?;
            }
        }
        println!("config ok: {} shard(s), {} user(s)", config.shards.len(), users.len());
        return Ok(());
    }
    if users.is_empty() {
        tracing::warn!("the users file has no users: no client can log in");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async move {
        let node = Node::start(config, users).await?;
        wait_for_signal().await;
        tracing::info!("shutting down");
        node.shutdown().await;
        anyhow::Ok(())
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
