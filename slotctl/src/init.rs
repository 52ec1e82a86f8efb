//! The first topology: `slotctl init` from a slotgate config file or from flags.
//!
//! Contract: [`from_config_text`] reads only `[[shards]]` (id, primary, replicas) and
//! `[routing]` (home_shard or its alias default_shard, slot_count defaulting to 1024,
//! `[[routing.rules]]`), ignoring every other key and section, and returns
//! `TopologyCommand::Init` with every shard active, in file order. The flag parsers
//! ([`parse_shard_flag`], [`parse_rule_flag`]) return one-sentence errors fit for clap.
//! Nothing here does I/O except [`from_config_file`], which reads the file.

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use slotgate_shared::{Shard, ShardState, ShardingRule, TopologyCommand};
use std::path::Path;

/// Slot count of a new cluster when neither the file nor `--slot-count` says.
pub const DEFAULT_SLOT_COUNT: u32 = 1024;

/// The parts of a slotgate config file `init` needs; serde ignores everything else.
#[derive(Deserialize)]
struct FileConfig {
    #[serde(default)]
    shards: Vec<FileShard>,
    routing: Option<FileRouting>,
}

#[derive(Deserialize)]
struct FileShard {
    id: String,
    primary: String,
    #[serde(default)]
    replicas: Vec<String>,
}

#[derive(Deserialize)]
struct FileRouting {
    #[serde(default, alias = "default_shard")]
    home_shard: Option<String>,
    #[serde(default)]
    slot_count: Option<u32>,
    #[serde(default)]
    rules: Vec<ShardingRule>,
}

/// `init` from the text of a slotgate config file.
pub fn from_config_text(text: &str) -> Result<TopologyCommand> {
    let file: FileConfig = toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.to_string().trim_end()))?;
    if file.shards.is_empty() {
        bail!("the config file has no [[shards]] entries; add at least one with id and primary");
    }
    let Some(routing) = file.routing else {
        bail!("the config file has no [routing] section; add one with home_shard = \"<shard id>\"");
    };
    let Some(home) = routing.home_shard else {
        bail!("[routing] has no home_shard; set it to the shard that holds unsharded tables");
    };
    let shards = file
        .shards
        .into_iter()
        .map(|s| Shard { id: s.id, state: ShardState::Active, primary: s.primary, replicas: s.replicas })
        .collect();
    Ok(TopologyCommand::Init {
        slot_count: routing.slot_count.unwrap_or(DEFAULT_SLOT_COUNT),
        shards,
        home,
        rules: routing.rules,
    })
}

/// `init` from the slotgate config file at `path`.
pub fn from_config_file(path: &Path) -> Result<TopologyCommand> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read config file {}", path.display()))?;
    from_config_text(&text).with_context(|| format!("cannot use config file {}", path.display()))
}

/// `init` from `--slot-count`, `--shard`, `--home` and `--rule`.
pub fn from_flags(slot_count: Option<u32>, shards: Vec<Shard>, home: String, rules: Vec<ShardingRule>) -> TopologyCommand {
    TopologyCommand::Init { slot_count: slot_count.unwrap_or(DEFAULT_SLOT_COUNT), shards, home, rules }
}

