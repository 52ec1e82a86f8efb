//! How to combine the result sets of one SELECT run on several shards.
//!
//! Contract: a [`MergePlan`] is applied to the rows of all shards (each shard's row has the
//! same columns), in this order:
//! 1. concatenate the shards' rows;
//! 2. if `group_by` or `aggregates` is non-empty, group rows by the `group_by` columns (one
//!    group for everything when `group_by` is empty) and merge each group into one row:
//!    `Count` and `Sum` add up (NULL counts as nothing; all NULL stays NULL), `Min`/`Max` take
//!    the smallest/largest non-NULL value, then `Avg { sum, count }` is set to
//!    merged-sum / merged-count (NULL when the count is 0) — its `sum` and `count` columns are
//!    also listed as `Sum` and `Count` aggregates. Other columns take the first row's value;
//! 3. if `distinct`, drop rows equal to an earlier row on the visible columns;
//! 4. sort by `order_by` (stable; compare as MySQL would for the column's type/collation);
//! 5. skip `offset` rows, then keep at most `limit` rows;
//! 6. drop the hidden columns (keep the first `visible_columns`, see below).
//!
//! Column indices are positions in the shard's row. When the select list has `*`, the row
//! width is only known from the result: then `visible_columns` is [`MergePlan::UNKNOWN_WIDTH`]
//! and the hidden columns (the last `hidden_columns`) are referred to as
//! `HIDDEN_BASE + j`; call [`MergePlan::resolve`] with the row width to get plain indices
//! (it is the identity for plans whose width is known). A plan from [`MergePlan::passthrough`]
//! means "just concatenate".

/// One ORDER BY key of the merged result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SortKey {
    /// Index in the result row.
    pub column: usize,
    pub descending: bool,
}

/// How an aggregate column is merged across shards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggFunc {
    /// COUNT(*) / COUNT(x): the shards' counts add up.
    Count,
    Sum,
    Min,
    Max,
    /// AVG(x): the shards return AVG(x), SUM(x) at `sum` and COUNT(x) at `count`; the merged
    /// value is merged SUM / merged COUNT.
    Avg { sum: usize, count: usize },
}

/// One aggregate column of the result.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Aggregate {
    pub column: usize,
    pub func: AggFunc,
}

/// How to merge the shards' results into the client's result (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergePlan {
    pub order_by: Vec<SortKey>,
    /// The client's LIMIT n, applied after `offset`.
    pub limit: Option<u64>,
    /// The client's OFFSET (the shards were asked for `offset + limit` rows from the start).
    pub offset: u64,
    /// Result columns forming the group key.
    pub group_by: Vec<usize>,
    pub aggregates: Vec<Aggregate>,
    pub distinct: bool,
    /// Columns the client sees (the first ones of the row), or [`MergePlan::UNKNOWN_WIDTH`].
    pub visible_columns: usize,
    /// Trailing columns added by the rewrite (ORDER BY/GROUP BY expressions, AVG's SUM and
    /// COUNT), dropped before the rows go to the client. (Added to the brief's field list.)
    pub hidden_columns: usize,
}

impl MergePlan {
    /// `visible_columns` when the select list has `*`: all but the last `hidden_columns`.
    pub const UNKNOWN_WIDTH: usize = usize::MAX;
    /// Column indices from here on name hidden columns of a plan of unknown width.
    pub const HIDDEN_BASE: usize = usize::MAX / 2;

    /// A plan meaning "just concatenate the shards' rows" (all columns visible).
    pub fn passthrough() -> MergePlan {
        MergePlan {
            order_by: Vec::new(),
            limit: None,
            offset: 0,
            group_by: Vec::new(),
            aggregates: Vec::new(),
            distinct: false,
            visible_columns: Self::UNKNOWN_WIDTH,
            hidden_columns: 0,
        }
    }

    /// True when merging is plain concatenation.
    pub fn is_passthrough(&self) -> bool {
        self.order_by.is_empty()
            && self.limit.is_none()
            && self.offset == 0
            && self.group_by.is_empty()
            && self.aggregates.is_empty()
            && !self.distinct
            && self.hidden_columns == 0
    }

    /// Visible columns of a row `row_len` wide.
    pub fn visible(&self, row_len: usize) -> usize {
        if self.visible_columns == Self::UNKNOWN_WIDTH {
            row_len.saturating_sub(self.hidden_columns)
        } else {
            self.visible_columns.min(row_len)
        }
    }

    /// The plan with plain column indices for rows `row_len` wide (identity when the width was
    /// known). Indices that would fall outside the row are clamped to the last column.
    pub fn resolve(&self, row_len: usize) -> MergePlan {
        if self.visible_columns != Self::UNKNOWN_WIDTH {
            return self.clone();
        }
        let base = row_len.saturating_sub(self.hidden_columns);
        let last = row_len.saturating_sub(1);
        let map = |c: usize| if c >= Self::HIDDEN_BASE { base.saturating_add(c - Self::HIDDEN_BASE).min(last) } else { c.min(last) };
        let func = |f: AggFunc| match f {
            AggFunc::Avg { sum, count } => AggFunc::Avg { sum: map(sum), count: map(count) },
            other => other,
        };
        MergePlan {
            order_by: self.order_by.iter().map(|k| SortKey { column: map(k.column), descending: k.descending }).collect(),
            limit: self.limit,
            offset: self.offset,
            group_by: self.group_by.iter().map(|c| map(*c)).collect(),
            aggregates: self.aggregates.iter().map(|a| Aggregate { column: map(a.column), func: func(a.func) }).collect(),
            distinct: self.distinct,
            visible_columns: base,
            hidden_columns: self.hidden_columns,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passthrough_is_passthrough() {
        let p = MergePlan::passthrough();
        assert!(p.is_passthrough());
        assert_eq!(p.visible(7), 7);
        assert_eq!(p.resolve(7).visible_columns, 7);
        let mut q = p.clone();
        q.limit = Some(1);
        assert!(!q.is_passthrough());
    }

    #[test]
    fn unknown_width_resolves_hidden_columns_from_the_end() {
        let mut p = MergePlan::passthrough();
        p.hidden_columns = 2;
        p.order_by = vec![SortKey { column: MergePlan::HIDDEN_BASE + 1, descending: true }];
        assert_eq!(p.visible(5), 3);
        let r = p.resolve(5);
        assert_eq!(r.order_by[0].column, 4);
        assert_eq!(r.visible_columns, 3);
        assert_eq!(r.resolve(9), r);
    }
}
