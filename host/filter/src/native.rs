//! Native checks for the common leaves of a filter, read straight from the
//! entry without building CEL values: flags, `operand <op> literal`,
//! `operand.startsWith/endsWith/contains/matches(literal)` and
//! `literal in list`, where an operand is a variable or a map variable
//! indexed by a literal key (`request.headers["content-type"]`).
//!
//! A check gives CEL's answer for the leaf, with the missing-field rule
//! applied (a missing variable or key is false), or none: when the value has
//! a type the check was not written for, the leaf is left to CEL, which
//! decides the type error or cross-type rule itself.

use std::borrow::Cow;
use std::net::IpAddr;

use cel::common::ast::{Expr, IdedExpr, LiteralValue};
use regex::Regex;
use remora_core::Transport;
use remora_entry::{Catalog, Entry, FieldType, Message, ValueRef as FieldValue};

use crate::eval::{Bound, Plan, Side, Source};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Clone, Debug)]
pub(crate) enum Lit {
    Int(i64),
    Str(String),
    Bool(bool),
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum StrOp {
    StartsWith,
    EndsWith,
    Contains,
}

/// What a check reads.
#[derive(Clone, Debug)]
pub(crate) enum Operand {
    /// A referenced variable, by plan index.
    Var(usize),
    /// A map variable's member: the key as written (members are stored
    /// lower-cased, so a key with upper case never matches).
    Key(usize, String),
}

#[derive(Clone, Debug)]
pub(crate) enum Check {
    /// A bool variable.
    Flag(usize),
    Cmp(Operand, Op, Lit),
    Str(Operand, StrOp, String),
    /// Compiled once here; CEL compiles the pattern on every call.
    Matches(Operand, Regex),
    /// `literal in list_variable`.
    In(Lit, usize),
}

fn op(name: &str) -> Option<Op> {
    Some(match name {
        "_==_" => Op::Eq,
        "_!=_" => Op::Ne,
        "_<_" => Op::Lt,
        "_<=_" => Op::Le,
        "_>_" => Op::Gt,
        "_>=_" => Op::Ge,
        _ => return None,
    })
}

fn flip(o: Op) -> Op {
    match o {
        Op::Lt => Op::Gt,
        Op::Le => Op::Ge,
        Op::Gt => Op::Lt,
        Op::Ge => Op::Le,
        x => x,
    }
}

fn lit(e: &IdedExpr) -> Option<Lit> {
    match &e.expr {
        Expr::Literal(LiteralValue::Int(i)) => Some(Lit::Int(*i.inner())),
        Expr::Literal(LiteralValue::String(s)) => Some(Lit::Str(s.inner().to_owned())),
        Expr::Literal(LiteralValue::Boolean(b)) => Some(Lit::Bool(*b.inner())),
        _ => None,
    }
}

fn str_lit(e: &IdedExpr) -> Option<String> {
    match lit(e)? {
        Lit::Str(s) => Some(s),
        _ => None,
    }
}

fn path(e: &IdedExpr) -> Option<String> {
    match &e.expr {
        Expr::Ident(n) => Some(n.clone()),
        Expr::Select(s) if !s.test => Some(format!("{}.{}", path(&s.operand)?, s.field)),
        _ => None,
    }
}

/// Maps a dotted name to the referenced variable's plan index.
pub(crate) type VarIndex<'a> = &'a dyn Fn(&str) -> Option<usize>;

fn operand(e: &IdedExpr, var_of: VarIndex) -> Option<Operand> {
    if let Expr::Call(c) = &e.expr {
        if c.target.is_none() && c.func_name == "_[_]" && c.args.len() == 2 {
            return Some(Operand::Key(
                var_of(&path(&c.args[0])?)?,
                str_lit(&c.args[1])?,
            ));
        }
        return None;
    }
    Some(Operand::Var(var_of(&path(e)?)?))
}

impl Check {
    /// The check for leaf `e`, or None when it has another shape.
    pub fn compile(e: &IdedExpr, var_of: VarIndex) -> Option<Check> {
        let Expr::Call(c) = &e.expr else {
            return Some(Check::Flag(var_of(&path(e)?)?));
        };
        if let Some(target) = &c.target {
            let [arg] = c.args.as_slice() else {
                return None;
            };
            let o = operand(target, var_of)?;
            let arg = str_lit(arg)?;
            return Some(match c.func_name.as_str() {
                "startsWith" => Check::Str(o, StrOp::StartsWith, arg),
                "endsWith" => Check::Str(o, StrOp::EndsWith, arg),
                "contains" => Check::Str(o, StrOp::Contains, arg),
                // A bad pattern is CEL's error to report.
                "matches" => Check::Matches(o, Regex::new(&arg).ok()?),
                _ => return None,
            });
        }
        let [a, b] = c.args.as_slice() else {
            return None;
        };
        if c.func_name == "@in" {
            return Some(Check::In(lit(a)?, var_of(&path(b)?)?));
        }
        let o = op(&c.func_name)?;
        let (var, l, o) = match (operand(a, var_of), lit(b)) {
            (Some(v), Some(l)) => (v, l, o),
            _ => (operand(b, var_of)?, lit(a)?, flip(o)),
        };
        // Ordering of strings and bools stays with CEL.
        let ordered = matches!(l, Lit::Int(_)) || matches!(o, Op::Eq | Op::Ne);
        ordered.then_some(Check::Cmp(var, o, l))
    }

