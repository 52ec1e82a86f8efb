//! Routing of text the SQL parser could not read.
//!
//! Contract: pure. Such a statement goes to the home shard, unless a word of it names a
//! sharded table: then it is refused (1235), since where its rows are cannot be known.

use super::{Route, RouteError, StatementKind, Target};
use slotgate_shared::Topology;

/// The route of unparsable `text` (`why` is the parser's message, for the refusal).
pub fn route_unparsed(text: &str, why: &str, topo: &Topology) -> Result<Route, RouteError> {
    let home = Route::new(StatementKind::Session, Target::Home);
    let words: Vec<&str> = text.split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$' || c == '.' || c == '`')).filter(|w| !w.is_empty()).collect();
    let names = |table: &str| words.iter().any(|w| w.rsplit('.').next().is_some_and(|last| last.trim_matches('`').eq_ignore_ascii_case(table)));
    match topo.rules.iter().find(|r| names(&r.table)) {
        None => Ok(home),
        Some(r) => Err(RouteError::NotSupported(format!(
            "This version of slotgate doesn't yet support this statement on sharded table {}.{}: its SQL parser could not read it ({why}); rewrite it in plainer SQL",
            r.database, r.table
        ))),
    }
}
