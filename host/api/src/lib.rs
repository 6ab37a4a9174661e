//! The API: GraphQL queries and subscriptions (graphql-transport-ws) over
//! the entry store and the live capture, Prometheus `/metrics`, `/healthz`,
//! and the dashboard's static files.
//!
//! The API never reaches into the pipeline: the capture side hands it a
//! [`Telemetry`] (counters, flows, plugins) and publishes stored entries to a
//! [`LiveFeed`]; everything else comes from the [`remora_store::Store`].
//!
//! Architecture invariant: every request does bounded work: pages are capped,
//! a request's scans stop after [`MAX_SCAN`] entries in all and hand back a
//! cursor, its answer holds at most [`MAX_RESPONSE_BYTES`] whatever aliases
//! it uses, query depth and complexity are limited, at most
//! [`MAX_EXECUTING`] queries that read the store run at once, and
//! subscriptions that fall behind
//! skip (counted) instead of buffering.

mod alerts;
mod auth;
mod budget;
mod connections;
mod convert;
mod feed;
mod metrics;
mod scalar;
mod schema;
mod servicemap;
mod telemetry;
mod time_arg;
mod web;
mod websocket;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use remora_alert::AlertHub;
use remora_entry::Catalog;
use remora_filter::Variables;
use remora_store::Store;

pub use budget::{MAX_EXECUTING, MAX_RESPONSE_BYTES, MAX_SCAN_TIME, PAGE_BYTES};
pub use feed::{LiveFeed, FEED_BYTES, FEED_CAPACITY};
pub use metrics::render as render_metrics;
pub use scalar::Int64;
pub use schema::{build_schema, ApiSchema};
pub use telemetry::{
    CaptureStats, Counter, FlowRecord, LatencyHistogram, PluginProtocol, PluginRecord, ShardStats,
    SourceStats, Telemetry,
};
pub use websocket::MAX_OPERATIONS;

/// Entries one request may examine (all its fields together) before it
/// returns what it has and a cursor.
pub const MAX_SCAN: u64 = 2_000_000;
/// Largest page.
pub const MAX_LIMIT: i32 = 1000;
/// Most recent flows one `flows` query returns.
pub const MAX_FLOWS_LIMIT: i32 = 10_000;

/// A query's `limit` when it lies in 1..=`max`; otherwise an error naming it
/// (clamping instead would answer a different question than was asked).
pub(crate) fn checked_limit(limit: i32, max: i32) -> async_graphql::Result<usize> {
    match usize::try_from(limit) {
        Ok(n) if (1..=max).contains(&limit) => Ok(n),
        _ => Err(async_graphql::Error::new(format!(
            "limit {limit} is out of range 1..={max}"
        ))),
    }
}

/// What the API serves from.
pub struct ApiState {
    pub store: Arc<Store>,
    /// The catalog of the plugins loaded now (variables, new entries).
    pub catalog: Arc<Catalog>,
    pub variables: Arc<Variables>,
    pub feed: LiveFeed,
    pub telemetry: Arc<dyn Telemetry>,
    pub started: Instant,
    /// Alerts raised in this process, when alerting is configured.
    pub alerts: Option<Arc<AlertHub>>,
    /// Open subscription connections ([`MAX_SUBSCRIBERS`]; refused beyond).
    pub(crate) sockets: connections::Cap,
    /// Open HTTP connections ([`MAX_CONNECTIONS`]; [`serve`] waits beyond).
    pub(crate) connections: Arc<connections::Cap>,
    /// How long [`serve`] gives a connection to send a request's head.
    pub(crate) head_timeout: Duration,
    /// Queries executing at once, and answers cut for their size.
    pub(crate) queries: Arc<budget::QueryLimits>,
    /// WebSocket operations refused: their connection ran
    /// [`websocket::MAX_OPERATIONS`] already.
    pub(crate) ws_operations_refused: std::sync::atomic::AtomicU64,
}

impl ApiState {
    pub fn new(
        store: Arc<Store>,
        catalog: Arc<Catalog>,
        feed: LiveFeed,
        telemetry: Arc<dyn Telemetry>,
    ) -> Self {
        let variables = Arc::new(Variables::new(&[&catalog]));
        ApiState {
            store,
            catalog,
            variables,
            feed,
            telemetry,
            started: Instant::now(),
            alerts: None,
            sockets: connections::Cap::new(MAX_SUBSCRIBERS),
            connections: Arc::new(connections::Cap::new(MAX_CONNECTIONS)),
            head_timeout: REQUEST_HEAD_TIMEOUT,
            queries: Arc::default(),
            ws_operations_refused: Default::default(),
        }
    }

    /// At most `max` HTTP connections open at once, each closed when a
    /// request's head takes longer than `head_timeout`, instead of
    /// [`MAX_CONNECTIONS`] and [`REQUEST_HEAD_TIMEOUT`] (tests reach small
    /// limits without thousands of sockets or long waits).
    pub fn with_connection_limit(mut self, max: usize, head_timeout: Duration) -> Self {
        self.connections = Arc::new(connections::Cap::new(max.max(1)));
        self.head_timeout = head_timeout;
        self
    }

