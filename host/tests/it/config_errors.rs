//! Config error goldens, as data (in the manner of Spin's
//! `crates/manifest/tests/ui`): each `host/tests/config-errors/NAME.toml`
//! is checked with `switchyard check --config NAME.toml`, run in that
//! folder, and what it prints on stderr must be exactly `NAME.err`, with the
//! folder's absolute path written `$DIR`. The folder's `plugins/dist` holds
//! the plugins `audit`, `count_clicks` and `notify_friends`; variables named
//! `SY_*` are unset.
//!
//! A `.toml` without its `.err` (or the reverse) fails the test. To add a
//! case, write the `.toml`, run this test with `SWITCHYARD_BLESS=1` to write
//! its `.err`, and read that file before committing it.

use std::path::{Path, PathBuf};

use crate::harness::{run, switchyard};

fn folder() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/config-errors")
}

/// The cases: `(NAME.toml, NAME.err)`; fails on a file without its pair.
fn cases(dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    names.sort();
    let mut unpaired = Vec::new();
    let mut cases = Vec::new();
    for path in &names {
        let pair = match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => path.with_extension("err"),
            Some("err") => path.with_extension("toml"),
            _ => {
                unpaired.push(format!("{} (neither .toml nor .err)", path.display()));
                continue;
            }
        };
        let bless = std::env::var_os("SWITCHYARD_BLESS").is_some();
        // Blessing writes the .err of a new case.
        let written_now = bless && pair.extension().is_some_and(|e| e == "err");
        if !(pair.exists() || written_now) {
            unpaired.push(format!("{} has no {}", path.display(), pair.display()));
        }
        if path.extension().is_some_and(|e| e == "toml") {
            cases.push((path.clone(), pair));
        }
    }
    assert!(unpaired.is_empty(), "{}", unpaired.join("\n"));
    cases
}

/// What `switchyard check` prints on stderr for one case, and its status.
async fn check(dir: &Path, toml: &Path) -> (Option<i32>, String) {
    let mut command = switchyard(["check", "--config"]);
    command.arg(toml.file_name().unwrap()).current_dir(dir);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SY_") {
            command.env_remove(name);
        }
    }
    let out = run(&mut command).await;
    let err = String::from_utf8(out.stderr).unwrap();
    (out.status.code(), err.replace(dir.to_str().unwrap(), "$DIR"))
}

#[tokio::test]
async fn every_config_error_golden_matches() {
    let dir = folder();
    let cases = cases(&dir);
    assert!(cases.len() >= 10, "the goldens are in {}", dir.display());
    let bless = std::env::var_os("SWITCHYARD_BLESS").is_some();
    let mut failures = Vec::new();
    for (toml, err) in &cases {
        let (status, got) = check(&dir, toml).await;
        if status != Some(1) {
            failures.push(format!(
                "{}: check exited {status:?}, not 1:\n{got}",
                toml.display()
            ));
            continue;
        }
        if bless {
            std::fs::write(err, &got).unwrap();
            continue;
        }
        let want = std::fs::read_to_string(err).unwrap();
        if got != want {
            failures.push(format!(
                "{}: stderr differs from {}\n--- expected\n{want}--- got\n{got}",
                toml.display(),
                err.display()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
