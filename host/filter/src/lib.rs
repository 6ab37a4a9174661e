//! CEL filters over entries (docs/filter-language.md).
//!
//! A filter is parsed by the `cel` crate, checked against [`Variables`]
//! (unknown names are rejected with their position), and evaluated per entry
//! with a resolver that computes only the variables the filter names.
//!
//! Missing fields: a variable the entry lacks (an HTTP field on a DNS entry)
//! is an evaluation error in CEL. `&&` and `||` absorb it the way cel-go does
//! (`false && error` is false, `true || error` is true), and an error that
//! reaches the top makes the entry not match. So a comparison on a missing
//! field behaves as false inside `&&`/`||`, and `!` over it does not turn it
//! into true: `!(method == "GET")` does not match a DNS entry (write
//! `!http || method != "GET"` for that), like SQL's NULL.

mod check;
mod eval;
mod native;
mod vars;

use std::fmt;
use std::sync::{Arc, RwLock};

use cel::common::ast::Expr;
use cel::{Context, Program, Value};
use remora_entry::{Catalog, Entry};

pub use vars::{VarInfo, Variables, FLAGS};

use eval::{EntryResolver, Plan, Root, Source};

/// Why a filter was rejected: what, and where (0-based character offsets,
/// `end` exclusive).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilterError {
    pub message: String,
    pub start: usize,
    pub end: usize,
    /// The filter text, for [`fmt::Display`].
    pub source: String,
}

impl fmt::Display for FilterError {
    /// The message, the filter, and a caret line under the span.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self.end.saturating_sub(self.start).max(1);
        write!(
            f,
            "{} (at {})\n  {}\n  {}{}",
            self.message,
            self.start,
            self.source,
            " ".repeat(self.start),
            "^".repeat(width)
        )
    }
}

impl std::error::Error for FilterError {}

/// Plans are cached per catalog; a process has one or two catalogs, so this
/// stays tiny. Past this many, the oldest is replaced.
const MAX_PLANS: usize = 8;

/// A compiled filter: `Send + Sync`, compiled once, matched per entry.
pub struct Filter {
    source: String,
    /// None: the empty filter, which matches everything.
    program: Option<Program>,
    /// Holds the functions (`now`, `map_get`); each match scopes a resolver
    /// under it.
    context: Context<'static, 'static>,
    sources: Vec<Source>,
    roots: Vec<(String, Root)>,
    /// Variables that must be true for the top-level conjunction to hold:
    /// checked natively before running CEL.
    required_flags: Vec<usize>,
    /// The filter as native checks, when it has that shape.
    native: Option<native::Conjunction>,
    plans: RwLock<Vec<(eval::CatalogKey, Arc<Plan>)>>,
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Filter")
            .field("source", &self.source)
            .finish()
    }
}

fn char_offset(src: &str, line: isize, col: isize) -> usize {
    // cel reports (line, column) 1-based; the column counts characters.
    let line = line.max(1) as usize;
    let before: usize = src
        .split('\n')
        .take(line - 1)
        .map(|l| l.chars().count() + 1)
        .sum();
    before + (col.max(1) as usize - 1)
}

