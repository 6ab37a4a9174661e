//! # remora-sdk
//!
//! Write a Remora protocol dissector in Rust: implement [`Dissector`] and
//! [`Session`] with the plain-Rust types of this crate, then invoke
//! [`export_dissector!`] once. Built for `wasm32-wasip2` the crate is a
//! component exporting `remora:plugin/dissector@0.7.0`; built natively the same
//! code runs in unit tests and benchmarks through [`native::Harness`].
//!
//! See `README.md` for the feed/consumed/skip/need contract.

#![forbid(unsafe_op_in_unsafe_fn)]

// Lets the bindings' generated paths (`remora_sdk::...`) resolve inside this crate too.
extern crate self as remora_sdk;

pub mod alert;
#[cfg(any(test, all(target_arch = "wasm32", not(target_feature = "atomics"))))]
mod alloc_cache;
mod host;
mod io;
pub mod native;
mod types;
#[doc(hidden)]
pub mod wire;

pub use host::{body_cap, config, config_or, log, MAX_BODY_BYTES};
pub use io::{
    Cursor, Input, MessageBuilder, Output, Progress, MESSAGES_PER_CALL, OUTPUT_BYTES_PER_CALL,
};
pub use types::*;

/// Every guest allocates through a cache of freed blocks (see
/// `alloc_cache`); without threads there is nothing to lock. A plugin that
/// declares its own `#[global_allocator]` cannot link with this one.
#[cfg(all(target_arch = "wasm32", not(target_feature = "atomics")))]
#[global_allocator]
static GUEST_ALLOCATOR: alloc_cache::CachingAlloc = alloc_cache::CachingAlloc::new();

/// `use remora_sdk::prelude::*;` brings in everything a dissector needs.
pub mod prelude {
    pub use crate::{
        body_cap, config, config_or, Body, Cursor, Direction, Dissector, Field, FieldDecl,
        FieldType, FlowInfo, Input, Message, MessageBuilder, MessageKind, Output, PluginInfo,
        Probe, Progress, ProtocolDecl, ProtocolSwitch, Session, Span, Text, Transport, Value,
    };
}

/// A protocol dissector: static description, a probe, and a session factory.
pub trait Dissector: 'static {
    /// Dissection state of one flow (both directions).
    type Session: Session;

    /// Static description: protocols and field declarations. Called once.
    fn info() -> PluginInfo;

    /// Does this flow speak the protocol? `data` is the first bytes seen in `dir`.
    fn probe(flow: &FlowInfo, dir: Direction, data: &[u8]) -> Probe;

    /// A new session for `flow`.
    fn session(flow: &FlowInfo) -> Self::Session;
}

/// Per-flow state. Each call reports through `out`; nothing it emits may
/// borrow from `input` beyond spans (which the host resolves against the same
/// input).
pub trait Session: 'static {
    /// New bytes of `dir`: the unconsumed rest of the previous call followed by
    /// new bytes. Return how many are consumed, how many following bytes to
    /// skip, and how many to wait for.
    fn feed(&mut self, dir: Direction, input: &Input<'_>, out: &mut Output) -> Progress;

    /// `len` bytes of `dir` were lost; the next `feed` starts after them.
    fn gap(&mut self, dir: Direction, len: u64, out: &mut Output) {
        let _ = (dir, len);
        out.error("gap: bytes lost");
    }

    /// `dir` ended (FIN, RST, idle, end of capture): flush what is pending.
    fn end(&mut self, dir: Direction, out: &mut Output) {
        let _ = (dir, out);
    }

    /// This session takes the flow over from protocol `previous` (another
    /// session asked for a `ProtocolSwitch`); `params` are the switch's.
    /// Called once, before any `feed`. Default: nothing to learn.
    fn takeover(&mut self, previous: &str, params: &[(String, String)]) {
        let _ = (previous, params);
    }
}

/// Export `$ty: Dissector` as the component's `remora:plugin/dissector`
/// interface. Invoke once, at the crate root of a `cdylib`. Expands to nothing
/// on non-wasm targets, so the crate keeps building natively (as an `rlib`).
#[macro_export]
macro_rules! export_dissector {
    ($ty:ty) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            type __RemoraExport = $crate::__private::Adapter<$ty>;
            $crate::bindings::__export_remora_dissector!(__RemoraExport with_types_in $crate::bindings);
        };
    };
}

/// Generated component bindings (wasm32 only). Dissector authors do not need them.
#[cfg(all(target_arch = "wasm32", feature = "dissector"))]
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "dissector-plugin",
        pub_export_macro: true,
        export_macro_name: "__export_remora_dissector",
        default_bindings_module: "remora_sdk::bindings",
        runtime_path: "remora_sdk::__private::wit_bindgen::rt",
    });
}

#[cfg(all(target_arch = "wasm32", feature = "dissector", feature = "alert"))]
compile_error!(
    "remora-sdk: a component is one world; enable either the `dissector` (default) or the `alert` feature (with default-features = false)"
);

/// Generated component bindings of the `alert-plugin` world (wasm32 only).
#[cfg(all(target_arch = "wasm32", feature = "alert", not(feature = "dissector")))]
#[doc(hidden)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit",
        world: "alert-plugin",
        pub_export_macro: true,
        export_macro_name: "__export_remora_alert_plugin",
        default_bindings_module: "remora_sdk::bindings",
        runtime_path: "remora_sdk::__alert_private::wit_bindgen::rt",
    });
}

#[cfg(all(target_arch = "wasm32", feature = "dissector"))]
#[doc(hidden)]
pub mod __private;

#[cfg(all(target_arch = "wasm32", feature = "alert", not(feature = "dissector")))]
#[doc(hidden)]
pub mod __alert_private;
