//! Issue 16: loading cannot stall the daemon. An oversized module is
//! refused before it is read; a slow compile runs off the paths that answer
//! reloads and shutdown and fails at its time limit; SIGHUP while starting
//! reloads once started, SIGTERM while starting does not wait.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bounds::fast_event;
use crate::fixtures;
use crate::harness::{lazy, request, run, wait_until, write_setup, Binary, TestDaemon};

/// A daemon whose start-up takes about `secs`: a plugin whose start
/// function sleeps that long (within its own timeout).
fn slow_start_setup(secs: f64) -> tempfile::TempDir {
    let toml = r#"
[plugin.slowstart]
timeout = "10s"

[[route]]
name = "all"
match = { name = "a.*" }
handlers = ["quick"]
"#;
    let ns = (secs * 1e9) as u64;
    write_setup(
        "",
        toml,
        &[
            ("slowstart", fixtures::sleeper(ns, 0, true, false)),
            ("quick", fixtures::logger()),
        ],
    )
}

async fn readyz(addr: std::net::SocketAddr) -> (u16, Value) {
    let r = request(addr, "GET", "/readyz", &[], Vec::new()).await;
    (r.status.as_u16(), r.body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_while_starting_reloads_once_started_instead_of_killing_the_daemon() {
    let dir = slow_start_setup(2.0);
    let mut daemon = Binary::start_early(&dir.path().join("router.toml"));
    let (status, body) = readyz(daemon.addr).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (503, Some("starting")),
        "{body}"
    );
    daemon.signal("HUP");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        daemon.child.try_wait().unwrap().is_none(),
        "SIGHUP ended the daemon"
    );
    wait_until(
        "the daemon to become ready",
        Duration::from_secs(30),
        async || {
            let (status, body) = readyz(daemon.addr).await;
            if status != 200 {
                assert_eq!(body["status"], "starting", "{body}");
            }
            status == 200
        },
    )
    .await;
    // The reload asked for while starting runs once started.
    let stats = std::cell::RefCell::new(Value::Null);
    let what = lazy(|| format!("the reload to run: {}", stats.borrow()));
    wait_until(what, Duration::from_secs(30), async || {
        let now = request(daemon.addr, "GET", "/v1/stats", &[], Vec::new())
            .await
            .body;
        let reloaded = now["reloads"] == 1;
        *stats.borrow_mut() = now;
        reloaded
    })
    .await;
    let status = daemon.terminate().await;
    assert!(status.success(), "{status:?}");
    assert!(daemon.log_lines().iter().any(|l| l.contains("SIGHUP received")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_while_starting_does_not_wait_for_loading() {
    let dir = slow_start_setup(8.0);
    let mut daemon = Binary::start_early(&dir.path().join("router.toml"));
    assert_eq!(readyz(daemon.addr).await.1["status"], "starting");
    let t = Instant::now();
    let status = daemon.terminate().await;
    assert!(status.success(), "{status:?}");
    assert!(
        t.elapsed() < Duration::from_secs(4),
        "SIGTERM waited {:?}",
        t.elapsed()
    );
}

/// Puts `bytes` into the daemon's plugins folder as `<name>.wasm`, whole
/// (written aside, renamed in).
fn drop_plugin(dir: &std::path::Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!("{name}.part"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join("plugins").join(format!("{name}.wasm"))).unwrap();
}

const FAST_ROUTE: &str = r#"
[[route]]
name = "fast"
match = { name = "fast.*" }
handlers = ["quick"]
"#;

/// The 200,000-function module against the default size limit: refused at
/// once, before it is read, with the plugin and the limit named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200k_function_module_over_the_default_size_limit_is_refused_at_once() {
    let big = fixtures::many_functions(200_000);
    assert!(big.len() > 8 << 20, "{} bytes", big.len());
    let mut d = TestDaemon::start(FAST_ROUTE, &[("quick", fixtures::logger())]).await;
    drop_plugin(d.dir.path(), "big", &big);
    let t = Instant::now();
    let r = d.post("/v1/reload", None, "").await;
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "reload took {:?}",
        t.elapsed()
    );
    let error = r.body["failed"]["big"].as_str().unwrap_or_default().to_string();
    assert!(
        error.starts_with("plugin \"big\" (")
            && error.ends_with(&format!(
                "file of {} bytes is over the limit of 8388608 bytes ([plugins] max_file_size)",
                big.len()
            )),
        "{}",
        r.body
    );
    assert!(fast_event(d.addr).await < Duration::from_secs(2));
    d.shutdown().await;
}

/// Within a raised size limit, the same module compiles off the reload
/// path: reloads answer `compiling` at once, events keep flowing, the
/// compile fails at `compile_timeout`, and SIGTERM does not wait for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_200k_function_module_compiles_off_the_reload_and_shutdown_paths_within_its_time_limit() {
    let big = fixtures::many_functions(200_000);
    let dir = write_setup("workers = 2", FAST_ROUTE, &[("quick", fixtures::logger())]);
    let cfg = dir.path().join("router.toml");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(
        "[plugins]\n",
        "[plugins]\nmax_file_size = \"16MiB\"\ncompile_timeout = \"3s\"\n",
    );
    std::fs::write(&cfg, text).unwrap();
    let mut daemon = Binary::start(&cfg);
    let addr = daemon.addr;
    let rss_before = daemon.peak_rss_kib();
    let dropped = Instant::now();
    drop_plugin(dir.path(), "big", &big);
    // Past the settle time, so that this reload takes the file as written.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let t = Instant::now();
    let r = request(addr, "POST", "/v1/reload", &[], Vec::new()).await;
    let reload = t.elapsed();
    assert!(
        reload < Duration::from_secs(5),
        "a reload waited {reload:?} for a compile"
    );
    let compiling = r.body["compiling"]["big"].is_string();
    let over_time = r.body["failed"]["big"]
        .as_str()
        .is_some_and(|e| e.contains("compile_timeout"));
    assert!(compiling || over_time, "{}", r.body);

    // Events flow meanwhile, until the compile is over its time limit and
    // the plugin is listed with the error naming it.
    let mut slowest = Duration::ZERO;
    let big_listed = std::cell::RefCell::new(None::<Value>);
    let what = lazy(|| format!("an outcome for \"big\": {:?}", big_listed.borrow()));
    let within = Duration::from_secs(20).saturating_sub(dropped.elapsed());
    wait_until(what, within, async || {
        slowest = slowest.max(fast_event(addr).await);
        let listing = request(addr, "GET", "/v1/plugins", &[], Vec::new()).await.body;
        let big = listing["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "big")
            .cloned();
        let failed = big.as_ref().is_some_and(|b| b["error"].is_string());
        *big_listed.borrow_mut() = big;
        failed
    })
    .await;
    let error = big_listed.into_inner().unwrap()["error"]
        .as_str()
        .unwrap()
        .to_string();
    let failed_after = dropped.elapsed();
    assert!(
        error.contains("plugin \"big\"")
            && error.contains("did not compile within 3s ([plugins] compile_timeout)"),
        "{error}"
    );
    assert!(
        failed_after < Duration::from_secs(10),
        "failed after {failed_after:?}"
    );
    assert!(
        slowest < Duration::from_secs(2),
        "a good handler waited {slowest:?}"
    );

    // The abandoned compile is still running (it takes 25 s or more); a
    // reload and SIGTERM do not wait for it.
    let t = Instant::now();
    let r = request(addr, "POST", "/v1/reload", &[], Vec::new()).await;
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert!(r.body["failed"]["big"]
        .as_str()
        .unwrap()
        .contains("compile_timeout"));
    let peak = daemon.peak_rss_kib();
    let t = Instant::now();
    let status = daemon.terminate().await;
    let stop = t.elapsed();
    eprintln!(
        "200k functions ({} bytes): reload answered in {reload:?}, failed after {failed_after:?}, \
         slowest good event {slowest:?}, SIGTERM took {stop:?}, peak RSS {peak} KiB (before: {rss_before} KiB)",
        big.len()
    );
    assert!(status.success(), "{status:?}");
    assert!(stop < Duration::from_secs(5), "SIGTERM waited {stop:?}");
    assert!(peak < 1 << 20, "peak RSS {peak} KiB, over 1 GiB");
}

#[tokio::test]
async fn check_names_the_plugin_over_the_size_limit() {
    let dir = write_setup("", FAST_ROUTE, &[("quick", fixtures::logger())]);
    let cfg = dir.path().join("router.toml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("[plugins]\n", "[plugins]\nmax_file_size = \"100B\"\n");
    std::fs::write(&cfg, text).unwrap();
    let out = run(crate::harness::switchyard(["check", "--config"]).arg(&cfg)).await;
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("plugin \"quick\" (")
            && err.contains("bytes is over the limit of 100 bytes ([plugins] max_file_size)"),
        "{err}"
    );
}

