//! router.toml parsing and validation: arbitrary text through the same
//! `Config::parse` that `switchyard check` and `run` use, with its error
//! rendering (file:line:column of every problem).
#![no_main]

use std::collections::BTreeSet;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use switchyard::config::Config;

fuzz_target!(|input: &[u8]| {
    let Ok(src) = std::str::from_utf8(input) else {
        return;
    };
    let plugins = || -> Result<BTreeSet<String>, String> {
        Ok(["audit", "count_clicks", "log"].map(String::from).into())
    };
    match Config::parse(src, Path::new("router.toml"), Path::new("/nonexistent"), |_| {
        plugins()
    }) {
        Ok(cfg) => {
            assert!(cfg.server.max_connections >= 1);
            assert!(!cfg.server.body_timeout.is_zero());
        }
        Err(errors) => {
            let text = errors.to_string();
            assert!(text.starts_with("router.toml"), "{text}");
        }
    }
});
