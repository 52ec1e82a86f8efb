//! SQL-level prepared statements (`PREPARE s FROM ...`, `EXECUTE s USING @a, ...`,
//! `EXECUTE IMMEDIATE ...`, `DEALLOCATE PREPARE s`), read from their text.
//!
//! Contract: pure and total. The session keeps each prepared text itself and runs EXECUTE as
//! the text with its `?` placeholders replaced by the values of the USING arguments, written
//! as literals; the result is an ordinary statement, routed by its values like any other.
//! (A prepared statement on one backend connection could not follow the session across
//! shards.)

use super::classify::{skip_literal, skip_quoted, words};

/// Where a prepared text comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A string literal, unescaped.
    Text(String),
    /// A user variable (lower-cased name).
    Var(String),
}

/// One USING argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Arg {
    /// A user variable (lower-cased name).
    Var(String),
    /// A literal, as written.
    Literal(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SqlPrep {
    Prepare { name: String, source: Source },
    Execute { name: String, args: Vec<Arg> },
    Immediate { source: Source, args: Vec<Arg> },
    Deallocate { name: String },
}

/// Reads one statement; `None` if it is not one of these, `Some(Err(why))` if it is one in a
/// form the session cannot run (the caller refuses it with 1235).
pub fn parse(stmt: &str, backslash_escapes: bool) -> Option<Result<SqlPrep, String>> {
    let w = words(stmt);
    let is = |i: usize, k: &str| w.get(i).is_some_and(|x| x.eq_ignore_ascii_case(k));
    if (is(0, "DEALLOCATE") || is(0, "DROP")) && is(1, "PREPARE") {
        return Some(match w.get(2) {
            Some(n) if w.len() == 3 => Ok(SqlPrep::Deallocate { name: name(n) }),
            _ => Err("DEALLOCATE PREPARE takes one statement name".into()),
        });
    }
    let t = stmt.trim_start();
    if is(0, "PREPARE") {
        let Some(n) = w.get(1) else { return Some(Err("PREPARE needs a statement name".into())) };
        let at = match find_word(t, "FROM") {
            Some(at) => at,
            None => return Some(Err("PREPARE needs FROM".into())),
        };
        return Some(source(t[at..].trim(), backslash_escapes).map(|source| SqlPrep::Prepare { name: name(n), source }));
    }
    if is(0, "EXECUTE") && is(1, "IMMEDIATE") {
        let rest = after_words(t, 2);
        let (src, using) = split_using(rest);
        return Some(source(src.trim(), backslash_escapes).and_then(|source| Ok(SqlPrep::Immediate { source, args: args(using)? })));
    }
    if is(0, "EXECUTE") {
        let Some(n) = w.get(1) else { return Some(Err("EXECUTE needs a statement name".into())) };
        let (_, using) = split_using(after_words(t, 2));
        return Some(args(using).map(|args| SqlPrep::Execute { name: name(n), args }));
    }
    None
}

fn name(word: &str) -> String {
    let t = word.trim_end_matches(';');
    let t = if t.len() >= 2 && t.starts_with('`') && t.ends_with('`') { t[1..t.len() - 1].replace("``", "`") } else { t.to_string() };
    t.to_lowercase()
}

/// Byte offset just after the top-level keyword `kw` (outside quotes), if any.
fn find_word(s: &str, kw: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' | b'`' => i = skip_quoted(b, i),
            c if c.is_ascii_alphabetic() && (i == 0 || !is_word_byte(b[i - 1])) => {
                let end = (i..b.len()).find(|&j| !is_word_byte(b[j])).unwrap_or(b.len());
                if s[i..end].eq_ignore_ascii_case(kw) {
                    return Some(end);
                }
                i = end;
            }
            _ => i += 1,
        }
    }
    None
}

fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c == b'@'
}

/// The text after the first `n` words (skipping spaces).
fn after_words(s: &str, n: usize) -> &str {
    let mut rest = s.trim_start();
    for _ in 0..n {
        let end = if rest.starts_with('`') { skip_quoted(rest.as_bytes(), 0) } else { rest.find(|c: char| c.is_whitespace()).unwrap_or(rest.len()) };
        rest = rest[end..].trim_start();
    }
    rest
}

/// `text USING args` → (text, args).
fn split_using(s: &str) -> (&str, &str) {
    // `find_word` returns the end of the keyword; the text is what stands before it.
    match find_word(s, "USING") {
        Some(end) => (&s[..end - "USING".len()], &s[end..]),
        None => (s, ""),
    }
}

fn source(s: &str, backslash_escapes: bool) -> Result<Source, String> {
    let s = s.trim().trim_end_matches(';').trim();
    if let Some(v) = s.strip_prefix('@').filter(|v| !v.starts_with('@') && !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')) {
        return Ok(Source::Var(v.to_lowercase()));
    }
    match string_literal(s, backslash_escapes) {
        Some(text) => Ok(Source::Text(text)),
        None => Err("PREPARE ... FROM takes a string literal or a user variable here".into()),
    }
}

