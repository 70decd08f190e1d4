//! `switchyard dead-letter list|replay`: reads the dead-letter log named in
//! the config; replay sends the events back through the daemon
//! (`POST /v1/replay` on its admin address, keeping their id, time and
//! source) and marks each accepted line in a sidecar file (see
//! [`super::marks`]) so that a second replay does not send it again.
//!
//! `--kind` takes the names of [`DeadLetterKind`], the one list of kinds.
//! Two kinds carry no event: a `bad_line` letter carries a tailed line that
//! was not an event, a `corrupt_record` letter the bytes (base64) of a disk
//! queue record that failed its checksum (issue 12). Both are listed, and a
//! replay leaves them out (there is no event to send).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{bail, Context};
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

use super::client::{self, Client};
use super::marks::{Mark, Marks};
use super::output;
use crate::config::Config;
use crate::dead_letter::DeadLetterKind;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print the dead letters (replayed ones are marked as such).
    List {
        #[command(flatten)]
        filter: Filter,
        /// One JSON object per dead letter, with `line`, `offset` (of the letter
        /// in the log) and `replayed` added; a `bad_line` letter keeps its own
        /// `offset` (of the line in the tailed file).
        #[arg(long)]
        json: bool,
    },
    /// Send the dead-lettered events not replayed yet back to the daemon.
    Replay {
        #[command(flatten)]
        filter: Filter,
        /// The daemon's base URL [default: its admin (else server) address from the config].
        #[arg(long)]
        url: Option<String>,
        /// Events per request.
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
        batch: u32,
        /// Show what would be replayed; send nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Clone, clap::Args)]
pub struct Filter {
    #[arg(long, default_value = "router.toml")]
    pub config: PathBuf,
    /// Only dead letters of this plugin.
    #[arg(long)]
    pub plugin: Option<String>,
    /// Only dead letters of this kind.
    #[arg(long, value_enum)]
    pub kind: Option<DeadLetterKind>,
}

/// `--kind`'s values, help and errors list [`DeadLetterKind::ALL`].
impl clap::ValueEnum for DeadLetterKind {
    fn value_variants<'a>() -> &'a [Self] {
        &DeadLetterKind::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()).help(self.describe()))
    }
}

/// One line of the dead-letter log.
#[derive(Debug)]
pub struct Letter {
    /// 1-based line number.
    pub line: usize,
    pub mark: Mark,
    pub value: Value,
}

impl Letter {
    /// The letter's kind; `None` for a name this version does not know.
    pub fn kind(&self) -> Option<DeadLetterKind> {
        self.value.get("kind")?.as_str()?.parse().ok()
    }

    /// The event the letter carries (every kind but `bad_line` and
    /// `corrupt_record` carries one).
    pub fn event(&self) -> Option<&Value> {
        self.value.get("event").filter(|e| e.is_object())
    }
}

/// Every complete line of the log (a line still being written is left
/// out): letters with an event, and the kinds that carry none (`bad_line`,
/// `corrupt_record`); other lines are reported and skipped.
pub fn read_letters(path: &Path) -> anyhow::Result<Vec<Letter>> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut out = Vec::new();
    let mut offset = 0usize;
    let mut number = 0usize;
    while let Some(i) = bytes[offset..].iter().position(|b| *b == b'\n') {
        number += 1;
        let line = &bytes[offset..offset + i];
        let here = offset as u64;
        offset += i + 1;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match serde_json::from_slice::<Value>(line) {
            Ok(v)
                if v.get("event").is_some_and(Value::is_object) || carries_no_event(&v) =>
            {
                out.push(Letter {
                    line: number,
                    mark: Mark::of(here, line),
                    value: v,
                })
            }
            Ok(_) => eprintln!(
                "{}:{number}: not a dead letter (no \"event\" object, not a bad_line or corrupt_record letter); skipped",
                path.display()
            ),
            Err(e) => eprintln!("{}:{number}: not JSON ({e}); skipped", path.display()),
        }
    }
    Ok(out)
}

/// Whether `v` is a letter of a kind that carries no event.
fn carries_no_event(v: &Value) -> bool {
    [DeadLetterKind::BadLine, DeadLetterKind::CorruptRecord]
        .iter()
        .any(|k| v["kind"] == k.as_str())
}

impl Filter {
    fn matches(&self, l: &Letter) -> bool {
        let plugin = l.value.get("plugin").and_then(Value::as_str);
        self.plugin.as_deref().is_none_or(|p| plugin == Some(p))
            && self.kind.is_none_or(|k| l.kind() == Some(k))
    }

    fn config(&self) -> anyhow::Result<Config> {
        Config::load(&self.config).map_err(|e| anyhow::anyhow!("{e}"))
    }
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    match cmd {
        Command::List { filter, json } => list(&filter, json),
        Command::Replay {
            filter,
            url,
            batch,
            dry_run,
        } => replay(&filter, url, batch as usize, dry_run),
    }
}

