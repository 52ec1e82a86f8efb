//! Process-level plumbing for [`super::MariaDb`]: finding the binaries, creating a datadir with
//! `mariadb-install-db`, spawning `mariadbd` with a small, fast test configuration, and polling
//! it until it accepts connections on its private unix socket.
//!
//! Contract: nothing here knows about users or replication. [`spawn`] returns a
//! `std::process::Child` (so the owner can SIGKILL and reap it synchronously in `Drop`);
//! [`wait_ready`] polls with a deadline and reports an early exit (with the new part of the
//! error log) instead of hanging, so the caller can retry on a port conflict.

use anyhow::{bail, Context, Result};
use mysql_async::prelude::Queryable;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long `mariadb-install-db` may take.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a freshly spawned server may take to accept connections.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Interval between readiness probes.
const POLL_INTERVAL: Duration = Duration::from_millis(25);

const INSTALL_HINT: &str =
    "install it with: apt-get update && apt-get install -y mariadb-server mariadb-client";

/// The two executables the harness needs.
#[derive(Clone, Debug)]
pub(crate) struct Binaries {
    pub mariadbd: PathBuf,
    pub install_db: PathBuf,
}

/// Finds `mariadbd` and `mariadb-install-db` in `PATH`, `/usr/sbin`, `/usr/bin` and `/usr/local/*`.
pub(crate) fn find_binaries() -> Result<Binaries> {
    let mariadbd = find_executable(&["mariadbd", "mysqld"])
        .with_context(|| format!("`mariadbd` not found in PATH or /usr/sbin; {INSTALL_HINT}"))?;
    let install_db =
        find_executable(&["mariadb-install-db", "mysql_install_db"]).with_context(|| {
            format!("`mariadb-install-db` not found in PATH or /usr/bin; {INSTALL_HINT}")
        })?;
    Ok(Binaries {
        mariadbd,
        install_db,
    })
}