/// An SQL string literal (`'..'` or `".."`, alone) unescaped.
fn string_literal(s: &str, backslash_escapes: bool) -> Option<String> {
    let b = s.as_bytes();
    let q = *b.first()?;
    if (q != b'\'' && q != b'"') || skip_quoted(b, 0) != b.len() || b.len() < 2 || b[b.len() - 1] != q {
        return None;
    }
    let inner = &b[1..b.len() - 1];
    let mut out = Vec::with_capacity(inner.len());
    let mut i = 0;
    while i < inner.len() {
        let c = inner[i];
        if c == b'\\' && backslash_escapes && i + 1 < inner.len() {
            let e = inner[i + 1];
            match e {
                b'0' => out.push(0),
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                b't' => out.push(b'\t'),
                b'b' => out.push(8),
                b'Z' => out.push(26),
                b'%' | b'_' => out.extend_from_slice(&[b'\\', e]),
                other => out.push(other),
            }
            i += 2;
        } else if c == q && inner.get(i + 1) == Some(&q) {
            out.push(q);
            i += 2;
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

fn args(s: &str) -> Result<Vec<Arg>, String> {
    let s = s.trim().trim_end_matches(';').trim();
    if s.is_empty() {
        return Ok(Vec::new());
    }
    let b = s.as_bytes();
    let mut parts = Vec::new();
    let (mut start, mut i) = (0, 0);
    while i < b.len() {
        match b[i] {
            b'\'' | b'"' | b'`' => i = skip_quoted(b, i),
            b',' => {
                parts.push(s[start..i].trim());
                i += 1;
                start = i;
            }
            _ => i += 1,
        }
    }
    parts.push(s[start..].trim());
    parts.into_iter().map(arg).collect()
}

fn arg(a: &str) -> Result<Arg, String> {
    if let Some(v) = a.strip_prefix('@').filter(|v| !v.starts_with('@') && !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$')) {
        return Ok(Arg::Var(v.to_lowercase()));
    }
    let b = a.as_bytes();
    let number = !a.is_empty() && a.bytes().all(|c| c.is_ascii_digit() || b"+-.eE".contains(&c)) && a.bytes().any(|c| c.is_ascii_digit());
    let string = matches!(b.first(), Some(b'\'' | b'"')) && skip_quoted(b, 0) == b.len();
    if number || string || a.eq_ignore_ascii_case("NULL") {
        return Ok(Arg::Literal(a.to_string()));
    }
    Err(format!("EXECUTE ... USING takes user variables and literals here, not `{a}`"))
}

/// `text` with its `?` placeholders (outside strings, quoted names and comments) replaced by
/// `values` in order; `Err(n)` when the text has `n` placeholders and `values` another count.
pub fn substitute(text: &str, values: &[String]) -> Result<String, usize> {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len() + values.iter().map(String::len).sum::<usize>());
    let (mut i, mut copied, mut n) = (0, 0, 0);
    while i < b.len() {
        if let Some(end) = skip_literal(b, i) {
            i = end;
            continue;
        }
        match b[i] {
            b'?' => {
                out.push_str(&text[copied..i]);
                if let Some(v) = values.get(n) {
                    out.push_str(v);
                }
                n += 1;
                i += 1;
                copied = i;
            }
            _ => i += 1,
        }
    }
    out.push_str(&text[copied..]);
    if n == values.len() {
        Ok(out)
    } else {
        Err(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_forms() {
        assert_eq!(parse("PREPARE s FROM 'SELECT ?'", true), Some(Ok(SqlPrep::Prepare { name: "s".into(), source: Source::Text("SELECT ?".into()) })));
        assert_eq!(parse("prepare `My` from @Q", true), Some(Ok(SqlPrep::Prepare { name: "my".into(), source: Source::Var("q".into()) })));
        assert_eq!(parse("PREPARE s FROM 'it''s \\'x\\''", true), Some(Ok(SqlPrep::Prepare { name: "s".into(), source: Source::Text("it's 'x'".into()) })));
        assert_eq!(
            parse("EXECUTE s USING @a, 5, 'x,y'", true),
            Some(Ok(SqlPrep::Execute { name: "s".into(), args: vec![Arg::Var("a".into()), Arg::Literal("5".into()), Arg::Literal("'x,y'".into())] }))
        );
        assert_eq!(parse("EXECUTE s", true), Some(Ok(SqlPrep::Execute { name: "s".into(), args: vec![] })));
        assert_eq!(
            parse("EXECUTE IMMEDIATE 'SELECT ? USING' USING @k", true),
            Some(Ok(SqlPrep::Immediate { source: Source::Text("SELECT ? USING".into()), args: vec![Arg::Var("k".into())] }))
        );
        assert_eq!(parse("DEALLOCATE PREPARE s", true), Some(Ok(SqlPrep::Deallocate { name: "s".into() })));
        assert_eq!(parse("DROP PREPARE S", true), Some(Ok(SqlPrep::Deallocate { name: "s".into() })));
        assert!(matches!(parse("EXECUTE s USING @a + 1", true), Some(Err(_))));
        assert!(matches!(parse("PREPARE s FROM CONCAT('a')", true), Some(Err(_))));
        assert_eq!(parse("SELECT 1", true), None);
    }

    #[test]
    fn substitutes_placeholders_outside_strings() {
        assert_eq!(substitute("SELECT ?, '?', `?` FROM t WHERE a = ? -- ?\n", &["1".into(), "'x'".into()]).as_deref(), Ok("SELECT 1, '?', `?` FROM t WHERE a = 'x' -- ?\n"));
        assert_eq!(substitute("SELECT ?", &[]), Err(1));
        assert_eq!(substitute("SELECT 1", &["1".into()]), Err(0));
    }

    #[test]
    fn total_on_garbage() {
        for s in ["PREPARE", "EXECUTE", "EXECUTE IMMEDIATE", "PREPARE s FROM '", "EXECUTE s USING ,,", "DROP PREPARE", "PREPARE s FROM @"] {
            let _ = parse(s, true);
        }
    }
}
