use std::fmt;

/// A handler failure. Its message becomes the invocation's failure message
/// (the host's `fail` import) and the handler returns non-zero.
///
/// Any `std::error::Error` converts into it, so `?` works on parse errors,
/// emit refusals and the like; [`fail!`](crate::fail) builds one from a
/// format string. Like `anyhow::Error`, it does not implement
/// `std::error::Error` itself, which is what makes that conversion possible.
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    message: String,
}

impl Error {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Error {
        Error {
            message: message.into(),
        }
    }

    /// The failure message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error({:?})", self.message)
    }
}

impl<E: std::error::Error> From<E> for Error {
    fn from(error: E) -> Error {
        Error::new(error.to_string())
    }
}

/// Why the host refused an emitted event (ABI `emit` return codes), or why
/// the event could not be encoded in the first place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmitError {
    /// `-1`: not a JSON object, or `name` missing or invalid.
    Malformed,
    /// `-2`: over the per-invocation event limit (`max_emits`).
    TooMany,
    /// `-3`: over the per-invocation byte limit (`max_emit_bytes`).
    TooLarge,
    /// `-4`: over the root event's cascade budget (`[router] max_cascade`
    /// events or `max_cascade_bytes` bytes caused in all; ABI 1.1).
    CascadeLimit,
    /// Another negative code, from a newer host.
    Refused(i32),
    /// `data` or `meta` could not be serialized to JSON.
    Encode(String),
}

impl EmitError {
    /// The error for an `emit` return code; `None` for 0 (accepted).
    pub fn from_code(code: i32) -> Option<EmitError> {
        use crate::abi::emit;
        match code {
            emit::OK => None,
            emit::MALFORMED => Some(EmitError::Malformed),
            emit::TOO_MANY => Some(EmitError::TooMany),
            emit::TOO_LARGE => Some(EmitError::TooLarge),
            emit::CASCADE_LIMIT => Some(EmitError::CascadeLimit),
            other => Some(EmitError::Refused(other)),
        }
    }
}

impl fmt::Display for EmitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EmitError::Malformed => f.write_str("emit refused: malformed event (-1)"),
            EmitError::TooMany => f.write_str("emit refused: too many events (-2)"),
            EmitError::TooLarge => f.write_str("emit refused: too many bytes (-3)"),
            EmitError::CascadeLimit => f.write_str("emit refused: over the root event's cascade budget (-4)"),
            EmitError::Refused(code) => write!(f, "emit refused with code {}", code),
            EmitError::Encode(why) => write!(f, "emit: cannot encode the event: {}", why),
        }
    }
}

impl std::error::Error for EmitError {}

/// Returns early from a handler with an [`Error`] built like `format!`.
///
/// ```
/// # use switchyard_sdk::{fail, Error};
/// fn check(amount: i64) -> Result<(), Error> {
///     if amount < 0 {
///         fail!("amount must not be negative, got {}", amount);
///     }
///     Ok(())
/// }
/// assert_eq!(check(-1).unwrap_err().message(), "amount must not be negative, got -1");
/// ```
#[macro_export]
macro_rules! fail {
    ($($arg:tt)+) => {
        return ::core::result::Result::Err($crate::Error::new(::std::format!($($arg)+)))
    };
}
