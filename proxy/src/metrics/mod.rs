//! Every metric slotgate exports, named in one place, with handles registered once.
//!
//! Contract: no other module calls `metrics::counter!` and friends; they hold a [`Metrics`]
//! (cheap to clone) and bump its handles. The recorder is local to a node (no global), so
//! several nodes can run in one test process.

pub mod cutover;
pub mod login;
pub mod meta;
pub mod migration;
pub mod slots;

use crate::error::ErrorKind;
pub use cutover::CutoverMetrics;
pub use login::LoginMetrics;
pub use meta::MetaMetrics;
pub use migration::MigrationMetrics;
use metrics::{Counter, Gauge, Histogram};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};
use std::sync::Arc;

pub const CLIENT_CONNECTIONS: &str = "slotgate_client_connections";
pub const CLIENT_CONNECTIONS_TOTAL: &str = "slotgate_client_connections_total";
pub const COMMANDS_TOTAL: &str = "slotgate_commands_total";
pub const COMMAND_DURATION_SECONDS: &str = "slotgate_command_duration_seconds";
pub const QUERIES_TOTAL: &str = "slotgate_queries_total";
pub const STATEMENTS_REFUSED_TOTAL: &str = "slotgate_statements_refused_total";
pub const SHARD_QUERY_DURATION_SECONDS: &str = "slotgate_shard_query_duration_seconds";
pub const MULTI_SHARD_TRANSACTIONS_TOTAL: &str = "slotgate_multi_shard_transactions_total";
pub const PARTIAL_COMMITS_TOTAL: &str = "slotgate_partial_commits_total";
pub const PARSE_CACHE_ENTRIES: &str = "slotgate_parse_cache_entries";
pub const ERRORS_TOTAL: &str = "slotgate_errors_total";
pub const BACKEND_POOL_SIZE: &str = "slotgate_backend_pool_size";
pub const BACKEND_POOL_IN_USE: &str = "slotgate_backend_pool_in_use";
pub const BACKEND_POOL_WAITS_TOTAL: &str = "slotgate_backend_pool_waits_total";
pub const BACKEND_RETRIES_TOTAL: &str = "slotgate_backend_retries_total";
pub const BACKEND_RESTARTS_TOTAL: &str = "slotgate_backend_restarts_total";
pub const SESSIONS_PINNED: &str = "slotgate_sessions_pinned";
pub const DISTRIBUTED_DEADLOCKS_TOTAL: &str = "slotgate_distributed_deadlocks_total";
pub const DEADLOCK_RESOLUTION_SECONDS: &str = "slotgate_deadlock_resolution_seconds";

/// Latency buckets in seconds: 50 µs to 30 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0, 30.0,
];

/// Protocol commands counted separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandLabel {
    Query,
    Prepare,
    Execute,
    Ping,
    InitDb,
    Other,
}

impl CommandLabel {
    const ALL: [CommandLabel; 6] = [
        CommandLabel::Query,
        CommandLabel::Prepare,
        CommandLabel::Execute,
        CommandLabel::Ping,
        CommandLabel::InitDb,
        CommandLabel::Other,
    ];

    fn label(self) -> &'static str {
        match self {
            CommandLabel::Query => "query",
            CommandLabel::Prepare => "prepare",
            CommandLabel::Execute => "execute",
            CommandLabel::Ping => "ping",
            CommandLabel::InitDb => "init_db",
            CommandLabel::Other => "other",
        }
    }
}

struct CommandHandles {
    ok: Counter,
    error: Counter,
    latency: Histogram,
}

/// Per-backend-node pool handles.
#[derive(Clone)]
pub struct PoolMetrics {
    pub size: Gauge,
    pub in_use: Gauge,
    pub waits: Counter,
    pub retries: Counter,
    pub restarts: Counter,
    /// Time this shard took to answer routed statements.
    pub latency: Histogram,
}

/// Route labels of `slotgate_queries_total`.
pub const ROUTES: [&str; 5] = ["single", "multi", "scatter", "broadcast", "home"];
/// Kind labels of `slotgate_queries_total`.
pub const KINDS: [&str; 4] = ["read", "write", "ddl", "session"];
/// Reasons of `slotgate_sessions_pinned` (see `SessionState::pin_reason`).
pub const PIN_REASONS: [&str; 5] = ["transaction", "autocommit_off_transaction", "temporary_table", "lock", "session_state"];
/// Reasons of `slotgate_statements_refused_total`.
pub const REFUSALS: [&str; 4] = ["not_supported", "missing_shard_key", "parse", "single_shard_transaction"];

