#![no_main]
//! http1: a fuzzer-chosen interleaving of both directions (see remora_plugins_fuzz::run).

use libfuzzer_sys::fuzz_target;
use remora_sdk::Transport;

fuzz_target!(|data: &[u8]| {
    remora_plugins_fuzz::run::<remora_http1::Http1>(&[Transport::Tcp], 80, data);
});
