//! Parsing a COM_QUERY (or a prepared statement's text) into [`Parsed`], with a bounded cache.
//!
//! Contract: `ParseCache::parse` never panics on any text; it returns `RouteError::Parse` for
//! what sqlparser (MySqlDialect) cannot read. String literals are kept as written (no
//! unescaping), so printing a statement back gives the same literals. Every `?` placeholder is
//! numbered in textual order: the AST holds `Value::Placeholder("?0")`, `"?1"`, ... (0-based);
//! placeholders of other spellings (`?5`, `$1`, `:x`) become `"?!<original>"`, which the
//! router treats as unknown values. The cache holds at most `capacity` statements, evicting an
//! arbitrary entry when full; texts longer than [`MAX_CACHED_LEN`] and failures are not cached.

use super::{Parsed, RouteError};
use dashmap::DashMap;
use sqlparser::dialect::MySqlDialect;
use sqlparser::parser::{Parser, ParserOptions};
use sqlparser::tokenizer::{Token, Tokenizer};
use std::sync::Arc;

/// Statements longer than this (bytes) are parsed but not cached (bulk INSERTs rarely repeat).
pub const MAX_CACHED_LEN: usize = 16 * 1024;

/// How deep expressions may nest before the parser gives up (protects the stack).
const RECURSION_LIMIT: usize = 64;

impl Parsed {
    /// Parses `sql` (one or several `;`-separated statements) without caching.
    pub fn parse(sql: &str) -> Result<Parsed, RouteError> {
        let dialect = MySqlDialect {};
        let mut tokens = Vec::new();
        let mut placeholders = 0usize;
        Tokenizer::new(&dialect, sql)
            .with_unescape(false)
            .tokenize_with_location_into_buf_with_mapper(&mut tokens, |mut t| {
                if let Token::Placeholder(p) = &t.token {
                    let renamed = if p == "?" {
                        placeholders += 1;
                        format!("?{}", placeholders - 1)
                    } else {
                        format!("?!{p}")
                    };
                    t.token = Token::Placeholder(renamed);
                }
                t
            })
            .map_err(|e| RouteError::Parse(e.to_string()))?;
        let statements = Parser::new(&dialect)
            .with_options(ParserOptions::new().with_unescape(false))
            .with_recursion_limit(RECURSION_LIMIT)
            .with_tokens_with_locations(tokens)
            .parse_statements()
            .map_err(|e| RouteError::Parse(e.to_string()))?;
        Ok(Parsed { statements, placeholders })
    }
}

/// A bounded, shared cache of parsed statements keyed by their exact text.
#[derive(Debug)]
pub struct ParseCache {
    map: DashMap<Arc<str>, Arc<Parsed>>,
    capacity: usize,
}

impl ParseCache {
    /// A cache holding at most `capacity` statements (0 = never cache).
    pub fn new(capacity: usize) -> Self {
        ParseCache { map: DashMap::new(), capacity }
    }

    /// The parsed form of `sql`, from the cache or freshly parsed (and then cached).
    pub fn parse(&self, sql: &str) -> Result<Arc<Parsed>, RouteError> {
        if let Some(hit) = self.map.get(sql) {
            return Ok(Arc::clone(hit.value()));
        }
        let parsed = Arc::new(Parsed::parse(sql)?);
        if self.capacity > 0 && sql.len() <= MAX_CACHED_LEN {
            while self.map.len() >= self.capacity {
                // Clone the key first: removing while an iterator holds a shard lock deadlocks.
                let victim = self.map.iter().next().map(|e| Arc::clone(e.key()));
                match victim {
                    Some(k) => {
                        self.map.remove(&k);
                    }
                    None => break,
                }
            }
            self.map.insert(Arc::from(sql), Arc::clone(&parsed));
        }
        Ok(parsed)
    }

    /// Statements currently cached.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Drops every cached statement.
    pub fn clear(&self) {
        self.map.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlparser::ast::{Expr, SetExpr, Statement, Value};

    #[test]
    fn caches_and_stays_bounded() {
        let cache = ParseCache::new(3);
        let a = cache.parse("SELECT 1").unwrap();
        let b = cache.parse("SELECT 1").unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        for i in 0..10 {
            cache.parse(&format!("SELECT {i}")).unwrap();
            assert!(cache.len() <= 3);
        }
        assert!(cache.parse("SELEKT").is_err());
        assert!(cache.len() <= 3);
        let none = ParseCache::new(0);
        none.parse("SELECT 1").unwrap();
        assert_eq!(none.len(), 0);
    }

    #[test]
    fn placeholders_are_numbered_in_text_order() {
        let p = Parsed::parse("SELECT ? FROM t WHERE a = ? AND b IN (?, ?) LIMIT ?").unwrap();
        assert_eq!(p.placeholders, 5);
        let text = p.statements[0].to_string();
        assert_eq!(text, "SELECT ?0 FROM t WHERE a = ?1 AND b IN (?2, ?3) LIMIT ?4");
        let odd = Parsed::parse("SELECT ?7").unwrap();
        assert_eq!(odd.placeholders, 0);
        let Statement::Query(q) = &odd.statements[0] else { panic!() };
        let SetExpr::Select(s) = &*q.body else { panic!() };
        let sqlparser::ast::SelectItem::UnnamedExpr(Expr::Value(v)) = &s.projection[0] else { panic!() };
        assert_eq!(v.value, Value::Placeholder("?!?7".into()));
    }

    #[test]
    fn literals_are_kept_as_written() {
        for sql in [
            r"SELECT 'a\\b', 'it''s', 'q\'q', '\\''x', 'tab\there'",
            r#"SELECT "dq\"x", "a""b""#,
            "INSERT INTO t (a, b) VALUES (1, 'x''y'), (-2.50, X'00ff') ON DUPLICATE KEY UPDATE b = VALUES(b)",
        ] {
            let p = Parsed::parse(sql).unwrap();
            assert_eq!(p.statements[0].to_string(), sql);
        }
    }

    #[test]
    fn several_statements_and_errors() {
        assert_eq!(Parsed::parse("SELECT 1; SELECT 2;").unwrap().statements.len(), 2);
        assert_eq!(Parsed::parse("").unwrap().statements.len(), 0);
        assert!(matches!(Parsed::parse("SELECT 'unterminated"), Err(RouteError::Parse(_))));
        let deep = format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000));
        assert!(matches!(Parsed::parse(&deep), Err(RouteError::Parse(_))));
    }
}