/// Routing handles, registered once.
pub struct RoutingMetrics {
    queries: Vec<Counter>,
    refused: Vec<Counter>,
    pub multi_shard_transactions: Counter,
    pub partial_commits: Counter,
    pub parse_cache_entries: Gauge,
    /// By reason (PIN_REASONS order).
    sessions_pinned: Vec<Gauge>,
    /// Cross-shard deadlocks broken by this node (one per victim).
    pub distributed_deadlocks: Counter,
    /// From the victim's statement start to its kill.
    pub deadlock_resolution: Histogram,
}

impl RoutingMetrics {
    /// The gauge of sessions holding a backend connection for `reason` (from PIN_REASONS).
    pub fn pinned(&self, reason: &str) -> &Gauge {
        let i = PIN_REASONS.iter().position(|x| *x == reason).unwrap_or(PIN_REASONS.len() - 1);
        &self.sessions_pinned[i]
    }

    /// Counts one routed statement (`route` from ROUTES, `kind` from KINDS).
    pub fn routed(&self, route: &str, kind: &str) {
        let r = ROUTES.iter().position(|x| *x == route).unwrap_or(4);
        let k = KINDS.iter().position(|x| *x == kind).unwrap_or(3);
        self.queries[r * KINDS.len() + k].increment(1);
    }

    pub fn refused(&self, reason: &str) {
        let i = REFUSALS.iter().position(|x| *x == reason).unwrap_or(0);
        self.refused[i].increment(1);
    }
}

struct Inner {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    client_connections: Gauge,
    client_connections_total: Counter,
    commands: Vec<CommandHandles>,
    errors: Vec<Counter>,
    routing: RoutingMetrics,
    meta: MetaMetrics,
    cutover: CutoverMetrics,
    migration: MigrationMetrics,
    login: LoginMetrics,
    slots: slots::SlotLoad,
}

/// The node's metric handles and its Prometheus renderer.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

