//! A small HTTP client for the commands: one base URL (plain `http://`),
//! an optional bearer token, JSON answers and streamed bodies.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as Legacy;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// Where the commands find the daemon unless told otherwise.
pub const DEFAULT_URL: &str = "http://127.0.0.1:7600";
/// The environment variable holding the bearer token for `send`/`tail`.
pub const TOKEN_ENV: &str = "SWITCHYARD_TOKEN";

/// `--url`, `--token-file`, shared by `send` and `tail`.
#[derive(Debug, Clone, clap::Args)]
pub struct Target {
    /// The daemon's base URL [env: SWITCHYARD_URL; default http://127.0.0.1:7600].
    #[arg(long)]
    pub url: Option<String>,
    /// A file holding the bearer token [else env: SWITCHYARD_TOKEN].
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
}

impl Target {
    pub fn client(&self) -> anyhow::Result<Client> {
        let url = match &self.url {
            Some(u) => u.clone(),
            None => std::env::var("SWITCHYARD_URL").unwrap_or_else(|_| DEFAULT_URL.to_string()),
        };
        let token = match &self.token_file {
            Some(f) => Some(read_token(f)?),
            None => std::env::var(TOKEN_ENV).ok().filter(|t| !t.trim().is_empty()),
        };
        Client::new(&url, token)
    }
}

fn read_token(path: &Path) -> anyhow::Result<String> {
    let t = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read token file {}", path.display()))?;
    let t = t.trim();
    if t.is_empty() {
        bail!("token file {} is empty", path.display());
    }
    Ok(t.to_string())
}

pub struct Client {
    base: Uri,
    token: Option<String>,
    http: Legacy<HttpConnector, Full<Bytes>>,
}

/// A JSON answer.
pub struct Answer {
    pub status: StatusCode,
    pub retry_after: Option<Duration>,
    pub body: Value,
}

impl Answer {
    /// The daemon's `error` message, or the body.
    pub fn error(&self) -> String {
        match self.body.get("error").and_then(Value::as_str) {
            Some(e) => e.to_string(),
            None => self.body.to_string(),
        }
    }
}

impl Client {
    pub fn new(base: &str, token: Option<String>) -> anyhow::Result<Client> {
        let base: Uri = base
            .trim_end_matches('/')
            .parse()
            .with_context(|| format!("invalid URL {base:?}"))?;
        match base.scheme_str() {
            Some("http") => {}
            Some("https") => bail!("{base}: https is not supported; use http:// (or a local proxy)"),
            _ => bail!("invalid URL {base}: expected http://HOST:PORT"),
        }
        if base.authority().is_none() {
            bail!("invalid URL {base}: no host");
        }
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        connector.set_nodelay(true);
        Ok(Client {
            base,
            token,
            http: Legacy::builder(TokioExecutor::new()).build(connector),
        })
    }

    pub fn base(&self) -> &Uri {
        &self.base
    }

    fn uri(&self, path_and_query: &str) -> anyhow::Result<Uri> {
        let prefix = self.base.path().trim_end_matches('/');
        Uri::builder()
            .scheme("http")
            .authority(self.base.authority().expect("checked in new").clone())
            .path_and_query(format!("{prefix}{path_and_query}"))
            .build()
            .with_context(|| format!("invalid request path {path_and_query:?}"))
    }

    /// Sends a request and returns the response with its body unread.
    pub async fn send(
        &self,
        method: Method,
        path_and_query: &str,
        content_type: Option<&str>,
        accept: Option<&str>,
        body: Vec<u8>,
    ) -> anyhow::Result<Response<Incoming>> {
        let uri = self.uri(path_and_query)?;
        let mut req = Request::builder().method(method).uri(&uri);
        if let Some(ct) = content_type {
            req = req.header(CONTENT_TYPE, ct);
        }
        if let Some(a) = accept {
            req = req.header(ACCEPT, a);
        }
        if let Some(t) = &self.token {
            req = req.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = req.body(Full::new(Bytes::from(body)))?;
        self.http
            .request(req)
            .await
            .with_context(|| format!("cannot reach the daemon at {}", self.base))
    }

    /// Sends a request and reads a JSON answer.
    pub async fn json(
        &self,
        method: Method,
        path_and_query: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> anyhow::Result<Answer> {
        let resp = self
            .send(
                method,
                path_and_query,
                content_type,
                Some("application/json"),
                body,
            )
            .await?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(hyper::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = resp
            .into_body()
            .collect()
            .await
            .context("the daemon's answer was cut short")?
            .to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).trim().to_string()));
        Ok(Answer {
            status,
            retry_after,
            body,
        })
    }
}

/// The URL of a daemon listening on `addr`: a wildcard address is reached
/// on loopback.
pub fn url_for(addr: std::net::SocketAddr) -> String {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v4) if v4.is_unspecified() => {
            std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
        }
        std::net::IpAddr::V6(v6) if v6.is_unspecified() => {
            std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
        }
        ip => ip,
    };
    format!("http://{}", std::net::SocketAddr::new(ip, addr.port()))
}

/// A current-thread runtime for one command.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(url_for("0.0.0.0:7600".parse().unwrap()), "http://127.0.0.1:7600");
        assert_eq!(url_for("[::]:7600".parse().unwrap()), "http://[::1]:7600");
        assert_eq!(url_for("10.0.0.2:80".parse().unwrap()), "http://10.0.0.2:80");
        let c = Client::new("http://h:1/base/", None).unwrap();
        assert_eq!(
            c.uri("/v1/events?wait=true").unwrap().to_string(),
            "http://h:1/base/v1/events?wait=true"
        );
        assert!(Client::new("https://h", None)
            .err()
            .unwrap()
            .to_string()
            .contains("https is not supported"));
        assert!(Client::new("h:1", None).is_err());
    }
}
