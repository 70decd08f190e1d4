//! Walking the disk for a `[[source.tail]] path` ([`Pattern`], checked and
//! compiled by the config): expanding it walks only the directories the
//! pattern can reach, from its literal prefix, which is also what the
//! watcher watches. Also here: which names in a directory look like
//! rotations of a followed file (`app.log.1`, `app.log-20260101`,
//! `app-20260101.log`), where files that rotated away unseen are looked for.

use std::fs;
use std::path::{Path, PathBuf};

pub use crate::config::Pattern;

/// How deep `**` walks, so that a symlink loop cannot recurse forever.
const MAX_DEPTH: usize = 32;

/// Suffixes of compressed rotations: their bytes are not the lines.
const COMPRESSED: [&str; 10] = [
    ".gz", ".bz2", ".xz", ".zst", ".lz4", ".z", ".zip", ".br", ".lzma", ".lzo",
];

/// The walk lives with the tail source, which alone reads the disk for a
/// pattern; the pattern itself is a setting.
impl Pattern {
    /// The regular files (symlinks followed) that match now, sorted.
    pub fn expand(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        match self.literal() {
            Some(p) => {
                if fs::metadata(p).is_ok_and(|m| m.is_file()) {
                    out.push(p.to_path_buf());
                }
            }
            None => self.walk(self.base(), self.depth().unwrap_or(MAX_DEPTH), &mut out),
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
            } else if self.matches(&path) && fs::metadata(&path).is_ok_and(|m| m.is_file()) {
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
