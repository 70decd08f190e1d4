//! A handler that traps, loops, hogs memory, recurses, breaks the ABI or
//! returns an error fails alone: the other handlers still run, in order, and
//! each failure is one dead letter with the right kind.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::fixtures;
use crate::harness::TestDaemon;

const ROUTES: &str = concat!(
    r#"
[plugin.mem]
memory = "1MiB"

[plugin.spin]
fuel = 1_000_000_000_000
timeout = "30ms"

[[route]]
name = "everything"
match = { name = "orders.*" }
handlers = ["first", "trap", "fuel", "spin", "mem", "stack", "fail", "badptr", "last"]
"#,
    seen_route!()
);

fn plugins() -> Vec<(&'static str, String)> {
    vec![
        ("first", fixtures::emitter("seen.first")),
        ("trap", fixtures::trap()),
        ("fuel", fixtures::endless_loop()),
        ("spin", fixtures::endless_loop()),
        ("mem", fixtures::memory_hog()),
        ("stack", fixtures::deep_recursion()),
        ("fail", fixtures::failing()),
        ("badptr", fixtures::bad_pointer()),
        ("last", fixtures::emitter("seen.last")),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_failure_is_isolated_and_dead_lettered_with_its_kind() {
    let mut d = TestDaemon::start(ROUTES, &plugins()).await;
    const N: usize = 12;
    let mut ids = Vec::new();
    for i in 0..N {
        let r = d
            .post_json("/v1/events", &json!({"name": "orders.Placed", "data": {"n": i}}))
            .await;
        assert_eq!(r.status, 202, "{}", r.body);
        ids.push(r.body["ids"][0].as_str().unwrap().to_string());
    }
    // The daemon still answers at once while failing handlers are running.
    let r = d.get("/healthz").await;
    assert_eq!(r.status, 200);
    d.shutdown().await;

    let seen = d.lines("seen.ndjson");
    for who in ["seen.first", "seen.last"] {
        let mut parents: Vec<String> = seen
            .iter()
            .filter(|e| e["name"] == who)
            .map(|e| e["meta"]["parent_id"].as_str().unwrap().to_string())
            .collect();
        parents.sort();
        let mut want = ids.clone();
        want.sort();
        assert_eq!(parents, want, "{who} must see every event exactly once");
    }

    let letters = d.dead_letters();
    let mut by_plugin: BTreeMap<String, Vec<&Value>> = BTreeMap::new();
    for l in &letters {
        by_plugin
            .entry(l["plugin"].as_str().unwrap().to_string())
            .or_default()
            .push(l);
    }
    let expected = [
        ("trap", "trap"),
        ("fuel", "out_of_fuel"),
        ("spin", "timeout"),
        ("mem", "memory_limit"),
        ("stack", "stack_overflow"),
        ("fail", "handler_error"),
        ("badptr", "bad_abi"),
    ];
    assert_eq!(
        letters.len(),
        N * expected.len(),
        "one dead letter per failure: {letters:#?}"
    );
    for (plugin, kind) in expected {
        let got = &by_plugin[plugin];
        assert_eq!(got.len(), N, "{plugin}");
        for l in got {
            assert_eq!(l["kind"], kind, "{plugin}: {l}");
            assert_eq!(l["route"], "everything");
            assert_eq!(l["event"]["name"], "orders.Placed");
            assert!(ids.contains(&l["event"]["id"].as_str().unwrap().to_string()));
            assert!(l["time"].is_string());
            assert!(!l["message"].as_str().unwrap().is_empty());
        }
    }
    assert_eq!(by_plugin["fail"][0]["message"], fixtures::FAIL_MESSAGE);
    assert!(by_plugin["badptr"][0]["message"]
        .as_str()
        .unwrap()
        .contains("log: range of 100 bytes at 0xfffffff0 is outside linear memory"));
    assert!(by_plugin["mem"][0]["message"]
        .as_str()
        .unwrap()
        .contains("over the cap of 1048576 bytes"));
    assert!(by_plugin["spin"][0]["message"]
        .as_str()
        .unwrap()
        .contains("deadline of 30ms passed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_true_reports_each_handler_outcome_in_order() {
    let mut d = TestDaemon::start(ROUTES, &plugins()).await;
    let r = d
        .post_json("/v1/events?wait=true", &json!({"name": "orders.Placed"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ev = &r.body["events"][0];
    assert_eq!(ev["routes"], json!(["everything"]));
    let outcomes: Vec<(&str, &str)> = ev["handlers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["event"] == ev["id"])
        .map(|h| (h["plugin"].as_str().unwrap(), h["outcome"].as_str().unwrap()))
        .collect();
    assert_eq!(
        outcomes,
        [
            ("first", "ok"),
            ("trap", "trap"),
            ("fuel", "out_of_fuel"),
            ("spin", "timeout"),
            ("mem", "memory_limit"),
            ("stack", "stack_overflow"),
            ("fail", "handler_error"),
            ("badptr", "bad_abi"),
            ("last", "ok"),
        ]
    );
    let fail = ev["handlers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["plugin"] == "fail")
        .unwrap();
    assert_eq!(fail["message"], fixtures::FAIL_MESSAGE);
    assert_eq!(ev["emitted"].as_array().unwrap().len(), 2);
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_emits_are_discarded_and_unloadable_plugins_are_unavailable() {
    let emit_then_trap = fixtures::handler(
        r#"(data (i32.const 0) "{\"name\":\"seen.ghost\"}")"#,
        "(drop (call $emit (i32.const 0) (i32.const 21))) unreachable",
        "",
    );
    let routes = concat!(
        r#"
[[route]]
name = "r"
match = { name = "orders.*" }
handlers = ["ghost", "broken", "last"]
"#,
        seen_route!()
    );
    let plugins = [
        ("ghost", emit_then_trap),
        (
            "broken",
            "(module (func (export \"nothing_useful\")))".to_string(),
        ),
        ("last", fixtures::emitter("seen.last")),
    ];
    let mut d = TestDaemon::start(routes, &plugins).await;
    let r = d
        .post_json("/v1/events?wait=true", &json!({"name": "orders.Placed"}))
        .await;
    assert_eq!(r.status, 200);
    let outcomes: Vec<&str> = r.body["events"][0]["handlers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["trap", "unavailable", "ok"]);
    d.shutdown().await;
    let seen = d.lines("seen.ndjson");
    assert_eq!(
        seen.len(),
        1,
        "the trapped invocation's emit is discarded: {seen:?}"
    );
    assert_eq!(seen[0]["name"], "seen.last");
    let letters = d.dead_letters();
    assert_eq!(letters.len(), 2);
    assert_eq!(
        (letters[0]["plugin"].as_str(), letters[0]["kind"].as_str()),
        (Some("ghost"), Some("trap"))
    );
    assert_eq!(letters[1]["kind"], "unavailable");
    let msg = letters[1]["message"].as_str().unwrap();
    assert!(
        msg.contains("plugin \"broken\" is not loaded")
            && msg.contains("exports neither `switchyard_handle`"),
        "{msg}"
    );
}

/// With `instance = "reuse"` one instance serves event after event (its
/// global counts them), and a trap discards it: the count starts again, so
/// the trap recurs every third event and never carries over. With
/// `instance = "fresh"` no call sees another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_instance_is_discarded_after_a_trap() {
    for (mode, expected) in [
        ("reuse", ["ok", "ok", "trap", "ok", "ok", "trap", "ok"]),
        ("fresh", ["ok"; 7]),
    ] {
        let toml = format!(
            r#"
[plugin.count]
instance = "{mode}"

[[route]]
name = "count"
handlers = ["count"]
"#
        );
        let plugins = [("count", fixtures::third_call_traps())];
        let mut d = TestDaemon::start_with(&toml, &plugins, "workers = 1").await;
        let mut outcomes = Vec::new();
        for i in 0..expected.len() {
            let r = d
                .post_json(
                    "/v1/events?wait=true",
                    &json!({"name": "orders.Placed", "data": {"n": i}}),
                )
                .await;
            assert_eq!(r.status, 200, "{}", r.body);
            outcomes.push(
                r.body["events"][0]["handlers"][0]["outcome"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            );
        }
        assert_eq!(outcomes, expected, "instance = {mode:?}");
        let listing = d.get("/v1/plugins").await.body;
        assert_eq!(listing["plugins"][0]["instance"], mode);
        assert_eq!(
            d.dead_letters().len(),
            expected.iter().filter(|o| **o == "trap").count()
        );
        d.shutdown().await;
    }
}