impl Filter {
    /// Parses and checks `src`. An empty or blank filter matches everything.
    pub fn compile(src: &str, vars: &Variables) -> Result<Filter, FilterError> {
        let mut context = Context::default();
        context
            .add_function("now", || {
                let now = chrono::Utc::now();
                eval::timestamp_value(now.timestamp_micros())
            })
            .expect("`now` is not a standard CEL function");
        context
            .add_function("map_get", map_get)
            .expect("`map_get` is not a standard CEL function");
        let mut filter = Filter {
            source: src.to_owned(),
            program: None,
            context,
            sources: Vec::new(),
            roots: Vec::new(),
            required_flags: Vec::new(),
            native: None,
            plans: RwLock::new(Vec::new()),
        };
        if src.trim().is_empty() {
            return Ok(filter);
        }
        let program = Program::compile(src).map_err(|errs| {
            let e = errs.errors.first();
            let (start, message) = match e {
                Some(e) => (
                    char_offset(src, e.pos.0, e.pos.1).min(src.chars().count()),
                    e.msg.clone(),
                ),
                None => (0, "syntax error".to_owned()),
            };
            FilterError {
                message,
                start,
                end: start + 1,
                source: src.to_owned(),
            }
        })?;
        let mut checker = check::Checker::new(vars, program.source_info(), src);
        checker
            .check(program.expression())
            .map_err(|e| FilterError {
                source: src.to_owned(),
                ..e
            })?;
        let mut unique: Vec<check::Reference> = Vec::new();
        for r in checker.refs {
            if !unique.iter().any(|u| u.name == r.name) {
                unique.push(r);
            }
        }
        let catalog_flags: Vec<String> = vars
            .list()
            .iter()
            .filter_map(|v| v.protocol.clone())
            .collect();
        filter.sources = unique
            .iter()
            .map(|r| Source::of(&r.name, &catalog_flags))
            .collect();
        filter.roots = eval::roots(&unique);
        filter.required_flags = conjuncts(program.expression())
            .into_iter()
            .filter_map(|name| {
                let i = unique.iter().position(|r| r.name == name)?;
                matches!(filter.sources[i], Source::Flag(_)).then_some(i)
            })
            .collect();
        let var_of = |name: &str| {
            let i = unique.iter().position(|r| r.name == name)?;
            Some((i, vars.get(name)?.ty.clone()))
        };
        filter.native = native::Conjunction::compile(program.expression(), &var_of);
        filter.program = Some(program);
        Ok(filter)
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether `entry` (described by `catalog`) satisfies the filter. An
    /// evaluation error (a missing field that decides the result, a type
    /// mismatch) is not a match.
    pub fn matches(&self, catalog: &Catalog, entry: &Entry) -> bool {
        let Some(program) = &self.program else {
            return true;
        };
        // An entry from another catalog would index out of range.
        let known = catalog
            .plugins
            .get(entry.plugin as usize)
            .is_some_and(|p| (entry.protocol as usize) < p.protocols.len());
        if !known {
            return false;
        }
        let plan = self.plan(catalog);
        if let Some(result) = self
            .native
            .as_ref()
            .and_then(|n| n.eval(catalog, &plan, entry))
        {
            return result;
        }
        self.matches_cel(program, &plan, catalog, entry)
    }

    fn matches_cel(
        &self,
        program: &Program,
        plan: &Plan,
        catalog: &Catalog,
        entry: &Entry,
    ) -> bool {
        for &i in &self.required_flags {
            if !matches!(
                eval::value(catalog, &plan.vars[i], entry),
                Some(Value::Bool(true))
            ) {
                return false;
            }
        }
        let resolver = EntryResolver {
            catalog,
            plan,
            roots: &self.roots,
            entry,
        };
        let mut scope = self.context.new_inner_scope();
        scope.set_variable_resolver(&resolver);
        matches!(program.execute(&scope), Ok(Value::Bool(true)))
    }

    /// The answer without the native fast path, for equivalence tests.
    #[cfg(test)]
    pub(crate) fn matches_without_native(&self, catalog: &Catalog, entry: &Entry) -> bool {
        match &self.program {
            None => true,
            Some(p) => self.matches_cel(p, &self.plan(catalog), catalog, entry),
        }
    }

    /// Whether the native fast path can decide this filter.
    #[cfg(test)]
    pub(crate) fn has_native(&self) -> bool {
        self.native.is_some()
    }

    fn plan(&self, catalog: &Catalog) -> Arc<Plan> {
        let key = eval::catalog_key(catalog);
        let plans = self.plans.read().unwrap_or_else(|p| p.into_inner());
        if let Some((_, p)) = plans.iter().find(|(k, _)| *k == key) {
            return p.clone();
        }
        drop(plans);
        let plan = Arc::new(Plan::new(&self.sources, catalog));
        let mut plans = self.plans.write().unwrap_or_else(|p| p.into_inner());
        if plans.len() >= MAX_PLANS {
            plans.remove(0);
        }
        plans.push((key, plan.clone()));
        plan
    }
}

/// Bare identifiers that are operands of the top-level `&&` chain.
fn conjuncts(e: &cel::IdedExpr) -> Vec<&str> {
    match &e.expr {
        Expr::Ident(n) => vec![n.as_str()],
        Expr::Call(c) if c.func_name == "_&&_" && c.target.is_none() => {
            c.args.iter().flat_map(conjuncts).collect()
        }
        _ => Vec::new(),
    }
}

/// `map_get(map, key, default)`: the member, or `default` when the map lacks
/// the key.
fn map_get(map: Value, key: Value, default: Value) -> Result<Value, cel::ExecutionError> {
    let Value::Map(m) = map else {
        return Err(cel::ExecutionError::function_error(
            "map_get",
            "first argument is not a map",
        ));
    };
    let key = match key {
        Value::String(s) => cel::objects::Key::String(s),
        Value::Int(i) => cel::objects::Key::Int(i),
        Value::UInt(u) => cel::objects::Key::Uint(u),
        Value::Bool(b) => cel::objects::Key::Bool(b),
        other => {
            return Err(cel::ExecutionError::function_error(
                "map_get",
                format!("unsupported key {other:?}"),
            ))
        }
    };
    Ok(m.map.get(&key).cloned().unwrap_or(default))
}

#[cfg(test)]
mod testdata;
#[cfg(test)]
mod tests;
