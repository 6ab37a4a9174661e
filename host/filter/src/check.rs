//! Checks a parsed filter against the known variables and lists the ones it
//! references, before any entry is scanned.

use cel::common::ast::{CallExpr, EntryExpr, Expr, IdedExpr, LiteralValue, SourceInfo};

use crate::vars::Variables;
use crate::FilterError;

/// One variable a filter reads, split where CEL sees it: the root identifier
/// the interpreter asks for, and the selections below it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Reference {
    /// Dotted variable name (`src.ip`).
    pub name: String,
    /// `["src", "ip"]`
    pub path: Vec<String>,
}

pub(crate) struct Checker<'a> {
    vars: &'a Variables,
    info: &'a SourceInfo,
    src: &'a str,
    /// Comprehension variables in scope (`q` in `dns_questions.exists(q, ...)`).
    locals: Vec<String>,
    pub refs: Vec<Reference>,
}

impl<'a> Checker<'a> {
    pub fn new(vars: &'a Variables, info: &'a SourceInfo, src: &'a str) -> Self {
        Checker {
            vars,
            info,
            src,
            locals: Vec::new(),
            refs: Vec::new(),
        }
    }

    pub fn check(&mut self, e: &IdedExpr) -> Result<(), FilterError> {
        if let Some(chain) = chain(e) {
            return self.check_chain(&chain);
        }
        match &e.expr {
            Expr::Call(c) => {
                self.check_pattern(c)?;
                if let Some(t) = &c.target {
                    self.check(t)?;
                }
                c.args.iter().try_for_each(|a| self.check(a))
            }
            Expr::Select(s) => self.check(&s.operand),
            Expr::List(l) => l.elements.iter().try_for_each(|a| self.check(a)),
            Expr::Map(m) => m.entries.iter().try_for_each(|en| match &en.expr {
                EntryExpr::MapEntry(me) => {
                    self.check(&me.key)?;
                    self.check(&me.value)
                }
                EntryExpr::StructField(f) => self.check(&f.value),
            }),
            Expr::Struct(s) => s.entries.iter().try_for_each(|en| match &en.expr {
                EntryExpr::MapEntry(me) => self.check(&me.value),
                EntryExpr::StructField(f) => self.check(&f.value),
            }),
            Expr::Comprehension(c) => {
                self.check(&c.iter_range)?;
                self.check(&c.accu_init)?;
                let before = self.locals.len();
                self.locals.push(c.iter_var.clone());
                self.locals.extend(c.iter_var2.clone());
                self.locals.push(c.accu_var.clone());
                let r = [&c.loop_cond, &c.loop_step, &c.result]
                    .into_iter()
                    .try_for_each(|x| self.check(x));
                self.locals.truncate(before);
                r
            }
            Expr::Ident(_) | Expr::Literal(_) | Expr::Unspecified => Ok(()),
        }
    }

    fn check_chain(&mut self, chain: &[(&str, u64)]) -> Result<(), FilterError> {
        if self.locals.iter().any(|l| l == chain[0].0) {
            return Ok(());
        }
        let names: Vec<&str> = chain.iter().map(|(n, _)| *n).collect();
        // The longest known prefix is the variable; what follows may only be
        // keys of a map variable (`local_labels.app`).
        for len in (1..=names.len()).rev() {
            let name = names[..len].join(".");
            let Some(info) = self.vars.get(&name) else {
                continue;
            };
            if len < names.len() && !info.ty.starts_with("map(") && info.ty != "dyn" {
                if self.vars.is_namespace(&name) {
                    // `node.name` is known; `node.x` is not.
                    break;
                }
                return Err(self.error(
                    chain,
                    len + 1,
                    format!(
                        "`{name}` is a {}, it has no field `{}`",
                        info.ty, names[len]
                    ),
                ));
            }
            self.refs.push(Reference {
                name,
                path: names[..len].iter().map(|s| s.to_string()).collect(),
            });
            return Ok(());
        }
        let full = names.join(".");
        let mut msg = if self.vars.is_namespace(&full) {
            format!("`{full}` is not a variable by itself; name one of its fields")
        } else {
            format!("unknown variable `{full}`")
        };
        if let Some(s) = self.vars.suggest(&full) {
            msg.push_str(&format!(" (did you mean `{s}`?)"));
        }
        Err(self.error(chain, chain.len(), msg))
    }

    /// A `matches` whose pattern is a literal that is no regular expression
    /// is refused now: evaluated, its error made every entry a non-match,
    /// so `path.matches("[")` looked like a filter nothing passes.
    fn check_pattern(&self, c: &CallExpr) -> Result<(), FilterError> {
        if c.func_name != "matches" {
            return Ok(());
        }
        let pattern = if c.target.is_some() {
            c.args.first()
        } else {
            c.args.get(1)
        };
        let Some(p) = pattern else { return Ok(()) };
        let Expr::Literal(LiteralValue::String(text)) = &p.expr else {
            return Ok(());
        };
        let Err(e) = regex::Regex::new(text) else {
            return Ok(());
        };
        // The regex crate draws the pattern with a caret; its last line
        // says what is wrong.
        let why = e.to_string();
        let why = why
            .lines()
            .rev()
            .find_map(|l| l.trim().strip_prefix("error: "))
            .unwrap_or_else(|| why.lines().next().unwrap_or("invalid"));
        let start = self.info.offset_for(p.id).map_or(0, |(b, _)| self.chars(b));
        Err(FilterError {
            message: format!("{:?} is not a regular expression: {why}", text.inner()),
            start,
            end: start + text.chars().count() + 2,
            source: String::new(),
        })
    }

    /// Characters before byte `byte` of the source (cel's offsets count
    /// bytes; ours count characters).
    fn chars(&self, byte: u32) -> usize {
        self.src
            .get(..byte as usize)
            .map_or(byte as usize, |s| s.chars().count())
    }

    /// Error spanning the first `len` elements of `chain`.
    fn error(&self, chain: &[(&str, u64)], len: usize, message: String) -> FilterError {
        let chars = |byte: u32| self.chars(byte);
        let start = self
            .info
            .offset_for(chain[0].1)
            .map_or(0, |(s, _)| chars(s));
        // A selection's offset is its dot; the field follows it.
        let (last, id) = chain[len - 1];
        let end = match self.info.offset_for(id) {
            Some((s, _)) if len > 1 => chars(s) + 1 + last.chars().count(),
            Some((s, _)) => chars(s) + last.chars().count(),
            None => start + 1,
        };
        FilterError {
            message,
            start,
            end,
            source: String::new(),
        }
    }
}

/// `a.b.c` as `[("a", id), ("b", id), ("c", id)]`, or None when the
/// expression is not a selection chain rooted at an identifier.
fn chain(e: &IdedExpr) -> Option<Vec<(&str, u64)>> {
    match &e.expr {
        Expr::Ident(n) => Some(vec![(n.as_str(), e.id)]),
        // `has(a.b)` tests the same path.
        Expr::Select(s) => {
            let mut c = chain(&s.operand)?;
            c.push((s.field.as_str(), e.id));
            Some(c)
        }
        _ => None,
    }
}
