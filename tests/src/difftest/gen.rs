//! The session generator: from a seed, a session of statements that mixes session state
//! (user variables, autocommit, character set, sql_mode, USE, SQL prepared statements,
//! temporary tables, savepoints) with transactions and point / IN / range / scatter / join /
//! aggregate reads and multi-row writes over sharded and unsharded tables.
//!
//! Contract: deterministic (the same seed and classes give the same session); every SELECT
//! that returns several rows orders them by a unique key, so answers compare exactly.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Statement classes, as named in `DIFFTEST_CLASSES`.
pub const CLASSES: &[&str] = &[
    "vars", "autocommit", "names", "mode", "use", "prep", "temp", "tx", "savepoint", "point", "in", "range", "scatter", "agg", "join", "insert",
    "update", "delete", "sysvars", "show", "config",
];

/// One generated statement and whether it may run as a server-side prepared statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stmt {
    pub sql: String,
    pub class: &'static str,
    /// A read or a write (not session or transaction control): the binary protocol may carry it.
    pub dml: bool,
}

pub struct Generator {
    rng: StdRng,
    classes: Vec<&'static str>,
}

/// Keys of the initial rows are 1..=ROWS; new rows use NEW_LO.. so that inserts sometimes collide.
pub const ROWS: i64 = 60;
const NEW_LO: i64 = 1000;

