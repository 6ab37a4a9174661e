//! End-to-end tests for Remora live in `tests/tests/*.rs`; this library is empty.
//!
//! They run the real `remora` binary (located by `REMORA_BIN`, else the newest of
//! `<workspace>/target/{release,debug}/remora`) against captures with tshark
//! ground truth: the shared set (`REMORA_SHARED`, default `<workspace>/../shared`)
//! and the fixtures recorded by `tests/fixtures/record-http1.sh`.