/// Issue 16's fairness finding, in small: slow big modules (one body of
/// 2.8 MB each, about 3 s of compile each on an idle machine) and a
/// compile_timeout of 1 s. Before, the plugins after them in name order
/// waited for a compile slot until an abandoned compile ended, and were
/// then queued behind the next big ones in name order.
const BIG_REPS: usize = 200_000;
const BIGS: u32 = 4;

const FAIR_ROUTES: &str = r#"
[[route]]
name = "fast"
match = { name = "fast.*" }
handlers = ["zz_fast"]

[[route]]
name = "mid"
match = { name = "mid.*" }
handlers = ["mid"]
"#;

fn fairness_setup(plugins: &[(&str, String)]) -> tempfile::TempDir {
    let dir = write_setup("workers = 2", FAIR_ROUTES, plugins);
    let cfg = dir.path().join("router.toml");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("[plugins]\n", "[plugins]\ncompile_timeout = \"1s\"\n");
    std::fs::write(&cfg, text).unwrap();
    dir
}

fn write_bigs(dir: &std::path::Path) {
    for i in 1..=BIGS {
        let big = fixtures::one_big_body(BIG_REPS, i);
        assert!(big.len() > 1 << 20, "{} bytes", big.len());
        std::fs::write(dir.join("plugins").join(format!("big{i}.wasm")), big).unwrap();
    }
}