/// The checks the server will run on `init` (the same pure code), plus a clearer message when
/// the home shard is not one of the shards; `Ok` for any other command.
pub fn check(command: &TopologyCommand) -> Result<()> {
    if let TopologyCommand::Init { shards, home, .. } = command {
        if !shards.iter().any(|s| s.id == *home) {
            let ids: Vec<&str> = shards.iter().map(|s| s.id.as_str()).collect();
            bail!("the home shard {home:?} is not one of the shards ({}); set --home or [routing] home_shard to one of them", ids.join(", "));
        }
        command.apply(None).map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    Ok(())
}

/// `--shard id=primary[,replica...]`.
pub fn parse_shard_flag(text: &str) -> Result<Shard, String> {
    let usage = || format!("{text:?} is not a shard like s0=10.0.0.1:3306[,10.0.0.2:3306]");
    let (id, nodes) = text.split_once('=').ok_or_else(usage)?;
    let mut nodes = nodes.split(',').map(str::trim);
    let primary = nodes.next().filter(|p| !p.is_empty()).ok_or_else(usage)?;
    let replicas: Vec<String> = nodes.map(str::to_string).collect();
    if id.trim().is_empty() || replicas.iter().any(String::is_empty) {
        return Err(usage());
    }
    Ok(Shard { id: id.trim().to_string(), state: ShardState::Active, primary: primary.to_string(), replicas })
}

/// `--rule db.table.column`.
pub fn parse_rule_flag(text: &str) -> Result<ShardingRule, String> {
    let parts: Vec<&str> = text.split('.').collect();
    match parts.as_slice() {
        [db, table, column] if !db.is_empty() && !table.is_empty() && !column.is_empty() => {
            Ok(ShardingRule { database: db.to_string(), table: table.to_string(), column: column.to_string() })
        }
        _ => Err(format!("{text:?} is not a rule like shop.orders.customer_id (database.table.column)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shard(id: &str, primary: &str, replicas: &[&str]) -> Shard {
        Shard {
            id: id.into(),
            state: ShardState::Active,
            primary: primary.into(),
            replicas: replicas.iter().map(|r| r.to_string()).collect(),
        }
    }

    const FILE: &str = r#"
# a full node config: init must ignore everything but shards and routing
[node]
id = 3
listen = "127.0.0.1:6033"
unknown_key = true

[backend]
user = "slotgate"
password = "x"

[[shards]]
id = "s0"
primary = "10.0.0.1:3306"
replicas = ["10.0.0.2:3306", "10.0.0.3:3306"]

[[shards]]
id = "s1"
primary = "10.0.1.1:3306"

[routing]
default_shard = "s1"
slot_count = 64
transaction_mode = "single"

[[routing.rules]]
database = "shop"
table = "orders"
column = "customer_id"

[[routing.rules]]
database = "shop"
table = "items"
column = "order_id"

[some_future_section]
x = 1
"#;

    #[test]
    fn config_file_becomes_init() {
        let cmd = from_config_text(FILE).unwrap();
        assert_eq!(
            cmd,
            TopologyCommand::Init {
                slot_count: 64,
                shards: vec![shard("s0", "10.0.0.1:3306", &["10.0.0.2:3306", "10.0.0.3:3306"]), shard("s1", "10.0.1.1:3306", &[])],
                home: "s1".into(),
                rules: vec![
                    ShardingRule { database: "shop".into(), table: "orders".into(), column: "customer_id".into() },
                    ShardingRule { database: "shop".into(), table: "items".into(), column: "order_id".into() },
                ],
            }
        );
        // The command the server will apply is valid.
        let t = cmd.apply(None).unwrap();
        assert_eq!((t.version, t.home, t.slots.len()), (1, 1, 64));
    }

    #[test]
    fn config_defaults_and_home_shard() {
        let text = "[[shards]]\nid = \"a\"\nprimary = \"h:1\"\n[routing]\nhome_shard = \"a\"\n";
        assert_eq!(
            from_config_text(text).unwrap(),
            TopologyCommand::Init { slot_count: 1024, shards: vec![shard("a", "h:1", &[])], home: "a".into(), rules: vec![] }
        );
    }

    #[test]
    fn config_errors_say_what_is_missing() {
        let no_shards = from_config_text("[routing]\nhome_shard = \"a\"\n").unwrap_err().to_string();
        assert!(no_shards.contains("no [[shards]]"), "{no_shards}");
        let no_routing = from_config_text("[[shards]]\nid = \"a\"\nprimary = \"h:1\"\n").unwrap_err().to_string();
        assert!(no_routing.contains("no [routing]"), "{no_routing}");
        let no_home = from_config_text("[[shards]]\nid = \"a\"\nprimary = \"h:1\"\n[routing]\nslot_count = 8\n").unwrap_err().to_string();
        assert!(no_home.contains("home_shard"), "{no_home}");
        assert!(from_config_text("[[shards]]\nid = 5\n").is_err());
        assert!(from_config_text("not toml at all [").is_err());
    }

    #[test]
    fn shard_flags() {
        assert_eq!(parse_shard_flag("s0=10.0.0.1:3306").unwrap(), shard("s0", "10.0.0.1:3306", &[]));
        assert_eq!(parse_shard_flag("s1=h:1,r:2, r:3").unwrap(), shard("s1", "h:1", &["r:2", "r:3"]));
        for bad in ["s0", "=h:1", "s0=", "s0=,r:2", "s0=h:1,", "s0=h:1,,r:2"] {
            assert!(parse_shard_flag(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn rule_flags_and_flag_init() {
        let rule = parse_rule_flag("shop.orders.customer_id").unwrap();
        assert_eq!(rule, ShardingRule { database: "shop".into(), table: "orders".into(), column: "customer_id".into() });
        for bad in ["shop.orders", "a.b.c.d", "shop..id", ""] {
            assert!(parse_rule_flag(bad).is_err(), "{bad} should be refused");
        }
        let cmd = from_flags(None, vec![shard("a", "h:1", &[])], "a".into(), vec![rule.clone()]);
        assert!(check(&cmd).is_ok());
        let e = check(&from_flags(None, vec![shard("a", "h:1", &[]), shard("b", "h:2", &[])], "c".into(), vec![])).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the home shard \"c\" is not one of the shards (a, b); set --home or [routing] home_shard to one of them"
        );
        let e = check(&from_flags(Some(0), vec![shard("a", "h:1", &[])], "a".into(), vec![])).unwrap_err();
        assert_eq!(e.to_string(), "slot_count must be between 1 and 65536, not 0");
        assert_eq!(cmd, TopologyCommand::Init { slot_count: 1024, shards: vec![shard("a", "h:1", &[])], home: "a".into(), rules: vec![rule] });
    }
}
