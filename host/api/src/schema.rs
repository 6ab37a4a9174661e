//! The GraphQL schema: queries over the store and the capture, and the
//! entries and stats subscriptions.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
use async_graphql::{
    Context, EmptyMutation, Enum, ErrorExtensions, Object, Schema, SimpleObject, Subscription, ID,
};
use async_graphql_axum::{GraphQLBatchRequest, GraphQLResponse};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::{Stream, StreamExt};
use remora_core::fanout::Missed;
use remora_core::Timestamp;
use remora_filter::{Filter, FilterError};
use remora_store::{Order as StoreOrder, Scan, StoredEntry};
use tokio_stream::wrappers::IntervalStream;

use crate::budget::{self, Budgets, RequestBudget, Scanner};
use crate::convert::EntryObject;
use crate::servicemap::{self, GroupBy, ServiceMap};
use crate::telemetry::{Counter, FlowRecord, PluginRecord, ShardStats, SourceStats};
use crate::{time_arg, ApiState, Int64, MAX_LIMIT};

pub type ApiSchema = Schema<QueryRoot, EmptyMutation, SubscriptionRoot>;

/// Deep enough for every query the dashboard makes, shallow enough that no
/// query fans out without bound.
const MAX_DEPTH: usize = 12;
const MAX_COMPLEXITY: usize = 20_000;
/// What a field that scans the store adds to a query's complexity: at most
/// 19 of them per query, however it aliases them (their scans share one
/// budget besides, `budget.rs`).
const SCAN_COMPLEXITY: usize = 1_000;
/// What a lookup of one entry (with its bodies) or of the flow list adds:
/// at most 39 per query.
const LOOKUP_COMPLEXITY: usize = 500;

pub fn build_schema(state: Arc<ApiState>) -> ApiSchema {
    Schema::build(QueryRoot, EmptyMutation, SubscriptionRoot)
        .data(state.clone())
        .limit_depth(MAX_DEPTH)
        .limit_complexity(MAX_COMPLEXITY)
        .extension(Budgets(state.queries.clone()))
        .finish()
}

pub(crate) fn routes(schema: ApiSchema, state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/graphql", get(graphql_get).post(graphql_post))
        .with_state((schema, state))
}

/// POST /graphql: one request, or a batch of them sharing one budget.
async fn graphql_post(
    State((schema, state)): State<(ApiSchema, Arc<ApiState>)>,
    req: GraphQLBatchRequest,
) -> GraphQLResponse {
    let batch = req
        .into_inner()
        .data(Arc::new(RequestBudget::new(&state.queries)));
    schema.execute_batch(batch).await.into()
}

/// GET /graphql is GraphiQL for a browser, or a graphql-transport-ws
/// subscription when it is a WebSocket upgrade.
async fn graphql_get(
    State((schema, state)): State<(ApiSchema, Arc<ApiState>)>,
    req: Request,
) -> Response {
    let upgrade = req
        .headers()
        .get(axum::http::header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    if upgrade {
        subscribe(schema, state, req).await
    } else {
        Html(
            async_graphql::http::GraphiQLSource::build()
                .endpoint("/graphql")
                .subscription_endpoint("/graphql")
                .title("Remora GraphiQL")
                .finish(),
        )
        .into_response()
    }
}

/// A graphql-transport-ws (or graphql-ws) connection, as
/// `async_graphql_axum::GraphQLSubscription` makes it, with the WebSocket
/// message and frame sizes bounded like request bodies: its defaults (64
/// and 16 MiB) let each connection buffer 64 MiB of one message. At most
/// [`crate::MAX_SUBSCRIBERS`] are open at once.
async fn subscribe(schema: ApiSchema, state: Arc<ApiState>, req: Request) -> Response {
    let Some(permit) = state.sockets.try_take() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "too many subscription connections (limit {}); close one and retry\n",
                crate::MAX_SUBSCRIBERS
            ),
        )
            .into_response();
    };
    let (mut parts, _body) = req.into_parts();
    let Some(protocol) = crate::websocket::protocol(&parts.headers) else {
        return (
            StatusCode::BAD_REQUEST,
            "no GraphQL WebSocket protocol offered (Sec-WebSocket-Protocol: \
             graphql-transport-ws or graphql-ws)\n",
        )
            .into_response();
    };
    let upgrade = match WebSocketUpgrade::from_request_parts(&mut parts, &()).await {
        Ok(u) => u,
        Err(e) => return e.into_response(),
    };
    upgrade
        .max_message_size(crate::MAX_REQUEST_BODY)
        .max_frame_size(crate::MAX_REQUEST_BODY)
        .protocols(ALL_WEBSOCKET_PROTOCOLS)
        .on_upgrade(move |stream| async move {
            crate::websocket::serve(stream, schema, protocol, &state.ws_operations_refused).await;
            drop(permit);
        })
}

