//! Host imports: logging and configuration.
//!
//! On wasm32 they call the host (`remora:plugin/host`). Natively, `log` goes to
//! a thread-local buffer tests can read ([`crate::native::take_logs`]) and
//! `config` reads a thread-local map tests can set ([`crate::native::set_config`]).

/// Log levels, as in the WIT `host.level`.
pub mod log {
    #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
    pub enum Level {
        Trace,
        Debug,
        Info,
        Warn,
        Error,
    }

    /// Write `message` to the host's log, tagged with the plugin's name.
    pub fn log(level: Level, message: &str) {
        #[cfg(all(target_arch = "wasm32", any(feature = "dissector", feature = "alert")))]
        {
            use crate::bindings::remora::plugin::host::{log as host_log, Level as L};
            let l = match level {
                Level::Trace => L::Trace,
                Level::Debug => L::Debug,
                Level::Info => L::Info,
                Level::Warn => L::Warn,
                Level::Error => L::Error,
            };
            host_log(l, message);
        }
        #[cfg(not(all(target_arch = "wasm32", any(feature = "dissector", feature = "alert"))))]
        crate::native::push_log(level, message);
    }

    pub use crate::{
        __remora_log_debug as debug, __remora_log_error as error, __remora_log_info as info,
        __remora_log_trace as trace, __remora_log_warn as warn,
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __remora_log_trace {
    ($($t:tt)*) => { $crate::log::log($crate::log::Level::Trace, &::std::format!($($t)*)) };
}
#[doc(hidden)]
#[macro_export]
macro_rules! __remora_log_debug {
    ($($t:tt)*) => { $crate::log::log($crate::log::Level::Debug, &::std::format!($($t)*)) };
}
#[doc(hidden)]
#[macro_export]
macro_rules! __remora_log_info {
    ($($t:tt)*) => { $crate::log::log($crate::log::Level::Info, &::std::format!($($t)*)) };
}
#[doc(hidden)]
#[macro_export]
macro_rules! __remora_log_warn {
    ($($t:tt)*) => { $crate::log::log($crate::log::Level::Warn, &::std::format!($($t)*)) };
}
#[doc(hidden)]
#[macro_export]
macro_rules! __remora_log_error {
    ($($t:tt)*) => { $crate::log::log($crate::log::Level::Error, &::std::format!($($t)*)) };
}

/// A configuration value for this plugin (e.g. `"body-cap"`), if set.
pub fn config(key: &str) -> Option<String> {
    #[cfg(all(target_arch = "wasm32", any(feature = "dissector", feature = "alert")))]
    {
        crate::bindings::remora::plugin::host::config(key)
    }
    #[cfg(not(all(target_arch = "wasm32", any(feature = "dissector", feature = "alert"))))]
    {
        crate::native::get_config(key)
    }
}

/// `config(key)` parsed as `T`, or `default` when unset or unparsable.
pub fn config_or<T: core::str::FromStr>(key: &str, default: T) -> T {
    config(key)
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}
