//! A native evaluator for the common shape of filters: a top-level `&&` of
//! flags, negated flags and `variable <op> literal` comparisons on scalars.
//!
//! It gives CEL's answer or none: every term is decided natively only when
//! CEL's result is certain (same types, value present or certainly missing);
//! otherwise `matches` runs the CEL program. Under a top-level conjunction a
//! missing variable (a CEL error) and a false term both end in "no match",
//! so a missing variable is decided as false.

use std::net::IpAddr;

use cel::common::ast::{Expr, IdedExpr, LiteralValue};
use remora_core::Transport;
use remora_entry::{Catalog, Entry, FieldType, Value as FieldValue};

use crate::eval::{Bound, Plan, Side, Source};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Clone, Debug)]
enum Lit {
    Int(i64),
    Str(String),
    Bool(bool),
}

#[derive(Clone, Debug)]
enum Term {
    /// A bool variable, possibly negated.
    Flag(usize, bool),
    Cmp(usize, Op, Lit),
}

/// The conjunction, or None when the filter has another shape.
#[derive(Clone, Debug)]
pub(crate) struct Conjunction(Vec<Term>);

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

impl Conjunction {
    /// `var_of` maps a bare identifier (no selection) or a dotted chain to
    /// the index of the referenced variable and its declared type.
    pub fn compile(
        e: &IdedExpr,
        var_of: &dyn Fn(&str) -> Option<(usize, String)>,
    ) -> Option<Conjunction> {
        let mut terms = Vec::new();
        collect(e, var_of, &mut terms)?;
        Some(Conjunction(terms))
    }

    /// Some(result) when CEL's result is certain, None to run CEL.
    pub fn eval(&self, catalog: &Catalog, plan: &Plan, e: &Entry) -> Option<bool> {
        let mut all = true;
        for t in &self.0 {
            match term(catalog, plan, e, t) {
                Some(false) => return Some(false),
                Some(true) => {}
                None => all = false,
            }
        }
        all.then_some(true)
    }
}

fn path(e: &IdedExpr) -> Option<String> {
    match &e.expr {
        Expr::Ident(n) => Some(n.clone()),
        Expr::Select(s) if !s.test => Some(format!("{}.{}", path(&s.operand)?, s.field)),
        _ => None,
    }
}

fn collect(
    e: &IdedExpr,
    var_of: &dyn Fn(&str) -> Option<(usize, String)>,
    out: &mut Vec<Term>,
) -> Option<()> {
    match &e.expr {
        Expr::Call(c) if c.target.is_none() && c.func_name == "_&&_" => {
            for a in &c.args {
                collect(a, var_of, out)?;
            }
            Some(())
        }
        Expr::Call(c) if c.target.is_none() && c.func_name == "!_" && c.args.len() == 1 => {
            let (i, ty) = var_of(&path(&c.args[0])?)?;
            (ty == "bool").then(|| out.push(Term::Flag(i, true)))
        }
        Expr::Call(c) if c.target.is_none() && c.args.len() == 2 => {
            let o = op(&c.func_name)?;
            let (var, l, o) = match (path(&c.args[0]), lit(&c.args[1])) {
                (Some(p), Some(l)) => (p, l, o),
                _ => (path(&c.args[1])?, lit(&c.args[0])?, flip(o)),
            };
            let (i, ty) = var_of(&var)?;
            // Only same-type comparisons: CEL's cross-type rules (1 == 1.0,
            // errors on `<` across types) stay with CEL.
            let same = matches!(
                (&l, ty.as_str()),
                (Lit::Int(_), "int") | (Lit::Str(_), "string") | (Lit::Bool(_), "bool")
            );
            let ordered = matches!(l, Lit::Int(_)) || matches!(o, Op::Eq | Op::Ne);
            (same && ordered).then(|| out.push(Term::Cmp(i, o, l)))
        }
        _ => {
            let (i, ty) = var_of(&path(e)?)?;
            (ty == "bool").then(|| out.push(Term::Flag(i, false)))
        }
    }
}

/// A variable's value without building a CEL value.
enum Native<'a> {
    Missing,
    Bool(bool),
    Int(i64),
    Str(&'a str),
    Ip(IpAddr),
    /// A value of an unexpected type: let CEL decide.
    Other,
}

fn scalar<'a>(e: &'a Entry, side: Option<Side>, id: u16, ty: FieldType) -> Native<'a> {
    if ty.is_collection() {
        return Native::Other;
    }
    let find = |m: &'a remora_entry::Message| m.fields.iter().rev().find(|f| f.id == id);
    let f = match side {
        Some(Side::Request) => e.request.as_ref().and_then(find),
        Some(Side::Response) => e.response.as_ref().and_then(find),
        None => e
            .request
            .as_ref()
            .and_then(find)
            .or_else(|| e.response.as_ref().and_then(find)),
    };
    match f.map(|f| &f.value) {
        None => Native::Missing,
        Some(FieldValue::Bool(b)) => Native::Bool(*b),
        Some(FieldValue::Int(i)) => Native::Int(*i),
        Some(FieldValue::Str(s)) => Native::Str(s),
        Some(_) => Native::Other,
    }
}

fn native<'a>(catalog: &'a Catalog, b: &Bound, e: &'a Entry) -> Native<'a> {
    let field = b.fields.get(e.plugin as usize).copied().flatten();
    match &b.source {
        Source::Protocol => Native::Str(&catalog.protocol(e.plugin, e.protocol).name),
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

fn term(catalog: &Catalog, plan: &Plan, e: &Entry, t: &Term) -> Option<bool> {
    match t {
        Term::Flag(i, neg) => match native(catalog, &plan.vars[*i], e) {
            Native::Bool(b) => Some(b != *neg),
            Native::Missing => Some(false),
            _ => None,
        },
        Term::Cmp(i, o, l) => match (native(catalog, &plan.vars[*i], e), l) {
            (Native::Missing, _) => Some(false),
            (Native::Int(v), Lit::Int(x)) => Some(cmp(&v, *o, x)),
            (Native::Bool(v), Lit::Bool(x)) => Some(cmp(&v, *o, x)),
            (Native::Str(v), Lit::Str(x)) => Some(cmp(&v, *o, &x.as_str())),
            (Native::Ip(ip), Lit::Str(x)) => {
                // The variable is the canonical text of `ip`: equal only to a
                // literal that is that text.
                let same = x
                    .parse::<IpAddr>()
                    .is_ok_and(|p| p == ip && p.to_string() == *x);
                match o {
                    Op::Eq => Some(same),
                    Op::Ne => Some(!same),
                    _ => None,
                }
            }
            _ => None,
        },
    }
}
