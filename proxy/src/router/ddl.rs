//! Routing of everything but queries and DML: DDL, session and metadata statements.
//!
//! Contract: CREATE/ALTER/DROP/TRUNCATE TABLE and CREATE/DROP INDEX of sharded tables go to
//! every shard (`Broadcast`), of unsharded tables home; a statement mixing both is refused.
//! RENAME TABLE to or from a sharded name and CREATE/ALTER/DROP DATABASE go everywhere. SET,
//! USE, SHOW of variables and status, EXPLAIN, transaction control, KILL, FLUSH and the like
//! go where the session is (`Home` / `Session`); SHOW TABLES / COLUMNS / CREATE, DESCRIBE
//! and other schema metadata go to the home shard (`Home` / `Read`), which holds every table.
//! A SET whose subquery reads sharded tables goes to their one shard, or is refused. Any other statement goes home unless it names a sharded table, in which case it
//! is refused (never half-done).

use super::decide::Decision;
use super::scope::{table_name, Analyzer};
use super::{Route, RouteContext, RouteError, StatementKind, Target};
use slotgate_shared::Topology;
use sqlparser::ast::{ObjectName, ObjectType, Statement, Visit, Visitor};
use std::ops::ControlFlow;

pub(crate) fn route_other(stmt: &Statement, topo: &Topology, ctx: &RouteContext<'_>) -> Result<Route, RouteError> {
    let session = Ok(Route::new(StatementKind::Session, Target::Home));
    let everywhere = || Ok(Route::new(StatementKind::Ddl, Target::Broadcast { shards: (0..topo.shards.len()).collect() }));
    match stmt {
        Statement::Set(_) => {
            // `SET @x = (SELECT ...)` reads tables: run it where they are (one shard at most).
            let mut a = Analyzer::new(topo, ctx);
            a.scope(&[], None, 1, |a| a.scan(stmt, 1));
            match a.decide() {
                Ok(Decision::Unsharded) => session,
                Ok(Decision::Single(shard)) => Ok(Route::new(StatementKind::Session, Target::Single { shard })),
                _ => Err(RouteError::unsupported(
                    "SET with a subquery over sharded tables is supported only when the subquery is pinned to one shard",
                )),
            }
        }
        Statement::Use(_)
        | Statement::StartTransaction { .. }
        | Statement::Commit { .. }
        | Statement::Rollback { .. }
        | Statement::Savepoint { .. }
        | Statement::ReleaseSavepoint { .. }
        | Statement::ShowVariable { .. }
        | Statement::ShowStatus { .. }
        | Statement::ShowVariables { .. }
        | Statement::ShowProcessList { .. }
        | Statement::ShowCharset(_)
        | Statement::ShowCollation { .. }
        | Statement::Explain { .. }
        | Statement::Kill { .. }
        | Statement::Flush { .. }
        | Statement::UnlockTables => session,
        // Schema metadata: the home shard holds every table (the unsharded ones only there),
        // wherever the session's connections are.
        Statement::ShowFunctions { .. }
        | Statement::ShowCreate { .. }
        | Statement::ShowColumns { .. }
        | Statement::ShowCatalogs { .. }
        | Statement::ShowDatabases { .. }
        | Statement::ShowSchemas { .. }
        | Statement::ShowObjects(_)
        | Statement::ShowTables { .. }
        | Statement::ShowViews { .. }
        | Statement::ExplainTable { .. } => Ok(Route::new(StatementKind::Read, Target::Home)),
        Statement::CreateDatabase { .. } | Statement::CreateSchema { .. } | Statement::AlterSchema(_) => everywhere(),
        Statement::Drop { object_type: ObjectType::Database | ObjectType::Schema, .. } => everywhere(),
        Statement::Drop { object_type: ObjectType::Table, names, temporary, .. } => tables(names.iter(), *temporary, topo, ctx),
        Statement::Drop { object_type: ObjectType::Index, table: Some(t), .. } => tables([t], false, topo, ctx),
        Statement::CreateTable(ct) => {
            if let Some(q) = &ct.query {
                let mut a = Analyzer::new(topo, ctx);
                a.query(q, 1);
                if !matches!(a.decide(), Ok(Decision::Unsharded)) {
                    return Err(RouteError::unsupported(
                        "CREATE TABLE ... SELECT from sharded tables is not supported: create the table, then insert the rows",
                    ));
                }
            }
            tables([&ct.name], ct.temporary, topo, ctx)
        }
        Statement::AlterTable(at) => tables([&at.name], false, topo, ctx),
        Statement::Truncate(t) => tables(t.table_names.iter().map(|x| &x.name), false, topo, ctx),
        Statement::CreateIndex(ci) => tables([&ci.table_name], false, topo, ctx),
        Statement::RenameTable(list) => {
            // Renaming to or from a sharded name must happen on every shard.
            if list.iter().any(|r| is_sharded(&r.old_name, topo, ctx) || is_sharded(&r.new_name, topo, ctx)) {
                everywhere()
            } else {
                Ok(Route::new(StatementKind::Ddl, Target::Home))
            }
        }
        Statement::LockTables { tables: list } => {
            let sharded = list.iter().any(|t| ctx.database.is_some_and(|d| topo.rule(d, &t.table.value).is_some()));
            if sharded {
                return Err(RouteError::unsupported("LOCK TABLES on sharded tables is not supported: use transactions"));
            }
            session
        }
        other => {
            let names = relations(other);
            if names.iter().any(|n| is_sharded(n, topo, ctx)) {
                let text = other.to_string();
                let what: Vec<&str> = text.split_whitespace().take(2).collect();
                return Err(RouteError::unsupported(format!("{} on sharded tables is not supported", what.join(" "))));
            }
            let text = other.to_string();
            let first = text.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
            let kind = match first.as_str() {
                "CREATE" | "ALTER" | "DROP" | "RENAME" | "TRUNCATE" => StatementKind::Ddl,
                "INSERT" | "UPDATE" | "DELETE" | "REPLACE" | "MERGE" | "LOAD" | "CALL" | "COPY" => StatementKind::Write,
                _ => StatementKind::Session,
            };
            Ok(Route::new(kind, Target::Home))
        }
    }
}

