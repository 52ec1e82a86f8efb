//! The two worlds a session runs in: slotgate over four MariaDB shards, and one reference
//! MariaDB holding all rows, with the same schema and data.
//!
//! Contract: `reset` brings both to the initial rows; `contents` reads every table in key
//! order, through slotgate on its side.

use super::gen::ROWS;
use crate::mariadb::MariaDb;
use crate::proxy::{ProxyOptions, TestProxy};
use anyhow::Context;
use mysql_async::prelude::*;
use mysql_async::Conn;

/// The sharding rules of the slotgate side (`slot_count` and `[[routing.rules]]`).
pub const RULES: &str = "slot_count = 1024\n\
[[routing.rules]]\ndatabase = \"dt\"\ntable = \"users\"\ncolumn = \"id\"\n\
[[routing.rules]]\ndatabase = \"dt\"\ntable = \"orders\"\ncolumn = \"user_id\"\n";

const SCHEMA: &[&str] = &[
    "CREATE DATABASE dt",
    "CREATE TABLE dt.users (id BIGINT PRIMARY KEY, name VARCHAR(32), score INT, grp INT) DEFAULT CHARSET latin1",
    "CREATE TABLE dt.orders (user_id BIGINT, order_id BIGINT, amount DECIMAL(10,2), PRIMARY KEY (user_id, order_id))",
    "CREATE TABLE dt.config (k VARCHAR(16) PRIMARY KEY, v INT)",
];

const TABLES: &[(&str, &str)] = &[("users", "id"), ("orders", "user_id, order_id"), ("config", "k")];

pub struct Fixture {
    _shards: Vec<MariaDb>,
    pub reference: MariaDb,
    /// The slotgate side, when the fixture started it (else the caller runs it).
    _proxy: Option<TestProxy>,
    proxy_url: String,
}

fn data() -> Vec<String> {
    let users: Vec<String> = (1..=ROWS).map(|i| format!("({i}, 'u{i}', {}, {})", (i * 37) % 100, i % 4)).collect();
    let orders: Vec<String> = (1..=ROWS).flat_map(|i| (1..=(i % 3) + 1).map(move |o| format!("({i}, {o}, {}.50)", (i * o * 7) % 90))).collect();
    vec![
        "DELETE FROM users".into(),
        "DELETE FROM orders".into(),
        "DELETE FROM config".into(),
        format!("INSERT INTO users (id, name, score, grp) VALUES {}", users.join(", ")),
        format!("INSERT INTO orders (user_id, order_id, amount) VALUES {}", orders.join(", ")),
        "INSERT INTO config (k, v) VALUES ('a', 1), ('b', 2), ('c', 3)".into(),
    ]
}

impl Fixture {
    pub async fn start() -> anyhow::Result<Fixture> {
        let (a, b, c, d, reference) = tokio::try_join!(MariaDb::start(), MariaDb::start(), MariaDb::start(), MariaDb::start(), MariaDb::start())?;
        let shards = vec![a, b, c, d];
        let refs: Vec<&MariaDb> = shards.iter().collect();
        let proxy = TestProxy::start_with(&refs, ProxyOptions { routing_extra: RULES.into(), ..Default::default() }).await?;
        let proxy_url = proxy.url(Some("dt"));
        Fixture::create(Fixture { _shards: shards, reference, _proxy: Some(proxy), proxy_url }).await
    }

    /// A fixture over a slotgate the caller runs (routing by [`RULES`]), reached at
    /// `proxy.url(Some("dt"))`; the schema and data are created through it.
    pub async fn over(proxy_url: String) -> anyhow::Result<Fixture> {
        let reference = MariaDb::start().await?;
        Fixture::create(Fixture { _shards: Vec::new(), reference, _proxy: None, proxy_url }).await
    }

    async fn create(f: Fixture) -> anyhow::Result<Fixture> {
        let mut p = Conn::new(mysql_async::Opts::from_url(&f.proxy_url.replace("/dt?", "/?"))?).await?;
        let mut r = f.reference.conn().await?;
        for q in SCHEMA {
            p.query_drop(*q).await.with_context(|| format!("proxy: {q}"))?;
            r.query_drop(*q).await.with_context(|| format!("reference: {q}"))?;
        }
        f.reset().await?;
        Ok(f)
    }

    pub async fn proxy_conn(&self) -> anyhow::Result<Conn> {
        Ok(Conn::new(mysql_async::Opts::from_url(&self.proxy_url)?).await?)
    }

    pub async fn reference_conn(&self) -> anyhow::Result<Conn> {
        Ok(self.reference.conn_db("dt").await?)
    }

    pub async fn reset(&self) -> anyhow::Result<()> {
        let (mut p, mut r) = (self.proxy_conn().await?, self.reference_conn().await?);
        for q in data() {
            p.query_drop(&q).await.with_context(|| format!("proxy: {q}"))?;
            r.query_drop(&q).await.with_context(|| format!("reference: {q}"))?;
        }
        Ok(())
    }

    /// Every table's rows in key order: (slotgate's, the reference's).
    pub async fn contents(&self) -> anyhow::Result<(Vec<String>, Vec<String>)> {
        let (mut p, mut r) = (self.proxy_conn().await?, self.reference_conn().await?);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for (t, key) in TABLES {
            let q = format!("SELECT * FROM {t} ORDER BY {key}");
            for (conn, out) in [(&mut p, &mut a), (&mut r, &mut b)] {
                let rows: Vec<mysql_async::Row> = conn.query(&q).await?;
                out.extend(rows.into_iter().map(|row| format!("{t}: {}", row.unwrap().iter().map(super::answer::text).collect::<Vec<_>>().join(", "))));
            }
        }
        Ok((a, b))
    }
}
