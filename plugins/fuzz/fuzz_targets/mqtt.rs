#![no_main]
//! mqtt: a fuzzer-chosen interleaving of both directions (see remora_plugins_fuzz::run).

use libfuzzer_sys::fuzz_target;
use remora_sdk::Transport;

fuzz_target!(|data: &[u8]| {
    remora_plugins_fuzz::run::<remora_mqtt::Mqtt>(&[Transport::Tcp], 1883, data);
});
