//! The `[plugins] log_*` settings of the per-plugin log rate limit; the
//! limit itself is [`crate::runtime::host::log_limit`].

/// `[plugins] log_rate`, `log_burst`, `log_bytes` and `log_bytes_burst`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LogLimit {
    /// Lines per second a plugin may log on average; 0 means no limit.
    pub rate: u32,
    /// Lines a plugin may log at once after a quiet spell.
    pub burst: u32,
    /// Bytes of log messages per second a plugin may log on average; 0
    /// means no limit.
    pub bytes: u64,
    /// Bytes a plugin may log at once after a quiet spell; a line longer
    /// than this is always dropped.
    pub bytes_burst: u64,
}

impl Default for LogLimit {
    fn default() -> Self {
        LogLimit {
            rate: 100,
            burst: 500,
            bytes: 64 << 10,
            bytes_burst: 256 << 10,
        }
    }
}
