//! Component plugins through the daemon, with the JavaScript components
//! plugins/build.sh builds: listed as `component`, swapped by hot reload,
//! read back from the compiled-module cache on the next start.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{write_setup, TestDaemon};

fn built(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins/dist")
        .join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: build the example plugins first (plugins/install-toolchains.sh && plugins/build.sh js)",
        path.display()
    );
    path
}

const TOML: &str = r#"
[plugin.c]
config = { error_from = 500, emit = "web.ServerError" }

[[route]]
name = "all"
match = { source = "http" }
handlers = ["c"]
"#;

/// Write-then-rename, as deploy tools do.
fn replace(path: &Path, from: &Path) {
    let tmp = path.with_extension("tmp");
    std::fs::copy(from, &tmp).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The handler report of one `web.Request` with `status`.
async fn handled(d: &TestDaemon, status: u16) -> Value {
    let event = json!({"name": "web.Request", "data": {"status": status, "path": "/x"}});
    let r = d.post_json("/v1/events?wait=true", &event).await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["events"][0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_component_is_listed_swapped_live_and_cached() {
    let dir = write_setup("", TOML, &[]);
    let path = dir.path().join("plugins/c.wasm");
    std::fs::copy(built("conformance_js"), &path).unwrap();
    let d = TestDaemon::start_in(dir).await;
    let listed = d.get("/v1/plugins").await.body;
    assert_eq!(listed["plugins"][0]["kind"], "component", "{listed}");
    let first = handled(&d, 503).await;
    assert_eq!(first["handlers"][0]["outcome"], "ok", "{first}");
    assert_eq!(first["emitted"], json!([]), "conformance_js emits nothing for it");

    // Swapped for another component: its configure accepts the config, and
    // a server error now raises web.ServerError.
    replace(&path, &built("status_class"));
    let r = d.request("POST", "/v1/reload", &[], Vec::new()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let t = Instant::now();
    loop {
        let report = handled(&d, 503).await;
        if report["emitted"].as_array().is_some_and(|e| e.len() == 1) {
            assert_eq!(report["handlers"][0]["outcome"], "ok", "{report}");
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(30), "not swapped: {report}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = d.get("/v1/stats").await.body;
    assert_eq!(s["plugins_compiled"].as_u64(), Some(2), "{s}");

    let again = TestDaemon::start_in(d.stop().await).await;
    let s = again.get("/v1/stats").await.body;
    assert_eq!(
        (s["plugins_compiled"].as_u64(), s["plugins_from_cache"].as_u64()),
        (Some(0), Some(1)),
        "{s}"
    );
    assert_eq!(handled(&again, 200).await["handlers"][0]["outcome"], "ok");
    again.stop().await;
}
