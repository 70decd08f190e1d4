//! `switchyard tail [--name GLOB]`: the listener. Prints every routed event
//! from `GET /v1/stream` as one JSON line on stdout, as it arrives.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use http_body_util::BodyExt;
use hyper::Method;
use serde_json::Value;

use super::client::Target;
use super::output::{self, Output};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Only events whose name matches this glob (`deals.*`).
    #[arg(long)]
    pub name: Option<String>,
    #[command(flatten)]
    pub target: Target,
}

/// How a stream ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    /// The daemon is shutting down (or closed the connection).
    Closed,
    /// The daemon cut this listener off for reading too slowly.
    CutOff(String),
}

/// Handles one line of the stream: an event goes to `out`; a final control
/// line (`{"error": .., "reason": ..}`) ends the stream. Errors: writing to
/// `out` failed ([`Closed`](super::output::Closed) when its reader went
/// away: the listener has what it wanted, and the command exits 0).
pub fn line(line: &[u8], out: &mut Output<impl Write>) -> anyhow::Result<Option<End>> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.iter().all(u8::is_ascii_whitespace) {
        // A heartbeat.
        return Ok(None);
    }
    if let Ok(v) = serde_json::from_slice::<Value>(line) {
        if v.get("name").is_none() {
            if let (Some(err), Some(reason)) = (v.get("error").and_then(Value::as_str), v.get("reason")) {
                return Ok(Some(if reason == "cut_off" {
                    End::CutOff(err.to_string())
                } else {
                    eprintln!("switchyard tail: {err}");
                    End::Closed
                }));
            }
        }
    }
    out.bytes_line(line)?;
    Ok(None)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let c = args.target.client()?;
    let path = match &args.name {
        Some(glob) => format!(
            "/v1/stream?{}",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("name", glob)
                .finish()
        ),
        None => "/v1/stream".to_string(),
    };
    let end = super::client::runtime()?.block_on(async {
        let resp = c
            .send(Method::GET, &path, None, Some("application/x-ndjson"), Vec::new())
            .await?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let msg = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_string))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            anyhow::bail!("{} answered {status}: {msg}", c.base());
        }
        let mut body = resp.into_body();
        let mut buf: Vec<u8> = Vec::new();
        let mut out = output::stdout();
        while let Some(frame) = body.frame().await {
            let frame = frame.context("the stream broke off")?;
            let Ok(data) = frame.into_data() else { continue };
            buf.extend_from_slice(&data);
            while let Some(i) = buf.iter().position(|b| *b == b'\n') {
                let rest = buf.split_off(i + 1);
                let l = std::mem::replace(&mut buf, rest);
                if let Some(end) = line(&l[..l.len() - 1], &mut out)? {
                    return Ok(end);
                }
            }
        }
        Ok(End::Closed)
    })?;
    match end {
        End::Closed => Ok(ExitCode::SUCCESS),
        End::CutOff(why) => {
            eprintln!("switchyard tail: {why}");
            Ok(ExitCode::FAILURE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let mut out = Output::new(Vec::new());
        assert_eq!(line(b"", &mut out).unwrap(), None);
        assert_eq!(line(br#"{"id":"1","name":"a.B"}"#, &mut out).unwrap(), None);
        assert_eq!(
            line(br#"{"error":"cut off: slow","reason":"cut_off"}"#, &mut out).unwrap(),
            Some(End::CutOff("cut off: slow".into()))
        );
        assert_eq!(out.into_inner(), b"{\"id\":\"1\",\"name\":\"a.B\"}\n");
    }
}
