//! Every language's conformance plugin (plugins/*/conformance*), built from
//! source by plugins/build.sh, through the real daemon: emit, log, fail with
//! a message, read config, a deliberate trap, and (the languages of issue
//! 14) a loop or a wait past the deadline.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{read_ndjson, request, wait_until, write_setup, Binary};

const LANGS: [&str; 8] = [
    "rust",
    "c",
    "zig",
    "assemblyscript",
    "go",
    "command",
    "js",
    "python",
];
/// How long loading may take: a Python component's first compile is about
/// 10 s alone, several times that on two cores shared with other tests.
const LOAD_PATIENCE: Duration = Duration::from_secs(300);
/// The languages whose conformance plugin loops (js, python) or waits (go)
/// past its deadline on `conf.Timeout` (the others take it as any other
/// name: ok).
const LOOPING: [&str; 3] = ["go", "js", "python"];

fn built(lang: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/dist")
        .join(format!("conformance_{lang}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: build the example plugins first (plugins/install-toolchains.sh && plugins/build.sh)",
        path.display()
    );
    path
}

async fn post(addr: std::net::SocketAddr, name: &str) -> Value {
    let body = json!({"name": name}).to_string().into_bytes();
    let r = request(
        addr,
        "POST",
        "/v1/events?wait=true",
        &[("content-type", "application/json")],
        body,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["events"][0].clone()
}

/// (plugin, outcome, message) of each handler run on the posted event itself.
fn outcomes(report: &Value) -> Vec<(String, String, String)> {
    report["handlers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["event"] == report["id"])
        .map(|h| {
            (
                h["plugin"].as_str().unwrap().to_string(),
                h["outcome"].as_str().unwrap().to_string(),
                h["message"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_language_passes_through_the_daemon() {
    let mut toml = String::new();
    for lang in LANGS {
        toml += &format!("[plugin.conformance_{lang}]\nconfig = {{ lang = \"{lang}\", answer = 42, nested = {{ list = [1, 2] }} }}\n");
        if LOOPING.contains(&lang) {
            // So that the deadline, not the fuel, ends the loop.
            toml += "fuel = 1_000_000_000_000\n";
        }
        toml += "\n";
    }
    let handlers: Vec<String> = LANGS.iter().map(|l| format!("\"conformance_{l}\"")).collect();
    toml += &format!(
        "[[route]]\nname = \"conf\"\nmatch = {{ name = \"conf.*\", source = \"http\" }}\nhandlers = [{}]\n\n\
         [[route]]\nname = \"out\"\nmatch = {{ source = \"plugin:*\" }}\nsinks = [\"out\"]\n\n\
         [sink.out]\ntype = \"file\"\npath = \"out.ndjson\"\n",
        handlers.join(", ")
    );
    let dir = write_setup("", &toml, &[]);
    // A Python component is 18 MB and takes about 10 s to compile: larger
    // load limits, and the compile cache in one folder every run shares
    // (target/tmp), so that only the first run after a build compiles it.
    let cfg = dir.path().join("router.toml");
    let shared = Path::new(env!("CARGO_TARGET_TMPDIR")).join("conformance-state");
    let text = std::fs::read_to_string(&cfg).unwrap().replacen(
        "[plugins]\n",
        &format!(
            "[state]\ndir = {:?}\n\n[plugins]\nmax_file_size = \"32MiB\"\ncompile_timeout = \"300s\"\n",
            shared.display().to_string()
        ),
        1,
    );
    std::fs::write(&cfg, text).unwrap();
    for lang in LANGS {
        std::fs::copy(
            built(lang),
            dir.path().join(format!("plugins/conformance_{lang}.wasm")),
        )
        .unwrap();
    }
    // Bound early, then ready once the plugins are loaded: a first compile
    // of the Python component may take longer than the harness's patience.
    let mut daemon = Binary::start_early(&cfg);
    let addr = daemon.addr;
    wait_until("the conformance plugins to load", LOAD_PATIENCE, async || {
        request(addr, "GET", "/readyz", &[], Vec::new()).await.status == 200
    })
    .await;

    let names: Vec<String> = LANGS.iter().map(|l| format!("conformance_{l}")).collect();
    let all_ok: Vec<(String, String, String)> = names
        .iter()
        .map(|n| (n.clone(), "ok".to_string(), String::new()))
        .collect();

    let emit = post(addr, "conf.Emit").await;
    assert_eq!(outcomes(&emit), all_ok, "conf.Emit");
    let log = post(addr, "conf.Log").await;
    assert_eq!(outcomes(&log), all_ok, "conf.Log");
    let config = post(addr, "conf.Config").await;
    assert_eq!(outcomes(&config), all_ok, "conf.Config");
    let other = post(addr, "conf.Other").await;
    assert_eq!(outcomes(&other), all_ok, "any other name is handled");

    let fail = post(addr, "conf.Fail").await;
    for ((plugin, outcome, message), lang) in outcomes(&fail).into_iter().zip(LANGS) {
        assert_eq!(
            (plugin.as_str(), outcome.as_str()),
            (format!("conformance_{lang}").as_str(), "handler_error")
        );
        assert!(
            message.contains(&format!("conformance {lang} failed on purpose")),
            "{lang}: {message}"
        );
    }
    let looped = post(addr, "conf.Timeout").await;
    for ((plugin, outcome, message), lang) in outcomes(&looped).into_iter().zip(LANGS) {
        let expected = if LOOPING.contains(&lang) { "timeout" } else { "ok" };
        assert_eq!(
            (plugin.as_str(), outcome.as_str()),
            (format!("conformance_{lang}").as_str(), expected),
            "{message}"
        );
    }
    let trap = post(addr, "conf.Trap").await;
    for ((plugin, outcome, message), lang) in outcomes(&trap).into_iter().zip(LANGS) {
        assert_eq!(
            (plugin.as_str(), outcome.as_str()),
            (format!("conformance_{lang}").as_str(), "trap"),
            "{message}"
        );
    }

    assert!(daemon.terminate().await.success());
    let out = read_ndjson(&dir.path().join("out.ndjson"));
    for lang in LANGS {
        let plugin = format!("plugin:conformance_{lang}");
        let emitted: Vec<&Value> = out
            .iter()
            .filter(|e| e["source"] == plugin.as_str() && e["name"] == "conf.Emitted")
            .collect();
        assert_eq!(emitted.len(), 1, "{lang} emitted once");
        assert_eq!(
            emitted[0]["data"],
            json!({"lang": lang, "from": emit["id"]}),
            "{lang}"
        );
        assert_eq!(emitted[0]["meta"]["parent_id"], emit["id"]);
        let seen: Vec<&Value> = out
            .iter()
            .filter(|e| e["source"] == plugin.as_str() && e["name"] == "conf.ConfigSeen")
            .collect();
        assert_eq!(seen.len(), 1, "{lang} saw its config once");
        assert_eq!(
            seen[0]["data"],
            json!({"lang": lang, "answer": 42, "nested": {"list": [1, 2]}}),
            "{lang}"
        );
    }
    assert_eq!(
        out.len(),
        2 * LANGS.len(),
        "nothing else was emitted (failed and trapped runs emit nothing)"
    );
    let log_lines = daemon.log_lines();
    for lang in LANGS {
        let text = format!("conformance {lang}");
        let plugin = format!("plugin=\"conformance_{lang}\"");
        let line = log_lines
            .iter()
            .find(|l| l.contains(&text) && l.contains(&plugin) && l.contains(log["id"].as_str().unwrap()));
        assert!(
            line.is_some(),
            "{lang}'s log line, tagged with plugin and event id, is in the daemon's log:\n{}",
            log_lines.join("\n")
        );
        assert!(
            line.unwrap().contains("INFO"),
            "{lang} logs at info: {}",
            line.unwrap()
        );
    }
}
