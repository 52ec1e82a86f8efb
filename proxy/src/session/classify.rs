//! What a statement does to session state, read from its leading keywords.
//!
//! Contract: pure and total (never panics on any text). It splits a COM_QUERY into
//! statements (`split`) and tells for each whether it changes the database, sets a
//! replayable session variable, assigns user variables, or leaves state that only its own
//! connection can hold (temporary tables, locks), in which case the session keeps that
//! connection. Routing by shard key is not done here.

pub use super::split::{skip_literal, skip_quoted, split};
use super::split::{skip_block, skip_line};

/// How one statement affects the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// No session effect.
    None,
    /// `USE db`.
    Use(String),
    /// A session `SET` that can be replayed on another connection (its full text).
    Set(String),
    /// State only this connection can hold; the reason is for logs.
    Sticky(&'static str),
    /// The statement may assign these user variables (lower-cased names, without `@`): the
    /// session reads their values back and replays them on its other connections.
    Vars(Vec<String>),
}

/// Transaction control statements, which the session runs on every shard of the transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxControl {
    /// BEGIN / START TRANSACTION (its text, replayed on shards that join later).
    Begin(String),
    Commit,
    Rollback,
    /// SAVEPOINT name (its text, replayed on shards that join later).
    Savepoint(String),
    /// ROLLBACK TO SAVEPOINT / RELEASE SAVEPOINT: on every shard of the transaction.
    OnAll,
}

/// Facts about a whole COM_QUERY.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Classified {
    pub effects: Vec<Effect>,
    /// Mentions LAST_INSERT_ID() or @@identity: needs the session's last insert id.
    pub reads_last_insert_id: bool,
    /// `LOAD DATA LOCAL INFILE 'name'` (alone in its query): the file the client must send.
    pub local_infile: Option<String>,
    /// Transaction control, when the query is exactly one such statement.
    pub tx: Option<TxControl>,
    /// Every statement only reads or sets session state (SELECT, SHOW, SET, …): safe to run
    /// again if a connection died before answering.
    pub read_only: bool,
    /// A statement that commits an open transaction before it runs, as on MariaDB (DDL,
    /// LOCK TABLES, ...).
    pub implicit_commit: bool,
    /// `SET autocommit = 1`: commits an open transaction only when autocommit was off.
    pub enables_autocommit: bool,
    /// A statement is SQL-level PREPARE / EXECUTE / DEALLOCATE PREPARE, which the session
    /// runs itself (see `sqlprep`).
    pub sql_prep: bool,
    /// A LOAD DATA LOCAL INFILE among several statements (the session refuses it: the file
    /// request of one statement of many cannot be told apart).
    pub local_infile_in_multi: bool,
    /// `KILL ...`, when the query is exactly that statement: the session runs it (its ids
    /// are slotgate's connection ids, not a backend's).
    pub kill: Option<Kill>,
    /// A KILL among several statements (refused: passed on, it would name a backend thread).
    pub kill_in_multi: bool,
    /// `SHOW [FULL] PROCESSLIST` alone in its query (`Some(full)`): the session answers it
    /// with the node's client connections.
    pub processlist: Option<bool>,
    /// SHOW PROCESSLIST among several statements (refused: passed on, it would list
    /// backend threads).
    pub processlist_in_multi: bool,
}

/// `KILL [HARD | SOFT] [CONNECTION | QUERY] target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kill {
    pub query_only: bool,
    pub target: KillTarget,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KillTarget {
    /// A connection id.
    Id(u64),
    /// `CONNECTION_ID()`: the session's own connection.
    Own,
    /// `KILL USER ...`, `KILL QUERY ID ...`, another expression.
    Unsupported,
}

impl Classified {
    pub fn statements(&self) -> usize {
        self.effects.len()
    }

    /// User variables the statements may assign.
    pub fn assigned_vars(&self) -> Vec<String> {
        let mut names: Vec<String> = self.effects.iter().filter_map(|e| if let Effect::Vars(v) = e { Some(v.clone()) } else { None }).flatten().collect();
        names.sort();
        names.dedup();
        names
    }
}

