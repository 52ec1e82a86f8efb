//! Recognizing aggregates in a select list for merging across shards.
//!
//! Contract: `aggregate_of` says whether an expression is exactly one mergeable aggregate
//! (COUNT, SUM, MIN, MAX, AVG without DISTINCT except for MIN/MAX, no FILTER/OVER), refuses
//! aggregates the merger cannot combine (GROUP_CONCAT, STD, ..., window functions), and says
//! None for anything else; `no_nested_aggregate` refuses aggregates inside larger expressions.
//! Subqueries are not looked into (their aggregates run inside one shard's query).

use super::RouteError;
use sqlparser::ast::{DuplicateTreatment, Expr, FunctionArguments, ObjectName, Query, Visit, Visitor};
use std::ops::ControlFlow;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AggKind {
    Count,
    Sum,
    Min,
    Max,
    Avg,
}

/// Aggregates the merger cannot combine exactly.
const OTHER_AGGREGATES: &[&str] = &[
    "GROUP_CONCAT", "STD", "STDDEV", "STDDEV_POP", "STDDEV_SAMP", "VARIANCE", "VAR_POP", "VAR_SAMP", "BIT_AND", "BIT_OR",
    "BIT_XOR", "JSON_ARRAYAGG", "JSON_OBJECTAGG", "MEDIAN", "PERCENTILE_CONT", "PERCENTILE_DISC", "GROUPING",
];

fn function_name(name: &ObjectName) -> Option<String> {
    match name.0.as_slice() {
        [sqlparser::ast::ObjectNamePart::Identifier(i)] => Some(i.value.to_ascii_uppercase()),
        _ => None,
    }
}

/// The mergeable aggregate `e` is, None when it is no aggregate, an error for others.
pub(crate) fn aggregate_of(e: &Expr) -> Result<Option<AggKind>, RouteError> {
    let Expr::Function(f) = e else { return Ok(None) };
    let Some(name) = function_name(&f.name) else { return Ok(None) };
    if f.over.is_some() {
        return Err(RouteError::unsupported(format!("window functions ({name}() OVER ...) across shards are not supported: pin the shard key")));
    }
    let kind = match name.as_str() {
        "COUNT" => AggKind::Count,
        "SUM" => AggKind::Sum,
        "MIN" => AggKind::Min,
        "MAX" => AggKind::Max,
        "AVG" => AggKind::Avg,
        n if OTHER_AGGREGATES.contains(&n) => {
            return Err(RouteError::unsupported(format!("{n}() across shards is not supported: pin the shard key in WHERE")))
        }
        _ => return Ok(None),
    };
    if f.filter.is_some() || !f.within_group.is_empty() || f.null_treatment.is_some() {
        return Err(RouteError::unsupported(format!("{name}() with FILTER/WITHIN GROUP across shards is not supported")));
    }
    match &f.args {
        FunctionArguments::List(l) => {
            if l.duplicate_treatment == Some(DuplicateTreatment::Distinct) && !matches!(kind, AggKind::Min | AggKind::Max) {
                return Err(RouteError::unsupported(format!(
                    "{name}(DISTINCT ...) across shards is not supported: pin the shard key in WHERE, or select the distinct values and aggregate them in the application"
                )));
            }
            if !l.clauses.is_empty() {
                return Err(RouteError::unsupported(format!("{name}() with extra clauses across shards is not supported")));
            }
        }
        _ => return Err(RouteError::unsupported(format!("{name}() with a subquery argument across shards is not supported"))),
    }
    Ok(Some(kind))
}

/// Refuses aggregates or window functions nested inside `e` (not counting subqueries).
pub(crate) fn no_nested_aggregate(e: &Expr) -> Result<(), RouteError> {
    struct Find {
        depth: usize,
    }
    impl Visitor for Find {
        type Break = RouteError;
        fn pre_visit_query(&mut self, _q: &Query) -> ControlFlow<RouteError> {
            self.depth += 1;
            ControlFlow::Continue(())
        }
        fn post_visit_query(&mut self, _q: &Query) -> ControlFlow<RouteError> {
            self.depth = self.depth.saturating_sub(1);
            ControlFlow::Continue(())
        }
        fn pre_visit_expr(&mut self, e: &Expr) -> ControlFlow<RouteError> {
            if self.depth == 0 {
                match aggregate_of(e) {
                    Err(err) => return ControlFlow::Break(err),
                    Ok(Some(_)) => {
                        return ControlFlow::Break(RouteError::unsupported(
                            "aggregates inside expressions (e.g. SUM(x) + 1) across shards are not supported: select the aggregate itself, or pin the shard key",
                        ))
                    }
                    Ok(None) => {}
                }
            }
            ControlFlow::Continue(())
        }
    }
    match e.visit(&mut Find { depth: 0 }) {
        ControlFlow::Break(err) => Err(err),
        ControlFlow::Continue(()) => Ok(()),
    }
}