    /// Some(result) when CEL's result (missing read as false) is certain,
    /// None to ask CEL.
    pub fn eval(&self, catalog: &Catalog, plan: &Plan, e: &Entry) -> Option<bool> {
        let read = |o: &Operand| match o {
            Operand::Var(i) => native(catalog, &plan.vars[*i], e),
            Operand::Key(i, key) => member(&plan.vars[*i], e, key),
        };
        match self {
            Check::Flag(i) => match native(catalog, &plan.vars[*i], e) {
                Native::Bool(b) => Some(b),
                Native::Missing => Some(false),
                _ => None,
            },
            Check::Cmp(o, op, l) => match (read(o), l) {
                (Native::Missing, _) => Some(false),
                (Native::Int(v), Lit::Int(x)) => Some(cmp(&v, *op, x)),
                (Native::Bool(v), Lit::Bool(x)) => Some(cmp(&v, *op, x)),
                (Native::Str(v), Lit::Str(x)) => Some(cmp(&v.as_ref(), *op, &x.as_str())),
                (Native::Ip(ip), Lit::Str(x)) => {
                    // The variable is the canonical text of `ip`: equal only
                    // to a literal that is that text.
                    let same = x
                        .parse::<IpAddr>()
                        .is_ok_and(|p| p == ip && p.to_string() == *x);
                    match op {
                        Op::Eq => Some(same),
                        Op::Ne => Some(!same),
                        _ => None,
                    }
                }
                _ => None,
            },
            Check::Str(o, sop, arg) => {
                let v = read(o);
                let s = v.text()?;
                Some(match (s, sop) {
                    (None, _) => false,
                    (Some(s), StrOp::StartsWith) => s.starts_with(arg.as_str()),
                    (Some(s), StrOp::EndsWith) => s.ends_with(arg.as_str()),
                    (Some(s), StrOp::Contains) => s.contains(arg.as_str()),
                })
            }
            Check::Matches(o, re) => {
                let v = read(o);
                Some(v.text()?.is_some_and(|s| re.is_match(&s)))
            }
            Check::In(l, i) => list_contains(&plan.vars[*i], e, l),
        }
    }
}

/// A variable's value without building a CEL value.
enum Native<'a> {
    Missing,
    Bool(bool),
    Int(i64),
    Str(Cow<'a, str>),
    Ip(IpAddr),
    /// A value of a type no check handles: let CEL decide.
    Other,
}

impl Native<'_> {
    /// For string methods: Some(None) when missing, Some(text) for a string
    /// (an address is its canonical text), None for another type.
    fn text(&self) -> Option<Option<Cow<'_, str>>> {
        match self {
            Native::Missing => Some(None),
            Native::Str(s) => Some(Some(Cow::Borrowed(s.as_ref()))),
            Native::Ip(ip) => Some(Some(Cow::Owned(ip.to_string()))),
            _ => None,
        }
    }
}

fn message(e: &Entry, side: Side) -> Option<&Message> {
    match side {
        Side::Request => e.request.as_ref(),
        Side::Response => e.response.as_ref(),
    }
}

fn scalar<'a>(e: &'a Entry, side: Option<Side>, id: u16, ty: FieldType) -> Native<'a> {
    if ty.is_collection() {
        return Native::Other;
    }
    let find = |m: &'a Message| m.fields.last(id);
    let f = match side {
        Some(s) => message(e, s).and_then(find),
        None => e
            .request
            .as_ref()
            .and_then(find)
            .or_else(|| e.response.as_ref().and_then(find)),
    };
    match f {
        None => Native::Missing,
        Some(FieldValue::Bool(b)) => Native::Bool(b),
        Some(FieldValue::Int(i)) => Native::Int(i),
        Some(FieldValue::Str(s)) => Native::Str(Cow::Borrowed(s)),
        Some(_) => Native::Other,
    }
}

