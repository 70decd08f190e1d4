//! `[[source.tail]]`: log files followed like `tail -F`, validated here
//! (every error located) into [`TailSource`]s; the source itself is
//! `sources::tail`.

mod pattern;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Serialize, Serializer};

use super::raw::RawTail;
use super::validate::{line_col, Validator};
use crate::event::check_name;
pub use pattern::Pattern;

/// What each line of a tailed file is.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TailFormat {
    /// An envelope, or just `{name, data}`, as JSON.
    Json,
    /// An event named `name` with `data.line` the text; without `name`, the
    /// line itself is the event name.
    Text { name: Option<String> },
    /// Named captures: `name` is the event name (else `name` here), every
    /// other one a string field of `data`.
    Regex {
        #[serde(serialize_with = "regex_text")]
        pattern: regex::Regex,
        name: Option<String>,
    },
}

/// Where to start in a file that has no checkpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    Beginning,
    End,
}

/// One `[[source.tail]]`. Serialized only to tell one from another (see
/// [`super::restart_only_changes`]).
#[derive(Debug, Clone, Serialize)]
pub struct TailSource {
    /// The file or glob, resolved against the config file's directory.
    pub path: PathBuf,
    /// `path`, compiled; it says nothing `path` does not.
    #[serde(skip)]
    pub pattern: Pattern,
    pub format: TailFormat,
    pub start_at: StartAt,
    /// Longer lines go to dead letters.
    pub max_line: u64,
    /// How long a renamed or deleted file is still followed after it last
    /// grew, for writers that have not reopened yet.
    pub rotate_wait: Duration,
}

fn regex_text<S: Serializer>(re: &regex::Regex, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(re.as_str())
}

pub const DEFAULT_MAX_LINE: u64 = 256 << 10;
pub const DEFAULT_ROTATE_WAIT: Duration = Duration::from_secs(5);

impl Validator<'_> {
    pub fn tail_sources(&mut self, raw: &[toml::Spanned<RawTail>], base: &Path) -> Vec<TailSource> {
        let mut out: Vec<TailSource> = Vec::new();
        let mut seen: Vec<(PathBuf, (usize, usize))> = Vec::new();
        for spanned in raw {
            let t = spanned.get_ref();
            let before = self.errors.len();
            let written = t.path.get_ref();
            let what = format!("source.tail {written:?}");
            let path = base.join(written);
            let pattern = self.check(t.path.span(), &format!("{what}: path"), Pattern::new(&path));
            let here = line_col(self.src, t.path.span().start);
            if let Some((_, (line, col))) = seen.iter().find(|(p, _)| *p == path) {
                self.error(
                    Some(t.path.span()),
                    format!(
                        "{what}: path: already followed by the source at line {line}, column {col}; \
                         each line would be handled twice"
                    ),
                );
            } else {
                seen.push((path.clone(), here));
            }
            let name = t.name.as_ref().and_then(|n| {
                self.check(n.span(), &format!("{what}: name"), check_name(n.get_ref()))
                    .map(|()| n.get_ref().clone())
            });
            let kind = t.format.as_ref().map_or("json", |f| f.get_ref().as_str());
            let format = match kind {
                "json" | "text" => {
                    if let Some(p) = &t.pattern {
                        self.error(
                            Some(p.span()),
                            format!("{what}: pattern: only format \"regex\" takes a pattern"),
                        );
                    }
                    if kind == "json" {
                        if let Some(n) = &t.name {
                            self.error(
                                Some(n.span()),
                                format!(
                                    "{what}: name: format \"json\" takes each event's name from its line; \
                                     use format \"text\" for a fixed name"
                                ),
                            );
                        }
                        Some(TailFormat::Json)
                    } else {
                        Some(TailFormat::Text { name: name.clone() })
                    }
                }
                "regex" => match &t.pattern {
                    None => {
                        self.error(
                            Some(spanned.span()),
                            format!("{what}: format \"regex\" needs a pattern with named captures"),
                        );
                        None
                    }
                    Some(p) => {
                        let compiled = regex::Regex::new(p.get_ref()).map_err(|e| {
                            let text = e.to_string();
                            let last = text
                                .lines()
                                .last()
                                .unwrap_or("")
                                .trim_start_matches("error: ")
                                .to_string();
                            format!("invalid regex: {last}")
                        });
                        match self.check(p.span(), &format!("{what}: pattern"), compiled) {
                            Some(re) if name.is_none() && !re.capture_names().any(|c| c == Some("name")) => {
                                self.error(
                                    Some(p.span()),
                                    format!(
                                        "{what}: pattern: has no (?P<name>...) group and no name is set, \
                                         so its events would have no name"
                                    ),
                                );
                                None
                            }
                            Some(re) => Some(TailFormat::Regex {
                                pattern: re,
                                name: name.clone(),
                            }),
                            None => None,
                        }
                    }
                },
                other => {
                    let span = t.format.as_ref().map(|f| f.span());
                    self.error(
                        span,
                        format!(
                            "{what}: format: unknown format {other:?} (known: \"json\", \"text\", \"regex\")"
                        ),
                    );
                    None
                }
            };
            let start_at = match t.start_at.as_ref().map(|s| (s.get_ref().as_str(), s.span())) {
                None | Some(("end", _)) => StartAt::End,
                Some(("beginning", _)) => StartAt::Beginning,
                Some((other, span)) => {
                    self.error(
                        Some(span),
                        format!("{what}: start_at: must be \"beginning\" or \"end\", got {other:?}"),
                    );
                    StartAt::End
                }
            };
            let max_line = self.size(
                &t.max_line,
                &format!("{what}: max_line"),
                1..(1 << 30) + 1,
                DEFAULT_MAX_LINE,
            );
            let rotate_wait = self.duration(
                &t.rotate_wait,
                &format!("{what}: rotate_wait"),
                DEFAULT_ROTATE_WAIT,
            );
            if self.errors.len() > before {
                continue;
            }
            if let (Some(pattern), Some(format)) = (pattern, format) {
                out.push(TailSource {
                    path,
                    pattern,
                    format,
                    start_at,
                    max_line,
                    rotate_wait,
                });
            }
        }
        out
    }
}
