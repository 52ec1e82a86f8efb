//! One statement's answer, normalised so that slotgate's and the reference's compare: rows
//! as strings in order, affected rows, warning count, or the error code.
//!
//! Contract: `run` never fails; a lost connection is an answer too (`Broken`). Two answers
//! are equal when they are the same value; an error matches on its code only.

use mysql_async::prelude::*;
use mysql_async::{Conn, Row, Value};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Rows { rows: Vec<Vec<String>>, warnings: u16 },
    Ok { affected: u64, warnings: u16 },
    Error { code: u16, message: String },
    Broken(String),
}

impl Answer {
    pub fn same_as(&self, other: &Answer) -> bool {
        match (self, other) {
            (Answer::Error { code: a, .. }, Answer::Error { code: b, .. }) => a == b,
            (Answer::Broken(_), Answer::Broken(_)) => true,
            (a, b) => a == b,
        }
    }

    /// slotgate's refusal of what it cannot do faithfully (accepted by the comparison).
    pub fn is_refusal(&self) -> bool {
        matches!(self, Answer::Error { code: 1235, .. })
    }
}

pub fn text(v: &Value) -> String {
    match v {
        Value::NULL => "NULL".into(),
        Value::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        Value::Int(i) => i.to_string(),
        Value::UInt(u) => u.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Double(d) => d.to_string(),
        other => other.as_sql(false),
    }
}

fn error(e: mysql_async::Error) -> Answer {
    match e {
        mysql_async::Error::Server(s) => Answer::Error { code: s.code, message: s.message },
        other => Answer::Broken(other.to_string()),
    }
}

/// Runs `sql` (through the binary protocol when `binary`) and reads its whole answer.
pub async fn run(conn: &mut Conn, sql: &str, binary: bool) -> Answer {
    if binary {
        match conn.exec_iter(sql, ()).await {
            Ok(r) => read(r).await,
            Err(e) => error(e),
        }
    } else {
        match conn.query_iter(sql).await {
            Ok(r) => read(r).await,
            Err(e) => error(e),
        }
    }
}

async fn read<P: mysql_async::prelude::Protocol>(mut result: mysql_async::QueryResult<'_, 'static, P>) -> Answer {
    let has_columns = result.columns().is_some_and(|c| !c.is_empty());
    let rows: Vec<Row> = match result.collect().await {
        Ok(r) => r,
        Err(e) => return error(e),
    };
    let affected = result.affected_rows();
    let warnings = result.warnings();
    if let Err(e) = result.drop_result().await {
        return error(e);
    }
    if has_columns {
        let rows = rows.into_iter().map(|r| r.unwrap().iter().map(text).collect()).collect();
        Answer::Rows { rows, warnings }
    } else {
        Answer::Ok { affected, warnings }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comparison_can_fail() {
        let a = Answer::Rows { rows: vec![vec!["1".into()]], warnings: 0 };
        let b = Answer::Rows { rows: vec![vec!["2".into()]], warnings: 0 };
        assert!(!a.same_as(&b));
        assert!(a.same_as(&a.clone()));
        let e1 = Answer::Error { code: 1062, message: "x".into() };
        let e2 = Answer::Error { code: 1062, message: "y".into() };
        assert!(e1.same_as(&e2));
        assert!(!e1.same_as(&Answer::Error { code: 1064, message: "x".into() }));
        assert!(!Answer::Ok { affected: 1, warnings: 0 }.same_as(&Answer::Ok { affected: 2, warnings: 0 }));
        assert!(!Answer::Ok { affected: 1, warnings: 0 }.same_as(&Answer::Ok { affected: 1, warnings: 1 }));
        assert_eq!(text(&Value::NULL), "NULL");
        assert_ne!(text(&Value::NULL), text(&Value::Bytes(b"NULL".to_vec())).to_lowercase() + "x");
    }
}
