//! `[auth]`: the bearer tokens of the ingest and admin scopes. A token
//! comes from an environment variable or a file named in router.toml, never
//! from the file itself; the HTTP server checks requests against it
//! (`http::auth`).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use subtle::ConstantTimeEq;
use toml::Spanned;

use super::validate::Validator;

/// A bearer token. `Debug` never prints it; comparing it takes the same
/// time whatever its content, so that response timing does not reveal how
/// much of a guess was right.
#[derive(Clone)]
pub struct Token(Arc<str>);

impl Token {
    pub fn new(secret: &str) -> Token {
        Token(secret.into())
    }

    /// The token, for clients that send it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Constant-time in the token's content; only its length can show.
    pub fn matches(&self, presented: &[u8]) -> bool {
        self.0.as_bytes().ct_eq(presented).into()
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl PartialEq for Token {
    fn eq(&self, other: &Token) -> bool {
        self.matches(other.0.as_bytes())
    }
}

/// Bearer tokens; `None` means that scope is open.
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// Required on `POST /v1/events` and `POST /event/log`.
    pub ingest: Option<Token>,
    /// Required on `/metrics`, `/v1/*` listings, `/v1/stream`, `/v1/replay`.
    pub admin: Option<Token>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAuth {
    /// `{ env = "VAR" }` or `{ file = "path" }`; a plain string is refused.
    pub ingest: Option<Spanned<toml::Value>>,
    pub admin: Option<Spanned<toml::Value>>,
}

impl Validator<'_> {
    pub fn auth(&mut self, raw: &RawAuth, base: &Path) -> AuthConfig {
        AuthConfig {
            ingest: raw
                .ingest
                .as_ref()
                .and_then(|v| self.token(v, "auth.ingest", base)),
            admin: raw.admin.as_ref().and_then(|v| self.token(v, "auth.admin", base)),
        }
    }

    fn token(&mut self, value: &Spanned<toml::Value>, what: &str, base: &Path) -> Option<Token> {
        let span = value.span();
        let how = "write { env = \"VARIABLE\" } or { file = \"/path/to/token\" }";
        let table = match value.get_ref() {
            toml::Value::String(_) => {
                self.error(
                    Some(span),
                    format!("{what}: the token itself must not be in router.toml; {how}"),
                );
                return None;
            }
            toml::Value::Table(t) => t,
            other => {
                self.error(
                    Some(span),
                    format!("{what}: expected a table, got a {}; {how}", other.type_str()),
                );
                return None;
            }
        };
        let entry = match (table.len(), table.get("env"), table.get("file")) {
            (1, Some(toml::Value::String(var)), None) => Ok((true, var.clone())),
            (1, None, Some(toml::Value::String(file))) => Ok((false, file.clone())),
            _ => Err(()),
        };
        let Ok((is_env, name)) = entry else {
            self.error(
                Some(span),
                format!("{what}: {how}, exactly one of them, as a string"),
            );
            return None;
        };
        let secret = if is_env {
            match super::env::var(&name) {
                Some(v) => v,
                None => {
                    self.error(
                        Some(span),
                        format!("{what}: environment variable {name} is not set"),
                    );
                    return None;
                }
            }
        } else {
            let path: PathBuf = base.join(&name);
            match std::fs::read_to_string(&path) {
                Ok(v) => v,
                Err(e) => {
                    self.error(
                        Some(span),
                        format!("{what}: cannot read token file {}: {e}", path.display()),
                    );
                    return None;
                }
            }
        };
        // A file's trailing newline is not part of the token.
        let secret = secret.trim();
        let from = if is_env {
            format!("environment variable {name}")
        } else {
            format!("token file {}", base.join(&name).display())
        };
        if secret.is_empty() {
            self.error(Some(span), format!("{what}: {from} is empty"));
            return None;
        }
        if secret.chars().any(|c| c.is_whitespace() || c.is_control()) {
            self.error(
                Some(span),
                format!("{what}: {from} holds whitespace inside the token; a bearer token is one word"),
            );
            return None;
        }
        Some(Token::new(secret))
    }
}
