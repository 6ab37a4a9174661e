//! Fold a message's flat field list into one value per declared field.

use crate::{FieldSchema, FieldType, Message, PluginSchema, ValueRef};

/// One declared field's value(s) in a message.
pub(crate) enum Grouped<'a> {
    Scalar(ValueRef<'a>),
    List(Vec<ValueRef<'a>>),
    /// Members in wire order, duplicates kept.
    Map(Vec<(&'a str, &'a str)>),
}

/// Fields in first-appearance order; unknown ids are skipped (the runtime
/// rejects them, so this only guards against a stale catalog).
pub(crate) fn group<'a>(
    schema: &'a PluginSchema,
    msg: &'a Message,
) -> Vec<(&'a FieldSchema, Grouped<'a>)> {
    let mut out: Vec<(&FieldSchema, Grouped)> = Vec::with_capacity(msg.fields.len());
    for f in &msg.fields {
        let Some(decl) = schema.field(f.id) else {
            continue;
        };
        let slot = out.iter_mut().position(|(d, _)| d.id == f.id);
        match (decl.ty, slot) {
            (FieldType::StrMap, slot) => {
                let ValueRef::Pair(k, v) = f.value else {
                    continue;
                };
                match slot {
                    Some(i) => {
                        if let Grouped::Map(m) = &mut out[i].1 {
                            m.push((k, v));
                        }
                    }
                    None => out.push((decl, Grouped::Map(vec![(k, v)]))),
                }
            }
            (FieldType::StrList | FieldType::IntList, slot) => match slot {
                Some(i) => {
                    if let Grouped::List(l) = &mut out[i].1 {
                        l.push(f.value);
                    }
                }
                None => out.push((decl, Grouped::List(vec![f.value]))),
            },
            // A repeated scalar: the last value wins.
            (_, Some(i)) => out[i].1 = Grouped::Scalar(f.value),
            (_, None) => out.push((decl, Grouped::Scalar(f.value))),
        }
    }
    out
}
