//! CEL filters over entries (docs/filter-language.md).
//!
//! A filter is parsed by the `cel` crate, checked against [`Variables`]
//! (unknown names are rejected with their position), and evaluated per entry
//! with a resolver that computes only the variables the filter names.
//!
//! # Missing fields
//!
//! An entry that lacks a field (an HTTP field on a DNS entry) makes the
//! comparison that reads it false, never an error. The filter is split into
//! its connectives (`&&`, `||`, `!`, `?:`) and the leaves below them
//! (comparisons, calls such as `.startsWith()`, flags, comprehensions); a
//! leaf that reads a variable the entry lacks, or a map key the map lacks,
//! is false as a whole, and the connectives then apply to that false. So on
//! a DNS entry:
//!
//! - `method == "GET"` and `method != "GET"` are both false;
//! - `!(method == "GET")` is true, and so is `!dns && ...` style logic;
//! - `request.headers["x-absent"] == "a"` is false on any entry without that
//!   header, and `!(request.headers["x-absent"] == "a")` is true; map keys
//!   are stored lower-cased, so `request.headers["Content-Type"]` is always
//!   missing;
//! - `size(method) > 3` is false: the missing field anywhere inside a leaf
//!   makes the whole leaf false.
//!
//! Other errors (comparing a string with `<` to an int, a bad regex) are
//! errors as in CEL: `&&`/`||` absorb them where the other side decides
//! (`false && error` is false, `true || error` true), `!` keeps them, and an
//! error that reaches the top makes the entry not match.
//!
//! Most leaves are decided natively, reading the entry directly; the rest
//! run through the CEL interpreter (`native` module).

mod check;
mod cost;
mod eval;
mod logic;
mod native;
mod vars;

use std::fmt;
use std::sync::{Arc, RwLock};

use cel::{Context, ExecutionError, Program, Value};
use remora_entry::{Catalog, Entry};

pub use cost::MAX_FILTER_COST;
pub use vars::{VarInfo, Variables, FLAGS};

use eval::{EntryResolver, Plan, Root, Source};
use logic::{Leaf, Node, Truth};

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

/// Longest filter accepted, in bytes. Real filters are a line or two; the
/// CEL parser takes ~8 µs per byte, so a filter sent over the API as a
/// multi-megabyte string held a core for seconds (2 MB: 16 s).
pub const MAX_FILTER_BYTES: usize = 16 * 1024;

/// Most brackets (`(`, `[`, `{`) open at once. The CEL parser and the
/// evaluator recurse once per level (and the parser ~9 frames per
/// parenthesis): a filter sent over the API could overflow a thread's stack,
/// which aborts the whole process.
pub const MAX_FILTER_NESTING: usize = 32;

/// Most comparison, arithmetic and member operators (`==`, `<`, `in`, `+`,
/// `.`, ...). Their grammar rules are left-recursive, so a chain of them
/// (`1+1+…+1`) is as deep as it is long: 8,000 of them in a 16 KiB filter
/// overflowed a 2 MiB API thread in the parser. `&&`, `||` and `!` chains
/// are iterative and not counted.
pub const MAX_FILTER_OPERATORS: usize = 256;

/// Refuses a filter too deep for the parser's and evaluator's recursion
/// (see [`MAX_FILTER_NESTING`], [`MAX_FILTER_OPERATORS`]), before parsing.
/// String literals are skipped; the count errs on the safe side (a float's
/// `.` counts), far below what real filters use.
fn check_shape(src: &str) -> Result<(), FilterError> {
    let error = |message: String, at: usize| FilterError {
        message,
        start: at,
        end: at + 1,
        source: src.to_owned(),
    };
    let chars: Vec<char> = src.chars().collect();
    let (mut depth, mut operators) = (0usize, 0usize);
    let mut quote: Option<char> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if let Some(q) = quote {
            match c {
                '\\' => i += 1,
                _ if c == q => quote = None,
                _ => {}
            }
            i += 1;
            continue;
        }
        let operator = match c {
            '"' | '\'' => {
                quote = Some(c);
                false
            }
            '(' | '[' | '{' => {
                depth += 1;
                if depth > MAX_FILTER_NESTING {
                    return Err(error(
                        format!("filter nests more than {MAX_FILTER_NESTING} brackets deep"),
                        i,
                    ));
                }
                c == '['
            }
            ')' | ']' | '}' => {
                depth = depth.saturating_sub(1);
                false
            }
            '=' | '!' | '<' | '>' if next == Some('=') => {
                i += 1;
                true
            }
            '<' | '>' | '+' | '-' | '*' | '/' | '%' | '.' => true,
            'i' if next == Some('n')
                && !chars
                    .get(i + 2)
                    .is_some_and(|c| c.is_alphanumeric() || *c == '_')
                && !i
                    .checked_sub(1)
                    .and_then(|p| chars.get(p))
                    .is_some_and(|c| c.is_alphanumeric() || *c == '_') =>
            {
                i += 1;
                true
            }
            _ => false,
        };
        if operator {
            operators += 1;
            if operators > MAX_FILTER_OPERATORS {
                return Err(error(
                    format!(
                        "filter has more than {MAX_FILTER_OPERATORS} comparison, arithmetic \
                         and member operators (for a list of values, use `x in [a, b, ...]`)"
                    ),
                    i,
                ));
            }
        }
        i += 1;
    }
    Ok(())
}

