//! Bearer-token check for the API routes (not for `/healthz` or the
//! dashboard's static files, which hold no data).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

#[derive(Clone)]
pub(crate) struct Token(pub Option<Arc<str>>);

/// Browsers cannot set headers on a WebSocket upgrade, so a subscription may
/// also carry the token as `?token=`.
pub(crate) async fn require_token(
    State(token): State<Token>,
    req: Request,
    next: Next,
) -> Response {
    let Some(expected) = token.0 else {
        return next.run(req).await;
    };
    let from_header = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    // As a browser writes it (`encodeURIComponent`): a token with `+`, `&`
    // or `=` arrives percent-encoded.
    let from_query = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")))
        .map(percent_decoded);
    let given = from_header.map(|t| t.as_bytes().to_vec()).or(from_query);
    match given {
        Some(t) if constant_time_eq(&t, expected.as_bytes()) => next.run(req).await,
        Some(_) => (StatusCode::UNAUTHORIZED, "invalid bearer token\n").into_response(),
        None => (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "this server requires a bearer token: send `Authorization: Bearer <token>`\n",
        )
            .into_response(),
    }
}

/// `%XX` sequences decoded; anything else (a stray `%`) kept as it is.
fn percent_decoded(s: &str) -> Vec<u8> {
    percent_encoding::percent_decode_str(s).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_tokens_are_percent_decoded() {
        assert_eq!(percent_decoded("s%2Bcr%26t%3D"), b"s+cr&t=");
        assert_eq!(percent_decoded("plain"), b"plain");
        assert_eq!(percent_decoded("100%"), b"100%");
        assert_eq!(percent_decoded("%zz%4"), b"%zz%4");
    }
}