/// Splits and classifies `sql`.
pub fn classify(sql: &str) -> Classified {
    let mut effects = Vec::new();
    let mut reads_last_insert_id = false;
    let mut read_only = true;
    let mut implicit_commit = false;
    let mut enables_autocommit = false;
    let mut sql_prep = false;
    let statements = split(sql);
    let (local_infile, tx, kill) = match statements.as_slice() {
        [one] => (local_infile_name(one), tx_control(one), kill_statement(&words(one))),
        _ => (None, None, None),
    };
    let kill_in_multi = statements.len() > 1 && statements.iter().any(|s| kill_statement(&words(s)).is_some());
    let processlist = match statements.as_slice() {
        [one] => processlist_statement(&words(one)),
        _ => None,
    };
    let processlist_in_multi = statements.len() > 1 && statements.iter().any(|s| processlist_statement(&words(s)).is_some());
    for stmt in &statements {
        let words = words(stmt);
        reads_last_insert_id |= words.iter().any(|w| {
            ["LAST_INSERT_ID", "@@IDENTITY", "@@LAST_INSERT_ID", "@@SESSION.LAST_INSERT_ID"].iter().any(|k| w.eq_ignore_ascii_case(k))
        });
        let first = words.first().copied().unwrap_or("");
        implicit_commit |= commits_implicitly(&words);
        enables_autocommit |= turns_autocommit_on(&words);
        sql_prep |= ["PREPARE", "EXECUTE", "DEALLOCATE"].iter().any(|k| first.eq_ignore_ascii_case(k))
            || (first.eq_ignore_ascii_case("DROP") && words.get(1).is_some_and(|w| w.eq_ignore_ascii_case("PREPARE")));
        read_only &= ["SELECT", "SHOW", "DESC", "DESCRIBE", "EXPLAIN", "SET", "USE", "VALUES"].iter().any(|k| first.eq_ignore_ascii_case(k))
            && !words.iter().any(|w| w.eq_ignore_ascii_case("OUTFILE") || w.eq_ignore_ascii_case("DUMPFILE"));
        effects.push(effect(stmt, &words));
    }
    let local_infile_in_multi = statements.len() > 1 && statements.iter().any(|s| local_infile_name(s).is_some());
    Classified { effects, reads_last_insert_id, local_infile, tx, read_only, implicit_commit, enables_autocommit, sql_prep, local_infile_in_multi, kill, kill_in_multi, processlist, processlist_in_multi }
}

/// `SHOW [FULL] PROCESSLIST`: `Some(full)`.
fn processlist_statement(words: &[&str]) -> Option<bool> {
    let is = |w: &str, k: &str| w.eq_ignore_ascii_case(k);
    match words {
        [show, list] if is(show, "SHOW") && is(list, "PROCESSLIST") => Some(false),
        [show, full, list] if is(show, "SHOW") && is(full, "FULL") && is(list, "PROCESSLIST") => Some(true),
        _ => None,
    }
}

/// `KILL [HARD | SOFT] [CONNECTION | QUERY] <id | CONNECTION_ID() | ...>`.
fn kill_statement(words: &[&str]) -> Option<Kill> {
    let is = |i: usize, k: &str| words.get(i).is_some_and(|w| w.eq_ignore_ascii_case(k));
    if !is(0, "KILL") {
        return None;
    }
    let mut i = 1;
    if is(i, "HARD") || is(i, "SOFT") {
        i += 1;
    }
    let mut query_only = false;
    if is(i, "CONNECTION") {
        i += 1;
    } else if is(i, "QUERY") {
        query_only = true;
        i += 1;
    }
    let target = match &words[i.min(words.len())..] {
        _ if is(i, "ID") || is(i, "USER") => KillTarget::Unsupported,
        [id] if id.eq_ignore_ascii_case("CONNECTION_ID") => KillTarget::Own,
        [id] => id.parse().map(KillTarget::Id).unwrap_or(KillTarget::Unsupported),
        _ => KillTarget::Unsupported,
    };
    Some(Kill { query_only, target })
}

