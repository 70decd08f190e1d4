//! The plugins folder: which files are plugins.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

/// Whether a file stem is a valid plugin name: ASCII letters, digits, `_`, `-`.
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Every `*.wasm` and `*.wat` in `dir`, by plugin name (the file stem).
/// Files whose stem is not a valid name, and hidden files, are ignored. If a
/// name has both a `.wasm` and a `.wat`, the `.wasm` wins.
pub fn plugin_files(dir: &Path) -> io::Result<BTreeMap<String, PathBuf>> {
    let mut found = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let (Some(stem), Some(ext)) = (
            path.file_stem().and_then(|s| s.to_str()),
            path.extension().and_then(|s| s.to_str()),
        ) else {
            continue;
        };
        if !matches!(ext, "wasm" | "wat") || stem.starts_with('.') || !valid_name(stem) || !path.is_file() {
            continue;
        }
        let stem = stem.to_string();
        if ext == "wasm" || !found.contains_key(&stem) {
            found.insert(stem, path);
        }
    }
    Ok(found)
}
