//! Shard-aware routing: which shard(s) a parsed statement goes to, and how.
//!
//! Contract: `route` is pure (no I/O, no async) and total: it never panics on anything the SQL
//! text or the parameters control. It routes each statement of a COM_QUERY and never picks
//! fewer shards than the statement needs: when it cannot be sure, it answers
//! `RouteError::NotSupported`. A table is sharded when the topology has a rule for
//! `(database, table)`, the database being the table's qualifier or the session's current
//! database; a table named without a database while none is selected counts as unsharded (the
//! backend will answer "No database selected").
//!
//! Texts the router produces (`Split` parts, `Multi`/`Scatter` `sql`) are self-contained: bound
//! parameters are inlined as literals, so send them as text queries (or prepare them without
//! parameters). `Single`, and `Multi`/`Scatter` with `sql: None`, mean the original text with
//! the original parameters. A key bound to NULL (or `key = NULL`) matches no row: such a
//! statement goes to the home shard (`Single { shard: home }`).
//!
//! Known limits of the shard-key reading: a key compared with a value of another type (a
//! string key with a number, a decimal written with other digits, a case-insensitive
//! collation) hashes as written, per the slot function's contract.

mod aggregate;
mod ddl;
mod decide;
mod dml;
mod error;
mod foreign;
mod insert;
mod key;
mod literal;

/// A bound parameter as a self-contained SQL literal (see `literal`), e.g. to replay a
/// prepared `SET ... = ?` as text; `None` for a value no literal can carry.
pub fn sql_literal(v: &mysql_common::value::Value) -> Option<String> {
    literal::literal(v).ok().map(|l| l.to_string())
}
mod merge;
mod parse;
mod scope;
mod select;
mod unparsed;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_edge;
#[cfg(test)]
mod tests_foreign;
#[cfg(test)]
mod tests_select;

pub use error::RouteError;
pub use merge::{AggFunc, Aggregate, MergePlan, SortKey};
pub use parse::{ParseCache, MAX_CACHED_LEN, MAX_CHAIN};
pub use unparsed::route_unparsed;

use slotgate_shared::Topology;
use sqlparser::ast::{Statement, Use};

/// The statements of one COM_QUERY (or prepared statement), as [`ParseCache::parse`] makes them.
#[derive(Debug, Clone, PartialEq)]
pub struct Parsed {
    pub statements: Vec<Statement>,
    /// How many `?` placeholders the text has (they are numbered `?0`, `?1`, ... in the AST).
    pub placeholders: usize,
}

/// What the router needs to know about the session.
#[derive(Debug, Clone, Copy)]
pub struct RouteContext<'a> {
    /// The session's current database (USE).
    pub database: Option<&'a str>,
    /// Bound values of a prepared statement (`?` in textual order); empty for text queries.
    pub params: &'a [mysql_common::value::Value],
}

/// What a statement does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatementKind {
    Read,
    Write,
    Ddl,
    Session,
}

/// Where and how to run a statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub kind: StatementKind,
    pub target: Target,
    /// Texts that replace the statement on some of the target's shards (self-contained,
    /// parameters inlined): a shard holding rows of slots it does not own (an online
    /// migration's copies on its target, its leftovers on its source) runs the statement with
    /// those rows filtered out (see `foreign`).
    pub per_shard: Vec<(usize, String)>,
    /// The one slot a `Single` statement touches, when the router knows it from the shard
    /// key (for per-slot load telemetry only; routing never reads it).
    pub slot: Option<u32>,
}

impl Route {
    pub fn new(kind: StatementKind, target: Target) -> Route {
        Route { kind, target, per_shard: Vec::new(), slot: None }
    }

    /// This route, counted as touching `slot` (when known).
    pub(crate) fn on_slot(mut self, slot: Option<u32>) -> Route {
        self.slot = slot;
        self
    }

    /// The text to run on shard `idx` instead of the statement, if any.
    pub fn text_for(&self, idx: usize) -> Option<&str> {
        self.per_shard.iter().find(|(i, _)| *i == idx).map(|(_, s)| s.as_str())
    }
}