/// Statements that end an open transaction before they run (MariaDB's "statements that cause
/// an implicit commit"): DDL other than on temporary tables, account management, LOCK TABLES.
/// (Turning autocommit on commits too, but only when it was off: see `turns_autocommit_on`.)
fn commits_implicitly(words: &[&str]) -> bool {
    let up = |i: usize| words.get(i).map(|w| w.to_ascii_uppercase()).unwrap_or_default();
    match up(0).as_str() {
        "CREATE" | "DROP" => {
            let second = up(1);
            let temporary = second == "TEMPORARY" || (second == "OR" && up(3) == "TEMPORARY");
            !temporary && second != "PREPARE"
        }
        "ALTER" | "RENAME" | "TRUNCATE" | "GRANT" | "REVOKE" | "ANALYZE" | "OPTIMIZE" | "REPAIR" | "INSTALL" | "UNINSTALL" => true,
        "LOCK" => up(1) == "TABLES" || up(1) == "TABLE",
        _ => false,
    }
}

/// `SET autocommit = 1` (or ON / TRUE, with @@, SESSION or LOCAL).
fn turns_autocommit_on(words: &[&str]) -> bool {
    match words.first() {
        Some(w) if w.eq_ignore_ascii_case("SET") => {
            let at = words.iter().position(|w| {
                let w = w.to_ascii_lowercase();
                w == "autocommit" || w == "@@autocommit" || w == "@@session.autocommit" || w == "@@local.autocommit"
            });
            at.and_then(|i| words.get(i + 1)).is_some_and(|v| ["1", "ON", "TRUE"].iter().any(|k| v.eq_ignore_ascii_case(k)))
        }
        _ => false,
    }
}

/// The user variables (`@name`, not `@@system`) a statement names, lower-cased without `@`;
/// `None` when one is written in a form this reader does not take apart (quoted names).
fn user_vars(words: &[&str]) -> Option<Vec<String>> {
    let mut names = Vec::new();
    for w in words {
        if let Some(name) = w.strip_prefix('@').filter(|_| !w.starts_with("@@")) {
            let name = name.trim_end_matches('.');
            if name.is_empty() || name.contains('@') || name.contains('.') {
                return None;
            }
            names.push(name.to_lowercase());
        }
    }
    Some(names)
}

/// Recognises transaction control statements.
pub fn tx_control(stmt: &str) -> Option<TxControl> {
    let first = stmt.trim_start().as_bytes().first().map(|b| b.to_ascii_uppercase());
    if !matches!(first, Some(b'B' | b'S' | b'C' | b'R')) {
        return None;
    }
    let w = words(stmt);
    let up = |i: usize| w.get(i).map(|x| x.to_ascii_uppercase()).unwrap_or_default();
    let text = stmt.trim().to_string();
    match up(0).as_str() {
        "BEGIN" if w.len() == 1 || (w.len() == 2 && up(1) == "WORK") => Some(TxControl::Begin(text)),
        "START" if up(1) == "TRANSACTION" => Some(TxControl::Begin(text)),
        "COMMIT" => Some(TxControl::Commit),
        "ROLLBACK" => {
            let to = if up(1) == "WORK" { up(2) } else { up(1) };
            Some(if to == "TO" { TxControl::OnAll } else { TxControl::Rollback })
        }
        "SAVEPOINT" if w.len() == 2 => Some(TxControl::Savepoint(text)),
        "RELEASE" if up(1) == "SAVEPOINT" => Some(TxControl::OnAll),
        _ => None,
    }
}

