//! `slotctl`: the operator's command line for a slotgate cluster.
//!
//! Contract: parses the command line (clap; usage errors exit 2), runs one subcommand against
//! the admin API of the `--cluster` nodes, and exits 0 on success or 1 after printing
//! `slotctl: <one sentence saying what to do>` on stderr.

mod client;
mod commands;
mod init;
mod table;
mod time;

use anyhow::{anyhow, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use commands::{apply, history, member, migration, status, topology, Ctx};
use slotgate_shared::{Shard, ShardState, ShardingRule, SlotRange, TopologyCommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "slotctl", version, about = "Operate a slotgate cluster: shards, slots, rules, members")]
struct Cli {
    /// Admin URLs (or host:port) of one or more slotgate nodes, comma-separated; tried in order.
    #[arg(long, global = true, env = "SLOTCTL_CLUSTER", default_value = "http://127.0.0.1:9033")]
    cluster: String,
    /// Bearer token for the admin API (the nodes' node.admin_token).
    #[arg(long, global = true, env = "SLOTGATE_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// CA certificate (PEM) of the nodes' admin_tls certificates: speak https to them.
    #[arg(long, global = true, env = "SLOTCTL_CA", value_name = "FILE")]
    ca: Option<std::path::PathBuf>,
    /// Client certificate (PEM) for nodes with admin_tls.require_client_cert (with --key).
    #[arg(long, global = true, env = "SLOTCTL_CERT", value_name = "FILE", requires = "ca")]
    cert: Option<std::path::PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, global = true, env = "SLOTCTL_KEY", value_name = "FILE", requires = "cert")]
    key: Option<std::path::PathBuf>,
    /// Print the server's JSON instead of text and tables.
    #[arg(long, global = true)]
    json: bool,
    /// Total seconds to keep trying (unreachable nodes, no leader yet).
    #[arg(long, global = true, value_name = "SECONDS", default_value_t = 15, value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,
    /// Name recorded in the topology history [default: $USER, else "slotctl"].
    #[arg(long, global = true, value_name = "NAME")]
    actor: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the first topology from a slotgate config file or from flags.
    Init(InitArgs),
    /// Show leader, term, members, topology version and shards.
    Status,
    /// Add, list, remove shards or change their state.
    #[command(subcommand)]
    Shard(ShardCmd),
    /// Add or remove a shard's replicas.
    #[command(subcommand)]
    Replica(ReplicaCmd),
    /// Assign slots to a shard, or list who owns which slots.
    #[command(subcommand)]
    Slots(SlotsCmd),
    /// Follow or cancel online slot migrations (start one with `slots migrate`).
    #[command(subcommand)]
    Migration(MigrationCmd),
    /// Change a shard's primary.
    #[command(subcommand)]
    Primary(PrimaryCmd),
    /// Sharding rules: which column shards a table.
    #[command(subcommand)]
    Rule(RuleCmd),
    /// Members of the meta group (Raft).
    #[command(subcommand)]
    Member(MemberCmd),
    /// Unplanned failover: promote the most advanced replica of a shard whose primary is dead.
    Failover { shard: String },
    /// Planned switchover: freeze the shard's writes, promote a caught-up replica, cut over.
    Switchover {
        shard: String,
        /// The replica to promote (default: the shard's first replica).
        #[arg(long)]
        to: Option<String>,
    },
    /// The last topology changes, oldest first.
    History {
        /// How many entries (the most recent ones).
        #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..))]
        limit: u32,
    },
}

#[derive(Args)]
struct InitArgs {
    /// A slotgate config file: its [[shards]] and [routing] are used, everything else ignored.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["slot_count", "shards", "home", "rules"])]
    config: Option<PathBuf>,
    /// Number of slots, fixed for the cluster's life [default: 1024].
    #[arg(long, value_name = "N")]
    slot_count: Option<u32>,
    /// A shard as id=primary[,replica...]; repeat for each shard (slots are split evenly, in order).
    #[arg(long = "shard", value_name = "ID=PRIMARY[,REPLICA...]", value_parser = init::parse_shard_flag, required_unless_present = "config")]
    shards: Vec<Shard>,
    /// The shard holding unsharded tables.
    #[arg(long, value_name = "ID", required_unless_present = "config")]
    home: Option<String>,
    /// A sharding rule as db.table.column; repeatable.
    #[arg(long = "rule", value_name = "DB.TABLE.COLUMN", value_parser = init::parse_rule_flag)]
    rules: Vec<ShardingRule>,
}