impl Metrics {
    pub fn new() -> Metrics {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)
            .map(|b| b.build_recorder())
            // Only fails on an empty bucket list, which LATENCY_BUCKETS is not.
            .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
        let handle = recorder.handle();
        let (client_connections, client_connections_total, commands, errors) =
            metrics::with_local_recorder(&recorder, || {
                metrics::describe_gauge!(CLIENT_CONNECTIONS, "Client connections open now.");
                metrics::describe_counter!(CLIENT_CONNECTIONS_TOTAL, "Client connections accepted.");
                metrics::describe_counter!(COMMANDS_TOTAL, "Client protocol commands by command and outcome.");
                metrics::describe_histogram!(COMMAND_DURATION_SECONDS, "Client command latency, seconds.");
                metrics::describe_counter!(QUERIES_TOTAL, "Routed statements by route and kind.");
                metrics::describe_counter!(STATEMENTS_REFUSED_TOTAL, "Statements refused by the router, by reason.");
                metrics::describe_histogram!(SHARD_QUERY_DURATION_SECONDS, "Time a shard took to answer a routed statement, seconds.");
                metrics::describe_counter!(MULTI_SHARD_TRANSACTIONS_TOTAL, "Transactions that reached more than one shard.");
                metrics::describe_counter!(PARTIAL_COMMITS_TOTAL, "Multi-shard commits that committed on some shards only.");
                metrics::describe_gauge!(PARSE_CACHE_ENTRIES, "Statements in the parse cache.");
                metrics::describe_counter!(ERRORS_TOTAL, "Errors returned to clients, by kind.");
                metrics::describe_gauge!(BACKEND_POOL_SIZE, "Backend connections open, per node.");
                metrics::describe_gauge!(BACKEND_POOL_IN_USE, "Backend connections lent out, per node.");
                metrics::describe_counter!(BACKEND_POOL_WAITS_TOTAL, "Waits for a free backend connection, per node.");
                metrics::describe_counter!(BACKEND_RETRIES_TOTAL, "Statements retried on a fresh connection after a dead pooled one.");
                metrics::describe_counter!(BACKEND_RESTARTS_TOTAL, "Restarts of a backend node seen (its boot time changed); its connections' session state was forgotten.");
                metrics::describe_counter!(DISTRIBUTED_DEADLOCKS_TOTAL, "Cross-shard deadlocks this node broke by rolling back a victim transaction.");
                metrics::describe_histogram!(DEADLOCK_RESOLUTION_SECONDS, "Time from a cross-shard deadlock victim's statement start to its rollback, seconds.");
                metrics::describe_gauge!(SESSIONS_PINNED, "Client sessions holding backend connections between statements, by reason (the others hold none).");
                let commands = CommandLabel::ALL
                    .iter()
                    .map(|c| CommandHandles {
                        ok: metrics::counter!(COMMANDS_TOTAL, "command" => c.label(), "outcome" => "ok"),
                        error: metrics::counter!(COMMANDS_TOTAL, "command" => c.label(), "outcome" => "error"),
                        latency: metrics::histogram!(COMMAND_DURATION_SECONDS, "command" => c.label()),
                    })
                    .collect();
                let errors = ErrorKind::ALL
                    .iter()
                    .map(|k| metrics::counter!(ERRORS_TOTAL, "kind" => k.label()))
                    .collect();
                (
                    metrics::gauge!(CLIENT_CONNECTIONS),
                    metrics::counter!(CLIENT_CONNECTIONS_TOTAL),
                    commands,
                    errors,
                )
            });
        let routing = metrics::with_local_recorder(&recorder, || RoutingMetrics {
            queries: ROUTES
                .iter()
                .flat_map(|r| KINDS.iter().map(move |k| metrics::counter!(QUERIES_TOTAL, "route" => *r, "kind" => *k)))
                .collect(),
            refused: REFUSALS.iter().map(|r| metrics::counter!(STATEMENTS_REFUSED_TOTAL, "reason" => *r)).collect(),
            multi_shard_transactions: metrics::counter!(MULTI_SHARD_TRANSACTIONS_TOTAL),
            partial_commits: metrics::counter!(PARTIAL_COMMITS_TOTAL),
            parse_cache_entries: metrics::gauge!(PARSE_CACHE_ENTRIES),
            sessions_pinned: PIN_REASONS.iter().map(|r| metrics::gauge!(SESSIONS_PINNED, "reason" => *r)).collect(),
            distributed_deadlocks: metrics::counter!(DISTRIBUTED_DEADLOCKS_TOTAL),
            deadlock_resolution: metrics::histogram!(DEADLOCK_RESOLUTION_SECONDS),
        });
        let meta = MetaMetrics::register(&recorder);
        let cutover = CutoverMetrics::register(&recorder);
        let migration = MigrationMetrics::register(&recorder);
        let login = LoginMetrics::register(&recorder);
        let slots = slots::SlotLoad::register(&recorder);
        Metrics {
            inner: Arc::new(Inner {
                routing,
                meta,
                cutover,
                migration,
                login,
                slots,
                recorder,
                handle,
                client_connections,
                client_connections_total,
                commands,
                errors,
            }),
        }
    }

    /// Handles for one backend node's pool, registered once per node.
    pub fn pool(&self, shard: &str, node: &str) -> PoolMetrics {
        let labels = [("shard", shard.to_string()), ("node", node.to_string())];
        metrics::with_local_recorder(&self.inner.recorder, || PoolMetrics {
            size: metrics::gauge!(BACKEND_POOL_SIZE, &labels),
            in_use: metrics::gauge!(BACKEND_POOL_IN_USE, &labels),
            waits: metrics::counter!(BACKEND_POOL_WAITS_TOTAL, &labels),
            retries: metrics::counter!(BACKEND_RETRIES_TOTAL, &labels),
            restarts: metrics::counter!(BACKEND_RESTARTS_TOTAL, &labels),
            latency: metrics::histogram!(SHARD_QUERY_DURATION_SECONDS, &labels),
        })
    }

    /// The routing handles (shared by every session).
    pub fn routing(&self) -> &RoutingMetrics {
        &self.inner.routing
    }

    /// The meta group and topology handles.
    pub fn meta(&self) -> &MetaMetrics {
        &self.inner.meta
    }

    /// Cutover and lease handles.
    pub fn cutover(&self) -> &CutoverMetrics {
        &self.inner.cutover
    }

    /// Online slot migration handles.
    pub fn login(&self) -> &LoginMetrics {
        &self.inner.login
    }

    /// Per-slot load counters.
    pub fn slots(&self) -> &slots::SlotLoad {
        &self.inner.slots
    }

    pub fn migration(&self) -> &MigrationMetrics {
        &self.inner.migration
    }

    pub fn connection_opened(&self) {
        self.inner.client_connections.increment(1.0);
        self.inner.client_connections_total.increment(1);
    }

    pub fn connection_closed(&self) {
        self.inner.client_connections.decrement(1.0);
    }

    /// Records one finished client command.
    pub fn command(&self, command: CommandLabel, ok: bool, seconds: f64) {
        let idx = CommandLabel::ALL.iter().position(|c| *c == command).unwrap_or(5);
        let h = &self.inner.commands[idx];
        if ok { h.ok.increment(1) } else { h.error.increment(1) }
        h.latency.record(seconds);
    }

    pub fn error(&self, kind: ErrorKind) {
        if let Some(i) = ErrorKind::ALL.iter().position(|k| *k == kind) {
            self.inner.errors[i].increment(1);
        }
    }

    /// Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        self.inner.slots.report();
        self.inner.handle.render()
    }

    /// Drains histogram samples into buckets; call every few seconds.
    pub fn upkeep(&self) {
        self.inner.handle.run_upkeep();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}
