//! GraphQL over a WebSocket (graphql-transport-ws, or the older graphql-ws),
//! with the operations a connection runs at once bounded.
//!
//! async-graphql starts an operation for every `subscribe` (`start`) a
//! client sends, with no limit: 20,000 of them on one connection took the
//! server from 47 MB to 867 MB resident. Here a connection runs at most
//! [`MAX_OPERATIONS`] at once (an operation ends with the server's
//! `complete`); one more is answered with an error for its id, counted,
//! and a client that keeps sending them past [`MAX_REFUSALS_QUEUED`]
//! unanswered refusals is disconnected.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use std::str::FromStr;

use async_graphql::http::{WebSocket as GraphQLWs, WebSocketProtocols, WsMessage};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::http::HeaderMap;
use futures_util::{future, SinkExt, StreamExt};
use tokio::sync::mpsc;

use crate::schema::ApiSchema;

/// Operations (subscriptions, or queries sent over the socket) one
/// connection runs at once; a dashboard tab runs two.
pub const MAX_OPERATIONS: usize = 32;

/// Refusals waiting to be sent before the connection is closed instead.
const MAX_REFUSALS_QUEUED: usize = 64;

/// Longest operation id accepted (clients use counters or UUIDs): a
/// connection holds the ids of its running operations, and a message may
/// be 1 MiB.
const MAX_ID_BYTES: usize = 128;

/// The fields of a protocol message that say which operation it starts or
/// ends (read from the client's messages and the server's `complete`).
#[derive(serde::Deserialize)]
struct OpMessage<'a> {
    #[serde(rename = "type", borrow)]
    ty: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    id: Option<std::borrow::Cow<'a, str>>,
}

/// The first GraphQL protocol the client offers that is spoken here.
pub(crate) fn protocol(headers: &HeaderMap) -> Option<WebSocketProtocols> {
    headers
        .get(axum::http::header::SEC_WEBSOCKET_PROTOCOL)?
        .to_str()
        .ok()?
        .split(',')
        .find_map(|p| WebSocketProtocols::from_str(p.trim()).ok())
}

/// Serves one upgraded connection until either side ends it.
pub(crate) async fn serve(
    socket: WebSocket,
    schema: ApiSchema,
    protocol: WebSocketProtocols,
    refused: &AtomicU64,
) {
    let (mut sink, stream) = socket.split();
    let running: Arc<Mutex<HashSet<String>>> = Arc::default();
    let (refuse_tx, mut refuse_rx) = mpsc::channel::<String>(MAX_REFUSALS_QUEUED);
    let input = {
        let running = running.clone();
        stream
            .take_while(|m| future::ready(m.is_ok()))
            .filter_map(|m| {
                future::ready(match m {
                    Ok(Message::Text(t)) => Some(t.as_str().as_bytes().to_vec()),
                    Ok(Message::Binary(b)) => Some(b.to_vec()),
                    _ => None,
                })
            })
            .map(move |mut data| {
                let go_on = admit(&mut data, &running, &refuse_tx, refused);
                (go_on, data)
            })
            // Ends (the connection closes) when refusals pile up.
            .take_while(|(go_on, _)| future::ready(*go_on))
            .filter_map(|(_, data)| future::ready((!data.is_empty()).then_some(data)))
    };
    let answers = GraphQLWs::new(schema, input, protocol);
    futures_util::pin_mut!(answers);
    let mut refusals_open = true;
    loop {
        let out = tokio::select! {
            msg = answers.next() => match msg {
                Some(WsMessage::Text(text)) => {
                    if let Some(id) = completed(&text) {
                        running.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
                    }
                    Message::Text(text.into())
                }
                Some(WsMessage::Close(code, reason)) => Message::Close(Some(CloseFrame {
                    code,
                    reason: reason.into(),
                })),
                None => break,
            },
            id = refuse_rx.recv(), if refusals_open => match id {
                Some(id) => Message::Text(refusal(protocol, &id).into()),
                None => {
                    refusals_open = false;
                    continue;
                }
            },
        };
        if sink.send(out).await.is_err() {
            break;
        }
    }
}

