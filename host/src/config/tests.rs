//! What a config parses to. The exact text of config errors, as an operator
//! sees it, is checked by the goldens in `host/tests/config-errors/` (one
//! `.toml` and its `.err` each).

use std::time::Duration;

use super::*;

fn known() -> BTreeSet<String> {
    ["audit", "count_clicks", "notify_friends"]
        .map(String::from)
        .into()
}

fn parse(src: &str) -> Result<Config, ConfigErrors> {
    Config::parse(src, Path::new("router.toml"), Path::new("/etc/sy"), |_| {
        Ok(known())
    })
}

#[test]
fn a_full_config_parses() {
    let cfg = parse(
        r#"
[server]
listen = "0.0.0.0:8080"
max_body = "2MiB"
queue = 50
workers = 3
header_timeout = "5s"
body_timeout = "30s"
max_connections = 64

[plugins]
dir = "wasm"
fuel = 1_000
memory = "1MiB"
timeout = "100ms"
instance = "fresh"

[plugin.notify_friends]
fuel = 50_000_000
instance = "reuse"
config = { channel = "email", retries = 3, at = 1979-05-27T07:32:00Z }

[router]
hop_limit = 3
max_cascade = 50
max_cascade_bytes = "2MiB"

[dead_letter]
path = "dl.ndjson"

[state]
dir = "/var/lib/switchyard"

[[route]]
name = "deal-clicks"
match = { name = "deals.*Click", version = "<2.0", source = "http", data = { region = { one_of = ["eu", "us"] }, deal_id = { exists = true }, qty = 2 }, meta = { host = "web-3" } }
require = ["deal_id", "user.id"]
handlers = ["notify_friends", "count_clicks"]
sinks = ["archive", "console"]
final = true

[sink.archive]
type = "file"
path = "data/archive.ndjson"

[sink.console]
type = "stdout"
"#,
    )
    .unwrap();
    assert_eq!(cfg.server.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(cfg.server.max_body, 2 << 20);
    assert_eq!((cfg.server.queue, cfg.server.workers), (50, 3));
    assert_eq!(cfg.server.header_timeout, Duration::from_secs(5));
    assert_eq!(cfg.server.body_timeout, Duration::from_secs(30));
    assert_eq!(cfg.server.max_connections, 64);
    assert_eq!(cfg.plugins_dir, Path::new("/etc/sy/wasm"));
    assert_eq!(cfg.default_limits.fuel, 1_000);
    assert_eq!(cfg.default_limits.memory, 1 << 20);
    let nf = cfg.settings_for("notify_friends");
    assert_eq!(nf.limits.fuel, 50_000_000);
    assert_eq!(nf.limits.memory, 1 << 20, "inherits the [plugins] default");
    assert_eq!(nf.limits.instance, Instance::Reuse);
    assert_eq!(cfg.settings_for("audit").limits.instance, Instance::Fresh);
    assert_eq!(
        nf.config,
        serde_json::json!({"channel": "email", "retries": 3, "at": "1979-05-27T07:32:00Z"})
    );
    assert_eq!(cfg.settings_for("audit").config, serde_json::json!({}));
    assert_eq!(cfg.hop_limit, 3);
    assert_eq!(cfg.max_cascade, 50);
    assert_eq!(cfg.max_cascade_bytes, 2 << 20);
    assert_eq!(cfg.dead_letter, Path::new("/etc/sy/dl.ndjson"));
    assert_eq!(cfg.state_dir, Path::new("/var/lib/switchyard"));
    let r = &cfg.routes[0];
    assert_eq!(r.handlers, ["notify_friends", "count_clicks"]);
    assert!(r.is_final);
    assert_eq!(r.matcher.data.len(), 3);
    assert_eq!(
        cfg.sinks["archive"],
        SinkConfig::File(FileSinkConfig {
            path: "/etc/sy/data/archive.ndjson".into()
        })
    );
    assert_eq!(cfg.sinks["console"], SinkConfig::Stdout);
}

#[test]
fn defaults() {
    let cfg = parse("").unwrap();
    assert_eq!(cfg.server.listen.to_string(), "127.0.0.1:7600");
    assert_eq!(cfg.server.max_body, 1 << 20);
    assert_eq!(cfg.default_limits, Limits::default());
    assert_eq!(cfg.hop_limit, 8);
    assert_eq!(cfg.max_cascade, 1000);
    assert_eq!(cfg.max_cascade_bytes, 16 << 20);
    assert_eq!(cfg.plugins_dir, Path::new("/etc/sy/plugins/dist"));
    assert_eq!(cfg.state_dir, Path::new("/etc/sy/data"));
    assert!(cfg.routes.is_empty());
}

#[test]
fn body_timeout_max_connections_and_send_timeout_defaults() {
    let defaults = parse("").unwrap();
    assert_eq!(defaults.server.body_timeout, Duration::from_secs(10));
    assert_eq!(defaults.server.max_connections, 1024);
    assert_eq!(defaults.server.send_timeout, Duration::from_secs(10));
}

#[test]
fn golden_missing_plugins_are_warnings_not_errors() {
    let cfg = parse("[plugin.gone]\nfuel = 5\n\n[[route]]\nname = \"r\"\nhandlers = [\"audit\", \"gone\"]\n")
        .unwrap();
    assert_eq!(
        cfg.routes[0].handlers,
        ["audit", "gone"],
        "the route still serves"
    );
    assert_eq!(
        cfg.warnings.to_string(),
        r#"router.toml:1:1: plugin.gone: no plugin named "gone" in /etc/sy/plugins/dist (plugins: audit, count_clicks, notify_friends)
router.toml:6:22: route "r": handlers: unknown plugin "gone": no gone.wasm or gone.wat in /etc/sy/plugins/dist (plugins: audit, count_clicks, notify_friends); its events go to dead letters as `unavailable`"#
    );
    assert!(parse("").unwrap().warnings.errors.is_empty());
}

#[test]
fn tail_sources_parse() {
    let cfg = parse(
        r#"
[state]
dir = "/var/lib/sy"

[[source.tail]]
path = "logs/*.log"

[[source.tail]]
path = "/var/log/app.log"
format = "text"
name = "app.Impression"
start_at = "beginning"
max_line = "1KiB"
rotate_wait = "500ms"

[[source.tail]]
path = "web.log"
format = "regex"
pattern = '^(?P<name>\S+) (?P<user>\d+)$'
"#,
    )
    .unwrap();
    assert_eq!(cfg.state_dir, Path::new("/var/lib/sy"));
    let [logs, app, web] = &cfg.tail_sources[..] else {
        panic!("three sources: {:?}", cfg.tail_sources)
    };
    assert_eq!(
        logs.path,
        Path::new("/etc/sy/logs/*.log"),
        "relative to the config file"
    );
    assert!(matches!(logs.format, TailFormat::Json));
    assert_eq!(logs.start_at, StartAt::End);
    assert_eq!(logs.max_line, 256 << 10);
    assert_eq!(logs.rotate_wait, Duration::from_secs(5));
    assert!(matches!(&app.format, TailFormat::Text { name: Some(n) } if n == "app.Impression"));
    assert_eq!(
        (app.start_at, app.max_line, app.rotate_wait),
        (StartAt::Beginning, 1024, Duration::from_millis(500))
    );
    assert!(matches!(&web.format, TailFormat::Regex { name: None, .. }));
    assert_eq!(parse("").unwrap().state_dir, Path::new("/etc/sy/data"));
}

fn parse_env(src: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigErrors> {
    env::tests::with_env(vars, || parse(src))
}

#[test]
fn the_operations_config_parses() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("admin.token");
    std::fs::write(&token_file, "adm1n-token\n").unwrap();
    let src = format!(
        r#"
[server]
listen = "0.0.0.0:7600"

[admin]
listen = "127.0.0.1:7601"

[auth]
ingest = {{ env = "SY_INGEST" }}
admin = {{ file = "{}" }}

[stream]
buffer = 64
max_subscribers = 3
cutoff_grace = "1m"

[plugins]
log_rate = 0
log_burst = 10
log_bytes = "1MiB"
log_bytes_burst = "2MiB"

[sink.hook]
type = "http"
url = "http://${{HOOK_HOST}}:8080/events"
batch = 50
timeout = "2s"
retries = 3
backoff = "50ms"
max_backoff = "1s"
max_retry_after = "90s"
format = "ndjson"
max_pending = 500
headers = {{ "X-Api-Key" = "${{HOOK_KEY}}", "X-Env" = "${{HOOK_ENV:-prod}}" }}
"#,
        token_file.display()
    );
    let cfg = parse_env(
        &src,
        &[
            ("SY_INGEST", "ingest-token"),
            ("HOOK_HOST", "10.0.0.9"),
            ("HOOK_KEY", "k3y"),
        ],
    )
    .unwrap();
    assert_eq!(cfg.admin_listen, Some("127.0.0.1:7601".parse().unwrap()));
    assert!(cfg.auth.ingest.as_ref().unwrap().matches(b"ingest-token"));
    assert!(
        cfg.auth.admin.as_ref().unwrap().matches(b"adm1n-token"),
        "the newline is trimmed"
    );
    assert_eq!(cfg.stream.buffer, 64);
    assert_eq!(cfg.stream.max_subscribers, 3);
    assert_eq!(cfg.stream.cutoff_grace, Duration::from_secs(60));
    assert_eq!((cfg.plugin_log.rate, cfg.plugin_log.burst), (0, 10));
    assert_eq!(
        (cfg.plugin_log.bytes, cfg.plugin_log.bytes_burst),
        (1 << 20, 2 << 20)
    );
    let SinkConfig::Http(h) = &cfg.sinks["hook"] else {
        panic!("{:?}", cfg.sinks["hook"])
    };
    assert_eq!(h.url.to_string(), "http://10.0.0.9:8080/events");
    assert_eq!((h.batch, h.retries, h.max_pending), (50, 3, 500));
    assert_eq!(
        (h.timeout, h.backoff, h.max_backoff),
        (
            Duration::from_secs(2),
            Duration::from_millis(50),
            Duration::from_secs(1)
        )
    );
    assert_eq!(h.max_retry_after, Duration::from_secs(90));
    assert_eq!(h.format, BatchFormat::Ndjson);
    let headers: Vec<(&str, &str)> = h
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.to_str().unwrap()))
        .collect();
    assert_eq!(headers, [("x-api-key", "k3y"), ("x-env", "prod")]);
    assert!(
        !format!("{cfg:?}").contains("k3y"),
        "header values and tokens stay out of Debug"
    );
    let d = parse("").unwrap();
    assert_eq!(
        (d.admin_listen, d.stream.buffer, d.plugin_log.rate),
        (None, 1024, 100)
    );
    assert!(d.auth.ingest.is_none() && d.auth.admin.is_none());
}

