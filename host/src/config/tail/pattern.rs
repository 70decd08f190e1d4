//! `[[source.tail]] path`: one file or a glob (`*`, `?`, `[ab]`, `{a,b}`,
//! `**`; `*` does not cross `/`), checked and compiled here: what it
//! matches, its literal prefix (the directory the tail source walks and
//! watches) and how deep a match can be. Walking the disk for it is the
//! tail source's (`sources::tail::pattern`).

use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};

#[derive(Debug, Clone)]
pub struct Pattern {
    matcher: GlobMatcher,
    /// The leading part without glob characters (a directory).
    base: PathBuf,
    /// Directory levels below `base` a match can be at; `None` with `**`.
    depth: Option<usize>,
    /// The path has no glob characters: it names one file.
    literal: Option<PathBuf>,
}

fn has_glob_chars(part: &OsStr) -> bool {
    part.as_encoded_bytes()
        .iter()
        .any(|b| matches!(b, b'*' | b'?' | b'[' | b'{'))
}

impl Pattern {
    pub fn new(path: &Path) -> Result<Pattern, String> {
        let text = path
            .to_str()
            .ok_or_else(|| format!("{} is not valid UTF-8", path.display()))?;
        if text.is_empty() {
            return Err("must not be empty".into());
        }
        if text.ends_with('/') {
            return Err(format!(
                "{text:?} names a directory; give a file or a glob like \"logs/*.log\""
            ));
        }
        let matcher = GlobBuilder::new(text)
            .literal_separator(true)
            .build()
            .map_err(|e| format!("invalid glob {text:?}: {}", e.kind()))?
            .compile_matcher();
        let parts: Vec<Component<'_>> = path.components().collect();
        let Some(first) = parts.iter().position(|c| has_glob_chars(c.as_os_str())) else {
            return Ok(Pattern {
                matcher,
                base: path.parent().map(Path::to_path_buf).unwrap_or_default(),
                depth: Some(0),
                literal: Some(path.to_path_buf()),
            });
        };
        let base: PathBuf = parts[..first].iter().collect();
        let depth = if parts[first..]
            .iter()
            .any(|c| c.as_os_str().to_string_lossy().contains("**"))
        {
            None
        } else {
            Some(parts.len() - first - 1)
        };
        Ok(Pattern {
            matcher,
            base,
            depth,
            literal: None,
        })
    }

    /// The directory to watch, and whether to watch below it.
    pub fn watch_root(&self) -> (PathBuf, bool) {
        let dir = if self.base.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            self.base.clone()
        };
        (dir, self.depth != Some(0))
    }

    pub fn matches(&self, path: &Path) -> bool {
        match &self.literal {
            Some(p) => p == path,
            None => self.matcher.is_match(path),
        }
    }

    /// The leading directory without glob characters, where a walk starts.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// Directory levels below [`Pattern::base`] a match can be at; `None`
    /// when `**` makes it any.
    pub fn depth(&self) -> Option<usize> {
        self.depth
    }

    /// The one file named, when the path has no glob characters.
    pub fn literal(&self) -> Option<&Path> {
        self.literal.as_deref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_prefix_and_depth() {
        let p = Pattern::new(Path::new("/var/log/app/*.log")).unwrap();
        assert_eq!(p.watch_root(), (PathBuf::from("/var/log/app"), false));
        assert!(p.matches(Path::new("/var/log/app/x.log")));
        assert!(
            !p.matches(Path::new("/var/log/app/sub/x.log")),
            "* does not cross /"
        );
        let p = Pattern::new(Path::new("logs/*/app.log")).unwrap();
        assert_eq!(p.watch_root(), (PathBuf::from("logs"), true));
        let p = Pattern::new(Path::new("logs/**/app.log")).unwrap();
        assert_eq!((p.depth, p.watch_root().1), (None, true));
        let p = Pattern::new(Path::new("/srv/app.log")).unwrap();
        assert_eq!(p.watch_root(), (PathBuf::from("/srv"), false));
        assert!(p.matches(Path::new("/srv/app.log")));
        assert!(!p.matches(Path::new("/srv/app.log.1")));
        let p = Pattern::new(Path::new("*.log")).unwrap();
        assert_eq!(p.watch_root(), (PathBuf::from("."), false));
    }

    #[test]
    fn errors() {
        assert_eq!(Pattern::new(Path::new("")).unwrap_err(), "must not be empty");
        assert_eq!(
            Pattern::new(Path::new("logs/[a.log")).unwrap_err(),
            "invalid glob \"logs/[a.log\": unclosed character class; missing ']'"
        );
        assert!(Pattern::new(Path::new("logs/"))
            .unwrap_err()
            .contains("names a directory"));
    }
}
