//! What one request may cost, however it is written.
//!
//! Depth and complexity limits bound the shape of a query, not what it
//! returns: GraphQL aliases repeat a field as often as the text allows, so
//! one 200 KB request of 2,000 aliased `entries` lists took the server to
//! 7.8 GB resident and answered 595 MB. Here every request (a POST, all the
//! requests of a batched POST together, or one WebSocket operation) gets a
//! [`RequestBudget`]: its lists examine at most [`MAX_SCAN`] stored entries
//! between them, and its answer holds at most [`MAX_RESPONSE_BYTES`] of
//! values. At most [`MAX_EXECUTING`] queries execute at once; the rest wait.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextPrepareRequest,
    NextResolve, ResolveInfo,
};
use async_graphql::parser::types::{ExecutableDocument, OperationType, Selection, SelectionSet};
use async_graphql::registry::MetaTypeName;
use async_graphql::{Request, Response, ServerError, ServerResult, Value, Variables};
use remora_store::StoredEntry;

use crate::connections::Cap;
use crate::MAX_SCAN;

/// Bytes of values (texts, numbers, JSON) one request's answer may hold;
/// well above the largest page the dashboard or `remora query` asks for
/// (a page stops at [`PAGE_BYTES`]), and an entry with two bodies at the
/// largest body cap still fits. The answer is a tree of values before it is
/// JSON: 27 MB of JSON held 310 MB while it was built.
pub const MAX_RESPONSE_BYTES: u64 = 16 << 20;

/// Estimated bytes of entries one `entries` page holds before it stops
/// early with a cursor (see [`entry_cost`]).
pub const PAGE_BYTES: u64 = 4 << 20;

/// Queries that read the store (`entries`, `entry`, `serviceMap`) or the
/// flow list executing at once; each holds its answer until it is built.
/// Other queries (stats, plugins, variables, filter checks) and a
/// subscription's events do not wait for a place.
pub const MAX_EXECUTING: usize = 4;

/// Root fields whose queries take a place among [`MAX_EXECUTING`].
const HEAVY_FIELDS: [&str; 4] = ["entries", "entry", "serviceMap", "flows"];

/// Entries a list takes from the scan budget at a time: the budget is
/// shared by the fields of a request, which run concurrently. The clock is
/// read once per chunk.
const SCAN_CHUNK: u64 = 64;

/// How long one request's lists may scan: 2 M entries take ~2 s with a
/// plain filter; a filter at its cost limit takes up to ~10 ms an entry.
pub const MAX_SCAN_TIME: Duration = Duration::from_secs(10);

/// Roughly what an entry adds to an answer that lists it: its fields appear
/// twice (`fields` and `vars`), a body as text and as base64, and the rest
/// (ids, addresses, times, summaries) is about half a kilobyte.
pub(crate) fn entry_cost(se: &StoredEntry) -> u64 {
    let e = &se.entry;
    let mut n = 512u64;
    for m in [&e.request, &e.response].into_iter().flatten() {
        n += 2 * m.fields.encoded_len() as u64;
        if let Some(b) = &m.body {
            n += 3 * b.data.len() as u64;
        }
    }
    n
}

/// One request's allowance, shared by all its fields.
pub(crate) struct RequestBudget {
    scans: AtomicU64,
    /// When its first list started scanning: they stop `scan_time` later,
    /// whatever is left of `scans` (counted from then, not from the
    /// request's arrival: it may have waited for a place to execute).
    started: OnceLock<Instant>,
    bytes: AtomicU64,
    /// Set when the answer was cut, so the cut is counted once.
    cut: AtomicBool,
    /// What it started with, for the errors that say it ran out.
    limits: (u64, u64, Duration),
}

impl RequestBudget {
    pub(crate) fn new(limits: &QueryLimits) -> Self {
        RequestBudget {
            scans: AtomicU64::new(limits.max_scan),
            started: OnceLock::new(),
            bytes: AtomicU64::new(limits.max_bytes),
            cut: AtomicBool::new(false),
            limits: (limits.max_scan, limits.max_bytes, limits.scan_time),
        }
    }

    /// A share of the scans left (at most [`SCAN_CHUNK`]); 0 when none are,
    /// or the request's scanning time is up (then none are left).
    fn take_scans(&self) -> u64 {
        if self.started.get_or_init(Instant::now).elapsed() >= self.limits.2 {
            self.scans.store(0, Ordering::Relaxed);
            return 0;
        }
        let mut got = 0;
        let _ = self
            .scans
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                got = left.min(SCAN_CHUNK);
                Some(left - got)
            });
        got
    }

    /// A full allowance of answer bytes again (a subscription's next event).
    fn refill(&self) {
        self.bytes.store(self.limits.1, Ordering::Relaxed);
        self.cut.store(false, Ordering::Relaxed);
    }

    fn give_back_scans(&self, n: u64) {
        self.scans.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn scans_left(&self) -> u64 {
        self.scans.load(Ordering::Relaxed)
    }

    /// Charge `n` bytes of answer; false (nothing charged) when fewer are left.
    fn take_bytes(&self, n: u64) -> bool {
        self.bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(n)
            })
            .is_ok()
    }

    /// The error a field gets when the request's other fields examined all
    /// it may: what ran out, and what to do instead.
    pub(crate) fn spent(&self, what: &str) -> async_graphql::Error {
        async_graphql::Error::new(format!(
            "this request has examined the {} stored entries, or scanned for the {:?}, \
             one request may; ask for {what} in a separate request",
            self.limits.0, self.limits.2
        ))
    }

    fn too_large(&self) -> ServerError {
        ServerError::new(
            format!(
                "answer larger than {} bytes: ask for fewer entries, fields or aliases per \
                 request (pages continue with `after`)",
                self.limits.1
            ),
            None,
        )
    }
}