/// DDL on these tables: every shard when all are sharded, home when none is.
fn tables<'n>(names: impl IntoIterator<Item = &'n ObjectName>, temporary: bool, topo: &Topology, ctx: &RouteContext<'_>) -> Result<Route, RouteError> {
    let (mut sharded, mut unsharded) = (0, 0);
    for n in names {
        if is_sharded(n, topo, ctx) {
            sharded += 1;
        } else {
            unsharded += 1;
        }
    }
    if sharded > 0 && (unsharded > 0 || temporary) {
        return Err(RouteError::unsupported(
            "DDL mixing sharded and unsharded tables (or a temporary table named like a sharded one) is not supported: run it per table",
        ));
    }
    let target = if sharded > 0 { Target::Broadcast { shards: (0..topo.shards.len()).collect() } } else { Target::Home };
    Ok(Route::new(StatementKind::Ddl, target))
}

fn is_sharded(name: &ObjectName, topo: &Topology, ctx: &RouteContext<'_>) -> bool {
    match table_name(name, ctx.database) {
        Some((Some(db), t)) => topo.rule(&db, &t).is_some(),
        _ => false,
    }
}

/// Every table name the statement mentions (as sqlparser marks relations).
fn relations(stmt: &Statement) -> Vec<ObjectName> {
    struct Collect(Vec<ObjectName>);
    impl Visitor for Collect {
        type Break = ();
        fn pre_visit_relation(&mut self, r: &ObjectName) -> ControlFlow<()> {
            self.0.push(r.clone());
            ControlFlow::Continue(())
        }
    }
    let mut c = Collect(Vec::new());
    let _ = stmt.visit(&mut c);
    c.0
}