fn list(filter: &Filter, as_json: bool) -> anyhow::Result<ExitCode> {
    let config = filter.config()?;
    let path = &config.dead_letter;
    let marks = Marks::read(path)?;
    let mut out = output::stdout();
    let (mut shown, mut replayed) = (0, 0);
    for l in read_letters(path)?.iter().filter(|l| filter.matches(l)) {
        let done = marks.contains(&l.mark);
        shown += 1;
        replayed += usize::from(done);
        if as_json {
            let mut v = l.value.clone();
            v["line"] = json!(l.line);
            if l.event().is_some() {
                v["offset"] = json!(l.mark.offset);
            }
            v["replayed"] = json!(done);
            out.line(v)?;
        } else {
            out.line(describe(l, done))?;
        }
    }
    if !as_json {
        eprintln!(
            "{shown} dead letter(s) in {}: {} not replayed, {replayed} replayed",
            path.display(),
            shown - replayed
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `line 3  2026-…Z  handler_error  plugin=x route=y  deals.DealClick 01J…  message`,
/// or for a line of a tailed file that was not an event
/// `line 4  2026-…Z  bad_line  file=/var/log/app.log offset=120  unparsable  message`,
/// or for a damaged disk queue record
/// `line 5  2026-…Z  corrupt_record  segment=… offset=4096 len=310  -  message`.
fn describe(l: &Letter, replayed: bool) -> String {
    let field = |v: &Value, k: &str| match v.get(k) {
        Some(Value::String(x)) => Some(x.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    let s = |v: &Value, k: &str| field(v, k).unwrap_or_else(|| "-".to_string());
    let v = &l.value;
    let (keys, what) = match l.event() {
        Some(e) => (
            ["plugin", "sink", "route"],
            format!("{} {}", s(e, "name"), s(e, "id")),
        ),
        None if v["kind"] == DeadLetterKind::CorruptRecord.as_str() => {
            (["segment", "offset", "len"], s(v, "reason"))
        }
        None => (["file", "offset", "len"], s(v, "reason")),
    };
    let who: Vec<String> = keys
        .iter()
        .filter_map(|k| Some(format!("{k}={}", field(v, k)?)))
        .collect();
    format!(
        "line {}\t{}\t{}\t{}\t{what}\t{}{}",
        l.line,
        s(v, "time"),
        s(v, "kind"),
        who.join(" "),
        s(v, "message"),
        if replayed { "\t[replayed]" } else { "" }
    )
}

fn replay(filter: &Filter, url: Option<String>, batch: usize, dry_run: bool) -> anyhow::Result<ExitCode> {
    let config = filter.config()?;
    let path = config.dead_letter.clone();
    let url = url.unwrap_or_else(|| client::url_for(config.admin_listen.unwrap_or(config.server.listen)));
    let token = config.auth.admin.as_ref().map(|t| t.expose().to_string());
    let mut marks = if dry_run {
        Marks::read(&path)?
    } else {
        Marks::lock(&path)?
    };
    let (pending, lines): (Vec<Letter>, Vec<Letter>) = read_letters(&path)?
        .into_iter()
        .filter(|l| filter.matches(l) && !marks.contains(&l.mark))
        .partition(|l| l.event().is_some());
    if !lines.is_empty() {
        eprintln!(
            "{} letter(s) without an event left out: a bad_line (a line that was not an event) or a corrupt_record (a damaged queue record; its bytes are in record_base64) cannot be replayed",
            lines.len()
        );
    }
    if pending.is_empty() {
        eprintln!("nothing to replay in {} (with these filters)", path.display());
        return Ok(ExitCode::SUCCESS);
    }
    if dry_run {
        let mut out = output::stdout();
        for l in &pending {
            out.line(describe(l, false))?;
        }
        eprintln!("{} dead letter(s) would be replayed to {url}", pending.len());
        return Ok(ExitCode::SUCCESS);
    }
    let client = Client::new(&url, token)?;
    let rt = client::runtime()?;
    let mut tally = Tally::default();
    for chunk in pending.chunks(batch) {
        let body: Vec<u8> = chunk
            .iter()
            .flat_map(|l| {
                let mut line = l.value["event"].to_string().into_bytes();
                line.push(b'\n');
                line
            })
            .collect();
        let answer = rt.block_on(send(&client, body))?;
        if !answer.status.is_success() {
            let first = chunk.first().map_or(0, |l| l.line);
            eprintln!(
                "error: {url} refused the batch from line {first}: {} {}",
                answer.status,
                answer.error()
            );
            tally.report(&path, marks.path());
            return Ok(ExitCode::FAILURE);
        }
        let new: Vec<Mark> = chunk.iter().map(|l| l.mark).collect();
        marks.add(&new).with_context(|| {
            format!(
                "the batch was replayed but could not be marked in {}; it would be replayed again",
                marks.path().display()
            )
        })?;
        tally.count(&answer.body, chunk.len());
    }
    tally.report(&path, marks.path());
    Ok(ExitCode::SUCCESS)
}

/// Posts one batch, waiting for handling; retries while the queue is full.
async fn send(client: &Client, body: Vec<u8>) -> anyhow::Result<client::Answer> {
    let mut tries = 0;
    loop {
        let a = client
            .json(
                Method::POST,
                "/v1/replay?wait=true",
                Some("application/x-ndjson"),
                body.clone(),
            )
            .await?;
        if a.status == StatusCode::SERVICE_UNAVAILABLE && tries < 30 {
            tries += 1;
            let wait = a.retry_after.unwrap_or(Duration::from_secs(1));
            eprintln!("the daemon is busy ({}); retrying in {wait:?}", a.error());
            tokio::time::sleep(wait).await;
            continue;
        }
        if a.status == StatusCode::PAYLOAD_TOO_LARGE {
            bail!("{}; use a smaller --batch", a.error());
        }
        return Ok(a);
    }
}

#[derive(Default)]
struct Tally {
    events: usize,
    failed_again: usize,
}

impl Tally {
    /// Counts replayed events whose handlers failed again (they have new
    /// dead letters).
    fn count(&mut self, answer: &Value, n: usize) {
        self.events += n;
        for e in answer["events"].as_array().into_iter().flatten() {
            let failed = e["handlers"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|h| h["outcome"] != "ok");
            self.failed_again += usize::from(failed);
        }
    }

    fn report(&self, path: &Path, marks: &Path) {
        eprintln!(
            "replayed {} dead letter(s) from {}: {} handled, {} failed again (new dead letters); marked in {}",
            self.events,
            path.display(),
            self.events - self.failed_again,
            self.failed_again,
            marks.display()
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_complete_lines_with_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("dl.ndjson");
        let a = r#"{"event":{"id":"1","name":"a.A"},"kind":"trap","plugin":"p"}"#;
        let b = r#"{"event":{"id":"2","name":"a.B"},"kind":"timeout","plugin":"q"}"#;
        let c = r#"{"time":"t","kind":"bad_line","reason":"unparsable","message":"not JSON","source":"tail:/l/a.log","file":"/l/a.log","offset":7,"len":3,"line":"{x}"}"#;
        let d = r#"{"time":"t","kind":"corrupt_record","message":"checksum mismatch","segment":"00000000000000000001.seg","offset":4096,"len":310,"record_base64":"AAAA"}"#;
        std::fs::write(
            &p,
            format!("{a}\nnot json\n{{\"kind\":\"trap\"}}\n{b}\n{c}\n{d}\n{{\"event\":{{\"id\":\"3\""),
        )
        .unwrap();
        let letters = read_letters(&p).unwrap();
        assert_eq!(
            letters.len(),
            4,
            "the bad lines and the unfinished last line are left out"
        );
        assert_eq!((letters[0].line, letters[0].mark.offset), (1, 0));
        assert_eq!(letters[1].line, 4);
        assert_eq!(
            letters[1].mark,
            Mark::of(
                (a.len() + 1 + "not json\n".len() + "{\"kind\":\"trap\"}\n".len()) as u64,
                b.as_bytes()
            )
        );
        assert_eq!(
            letters.iter().map(Letter::kind).collect::<Vec<_>>(),
            [
                Some(DeadLetterKind::Failure(crate::runtime::FailureKind::Trap)),
                Some(DeadLetterKind::Failure(crate::runtime::FailureKind::Timeout)),
                Some(DeadLetterKind::BadLine),
                Some(DeadLetterKind::CorruptRecord)
            ]
        );
        assert!(letters[2].event().is_none() && letters[3].event().is_none());
        let filter = |plugin: Option<&str>, kind: Option<DeadLetterKind>| Filter {
            config: "x".into(),
            plugin: plugin.map(str::to_string),
            kind,
        };
        let picked = |f: Filter| letters.iter().map(|l| f.matches(l)).collect::<Vec<_>>();
        assert_eq!(picked(filter(Some("q"), None)), [false, true, false, false]);
        assert_eq!(
            picked(filter(None, Some("trap".parse().unwrap()))),
            [true, false, false, false]
        );
        assert_eq!(
            picked(filter(None, Some(DeadLetterKind::BadLine))),
            [false, false, true, false]
        );
        assert_eq!(
            describe(&letters[3], false),
            "line 6\tt\tcorrupt_record\tsegment=00000000000000000001.seg offset=4096 len=310\t-\tchecksum mismatch"
        );
        assert_eq!(
            describe(&letters[2], false),
            "line 5\tt\tbad_line\tfile=/l/a.log offset=7 len=3\tunparsable\tnot JSON"
        );
        assert_eq!(
            describe(&letters[0], true),
            "line 1\t-\ttrap\tplugin=p\ta.A 1\t-\t[replayed]"
        );
        assert!(read_letters(&dir.path().join("none")).unwrap().is_empty());
    }
}
