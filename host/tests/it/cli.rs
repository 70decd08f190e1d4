//! The `check` and `plugin run` commands, as a user runs them.

use serde_json::Value;

use crate::fixtures;
use crate::harness::{run, switchyard, write_setup};

#[tokio::test]
async fn check_prints_every_problem_and_fails() {
    let toml = r#"
[[route]]
name = "a"
match = { name = "x.[" }
handlers = ["good", "nope"]

[[route]]
name = "b"
handlers = ["broken"]
"#;
    let dir = write_setup(
        "",
        toml,
        &[("good", fixtures::logger()), ("broken", "(module)".into())],
    );
    let cfg = dir.path().join("router.toml");
    let out = run(&mut switchyard(["check", "--config", cfg.to_str().unwrap()])).await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(lines[0].ends_with("router.toml:14:18: route \"a\": match.name: invalid glob \"x.[\": unclosed character class; missing ']'"), "{err}");
    assert!(
        lines[1].contains("router.toml:15:21: route \"a\": handlers: unknown plugin \"nope\""),
        "{err}"
    );
    assert_eq!(lines[2], "2 problem(s) found");

    // Fix the config: now the broken plugin is the one problem.
    let fixed = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("x.[", "x.*")
        .replace(", \"nope\"", "");
    std::fs::write(&cfg, fixed).unwrap();
    let out = run(&mut switchyard(["check", "--config", cfg.to_str().unwrap()])).await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("plugin \"broken\""), "{err}");
    assert!(
        err.contains(
            "exports neither `switchyard_handle` (a handler plugin) nor `_start` (a command plugin)"
        ),
        "{err}"
    );
    assert!(
        err.contains("plugin \"broken\" is a handler of route(s) b: its events would go to dead letters as `unavailable`"),
        "{err}"
    );

    std::fs::remove_file(dir.path().join("plugins/broken.wat")).unwrap();
    let cfg_text = std::fs::read_to_string(&cfg).unwrap();
    let without_b = &cfg_text[..cfg_text.find("[[route]]\nname = \"b\"").unwrap()];
    std::fs::write(&cfg, without_b).unwrap();
    let out = run(&mut switchyard(["check", "--config", cfg.to_str().unwrap()])).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("ok: 1 routes, 1 plugins (good), 0 sinks"));
}

/// `check` loads plugins as the daemon does, but compiles them without
/// its cache: it writes nothing to the daemon's `[state] dir`.
#[tokio::test]
async fn check_leaves_the_state_dir_alone() {
    let dir = write_setup(
        "",
        "[[route]]\nname = \"a\"\nhandlers = [\"good\"]\n",
        &[("good", fixtures::logger())],
    );
    let cfg = dir.path().join("router.toml");
    let out = run(&mut switchyard(["check", "--config", cfg.to_str().unwrap()])).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8(out.stdout)
        .unwrap()
        .contains("ok: 1 routes, 1 plugins (good), 0 sinks"));
    assert!(!dir.path().join("data").exists(), "check wrote to the state dir");
}

#[tokio::test]
async fn plugin_run_reports_outcome_emits_logs_and_exit_code() {
    let dir = tempfile::tempdir().unwrap();
    let ok = dir.path().join("hello.wat");
    std::fs::write(&ok, fixtures::emitter("hello.Said")).unwrap();
    let ev = dir.path().join("event.json");
    std::fs::write(&ev, r#"{"name": "greet.Please", "data": {"who": "world"}}"#).unwrap();
    let out = run(&mut switchyard([
        "plugin",
        "run",
        ok.to_str().unwrap(),
        "--event",
        ev.to_str().unwrap(),
    ]))
    .await;
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("outcome  ok"), "{text}");
    assert!(text.contains("emitted  1\n  {\"name\":\"hello.Said\""), "{text}");

    let out = run(&mut switchyard([
        "plugin",
        "run",
        ok.to_str().unwrap(),
        "--event",
        ev.to_str().unwrap(),
        "--json",
    ]))
    .await;
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["outcome"], "ok");
    assert!(v["fuel_used"].as_u64().unwrap() > 0);

    let looping = dir.path().join("spin.wat");
    std::fs::write(&looping, fixtures::endless_loop()).unwrap();
    let out = run(&mut switchyard([
        "plugin",
        "run",
        looping.to_str().unwrap(),
        "--event",
        ev.to_str().unwrap(),
        "--fuel",
        "5000",
        "--json",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(1));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["outcome"], "out_of_fuel");
    assert_eq!(v["fuel_used"], 5000);
}
