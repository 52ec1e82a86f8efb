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
        let mut chain = ChainDepth::default();
        Tokenizer::new(&dialect, sql)
            .with_unescape(false)
            .tokenize_with_location_into_buf_with_mapper(&mut tokens, |mut t| {
                chain.push(&t.token);
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
        if chain.max > MAX_CHAIN {
            return Err(RouteError::unsupported(format!(
                "expressions with more than {MAX_CHAIN} operators in a row are not supported by the router: use IN (...) or split the statement"
            )));
        }
        let statements = Parser::new(&dialect)
            .with_options(ParserOptions::new().with_unescape(false))
            .with_recursion_limit(RECURSION_LIMIT)
            .with_tokens_with_locations(tokens)
            .parse_statements()
            .map_err(|e| RouteError::Parse(e.to_string()))?;
        Ok(Parsed { statements, placeholders })
    }
}

/// Operators allowed in a row (one expression, not counting those separated by commas).
/// sqlparser builds left-deep trees for operator chains and its Clone/Drop recurse, so this
/// bounds the stack the statement needs (release builds handle several thousand levels in 2 MiB).
pub const MAX_CHAIN: usize = 1000;

/// An upper bound on how deeply operator chains nest: per parenthesis level, the operators
/// since the last comma, summed over the open levels.
#[derive(Default)]
struct ChainDepth {
    levels: Vec<usize>,
    current: usize,
    max: usize,
}

impl ChainDepth {
    fn push(&mut self, token: &Token) {
        use sqlparser::keywords::Keyword;
        match token {
            Token::Whitespace(_) | Token::Period | Token::Number(..) | Token::Placeholder(_) => {}
            Token::LParen | Token::LBracket => self.levels.push(std::mem::take(&mut self.current)),
            Token::RParen | Token::RBracket => self.current = self.levels.pop().unwrap_or(0),
            Token::Comma => self.current = 0,
            Token::SemiColon => {
                self.levels.clear();
                self.current = 0;
            }
            Token::Word(w) => {
                if matches!(
                    w.keyword,
                    Keyword::AND | Keyword::OR | Keyword::XOR | Keyword::NOT | Keyword::IS | Keyword::LIKE | Keyword::RLIKE
                        | Keyword::REGEXP | Keyword::IN | Keyword::BETWEEN | Keyword::DIV | Keyword::MOD | Keyword::COLLATE
                ) {
                    self.bump();
                }
            }
            Token::SingleQuotedString(_) | Token::DoubleQuotedString(_) | Token::HexStringLiteral(_) | Token::NationalStringLiteral(_) => {}
            _ => self.bump(),
        }
    }

    fn bump(&mut self) {
        self.current += 1;
        let total = self.levels.iter().sum::<usize>() + self.current;
        self.max = self.max.max(total);
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
        let long = format!("SELECT * FROM t WHERE {}", vec!["a = 1"; 600].join(" OR "));
        assert!(matches!(Parsed::parse(&long), Err(RouteError::NotSupported(_))));
        let long = format!("SELECT * FROM t WHERE {}", vec!["a = 1"; 400].join(" OR "));
        assert!(Parsed::parse(&long).is_ok());
        let rows = vec!["(1, 'x', -2)"; 5000].join(", ");
        assert!(Parsed::parse(&format!("INSERT INTO t (a, b, c) VALUES {rows}")).is_ok());
        let list = (0..5000).map(|i| i.to_string()).collect::<Vec<_>>().join(", ");
        assert!(Parsed::parse(&format!("SELECT * FROM t WHERE a IN ({list})")).is_ok());
    }
}
