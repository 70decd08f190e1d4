//! Optional bearer tokens: one for ingest, one for admin. The tokens come
//! from an environment variable or a file named in router.toml (see
//! `config::auth`), never from the file itself, and are compared in constant
//! time so that response timing does not reveal how much of a guess was
//! right.

use hyper::header::{HeaderMap, AUTHORIZATION};

pub use crate::config::Token;

/// Why a request was refused; the message says what to send.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error(
        "missing bearer token: this endpoint needs the {scope} token as `Authorization: Bearer <token>`"
    )]
    Missing { scope: &'static str },
    #[error("malformed Authorization header: expected `Bearer <token>`")]
    Malformed,
    #[error("wrong bearer token for {scope}")]
    Wrong { scope: &'static str },
}

/// Checks the `Authorization` header against `expected`; `None` lets
/// everyone in.
pub fn check(headers: &HeaderMap, expected: Option<&Token>, scope: &'static str) -> Result<(), AuthError> {
    let Some(token) = expected else {
        return Ok(());
    };
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Err(AuthError::Missing { scope });
    };
    let value = value.as_bytes();
    // The scheme is case-insensitive (RFC 7235); the token is not.
    let presented = match value.get(..7) {
        Some(scheme) if scheme.eq_ignore_ascii_case(b"bearer ") => value[7..].trim_ascii(),
        _ => return Err(AuthError::Malformed),
    };
    if token.matches(presented) {
        Ok(())
    } else {
        Err(AuthError::Wrong { scope })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    fn with(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        h
    }

    #[test]
    fn checks() {
        let t = Token::new("s3cret");
        assert_eq!(check(&HeaderMap::new(), None, "ingest"), Ok(()));
        assert_eq!(check(&with("Bearer s3cret"), Some(&t), "ingest"), Ok(()));
        assert_eq!(check(&with("bearer s3cret"), Some(&t), "ingest"), Ok(()));
        assert_eq!(
            check(&HeaderMap::new(), Some(&t), "ingest"),
            Err(AuthError::Missing { scope: "ingest" })
        );
        assert_eq!(
            check(&with("Bearer s3cre"), Some(&t), "admin"),
            Err(AuthError::Wrong { scope: "admin" })
        );
        assert_eq!(
            check(&with("Bearer S3CRET"), Some(&t), "admin"),
            Err(AuthError::Wrong { scope: "admin" })
        );
        assert_eq!(
            check(&with("Basic czNjcmV0"), Some(&t), "admin"),
            Err(AuthError::Malformed)
        );
        assert_eq!(format!("{t:?}"), "Token(<redacted>)");
    }
}