fn state<'a>(ctx: &Context<'a>) -> &'a Arc<ApiState> {
    ctx.data_unchecked::<Arc<ApiState>>()
}

fn filter_error(e: FilterError) -> async_graphql::Error {
    let (start, end) = (e.start, e.end);
    async_graphql::Error::new(format!("filter: {}", e.message)).extend_with(|_, x| {
        x.set("code", "BAD_FILTER");
        x.set("start", start as i64);
        x.set("end", end as i64);
    })
}

pub(crate) fn compile(state: &ApiState, filter: Option<&str>) -> async_graphql::Result<Filter> {
    Filter::compile(filter.unwrap_or(""), &state.variables).map_err(filter_error)
}

/// The `from` and `to` arguments; a window that ends before it starts is
/// an error rather than an empty answer that looks like no traffic.
fn time_window(
    from: Option<&str>,
    to: Option<&str>,
) -> async_graphql::Result<(Option<Timestamp>, Option<Timestamp>)> {
    let bound = |name, v: Option<&str>| {
        v.map(|s| time_arg::parse(name, s))
            .transpose()
            .map_err(async_graphql::Error::new)
    };
    let (f, t) = (bound("from", from)?, bound("to", to)?);
    if f.zip(t).is_some_and(|(f, t)| f > t) {
        return Err(async_graphql::Error::new(format!(
            "`from` ({}) is after `to` ({})",
            from.unwrap_or_default().trim(),
            to.unwrap_or_default().trim()
        )));
    }
    Ok((f, t))
}

#[derive(Enum, Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum Order {
    #[default]
    NewestFirst,
    OldestFirst,
}

#[derive(SimpleObject)]
pub struct EntryPage {
    entries: Vec<EntryObject>,
    /// Cursor for the next page (pass it as `after`); null when this is the last.
    next: Option<ID>,
    /// Entries examined to produce this page.
    scanned: Int64,
}

#[derive(SimpleObject)]
#[graphql(name = "StoreStats")]
pub struct StoreStatsObject {
    bytes: Int64,
    limit_bytes: Int64,
    entries: Int64,
    evicted_entries: Int64,
    oldest_id: Option<ID>,
    newest_id: Option<ID>,
}

#[derive(SimpleObject)]
pub struct Stats {
    uptime_seconds: f64,
    packets: Int64,
    bytes: Int64,
    entries: Int64,
    /// By reason, every stage and source, only non-zero.
    drops: Vec<Counter>,
    sources: Vec<SourceStats>,
    shards: Vec<ShardStats>,
    store: StoreStatsObject,
    /// Entries stored per protocol since start.
    protocols: Vec<Counter>,
}

pub(crate) fn stats_of(state: &ApiState) -> Stats {
    let c = state.telemetry.stats();
    let s = state.store.stats();
    Stats {
        uptime_seconds: state.started.elapsed().as_secs_f64(),
        packets: c.packets.into(),
        bytes: c.bytes.into(),
        entries: c.entries.into(),
        drops: c.drops,
        sources: c.sources,
        shards: c.shards,
        store: StoreStatsObject {
            bytes: s.bytes.into(),
            limit_bytes: s.limit_bytes.into(),
            entries: s.entries.into(),
            evicted_entries: s.evicted_entries.into(),
            oldest_id: s.oldest_id.map(|i| ID(i.to_string())),
            newest_id: s.newest_id.map(|i| ID(i.to_string())),
        },
        protocols: state
            .feed
            .per_protocol()
            .into_iter()
            .map(|(k, v)| Counter::new(k, v))
            .collect(),
    }
}

#[derive(SimpleObject)]
pub struct FilterCheck {
    ok: bool,
    error: Option<FilterErrorObject>,
}

#[derive(SimpleObject)]
#[graphql(name = "FilterError")]
pub struct FilterErrorObject {
    message: String,
    /// 0-based character offsets into the filter; end exclusive.
    start: i32,
    end: i32,
}

#[derive(SimpleObject)]
pub struct Variable {
    /// "status_code", "request.headers", "src.ip"
    name: String,
    /// "bool", "int", "string", "timestamp", "list(string)", "map(string,string)", ...
    #[graphql(name = "type")]
    ty: String,
    /// The protocol flag it belongs to; null for network and identity variables.
    protocol: Option<String>,
    doc: String,
}

pub struct QueryRoot;

fn parse_id(id: &ID) -> async_graphql::Result<u64> {
    id.parse::<u64>()
        .map_err(|_| async_graphql::Error::new(format!("{:?} is not an entry id", id.as_str())))
}

