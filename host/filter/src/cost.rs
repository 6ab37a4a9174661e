//! An upper bound on what evaluating a filter on one entry costs, so that a
//! filter sent over the API (or written in an alert rule) cannot hold a
//! core for minutes per entry.
//!
//! The size limits elsewhere bound the text, not the work: comprehensions
//! multiply. `[0,…,9].all(a, [0,…,9].all(b, …))` four levels deep took
//! 1.3 s over 270 entries (10,000 steps each, ~0.5 µs a step); six levels
//! would take two minutes, and the API runs a filter over up to 2 M stored
//! entries and every live subscription's filter on every new one.

use cel::common::ast::{EntryExpr, Expr, IdedExpr};

/// Steps one entry's evaluation may take at most (as [`cost`] counts
/// them): ~10 ms. Filters without comprehensions cost their size (a few
/// hundred at most, with the operator limit); one comprehension over an
/// entry's list with a small body costs ~1,000.
pub const MAX_FILTER_COST: u64 = 20_000;

/// Elements a comprehension over an entry's list (headers, DNS answers,
/// command arguments) is assumed to visit: lists of entries are rarely
/// longer, and nesting one comprehension over them in another should not
/// pass.
pub(crate) const ENTRY_LIST_ELEMENTS: u64 = 100;

/// A regular expression is compiled on each call the interpreter makes.
const REGEX_COMPILE: u64 = 50;

/// Steps evaluating `e` once may take, saturating.
pub(crate) fn cost(e: &IdedExpr) -> u64 {
    let sum = |xs: &mut dyn Iterator<Item = &IdedExpr>| {
        xs.fold(0u64, |acc, x| acc.saturating_add(cost(x)))
    };
    let own = match &e.expr {
        Expr::Call(c) => {
            let compile = if c.func_name == "matches" {
                REGEX_COMPILE
            } else {
                0
            };
            compile.saturating_add(sum(&mut c.target.iter().map(|t| &**t).chain(&c.args)))
        }
        Expr::Select(s) => cost(&s.operand),
        Expr::List(l) => sum(&mut l.elements.iter()),
        Expr::Map(m) => sum(&mut m.entries.iter().flat_map(entry_exprs)),
        Expr::Struct(s) => sum(&mut s.entries.iter().flat_map(entry_exprs)),
        Expr::Comprehension(c) => {
            let visits = match &c.iter_range.expr {
                Expr::List(l) => l.elements.len() as u64,
                Expr::Map(m) => m.entries.len() as u64,
                _ => ENTRY_LIST_ELEMENTS,
            };
            let per_visit = cost(&c.loop_cond).saturating_add(cost(&c.loop_step));
            cost(&c.iter_range)
                .saturating_add(cost(&c.accu_init))
                .saturating_add(visits.saturating_mul(per_visit))
                .saturating_add(cost(&c.result))
        }
        Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => 0,
    };
    own.saturating_add(1)
}

fn entry_exprs(e: &cel::common::ast::IdedEntryExpr) -> Vec<&IdedExpr> {
    match &e.expr {
        EntryExpr::MapEntry(me) => vec![&me.key, &me.value],
        EntryExpr::StructField(f) => vec![&f.value],
    }
}

#[cfg(test)]
mod tests {
    use cel::Program;

    use super::*;

    fn of(src: &str) -> u64 {
        cost(Program::compile(src).unwrap().expression())
    }

    #[test]
    fn plain_filters_cost_their_size() {
        assert!(of(r#"http && status_code >= 500"#) < 20);
        assert!(of(r#"method in ["GET", "POST", "PUT"] && path.startsWith("/api")"#) < 40);
    }

    #[test]
    fn comprehensions_multiply_by_what_they_visit() {
        let one = of(r#"dns_questions.exists(q, q.endsWith(".internal"))"#);
        assert!(
            (ENTRY_LIST_ELEMENTS..20 * ENTRY_LIST_ELEMENTS).contains(&one),
            "{one}"
        );
        let l = "[0,1,2,3,4,5,6,7,8,9]";
        let two = of(&format!("{l}.all(a, {l}.all(b, a + b >= 0))"));
        let four = of(&format!(
            "{l}.all(a, {l}.all(b, {l}.all(c, {l}.all(d, a + b + c + d >= 0))))"
        ));
        assert!(two < MAX_FILTER_COST, "{two}");
        assert!(four > 10_000 && four > 50 * two, "{four} against {two}");
        // Over entry lists, nested: refused.
        let nested = of("request.headers.exists(k, response.headers.exists(j, k == j))");
        assert!(nested > MAX_FILTER_COST, "{nested}");
    }

    #[test]
    fn cost_saturates_instead_of_overflowing() {
        let l = format!("[{}]", vec!["0"; 1000].join(","));
        let mut f = String::from("true");
        for v in ["a", "b", "c", "d", "e", "f", "g"] {
            f = format!("{l}.all({v}, {f})");
        }
        assert_eq!(of(&f), u64::MAX);
    }
}
