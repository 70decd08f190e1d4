//! Golden tests of config error messages: the exact text an operator sees.

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

fn errors(src: &str) -> String {
    parse(src).unwrap_err().to_string()
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
fn golden_every_semantic_error_at_once() {
    let src = r#"[plugins]
memory = "32 parsecs"
timeout = "soon"

[plugin.notify_frends]
fuel = 0
instance = "pooled"

[[route]]
name = "clicks"
match = { name = "deals.[", version = "~1.2" }
handlers = ["notify_frends", "audit"]
sinks = ["archiv"]

[[route]]
name = "clicks"
match = { data = { tier = { equals = "gold" } } }
handlers = ["audit"]

[[route]]
name = "idle"

[sink.archive]
type = "kafka"
"#;
    let expected = r#"router.toml:2:10: plugins.memory: invalid size "32 parsecs": unknown unit "parsecs" (use B, KiB, MiB, GiB, KB, MB or GB)
router.toml:3:11: plugins.timeout: invalid duration "soon": expected number at 0 (write e.g. "250ms" or "2s")
router.toml:5:1: plugin.notify_frends: no plugin named "notify_frends" in /etc/sy/plugins/dist (plugins: audit, count_clicks, notify_friends)
router.toml:6:8: plugin.notify_frends.fuel: must be at least 1, got 0
router.toml:7:12: plugin.notify_frends.instance: expected "reuse" or "fresh", got "pooled"
router.toml:11:18: route "clicks": match.name: invalid glob "deals.[": unclosed character class; missing ']'
router.toml:11:39: route "clicks": match.version: invalid version range "~1.2": "~1.2" is not a comparison like ">=1.2" (operators <, <=, >, >=, =, !=; comma means and)
router.toml:12:13: route "clicks": handlers: unknown plugin "notify_frends": no notify_frends.wasm or notify_frends.wat in /etc/sy/plugins/dist (plugins: audit, count_clicks, notify_friends); its events go to dead letters as `unavailable`
router.toml:13:10: route "clicks": sinks: unknown sink "archiv" (sinks: archive)
router.toml:16:8: route "clicks": duplicate route name (first defined at line 10, column 8)
router.toml:17:27: route "clicks": match.data: "tier": a predicate is a value, { exists = true|false } or { one_of = [..] }
router.toml:20:1: route "idle": has neither handlers nor sinks, so it would do nothing
router.toml:24:8: sink.archive.type: unknown sink type "kafka" (known: "file", "stdout", "http")"#;
    assert_eq!(errors(src), expected);
}

#[test]
fn golden_cascade_budget_errors() {
    assert_eq!(
        errors("[router]\nmax_cascade = 0\nmax_cascade_bytes = \"0B\"\n"),
        "router.toml:2:15: router.max_cascade: must be from 1 to 1000000, got 0\n\
         router.toml:3:21: router.max_cascade_bytes: must be from 1 to 1073741824 bytes, got 0"
    );
    assert_eq!(
        errors("[router]\nmax_cascade_bytes = \"2GiB\"\n"),
        "router.toml:2:21: router.max_cascade_bytes: must be from 1 to 1073741824 bytes, got 2147483648"
    );
}

#[test]
fn golden_toml_syntax_error() {
    assert_eq!(
        errors("[server]\nlisten = \"127.0.0.1:7600\nqueue = 3\n"),
        "router.toml:2:25: invalid basic string, expected `\"`"
    );
}

#[test]
fn golden_unknown_field() {
    assert_eq!(
        errors("[[route]]\nname = \"a\"\nhandler = [\"audit\"]\n"),
        "router.toml:3:1: unknown field `handler`, expected one of `name`, `match`, `require`, `handlers`, `sinks`, `final`"
    );
}

#[test]
fn golden_server_and_sink_errors() {
    let src = "[server]\nlisten = \"localhost\"\nqueue = 0\nmax_body = \"1 KiB\"\n\n[sink.a]\ntype = \"file\"\n\n[sink.b]\ntype = \"stdout\"\npath = \"x\"\n";
    assert_eq!(
        errors(src),
        r#"router.toml:2:10: server.listen: invalid address "localhost": expected IP:PORT, like "127.0.0.1:7600"
router.toml:3:9: server.queue: must be from 1 to 10000000, got 0
router.toml:6:1: sink.a: type "file" needs a path
router.toml:11:8: sink.b.path: a "stdout" sink takes no path"#
    );
}

#[test]
fn golden_body_timeout_and_max_connections() {
    let defaults = parse("").unwrap();
    assert_eq!(defaults.server.body_timeout, Duration::from_secs(10));
    assert_eq!(defaults.server.max_connections, 1024);
    assert_eq!(defaults.server.send_timeout, Duration::from_secs(10));
    let src = "[server]\nbody_timeout = \"0s\"\nmax_connections = 0\n";
    assert_eq!(
        errors(src),
        "router.toml:2:16: server.body_timeout: must be longer than zero\n\
         router.toml:3:19: server.max_connections: must be from 1 to 1000000, got 0"
    );
    assert!(
        errors("[server]\nbody_timeout = \"soon\"\n").starts_with("router.toml:2:16: server.body_timeout: ")
    );
    assert!(errors("[server]\nbody_timout = \"1s\"\n").contains("unknown field `body_timout`"));
}

#[test]
fn golden_unreadable_plugins_dir() {
    let err = Config::parse(
        "[plugins]\ndir = \"nope\"\n",
        Path::new("router.toml"),
        Path::new("/etc/sy"),
        |_| Err("No such file or directory (os error 2)".into()),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "router.toml:2:7: plugins.dir: cannot list plugins in /etc/sy/nope: No such file or directory (os error 2)"
    );
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

#[test]
fn golden_tail_source_errors() {
    let src = r#"[[source.tail]]
path = "logs/[x.log"
format = "xml"
start_at = "middle"

[[source.tail]]
path = "a.log"
format = "json"
name = "app.Thing"
pattern = "x"
max_line = 0

[[source.tail]]
path = "a.log"
format = "regex"

[[source.tail]]
path = "b.log"
format = "regex"
pattern = '^(?P<user>\d+'

[[source.tail]]
path = "c.log"
format = "regex"
pattern = '^(?P<user>\d+)$'

[[source.tail]]
path = "d.log"
format = "text"
name = "two words"
rotate_wait = "never"
"#;
    let expected = r#"router.toml:2:8: source.tail "logs/[x.log": path: invalid glob "/etc/sy/logs/[x.log": unclosed character class; missing ']'
router.toml:3:10: source.tail "logs/[x.log": format: unknown format "xml" (known: "json", "text", "regex")
router.toml:4:12: source.tail "logs/[x.log": start_at: must be "beginning" or "end", got "middle"
router.toml:9:8: source.tail "a.log": name: format "json" takes each event's name from its line; use format "text" for a fixed name
router.toml:10:11: source.tail "a.log": pattern: only format "regex" takes a pattern
router.toml:11:12: source.tail "a.log": max_line: must be from 1 to 1073741824 bytes, got 0
router.toml:13:1: source.tail "a.log": format "regex" needs a pattern with named captures
router.toml:14:8: source.tail "a.log": path: already followed by the source at line 7, column 8; each line would be handled twice
router.toml:20:11: source.tail "b.log": pattern: invalid regex: unclosed group
router.toml:25:11: source.tail "c.log": pattern: has no (?P<name>...) group and no name is set, so its events would have no name
router.toml:30:8: source.tail "d.log": name: must not contain ' ' (names look like "app.EventName")
router.toml:31:15: source.tail "d.log": rotate_wait: invalid duration "never": expected number at 0 (write e.g. "250ms" or "2s")"#;
    assert_eq!(errors(src), expected);
}

#[test]
fn golden_tail_source_unknown_key() {
    assert_eq!(
        errors("[[source.tail]]\npath = \"a.log\"\nstart = \"end\"\n"),
        "router.toml:3:1: unknown field `start`, expected one of `path`, `format`, `name`, `pattern`, `start_at`, `max_line`, `rotate_wait`"
    );
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

#[test]
fn golden_unset_environment_variables() {
    let src = "[dead_letter]\npath = \"${SY_DATA}/dead.ndjson\"\n\n[plugin.audit]\nconfig = { channels = [\"ok\", \"${SY_CHANNEL}\"] }\n\n[sink.a]\ntype = \"file\"\npath = \"${SY_DATA\"\n";
    assert_eq!(
        parse_env(src, &[]).unwrap_err().to_string(),
        r#"router.toml:2:8: dead_letter.path: environment variable SY_DATA is not set (referenced as "${SY_DATA}"; set it, or write "${SY_DATA:-default}")
router.toml:5:30: plugin.audit.config.channels[1]: environment variable SY_CHANNEL is not set (referenced as "${SY_CHANNEL}"; set it, or write "${SY_CHANNEL:-default}")
router.toml:9:8: sink.a.path: unterminated "${" in "${SY_DATA" (write "$${" for a literal "${")"#
    );
    let cfg = parse_env(
        src.replace("${SY_DATA\"", "$${SY_DATA}\"").as_str(),
        &[("SY_DATA", "/var/lib/sy"), ("SY_CHANNEL", "sms")],
    )
    .unwrap();
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

#[test]
fn golden_operations_errors() {
    let src = r#"[server]
listen = "127.0.0.1:7600"

[admin]
listen = "127.0.0.1:7600"

[auth]
ingest = "hunter2"
admin = { env = "SY_UNSET_TOKEN" }

[stream]
buffer = 0

[plugins]
log_burst = 0

[sink.a]
type = "http"

[sink.b]
type = "http"
url = "https://hooks.example.com/x"

[sink.c]
type = "http"
url = "http://hooks.example.com/x"
path = "c.ndjson"
format = "xml"
backoff = "2s"
max_backoff = "1s"
headers = { "Bad Header" = "v", "Content-Type" = "text/plain" }

[sink.d]
type = "file"
path = "d.ndjson"
url = "http://x/"
retries = 3
"#;
    assert_eq!(
        parse_env(src, &[]).unwrap_err().to_string(),
        r#"router.toml:5:10: admin.listen: 127.0.0.1:7600 is also [server] listen; give the admin listener its own port
router.toml:8:10: auth.ingest: the token itself must not be in router.toml; write { env = "VARIABLE" } or { file = "/path/to/token" }
router.toml:9:9: auth.admin: environment variable SY_UNSET_TOKEN is not set
router.toml:12:10: stream.buffer: must be from 1 to 1000000, got 0
router.toml:15:13: plugins.log_burst: must be from 1 to 1000000, got 0
router.toml:17:1: sink.a: type "http" needs a url
router.toml:22:7: sink.b.url: "https://hooks.example.com/x": https is not supported by the built-in client; send to a local TLS-terminating proxy over http
router.toml:27:8: sink.c.path: an "http" sink takes no path (it has a url)
router.toml:28:10: sink.c.format: unknown format "xml" (known: "json", "ndjson")
router.toml:30:15: sink.c.max_backoff: must not be shorter than backoff (2s)
router.toml:31:28: sink.c.headers: "Bad Header" is not a valid header name
router.toml:31:50: sink.c.headers: "Content-Type" is set by switchyard
router.toml:36:7: sink.d.url: a "file" sink takes no url (only "http" sinks do)
router.toml:37:11: sink.d.retries: a "file" sink takes no retries (only "http" sinks do)"#
    );
}

/// Issue 18, item 2: every duration key has the same upper bound, named.
#[test]
fn golden_durations_out_of_range() {
    let huge = "\"18446744073709551615s\"";
    let src = format!(
        "[server]\nheader_timeout = {huge}\nbody_timeout = \"8days\"\n\n\
         [plugins]\ntimeout = {huge}\ncompile_timeout = {huge}\n\n\
         [stream]\ncutoff_grace = {huge}\n\n[sink.w]\ntype = \"http\"\nurl = \"http://127.0.0.1:9/\"\n\
         timeout = {huge}\nbackoff = {huge}\nmax_backoff = {huge}\nmax_retry_after = {huge}\n\n\
         [[source.tail]]\npath = \"x.log\"\nrotate_wait = {huge}\n"
    );
    let too_long = |at: &str, key: &str, text: &str| {
        format!("router.toml:{at}: {key}: duration \"{text}\" is too long: at most 7days (7 days)")
    };
    let h = "18446744073709551615s";
    let expected = [
        too_long("2:18", "server.header_timeout", h),
        too_long("3:16", "server.body_timeout", "8days"),
        too_long("6:11", "plugins.timeout", h),
        too_long("7:19", "plugins.compile_timeout", h),
        too_long("10:16", "stream.cutoff_grace", h),
        too_long("15:11", "sink.w.timeout", h),
        too_long("16:11", "sink.w.backoff", h),
        too_long("17:15", "sink.w.max_backoff", h),
        too_long("18:19", "sink.w.max_retry_after", h),
        too_long("22:15", "source.tail \"x.log\": rotate_wait", h),
    ]
    .join("\n");
    assert_eq!(errors(&src), expected);
    // The bound itself is accepted.
    assert!(
        parse("[sink.w]\ntype = \"http\"\nurl = \"http://127.0.0.1:9/\"\nmax_retry_after = \"7days\"\n")
            .is_ok()
    );
}
