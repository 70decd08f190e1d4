//! Who may call what, and where: bearer tokens for ingest and admin, the
//! separate admin listener, and readiness before and after loading.

use serde_json::{json, Value};

use crate::fixtures;
use crate::harness::{request, write_setup, TestDaemon};
use crate::metrics::{parse_metrics, sample, scrape};

const ROUTE: &str = "[[route]]\nname = \"all\"\nhandlers = [\"log\"]\n";

async fn call(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> crate::harness::Reply {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", "application/json")];
    if let Some(a) = &auth {
        headers.push(("authorization", a.as_str()));
    }
    let body = if method == "POST" {
        json!({"name": "a.B"}).to_string().into_bytes()
    } else {
        Vec::new()
    };
    request(addr, method, path, &headers, body).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_auth_everything_is_open() {
    let mut d = TestDaemon::start(ROUTE, &[("log", fixtures::logger())]).await;
    assert_eq!(call(d.addr, "POST", "/v1/events", None).await.status, 202);
    assert_eq!(call(d.addr, "GET", "/metrics", None).await.status, 200);
    assert_eq!(call(d.addr, "GET", "/v1/plugins", None).await.status, 200);
    // A token nobody asked for is ignored.
    assert_eq!(
        call(d.addr, "POST", "/v1/events", Some("anything")).await.status,
        202
    );
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_guard_ingest_and_admin_separately() {
    let toml = format!("[auth]\ningest = {{ file = \"ingest.token\" }}\nadmin = {{ file = \"secrets/admin.token\" }}\n\n{ROUTE}");
    let dir = write_setup("", &toml, &[("log", fixtures::logger())]);
    std::fs::write(dir.path().join("ingest.token"), "in-t0ken\n").unwrap();
    std::fs::create_dir(dir.path().join("secrets")).unwrap();
    std::fs::write(dir.path().join("secrets/admin.token"), "adm-t0ken").unwrap();
    let mut d = TestDaemon::start_in(dir).await;
    let a = d.addr;

    let r = call(a, "POST", "/v1/events", None).await;
    assert_eq!(r.status, 401);
    assert_eq!(
        r.body["error"],
        "missing bearer token: this endpoint needs the ingest token as `Authorization: Bearer <token>`"
    );
    assert_eq!(r.headers["www-authenticate"], "Bearer realm=\"switchyard\"");
    let r = call(a, "POST", "/v1/events", Some("in-t0ke")).await;
    assert_eq!(
        (r.status.as_u16(), r.body["error"].as_str()),
        (401, Some("wrong bearer token for ingest"))
    );
    let r = call(a, "POST", "/event/log?__event__=a.B", Some("adm-t0ken")).await;
    assert_eq!(r.status, 401, "the admin token is not an ingest token");
    let r = request(
        a,
        "POST",
        "/v1/events",
        &[("authorization", "Basic aW4tdDBrZW4=")],
        b"{\"name\":\"a.B\"}".to_vec(),
    )
    .await;
    assert_eq!(
        r.body,
        json!({"error": "malformed Authorization header: expected `Bearer <token>`"})
    );
    assert_eq!(call(a, "POST", "/v1/events", Some("in-t0ken")).await.status, 202);

    for path in ["/metrics", "/v1/stats", "/v1/plugins", "/v1/routes", "/v1/stream"] {
        let r = call(a, "GET", path, None).await;
        assert_eq!(r.status, 401, "{path}");
        assert_eq!(
            r.body["error"],
            "missing bearer token: this endpoint needs the admin token as `Authorization: Bearer <token>`"
        );
        assert_eq!(call(a, "GET", path, Some("in-t0ken")).await.status, 401, "{path}");
    }
    assert_eq!(call(a, "POST", "/v1/replay", Some("in-t0ken")).await.status, 401);
    // Probes need no token.
    assert_eq!(call(a, "GET", "/healthz", None).await.status, 200);
    assert_eq!(call(a, "GET", "/readyz", None).await.status, 200);

    let r = call(a, "GET", "/metrics", Some("adm-t0ken")).await;
    assert_eq!(r.status, 200);
    let m = parse_metrics(r.body.as_str().unwrap());
    assert_eq!(
        sample(&m, "switchyard_http_unauthorized_total", &[("scope", "ingest")]),
        4.0
    );
    assert_eq!(
        sample(&m, "switchyard_http_unauthorized_total", &[("scope", "admin")]),
        11.0
    );
    assert_eq!(
        sample(&m, "switchyard_events_ingested_total", &[("source", "http")]),
        1.0
    );
    d.shutdown().await;
}

/// `[auth]` tokens are read again on reload and take effect at once: a
/// token is rotated without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_rotates_the_tokens() {
    let toml = format!(
        "[auth]\ningest = {{ file = \"ingest.token\" }}\nadmin = {{ file = \"admin.token\" }}\n\n{ROUTE}"
    );
    let dir = write_setup("", &toml, &[("log", fixtures::logger())]);
    std::fs::write(dir.path().join("ingest.token"), "old-in").unwrap();
    std::fs::write(dir.path().join("admin.token"), "old-adm").unwrap();
    let mut d = TestDaemon::start_in(dir).await;
    let a = d.addr;
    assert_eq!(call(a, "POST", "/v1/events", Some("old-in")).await.status, 202);

    std::fs::write(d.path("ingest.token"), "new-in").unwrap();
    std::fs::write(d.path("admin.token"), "new-adm").unwrap();
    let r = call(a, "POST", "/v1/reload", Some("old-adm")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    assert_eq!(call(a, "POST", "/v1/events", Some("old-in")).await.status, 401);
    assert_eq!(call(a, "POST", "/v1/events", Some("new-in")).await.status, 202);
    assert_eq!(call(a, "GET", "/v1/stats", Some("old-adm")).await.status, 401);
    assert_eq!(call(a, "GET", "/v1/stats", Some("new-adm")).await.status, 200);
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_listener_takes_admin_and_only_admin() {
    let toml = format!("[admin]\nlisten = \"127.0.0.1:0\"\n\n{ROUTE}");
    let mut d = TestDaemon::start(&toml, &[("log", fixtures::logger())]).await;
    let (ingest, admin) = (d.addr, d.admin_addr().expect("an admin listener"));
    assert_ne!(ingest, admin);

    assert_eq!(call(ingest, "POST", "/v1/events", None).await.status, 202);
    let r = call(ingest, "GET", "/metrics", None).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.body["error"],
        "/metrics is served on the admin listener ([admin] listen), not on the ingest listener"
    );
    assert_eq!(call(ingest, "GET", "/v1/stream", None).await.status, 404);
    assert_eq!(call(ingest, "POST", "/v1/replay", None).await.status, 404);

    let r = call(admin, "POST", "/v1/events", None).await;
    assert_eq!(r.status, 404);
    assert_eq!(
        r.body["error"],
        "/v1/events is served on the ingest listener ([server] listen), not on the admin listener"
    );
    assert_eq!(call(admin, "GET", "/v1/stats", None).await.body["ingested"], 1);
    for addr in [ingest, admin] {
        assert_eq!(call(addr, "GET", "/healthz", None).await.status, 200);
        assert_eq!(call(addr, "GET", "/readyz", None).await.status, 200);
        assert_eq!(call(addr, "GET", "/nope", None).await.status, 404);
    }
    let r = call(admin, "GET", "/metrics", None).await;
    let m = parse_metrics(r.body.as_str().unwrap());
    assert_eq!(
        sample(&m, "switchyard_events_ingested_total", &[("source", "http")]),
        1.0
    );
    d.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_only_once_plugins_are_loaded() {
    let dir = write_setup(
        "",
        ROUTE,
        &[("log", fixtures::logger()), ("broken", "(module)".into())],
    );
    let starting = TestDaemon::bind(dir).await;
    let a = starting.addr;

    let r = call(a, "GET", "/readyz", None).await;
    assert_eq!(r.status, 503);
    assert_eq!(
        r.body,
        json!({"status": "starting", "reason": "config loaded; plugins are being loaded"})
    );
    assert_eq!(r.headers["retry-after"], "1");
    assert_eq!(
        call(a, "GET", "/healthz", None).await.status,
        200,
        "alive while loading"
    );
    let r = call(a, "POST", "/v1/events", None).await;
    assert_eq!(r.status, 503);
    assert_eq!(
        r.body["error"],
        "starting: plugins are being loaded; retry shortly (see /readyz)"
    );
    assert_eq!(call(a, "GET", "/v1/plugins", None).await.status, 503);
    let r = call(a, "GET", "/metrics", None).await;
    assert_eq!(r.status, 200, "metrics answer while loading");
    let text = r.body.as_str().unwrap();
    assert_eq!(sample(&parse_metrics(text), "switchyard_ready", &[]), 0.0);
    assert!(!text.contains("switchyard_queue_depth"));

    let mut daemon = starting.load().await;
    let r = call(a, "GET", "/readyz", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        json!({"status": "ready", "plugins": 1, "plugin_errors": ["broken"], "routes": 1})
    );
    assert_eq!(call(a, "POST", "/v1/events", None).await.status, 202);
    let m = call(a, "GET", "/metrics", None).await;
    let m = parse_metrics(m.body.as_str().unwrap());
    assert_eq!(sample(&m, "switchyard_ready", &[]), 1.0);
    assert_eq!(sample(&m, "switchyard_plugin_load_errors_total", &[]), 1.0);
    daemon.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_method_names_the_right_one() {
    let mut d = TestDaemon::start(ROUTE, &[("log", fixtures::logger())]).await;
    let r = call(d.addr, "POST", "/metrics", None).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.headers["allow"], "GET");
    assert_eq!(r.body, json!({"error": "/metrics takes GET"}));
    let (m, _) = scrape(&d).await;
    assert_eq!(sample(&m, "switchyard_ready", &[]), 1.0);
    let v: Value = d.get("/v1/stats").await.body;
    assert_eq!(v["queue"]["capacity"], 10000);
    d.shutdown().await;
}
