//! The old utility commands, answered from the home shard as MariaDB answers them:
//! COM_FIELD_LIST (a table's columns), COM_STATISTICS (the status line) and COM_REFRESH
//! (FLUSH by flags).
//!
//! Contract: answers exactly once; errors are the backend's (1146 for an unknown table) or
//! 1235 for REFRESH flags that would reset replication.

use super::Session;
use crate::backend::error::bounded;
use crate::backend::{quote_ident, PooledConn};
use crate::error::ClientError;
use crate::frontend::{Reply, StreamError};
use mysql_async::prelude::Queryable;
use mysql_async::Column;

impl Session {
    pub(super) async fn field_list(&mut self, table: &str, wildcard: &str, reply: &mut Reply<'_>) -> Result<(), StreamError> {
        let sql = format!("SELECT * FROM {} LIMIT 0", quote_ident(table));
        let columns = self
            .on_home(|c| {
                Box::pin(async move {
                    let result = c.query_iter(sql).await?;
                    let columns: Vec<Column> = result.columns().map(|c| c.to_vec()).unwrap_or_default();
                    result.drop_result().await?;
                    Ok(columns)
                })
            })
            .await;
        match columns {
            Ok(all) => {
                let chosen: Vec<Column> = all.into_iter().filter(|c| like(wildcard, &c.name_str())).collect();
                reply.field_list(&chosen, self.state.client_status()).await
            }
            Err(e) => reply.error(&e).await,
        }
    }

    pub(super) async fn statistics(&mut self, reply: &mut Reply<'_>) -> Result<(), StreamError> {
        let status = self
            .on_home(|c| {
                Box::pin(async move {
                    c.query::<(String, String), _>(
                        "SHOW GLOBAL STATUS WHERE Variable_name IN ('Uptime','Threads_connected','Questions','Slow_queries','Opened_tables','Flush_commands','Open_tables')",
                    )
                    .await
                })
            })
            .await;
        match status {
            Ok(rows) => {
                let get = |k: &str| rows.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.as_str()).unwrap_or("0");
                let uptime: f64 = get("Uptime").parse().unwrap_or(0.0);
                let questions: f64 = get("Questions").parse().unwrap_or(0.0);
                let qps = if uptime > 0.0 { questions / uptime } else { 0.0 };
                let text = format!(
                    "Uptime: {}  Threads: {}  Questions: {}  Slow queries: {}  Opens: {}  Flush tables: {}  Open tables: {}  Queries per second avg: {qps:.3}",
                    get("Uptime"),
                    get("Threads_connected"),
                    get("Questions"),
                    get("Slow_queries"),
                    get("Opened_tables"),
                    get("Flush_commands"),
                    get("Open_tables"),
                );
                reply.statistics(&text).await
            }
            Err(e) => reply.error(&e).await,
        }
    }

    pub(super) async fn refresh(&mut self, flags: u8, reply: &mut Reply<'_>) -> Result<(), StreamError> {
        const NAMES: [(u8, &str); 5] = [(1, "PRIVILEGES"), (2, "LOGS"), (8, "HOSTS"), (16, "STATUS"), (4, "TABLES")];
        if flags & (64 | 128) != 0 {
            return reply.error(&ClientError::not_supported("COM_REFRESH with REFRESH_SLAVE or REFRESH_MASTER through slotgate; reset replication on the servers themselves")).await;
        }
        let options: Vec<&str> = NAMES.iter().filter(|(bit, _)| flags & bit != 0).map(|(_, n)| *n).collect();
        if options.is_empty() {
            return reply.ok(&Default::default(), self.state.client_status()).await;
        }
        // One FLUSH per option: MariaDB reads words after TABLES as table names.
        let statements: Vec<String> = options.iter().map(|o| format!("FLUSH {o}")).collect();
        let done = self
            .on_home(|c| {
                Box::pin(async move {
                    for sql in statements {
                        c.query_drop(sql).await?;
                    }
                    Ok(())
                })
            })
            .await;
        match done {
            Ok(()) => reply.ok(&Default::default(), self.state.client_status()).await,
            Err(e) => reply.error(&e).await,
        }
    }

    /// Runs `work` on a connection to the home shard brought to the session's state.
    async fn on_home<T>(
        &mut self,
        work: impl for<'c> FnOnce(&'c mut mysql_async::Conn) -> futures_util::future::BoxFuture<'c, Result<T, mysql_async::Error>>,
    ) -> Result<T, ClientError> {
        let topo = self.topology();
        let home = topo.shards[topo.home_index()].id.clone();
        self.conns.version = self.shared.topology.version();
        let mut conn: PooledConn = self.conns.take(&home, &mut self.state, false).await?.conn;
        let (s, a) = (conn.shard().to_string(), conn.addr().to_string());
        let limit = conn.query_timeout();
        let r = bounded(limit, (&s, &a), work(conn.conn())).await;
        let broken = matches!(&r, Err((e, _)) if e.is_fatal());
        self.return_conn(&home, conn, broken);
        r.map_err(|(e, _)| e.into())
    }
}

/// SQL `LIKE` with `%` and `_` (case-insensitive, as column names compare); empty matches
/// all. Dynamic programming: linear in pattern × name, whatever the pattern.
fn like(pattern: &str, name: &str) -> bool {
    if pattern.is_empty() {
        return true;
    }
    let p: Vec<char> = pattern.chars().flat_map(char::to_lowercase).collect();
    let n: Vec<char> = name.chars().flat_map(char::to_lowercase).collect();
    // m[j]: the pattern so far matches the first j chars of the name.
    let mut m = vec![false; n.len() + 1];
    m[0] = true;
    for c in &p {
        let mut next = vec![false; n.len() + 1];
        for j in 0..=n.len() {
            next[j] = match c {
                '%' => m[j] || (j > 0 && next[j - 1]),
                '_' => j > 0 && m[j - 1],
                c => j > 0 && m[j - 1] && n[j - 1] == *c,
            };
        }
        m = next;
    }
    m[n.len()]
}

#[cfg(test)]
mod tests {
    #[test]
    fn like_patterns() {
        assert!(super::like("", "abc"));
        assert!(super::like("a%", "ABC"));
        assert!(super::like("_b_", "abc"));
        assert!(!super::like("b%", "abc"));
        assert!(super::like("%%%%%%%%%%x", "aaaaaaaaaaaaaaaaaaaax"));
        assert!(!super::like(&"%a".repeat(30), &"a".repeat(29)));
        assert!(super::like("a%c", "abbbc") && !super::like("a%c", "abbb"));
    }
}
