//! `start_at = "end"` applies only to the files there at the very first
//! start, decided from the source's checkpoint, never from file times
//! (issue 17, item 5): a file that appears while the daemon is down is read
//! from its first line on the next start, even with an old mtime, as
//! `rsync -a`, `cp -p`, `tar` and `unzip` leave them.

use std::fs;
use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::tail::{append, assert_exactly_once, lines, Tail};

const GLOB_AT_END: &str = r#"
[[source.tail]]
path = "logs/*.log"
start_at = "end"
"#;

/// Sets a file's mtime `ago` into the past, like `touch -d '1 hour ago'`.
fn age(path: &Path, ago: Duration) {
    let f = fs::File::options().append(true).open(path).unwrap();
    f.set_modified(SystemTime::now() - ago).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_created_while_stopped_are_read_whole_whatever_their_mtime() {
    let mut t = Tail::setup(GLOB_AT_END, "");
    // There at the very first start, one fresh and one old: both from their end.
    append(&t.path("logs/old.log"), &lines(0..5));
    append(&t.path("logs/aged.log"), &lines(50..55));
    age(&t.path("logs/aged.log"), Duration::from_secs(86_400));
    t.start().await;
    append(&t.path("logs/old.log"), &lines(5..10));
    append(&t.path("logs/aged.log"), &lines(55..57));
    t.wait(20, "lines appended after the first start", |t| t.handled() >= 7)
        .await;
    t.stop().await;
    assert_exactly_once(&t.counts(), (5..10).chain(55..57));

    // While stopped. The issue's case: printf ... > logs/shipped.log;
    // touch -d '1 hour ago' logs/shipped.log
    let shipped = t.path("logs/shipped.log");
    fs::write(&shipped, lines(100..105)).unwrap();
    age(&shipped, Duration::from_secs(3_600));
    // Kin: renamed in from elsewhere (mv keeps the mtime) ...
    fs::create_dir(t.path("elsewhere")).unwrap();
    let moved = t.path("elsewhere/moved.log");
    fs::write(&moved, lines(200..205)).unwrap();
    age(&moved, Duration::from_secs(3_600));
    fs::rename(&moved, t.path("logs/moved.log")).unwrap();
    // ... a copy keeping a mtime years old (cp -p, tar, unzip) ...
    let unpacked = t.path("logs/unpacked.log");
    fs::write(&unpacked, lines(300..305)).unwrap();
    age(&unpacked, Duration::from_secs(20 * 365 * 86_400));
    // ... a plain new file, and lines appended to a followed one.
    append(&t.path("logs/fresh.log"), &lines(400..405));
    append(&t.path("logs/old.log"), &lines(10..12));

    t.start().await;
    t.wait(20, "the files that appeared while stopped", |t| t.handled() >= 22)
        .await;
    t.stop().await;
    assert_exactly_once(
        &t.counts(),
        (5..12)
            .chain(55..57)
            .chain(100..105)
            .chain(200..205)
            .chain(300..305)
            .chain(400..405),
    );
}