/// Whether an event named `name` is handled `ok` now.
async fn served(addr: std::net::SocketAddr, name: &str) -> bool {
    let json = [("content-type", "application/json")];
    let body = format!(r#"{{"name":"{name}"}}"#).into_bytes();
    let r = request(addr, "POST", "/v1/events?wait=true", &json, body).await;
    r.status == 200 && r.body.to_string().contains("\"ok\"")
}

/// Time from `t` until `name` is served, polling.
async fn serves_after(addr: std::net::SocketAddr, name: &str, t: Instant, within: Duration) -> Duration {
    let left = within.saturating_sub(t.elapsed());
    wait_until(format!("{name} to be served"), left, async || {
        served(addr, name).await
    })
    .await;
    t.elapsed()
}

/// The big plugins: none loaded (each is compiling, waiting, or failed).
async fn bigs_not_loaded(addr: std::net::SocketAddr) {
    let listing = request(addr, "GET", "/v1/plugins", &[], Vec::new()).await.body;
    for p in listing["plugins"].as_array().unwrap() {
        let name = p["name"].as_str().unwrap();
        assert!(
            !name.starts_with("big") || p["loaded_at"].is_null() || p["error"].is_string(),
            "{p}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_start_slow_big_modules_do_not_keep_a_tiny_plugin_or_a_queued_one_unloaded() {
    let dir = fairness_setup(&[
        ("zz_fast", fixtures::logger()),
        // Bigger than the big ones, so it queues behind them.
        ("mid", fixtures::padded_logger(3_000_000)),
    ]);
    write_bigs(dir.path());
    let t = Instant::now();
    let mut daemon = Binary::start_early(&dir.path().join("router.toml"));
    let fast = serves_after(daemon.addr, "fast.Go", t, Duration::from_secs(60)).await;
    bigs_not_loaded(daemon.addr).await;
    // The queued plugin is timed from its own start: it loads once a slot
    // frees, and a reload swaps it in.
    let mid = serves_after(daemon.addr, "mid.Go", t, Duration::from_secs(60)).await;
    eprintln!("start-up with {BIGS} slow modules: zz_fast served after {fast:?}, mid after {mid:?}");
    daemon.terminate().await;
    assert!(
        fast < Duration::from_secs(4),
        "zz_fast served only after {fast:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_reload_slow_big_modules_do_not_keep_a_tiny_plugin_unloaded() {
    let dir = fairness_setup(&[("quick", fixtures::logger())]);
    let mut daemon = Binary::start(&dir.path().join("router.toml"));
    // The watcher reloads as they appear, and so does a POST /v1/reload.
    let t = Instant::now();
    write_bigs(dir.path());
    let plugins = dir.path().join("plugins");
    std::fs::write(plugins.join("zz_fast.wat"), fixtures::logger()).unwrap();
    std::fs::write(plugins.join("mid.wat"), fixtures::padded_logger(3_000_000)).unwrap();
    tokio::time::sleep(Duration::from_millis(400)).await;
    let asked = Instant::now();
    let r = request(daemon.addr, "POST", "/v1/reload", &[], Vec::new()).await;
    let reload = asked.elapsed();
    assert_eq!(r.body["swapped"], true, "{}", r.body);
    let fast = serves_after(daemon.addr, "fast.Go", t, Duration::from_secs(60)).await;
    bigs_not_loaded(daemon.addr).await;
    let mid = serves_after(daemon.addr, "mid.Go", t, Duration::from_secs(60)).await;
    eprintln!(
        "reload with {BIGS} slow modules: answered in {reload:?}, zz_fast served {fast:?} after the files appeared, mid after {mid:?}"
    );
    daemon.terminate().await;
    assert!(reload < Duration::from_secs(4), "the reload took {reload:?}");
    assert!(
        fast < Duration::from_secs(4),
        "zz_fast served only after {fast:?}"
    );
}