/// Scan budget drawn as a list goes: `next` says whether one more entry may
/// be examined, and what it did not use goes back on drop.
pub(crate) struct Scanner<'a> {
    budget: &'a RequestBudget,
    allowance: u64,
}

impl<'a> Scanner<'a> {
    pub(crate) fn new(budget: &'a RequestBudget) -> Self {
        Scanner {
            budget,
            allowance: 0,
        }
    }

    /// Whether the request may examine one more entry (taken if so).
    pub(crate) fn next(&mut self) -> bool {
        if self.allowance == 0 {
            self.allowance = self.budget.take_scans();
        }
        if self.allowance == 0 {
            return false;
        }
        self.allowance -= 1;
        true
    }
}

impl Drop for Scanner<'_> {
    fn drop(&mut self) {
        self.budget.give_back_scans(self.allowance);
    }
}

/// Limits shared by every request: what each may cost, how many execute
/// at once, and how many answers were cut (for `/metrics`).
pub(crate) struct QueryLimits {
    pub(crate) executing: Cap,
    max_scan: u64,
    max_bytes: u64,
    pub(crate) scan_time: Duration,
    cut: AtomicU64,
}

impl Default for QueryLimits {
    fn default() -> Self {
        QueryLimits::new(MAX_EXECUTING, MAX_SCAN, MAX_RESPONSE_BYTES)
    }
}

impl QueryLimits {
    pub(crate) fn new(executing: usize, max_scan: u64, max_bytes: u64) -> Self {
        QueryLimits {
            executing: Cap::new(executing.max(1)),
            max_scan,
            max_bytes,
            scan_time: MAX_SCAN_TIME,
            cut: AtomicU64::new(0),
        }
    }

    /// Requests whose answer ran past their byte budget.
    pub(crate) fn cut(&self) -> u64 {
        self.cut.load(Ordering::Relaxed)
    }
}

/// The extension that gives each request its budget and charges what its
/// fields return.
pub(crate) struct Budgets(pub(crate) Arc<QueryLimits>);

impl ExtensionFactory for Budgets {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(BudgetHooks {
            limits: self.0.clone(),
            subscription: AtomicBool::new(false),
            heavy: AtomicBool::new(false),
        })
    }
}

/// One request's hooks (made per request, a WebSocket operation included).
struct BudgetHooks {
    limits: Arc<QueryLimits>,
    /// The document holds a subscription: its events do not share one
    /// budget over its lifetime (each event gets one).
    subscription: AtomicBool,
    /// A query of the document asks for one of [`HEAVY_FIELDS`]: it waits
    /// for a place to execute (a live feed never queues behind them).
    heavy: AtomicBool,
}

/// Whether `set` (with the fragments it spreads) selects one of
/// [`HEAVY_FIELDS`]. Runs before validation, so fragment cycles are cut
/// here (each fragment is looked at once).
fn selects_heavy<'d>(
    set: &'d SelectionSet,
    doc: &'d ExecutableDocument,
    seen: &mut Vec<&'d str>,
) -> bool {
    set.items.iter().any(|item| match &item.node {
        Selection::Field(f) => HEAVY_FIELDS.contains(&f.node.name.node.as_str()),
        Selection::InlineFragment(i) => selects_heavy(&i.node.selection_set.node, doc, seen),
        Selection::FragmentSpread(s) => {
            let name = s.node.fragment_name.node.as_str();
            if seen.contains(&name) {
                return false;
            }
            seen.push(name);
            doc.fragments
                .get(&s.node.fragment_name.node)
                .is_some_and(|f| selects_heavy(&f.node.selection_set.node, doc, seen))
        }
    })
}