    /// At most `executing` queries at once, each examining at most
    /// `max_scan` stored entries and answering at most `max_bytes`, instead
    /// of [`MAX_EXECUTING`], [`MAX_SCAN`] and [`MAX_RESPONSE_BYTES`] (tests
    /// reach small limits with small stores).
    pub fn with_query_limits(mut self, executing: usize, max_scan: u64, max_bytes: u64) -> Self {
        self.queries = Arc::new(budget::QueryLimits::new(executing, max_scan, max_bytes));
        self
    }

    /// Lists of one request scan for at most `limit` instead of
    /// [`MAX_SCAN_TIME`]. Call before the state is shared.
    pub fn with_scan_time(mut self, limit: Duration) -> Self {
        if let Some(q) = Arc::get_mut(&mut self.queries) {
            q.scan_time = limit;
        }
        self
    }

    pub fn with_alerts(mut self, hub: Option<Arc<AlertHub>>) -> Self {
        self.alerts = hub;
        self
    }
}

#[derive(Clone, Debug)]
pub struct ApiConfig {
    pub bind: SocketAddr,
    /// Bearer token; required when `bind` is not a loopback address.
    pub token: Option<String>,
    /// Serve the dashboard from this directory (`web/dist`) instead of the
    /// copy embedded in release builds.
    pub web_dir: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(
        "refusing to serve the API on {0} without a token: it is not a loopback address; \
         pass --token (or set REMORA_TOKEN), or bind to 127.0.0.1"
    )]
    TokenRequired(SocketAddr),
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Loopback binds may go without a token; anything else must have one.
pub fn check_bind(cfg: &ApiConfig) -> Result<(), ApiError> {
    if !cfg.bind.ip().is_loopback() && cfg.token.as_deref().is_none_or(str::is_empty) {
        return Err(ApiError::TokenRequired(cfg.bind));
    }
    Ok(())
}

/// Largest request body accepted. A GraphQL request is a query and its
/// variables (a filter is at most 16 KiB); without a limit, the GraphQL
/// service buffered whatever was sent (a 200 MB body took the server to
/// 576 MB resident). Larger bodies get 413 Payload Too Large.
pub const MAX_REQUEST_BODY: usize = 1 << 20;

/// Subscription (WebSocket) connections open at once. Each holds a task, a
/// feed queue with up to 8192 entries (64 MiB) of lag and its filter, run
/// on every new entry; a dashboard tab holds two. Past the limit an upgrade
/// gets 503, counted in `/metrics`.
pub const MAX_SUBSCRIBERS: usize = 128;

/// HTTP connections open at once (idle keep-alive ones included); past it
/// the server accepts again only when one closes (see `connections.rs`).
pub const MAX_CONNECTIONS: usize = 1024;

/// How long a connection may take to deliver a request's head, counted
/// from its start or the end of its previous response: an idle keep-alive
/// connection is closed after it, so idle clients cannot hold every place.
pub const REQUEST_HEAD_TIMEOUT: Duration = Duration::from_secs(30);

/// The HTTP routes: `/graphql` (POST queries, GET GraphiQL or a WebSocket
/// upgrade for subscriptions), `/metrics`, `/healthz`, and `/` for the dashboard.
pub fn router(state: Arc<ApiState>, cfg: &ApiConfig) -> Router {
    let schema = build_schema(state.clone());
    let api = Router::new()
        .merge(schema::routes(schema, state.clone()))
        .merge(metrics::routes(state.clone()))
        .layer(axum::middleware::from_fn_with_state(
            auth::Token(cfg.token.clone().filter(|t| !t.is_empty()).map(Arc::from)),
            auth::require_token,
        ))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            MAX_REQUEST_BODY,
        ));
    let app = Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok\n" }))
        .merge(api);
    match &cfg.web_dir {
        Some(dir) => app.fallback_service(
            tower_http::services::ServeDir::new(dir)
                .fallback(tower_http::services::ServeFile::new(dir.join("index.html"))),
        ),
        None => app.fallback(axum::routing::get(web::embedded)),
    }
}

/// Serves `router` (made from `state`) until `shutdown` resolves, then
/// finishes in-flight requests; at most `state`'s connection limit of
/// connections are open at once.
pub fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    state: &ApiState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> impl std::future::Future<Output = std::io::Result<()>> + Send + 'static {
    let listener = connections::LimitedListener {
        inner: listener,
        limit: state.connections.clone(),
    };
    connections::serve(listener, router, state.head_timeout, shutdown)
}

/// Binds `cfg.bind`, naming the address on failure.
pub async fn bind(cfg: &ApiConfig) -> Result<tokio::net::TcpListener, ApiError> {
    check_bind(cfg)?;
    tokio::net::TcpListener::bind(cfg.bind)
        .await
        .map_err(|source| ApiError::Bind {
            addr: cfg.bind,
            source,
        })
}
