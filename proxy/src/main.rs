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
    /// Imports client accounts (mysql_native_password) from the home shard's `mysql.user`
    /// into the users file, as the backend account reads them; restart the node to use them.
    UsersSync {
        /// Read the accounts from this server instead of the home shard's primary.
        #[arg(long, value_name = "HOST:PORT")]
        from: Option<String>,
        /// Print what would change; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `slotgate users-sync`: see `slotgate_proxy::config::users_sync`.
fn users_sync(config: &Config, from: Option<String>, dry_run: bool) -> anyhow::Result<()> {
    use mysql_async::prelude::Queryable;
    use slotgate_proxy::config::users_sync::{merge, FileUsers, ShardAccount};
    let path = &config.node.users_file;
    let existing: FileUsers = match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).with_context(|| format!("{}", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => FileUsers::default(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let addr = match from {
        Some(a) => a,
        None => {
            let t = config.topology().context("the config's shards")?;
            t.shards.get(t.home_index()).map(|s| s.primary.clone()).context("no home shard in the config")?
        }
    };
    let (host, port) = addr.rsplit_once(':').context("--from must be HOST:PORT")?;
    let port: u16 = port.parse().context("--from must be HOST:PORT")?;
    let opts = mysql_async::OptsBuilder::default()
        .ip_or_hostname(host)
        .tcp_port(port)
        .user(Some(config.backend.user.clone()))
        .pass(Some(config.backend_password()?))
        .prefer_socket(false);
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let rows: Vec<mysql_async::Row> = runtime.block_on(async {
        let mut conn = mysql_async::Conn::new(opts).await.with_context(|| format!("connecting to {addr} as the backend user"))?;
        let rows = conn
            .query("SELECT User, Host, plugin, authentication_string FROM mysql.user")
            .await
            .with_context(|| format!("reading mysql.user on {addr}: the backend account needs SELECT on mysql.user (GRANT SELECT ON mysql.global_priv TO ...)"))?;
        conn.disconnect().await?;
        anyhow::Ok(rows)
    })?;
    let text = |r: &mysql_async::Row, i: usize| -> String {
        match r.get_opt::<Option<Vec<u8>>, _>(i) {
            Some(Ok(Some(b))) => String::from_utf8_lossy(&b).into_owned(),
            _ => String::new(),
        }
    };
    let accounts: Vec<ShardAccount> = rows.iter().map(|r| ShardAccount { user: text(r, 0), host: text(r, 1), plugin: text(r, 2), hash: text(r, 3) }).collect();
    let (merged, report) = merge(existing, &accounts);
    let list = |v: &[String]| if v.is_empty() { "-".to_string() } else { v.join(", ") };
    println!("from {addr}: {} account(s) read", accounts.len());
    println!("added: {}", list(&report.added));
    println!("updated (new password): {}", list(&report.updated));
    println!("unchanged: {}", list(&report.unchanged));
    println!("only in the users file (kept): {}", list(&report.only_in_file));
    for (who, why) in &report.skipped {
        println!("skipped {who}: {why}");
    }
    if dry_run {
        println!("dry run: {} not written", path.display());
        return Ok(());
    }
    let body = format!("# Client accounts; written by `slotgate users-sync` from {addr}.\n{}", toml::to_string(&merged)?);
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, body).with_context(|| format!("writing {}", tmp.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))?;
    println!("wrote {} ({} user(s)); restart the node to use them", path.display(), merged.users.len());
    Ok(())
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
    if let Some(Command::UsersSync { from, dry_run }) = &cli.command {
        return users_sync(&config, from.clone(), *dry_run);
    }
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
