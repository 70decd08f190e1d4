//! Routing through the real daemon: emit chains and the hop limit,
//! `require`, version ranges, `final`.

use serde_json::json;

use crate::fixtures;
use crate::harness::TestDaemon;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emit_chain_carries_causation_and_stops_at_the_hop_limit() {
    let toml = r#"
[router]
hop_limit = 3

[[route]]
name = "start"
match = { name = "chain.Start" }
handlers = ["to_ping"]

[[route]]
name = "ping"
match = { name = "chain.Ping" }
handlers = ["ping"]
sinks = ["out"]

[sink.out]
type = "file"
path = "out.ndjson"
"#;
    let plugins = [
        ("to_ping", fixtures::emitter("chain.Ping")),
        ("ping", fixtures::emitter("chain.Ping")),
    ];
    let mut d = TestDaemon::start(toml, &plugins).await;
    let r = d
        .post_json(
            "/v1/events?wait=true",
            &json!({"id": "root", "name": "chain.Start"}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["events"][0]["emitted"].as_array().unwrap().len(), 3);
    d.shutdown().await;
    let out = d.lines("out.ndjson");
    let hops: Vec<u64> = out.iter().map(|e| e["meta"]["hops"].as_u64().unwrap()).collect();
    assert_eq!(hops, [1, 2, 3]);
    for (i, e) in out.iter().enumerate() {
        assert_eq!(e["meta"]["root_id"], "root");
        assert_eq!(e["meta"]["trail"].as_array().unwrap().len(), i + 1);
    }
    assert_eq!(out[0]["source"], "plugin:to_ping");
    assert_eq!(out[0]["meta"]["parent_id"], "root");
    assert_eq!(out[0]["meta"]["trail"], json!(["chain.Start@root"]));
    assert_eq!(out[1]["meta"]["parent_id"], out[0]["id"]);
    assert_eq!(out[2]["source"], "plugin:ping");
    let letters = d.dead_letters();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["kind"], "hop_limit");
    assert_eq!(letters[0]["plugin"], "ping");
    assert_eq!(letters[0]["event"]["meta"]["hops"], 4);
    assert_eq!(
        letters[0]["message"],
        "emitted 4 hops from the root event, over the hop limit of 3"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_missing_keys_dead_letters_without_running_handlers() {
    let toml = r#"
[[route]]
name = "clicks"
match = { name = "deals.*Click" }
require = ["deal_id", "user_id"]
handlers = ["mark"]
sinks = ["out"]

[[route]]
name = "marks"
match = { name = "seen.*" }
sinks = ["out"]

[sink.out]
type = "file"
path = "out.ndjson"
"#;
    let mut d = TestDaemon::start(toml, &[("mark", fixtures::emitter("seen.mark"))]).await;
    d.post_json(
        "/v1/events?wait=true",
        &json!({"name": "deals.DealClick", "data": {"deal_id": 7}}),
    )
    .await;
    d.post_json(
        "/v1/events?wait=true",
        &json!({"name": "deals.DealClick", "data": {"deal_id": 7, "user_id": 42}}),
    )
    .await;
    d.shutdown().await;
    let names: Vec<String> = d
        .lines("out.ndjson")
        .iter()
        .map(|e| e["name"].as_str().unwrap().into())
        .collect();
    assert_eq!(
        names,
        ["deals.DealClick", "seen.mark"],
        "only the complete event reached the sink and ran the handler (whose emit follows its parent)"
    );
    let letters = d.dead_letters();
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["kind"], "missing_keys");
    assert_eq!(letters[0]["route"], "clicks");
    assert_eq!(letters[0]["plugin"], json!(null));
    assert_eq!(letters[0]["message"], "missing required data keys: user_id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn version_ranges_final_and_sink_dedup() {
    let toml = r#"
[[route]]
name = "v1"
match = { name = "deals.*", version = "<2.0" }
sinks = ["old"]

[[route]]
name = "v2"
match = { name = "deals.*", version = ">=2.0" }
sinks = ["new"]
final = true

[[route]]
name = "everything"
sinks = ["all", "old"]

[sink.old]
type = "file"
path = "old.ndjson"

[sink.new]
type = "file"
path = "new.ndjson"

[sink.all]
type = "file"
path = "all.ndjson"
"#;
    let mut d = TestDaemon::start(toml, &[]).await;
    for (id, v) in [("a", Some("1.9")), ("b", Some("2.0")), ("c", None)] {
        let mut ev = json!({"id": id, "name": "deals.Click"});
        if let Some(v) = v {
            ev["version"] = json!(v);
        }
        let r = d.post_json("/v1/events?wait=true", &ev).await;
        assert_eq!(r.status, 200);
    }
    d.shutdown().await;
    let ids = |f: &str| {
        d.lines(f)
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        ids("old.ndjson"),
        ["a", "c"],
        "a matched v1 and everything but is written to `old` once"
    );
    assert_eq!(ids("new.ndjson"), ["b"]);
    assert_eq!(ids("all.ndjson"), ["a", "c"], "b stopped at the final route");
}
