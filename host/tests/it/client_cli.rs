//! The client commands as a user runs them: `send`, `tail`, and
//! `dead-letter list|replay` against a daemon found through its config.

use std::io::BufRead;
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use serde_json::Value;
use tempfile::TempDir;

use crate::fixtures;
use crate::harness::{self, read_ndjson, TestDaemon};

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_posts_and_tail_prints_what_matches() {
    let toml =
        "[auth]\ningest = { file = \"ingest.token\" }\n\n[[route]]\nname = \"all\"\nhandlers = [\"log\"]\n";
    let dir = crate::harness::write_setup("", toml, &[("log", fixtures::logger())]);
    std::fs::write(dir.path().join("ingest.token"), "s3nd\n").unwrap();
    let mut d = TestDaemon::start_in(dir).await;
    let url = format!("http://{}", d.addr);

    let mut tail = harness::spawn(&mut harness::switchyard(["tail", "--name", "a.*", "--url", &url]));
    let out = std::io::BufReader::new(tail.stdout.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for l in out.lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    d.subscribed(1).await;

    let token = vec![("SWITCHYARD_TOKEN", "s3nd".to_string())];
    let o = harness::run(
        harness::switchyard(["send", "a.Hello", "--data", r#"{"k":1}"#, "--url", &url]).envs(token.clone()),
    )
    .await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let answer: Value = serde_json::from_slice(&o.stdout).unwrap();
    let hello_id = answer["ids"][0].as_str().unwrap().to_string();
    let o = harness::run(harness::switchyard(["send", "b.Other", "--url", &url]).envs(token.clone())).await;
    assert!(o.status.success());
    let o = harness::run(
        harness::switchyard([
            "send",
            "a.Bye",
            "--event-version",
            "1.2",
            "--meta",
            r#"{"host":"h"}"#,
            "--wait",
            "--url",
            &url,
        ])
        .envs(token.clone()),
    )
    .await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let answer: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        answer["events"][0]["handlers"][0]["outcome"], "ok",
        "--wait prints outcomes"
    );

    let first: Value = serde_json::from_str(&rx.recv_timeout(Duration::from_secs(20)).unwrap()).unwrap();
    assert_eq!(
        (first["name"].as_str(), first["id"].as_str()),
        (Some("a.Hello"), Some(hello_id.as_str()))
    );
    assert_eq!(first["data"]["k"], 1);
    let second: Value = serde_json::from_str(&rx.recv_timeout(Duration::from_secs(20)).unwrap()).unwrap();
    assert_eq!(second["name"], "a.Bye");
    assert_eq!(
        (second["version"].as_str(), second["meta"]["host"].as_str()),
        (Some("1.2"), Some("h"))
    );

    // Refusals are clear and fail the command.
    let o = harness::run(&mut harness::switchyard(["send", "a.X", "--url", &url])).await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("401 Unauthorized: missing bearer token"),
        "{}",
        text(&o.stderr)
    );
    let o = harness::run(
        harness::switchyard(["send", "a.X", "--data", "{oops", "--url", &url]).envs(token.clone()),
    )
    .await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).starts_with("error: --data is not valid JSON"),
        "{}",
        text(&o.stderr)
    );
    let o = harness::run(&mut harness::switchyard([
        "send",
        "a.X",
        "--url",
        "http://127.0.0.1:1",
    ]))
    .await;
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("cannot reach the daemon at http://127.0.0.1:1"),
        "{}",
        text(&o.stderr)
    );

    // The daemon stops: tail says why and exits 0, having printed nothing else.
    d.shutdown().await;
    let status = tokio::task::spawn_blocking(move || tail.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(status.status.success());
    assert!(
        text(&status.stderr).contains("the daemon is shutting down"),
        "{}",
        text(&status.stderr)
    );
    assert!(rx.try_recv().is_err(), "b.Other was not printed");

    let o = harness::run(&mut harness::switchyard(["--version"])).await;
    assert_eq!(
        text(&o.stdout).trim(),
        format!("switchyard {}", env!("CARGO_PKG_VERSION"))
    );
}

