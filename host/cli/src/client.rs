//! A small GraphQL client for `remora query` and `remora alerts`: queries
//! over HTTP POST, subscriptions over the graphql-transport-ws protocol.

use anyhow::{anyhow, bail, Context as _, Result};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value as Json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// Runs a client command on a current-thread runtime until it ends or
/// Ctrl-C (which ends it successfully: following is stopped that way).
pub(crate) fn run_until_interrupted(
    f: impl std::future::Future<Output = Result<()>>,
) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    rt.block_on(async {
        tokio::select! {
            r = f => r,
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })
}

/// Which server to talk to, shared by every client command.
#[derive(clap::Args)]
pub(crate) struct ServerArgs {
    /// The Remora server.
    #[arg(
        long,
        env = "REMORA_SERVER",
        default_value = "http://localhost:8899",
        value_name = "URL"
    )]
    server: String,

    /// Bearer token, for servers not bound to loopback.
    #[arg(
        long,
        env = "REMORA_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    token: Option<String>,
}

impl ServerArgs {
    pub(crate) fn client(&self) -> Result<Client> {
        Client::new(&self.server, self.token.clone())
    }

    pub(crate) fn url(&self) -> &str {
        &self.server
    }
}

pub(crate) struct Client {
    server: String,
    token: Option<String>,
    http: reqwest::Client,
}

/// A GraphQL error, with the filter span when the server rejected a filter.
#[derive(Debug)]
pub(crate) struct GqlError {
    pub message: String,
    pub span: Option<(usize, usize)>,
}

impl std::fmt::Display for GqlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for GqlError {}

/// Largest answer read from a server: a Remora server answers at most
/// 16 MiB of values per request (`remora_api::MAX_RESPONSE_BYTES`), which
/// JSON writes in less than twice that; anything else listening at
/// `--server` must not make the client grow without bound.
const MAX_ANSWER_BYTES: usize = 64 << 20;

/// The body of `resp`, refused once it passes `max` bytes.
async fn read_limited(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if body.len() + chunk.len() > max {
            bail!("the answer is larger than {} MiB; refused", max >> 20);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

fn first_error(errors: &Json) -> Option<GqlError> {
    let e = errors.as_array()?.first()?;
    let message = e["message"].as_str().unwrap_or("unknown error").to_owned();
    let ext = &e["extensions"];
    let span = match (ext["start"].as_u64(), ext["end"].as_u64()) {
        (Some(s), Some(t)) => Some((s as usize, t as usize)),
        _ => None,
    };
    Some(GqlError { message, span })
}

impl Client {
    pub(crate) fn new(server: &str, token: Option<String>) -> Result<Self> {
        let server = server.trim_end_matches('/').to_owned();
        if !server.starts_with("http://") {
            bail!(
                "--server {server:?}: only http:// URLs are supported (use `kubectl port-forward` \
                 or an SSH tunnel for remote servers)"
            );
        }
        Ok(Client {
            server,
            token,
            http: reqwest::Client::new(),
        })
    }

    /// Runs a query; GraphQL errors become [`GqlError`].
    pub(crate) async fn query(&self, query: &str, variables: Json) -> Result<Json> {
        let url = format!("{}/graphql", self.server);
        let mut req = self
            .http
            .post(&url)
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        let resp = req.send().await.map_err(|e| {
            anyhow!(
                "cannot reach Remora at {}: {e} (is `remora tap` running? see --server)",
                self.server
            )
        })?;
        let status = resp.status();
        if status == reqwest::StatusCode::UNAUTHORIZED {
            bail!(
                "{} requires a bearer token: pass --token or set REMORA_TOKEN",
                self.server
            );
        }
        let body = read_limited(resp, MAX_ANSWER_BYTES)
            .await
            .with_context(|| format!("reading the answer of {url}"))?;
        let body: Json = serde_json::from_slice(&body)
            .with_context(|| format!("{url} answered {status} without a GraphQL response"))?;
        if let Some(e) = first_error(&body["errors"]) {
            return Err(e.into());
        }
        Ok(body["data"].clone())
    }

    /// Subscribes and calls `each` with every `data` payload until the
    /// server completes the subscription or the connection ends.
    pub(crate) async fn subscribe(
        &self,
        query: &str,
        variables: Json,
        mut each: impl FnMut(Json) -> Result<()>,
    ) -> Result<()> {
        let ws_url = format!("ws://{}/graphql", self.server.trim_start_matches("http://"));
        let mut req = ws_url
            .as_str()
            .into_client_request()
            .with_context(|| format!("bad server URL {ws_url:?}"))?;
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("graphql-transport-ws"),
        );
        if let Some(t) = &self.token {
            req.headers_mut().insert(
                "Authorization",
                HeaderValue::from_str(&format!("Bearer {t}"))
                    .context("token is not a valid header value")?,
            );
        }
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.map_err(|e| {
            anyhow!(
                "cannot open a subscription at {ws_url}: {e} (is `remora tap` running? see --server)"
            )
        })?;
        let send = |v: Json| WsMessage::Text(v.to_string().into());
        ws.send(send(json!({"type": "connection_init", "payload": {}})))
            .await?;
        let mut subscribed = false;
        while let Some(msg) = ws.next().await {
            let msg = msg.map_err(|e| {
                anyhow!("the subscription at {ws_url} broke off: {e} (did `remora tap` stop?)")
            })?;
            let text = match msg {
                WsMessage::Text(t) => t,
                WsMessage::Close(_) => break,
                _ => continue,
            };
            let m: Json = serde_json::from_str(&text).context("server sent non-JSON")?;
            match m["type"].as_str() {
                Some("connection_ack") if !subscribed => {
                    subscribed = true;
                    ws.send(send(json!({
                        "id": "1", "type": "subscribe",
                        "payload": {"query": query, "variables": variables}
                    })))
                    .await?;
                }
                Some("ping") => ws.send(send(json!({"type": "pong"}))).await?,
                Some("next") => {
                    if let Some(e) = first_error(&m["payload"]["errors"]) {
                        return Err(e.into());
                    }
                    each(m["payload"]["data"].clone())?;
                }
                Some("error") => {
                    return Err(first_error(&m["payload"])
                        .map(anyhow::Error::from)
                        .unwrap_or_else(|| anyhow!("subscription failed: {}", m["payload"])));
                }
                Some("complete") => break,
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A server on a loopback port answering one request with `len` bytes
    /// of `x` (no length: the body ends when the connection does).
    async fn answering(len: usize) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut head = vec![0u8; 4096];
            let _ = conn.read(&mut head).await;
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n")
                .await;
            let chunk = vec![b'x'; 64 << 10];
            let mut sent = 0;
            while sent < len {
                let n = chunk.len().min(len - sent);
                if conn.write_all(&chunk[..n]).await.is_err() {
                    break; // the client gave up
                }
                sent += n;
            }
        });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn answers_are_read_up_to_a_limit() {
        for (len, ok) in [(100 << 10, true), (4 << 20, false)] {
            let url = answering(len).await;
            let resp = reqwest::get(&url).await.unwrap();
            let r = read_limited(resp, 1 << 20).await;
            match r {
                Ok(body) => assert!(ok && body.len() == len, "{len} bytes read"),
                Err(e) => assert!(!ok && e.to_string().contains("larger than 1 MiB"), "{e}"),
            }
        }
    }
}
