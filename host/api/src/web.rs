//! The dashboard's static files, embedded from `web/dist` at build time
//! (release builds; debug builds read the folder at run time, so a
//! `npm run build` shows up without recompiling).

use axum::http::{header, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "../../web/dist"]
#[allow_missing = true]
struct Dashboard;

pub(crate) async fn embedded(uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    let path = if path.is_empty() { "index.html" } else { path };
    match Dashboard::get(path).or_else(|| {
        // The app routes on the client: unknown paths without an
        // extension get the app itself.
        (!path.contains('.'))
            .then(|| Dashboard::get("index.html"))
            .flatten()
    }) {
        Some(file) => {
            // Vite puts a content hash in asset names: cache them for good.
            let cache = if path.starts_with("assets/") {
                "public, max-age=31536000, immutable"
            } else {
                "no-cache"
            };
            (
                [
                    (header::CONTENT_TYPE, file.metadata.mimetype().to_owned()),
                    (header::CACHE_CONTROL, cache.to_owned()),
                ],
                file.data,
            )
                .into_response()
        }
        None if Dashboard::get("index.html").is_none() => no_dashboard().into_response(),
        None => (StatusCode::NOT_FOUND, format!("no such file: /{path}\n")).into_response(),
    }
}

fn no_dashboard() -> Html<&'static str> {
    Html(
        "<!doctype html><title>Remora</title><h1>Remora</h1>\
         <p>The dashboard was not built into this binary. Build it with \
         <code>scripts/build-web.sh</code> before <code>cargo build --release</code> \
         (<code>scripts/run.sh</code> does both), or pass <code>--web-dir web/dist</code>.</p>\
         <p>The API is at <a href=\"/graphql\">/graphql</a> (GraphiQL), metrics at \
         <a href=\"/metrics\">/metrics</a>.</p>",
    )
}