/// A port that is free now and stays free while the daemon restarts on it.
/// It comes from below the kernel's ephemeral range (32768-60999 on Linux),
/// where every socket bound to port 0 and every outgoing connection of the
/// other tests gets its port, so none of them can take it in between (a
/// port from port 0 could be reused at once as some client's local port).
fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let base = 20_000 + std::process::id() % 6_000 * 2;
    loop {
        let port = (base + NEXT.fetch_add(1, Ordering::Relaxed) % 12_000).min(32_000) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// A setup whose daemon listens on fixed ports, so that the commands find
/// it through the config, with an admin token in a file.
fn fixed_setup(plugin: String) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("plugins")).unwrap();
    std::fs::write(dir.path().join("plugins/flaky.wat"), plugin).unwrap();
    std::fs::write(dir.path().join("admin.token"), "r3play\n").unwrap();
    let config = format!(
        r#"[server]
listen = "127.0.0.1:{}"
workers = 1

[admin]
listen = "127.0.0.1:{}"

[auth]
admin = {{ file = "admin.token" }}

[plugins]
dir = "plugins"

[dead_letter]
path = "dead.ndjson"

[[route]]
name = "r"
match = {{ name = "a.*" }}
handlers = ["flaky"]
sinks = ["out"]

[[route]]
name = "req"
match = {{ name = "k.*" }}
require = ["must"]
handlers = ["flaky"]

[sink.out]
type = "file"
path = "out.ndjson"
"#,
        free_port(),
        free_port()
    );
    std::fs::write(dir.path().join("router.toml"), config).unwrap();
    dir
}

async fn dead_letter(cfg: &Path, rest: &[&str]) -> Output {
    let mut a = args(&["dead-letter"]);
    a.extend(args(rest));
    a.extend(args(&["--config", cfg.to_str().unwrap()]));
    harness::run(&mut harness::switchyard(a)).await
}

fn stdout_lines(o: &Output) -> Vec<String> {
    text(&o.stdout).lines().map(str::to_string).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_replay_round_trip_never_doubles() {
    let d = TestDaemon::start_in(fixed_setup(fixtures::failing())).await;
    let cfg = d.path("router.toml");
    let mut ids = Vec::new();
    for i in 1..=3 {
        let r = d
            .post_json(
                "/v1/events?wait=true",
                &serde_json::json!({"name": format!("a.E{i}"), "data": {"i": i}}),
            )
            .await;
        ids.push(r.body["ids"][0].as_str().unwrap().to_string());
    }
    d.post_json("/v1/events?wait=true", &serde_json::json!({"name": "k.One"}))
        .await;
    assert_eq!(d.dead_letters().len(), 4);

    let o = dead_letter(&cfg, &["list", "--plugin", "flaky"]).await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let lines = stdout_lines(&o);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].starts_with("line 1\t"), "{}", lines[0]);
    assert!(
        lines[0].contains("\thandler_error\tplugin=flaky route=r\ta.E1 "),
        "{}",
        lines[0]
    );
    assert!(lines[0].ends_with(fixtures::FAIL_MESSAGE), "{}", lines[0]);
    assert!(text(&o.stderr).contains("3 dead letter(s) in "));
    let o = dead_letter(&cfg, &["list", "--kind", "missing_keys", "--json"]).await;
    let only: Vec<Value> = stdout_lines(&o)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(only.len(), 1);
    assert_eq!(
        (only[0]["line"].as_u64(), only[0]["replayed"].as_bool()),
        (Some(4), Some(false))
    );
    assert_eq!(only[0]["event"]["name"], "k.One");

    // The handler is fixed; the daemon restarts with it.
    let dir = d.stop().await;
    std::fs::write(dir.path().join("plugins/flaky.wat"), fixtures::logger()).unwrap();
    let mut d = TestDaemon::start_in(dir).await;

    let o = dead_letter(&cfg, &["replay", "--plugin", "flaky", "--dry-run"]).await;
    assert_eq!(stdout_lines(&o).len(), 3);
    assert!(
        !d.path("dead.ndjson.replayed").exists(),
        "a dry run marks nothing"
    );

    let o = dead_letter(&cfg, &["replay", "--plugin", "flaky", "--batch", "2"]).await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("replayed 3 dead letter(s) from ")
            && text(&o.stderr).contains(": 3 handled, 0 failed again"),
        "{}",
        text(&o.stderr)
    );
    let out = read_ndjson(&d.path("out.ndjson"));
    let replayed: Vec<&Value> = out
        .iter()
        .filter(|e| e["meta"]["replayed_at"].is_string())
        .collect();
    assert_eq!(replayed.len(), 3);
    let mut got: Vec<&str> = replayed.iter().map(|e| e["id"].as_str().unwrap()).collect();
    got.sort();
    let mut want: Vec<&str> = ids.iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(got, want, "replayed events keep their ids");
    assert!(replayed.iter().all(|e| e["source"] == "http"), "and their source");
    assert_eq!(
        d.dead_letters().len(),
        4,
        "handled this time: no new dead letters"
    );

    // Again: nothing is sent twice.
    let o = dead_letter(&cfg, &["replay", "--plugin", "flaky"]).await;
    assert!(o.status.success());
    assert!(
        text(&o.stderr).contains("nothing to replay"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(read_ndjson(&d.path("out.ndjson")).len(), out.len());
    let o = dead_letter(&cfg, &["list", "--plugin", "flaky"]).await;
    assert!(stdout_lines(&o).iter().all(|l| l.ends_with("\t[replayed]")));

    // A replay that fails again leaves a new dead letter, itself replayable.
    let o = dead_letter(&cfg, &["replay", "--kind", "missing_keys"]).await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains(": 0 handled, 1 failed again"),
        "{}",
        text(&o.stderr)
    );
    let letters = d.dead_letters();
    assert_eq!(letters.len(), 5);
    assert!(letters[4]["event"]["meta"]["replayed_at"].is_string());
    let o = dead_letter(&cfg, &["list", "--kind", "missing_keys", "--json"]).await;
    let both: Vec<Value> = stdout_lines(&o)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        both.iter()
            .map(|v| v["replayed"].as_bool().unwrap())
            .collect::<Vec<_>>(),
        [true, false]
    );

    let marks = std::fs::read_to_string(d.path("dead.ndjson.replayed")).unwrap();
    assert_eq!(marks.lines().filter(|l| !l.starts_with('#')).count(), 4);
    d.shutdown().await;
}

