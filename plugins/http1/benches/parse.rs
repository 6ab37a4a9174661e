//! ns per ~450-byte HTTP/1 chunk, parsed natively (no Wasm boundary): the
//! baseline for the host's native-vs-wasm comparison.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use remora_http1::Http1Session;
use remora_sdk::native::feed_once;
use remora_sdk::{Direction, Output};
use std::hint::black_box;

const REQUEST: &[u8] =
    b"GET /api/v1/namespaces/default/pods?labelSelector=app%3Dweb&limit=50 HTTP/1.1\r\n\
Host: kubernetes.default.svc:443\r\n\
User-Agent: kubectl/v1.31.0 (linux/amd64) kubernetes/abcdef\r\n\
Accept: application/json;as=Table;v=v1;g=meta.k8s.io,application/json\r\n\
Accept-Encoding: gzip\r\n\
Authorization: Bearer eyJhbGciOiJSUzI1NiIsImtpZCI6IjEyMyJ9.e30.sig\r\n\
Cookie: session=abc123; theme=dark\r\n\
X-Request-Id: 5b9c3c0e-7d1f-4f5e-9a3b-2f6c1d8e9a70\r\n\r\n";

fn response() -> Vec<u8> {
    let body = b"{\"kind\":\"PodList\",\"apiVersion\":\"v1\",\"metadata\":{\"resourceVersion\":\"12345\"},\"items\":[]}";
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nDate: Wed, 25 Nov 2026 18:00:00 GMT\r\nCache-Control: no-cache, private\r\nX-Kubernetes-Pf-Flowschema-Uid: 7f1c2a3b-4d5e-6f70-8192-a3b4c5d6e7f8\r\nX-Kubernetes-Pf-Prioritylevel-Uid: 0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9\r\nAudit-Id: 1c2d3e4f-5061-7283-94a5-b6c7d8e9f0a1\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn bench(c: &mut Criterion) {
    let resp = response();
    let mut g = c.benchmark_group("http1");
    for (name, dir, data) in [
        ("request", Direction::ToServer, REQUEST),
        ("response", Direction::ToClient, resp.as_slice()),
    ] {
        g.throughput(Throughput::Bytes(data.len() as u64));
        g.bench_function(format!("{name}_{}B", data.len()), |b| {
            let mut s = Http1Session::with_cap(16 * 1024);
            let mut out = Output::new();
            let mut base = 0u64;
            b.iter(|| {
                let r = feed_once(&mut s, dir, base, black_box(data), &mut out);
                base += r.consumed as u64;
                black_box(r)
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