#[async_graphql::async_trait::async_trait]
impl Extension for BudgetHooks {
    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        // A batched POST brings one budget for all its requests.
        let request = if request
            .data
            .contains_key(&std::any::TypeId::of::<Arc<RequestBudget>>())
        {
            request
        } else {
            request.data(Arc::new(RequestBudget::new(&self.limits)))
        };
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        let subscription = doc
            .operations
            .iter()
            .any(|(_, op)| op.node.ty == OperationType::Subscription);
        self.subscription.store(subscription, Ordering::Relaxed);
        let heavy = doc.operations.iter().any(|(_, op)| {
            op.node.ty != OperationType::Subscription
                && selects_heavy(&op.node.selection_set.node, &doc, &mut Vec::new())
        });
        self.heavy.store(heavy, Ordering::Relaxed);
        Ok(doc)
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        let _place = if self.heavy.load(Ordering::Relaxed) {
            Some(self.limits.executing.take().await)
        } else {
            None
        };
        next.run(ctx, operation_name).await
    }

    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<Value>> {
        let Some(budget) = ctx.data_opt::<Arc<RequestBudget>>() else {
            return next.run(ctx, info).await;
        };
        if self.subscription.load(Ordering::Relaxed)
            && ctx.schema_env.registry.subscription_type.as_deref() == Some(info.parent_type)
        {
            // A new event of a subscription: its answer is a new one.
            budget.refill();
        }
        if budget.cut.load(Ordering::Relaxed) {
            // Said once, by the field that ran out; the rest of the answer
            // is nulls, not one more error per field.
            return Ok(Some(Value::Null));
        }
        // A field whose type is a scalar or an enum (or a list of them) is
        // charged what it holds; anything else (an object, a list of them,
        // an element of a list) its key and brackets, before it resolves:
        // aliases repeat structure as well as data.
        let leaf = matches!(
            info.path_node.segment,
            async_graphql::QueryPathSegment::Name(_)
        ) && ctx
            .schema_env
            .registry
            .types
            .get(MetaTypeName::concrete_typename(info.return_type))
            .is_some_and(|t| t.is_leaf());
        let key = info.name.len() as u64 + 4;
        if !leaf {
            if !budget.take_bytes(key) {
                return self.cut(budget);
            }
            return next.run(ctx, info).await;
        }
        let value = next.run(ctx, info).await?;
        match &value {
            Some(v) if !budget.take_bytes(key + value_bytes(v)) => self.cut(budget),
            _ => Ok(value),
        }
    }
}

impl BudgetHooks {
    /// The request ran out: the error for the field that found out (the
    /// first; counted), null for any other.
    fn cut(&self, budget: &RequestBudget) -> ServerResult<Option<Value>> {
        if budget.cut.swap(true, Ordering::Relaxed) {
            return Ok(Some(Value::Null));
        }
        self.limits.cut.fetch_add(1, Ordering::Relaxed);
        Err(budget.too_large())
    }
}

/// About what `v` takes in the JSON answer.
fn value_bytes(v: &Value) -> u64 {
    match v {
        Value::Null | Value::Boolean(_) => 5,
        Value::Number(_) => 20,
        Value::String(s) => s.len() as u64 + 2,
        Value::Binary(b) => b.len() as u64 * 4 / 3 + 2,
        Value::Enum(e) => e.len() as u64 + 2,
        Value::List(l) => 2 + l.iter().map(|x| value_bytes(x) + 1).sum::<u64>(),
        Value::Object(o) => {
            2 + o
                .iter()
                .map(|(k, x)| k.len() as u64 + 4 + value_bytes(x))
                .sum::<u64>()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scans_are_shared_and_unused_ones_go_back() {
        let b = RequestBudget::new(&QueryLimits::default());
        {
            let mut s = Scanner::new(&b);
            assert!(s.next());
            // One chunk taken, one scan of it used.
            assert_eq!(b.scans_left(), MAX_SCAN - SCAN_CHUNK);
        }
        assert_eq!(b.scans_left(), MAX_SCAN - 1);
        let mut s = Scanner::new(&b);
        let mut n = 0;
        while s.next() {
            n += 1;
        }
        assert_eq!(n, MAX_SCAN - 1);
        drop(s);
        assert!(!Scanner::new(&b).next());
    }

    #[test]
    fn heavy_fields_are_found_through_fragments_and_cycles_end() {
        let heavy = |q: &str| {
            let doc = async_graphql::parser::parse_query(q).unwrap();
            doc.operations
                .iter()
                .any(|(_, op)| selects_heavy(&op.node.selection_set.node, &doc, &mut Vec::new()))
        };
        assert!(heavy("{ stats { packets } entries { next } }"));
        assert!(!heavy("{ stats { packets } plugins { name } }"));
        assert!(heavy("{ ... on QueryRoot { serviceMap { scanned } } }"));
        assert!(heavy("{ ...A } fragment A on QueryRoot { ...B } fragment B on QueryRoot { entry(id: 1) { id } }"));
        assert!(!heavy("{ ...A } fragment A on QueryRoot { ...B } fragment B on QueryRoot { ...A stats { packets } }"));
    }

    #[test]
    fn bytes_are_charged_until_they_run_out() {
        let b = RequestBudget::new(&QueryLimits::default());
        assert!(b.take_bytes(MAX_RESPONSE_BYTES - 10));
        assert!(!b.take_bytes(11));
        assert!(b.take_bytes(10));
        assert!(!b.take_bytes(1));
    }

    #[test]
    fn value_sizes_follow_their_json() {
        let v = Value::from_json(serde_json::json!({"a": ["xy", 1, null], "b": "hello"})).unwrap();
        let json = serde_json::to_string(&v.clone().into_json().unwrap()).unwrap();
        let est = value_bytes(&v);
        assert!(
            est as usize >= json.len() && (est as usize) < json.len() * 3,
            "{est} for {json}"
        );
    }
}