fn native<'a>(catalog: &'a Catalog, b: &Bound, e: &'a Entry) -> Native<'a> {
    let field = b.fields.get(e.plugin as usize).copied().flatten();
    match &b.source {
        Source::Protocol => {
            Native::Str(Cow::Borrowed(&catalog.protocol(e.plugin, e.protocol).name))
        }
        Source::Id => i64::try_from(e.id).map_or(Native::Other, Native::Int),
        Source::Elapsed => i64::try_from(e.elapsed_us()).map_or(Native::Other, Native::Int),
        Source::FlowId => i64::try_from(e.flow_id).map_or(Native::Other, Native::Int),
        Source::HasPcap => Native::Bool(false),
        Source::Ip(s) | Source::Name(s) => Native::Ip(match s {
            Side::Request => e.client.ip,
            Side::Response => e.server.ip,
        }),
        Source::Port(s) => Native::Int(match s {
            Side::Request => e.client.port,
            Side::Response => e.server.port,
        } as i64),
        Source::Flag(name) => {
            let proto = &catalog.protocol(e.plugin, e.protocol).flag;
            let transport = match e.transport {
                Transport::Tcp => "tcp",
                Transport::Udp => "udp",
            };
            if proto == name || transport == name {
                return Native::Bool(true);
            }
            match field.map(|(id, ty)| scalar(e, None, id, ty)) {
                None | Some(Native::Missing) => Native::Bool(false),
                Some(v) => v,
            }
        }
        Source::Bare(_) => match field {
            None => Native::Missing,
            Some((id, ty)) => scalar(e, None, id, ty),
        },
        Source::Field(side, _) => match field {
            None => Native::Missing,
            Some((id, ty)) => scalar(e, Some(*side), id, ty),
        },
        Source::Missing => Native::Missing,
        Source::Timestamp => Native::Other,
    }
}

/// The message a collection variable is read from, as `eval::value` picks
/// it: a bare name reads the request when it holds the field, else the
/// response. None when the entry lacks the variable (or it is empty, which
/// answers the same for membership and indexing).
fn collection<'a>(b: &Bound, e: &'a Entry, ty: FieldType) -> Result<Option<&'a Message>, ()> {
    let Some((id, field_ty)) = b.fields.get(e.plugin as usize).copied().flatten() else {
        return match b.source {
            Source::Bare(_) | Source::Field(..) | Source::Missing => Ok(None),
            _ => Err(()),
        };
    };
    if field_ty != ty {
        return Err(());
    }
    let holds = |m: &&Message| {
        m.fields.iter().any(|f| {
            f.id == id && (ty != FieldType::StrMap || matches!(f.value, FieldValue::Pair(..)))
        })
    };
    match &b.source {
        Source::Bare(_) => Ok(e
            .request
            .as_ref()
            .filter(holds)
            .or_else(|| e.response.as_ref().filter(holds))),
        Source::Field(side, _) => Ok(message(e, *side).filter(holds)),
        _ => Err(()),
    }
}

/// `map[key]` for a map variable: members lower-cased, repeats joined by
/// ", " (as `eval::value`).
fn member<'a>(b: &Bound, e: &'a Entry, key: &str) -> Native<'a> {
    let Ok(m) = collection(b, e, FieldType::StrMap) else {
        return Native::Other;
    };
    let Some(m) = m else {
        return Native::Missing;
    };
    let Some((id, _)) = b.fields.get(e.plugin as usize).copied().flatten() else {
        return Native::Missing;
    };
    // A stored key equals `key` after lower-casing only if `key` has no
    // upper case itself.
    if key.bytes().any(|c| c.is_ascii_uppercase()) {
        return Native::Missing;
    }
    let mut out: Option<Cow<'a, str>> = None;
    for f in m.fields.iter().filter(|f| f.id == id) {
        let FieldValue::Pair(k, v) = f.value else {
            continue;
        };
        if !k.eq_ignore_ascii_case(key) {
            continue;
        }
        out = Some(match out {
            None => Cow::Borrowed(v),
            Some(prev) => Cow::Owned(format!("{prev}, {v}")),
        });
    }
    out.map_or(Native::Missing, Native::Str)
}

fn list_contains(b: &Bound, e: &Entry, l: &Lit) -> Option<bool> {
    let ty = match l {
        Lit::Str(_) => FieldType::StrList,
        Lit::Int(_) => FieldType::IntList,
        Lit::Bool(_) => return None,
    };
    let Some(m) = collection(b, e, ty).ok()? else {
        return Some(false);
    };
    let (id, _) = b.fields.get(e.plugin as usize).copied().flatten()?;
    let mut found = false;
    for f in m.fields.iter().filter(|f| f.id == id) {
        match (f.value, l) {
            (FieldValue::Str(v), Lit::Str(x)) => found |= v == x.as_str(),
            (FieldValue::Int(v), Lit::Int(x)) => found |= v == *x,
            // A mixed list: CEL's cross-type equality decides.
            _ => return None,
        }
    }
    Some(found)
}

fn cmp<T: PartialOrd>(a: &T, o: Op, b: &T) -> bool {
    match o {
        Op::Eq => a == b,
        Op::Ne => a != b,
        Op::Lt => a < b,
        Op::Le => a <= b,
        Op::Gt => a > b,
        Op::Ge => a >= b,
    }
}
