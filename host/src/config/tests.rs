//! Golden tests of config error messages: the exact text an operator sees.

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

[plugins]
dir = "wasm"
fuel = 1_000
memory = "1MiB"
timeout = "100ms"

[plugin.notify_friends]
fuel = 50_000_000
config = { channel = "email", retries = 3, at = 1979-05-27T07:32:00Z }

[router]
hop_limit = 3

[dead_letter]
path = "dl.ndjson"

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
    assert_eq!(cfg.plugins_dir, Path::new("/etc/sy/wasm"));
    assert_eq!(cfg.default_limits.fuel, 1_000);
    assert_eq!(cfg.default_limits.memory, 1 << 20);
    let nf = cfg.settings_for("notify_friends");
    assert_eq!(nf.limits.fuel, 50_000_000);
    assert_eq!(nf.limits.memory, 1 << 20, "inherits the [plugins] default");
    assert_eq!(
        nf.config,
        serde_json::json!({"channel": "email", "retries": 3, "at": "1979-05-27T07:32:00Z"})
    );
    assert_eq!(cfg.settings_for("audit").config, serde_json::json!({}));
    assert_eq!(cfg.hop_limit, 3);
    assert_eq!(cfg.dead_letter, Path::new("/etc/sy/dl.ndjson"));
    let r = &cfg.routes[0];
    assert_eq!(r.handlers, ["notify_friends", "count_clicks"]);
    assert!(r.is_final);
    assert_eq!(r.matcher.data.len(), 3);
    assert_eq!(
        cfg.sinks["archive"],
        SinkConfig::File {
            path: "/etc/sy/data/archive.ndjson".into()
        }
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
    assert_eq!(cfg.plugins_dir, Path::new("/etc/sy/plugins/dist"));
    assert!(cfg.routes.is_empty());
}

#[test]
fn golden_every_semantic_error_at_once() {
    let src = r#"[plugins]
memory = "32 parsecs"
timeout = "soon"

[plugin.notify_frends]
fuel = 0

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
router.toml:10:18: route "clicks": match.name: invalid glob "deals.[": unclosed character class; missing ']'
router.toml:10:39: route "clicks": match.version: invalid version range "~1.2": "~1.2" is not a comparison like ">=1.2" (operators <, <=, >, >=, =, !=; comma means and)
router.toml:11:13: route "clicks": handlers: unknown plugin "notify_frends": no notify_frends.wasm or notify_frends.wat in /etc/sy/plugins/dist (plugins: audit, count_clicks, notify_friends)
router.toml:12:10: route "clicks": sinks: unknown sink "archiv" (sinks: archive)
router.toml:15:8: route "clicks": duplicate route name (first defined at line 9, column 8)
router.toml:16:27: route "clicks": match.data: "tier": a predicate is a value, { exists = true|false } or { one_of = [..] }
router.toml:19:1: route "idle": has neither handlers nor sinks, so it would do nothing
router.toml:23:8: sink.archive.type: unknown sink type "kafka" (known: "file", "stdout")"#;
    assert_eq!(errors(src), expected);
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