#[derive(Subcommand)]
enum ShardCmd {
    /// Add an active shard that owns no slots yet.
    Add {
        /// New shard id (letters, digits, '-', '_').
        id: String,
        /// The shard's primary MySQL/MariaDB server.
        #[arg(long, value_name = "HOST:PORT")]
        primary: String,
        /// A replica; repeatable.
        #[arg(long = "replica", value_name = "HOST:PORT")]
        replicas: Vec<String>,
    },
    /// Table of shards.
    List,
    /// Move the upper half of a shard's slots, with their rows, to a new shard (added here
    /// unless it exists and owns no slots): an online migration run by the meta leader.
    Split {
        /// The shard to split.
        shard: String,
        /// The shard that gets half of its slots.
        #[arg(long, value_name = "SHARD")]
        into: String,
        /// The new shard's primary (when it does not exist yet).
        #[arg(long, value_name = "HOST:PORT")]
        primary: Option<String>,
        /// A replica of the new shard; repeatable.
        #[arg(long = "replica", value_name = "HOST:PORT")]
        replicas: Vec<String>,
        /// Move the upper slots that carry about half the measured load (`slots top`)
        /// instead of half the slots.
        #[arg(long)]
        by_load: bool,
        /// Wait until the migration ends, printing each phase.
        #[arg(long)]
        wait: bool,
    },
    /// Move every slot of a shard, with its rows, to another shard, then remove it.
    Merge {
        /// The shard that goes away.
        from: String,
        /// The shard that gets its slots.
        #[arg(long, value_name = "SHARD")]
        into: String,
        /// Wait until the migration ends, printing each phase.
        #[arg(long)]
        wait: bool,
    },
    /// Remove a shard that owns no slots and is not the home shard.
    Remove {
        /// Shard id.
        id: String,
    },
    /// Set a shard's state (a shard that owns slots or is home must stay active).
    State {
        /// Shard id.
        id: String,
        state: StateArg,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum StateArg {
    Active,
    Draining,
    Offline,
}

#[derive(Subcommand)]
enum ReplicaCmd {
    /// Add a replica to a shard.
    Add {
        /// Shard id.
        shard: String,
        /// The replica's address.
        #[arg(value_name = "HOST:PORT")]
        addr: String,
    },
    /// Remove a replica from a shard.
    Remove {
        /// Shard id.
        shard: String,
        /// The replica's address.
        #[arg(value_name = "HOST:PORT")]
        addr: String,
    },
}

/// A parsed slot list (a newtype so that clap takes it as one value).
#[derive(Clone)]
struct Slots(Vec<SlotRange>);

#[derive(Subcommand)]
enum SlotsCmd {
    /// Give slots to a shard, e.g. `slots assign 0-511,600 --to s1`, through the cutover
    /// protocol (statements on those slots pause, then go to the new shard).
    Assign {
        /// Slots and slot ranges, comma-separated: 0-511,600.
        #[arg(value_name = "RANGES", value_parser = |s: &str| SlotRange::parse_list(s).map(Slots))]
        ranges: Slots,
        /// The shard that gets them.
        #[arg(long, value_name = "SHARD")]
        to: String,
        /// Move the slots even if they still hold rows on their current shard.
        #[arg(long)]
        force: bool,
    },
    /// Move slots and their rows to another shard, online: copy, binlog catch-up, verify,
    /// cutover (writes on those slots pause briefly), cleanup. Run by the meta leader.
    Migrate {
        /// Slots and slot ranges, comma-separated: 0-63,100.
        #[arg(value_name = "RANGES", value_parser = |s: &str| SlotRange::parse_list(s).map(Slots))]
        ranges: Slots,
        /// The shard that gets them (add it first with `shard add`).
        #[arg(long, value_name = "SHARD")]
        to: String,
        /// Wait until the migration ends, printing each phase; fail unless it ends done.
        #[arg(long)]
        wait: bool,
    },
    /// Slot ranges per shard.
    List,
    /// The hottest slots (statements and rows written, summed over the nodes since they
    /// started) and each shard's share of the load.
    Top {
        /// How many slots to show.
        #[arg(long, default_value_t = 10)]
        limit: usize,
    },
}

#[derive(Subcommand)]
enum MigrationCmd {
    /// Every migration the topology records (active and the last finished ones).
    List,
    /// One migration: phase, rows copied, binlog lag, ETA.
    Show { id: u64 },
    /// Roll a migration back before its cutover: the source keeps the slots.
    Cancel { id: u64 },
}

#[derive(Subcommand)]
enum PrimaryCmd {
    /// Make addr the shard's primary; the old primary becomes a replica unless --drop-old.
    Set {
        /// Shard id.
        shard: String,
        /// The new primary (often one of the shard's replicas).
        #[arg(value_name = "HOST:PORT")]
        addr: String,
        /// Forget the old primary instead of keeping it as a replica.
        #[arg(long)]
        drop_old: bool,
    },
}

#[derive(Subcommand)]
enum RuleCmd {
    /// Shard db.table by column.
    Add {
        /// The table, as database.table.
        #[arg(value_name = "DB.TABLE", value_parser = commands::parse_table_name)]
        table: (String, String),
        /// The column whose value picks the slot.
        column: String,
        /// Add the rule although the table's primary key or a unique key lacks the column
        /// (each shard then enforces that key only for its own rows).
        #[arg(long)]
        force: bool,
    },
    /// Table of sharding rules.
    List,
    /// Remove the rule of db.table.
    Remove {
        /// The table, as database.table.
        #[arg(value_name = "DB.TABLE", value_parser = commands::parse_table_name)]
        table: (String, String),
    },
}

#[derive(Subcommand)]
enum MemberCmd {
    /// Add a node as a learner (it receives the log but does not vote).
    Add {
        /// The node's id (its node.id).
        id: u64,
        /// The node's admin address as the other members reach it.
        #[arg(value_name = "HOST:PORT")]
        addr: String,
    },
    /// Make a learner a voter.
    Promote {
        /// Member id.
        id: u64,
    },
    /// Remove a member.
    Remove {
        /// Member id.
        id: u64,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("slotctl: cannot start the async runtime ({e})");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("slotctl: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<()> {
    let actor = cli
        .actor
        .or_else(|| std::env::var("USER").ok())
        .filter(|a| !a.is_empty())
        .unwrap_or_else(|| "slotctl".to_string());
    let tls = cli.ca.clone().map(|ca| client::TlsFiles { ca, cert: cli.cert.clone(), key: cli.key.clone() });
    let client = client::Client::new(&cli.cluster, cli.token, Duration::from_secs(cli.timeout), tls.as_ref())?;
    let ctx = Ctx { client, json: cli.json, actor };
    let command = match cli.command {
        Command::Init(args) => init_command(args)?,
        Command::Status => return status::status(&ctx).await,
        Command::History { limit } => return history::history(&ctx, limit).await,
        Command::Shard(ShardCmd::List) => return topology::shard_list(&ctx).await,
        Command::Slots(SlotsCmd::List) => return topology::slots_list(&ctx).await,
        Command::Slots(SlotsCmd::Top { limit }) => return topology::slots_top(&ctx, limit).await,
        Command::Rule(RuleCmd::List) => return topology::rule_list(&ctx).await,
        Command::Member(MemberCmd::Add { id, addr }) => return member::add(&ctx, id, addr).await,
        Command::Member(MemberCmd::Promote { id }) => return member::promote(&ctx, id).await,
        Command::Member(MemberCmd::Remove { id }) => return member::remove(&ctx, id).await,
        Command::Switchover { shard, to } => return member::switchover(&ctx, shard, to).await,
        Command::Failover { shard } => return member::failover(&ctx, shard).await,
        Command::Slots(SlotsCmd::Migrate { ranges, to, wait }) => return migration::migrate(&ctx, &ranges.0, to, wait).await,
        Command::Shard(ShardCmd::Split { shard, into, primary, replicas, by_load, wait }) => {
            let req = slotgate_shared::api::SplitRequest { shard, into, primary, replicas, by_load, actor: Some(ctx.actor.clone()) };
            return migration::start(&ctx, "/shards/split", &req, wait).await;
        }
        Command::Shard(ShardCmd::Merge { from, into, wait }) => {
            let req = slotgate_shared::api::MergeRequest { from, into, actor: Some(ctx.actor.clone()) };
            return migration::start(&ctx, "/shards/merge", &req, wait).await;
        }
        Command::Migration(MigrationCmd::List) => return migration::list(&ctx).await,
        Command::Migration(MigrationCmd::Show { id }) => return migration::show(&ctx, id).await,
        Command::Migration(MigrationCmd::Cancel { id }) => return migration::cancel(&ctx, id).await,
        Command::Slots(SlotsCmd::Assign { ranges, to, force }) => {
            return member::move_slots(&ctx, &ranges.0, to, force).await;
        }
        Command::Shard(ShardCmd::Add { id, primary, replicas }) => {
            TopologyCommand::AddShard { shard: Shard { id, state: ShardState::Active, primary, replicas } }
        }
        Command::Shard(ShardCmd::Remove { id }) => TopologyCommand::RemoveShard { shard: id },
        Command::Shard(ShardCmd::State { id, state }) => TopologyCommand::SetShardState {
            shard: id,
            state: match state {
                StateArg::Active => ShardState::Active,
                StateArg::Draining => ShardState::Draining,
                StateArg::Offline => ShardState::Offline,
            },
        },
        Command::Replica(ReplicaCmd::Add { shard, addr }) => TopologyCommand::AddReplica { shard, addr },
        Command::Replica(ReplicaCmd::Remove { shard, addr }) => TopologyCommand::RemoveReplica { shard, addr },
        Command::Primary(PrimaryCmd::Set { shard, addr, drop_old }) => TopologyCommand::SetPrimary { shard, primary: addr, drop_old },
        Command::Rule(RuleCmd::Add { table: (database, table), column, force }) => {
            let rule = ShardingRule { database, table, column };
            return apply(&ctx, TopologyCommand::AddRule { rule }, force).await;
        }
        Command::Rule(RuleCmd::Remove { table: (database, table) }) => TopologyCommand::RemoveRule { database, table },
    };
    apply(&ctx, command, false).await
}

/// `init`'s command, checked locally (the same pure check the server runs) before it is sent.
fn init_command(args: InitArgs) -> Result<TopologyCommand> {
    let command = match args.config {
        Some(path) => init::from_config_file(&path)?,
        None => {
            let home = args.home.ok_or_else(|| anyhow!("--home is required without --config"))?;
            init::from_flags(args.slot_count, args.shards, home, args.rules)
        }
    };
    init::check(&command)?;
    Ok(command)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_flags() {
        let cli = Cli::try_parse_from(["slotctl", "init", "--shard", "a=h:1,r:2", "--home", "a", "--rule", "d.t.c", "--timeout", "3"]).unwrap();
        assert_eq!(cli.timeout, 3);
        let Command::Init(args) = cli.command else { panic!("not init") };
        let cmd = init_command(args).unwrap();
        assert_eq!(cmd.kind(), "init");
        assert!(Cli::try_parse_from(["slotctl", "init", "--config", "x.toml", "--home", "a"]).is_err());
        assert!(Cli::try_parse_from(["slotctl", "init"]).is_err());
        assert!(Cli::try_parse_from(["slotctl", "slots", "assign", "5-1", "--to", "a"]).is_err());
        let cli = Cli::try_parse_from(["slotctl", "slots", "assign", "0-3,9", "--to", "a", "--force", "--json"]).unwrap();
        let Command::Slots(SlotsCmd::Assign { ranges, force, .. }) = cli.command else { panic!("not assign") };
        assert_eq!((ranges.0.len(), force, cli.json), (2, true, true));
    }
}
