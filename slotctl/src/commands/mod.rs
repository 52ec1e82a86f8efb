//! The subcommands: each one turns parsed arguments into admin API calls and prints the answer.
//!
//! Contract: with `--json` a command prints the server's JSON body unchanged (one document on
//! one line; `status` wraps its two bodies as `{"cluster":…,"topology":…}`); otherwise it
//! prints plain text and tables. A write sends one `CommandRequest` whose random `request_id`
//! is generated once per invocation and reused by every retry. Errors are returned, never
//! printed here; `main` prints them.

pub mod history;
pub mod member;
pub mod migration;
pub mod status;
pub mod topology;

use crate::client::{Client, Reply};
use anyhow::{bail, Result};
use slotgate_shared::api::{CommandReply, CommandRequest};
use slotgate_shared::{Topology, TopologyCommand};
use std::io::Write;

/// What every command needs.
pub struct Ctx {
    pub client: Client,
    pub json: bool,
    pub actor: String,
}

impl Ctx {
    /// The current topology (and its raw JSON), or `None` before `init`.
    pub async fn topology(&self) -> Result<Option<(Reply, Topology)>> {
        match self.client.get_optional("/topology").await? {
            Some(reply) => {
                let topology = reply.parse()?;
                Ok(Some((reply, topology)))
            }
            None => Ok(None),
        }
    }

    /// The current topology; an error before `init`.
    pub async fn require_topology(&self) -> Result<(Reply, Topology)> {
        match self.topology().await? {
            Some(t) => Ok(t),
            None => bail!("the cluster has no topology yet; run `slotctl init` first"),
        }
    }
}

/// Sends `command` once (retries reuse its request id) and reports the new version.
pub async fn apply(ctx: &Ctx, command: TopologyCommand, force: bool) -> Result<()> {
    let request = CommandRequest {
        request_id: Some(new_request_id()),
        actor: Some(ctx.actor.clone()),
        if_version: None,
        force,
        command,
    };
    let reply = ctx.client.post("/commands", &request).await?;
    if ctx.json {
        emit_json(&reply);
        return Ok(());
    }
    let answer: CommandReply = reply.parse()?;
    if answer.retried {
        emit(&format!("already applied (retry): version {}\n", answer.version));
    } else {
        emit(&format!("applied: topology version {}\n", answer.version));
    }
    Ok(())
}

/// 16 random hex digits.
pub fn new_request_id() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// Writes `text` to stdout; a closed pipe (`slotctl history | head`) is not an error.
pub fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// The server's JSON body as one line.
pub fn emit_json(reply: &Reply) {
    emit(&format!("{}\n", reply.body.trim()));
}

/// `db.table` as `(database, table)`, for clap.
pub fn parse_table_name(text: &str) -> Result<(String, String), String> {
    match text.split_once('.') {
        Some((db, table)) if !db.is_empty() && !table.is_empty() && !table.contains('.') => Ok((db.to_string(), table.to_string())),
        _ => Err(format!("{text:?} is not a table like shop.orders (database.table)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_16_hex_digits() {
        let (a, b) = (new_request_id(), new_request_id());
        assert_eq!(a.len(), 16);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()), "{a}");
        assert_ne!(a, b);
    }

    #[test]
    fn table_names() {
        assert_eq!(parse_table_name("shop.orders").unwrap(), ("shop".to_string(), "orders".to_string()));
        for bad in ["shop", "shop.", ".orders", "a.b.c"] {
            assert!(parse_table_name(bad).is_err(), "{bad} should be refused");
        }
    }
}
