//! Client-side conveniences of [`MariaDb`]: connection options and one-shot statements.
//!
//! Contract: the app user always connects over TCP to 127.0.0.1 with `prefer_socket=false`
//! (so a connection meant for a proxy under test never silently switches to a unix socket);
//! root connects over the server's private unix socket. Every helper opens its own connection
//! and disconnects it cleanly; errors carry the server address and the SQL.

use super::{server, MariaDb};
use anyhow::{Context, Result};
use mysql_async::prelude::{FromRow, Queryable};
use mysql_async::{Conn, Opts, OptsBuilder, Row};

impl MariaDb {
    /// mysql_async URL for the app user over TCP, e.g. `mysql://app:pw@127.0.0.1:PORT/db`.
    pub fn url(&self, db: Option<&str>) -> String {
        format!(
            "mysql://{}:{}@{}/{}?prefer_socket=false",
            self.user,
            self.password,
            self.addr(),
            db.unwrap_or("")
        )
    }

    /// mysql_async options for the app user over TCP (`prefer_socket` off).
    pub fn opts(&self, db: Option<&str>) -> Opts {
        OptsBuilder::default()
            .ip_or_hostname(self.host())
            .tcp_port(self.port)
            .user(Some(&self.user))
            .pass(Some(&self.password))
            .db_name(db)
            .prefer_socket(false)
            .into()
    }

    /// Root connection options over the unix socket.
    pub fn root_opts(&self) -> Opts {
        server::root_socket_opts(&self.layout, Some(&self.root_password))
    }

    /// A new connection as the app user over TCP.
    pub async fn conn(&self) -> Result<Conn> {
        Conn::new(self.opts(None))
            .await
            .with_context(|| format!("connecting to {}", self.addr()))
    }

    /// A new connection as the app user over TCP, with a default database.
    pub async fn conn_db(&self, db: &str) -> Result<Conn> {
        Conn::new(self.opts(Some(db)))
            .await
            .with_context(|| format!("connecting to {} ({db})", self.addr()))
    }

    /// A new connection as root over the unix socket.
    pub async fn root_conn(&self) -> Result<Conn> {
        Conn::new(self.root_opts())
            .await
            .with_context(|| format!("root connection to {}", self.addr()))
    }

    /// Runs `sql` (one or more statements) as the app user.
    pub async fn exec(&self, sql: &str) -> Result<()> {
        let mut conn = self.conn().await?;
        conn.query_drop(sql)
            .await
            .with_context(|| format!("{}: {sql}", self.addr()))?;
        conn.disconnect().await?;
        Ok(())
    }

    /// Runs `sql` as root (over the socket).
    pub async fn root_exec(&self, sql: &str) -> Result<()> {
        let mut conn = self.root_conn().await?;
        conn.query_drop(sql)
            .await
            .with_context(|| format!("{} (root): {sql}", self.addr()))?;
        conn.disconnect().await?;
        Ok(())
    }

    /// Runs a query as the app user and returns its rows.
    pub async fn query_rows(&self, sql: &str) -> Result<Vec<Row>> {
        self.query(sql).await
    }

    /// Runs a query as the app user and converts its rows.
    pub async fn query<T: FromRow + Send + 'static>(&self, sql: &str) -> Result<Vec<T>> {
        let mut conn = self.conn().await?;
        let rows = conn
            .query(sql)
            .await
            .with_context(|| format!("{}: {sql}", self.addr()))?;
        conn.disconnect().await?;
        Ok(rows)
    }

    /// Runs a query as the app user and converts its first row.
    pub async fn query_first<T: FromRow + Send + 'static>(&self, sql: &str) -> Result<Option<T>> {
        Ok(self.query(sql).await?.into_iter().next())
    }
}
