//! The boolean skeleton of a filter: `&&`, `||`, `!` and `?:` above the
//! leaves (comparisons, calls, flags) where the missing-field rule applies.
//!
//! The skeleton is evaluated here rather than by the CEL interpreter so that
//! a leaf whose variable or map key is missing can be decided as false
//! *before* `!` sees it; CEL itself would carry the error through `!`. Apart
//! from that, the connectives keep CEL's rules, errors included: `false &&
//! error` and `error && false` are false, `true || error` and `error || true`
//! are true, any other error reaches the top and the entry does not match.

use cel::common::ast::{Expr, IdedExpr};

use crate::native::Check;

/// A leaf's or a sub-filter's outcome. `Error` is a CEL error that is not a
/// missing field (a type mismatch, a bad regex) or a non-bool value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Truth {
    True,
    False,
    Error,
}

impl From<bool> for Truth {
    fn from(b: bool) -> Truth {
        if b {
            Truth::True
        } else {
            Truth::False
        }
    }
}

/// A boolean-position expression that is not a connective.
#[derive(Debug)]
pub(crate) struct Leaf {
    pub expr: IdedExpr,
    /// How to decide it without CEL, when its shape allows.
    pub native: Option<Check>,
}

#[derive(Debug)]
pub(crate) enum Node {
    And(Box<Node>, Box<Node>),
    Or(Box<Node>, Box<Node>),
    Not(Box<Node>),
    /// `c ? a : b` in a boolean position: both branches are boolean too.
    Cond(Box<Node>, Box<Node>, Box<Node>),
    Leaf(Leaf),
}

impl Node {
    /// Splits `e` into connectives and leaves; `native` compiles a leaf's
    /// fast path where it can.
    pub fn build(e: &IdedExpr, native: &dyn Fn(&IdedExpr) -> Option<Check>) -> Node {
        if let Expr::Call(c) = &e.expr {
            if c.target.is_none() {
                let sub = |i: usize| Box::new(Node::build(&c.args[i], native));
                match (c.func_name.as_str(), c.args.len()) {
                    ("_&&_", 2) => return Node::And(sub(0), sub(1)),
                    ("_||_", 2) => return Node::Or(sub(0), sub(1)),
                    ("!_", 1) => return Node::Not(sub(0)),
                    ("_?_:_", 3) => return Node::Cond(sub(0), sub(1), sub(2)),
                    _ => {}
                }
            }
        }
        Node::Leaf(Leaf {
            expr: e.clone(),
            native: native(e),
        })
    }

    /// The filter's outcome, asking `leaf` only for the leaves that
    /// short-circuiting does not skip, left to right as CEL does.
    pub fn eval(&self, leaf: &mut dyn FnMut(&Leaf) -> Truth) -> Truth {
        match self {
            Node::Leaf(l) => leaf(l),
            Node::Not(a) => match a.eval(leaf) {
                Truth::True => Truth::False,
                Truth::False => Truth::True,
                Truth::Error => Truth::Error,
            },
            Node::And(a, b) => match a.eval(leaf) {
                Truth::False => Truth::False,
                left => match (left, b.eval(leaf)) {
                    (Truth::True, r) => r,
                    (Truth::Error, Truth::False) => Truth::False,
                    _ => Truth::Error,
                },
            },
            Node::Or(a, b) => match a.eval(leaf) {
                Truth::True => Truth::True,
                left => match (left, b.eval(leaf)) {
                    (Truth::False, r) => r,
                    (Truth::Error, Truth::True) => Truth::True,
                    _ => Truth::Error,
                },
            },
            Node::Cond(c, a, b) => match c.eval(leaf) {
                Truth::True => a.eval(leaf),
                Truth::False => b.eval(leaf),
                Truth::Error => Truth::Error,
            },
        }
    }

    /// Whether every leaf has a native check.
    #[cfg(test)]
    pub fn all_native(&self) -> bool {
        match self {
            Node::Leaf(l) => l.native.is_some(),
            Node::Not(a) => a.all_native(),
            Node::And(a, b) | Node::Or(a, b) => a.all_native() && b.all_native(),
            Node::Cond(c, a, b) => c.all_native() && a.all_native() && b.all_native(),
        }
    }
}