/// The errors of the same config without the variables are a golden
/// (`host/tests/config-errors/unset-environment-variables.toml`).
#[test]
fn environment_variables_are_interpolated() {
    let src = "[dead_letter]\npath = \"${SY_DATA}/dead.ndjson\"\n\n[plugin.audit]\nconfig = { channels = [\"ok\", \"${SY_CHANNEL}\"] }\n\n[sink.a]\ntype = \"file\"\npath = \"$${SY_DATA}\"\n";
    let cfg = parse_env(src, &[("SY_DATA", "/var/lib/sy"), ("SY_CHANNEL", "sms")]).unwrap();
    assert_eq!(cfg.dead_letter, Path::new("/var/lib/sy/dead.ndjson"));
    assert_eq!(
        cfg.settings_for("audit").config,
        serde_json::json!({"channels": ["ok", "sms"]})
    );
    assert_eq!(
        cfg.sinks["a"],
        SinkConfig::File(FileSinkConfig {
            path: "/etc/sy/${SY_DATA}".into()
        })
    );
}

/// Issue 18, item 2: every duration key has the same upper bound, named
/// (the errors past it are a golden:
/// `host/tests/config-errors/durations-out-of-range.toml`); the bound itself
/// is accepted.
#[test]
fn a_duration_at_the_bound_is_accepted() {
    assert!(
        parse("[sink.w]\ntype = \"http\"\nurl = \"http://127.0.0.1:9/\"\nmax_retry_after = \"7days\"\n")
            .is_ok()
    );
}

#[test]
fn the_queue_section_defaults_to_a_disk_queue_synced_per_batch() {
    let d = parse("").unwrap().queue;
    assert_eq!(d, QueueConfig::default());
    assert_eq!(
        (d.kind, d.max_bytes, d.sync, d.max_deliveries),
        (QueueType::Disk, 1 << 30, SyncMode::Batch, 5)
    );
    let q = parse(
        "[queue]\ntype = \"disk\"\nmax_bytes = \"64MiB\"\nsync = \"interval\"\nsync_interval = \"250ms\"\nmax_deliveries = 2\n",
    )
    .unwrap()
    .queue;
    assert_eq!(
        (q.max_bytes, q.sync, q.max_deliveries),
        (64 << 20, SyncMode::Interval(Duration::from_millis(250)), 2)
    );
    let interval = parse("[queue]\nsync = \"interval\"\n").unwrap().queue.sync;
    assert_eq!(interval, SyncMode::Interval(Duration::from_secs(1)));
    assert_eq!(
        parse("[queue]\ntype = \"memory\"\n").unwrap().queue.kind,
        QueueType::Memory
    );
}