/// The file name of `LOAD {DATA|XML} [LOW_PRIORITY|CONCURRENT] LOCAL INFILE 'name'`.
pub fn local_infile_name(stmt: &str) -> Option<String> {
    if !stmt.trim_start().as_bytes().first().is_some_and(|b| b.eq_ignore_ascii_case(&b'L')) {
        return None;
    }
    let w = words(stmt);
    let is = |i: usize, k: &str| w.get(i).is_some_and(|x| x.eq_ignore_ascii_case(k));
    if !is(0, "LOAD") || !(is(1, "DATA") || is(1, "XML")) {
        return None;
    }
    let local = if is(2, "LOCAL") { 2 } else if is(3, "LOCAL") { 3 } else { return None };
    if !is(local + 1, "INFILE") {
        return None;
    }
    // The name is the first string literal after INFILE.
    let upper = stmt.to_ascii_uppercase();
    let at = upper.find("INFILE")? + "INFILE".len();
    let rest = stmt[at..].trim_start();
    let quote = rest.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let end = skip_quoted(rest.as_bytes(), 0);
    let body = rest.get(1..end.checked_sub(1)?)?;
    let doubled: String = [quote, quote].iter().collect();
    Some(body.replace(&doubled, &quote.to_string()).replace("\\\\", "\\"))
}

fn effect(stmt: &str, words: &[&str]) -> Effect {
    let up = |i: usize| words.get(i).map(|w| w.to_ascii_uppercase()).unwrap_or_default();
    for w in words {
        if w.eq_ignore_ascii_case("GET_LOCK") {
            return Effect::Sticky("named lock");
        }
        if w.eq_ignore_ascii_case("SQL_CALC_FOUND_ROWS") {
            return Effect::Sticky("SQL_CALC_FOUND_ROWS");
        }
    }
    let first = words.first().copied().unwrap_or("");
    // Statements that may assign user variables: `:=`, `INTO @v`, `SET @v`, `CALL p(@out)`.
    let assigns = words.contains(&":=")
        || words.windows(2).any(|p| p[0].eq_ignore_ascii_case("INTO") && p[1].starts_with('@') && !p[1].starts_with("@@"))
        || first.eq_ignore_ascii_case("CALL");
    if assigns {
        return match user_vars(words) {
            Some(names) if names.is_empty() => Effect::None,
            Some(names) => Effect::Vars(names),
            None => Effect::Sticky("user variable with a quoted name"),
        };
    }
    if !["USE", "SET", "CREATE", "LOCK", "PREPARE", "EXECUTE", "DEALLOCATE", "HANDLER", "XA"].iter().any(|k| first.eq_ignore_ascii_case(k)) {
        return Effect::None;
    }
    match up(0).as_str() {
        "USE" => match words.get(1) {
            Some(db) => Effect::Use(unquote(db)),
            None => Effect::None,
        },
        "SET" => set_effect(stmt, words),
        "CREATE" if up(1) == "TEMPORARY" || (up(1) == "OR" && up(3) == "TEMPORARY") => Effect::Sticky("temporary table"),
        "LOCK" => Effect::Sticky("LOCK TABLES"),
        "HANDLER" => Effect::Sticky("HANDLER"),
        "XA" => Effect::Sticky("XA transaction"),
        _ => Effect::None,
    }
}

fn set_effect(stmt: &str, words: &[&str]) -> Effect {
    let second = words.get(1).map(|w| w.to_ascii_uppercase()).unwrap_or_default();
    match second.as_str() {
        "GLOBAL" | "PASSWORD" | "STATEMENT" => return Effect::None,
        "ROLE" | "DEFAULT" => return Effect::Sticky("SET ROLE"),
        // Without SESSION, SET TRANSACTION applies to the next transaction only.
        "TRANSACTION" => return Effect::Sticky("SET TRANSACTION for the next transaction"),
        _ => {}
    }
    if second.starts_with("@@GLOBAL.") {
        return Effect::None;
    }
    let targets: Vec<&&str> = words.iter().skip(1).filter(|w| w.starts_with('@') && !w.starts_with("@@")).collect();
    if !targets.is_empty() {
        // Only user variables (`SET @a = 1, @b = @a + 1`): read back and replayed as values.
        // Mixed with system variables, the text could not be replayed as written.
        let only_user = stmt_assignments(stmt).iter().all(|target| target.starts_with('@') && !target.starts_with("@@"));
        return match user_vars(words) {
            Some(names) if only_user => Effect::Vars(names),
            _ => Effect::Sticky("user variable set with system variables"),
        };
    }
    Effect::Set(stmt.trim().to_string())
}

