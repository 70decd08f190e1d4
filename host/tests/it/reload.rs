//! Hot reload: plugins and routes swap live, no event is lost or failed by a
//! swap, and a broken or half-written file is never served.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::fixtures;
use crate::harness::{lazy, wait_until, wait_until_every, TestDaemon};

const ROUTES: &str = concat!(
    r#"
[[route]]
name = "work"
match = { name = "work.*" }
handlers = ["ver"]
"#,
    seen_route!()
);

/// Version `n` of the plugin `ver`: emits `seen.v<n>`.
fn version(n: usize) -> String {
    fixtures::emitter(&format!("seen.v{n}"))
}

fn sha12(bytes: &[u8]) -> String {
    switchyard::runtime::cache::sha256_hex(bytes)[..12].to_string()
}

/// Write-then-rename, as deploy tools and editors do.
fn replace(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The sha256 prefix of the `ver` version that handled one `work.X` event,
/// or the outcome if it did not run successfully.
async fn served_by(d: &TestDaemon) -> String {
    let r = d
        .post_json("/v1/events?wait=true", &json!({"name": "work.Probe"}))
        .await;
    assert_eq!(r.status, 200);
    let h = &r.body["events"][0]["handlers"][0];
    match h["outcome"].as_str() {
        Some("ok") => h["plugin_sha256"].as_str().unwrap().to_string(),
        other => format!("{other:?}"),
    }
}

async fn wait_until_served_by(d: &TestDaemon, sha: &str, within: Duration) -> Duration {
    let t = Instant::now();
    let what = format!("version {sha} to be served");
    wait_until_every(Duration::from_millis(5), what, within, async || {
        served_by(d).await == sha
    })
    .await;
    t.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_a_plugin_100_times_while_events_flow() {
    let mut d = TestDaemon::start(ROUTES, &[("ver", version(0))]).await;
    let path = d.path("plugins/ver.wat");
    // Producers keep sending while the plugin is swapped.
    let addr = d.addr;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    let producer = tokio::spawn(async move {
        let mut ids = Vec::new();
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            let body = json!([{"name": "work.A"}, {"name": "work.B"}])
                .to_string()
                .into_bytes();
            let r = crate::harness::request(
                addr,
                "POST",
                "/v1/events",
                &[("content-type", "application/json")],
                body,
            )
            .await;
            assert_eq!(r.status, 202, "{}", r.body);
            ids.extend(
                r.body["ids"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap().to_string()),
            );
        }
        ids
    });
    let mut latencies = Vec::new();
    for n in 1..=100 {
        let wat = version(n);
        replace(&path, wat.as_bytes());
        latencies.push(wait_until_served_by(&d, &sha12(wat.as_bytes()), Duration::from_secs(5)).await);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let produced = producer.await.unwrap();
    assert!(produced.len() > 100, "events flowed during the swaps");
    d.shutdown().await;

    assert!(
        d.dead_letters().is_empty(),
        "no event failed: {:?}",
        d.dead_letters()
    );
    // Every event was handled by exactly one version: one seen.vN per event.
    let seen = d.lines("seen.ndjson");
    let mut per_parent: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for e in &seen {
        per_parent
            .entry(e["meta"]["parent_id"].as_str().unwrap().to_string())
            .or_default()
            .push(e["name"].as_str().unwrap().to_string());
    }
    for id in &produced {
        let got = per_parent.get(id).map(Vec::len).unwrap_or(0);
        assert_eq!(got, 1, "event {id} handled {got} times");
    }
    latencies.sort();
    eprintln!(
        "reload observed after: p50 {:?}, max {:?}",
        latencies[50], latencies[99]
    );
}

/// Waits until `/v1/plugins` shows a load error for `ver` containing `text`.
async fn wait_for_error(d: &TestDaemon, text: &str) -> String {
    let listing = std::sync::Mutex::new(Value::Null);
    let error = std::sync::Mutex::new(String::new());
    let what = lazy(|| format!("a load error containing {text:?}: {}", listing.lock().unwrap()));
    wait_until(what, Duration::from_secs(5), async || {
        let now = d.get("/v1/plugins").await.body;
        let e = now["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "ver")
            .and_then(|p| p["error"].as_str())
            .unwrap_or("")
            .to_string();
        *listing.lock().unwrap() = now;
        *error.lock().unwrap() = e.clone();
        e.contains(text)
    })
    .await;
    error.into_inner().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_and_half_written_files_are_never_served() {
    let v1 = wat::parse_str(version(1)).unwrap();
    let dir_toml = ROUTES;
    let mut d = TestDaemon::start(dir_toml, &[]).await;
    let path = d.path("plugins/ver.wasm");
    replace(&path, &v1);
    let v1_sha = sha12(&v1);
    wait_until_served_by(&d, &v1_sha, Duration::from_secs(5)).await;
    // Probes before v1 arrived were `unavailable`; from now on none may fail.
    let before = d.dead_letters().len();

    // Garbage, in place; then a valid module without the ABI, renamed in.
    std::fs::write(&path, b"\0asm\x01\0\0\0 this is not a module").unwrap();
    let error = wait_for_error(&d, "does not compile").await;
    assert!(error.contains("plugin \"ver\""), "{error}");
    assert_eq!(served_by(&d).await, v1_sha, "the previous version serves on");
    let listing = d.get("/v1/plugins").await.body;
    let ver = listing["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "ver")
        .unwrap()
        .clone();
    assert!(
        ver["sha256"].as_str().unwrap().starts_with(&v1_sha),
        "the listing shows the version serving"
    );

    replace(
        &path,
        &wat::parse_str("(module (memory (export \"memory\") 1))").unwrap(),
    );
    wait_for_error(&d, "exports neither").await;
    assert_eq!(served_by(&d).await, v1_sha);
    let r = d.post("/v1/reload", None, "").await;
    assert_eq!(r.status, 422, "a reload reports the failing plugin: {}", r.body);
    assert!(
        r.body["failed"]["ver"]
            .as_str()
            .unwrap()
            .contains("exports neither"),
        "{}",
        r.body
    );

    // A large module written in place in 4 KiB chunks with pauses, with
    // reloads asked for in the middle: only the finished file is served.
    let big_wat = fixtures::handler(
        &format!(
            r#"(data (i32.const 0) "{{\"name\":\"seen.big\"}}") (data (i32.const 2048) "{}")"#,
            "x".repeat(200_000)
        ),
        "(drop (call $emit (i32.const 0) (i32.const 19))) (i32.const 0)",
        "",
    )
    .replace("(memory (export \"memory\") 1)", "(memory (export \"memory\") 5)");
    let big = wat::parse_str(big_wat).unwrap();
    assert!(big.len() > 150_000);
    let big_sha = sha12(&big);
    {
        let mut f = std::fs::File::create(&path).unwrap();
        for (i, chunk) in big.chunks(4096).enumerate() {
            f.write_all(chunk).unwrap();
            f.flush().unwrap();
            std::thread::sleep(Duration::from_millis(2));
            if i % 10 == 5 {
                let r = d.post("/v1/reload", None, "").await;
                assert!(r.status == 200 || r.status == 422, "{}", r.body);
                let by = served_by(&d).await;
                assert_eq!(by, v1_sha, "chunk {i}: a half-written file must never serve");
            }
        }
    }
    wait_until_served_by(&d, &big_sha, Duration::from_secs(5)).await;
    d.shutdown().await;
    let letters = d.dead_letters();
    assert_eq!(
        letters.len(),
        before,
        "no event failed or was unavailable: {:?}",
        &letters[before..]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_recreate_late_plugin_and_config_edits() {
    let toml = r#"
[[route]]
name = "work"
match = { name = "work.*" }
handlers = ["ver", "later"]
"#;
    let mut d = TestDaemon::start(toml, &[("ver", version(1))]).await;
    let outcomes = |r: &Value| -> Vec<String> {
        r["events"][0]["handlers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["outcome"].as_str().unwrap().to_string())
            .collect()
    };
    let post = |d: &TestDaemon| {
        let d = d.addr;
        async move {
            let body = json!({"name": "work.X"}).to_string().into_bytes();
            crate::harness::request(
                d,
                "POST",
                "/v1/events?wait=true",
                &[("content-type", "application/json")],
                body,
            )
            .await
            .body
        }
    };
    assert_eq!(
        outcomes(&post(&d).await),
        ["ok", "unavailable"],
        "a route may wait for a plugin"
    );
    let listing = d.get("/v1/plugins").await.body;
    assert_eq!(
        listing["unavailable"],
        json!([{"route": "work", "plugin": "later"}])
    );

    // The plugin the route was waiting for arrives.
    replace(&d.path("plugins/later.wat"), fixtures::logger().as_bytes());
    wait_until(
        "the new plugin to be picked up",
        Duration::from_secs(5),
        async || outcomes(&post(&d).await) == ["ok", "ok"],
    )
    .await;
    // Deleted: unavailable again; re-created: served again.
    std::fs::remove_file(d.path("plugins/ver.wat")).unwrap();
    wait_until(
        "the deleted plugin to be unloaded",
        Duration::from_secs(5),
        async || outcomes(&post(&d).await) == ["unavailable", "ok"],
    )
    .await;
    replace(&d.path("plugins/ver.wat"), version(2).as_bytes());
    wait_until(
        "the re-created plugin to be loaded",
        Duration::from_secs(5),
        async || outcomes(&post(&d).await) == ["ok", "ok"],
    )
    .await;

    // An invalid config edit keeps the old config serving, with every error reported.
    let cfg = d.path("router.toml");
    let good = std::fs::read_to_string(&cfg).unwrap();
    replace(
        &cfg,
        good.replace(
            "handlers = [\"ver\", \"later\"]",
            "handlers = [\"ver\"]\nbogus = 1\nmatch = 3",
        )
        .as_bytes(),
    );
    let r = d.post("/v1/reload", None, "").await;
    assert_eq!(r.status, 422);
    let errors = r.body["config_errors"].as_array().unwrap();
    assert!(errors[0].as_str().unwrap().contains("router.toml:"), "{errors:?}");
    assert_eq!(
        outcomes(&post(&d).await),
        ["ok", "ok"],
        "the old routes still serve"
    );
    // A valid edit applies: now only `ver` runs.
    replace(
        &cfg,
        good.replace("handlers = [\"ver\", \"later\"]", "handlers = [\"ver\"]")
            .as_bytes(),
    );
    wait_until(
        "the valid config to be applied",
        Duration::from_secs(5),
        async || outcomes(&post(&d).await) == ["ok"],
    )
    .await;
    let stats = d.get("/v1/stats").await.body;
    assert!(stats["reloads"].as_u64().unwrap() >= 5, "{stats}");
    assert!(stats["reload_failures"].as_u64().unwrap() >= 1, "{stats}");
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_start_reads_compiled_modules_from_the_cache() {
    let plugins: Vec<(&str, String)> = (0..3).map(|i| (["a", "b", "c"][i], version(i))).collect();
    let first = TestDaemon::start(
        ROUTES.replace("\"ver\"", "\"a\", \"b\", \"c\"").as_str(),
        &plugins,
    )
    .await;
    let s = first.get("/v1/stats").await.body;
    assert_eq!(
        (s["plugins_compiled"].as_u64(), s["plugins_from_cache"].as_u64()),
        (Some(3), Some(0))
    );
    let second = TestDaemon::start_in(first.stop().await).await;
    let s = second.get("/v1/stats").await.body;
    assert_eq!(
        (s["plugins_compiled"].as_u64(), s["plugins_from_cache"].as_u64()),
        (Some(0), Some(3)),
        "{s}"
    );
    let dir = second.stop().await;

    // A corrupt entry is detected and rebuilt, never trusted.
    let cache = dir.path().join("data/compiled");
    let entry = std::fs::read_dir(&cache).unwrap().next().unwrap().unwrap().path();
    let mut bytes = std::fs::read(&entry).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0x5a;
    std::fs::write(&entry, &bytes).unwrap();
    let mut third = TestDaemon::start_in(dir).await;
    let s = third.get("/v1/stats").await.body;
    assert_eq!(
        (s["plugins_compiled"].as_u64(), s["plugins_from_cache"].as_u64()),
        (Some(1), Some(2)),
        "{s}"
    );
    let r = third
        .post(
            "/v1/events?wait=true",
            Some("application/json"),
            r#"{"name":"work.X"}"#,
        )
        .await;
    let outcomes: Vec<&str> = r.body["events"][0]["handlers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["ok", "ok", "ok"]);
    third.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_and_the_daemon_keeps_serving() {
    let dir = crate::harness::write_setup("", ROUTES, &[("ver", version(1))]);
    let mut daemon = crate::harness::Binary::start(&dir.path().join("router.toml"));
    let stats = |addr| async move {
        crate::harness::request(addr, "GET", "/v1/stats", &[], Vec::new())
            .await
            .body
    };
    let before = stats(daemon.addr).await["reloads"].as_u64().unwrap();
    daemon.signal("HUP");
    wait_until("SIGHUP to reload", Duration::from_secs(5), async || {
        stats(daemon.addr).await["reloads"].as_u64().unwrap() != before
    })
    .await;
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "SIGHUP must not end the daemon"
    );
    assert!(daemon
        .log_lines()
        .iter()
        .any(|l| l.contains("SIGHUP received: reloading")));
    assert!(daemon.terminate().await.success());
}

/// Issue 11: a reload names every changed setting it cannot apply (one diff
/// of the old and the new config, not a hand-kept list) and applies the
/// rest: here a route's handler changes with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_names_each_setting_that_takes_a_restart() {
    let dir = crate::harness::write_setup(
        "workers = 2",
        ROUTES,
        &[("ver", version(1)), ("other", version(2))],
    );
    let cfg = dir.path().join("router.toml");
    let mut daemon = crate::harness::Binary::start(&cfg);
    let text = std::fs::read_to_string(&cfg).unwrap();
    let changed = text
        .replace("workers = 2", "workers = 3")
        .replace("handlers = [\"ver\"]", "handlers = [\"other\"]")
        + "\n[stream]\nbuffer = 77\n";
    std::fs::write(&cfg, changed).unwrap();
    let r = crate::harness::request(daemon.addr, "POST", "/v1/reload", &[], Vec::new()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let restart_lines = || {
        daemon
            .log_lines()
            .into_iter()
            .filter(|l| l.contains("takes effect at the next restart"))
            .count()
    };
    crate::harness::wait_until(
        "two restart-only warnings in the log",
        Duration::from_secs(10),
        async || restart_lines() >= 2,
    )
    .await;
    let restart_only: Vec<String> = daemon
        .log_lines()
        .into_iter()
        .filter(|l| l.contains("takes effect at the next restart"))
        .collect();
    for setting in ["server.workers", "stream.buffer"] {
        assert!(
            restart_only.iter().any(|l| l.contains(setting)),
            "no restart warning names {setting}: {restart_only:?}"
        );
    }
    assert_eq!(
        restart_only.len(),
        2,
        "only the two changed settings: {restart_only:?}"
    );
    let both = json!(["server.workers", "stream.buffer"]);
    assert_eq!(r.body["restart_only"], both, "{}", r.body);
    // Told against the config the daemon started with: a second reload
    // with nothing new still names them, since they are still not applied.
    let again = crate::harness::request(daemon.addr, "POST", "/v1/reload", &[], Vec::new()).await;
    assert_eq!(again.body["restart_only"], both, "{}", again.body);
    let r = crate::harness::request(
        daemon.addr,
        "POST",
        "/v1/events?wait=true",
        &[("content-type", "application/json")],
        br#"{"name": "work.a"}"#.to_vec(),
    )
    .await;
    assert_eq!(
        r.body["events"][0]["handlers"][0]["plugin"], "other",
        "{}",
        r.body
    );
    assert!(daemon.terminate().await.success());
}
