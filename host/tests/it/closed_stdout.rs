//! Every command that prints on standard output, as `command | head -1`
//! runs it: a reader that goes away ends the output, and the command exits
//! as it would have with everything read, with no error (issue 11). The
//! commands that print on stdout: `check`, `plugin run`, `--help`, `--version`, `send`,
//! `tail`, `dead-letter list` and `dead-letter replay --dry-run`.

use std::io::BufRead;
use std::process::Output;

use crate::fixtures;
use crate::harness::{self, run_into_closed_pipe, switchyard, wait_until, write_setup, TestDaemon, PATIENCE};

/// What a run into a closed pipe must look like: the exit status the
/// command would have had, and no error or panic on stderr.
fn assert_quiet_exit(out: &Output, code: i32, what: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{what}: {err}");
    assert!(
        !err.contains("error") && !err.contains("panicked"),
        "{what}: {err}"
    );
}

#[tokio::test]
async fn check_plugin_run_and_help_end_quietly_when_stdout_is_closed() {
    let dir = write_setup(
        "",
        "[[route]]\nname = \"a\"\nhandlers = [\"good\"]\n",
        &[("good", fixtures::logger()), ("spin", fixtures::endless_loop())],
    );
    let cfg = dir.path().join("router.toml");
    let mut check = switchyard(["check", "--config"]);
    check.arg(&cfg);
    let out = run_into_closed_pipe(check).await;
    assert_quiet_exit(&out, 0, "check");

    let ev = dir.path().join("event.json");
    std::fs::write(&ev, r#"{"name": "greet.Please"}"#).unwrap();
    let plugin = |name: &str, json: bool| {
        let mut c = switchyard(["plugin", "run"]);
        c.arg(dir.path().join(format!("plugins/{name}.wat")))
            .arg("--event")
            .arg(&ev)
            .args(["--fuel", "5000"]);
        if json {
            c.arg("--json");
        }
        c
    };
    for json in [false, true] {
        let out = run_into_closed_pipe(plugin("good", json)).await;
        assert_quiet_exit(&out, 0, "plugin run of a plugin that succeeds");
        let out = run_into_closed_pipe(plugin("spin", json)).await;
        assert_quiet_exit(&out, 1, "plugin run of a plugin that fails: its outcome decides");
    }
    for flag in ["--help", "--version"] {
        let out = run_into_closed_pipe(switchyard([flag])).await;
        assert_quiet_exit(&out, 0, flag);
    }
}

/// `| head -1` after each command that prints on stdout: it ends as it
/// would have with everything read (exit 0), with no error. `tail` is
/// read for one line, as `head -1` reads it, and ends at its next event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_tail_and_dead_letter_end_quietly_when_their_reader_goes() {
    let route = "[[route]]\nname = \"r\"\nhandlers = [\"flaky\"]\n";
    let mut d = TestDaemon::start(route, &[("flaky", fixtures::failing())]).await;
    let cfg = d.path("router.toml");
    let url = format!("http://{}", d.addr);

    let mut tail = harness::spawn(&mut harness::switchyard(["tail", "--url", &url]));
    d.subscribed(1).await;
    let out = run_into_closed_pipe(harness::switchyard(["send", "a.One", "--url", &url])).await;
    assert_quiet_exit(&out, 0, "send");
    let mut head = std::io::BufReader::new(tail.stdout.take().unwrap());
    let mut first = String::new();
    head.read_line(&mut first).unwrap();
    assert!(first.contains("\"a.One\""), "{first}");
    drop(head);
    // The next event finds the pipe closed.
    d.post_json("/v1/events", &serde_json::json!({"name": "a.Two"}))
        .await;
    let out = tokio::time::timeout(
        PATIENCE,
        tokio::task::spawn_blocking(move || tail.wait_with_output().unwrap()),
    )
    .await
    .expect("tail ends at its first write after its reader went")
    .unwrap();
    assert_quiet_exit(&out, 0, "tail | head -1");

    wait_until("the dead letters", PATIENCE, async || d.dead_letters().len() == 2).await;
    for rest in [&["list"][..], &["list", "--json"], &["replay", "--dry-run"]] {
        let mut command = harness::switchyard(["dead-letter"]);
        command.args(rest).arg("--config").arg(&cfg);
        let out = run_into_closed_pipe(command).await;
        assert_quiet_exit(&out, 0, &format!("dead-letter {}", rest.join(" ")));
    }
    d.shutdown().await;
}