/// The system variables a session `SET` assigns (lower-case, without `@@session.`), as
/// MariaDB's trackers count them: `SET NAMES` and `SET CHARACTER SET` change the client,
/// connection and results character sets.
pub fn set_targets(stmt: &str) -> Vec<String> {
    let mut out = Vec::new();
    for target in stmt_assignments(stmt) {
        let t = target.to_ascii_lowercase();
        if t.starts_with('@') && !t.starts_with("@@") {
            continue;
        }
        let t = ["@@session.", "@@local.", "@@"].iter().find_map(|p| t.strip_prefix(p)).unwrap_or(&t).trim_matches('`').to_string();
        if t == "names" || t == "character" || t == "charset" {
            out.extend(["character_set_client", "character_set_connection", "character_set_results"].map(String::from));
        } else if !t.is_empty() {
            out.push(t);
        }
    }
    out
}

/// The first word of every top-level assignment of a `SET a = x, b = y`: the targets.
fn stmt_assignments(stmt: &str) -> Vec<String> {
    let b = stmt.as_bytes();
    let mut parts = Vec::new();
    let (mut start, mut depth, mut i) = (0, 0i32, 0);
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' | b'`' => {
                i = skip_quoted(b, i);
                continue;
            }
            b'(' => depth += 1,
            b')' => depth -= 1,
            b',' if depth == 0 => {
                parts.push(&stmt[start..i]);
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    parts.push(&stmt[start..]);
    parts
        .iter()
        .enumerate()
        .filter_map(|(n, part)| {
            let w = words(part);
            let skip = if n == 0 { 1 } else { 0 };
            let w: Vec<&str> = w.into_iter().skip(skip).collect();
            let first = w.first()?.to_ascii_uppercase();
            // `SET SESSION x = 1`, `SET NAMES ...`: system settings.
            let target = if ["SESSION", "LOCAL", "GLOBAL"].contains(&first.as_str()) { w.get(1)? } else { w.first()? };
            Some(target.to_string())
        })
        .collect()
}

fn unquote(ident: &str) -> String {
    let t = ident.trim_end_matches(';');
    if t.len() >= 2 && t.starts_with('`') && t.ends_with('`') {
        t[1..t.len() - 1].replace("``", "`")
    } else {
        t.to_string()
    }
}

