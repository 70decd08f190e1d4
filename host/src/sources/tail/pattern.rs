//! `[[source.tail]] path`: one file or a glob (`*`, `?`, `[ab]`, `{a,b}`,
//! `**`; `*` does not cross `/`). Expanding it walks only the directories
//! the pattern can reach, from its literal prefix, which is also what the
//! watcher watches. Also here: which names in a directory look like
//! rotations of a followed file (`app.log.1`, `app.log-20260101`,
//! `app-20260101.log`), where files that rotated away unseen are looked for.

use std::ffi::OsStr;
use std::fs;
use std::path::{Component, Path, PathBuf};

use globset::{GlobBuilder, GlobMatcher};

/// How deep `**` walks, so that a symlink loop cannot recurse forever.
const MAX_DEPTH: usize = 32;

/// Suffixes of compressed rotations: their bytes are not the lines.
const COMPRESSED: [&str; 10] = [
    ".gz", ".bz2", ".xz", ".zst", ".lz4", ".z", ".zip", ".br", ".lzma", ".lzo",
];

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

    /// The regular files (symlinks followed) that match now, sorted.
    pub fn expand(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        match &self.literal {
            Some(p) => {
                if fs::metadata(p).is_ok_and(|m| m.is_file()) {
                    out.push(p.clone());
                }
            }
            None => self.walk(&self.base, self.depth.unwrap_or(MAX_DEPTH), &mut out),
        }
        out.sort();
        out
    }

    fn walk(&self, dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
        let listing = if dir.as_os_str().is_empty() {
            fs::read_dir(".")
        } else {
            fs::read_dir(dir)
        };
        let Ok(entries) = listing else { return };
        for entry in entries.flatten() {
            let path = dir.join(entry.file_name());
            let Ok(kind) = entry.file_type() else { continue };
            // Directories are walked without following symlinks (no loops);
            // files are matched through them, as `tail -F` would open them.
            if kind.is_dir() {
                if depth > 0 {
                    self.walk(&path, depth - 1, out);
                }
            } else if self.matcher.is_match(&path) && fs::metadata(&path).is_ok_and(|m| m.is_file()) {
                out.push(path);
            }
        }
    }
}

/// Whether a file named `name` looks like a rotation of one named `of`.
pub fn is_rotation_name(name: &str, of: &str) -> bool {
    if name == of || COMPRESSED.iter().any(|ext| name.ends_with(ext)) {
        return false;
    }
    let separated = |rest: &str| rest.len() > 1 && rest.starts_with(['.', '-', '_']);
    if let Some(rest) = name.strip_prefix(of) {
        return separated(rest);
    }
    // logrotate's `dateext` with `extension .log`: app.log -> app-20260101.log
    if let Some((stem, ext)) = of.rsplit_once('.') {
        if let Some(middle) = name
            .strip_prefix(stem)
            .and_then(|r| r.strip_suffix(ext))
            .and_then(|r| r.strip_suffix('.'))
        {
            return !stem.is_empty() && separated(middle);
        }
    }
    false
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

    #[test]
    fn expands_only_regular_files_it_matches() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::create_dir_all(d.join("a/deep")).unwrap();
        fs::create_dir_all(d.join("b.log")).unwrap();
        for f in ["x.log", "y.txt", "a/z.log", "a/deep/w.log"] {
            fs::write(d.join(f), "").unwrap();
        }
        std::os::unix::fs::symlink(d.join("x.log"), d.join("link.log")).unwrap();
        let names = |pat: &str| -> Vec<String> {
            Pattern::new(&d.join(pat))
                .unwrap()
                .expand()
                .iter()
                .map(|p| p.strip_prefix(d).unwrap().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(names("*.log"), ["link.log", "x.log"]);
        assert_eq!(names("*/*.log"), ["a/z.log"]);
        assert_eq!(
            names("**/*.log"),
            ["a/deep/w.log", "a/z.log", "link.log", "x.log"]
        );
        assert_eq!(names("y.txt"), ["y.txt"]);
        assert!(names("nope.log").is_empty());
        assert!(names("missing/*.log").is_empty());
    }

    #[test]
    fn rotation_names() {
        for yes in [
            "app.log.1",
            "app.log-20260101",
            "app.log_old",
            "app-20260101.log",
            "app.1.log",
        ] {
            assert!(is_rotation_name(yes, "app.log"), "{yes}");
        }
        for no in [
            "app.log",
            "app.log.1.gz",
            "app.log.",
            "other.log",
            "app.logger",
            "application.log",
            "app-x.log.gz",
        ] {
            assert!(!is_rotation_name(no, "app.log"), "{no}");
        }
    }
}
