//! The `log` capability: `switchyard::log(level, ptr, len)` (ABI.md, "Host
//! imports"). Lines are kept per invocation, up to [`MAX_LOG_LINES`]; the
//! daemon forwards them to its own log under the plugin's rate limit
//! ([`super::log_limit`]).

use switchyard_sdk::abi;
use wasmtime::{Caller, Linker};

use super::{message, with_guest_bytes, Capability, HostState, Import};

/// Log lines kept per invocation; further lines are counted, not kept.
pub const MAX_LOG_LINES: usize = 1000;

const LOG: Import = Import {
    module: abi::IMPORT_MODULE,
    name: abi::IMPORT_LOG,
    params: &["i32", "i32", "i32"],
    results: &[],
};

pub const CAPABILITY: Capability = Capability {
    name: "log",
    imports: &[LOG],
    add_to_linker,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    /// The ABI's level number; out-of-range values clamp to the nearest level.
    fn from_abi(level: i32) -> Level {
        match level {
            i32::MIN..=abi::level::TRACE => Level::Trace,
            abi::level::DEBUG => Level::Debug,
            abi::level::INFO => Level::Info,
            abi::level::WARN => Level::Warn,
            _ => Level::Error,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LogLine {
    pub level: Level,
    pub message: String,
}

/// The lines of the current call.
#[derive(Debug, Default)]
pub struct LogState {
    /// Kept lines, at most [`MAX_LOG_LINES`].
    pub lines: Vec<LogLine>,
    /// Lines past [`MAX_LOG_LINES`], counted only.
    pub dropped: u64,
}

impl HostState {
    /// Keeps one line (the guest's, or the host's about the guest).
    pub fn log(&mut self, level: Level, message: String) {
        if self.log.lines.len() < MAX_LOG_LINES {
            self.log.lines.push(LogLine { level, message });
        } else {
            self.log.dropped += 1;
        }
    }
}

fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        LOG.module,
        LOG.name,
        |mut caller: Caller<'_, HostState>, level: i32, ptr: i32, len: i32| {
            with_guest_bytes(&mut caller, "log", ptr, len, |bytes, state| {
                state.log(Level::from_abi(level), message(bytes))
            })
        },
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use crate::config::Limits;

    #[test]
    fn log_lines_are_capped() {
        let mut s = HostState::new(None, Limits::default(), Instant::now());
        for i in 0..MAX_LOG_LINES + 5 {
            s.log(Level::Info, i.to_string());
        }
        assert_eq!(s.log.lines.len(), MAX_LOG_LINES);
        assert_eq!(s.log.dropped, 5);
    }

    #[test]
    fn levels_clamp() {
        assert_eq!(Level::from_abi(-7), Level::Trace);
        assert_eq!(Level::from_abi(2), Level::Info);
        assert_eq!(Level::from_abi(99), Level::Error);
    }
}
