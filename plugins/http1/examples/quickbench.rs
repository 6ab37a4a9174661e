//! Min-of-batches timing of one request + one response feed (robust on a busy machine):
//! `cargo run --release --example quickbench -p remora-http1`
use remora_http1::Http1Session;
use remora_sdk::native::feed_once;
use remora_sdk::{Direction, Output};
use std::hint::black_box;
use std::time::Instant;

fn main() {
    let req: &[u8] = b"GET /api/v1/namespaces/default/pods?labelSelector=app%3Dweb&limit=50 HTTP/1.1\r\nHost: kubernetes.default.svc:443\r\nUser-Agent: kubectl/v1.31.0 (linux/amd64) kubernetes/abcdef\r\nAccept: application/json;as=Table;v=v1;g=meta.k8s.io,application/json\r\nAccept-Encoding: gzip\r\nAuthorization: Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6IjEyMyJ9.e30.sig\r\nCookie: session=abc123; theme=dark\r\nX-Request-Id: 5b9c3c0e-7d1f-4f5e-9a3b-2f6c1d8e9a70\r\n\r\n";
    let mut s = Http1Session::with_cap(16384);
    let mut out = Output::new();
    let mut best = f64::MAX;
    for _ in 0..20 {
        let t = Instant::now();
        let n = 50_000;
        for _ in 0..n {
            black_box(feed_once(
                &mut s,
                Direction::ToServer,
                0,
                black_box(req),
                &mut out,
            ));
        }
        best = best.min(t.elapsed().as_nanos() as f64 / n as f64);
    }
    println!("request {} B: {best:.0} ns (min of 20 batches)", req.len());
}