/// Looks at one client message: an operation past the limit is refused
/// (its message replaced by an empty one, which is dropped). False when
/// the refusal cannot even be queued: the connection is then closed.
fn admit(
    data: &mut Vec<u8>,
    running: &Mutex<HashSet<String>>,
    refuse: &mpsc::Sender<String>,
    refused: &AtomicU64,
) -> bool {
    let Ok(msg) = serde_json::from_slice::<OpMessage<'_>>(data) else {
        return true; // the protocol handler answers malformed messages
    };
    let Some(id) = msg.id else {
        return true;
    };
    let mut running = running.lock().unwrap_or_else(|p| p.into_inner());
    match &*msg.ty {
        "subscribe" | "start" if !running.contains(&*id) => {
            if running.len() < MAX_OPERATIONS && id.len() <= MAX_ID_BYTES {
                running.insert(id.into_owned());
                return true;
            }
            refused.fetch_add(1, Ordering::Relaxed);
            let id = id[..id.floor_char_boundary(MAX_ID_BYTES)].to_owned();
            let queued = refuse.try_send(id).is_ok();
            data.clear();
            queued
        }
        _ => true,
    }
}

/// The id of an operation the server says is over.
fn completed(text: &str) -> Option<String> {
    // Only `complete` ends an operation; the check keeps the (large) `next`
    // messages from being parsed.
    if !text.starts_with(r#"{"type":"complete""#) {
        return None;
    }
    let msg: OpMessage<'_> = serde_json::from_str(text).ok()?;
    msg.id.map(|id| id.into_owned())
}

/// The error answer for an operation refused by the limit, as `protocol`
/// words it.
fn refusal(protocol: WebSocketProtocols, id: &str) -> String {
    let message = format!(
        "too many operations on this connection (limit {MAX_OPERATIONS}), or an id longer \
         than {MAX_ID_BYTES} bytes; complete one, or open another connection"
    );
    let payload = match protocol {
        WebSocketProtocols::GraphQLWS => serde_json::json!([{ "message": message }]),
        WebSocketProtocols::SubscriptionsTransportWS => serde_json::json!({ "message": message }),
    };
    serde_json::json!({ "type": "error", "id": id, "payload": payload }).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completions_are_found_without_parsing_other_messages() {
        assert_eq!(
            completed(r#"{"type":"complete","id":"7"}"#).as_deref(),
            Some("7")
        );
        assert_eq!(completed(r#"{"type":"next","id":"7","payload":{}}"#), None);
    }

    #[test]
    fn operations_past_the_limit_are_refused_and_stops_free_places() {
        let running = Mutex::new(HashSet::new());
        let (tx, mut rx) = mpsc::channel(4);
        let refused = AtomicU64::new(0);
        let sub = |id: usize| format!(r#"{{"type":"subscribe","id":"{id}","payload":{{}}}}"#);
        for i in 0..MAX_OPERATIONS {
            let mut m = sub(i).into_bytes();
            assert!(admit(&mut m, &running, &tx, &refused));
            assert!(!m.is_empty());
        }
        let mut m = sub(999).into_bytes();
        assert!(admit(&mut m, &running, &tx, &refused));
        assert!(m.is_empty(), "the operation past the limit is dropped");
        assert_eq!(rx.try_recv().unwrap(), "999");
        assert_eq!(refused.load(Ordering::Relaxed), 1);
        // A repeated id is the protocol handler's to answer, not a new place.
        let mut m = sub(0).into_bytes();
        assert!(admit(&mut m, &running, &tx, &refused));
        assert!(!m.is_empty());
        // Once the server completes one, a new one fits.
        running.lock().unwrap().remove("3");
        let mut m = sub(1000).into_bytes();
        assert!(admit(&mut m, &running, &tx, &refused));
        assert!(!m.is_empty());
        // Refusals that cannot be queued close the connection.
        for i in 0..4 {
            let mut m = sub(2000 + i).into_bytes();
            assert!(admit(&mut m, &running, &tx, &refused));
        }
        let mut m = sub(3000).into_bytes();
        assert!(!admit(&mut m, &running, &tx, &refused));
    }

    #[test]
    fn long_ids_are_refused() {
        let running = Mutex::new(HashSet::new());
        let (tx, mut rx) = mpsc::channel(4);
        let refused = AtomicU64::new(0);
        let long = "x".repeat(MAX_ID_BYTES + 1);
        let mut m = format!(r#"{{"type":"subscribe","id":"{long}","payload":{{}}}}"#).into_bytes();
        assert!(admit(&mut m, &running, &tx, &refused));
        assert!(m.is_empty());
        assert_eq!(rx.try_recv().unwrap().len(), MAX_ID_BYTES);
        assert!(running.lock().unwrap().is_empty());
    }
}