/// Plans are cached per catalog; a process has one or two catalogs, so this
/// stays tiny. Past this many, the oldest is replaced.
const MAX_PLANS: usize = 8;

/// A compiled filter: `Send + Sync`, compiled once, matched per entry.
pub struct Filter {
    source: String,
    /// None: the empty filter, which matches everything.
    tree: Option<Node>,
    /// Holds the functions (`now`, `map_get`); each match scopes a resolver
    /// under it.
    context: Context<'static, 'static>,
    sources: Vec<Source>,
    roots: Vec<(String, Root)>,
    plans: RwLock<Vec<(eval::CatalogKey, Arc<Plan>)>>,
}

impl fmt::Debug for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Filter")
            .field("source", &self.source)
            .finish()
    }
}

/// The error for a filter over [`MAX_FILTER_BYTES`]: it shows the filter's
/// start only, not megabytes of it.
fn too_long(src: &str) -> FilterError {
    const SHOWN: usize = 60;
    let mut shown: String = src.chars().take(SHOWN).collect();
    if shown.len() < src.len() {
        shown.push('…');
    }
    FilterError {
        message: format!(
            "filter is {} bytes long; the limit is {MAX_FILTER_BYTES}",
            src.len()
        ),
        start: 0,
        end: shown.chars().count(),
        source: shown,
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
        // Before any work on the text (a blank one, however long, is still
        // the empty filter).
        if src.len() > MAX_FILTER_BYTES && !src.trim().is_empty() {
            return Err(too_long(src));
        }
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
            tree: None,
            context,
            sources: Vec::new(),
            roots: Vec::new(),
            plans: RwLock::new(Vec::new()),
        };
        if src.trim().is_empty() {
            return Ok(filter);
        }
        check_shape(src)?;
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
        let steps = cost::cost(program.expression());
        if steps > MAX_FILTER_COST {
            return Err(FilterError {
                message: format!(
                    "filter may take {} steps per entry; the limit is {MAX_FILTER_COST}: \
                     comprehensions (all, exists, exists_one, map, filter) nest too deep, \
                     or over lists too long (an entry's list counts as {})",
                    if steps == u64::MAX {
                        "more than 10^19".to_owned()
                    } else {
                        steps.to_string()
                    },
                    cost::ENTRY_LIST_ELEMENTS
                ),
                start: 0,
                end: src.chars().count(),
                source: src.to_owned(),
            });
        }
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
        let var_of = |name: &str| unique.iter().position(|r| r.name == name);
        filter.tree = Some(Node::build(program.expression(), &|leaf| {
            native::Check::compile(leaf, &var_of)
        }));
        Ok(filter)
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether `entry` (described by `catalog`) satisfies the filter. An
    /// error that decides the result (a type mismatch, not a missing field)
    /// is not a match.
    pub fn matches(&self, catalog: &Catalog, entry: &Entry) -> bool {
        self.decide(catalog, entry, true)
    }

    fn decide(&self, catalog: &Catalog, entry: &Entry, use_native: bool) -> bool {
        let Some(tree) = &self.tree else {
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
        let resolver = EntryResolver {
            catalog,
            plan: &plan,
            roots: &self.roots,
            entry,
        };
        // Built on the first leaf that needs CEL: most entries need none.
        let mut scope: Option<Context> = None;
        let mut leaf = |l: &Leaf| {
            if use_native {
                if let Some(b) = l
                    .native
                    .as_ref()
                    .and_then(|n| n.eval(catalog, &plan, entry))
                {
                    return Truth::from(b);
                }
            }
            let scope = scope.get_or_insert_with(|| {
                let mut s = self.context.new_inner_scope();
                s.set_variable_resolver(&resolver);
                s
            });
            match Value::resolve(&l.expr, scope) {
                Ok(Value::Bool(b)) => Truth::from(b),
                Ok(_) => Truth::Error,
                Err(e) if self.is_missing(&e) => Truth::False,
                Err(_) => Truth::Error,
            }
        };
        tree.eval(&mut leaf) == Truth::True
    }

    /// Whether `e` is CEL's report of a missing variable or map key, which
    /// makes a leaf false, rather than of a real error.
    fn is_missing(&self, e: &ExecutionError) -> bool {
        match e {
            // Selecting a field the variable tree lacks (`src.pod.name`
            // without Kubernetes) or indexing an absent map key.
            ExecutionError::NoSuchKey(_) => true,
            // A root variable the entry lacks; an unknown function also says
            // this, and stays an error.
            ExecutionError::UndeclaredReference(name) => {
                self.roots.iter().any(|(n, _)| n == name.as_str())
            }
            _ => false,
        }
    }

    /// The answer without the native checks, for equivalence tests.
    #[cfg(test)]
    pub(crate) fn matches_without_native(&self, catalog: &Catalog, entry: &Entry) -> bool {
        self.decide(catalog, entry, false)
    }

    /// Whether every leaf is decided by a native check.
    #[cfg(test)]
    pub(crate) fn has_native(&self) -> bool {
        self.tree.as_ref().is_some_and(Node::all_native)
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
