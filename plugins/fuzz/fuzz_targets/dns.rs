#![no_main]
//! dns: a fuzzer-chosen interleaving of both directions (see remora_plugins_fuzz::run).

use libfuzzer_sys::fuzz_target;
use remora_sdk::Transport;

fuzz_target!(|data: &[u8]| {
    remora_plugins_fuzz::run::<remora_dns::Dns>(&[Transport::Udp, Transport::Tcp], 53, data);
});