impl Generator {
    pub fn new(seed: u64, classes: &[&'static str]) -> Generator {
        Generator { rng: StdRng::seed_from_u64(seed), classes: classes.to_vec() }
    }

    pub fn session(&mut self, len: usize) -> Vec<Stmt> {
        (0..len).map(|_| self.stmt()).collect()
    }

    fn key(&mut self) -> i64 {
        if self.rng.random_bool(0.85) { self.rng.random_range(1..=ROWS) } else { self.rng.random_range(NEW_LO..NEW_LO + 12) }
    }

    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.rng.random_range(0..xs.len())]
    }

    fn stmt(&mut self) -> Stmt {
        let class = self.classes[self.rng.random_range(0..self.classes.len())];
        let (sql, dml) = self.of(class);
        Stmt { sql, class, dml }
    }

    fn of(&mut self, class: &str) -> (String, bool) {
        let k = self.key();
        let k2 = self.key();
        let session = |s: String| (s, false);
        let dml = |s: String| (s, true);
        match class {
            "vars" => session(match self.rng.random_range(0..6) {
                0 => format!("SET @k = {k}"),
                1 => format!("SET @v = '{}'", self.pick(&["abc", "é", "12", "x y"])),
                2 => format!("SET @v = {}, @w = @k + 1", self.rng.random_range(-5..100)),
                3 => format!("SELECT name INTO @v FROM users WHERE id = {k}"),
                4 => "SELECT @k, @v, @w".into(),
                _ => format!("SET @k = {k}, @v = {}.5", self.rng.random_range(0..9)),
            }),
            "autocommit" => session(format!("SET autocommit = {}", self.rng.random_range(0..2))),
            "names" => session(self.pick(&["SET NAMES utf8mb4", "SET NAMES latin1", "SET NAMES utf8mb4 COLLATE utf8mb4_bin"]).into()),
            "mode" => session(self.pick(&["SET sql_mode = ''", "SET sql_mode = 'STRICT_TRANS_TABLES'", "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ZERO_DATE'"]).into()),
            "use" => session("USE dt".into()),
            "prep" => session(match self.rng.random_range(0..5) {
                0 => "PREPARE s FROM 'SELECT id, name, score FROM users WHERE id = ?'".into(),
                1 => "PREPARE s FROM 'UPDATE users SET score = score + 1 WHERE id = ?'".into(),
                2 | 3 => "EXECUTE s USING @k".into(),
                _ => "DEALLOCATE PREPARE s".into(),
            }),
            "temp" => session(match self.rng.random_range(0..4) {
                0 => "CREATE TEMPORARY TABLE IF NOT EXISTS tmp (id INT PRIMARY KEY, v INT)".into(),
                1 => format!("INSERT INTO tmp (id, v) VALUES ({k}, {k2})"),
                2 => "SELECT id, v FROM tmp ORDER BY id".into(),
                _ => "DROP TEMPORARY TABLE IF EXISTS tmp".into(),
            }),
            "tx" => session(self.pick(&["BEGIN", "START TRANSACTION", "COMMIT", "ROLLBACK", "COMMIT", "ROLLBACK"]).into()),
            "savepoint" => session(self.pick(&["SAVEPOINT sp1", "SAVEPOINT sp2", "ROLLBACK TO SAVEPOINT sp1", "RELEASE SAVEPOINT sp1", "ROLLBACK TO SAVEPOINT sp2"]).into()),
            "point" => dml(match self.rng.random_range(0..3) {
                0 => format!("SELECT id, name, score, grp FROM users WHERE id = {k}"),
                1 => "SELECT id, name, score FROM users WHERE id = @k".into(),
                _ => format!("SELECT user_id, order_id, amount FROM orders WHERE user_id = {k} ORDER BY order_id"),
            }),
            "in" => dml(format!("SELECT id, name FROM users WHERE id IN ({k}, {k2}, {}) ORDER BY id", self.key())),
            "range" => {
                let lo = self.rng.random_range(1..ROWS);
                dml(format!("SELECT id, score FROM users WHERE id BETWEEN {lo} AND {} ORDER BY id", lo + self.rng.random_range(0..15)))
            }
            "scatter" => dml(match self.rng.random_range(0..3) {
                0 => format!("SELECT id, name FROM users WHERE score > {} ORDER BY id LIMIT {}", self.rng.random_range(0..100), self.rng.random_range(1..8)),
                1 => "SELECT id, grp FROM users ORDER BY grp, id".into(),
                _ => format!("SELECT user_id, order_id FROM orders WHERE amount > {} ORDER BY user_id, order_id", self.rng.random_range(0..50)),
            }),
            "agg" => dml(match self.rng.random_range(0..3) {
                0 => "SELECT COUNT(*), SUM(score), MIN(score), MAX(score) FROM users".into(),
                1 => "SELECT grp, COUNT(*), SUM(score) FROM users GROUP BY grp ORDER BY grp".into(),
                _ => format!("SELECT COUNT(*), MAX(amount) FROM orders WHERE user_id IN ({k}, {k2})"),
            }),
            "join" => dml(format!(
                "SELECT u.id, o.order_id, o.amount FROM users u JOIN orders o ON o.user_id = u.id WHERE u.id = {k} ORDER BY o.order_id"
            )),
            "insert" => {
                let n = self.rng.random_range(1..5);
                let rows: Vec<String> = (0..n).map(|_| format!("({}, 'new', {}, {})", self.key(), self.rng.random_range(0..100), self.rng.random_range(0..4))).collect();
                dml(match self.rng.random_range(0..3) {
                    0 => format!("INSERT INTO orders (user_id, order_id, amount) VALUES ({k}, {}, {}.25)", self.rng.random_range(1..9), self.rng.random_range(0..90)),
                    _ => format!("INSERT INTO users (id, name, score, grp) VALUES {}", rows.join(", ")),
                })
            }
            "update" => dml(match self.rng.random_range(0..4) {
                0 => format!("UPDATE users SET score = score + 1 WHERE id = {k}"),
                1 => format!("UPDATE users SET name = @v WHERE id = {k}"),
                2 => format!("UPDATE users SET score = {} WHERE id BETWEEN {k} AND {}", self.rng.random_range(0..100), k + 3),
                _ => format!("UPDATE users SET score = @v WHERE id = {k}"),
            }),
            "delete" => dml(match self.rng.random_range(0..2) {
                0 => format!("DELETE FROM users WHERE id = {k}"),
                _ => format!("DELETE FROM orders WHERE user_id = {k} AND order_id < {}", self.rng.random_range(1..6)),
            }),
            "sysvars" => session(self.pick(&["SELECT @@in_transaction", "SELECT @@autocommit", "SELECT @@sql_mode", "SELECT @@character_set_client", "SELECT DATABASE()"]).into()),
            "show" => session(self.pick(&["SHOW TABLES", "SHOW COLUMNS FROM config", "DESCRIBE users"]).into()),
            _ => dml(match self.rng.random_range(0..3) {
                0 => "SELECT k, v FROM config ORDER BY k".into(),
                1 => format!("UPDATE config SET v = v + {} WHERE k = '{}'", self.rng.random_range(1..5), self.pick(&["a", "b", "c"])),
                _ => format!("INSERT INTO config (k, v) VALUES ('{}', {k})", self.pick(&["a", "d", "e"])),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_session() {
        let a = Generator::new(7, CLASSES).session(50);
        let b = Generator::new(7, CLASSES).session(50);
        let c = Generator::new(8, CLASSES).session(50);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let only = Generator::new(7, &["point"]).session(20);
        assert!(only.iter().all(|s| s.class == "point" && s.dml));
    }
}