/// Runs on a blocking thread: the store reads files. Stops early, with a
/// cursor, at `limit` entries, at [`budget::PAGE_BYTES`] of them, or when
/// the request has examined all it may.
fn page(
    state: &ApiState,
    filter: &Filter,
    scan: &Scan,
    limit: usize,
    budget: &RequestBudget,
) -> async_graphql::Result<EntryPage> {
    let mut entries: Vec<EntryObject> = Vec::with_capacity(limit.min(128));
    let mut scanned = 0u64;
    let mut bytes = 0u64;
    // The last entry this page is done with: where the next one starts.
    let mut done_with = None;
    let mut more = false;
    let mut scanner = Scanner::new(budget);
    state
        .store
        .scan(scan, &mut |se: &StoredEntry| {
            if !scanner.next() {
                more = true;
                return ControlFlow::Break(());
            }
            scanned += 1;
            if filter.matches(&se.catalog, &se.entry) {
                let cost = budget::entry_cost(se);
                if entries.len() == limit
                    || (!entries.is_empty() && bytes + cost > budget::PAGE_BYTES)
                {
                    more = true;
                    return ControlFlow::Break(());
                }
                bytes += cost;
                entries.push(EntryObject::new(Arc::new(se.clone()), false));
            }
            done_with = Some(se.entry.id);
            ControlFlow::Continue(())
        })
        .map_err(|e| async_graphql::Error::new(format!("store: {e}")))?;
    // A page that examined nothing goes on where it was asked to start.
    let next = match (more, done_with.or(scan.after_id)) {
        (false, _) => None,
        (true, Some(id)) => Some(ID(id.to_string())),
        // Stopped before the first entry of the first page: there is no
        // cursor to give (`after: 0` would mean "nothing older").
        (true, None) => return Err(budget.spent("this page")),
    };
    Ok(EntryPage {
        entries,
        next,
        scanned: scanned.into(),
    })
}

/// The request's budget (the `Budgets` extension gives every request one)
/// for a field that scans the store; an error naming `what` to ask for
/// separately when the request's other fields examined all it may.
fn scan_budget(ctx: &Context<'_>, what: &str) -> async_graphql::Result<Arc<RequestBudget>> {
    let budget = ctx
        .data_opt::<Arc<RequestBudget>>()
        .cloned()
        .unwrap_or_else(|| Arc::new(RequestBudget::new(&state(ctx).queries)));
    if budget.scans_left() == 0 {
        return Err(budget.spent(what));
    }
    Ok(budget)
}

