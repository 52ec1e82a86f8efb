//! Throwaway real MariaDB servers for integration tests.
//!
//! Contract:
//! - [`MariaDb::start`] installs a fresh datadir in a private temp directory, starts `mariadbd`
//!   on a free 127.0.0.1 port (retrying with a new port on a bind conflict), waits until it
//!   answers (deadline, no fixed sleeps), then sets it up: anonymous users dropped, root gets a
//!   random password, user `app`@`%` (ALL ON *.* WITH GRANT OPTION) and a replication user are
//!   created. The setup runs with `sql_log_bin=0`, so binlogs start empty and any server can
//!   become a primary of a fresh replica without replaying conflicting `CREATE USER`s.
//! - Every server has binlogs, GTID strict mode, `log_slave_updates`, ROW format and a unique
//!   `server_id` (process id + atomic counter), so many tests can run servers in parallel.
//! - Servers started by one test process share one random `app` password by default (override
//!   with [`MariaDbOptions::app_password`]), so one slotgate `[backend]` section fits them all.
//! - Everything that talks to or waits for the server is `async` (use it from any tokio
//!   runtime flavor). `Drop` is sync: SIGKILL + reap, then the temp directory is removed, also
//!   when the test panics (the error log tail is printed to stderr in that case).
//! - The app user holds `READ_ONLY ADMIN` (part of ALL), so it bypasses `read_only` on replicas;
//!   use a less privileged user if a test needs writes to fail there.
//! - Connection options from [`MariaDb::url`] / [`MariaDb::opts`] set `prefer_socket=false`:
//!   without it mysql_async silently switches a 127.0.0.1 connection to the server's unix
//!   socket (read from `@@socket`), which would bypass a proxy under test.
//!
//! Set `SLOTGATE_KEEP_MARIADB=1` to keep the temp directories (data + logs) for debugging.

mod client;
pub mod replication;
mod server;

use anyhow::{bail, Context, Result};
use mysql_async::prelude::Queryable;
use mysql_async::Conn;
use rand::distr::{Alphanumeric, SampleString};
use server::{Binaries, Layout};
use std::process::Child;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;
use tempfile::TempDir;

/// How many times a start is retried with a new port when the port turned out to be taken.
const PORT_ATTEMPTS: usize = 5;
/// How long a graceful `SHUTDOWN` may take before the server is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Name of the replication user created on every server.
const REPL_USER: &str = "repl";

/// Knobs for [`MariaDb::start_with`]. `Default` gives user `app` with the process-wide password.
#[derive(Clone, Debug, Default)]
pub struct MariaDbOptions {
    /// Name of the application user (default `app`).
    pub app_user: Option<String>,
    /// Its password (default: one random password shared by this test process).
    pub app_password: Option<String>,
    /// Extra `mariadbd` arguments, e.g. `--max-connections=20`.
    pub extra_args: Vec<String>,
}

/// A running (or stopped) `mariadbd` owned by a test. See the module docs.
pub struct MariaDb {
    /// The application user's name (`app` by default).
    pub user: String,
    /// The application user's password.
    pub password: String,
    root_password: String,
    repl_password: String,
    port: u16,
    server_id: u32,
    extra_args: Vec<String>,
    bin: Binaries,
    layout: Layout,
    child: Option<Child>,
    // Declared last so the process is killed (in Drop) before the directory goes away.
    dir: TempDir,
}

impl std::fmt::Debug for MariaDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MariaDb")
            .field("addr", &self.addr())
            .field("server_id", &self.server_id)
            .field("pid", &self.pid())
            .field("dir", &self.dir.path())
            .finish()
    }
}

fn random_password() -> String {
    Alphanumeric.sample_string(&mut rand::rng(), 20)
}

fn default_app_password() -> String {
    static PASSWORD: OnceLock<String> = OnceLock::new();
    PASSWORD.get_or_init(random_password).clone()
}

