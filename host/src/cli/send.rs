//! `switchyard send NAME [--data JSON]`: posts one event.

use std::process::ExitCode;

use anyhow::Context;
use hyper::Method;
use serde_json::{json, Value};

use super::client::{self, Target};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The event name, like `deals.DealClick`.
    pub name: String,
    /// The `data` payload as JSON; `@FILE` reads it from a file, `@-` from stdin.
    #[arg(long)]
    pub data: Option<String>,
    /// The `meta` object as JSON.
    #[arg(long)]
    pub meta: Option<String>,
    /// The schema version of `data`, like `1.2`.
    #[arg(long = "event-version", value_name = "VERSION")]
    pub event_version: Option<String>,
    /// Wait until every handler has run and print their outcomes.
    #[arg(long)]
    pub wait: bool,
    #[command(flatten)]
    pub target: Target,
}

fn json_arg(text: &str, what: &str) -> anyhow::Result<Value> {
    let text = match text.strip_prefix('@') {
        Some("-") => std::io::read_to_string(std::io::stdin()).context("cannot read stdin")?,
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("{what}: cannot read {path}"))?,
        None => text.to_string(),
    };
    serde_json::from_str(&text).with_context(|| format!("{what} is not valid JSON"))
}

/// The event as posted.
pub fn event(args: &Args) -> anyhow::Result<Value> {
    let mut e = json!({ "name": args.name });
    if let Some(d) = &args.data {
        e["data"] = json_arg(d, "--data")?;
    }
    if let Some(m) = &args.meta {
        let meta = json_arg(m, "--meta")?;
        anyhow::ensure!(meta.is_object(), "--meta must be a JSON object");
        e["meta"] = meta;
    }
    if let Some(v) = &args.event_version {
        e["version"] = Value::String(v.clone());
    }
    Ok(e)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let body = event(&args)?.to_string().into_bytes();
    let c = args.target.client()?;
    let path = if args.wait {
        "/v1/events?wait=true"
    } else {
        "/v1/events"
    };
    let answer = client::runtime()?.block_on(c.json(Method::POST, path, Some("application/json"), body))?;
    if answer.status.is_success() {
        super::output::stdout().line(&answer.body)?;
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!(
            "error: {} answered {}: {}",
            c.base(),
            answer.status,
            answer.error()
        );
        Ok(ExitCode::FAILURE)
    }
}