#[Object]
impl QueryRoot {
    /// Alerts raised since start (the newest are kept), oldest first;
    /// `after`: the last id already seen; `limit`: 1 to 1000.
    async fn alerts(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 100)] limit: i32,
        after: Option<ID>,
    ) -> async_graphql::Result<Vec<crate::alerts::AlertObject>> {
        crate::alerts::list(state(ctx), limit, after)
    }

    /// Stored entries matching a CEL filter, newest first by default.
    /// `from`/`to`: RFC 3339 bounds on the entry time ([from, to)); `after`:
    /// the previous page's `next`; `limit`: 1 to 1000. A page stops early
    /// (with a `next` cursor) at 4 MiB of entries, or when its request has
    /// examined 2 000 000 entries (all its fields together).
    #[allow(clippy::too_many_arguments)]
    #[graphql(complexity = "SCAN_COMPLEXITY + child_complexity")]
    async fn entries(
        &self,
        ctx: &Context<'_>,
        filter: Option<String>,
        from: Option<String>,
        to: Option<String>,
        after: Option<ID>,
        #[graphql(default = 100)] limit: i32,
        #[graphql(default)] order: Order,
    ) -> async_graphql::Result<EntryPage> {
        let state = state(ctx).clone();
        let limit = crate::checked_limit(limit, MAX_LIMIT)?;
        let filter = compile(&state, filter.as_deref())?;
        let (from, to) = time_window(from.as_deref(), to.as_deref())?;
        let scan = Scan {
            order: match order {
                Order::NewestFirst => StoreOrder::NewestFirst,
                Order::OldestFirst => StoreOrder::OldestFirst,
            },
            after_id: after.as_ref().map(parse_id).transpose()?,
            from,
            to,
            with_bodies: false,
        };
        let budget = scan_budget(ctx, "this page")?;
        tokio::task::spawn_blocking(move || page(&state, &filter, &scan, limit, &budget))
            .await
            .map_err(|e| async_graphql::Error::new(format!("scan failed: {e}")))?
    }

    /// One entry with its bodies; null when unknown or evicted.
    #[graphql(complexity = "LOOKUP_COMPLEXITY + child_complexity")]
    async fn entry(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<EntryObject>> {
        let id = parse_id(&id)?;
        let state = state(ctx).clone();
        let found = tokio::task::spawn_blocking(move || state.store.get(id))
            .await
            .map_err(|e| async_graphql::Error::new(format!("read failed: {e}")))?
            .map_err(|e| async_graphql::Error::new(format!("store: {e}")))?;
        Ok(found.map(|se| EntryObject::new(Arc::new(se), true)))
    }

    /// Recently seen L4 flows, newest first (bounded in memory); `limit`:
    /// 1 to 10000.
    #[graphql(complexity = "LOOKUP_COMPLEXITY + child_complexity")]
    async fn flows(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 100)] limit: i32,
    ) -> async_graphql::Result<Vec<FlowRecord>> {
        let limit = crate::checked_limit(limit, crate::MAX_FLOWS_LIMIT)?;
        Ok(state(ctx).telemetry.flows(limit))
    }

    async fn stats(&self, ctx: &Context<'_>) -> Stats {
        stats_of(state(ctx))
    }

    async fn plugins(&self, ctx: &Context<'_>) -> Vec<PluginRecord> {
        state(ctx).telemetry.plugins()
    }

    /// Compile a filter without running it (for inline errors).
    async fn check_filter(&self, ctx: &Context<'_>, filter: String) -> FilterCheck {
        match Filter::compile(&filter, &state(ctx).variables) {
            Ok(_) => FilterCheck {
                ok: true,
                error: None,
            },
            Err(e) => FilterCheck {
                ok: false,
                error: Some(FilterErrorObject {
                    message: e.message,
                    start: i32::try_from(e.start).unwrap_or(i32::MAX),
                    end: i32::try_from(e.end).unwrap_or(i32::MAX),
                }),
            },
        }
    }

    /// Every filter variable the server knows (for autocompletion).
    async fn variables(&self, ctx: &Context<'_>) -> Vec<Variable> {
        state(ctx)
            .variables
            .list()
            .iter()
            .map(|v| Variable {
                name: v.name.clone(),
                ty: v.ty.clone(),
                protocol: v.protocol.clone(),
                doc: v.doc.clone(),
            })
            .collect()
    }

    /// Calls between endpoints over stored entries matching `filter` in
    /// [from, to) (the newest 500 000 at most, fewer when its request has
    /// examined 2 000 000 entries in other fields).
    #[graphql(complexity = "SCAN_COMPLEXITY + child_complexity")]
    async fn service_map(
        &self,
        ctx: &Context<'_>,
        filter: Option<String>,
        from: Option<String>,
        to: Option<String>,
        #[graphql(default)] group_by: GroupBy,
    ) -> async_graphql::Result<ServiceMap> {
        let state = state(ctx).clone();
        let filter = compile(&state, filter.as_deref())?;
        let (from, to) = time_window(from.as_deref(), to.as_deref())?;
        let budget = scan_budget(ctx, "the service map")?;
        tokio::task::spawn_blocking(move || {
            servicemap::build(&state, &filter, from, to, group_by, &budget)
        })
        .await
        .map_err(|e| async_graphql::Error::new(format!("scan failed: {e}")))?
    }
}

pub struct SubscriptionRoot;

#[Subscription]
impl SubscriptionRoot {
    /// Alerts as they are raised.
    async fn alerts(&self, ctx: &Context<'_>) -> impl Stream<Item = crate::alerts::AlertObject> {
        crate::alerts::subscribe(state(ctx))
    }

    /// Every newly stored entry matching `filter`, as it is stored. A client
    /// that falls more than 8192 entries or 64 MiB of them behind skips the
    /// oldest (counted).
    async fn entries(
        &self,
        ctx: &Context<'_>,
        filter: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = EntryObject>> {
        let state = state(ctx).clone();
        let filter = compile(&state, filter.as_deref())?;
        let rx = state.feed.subscribe();
        Ok(futures_util::stream::unfold(
            (rx, filter, state),
            |(rx, filter, state)| async move {
                loop {
                    match rx.recv().await {
                        Ok(se) if filter.matches(&se.catalog, &se.entry) => {
                            return Some((EntryObject::new(se, true), (rx, filter, state)));
                        }
                        Ok(_) => {}
                        Err(Missed::Skipped(n)) => state.feed.count_lagged(n),
                        Err(Missed::Empty | Missed::Closed) => return None,
                    }
                }
            },
        ))
    }

    /// A stats snapshot every `intervalMs` (at least 250).
    async fn stats(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 1000)] interval_ms: i32,
    ) -> impl Stream<Item = Stats> {
        let state = state(ctx).clone();
        let every = Duration::from_millis(interval_ms.max(250) as u64);
        IntervalStream::new(tokio::time::interval(every)).map(move |_| stats_of(&state))
    }
}