/// A server id unique among the servers of this process and (very likely) across processes.
fn next_server_id() -> u32 {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed) % 1000;
    (std::process::id() % 4_000_000) * 1000 + n + 1
}

/// Quotes `s` as an SQL string literal.
pub(crate) fn sql_str(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

impl MariaDb {
    /// Starts a fresh server with default options.
    pub async fn start() -> Result<MariaDb> {
        Self::start_with(MariaDbOptions::default()).await
    }

    /// Starts a fresh server with the given options.
    pub async fn start_with(options: MariaDbOptions) -> Result<MariaDb> {
        let bin = server::find_binaries()?;
        server::sweep_stale_dirs();
        let dir = tempfile::Builder::new()
            .prefix(server::DIR_PREFIX)
            .tempdir()
            .context("creating a temp dir for mariadbd")?;
        let layout = Layout::new(dir.path());
        server::install(&bin, &layout).await?;
        let mut db = MariaDb {
            user: options.app_user.unwrap_or_else(|| "app".to_string()),
            password: options.app_password.unwrap_or_else(default_app_password),
            root_password: random_password(),
            repl_password: random_password(),
            port: 0,
            server_id: next_server_id(),
            extra_args: options.extra_args,
            bin,
            layout,
            child: None,
            dir,
        };
        db.first_start().await?;
        db.setup_users().await?;
        db.verify_tcp().await?;
        Ok(db)
    }

    /// Spawns the server on a new free port until it gets one (bind conflicts are retried).
    async fn first_start(&mut self) -> Result<()> {
        for attempt in 1..=PORT_ATTEMPTS {
            self.port = server::free_port()?;
            match self.spawn_and_wait(None).await? {
                Ok(()) => return Ok(()),
                Err(failure) if failure.is_port_conflict() && attempt < PORT_ATTEMPTS => continue,
                Err(failure) => bail!("{} (port {})", failure.describe(), self.port),
            }
        }
        bail!("mariadbd could not get a free port after {PORT_ATTEMPTS} attempts")
    }

    async fn spawn_and_wait(
        &mut self,
        root_password: Option<&str>,
    ) -> Result<std::result::Result<(), server::NotReady>> {
        let log_offset = server::log_len(&self.layout);
        let child = server::spawn(
            &self.bin,
            &self.layout,
            self.port,
            self.server_id,
            &self.extra_args,
        )?;
        let child = self.child.insert(child);
        let outcome = server::wait_ready(child, &self.layout, root_password, log_offset).await;
        if !matches!(outcome, Ok(Ok(()))) {
            self.reap();
        }
        outcome
    }

    async fn setup_users(&self) -> Result<()> {
        let mut conn = Conn::new(server::root_socket_opts(&self.layout, None))
            .await
            .context("connecting as root for the initial setup")?;
        conn.query_drop("SET SESSION sql_log_bin = 0").await?;
        // Anonymous users, and root accounts for the machine's hostname (which
        // --skip-name-resolve ignores, so DROP/ALTER USER cannot address them), go directly.
        conn.query_drop(
            "DELETE FROM mysql.global_priv WHERE User = '' \
             OR (User = 'root' AND Host NOT IN ('localhost', '127.0.0.1', '::1'))",
        )
        .await?;
        conn.query_drop(
            "DELETE FROM mysql.proxies_priv WHERE Host NOT IN ('localhost', '127.0.0.1', '::1')",
        )
        .await?;
        conn.query_drop("FLUSH PRIVILEGES").await?;
        let root_hosts: Vec<String> = conn
            .query("SELECT Host FROM mysql.user WHERE User = 'root'")
            .await?;
        for host in root_hosts {
            conn.query_drop(format!(
                "ALTER USER 'root'@{} IDENTIFIED BY {}",
                sql_str(&host),
                sql_str(&self.root_password)
            ))
            .await?;
        }
        let app = format!("{}@'%'", sql_str(&self.user));
        let repl = format!("{}@'%'", sql_str(REPL_USER));
        for sql in [
            format!(
                "CREATE USER {app} IDENTIFIED BY {}",
                sql_str(&self.password)
            ),
            format!("GRANT ALL PRIVILEGES ON *.* TO {app} WITH GRANT OPTION"),
            format!(
                "CREATE USER {repl} IDENTIFIED BY {}",
                sql_str(&self.repl_password)
            ),
            format!("GRANT REPLICATION SLAVE ON *.* TO {repl}"),
            "FLUSH PRIVILEGES".to_string(),
        ] {
            conn.query_drop(&sql)
                .await
                .with_context(|| format!("setup statement failed: {sql}"))?;
        }
        conn.disconnect().await?;
        Ok(())
    }

    /// Checks that the app user reaches *this* server over TCP.
    async fn verify_tcp(&self) -> Result<()> {
        let ids: Option<(u32, u16)> = self
            .query_first("SELECT @@server_id, @@port")
            .await
            .with_context(|| format!("connecting as {} over TCP to {}", self.user, self.addr()))?;
        match ids {
            Some((id, port)) if id == self.server_id && port == self.port => Ok(()),
            other => bail!(
                "{} answered as (server_id, port) = {other:?}, expected ours",
                self.addr()
            ),
        }
    }

    /// TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Always `"127.0.0.1"`.
    pub fn host(&self) -> &'static str {
        "127.0.0.1"
    }

    /// `"127.0.0.1:PORT"`.
    pub fn addr(&self) -> String {
        format!("{}:{}", self.host(), self.port)
    }

    /// The application user's name.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The application user's password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// Root's password (root exists for `localhost`, `127.0.0.1` and `::1`).
    pub fn root_password(&self) -> &str {
        &self.root_password
    }

    /// This server's `@@server_id`.
    pub fn server_id(&self) -> u32 {
        self.server_id
    }

    /// The server's temp directory (datadir in `data/`, `error.log`, `sock`).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    /// Path of the server's unix socket.
    pub fn socket(&self) -> &std::path::Path {
        &self.layout.socket
    }

    /// Pid of the running process, `None` after [`kill`](Self::kill) / [`stop`](Self::stop).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(Child::try_wait), Some(Ok(None)))
    }

    /// SIGKILLs the server (a "backend died" event) and reaps it; the datadir is kept.
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().context("killing mariadbd")?;
            child.wait().context("reaping mariadbd")?;
        }
        Ok(())
    }

    /// Shuts the server down cleanly (`SHUTDOWN`), killing it if that takes too long.
    pub async fn stop(&mut self) -> Result<()> {
        let root_opts = self.root_opts();
        let Some(child) = self.child.as_mut() else {
            return Ok(());
        };
        if child.try_wait().context("checking mariadbd")?.is_none() {
            // The server closes the connection while answering: ignore that error.
            if let Ok(mut conn) = Conn::new(root_opts).await {
                let _ = conn.query_drop("SHUTDOWN").await;
            }
            if !server::wait_exit(child, STOP_TIMEOUT).await? {
                return self.kill();
            }
        }
        self.child = None;
        Ok(())
    }

    /// Starts the server again on the same port and datadir (after `stop` or `kill`).
    pub async fn restart(&mut self) -> Result<()> {
        self.stop().await?;
        let root_password = self.root_password.clone();
        if let Err(failure) = self.spawn_and_wait(Some(&root_password)).await? {
            bail!("restarting {}: {}", self.addr(), failure.describe());
        }
        Ok(())
    }

    fn reap(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        self.reap();
        if std::thread::panicking() {
            let log = server::read_log_from(&self.layout, 0);
            eprintln!(
                "--- mariadbd {} error log tail ({}) ---\n{}",
                self.addr(),
                self.layout.error_log.display(),
                server::tail(&log, 20)
            );
        }
        if std::env::var_os("SLOTGATE_KEEP_MARIADB").is_some_and(|v| v != "0") {
            self.dir.disable_cleanup(true);
            eprintln!("keeping mariadbd dir {}", self.dir.path().display());
        }
    }
}
