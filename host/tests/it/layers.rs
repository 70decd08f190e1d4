//! The structure issue 11 set, checked on the source itself so that it
//! stays: the top-level modules of `host/src` import each other one way
//! only (the order of `LAYERS`, which is `lib.rs`'s Layout), and no source
//! file is longer than `MAX_LINES` before its unit tests.

use std::path::{Path, PathBuf};

/// Bottom to top: a module may name (`crate::NAME`) only modules before it.
/// Modules on one line are peers that do not name each other.
const LAYERS: &[&[&str]] = &[
    &["event", "shutdown"],
    &["router"],
    &["config"],
    &["runtime"],
    &["telemetry"],
    &["ndjson"],
    &["dead_letter"],
    &["sinks"],
    &["pipeline"],
    &["sources"],
    &["http"],
    &["app"],
    &["cli"],
];

/// Lines a source file may have before its `#[cfg(test)]` (issue 11: "no
/// source file is longer than about 450 lines before its unit tests").
const MAX_LINES: usize = 460;

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without its comments (doc links name modules freely).
fn code(text: &str) -> String {
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// How many `super::` lead from a file's module to the crate root:
/// `app.rs` and `app/mod.rs` are `crate::app` (1), `app/core.rs` is
/// `crate::app::core` (2).
fn depth(rel: &Path) -> usize {
    let parts = rel.components().count();
    if rel.file_name().is_some_and(|n| n == "mod.rs") {
        parts - 1
    } else {
        parts
    }
}

fn ident(text: &str) -> String {
    text.chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
}

/// Every top-level module the code names: `crate::NAME`, or `NAME` after
/// as many `super::` as lead to the crate root from a module `depth` deep.
fn named_modules(code: &str, depth: usize) -> Vec<String> {
    let starts = |i: usize| !code[..i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':');
    let by_crate = code
        .match_indices("crate::")
        .filter(|(i, _)| starts(*i))
        .map(|(i, m)| ident(&code[i + m.len()..]));
    // Unit tests are an inline module one level deeper: their `super::`
    // chains count from there, so only the code before them is read.
    let outside_tests = code.split("#[cfg(test)]").next().unwrap_or("");
    let root = "super::".repeat(depth);
    let by_super = outside_tests
        .match_indices(root.as_str())
        .filter(|(i, _)| {
            !outside_tests[..*i].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':')
        })
        .map(|(i, m)| ident(&outside_tests[i + m.len()..]))
        .filter(|name| !name.is_empty() && name != "super");
    by_crate.chain(by_super).collect()
}

#[test]
fn top_level_modules_import_downward_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut wrong = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let top = rel.components().next().unwrap().as_os_str().to_str().unwrap();
        let top = top.strip_suffix(".rs").unwrap_or(top);
        if top == "lib" || top == "main" {
            continue;
        }
        let Some(own) = layer(top) else {
            wrong.push(format!(
                "{}: module `{top}` is in no layer of LAYERS",
                rel.display()
            ));
            continue;
        };
        for name in named_modules(&code(&std::fs::read_to_string(file).unwrap()), depth(rel)) {
            match layer(&name) {
                _ if name == top => {}
                Some(l) if l < own => {}
                Some(_) => wrong.push(format!(
                    "{}: `{top}` names `crate::{name}`, which is not below it",
                    rel.display()
                )),
                None => wrong.push(format!(
                    "{}: names `crate::{name}`, which is in no layer",
                    rel.display()
                )),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_source_file_is_longer_than_the_limit_before_its_tests() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(f).unwrap();
            let lines = text.lines().take_while(|l| l.trim() != "#[cfg(test)]").count();
            (lines > MAX_LINES).then(|| format!("{}: {lines} lines", f.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "longer than {MAX_LINES} lines before their tests:\n{}",
        long.join("\n")
    );
}

#[test]
fn the_layer_check_sees_an_upward_import_by_any_path() {
    let code = code("use crate::app::Daemon; // crate::cli\nfn f() { my_crate::x(); }");
    assert_eq!(named_modules(&code, 1), ["app"]);
    // In `router.rs` (or `router/mod.rs`) one `super::` is the crate root;
    // in `runtime/host/log.rs` it takes three.
    assert_eq!(
        named_modules("use super::app as a;", depth(Path::new("router.rs"))),
        ["app"]
    );
    assert_eq!(
        named_modules("use super::app as a;", depth(Path::new("router/mod.rs"))),
        ["app"]
    );
    let log = depth(Path::new("runtime/host/log.rs"));
    assert_eq!(
        named_modules("use super::super::limits; use super::super::super::cli;", log),
        ["cli"]
    );
}