/// The statement's words: identifiers, keywords, `@vars`, `:=`; strings and comments
/// skipped; the `/*!NNNNN ... */` wrapper of executable comments dropped, its content kept.
pub fn words(stmt: &str) -> Vec<&str> {
    let b = stmt.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() || c == b'(' || c == b')' || c == b',' || c == b';' || c == b'=' {
            i += 1;
        } else if c == b'\'' || c == b'"' {
            i = skip_quoted(b, i);
        } else if c == b'#' || (c == b'-' && b.get(i + 1) == Some(&b'-') && b.get(i + 2).is_none_or(|c| c.is_ascii_whitespace())) {
            i = skip_line(b, i);
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            if b.get(i + 2) == Some(&b'!') {
                i += 3;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            } else {
                i = skip_block(b, i);
            }
        } else if c == b'*' && b.get(i + 1) == Some(&b'/') {
            i += 2;
        } else if c == b':' && b.get(i + 1) == Some(&b'=') {
            out.push(&stmt[i..i + 2]);
            i += 2;
        } else if c == b'`' {
            let end = skip_quoted(b, i);
            out.push(&stmt[i..end]);
            i = end;
        } else {
            let start = i;
            while i < b.len() {
                let d = b[i];
                if d.is_ascii_alphanumeric() || d == b'_' || d == b'@' || d == b'.' || d == b'$' || d >= 0x80 {
                    i += 1;
                } else {
                    break;
                }
            }
            if i == start {
                i += 1;
            } else {
                out.push(&stmt[start..i]);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(sql: &str) -> Effect {
        let c = classify(sql);
        assert_eq!(c.statements(), 1, "{sql}");
        c.effects[0].clone()
    }

    #[test]
    fn session_effects() {
        assert_eq!(one("USE `my``db`"), Effect::Use("my`db".into()));
        assert_eq!(one("use shop"), Effect::Use("shop".into()));
        assert_eq!(one("SET NAMES utf8mb4"), Effect::Set("SET NAMES utf8mb4".into()));
        assert_eq!(set_targets("SET @@session.time_zone = 'SYSTEM', SESSION sql_mode = '', @@Wait_Timeout=1"), ["time_zone", "sql_mode", "wait_timeout"]);
        assert_eq!(set_targets("SET NAMES latin1").len(), 3);
        assert_eq!(one("set sql_mode='ANSI'"), Effect::Set("set sql_mode='ANSI'".into()));
        assert_eq!(one("/*!40101 SET character_set_client = utf8 */"), Effect::Set("/*!40101 SET character_set_client = utf8 */".into()));
        assert_eq!(one("SET GLOBAL max_connections=10"), Effect::None);
        assert_eq!(one("SET @x = 1"), Effect::Vars(vec!["x".into()]));
        assert_eq!(one("SET @X := @y + 1, @z = 2"), Effect::Vars(vec!["x".into(), "y".into(), "z".into()]));
        assert!(matches!(one("SET @x = 1, sql_mode = ''"), Effect::Sticky(_)));
        assert_eq!(one("CALL p(@out)"), Effect::Vars(vec!["out".into()]));
        assert_eq!(one("SELECT a FROM t WHERE b = @v"), Effect::None);
        assert!(matches!(one("SET TRANSACTION ISOLATION LEVEL READ COMMITTED"), Effect::Sticky(_)));
        assert!(matches!(one("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED"), Effect::Set(_)));
        assert!(matches!(one("CREATE TEMPORARY TABLE t (a int)"), Effect::Sticky(_)));
        assert!(matches!(one("SELECT GET_LOCK('a', 1)"), Effect::Sticky(_)));
        assert_eq!(one("SELECT @a := 1"), Effect::Vars(vec!["a".into()]));
        assert_eq!(one("SELECT 1 INTO @a"), Effect::Vars(vec!["a".into()]));
        assert_eq!(one("SELECT ':=' , 'USE x'"), Effect::None);
        assert_eq!(one("SELECT * FROM t WHERE a = 1"), Effect::None);
    }

    #[test]
    fn splits_respecting_quotes_and_comments() {
        assert_eq!(split("SELECT 1; SELECT ';'; -- x;\n SELECT 2;").len(), 3);
        assert_eq!(split("SELECT 'a\\';b'").len(), 1);
        assert_eq!(split("/* ; */ SELECT 1").len(), 1);
        assert_eq!(split(" ; ;").len(), 0);
        assert!(classify("SELECT LAST_INSERT_ID()").reads_last_insert_id);
        assert!(!classify("SELECT 'LAST_INSERT_ID()'").reads_last_insert_id);
    }

    #[test]
    fn read_only_statements() {
        assert!(classify("SELECT 1; SHOW TABLES; SET @@sql_mode = ''").read_only);
        assert!(!classify("SELECT 1; INSERT INTO t VALUES (1)").read_only);
        assert!(!classify("SELECT * FROM t INTO OUTFILE '/tmp/x'").read_only);
        assert!(!classify("INSERT INTO t SELECT SLEEP(1)").read_only);
    }

    #[test]
    fn transaction_control() {
        assert_eq!(classify("BEGIN").tx, Some(TxControl::Begin("BEGIN".into())));
        assert_eq!(classify("start transaction read only").tx, Some(TxControl::Begin("start transaction read only".into())));
        assert_eq!(classify("COMMIT").tx, Some(TxControl::Commit));
        assert_eq!(classify("rollback work").tx, Some(TxControl::Rollback));
        assert_eq!(classify("ROLLBACK TO SAVEPOINT a").tx, Some(TxControl::OnAll));
        assert_eq!(classify("SAVEPOINT a").tx, Some(TxControl::Savepoint("SAVEPOINT a".into())));
        assert_eq!(classify("RELEASE SAVEPOINT a").tx, Some(TxControl::OnAll));
        assert_eq!(classify("BEGIN; SELECT 1").tx, None);
        assert_eq!(classify("SELECT 'BEGIN'").tx, None);
    }

    #[test]
    fn local_infile_names() {
        assert_eq!(classify("LOAD DATA LOCAL INFILE '/tmp/a.csv' INTO TABLE t").local_infile.as_deref(), Some("/tmp/a.csv"));
        assert_eq!(classify("load data low_priority local infile \"x'y\" into table t").local_infile.as_deref(), Some("x'y"));
        assert_eq!(classify("LOAD DATA INFILE '/tmp/a.csv' INTO TABLE t").local_infile, None);
        assert_eq!(classify("LOAD DATA LOCAL INFILE").local_infile, None);
        assert_eq!(classify("SELECT 1; LOAD DATA LOCAL INFILE 'a' INTO TABLE t").local_infile, None);
    }

    #[test]
    fn implicit_commits() {
        assert!(classify("CREATE TABLE t (a int)").implicit_commit);
        assert!(classify("drop table t").implicit_commit);
        assert!(!classify("CREATE TEMPORARY TABLE t (a int)").implicit_commit);
        assert!(!classify("DROP TEMPORARY TABLE t").implicit_commit);
        assert!(classify("SET autocommit = 1").enables_autocommit && !classify("SET autocommit = 1").implicit_commit);
        let k = |sql: &str| classify(sql).kill;
        assert_eq!(k("KILL 5"), Some(Kill { query_only: false, target: KillTarget::Id(5) }));
        assert_eq!(k("kill query 7"), Some(Kill { query_only: true, target: KillTarget::Id(7) }));
        assert_eq!(k("KILL HARD CONNECTION 9"), Some(Kill { query_only: false, target: KillTarget::Id(9) }));
        assert_eq!(k("KILL CONNECTION_ID()"), Some(Kill { query_only: false, target: KillTarget::Own }));
        assert_eq!(k("KILL QUERY ID 3").map(|k| k.target), Some(KillTarget::Unsupported));
        assert_eq!(k("KILL USER app").map(|k| k.target), Some(KillTarget::Unsupported));
        assert_eq!(k("SELECT 1"), None);
        assert!(classify("SELECT 1; KILL 5").kill_in_multi && classify("SELECT 1; KILL 5").kill.is_none());
        assert_eq!(classify("show processlist").processlist, Some(false));
        assert_eq!(classify("SHOW FULL PROCESSLIST;").processlist, Some(true));
        assert_eq!(classify("SHOW PROCESSLIST LIKE 'x'").processlist, None);
        assert!(classify("SELECT 1; SHOW PROCESSLIST").processlist_in_multi);
        assert!(classify("set @@autocommit=ON").enables_autocommit);
        assert!(!classify("SET autocommit = 0").enables_autocommit);
        assert!(!classify("SELECT 1").implicit_commit);
        assert!(classify("PREPARE s FROM 'SELECT 1'").sql_prep);
        assert!(classify("DROP PREPARE s").sql_prep);
        assert!(!classify("DROP PREPARE s").implicit_commit);
    }

    #[test]
    fn total_on_garbage() {
        for s in ["'", "`", "/*", "/*!", "--", "#", ":", "\u{0}", "SET", "USE", "'\\"] {
            let _ = classify(s);
        }
    }
}
