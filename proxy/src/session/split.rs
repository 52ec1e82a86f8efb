//! Splits a query into its statements, as the server does: on `;` outside strings, quoted
//! names, comments and the bodies of compound statements (`CREATE PROCEDURE / FUNCTION /
//! TRIGGER / EVENT ... BEGIN ... END`, `BEGIN NOT ATOMIC ... END`, with their nested IF,
//! CASE, LOOP, WHILE and REPEAT blocks).
//!
//! Contract: pure and total on any text; never panics. Empty statements are dropped.

use super::classify::words;

/// Splits on top-level `;`, dropping empty statements.
pub fn split(sql: &str) -> Vec<&str> {
    let b = sql.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let mut block = Blocks::default();
    while i < b.len() {
        if let Some(end) = skip_literal(b, i) {
            i = end;
            continue;
        }
        let c = b[i];
        if is_word_byte(c) && (i == 0 || !is_word_byte(b[i - 1])) {
            let end = (i..b.len()).find(|&j| !is_word_byte(b[j])).unwrap_or(b.len());
            let next = b[end..].iter().find(|c| !c.is_ascii_whitespace()).copied();
            block.word(&sql[i..end], next);
            i = end;
            continue;
        }
        if c == b';' && block.depth == 0 {
            push_nonempty(&mut out, &sql[start..i]);
            block = Blocks::default();
            i += 1;
            start = i;
            continue;
        }
        i += 1;
    }
    push_nonempty(&mut out, &sql[start..]);
    out
}

fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// Where the scan is in one statement: whether it is a stored program (whose body may hold
/// `;`) and how deep in its compound blocks.
#[derive(Default)]
struct Blocks {
    /// Words of the statement seen so far (only the first few matter).
    seen: usize,
    first_create: bool,
    /// A stored program or an anonymous block: compound keywords count.
    program: bool,
    depth: usize,
    /// The previous word was END (its IF / CASE / LOOP ... belongs to it).
    after_end: bool,
}

impl Blocks {
    fn word(&mut self, w: &str, next: Option<u8>) {
        let up = w.to_ascii_uppercase();
        let up = up.as_str();
        self.seen += 1;
        if self.seen == 1 {
            self.first_create = up == "CREATE";
            // `BEGIN NOT ATOMIC ... END`; a plain BEGIN starts a transaction.
            self.program = false;
        }
        if !self.program {
            if self.first_create && self.seen <= 12 && matches!(up, "PROCEDURE" | "FUNCTION" | "TRIGGER" | "EVENT") {
                self.program = true;
            }
            if self.seen == 2 && up == "NOT" {
                // Anonymous compound statement (the first word was BEGIN).
                self.program = true;
                self.depth = 1;
            }
            return;
        }
        let opens_with_paren = next == Some(b'(');
        if self.after_end {
            self.after_end = false;
            if matches!(up, "IF" | "CASE" | "LOOP" | "WHILE" | "REPEAT" | "FOR") {
                return;
            }
        }
        match up {
            "BEGIN" | "CASE" | "LOOP" => self.depth += 1,
            // IF( and REPEAT( are functions; WHILE / FOR open blocks closed by END WHILE / END FOR.
            "IF" | "REPEAT" if !opens_with_paren => self.depth += 1,
            "WHILE" | "FOR" => self.depth += 1,
            "END" => {
                self.depth = self.depth.saturating_sub(1);
                self.after_end = true;
            }
            _ => {}
        }
    }
}

fn push_nonempty<'a>(out: &mut Vec<&'a str>, s: &'a str) {
    if !words(s).is_empty() {
        out.push(s);
    }
}

/// When a string, quoted name or comment (not a `/*!` executable one) starts at `i`: the
/// index just after it.
pub fn skip_literal(b: &[u8], i: usize) -> Option<usize> {
    match b[i] {
        b'\'' | b'"' | b'`' => Some(skip_quoted(b, i)),
        b'-' if b.get(i + 1) == Some(&b'-') && b.get(i + 2).is_none_or(|c| c.is_ascii_whitespace()) => Some(skip_line(b, i)),
        b'#' => Some(skip_line(b, i)),
        b'/' if b.get(i + 1) == Some(&b'*') && b.get(i + 2) != Some(&b'!') => Some(skip_block(b, i)),
        _ => None,
    }
}

pub fn skip_quoted(b: &[u8], start: usize) -> usize {
    let q = b[start];
    let mut i = start + 1;
    while i < b.len() {
        if b[i] == b'\\' && q != b'`' {
            i += 2;
        } else if b[i] == q {
            if b.get(i + 1) == Some(&q) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    b.len()
}

pub(super) fn skip_line(b: &[u8], start: usize) -> usize {
    b[start..].iter().position(|c| *c == b'\n').map_or(b.len(), |p| start + p + 1)
}

pub(super) fn skip_block(b: &[u8], start: usize) -> usize {
    let mut i = start + 2;
    while i + 1 < b.len() {
        if b[i] == b'*' && b[i + 1] == b'/' {
            return i + 2;
        }
        i += 1;
    }
    b.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_program_bodies_are_one_statement() {
        assert_eq!(split("CREATE PROCEDURE p() BEGIN SELECT 1; SELECT 2; END").len(), 1);
        let p = "CREATE DEFINER=`u`@`%` PROCEDURE p(IN a INT) BEGIN DECLARE x INT DEFAULT 0; IF a > 0 THEN SET x = IF(a > 5, 1, 2); ELSE SET x = 3; END IF; \
                 WHILE x < 10 DO SET x = x + 1; END WHILE; l: LOOP LEAVE l; END LOOP; REPEAT SET x = x - 1; UNTIL x < 0 END REPEAT; \
                 SELECT CASE WHEN x = 1 THEN 'a' ELSE 'b' END, REPEAT('z', 2); CASE x WHEN 1 THEN SELECT 1; ELSE SELECT 2; END CASE; END";
        assert_eq!(split(p).len(), 1, "{p}");
        assert_eq!(split(&format!("{p}; SELECT 3")).len(), 2);
        assert_eq!(split("CREATE TRIGGER t BEFORE INSERT ON x FOR EACH ROW BEGIN SET NEW.a = 1; SET NEW.b = 2; END").len(), 1);
        assert_eq!(split("CREATE FUNCTION f() RETURNS INT DETERMINISTIC RETURN 1; SELECT f()").len(), 2);
        assert_eq!(split("CREATE EVENT e ON SCHEDULE EVERY 1 DAY DO BEGIN DELETE FROM t; DELETE FROM u; END").len(), 1);
        assert_eq!(split("BEGIN NOT ATOMIC SELECT 1; SELECT 2; END; SELECT 3").len(), 2);
    }

    #[test]
    fn transactions_and_plain_statements_still_split() {
        assert_eq!(split("BEGIN; SELECT 1; COMMIT").len(), 3);
        assert_eq!(split("CREATE TABLE t (a INT); INSERT INTO t VALUES (1)").len(), 2);
        assert_eq!(split("SELECT CASE WHEN 1 THEN 2 END; SELECT 3").len(), 2);
        assert_eq!(split("SELECT 1; SELECT ';'; -- x;\n SELECT 2;").len(), 3);
        for s in ["END", "CREATE PROCEDURE", "CREATE PROCEDURE p() BEGIN", "END END END; ;", "\u{0}BEGIN NOT"] {
            let _ = split(s);
        }
    }
}