/// The shard(s) a statement runs on. Shard numbers are indices in `Topology::shards`; lists are
/// sorted and without duplicates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Same statement (original text, original params) to one shard.
    Single { shard: usize },
    /// Same statement to several shards chosen by key (IN list over shards), results concatenated
    /// or merged with `merge` (same rules as Scatter); `sql` is the rewritten text if any.
    /// For UPDATE/DELETE the plan is a passthrough and affected rows are summed.
    Multi { shards: Vec<usize>, merge: MergePlan, sql: Option<String> },
    /// Per-shard rewritten statements (multi-row INSERT/REPLACE split). Affected rows are summed.
    /// Texts have literals inlined (bound params substituted as SQL literals, correctly escaped).
    Split { parts: Vec<(usize, String)> },
    /// Every shard; `sql` is the rewritten text if the router changed it (None = original).
    Scatter { shards: Vec<usize>, sql: Option<String>, merge: MergePlan },
    /// UPDATE/DELETE without a pinned key on every shard; affected rows summed.
    ScatterWrite { shards: Vec<usize> },
    /// DDL on sharded tables / CREATE|DROP DATABASE: every shard.
    Broadcast { shards: Vec<usize> },
    /// Unsharded tables, no tables at all, SET, USE, SHOW, EXPLAIN, transaction control: the
    /// home shard.
    Home,
}

/// Routes every statement of `parsed`. Several statements must all go to the same one shard
/// (home counts as the home shard); the result is then `Home` if all went home, else
/// `Single`, with the "strongest" kind (Ddl > Write > Read > Session). No statement at all
/// (an empty query) is `Session` / `Home`.
pub fn route(parsed: &Parsed, topology: &Topology, ctx: &RouteContext<'_>) -> Result<Route, RouteError> {
    let mut database: Option<String> = ctx.database.map(String::from);
    let mut routes = Vec::with_capacity(parsed.statements.len());
    for stmt in &parsed.statements {
        let here = RouteContext { database: database.as_deref(), params: ctx.params };
        routes.push(route_statement(stmt, topology, &here)?);
        if let Statement::Use(Use::Database(name) | Use::Schema(name) | Use::Object(name)) = stmt {
            if let Some(parts) = scope::idents(name) {
                if let [db] = parts.as_slice() {
                    database = Some(db.clone());
                }
            }
        }
    }
    combine(routes, topology)
}

fn route_statement(stmt: &Statement, topo: &Topology, ctx: &RouteContext<'_>) -> Result<Route, RouteError> {
    match stmt {
        Statement::Query(q) => select::route_query(q, topo, ctx),
        Statement::Insert(i) => insert::route_insert(i, topo, ctx),
        Statement::Update(u) => dml::route_update(u, topo, ctx),
        Statement::Delete(d) => dml::route_delete(d, topo, ctx),
        other => ddl::route_other(other, topo, ctx),
    }
}

fn combine(routes: Vec<Route>, topo: &Topology) -> Result<Route, RouteError> {
    if routes.len() <= 1 {
        return Ok(routes.into_iter().next().unwrap_or(Route::new(StatementKind::Session, Target::Home)));
    }
    let rank = |k: StatementKind| match k {
        StatementKind::Session => 0,
        StatementKind::Read => 1,
        StatementKind::Write => 2,
        StatementKind::Ddl => 3,
    };
    let mut kind = StatementKind::Session;
    let mut shard = None;
    let mut all_home = true;
    let mixed = || {
        RouteError::unsupported("several statements in one query that go to different shards are not supported: send them one by one")
    };
    for r in &routes {
        let here = match r.target {
            Target::Home => topo.home_index(),
            Target::Single { shard } => {
                all_home = false;
                shard
            }
            _ => return Err(mixed()),
        };
        if shard.is_some_and(|s| s != here) {
            return Err(mixed());
        }
        shard = Some(here);
        if rank(r.kind) > rank(kind) {
            kind = r.kind;
        }
    }
    let target = match shard {
        Some(s) if !all_home => Target::Single { shard: s },
        _ => Target::Home,
    };
    Ok(Route::new(kind, target))
}