/// A line of a tailed file that is not an event is a `bad_line` letter:
/// `dead-letter list` shows it, `--kind` selects it, a replay leaves it
/// out; `--kind` takes exactly the kinds there are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_list_shows_bad_lines_and_kind_takes_every_kind() {
    use crate::tail::{append, Tail};
    let source = "[[source.tail]]\npath = \"logs/app.log\"\nstart_at = \"beginning\"\n";
    let mut t = Tail::setup(source, "");
    let cfg = t.path("router.toml");
    append(&t.path("logs/app.log"), "{\"name\":\"t.Fine\"}\nnot json\n");
    t.start().await;
    t.wait(30, "the bad line's dead letter", |t| t.dead().len() == 1)
        .await;
    t.stop().await;

    let o = dead_letter(&cfg, &["list"]).await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let lines = stdout_lines(&o);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let file = t.path("logs/app.log");
    assert!(
        lines[0].starts_with("line 1\t")
            && lines[0].contains(&format!("\tbad_line\tfile={} offset=18 len=8\t", file.display())),
        "{}",
        lines[0]
    );
    assert!(
        text(&o.stderr).contains("1 dead letter(s) in "),
        "{}",
        text(&o.stderr)
    );
    let o = dead_letter(&cfg, &["list", "--kind", "bad_line", "--json"]).await;
    let letters: Vec<Value> = stdout_lines(&o)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(letters.len(), 1);
    assert_eq!(
        (
            letters[0]["line"].as_u64(),
            letters[0]["offset"].as_u64(),
            letters[0]["replayed"].as_bool()
        ),
        (Some(1), Some(18), Some(false)),
        "the letter keeps its own offset, of the line in the tailed file"
    );
    let o = dead_letter(&cfg, &["list", "--kind", "trap"]).await;
    assert!(o.status.success() && stdout_lines(&o).is_empty());

    let o = dead_letter(&cfg, &["replay", "--kind", "bad_line"]).await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr)
            .contains("1 bad_line letter(s) left out: a line that was not an event cannot be replayed")
            && text(&o.stderr).contains("nothing to replay"),
        "{}",
        text(&o.stderr)
    );

    // Every kind is accepted, and an unknown one is refused with the list.
    let kinds = [
        "trap",
        "out_of_fuel",
        "timeout",
        "memory_limit",
        "stack_overflow",
        "handler_error",
        "bad_abi",
        "missing_keys",
        "hop_limit",
        "cascade_limit",
        "unavailable",
        "sink_error",
        "bad_line",
        "corrupt_record",
        "poison",
    ];
    for kind in kinds {
        let o = dead_letter(&cfg, &["list", "--kind", kind]).await;
        assert!(o.status.success(), "--kind {kind}: {}", text(&o.stderr));
    }
    let o = dead_letter(&cfg, &["list", "--kind", "bad_lines"]).await;
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.contains("invalid value 'bad_lines' for '--kind <KIND>'")
            && err.contains(&format!("[possible values: {}]", kinds.join(", "))),
        "{err}"
    );
    let help = harness::run(&mut harness::switchyard(["dead-letter", "list", "--help"])).await;
    let help = text(&help.stdout);
    for kind in kinds {
        assert!(help.contains(&format!("- {kind}:")), "{kind} in {help}");
    }
}
