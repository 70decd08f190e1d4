//! Every relative path in router.toml is resolved against the config file's
//! absolute directory, once, at load (issue 18, item 1): however `--config`
//! is spelled and from whatever working directory, a restart finds its tail
//! checkpoint, and a second daemon on the same files is refused by the lock.

use std::path::Path;
use std::time::Duration;

use crate::harness::{lazy, wait_until, Binary, PATIENCE};
use crate::tail::{append, assert_exactly_once, lines, Tail};

const AT_END: &str = r#"
[[source.tail]]
path = "logs/*.log"
start_at = "end"
"#;

/// Runs `switchyard run --config <config>` from `cwd` and expects it to be
/// refused: a non-zero exit within 60 s, its log naming the lock.
async fn assert_refused(cwd: &Path, config: &Path) {
    let (status, log) = Binary::refused(cwd, config, Duration::from_secs(60)).await;
    assert!(!status.success(), "{log}");
    assert!(log.contains("is locked: another switchyard"), "{log}");
}

async fn wait_for(t: &Tail, expected: usize, what: &str) {
    let what = lazy(|| format!("{what}: {:?}", t.counts()));
    wait_until(what, PATIENCE, async || t.out().len() >= expected).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checkpoint_and_lock_do_not_depend_on_how_the_config_is_spelled() {
    let t = Tail::setup(AT_END, "");
    let root = t.root().to_path_buf();
    let parent = root.parent().unwrap();
    let name = root.file_name().unwrap();
    append(&t.path("logs/app.log"), &lines(0..5));

    // The issue's first spelling: `--config t1/router.toml` from the parent.
    let mut first = Binary::start_from(parent, &Path::new(name).join("router.toml"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    append(&t.path("logs/app.log"), &lines(5..10));
    wait_for(&t, 5, "lines appended after the first start").await;

    // Same files, other spellings: refused while the first one runs.
    assert_refused(&root, Path::new("router.toml")).await;
    assert_refused(Path::new("/"), &root.join("router.toml")).await;
    assert_refused(&root.join("logs"), Path::new("../router.toml")).await;
    assert!(first.terminate().await.success());

    // Appended while down, then restarted by absolute path from elsewhere:
    // the checkpoint is found, so these lines are not skipped as `end`.
    append(&t.path("logs/app.log"), &lines(10..15));
    let mut second = Binary::start_from(Path::new("/"), &root.join("router.toml"));
    wait_for(&t, 10, "lines appended while the daemon was down").await;
    // And once more as `cd t1 && switchyard run --config router.toml`.
    assert!(second.terminate().await.success());
    append(&t.path("logs/app.log"), &lines(15..20));
    let mut third = Binary::start_from(&root, Path::new("router.toml"));
    wait_for(&t, 15, "lines appended while the daemon was down").await;
    assert!(third.terminate().await.success());
    assert_exactly_once(&t.counts(), 5..20);
    // One checkpoint and one lock for the one source.
    let names: Vec<_> = std::fs::read_dir(t.path("data/tail"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");
}
