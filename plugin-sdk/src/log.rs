use crate::abi::level;

/// Log levels of the host's `log` import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    /// The ABI value of this level.
    pub fn code(self) -> i32 {
        match self {
            Level::Trace => level::TRACE,
            Level::Debug => level::DEBUG,
            Level::Info => level::INFO,
            Level::Warn => level::WARN,
            Level::Error => level::ERROR,
        }
    }
}

/// Writes one log line of the plugin. The host adds the plugin name and the
/// event id, and truncates messages past 16 KiB. The macros
/// [`trace!`](crate::trace), [`debug!`](crate::debug), [`info!`](crate::info),
/// [`warn!`](crate::warn) and [`error!`](crate::error) format like `format!`.
pub fn log(level: Level, message: &str) {
    crate::host::log(level, message);
}

/// Logs at trace level, formatting like `format!`.
#[macro_export]
macro_rules! trace {
    ($($arg:tt)+) => { $crate::log($crate::Level::Trace, &::std::format!($($arg)+)) };
}

/// Logs at debug level, formatting like `format!`.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => { $crate::log($crate::Level::Debug, &::std::format!($($arg)+)) };
}

/// Logs at info level, formatting like `format!`.
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => { $crate::log($crate::Level::Info, &::std::format!($($arg)+)) };
}

/// Logs at warn level, formatting like `format!`.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => { $crate::log($crate::Level::Warn, &::std::format!($($arg)+)) };
}

/// Logs at error level, formatting like `format!`. (To fail the invocation,
/// return an [`Error`](crate::Error) instead.)
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => { $crate::log($crate::Level::Error, &::std::format!($($arg)+)) };
}
