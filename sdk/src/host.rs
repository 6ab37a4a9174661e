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

/// Most body bytes the host takes in one message: a larger body is
/// malformed output, which faults the plugin (see `wit/README.md`).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// The `body-cap` configuration value (bytes kept of each message body):
/// `default` when unset or unparsable, never more than [`MAX_BODY_BYTES`].
pub fn body_cap(default: usize) -> usize {
    config_or("body-cap", default).min(MAX_BODY_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::native::{clear_config, set_config};

    #[test]
    fn body_cap_is_the_config_value_up_to_what_the_host_takes() {
        clear_config();
        assert_eq!(body_cap(16384), 16384);
        for (value, want) in [
            ("100", 100),
            (" 0 ", 0),
            ("1048576", MAX_BODY_BYTES),
            ("5000000", MAX_BODY_BYTES),
            ("99999999999999999999999", 16384),
            ("junk", 16384),
        ] {
            set_config("body-cap", value);
            assert_eq!(body_cap(16384), want, "body-cap {value:?}");
        }
        clear_config();
    }
}