fn find_executable(names: &[&str]) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for extra in [
        "/usr/sbin",
        "/usr/bin",
        "/usr/local/sbin",
        "/usr/local/bin",
        "/sbin",
    ] {
        dirs.push(PathBuf::from(extra));
    }
    names
        .iter()
        .flat_map(|name| dirs.iter().map(move |dir| dir.join(name)))
        .find(|path| {
            std::fs::metadata(path)
                .map(|m| m.is_file() && m.mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// True when this process runs as root (then mariadbd needs `--user=root`).
fn running_as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// File layout of one server inside its temp directory.
#[derive(Clone, Debug)]
pub(crate) struct Layout {
    pub data: PathBuf,
    pub socket: PathBuf,
    pub pid_file: PathBuf,
    pub error_log: PathBuf,
    pub stdio_log: PathBuf,
    /// Private `--tmpdir`: concurrent servers sharing /tmp break each other's temp tables.
    pub tmp: PathBuf,
}

impl Layout {
    pub fn new(root: &Path) -> Layout {
        Layout {
            data: root.join("data"),
            socket: root.join("sock"),
            pid_file: root.join("mariadbd.pid"),
            error_log: root.join("error.log"),
            stdio_log: root.join("mariadbd.out"),
            tmp: root.join("tmp"),
        }
    }
}

/// InnoDB sizing shared by install and start (the redo log size must match to skip a resize).
const SIZING_ARGS: &[&str] = &["--innodb-buffer-pool-size=16M", "--innodb-log-file-size=8M"];

/// Runs `mariadb-install-db` into `layout.data` (which must not exist yet).
pub(crate) async fn install(bin: &Binaries, layout: &Layout) -> Result<()> {
    std::fs::create_dir_all(&layout.tmp)
        .with_context(|| format!("creating {}", layout.tmp.display()))?;
    let mut cmd = tokio::process::Command::new(&bin.install_db);
    cmd.arg("--no-defaults")
        .arg(format!("--datadir={}", layout.data.display()))
        .arg(format!("--tmpdir={}", layout.tmp.display()))
        .args([
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
        ])
        .args(SIZING_ARGS)
        .arg("--innodb-use-native-aio=0")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if running_as_root() {
        cmd.arg("--user=root");
    }
    let output = tokio::time::timeout(INSTALL_TIMEOUT, cmd.output())
        .await
        .with_context(|| {
            format!(
                "{} timed out after {INSTALL_TIMEOUT:?}",
                bin.install_db.display()
            )
        })?
        .with_context(|| format!("running {}", bin.install_db.display()))?;
    if !output.status.success() {
        let text = format!(
            "{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        let errors: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("ERROR"))
            .take(10)
            .collect();
        bail!(
            "{} failed ({}); errors:\n{}\noutput tail:\n{}",
            bin.install_db.display(),
            output.status,
            errors.join("\n"),
            tail(&text, 15),
        );
    }
    Ok(())
}

/// Asks the kernel for a currently free TCP port on 127.0.0.1 (racy by nature: callers retry).
pub(crate) fn free_port() -> Result<u16> {
    let listener =
        TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0 to pick a port")?;
    Ok(listener
        .local_addr()
        .context("reading the picked port")?
        .port())
}

/// Spawns `mariadbd` on `port` with output going to files in the server's directory.
pub(crate) fn spawn(
    bin: &Binaries,
    layout: &Layout,
    port: u16,
    server_id: u32,
    extra_args: &[String],
) -> Result<Child> {
    let stdio = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&layout.stdio_log)
        .with_context(|| format!("opening {}", layout.stdio_log.display()))?;
    let stdio_err = stdio
        .try_clone()
        .context("duplicating the stdio log handle")?;
    let mut cmd = Command::new(&bin.mariadbd);
    // --no-defaults must come first.
    cmd.arg("--no-defaults")
        .arg(format!("--datadir={}", layout.data.display()))
        .arg(format!("--tmpdir={}", layout.tmp.display()))
        .arg(format!("--port={port}"))
        .arg("--bind-address=127.0.0.1")
        .arg(format!("--socket={}", layout.socket.display()))
        .arg(format!("--pid-file={}", layout.pid_file.display()))
        .arg(format!("--log-error={}", layout.error_log.display()))
        .arg(format!("--server-id={server_id}"))
        .args(SIZING_ARGS)
        .args([
            "--skip-name-resolve",
            "--log-bin=mariadb-bin",
            "--relay-log=relay-bin",
            "--gtid-strict-mode=ON",
            "--log-slave-updates",
            "--binlog-format=ROW",
            "--character-set-server=utf8mb4",
            "--collation-server=utf8mb4_general_ci",
            // Durability is irrelevant for tests; speed and a small footprint are not.
            "--innodb-flush-log-at-trx-commit=2",
            "--sync-binlog=0",
            "--innodb-doublewrite=0",
            // io_uring/AIO contexts are a scarce kernel resource when many servers run at once.
            "--innodb-use-native-aio=0",
            "--innodb-log-buffer-size=2M",
            "--aria-pagecache-buffer-size=8M",
            "--key-buffer-size=1M",
            "--performance-schema=OFF",
            "--innodb-temp-data-file-path=ibtmp1:1M:autoextend",
        ])
        .args(extra_args)
        .stdin(Stdio::null())
        .stdout(stdio)
        .stderr(stdio_err);
    if running_as_root() {
        cmd.arg("--user=root");
    }
    cmd.spawn()
        .with_context(|| format!("spawning {}", bin.mariadbd.display()))
}

/// How a readiness wait ended, when it did not succeed.
pub(crate) enum NotReady {
    /// The process exited; `log` is what it wrote to its error log during this start.
    Exited {
        status: std::process::ExitStatus,
        log: String,
    },
}

impl NotReady {
    /// True when the server died because its TCP port was taken.
    pub fn is_port_conflict(&self) -> bool {
        let NotReady::Exited { log, .. } = self;
        log.contains("Address already in use") || log.contains("Bind on TCP/IP port")
    }

    pub fn describe(&self) -> String {
        let NotReady::Exited { status, log } = self;
        format!(
            "mariadbd exited during startup ({status}); error log tail:\n{}",
            tail(log, 30)
        )
    }
}

/// Root connection options over the server's private unix socket.
pub(crate) fn root_socket_opts(layout: &Layout, root_password: Option<&str>) -> mysql_async::Opts {
    mysql_async::OptsBuilder::default()
        .socket(Some(layout.socket.to_string_lossy().into_owned()))
        .user(Some("root"))
        .pass(root_password.filter(|p| !p.is_empty()))
        .into()
}

/// Polls (with a deadline) until root can run `SELECT 1` over the unix socket.
///
/// Returns `Ok(Err(NotReady))` when the process exited first (the caller decides whether to
/// retry) and `Err` on timeout or I/O failure. `log_offset` is the error log's length before
/// this start, so only this attempt's messages are reported.
pub(crate) async fn wait_ready(
    child: &mut Child,
    layout: &Layout,
    root_password: Option<&str>,
    log_offset: u64,
) -> Result<std::result::Result<(), NotReady>> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let opts = root_socket_opts(layout, root_password);
    let mut last_error = String::from("no connection attempt yet");
    loop {
        if let Some(status) = child.try_wait().context("checking the mariadbd process")? {
            return Ok(Err(NotReady::Exited {
                status,
                log: read_log_from(layout, log_offset),
            }));
        }
        if layout.socket.exists() {
            match probe(&opts).await {
                Ok(()) => return Ok(Ok(())),
                Err(e) => last_error = format!("{e:#}"),
            }
        }
        if Instant::now() >= deadline {
            bail!(
                "mariadbd (pid {}) not ready after {READY_TIMEOUT:?}; last error: {last_error}; \
                 error log tail:\n{}",
                child.id(),
                tail(&read_log_from(layout, log_offset), 30)
            );
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

async fn probe(opts: &mysql_async::Opts) -> Result<()> {
    let attempt = async {
        let mut conn = mysql_async::Conn::new(opts.clone()).await?;
        conn.query_drop("SELECT 1").await?;
        conn.disconnect().await?;
        Ok::<_, mysql_async::Error>(())
    };
    tokio::time::timeout(Duration::from_secs(5), attempt)
        .await
        .context("probe timed out")?
        .context("probe failed")
}

/// Current length of the error log (0 when it does not exist yet).
pub(crate) fn log_len(layout: &Layout) -> u64 {
    std::fs::metadata(&layout.error_log)
        .map(|m| m.len())
        .unwrap_or(0)
}

/// The error log from `offset` on, plus the stdio log when the error log says nothing.
pub(crate) fn read_log_from(layout: &Layout, offset: u64) -> String {
    let log = std::fs::read(&layout.error_log).unwrap_or_default();
    let start = usize::try_from(offset).unwrap_or(usize::MAX).min(log.len());
    let mut text = String::from_utf8_lossy(&log[start..]).into_owned();
    if text.trim().is_empty() {
        text = std::fs::read_to_string(&layout.stdio_log).unwrap_or_default();
    }
    text
}

/// The last `lines` lines of `text`.
pub(crate) fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Polls `child` until it exits, up to `timeout`; returns false on timeout.
pub(crate) async fn wait_exit(child: &mut Child, timeout: Duration) -> Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        if child
            .try_wait()
            .context("checking the mariadbd process")?
            .is_some()
        {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Prefix of every server's temp directory.
pub(crate) const DIR_PREFIX: &str = "slotgate-mariadb-";

/// Best-effort removal of server directories left behind by test processes that were killed
/// before `Drop` could run (e.g. a test timeout): directories older than ten minutes whose
/// `mariadbd` is not running. Runs once per process.
pub(crate) fn sweep_stale_dirs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let is_ours = entry.file_name().to_string_lossy().starts_with(DIR_PREFIX);
            if is_ours && is_stale(&path) {
                let _ = std::fs::remove_dir_all(&path);
            }
        }
    });
}

fn is_stale(dir: &Path) -> bool {
    let old = std::fs::metadata(dir)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > Duration::from_secs(600));
    if !old {
        return false;
    }
    let layout = Layout::new(dir);
    let pid = std::fs::read_to_string(&layout.pid_file).unwrap_or_default();
    let cmdline = std::fs::read(format!("/proc/{}/cmdline", pid.trim())).unwrap_or_default();
    let running = !pid.trim().is_empty()
        && String::from_utf8_lossy(&cmdline).contains(&*layout.data.to_string_lossy());
    !running
}
